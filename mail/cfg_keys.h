/*
 * cfg_keys.h - every configuration key of postern.conf, in one table.
 *
 * X(type, name, default) for each key. Types: STRING, LIST (split at commas
 * and white space), INT, SIZE (k/m/g suffixes), DURATION (seconds; s/m/h/d/w
 * suffixes), BOOL (yes/no). Defaults may refer to other keys as $name and
 * to $config_directory. Every key is documented in man/postern.conf.5.
 * Keep the groups in order; add a program's keys to its own group.
 */

/* Identity and places */
#define CFG_KEYS_CORE(X) \
	X(STRING, myhostname, "") \
	X(LIST, mydomains, "$myhostname, localhost") \
	X(LIST, mynetworks, "127.0.0.0/8, [::1]/128") \
	X(STRING, queue_directory, "/var/spool/postern") \
	X(STRING, run_directory, "/run/postern") \
	X(STRING, daemon_directory, "/usr/lib/postern") \
	X(STRING, user, "postern") \
	X(STRING, smtpd_user, "postern-smtpd") \
	X(STRING, mailbox_owner, "vmail") \
	X(STRING, postdrop_group, "postdrop") \
	X(INT, max_use, "100") \
	X(DURATION, max_idle, "100s") \
	X(INT, process_min_idle, "2") \
	X(DURATION, service_throttle_time, "60s") \
	X(DURATION, shutdown_timeout, "30s") \
	X(DURATION, start_timeout, "90s") \
	X(LIST, dns_servers, "") \
	X(STRING, tls_cert_file, "") \
	X(STRING, tls_key_file, "") \
	X(STRING, tls_eccert_file, "") \
	X(STRING, tls_eckey_file, "") \
	X(LIST, smtpd_tls_protocols, ">=TLSv1.2") \
	X(STRING, smtpd_tls_ciphers, "high") \
	X(LIST, smtp_tls_protocols, ">=TLSv1.2") \
	X(STRING, smtp_tls_ciphers, "medium")

/* smtpd */
#define CFG_KEYS_SMTPD(X) \
	X(LIST, smtp_listen, "0.0.0.0:25, [::]:25") \
	X(LIST, submission_listen, "0.0.0.0:587, [::]:587") \
	X(LIST, smtps_listen, "") \
	X(STRING, smtpd_banner, "$myhostname ESMTP postern") \
	X(SIZE, message_size_limit, "50m") \
	X(SIZE, queue_minfree, "0") \
	X(INT, smtpd_recipient_limit, "1000") \
	X(DURATION, smtpd_timeout, "300s") \
	X(INT, smtpd_processes, "100") \
	X(INT, smtpd_error_limit, "20") \
	X(INT, smtpd_junk_command_limit, "100") \
	X(INT, hopcount_limit, "50") \
	X(BOOL, smtpd_peername_lookup, "yes") \
	X(LIST, smtpd_dnsbl_sites, "") \
	X(LIST, smtpd_sasl_users, "") \
	X(BOOL, submission_require_auth, "yes") \
	X(LIST, smtpd_milters, "") \
	X(LIST, non_smtpd_milters, "") \
	X(STRING, milter_default_action, "tempfail") \
	X(DURATION, milter_connect_timeout, "30s") \
	X(DURATION, milter_command_timeout, "30s") \
	X(DURATION, milter_content_timeout, "300s") \
	X(INT, milter_protocol, "6") \
	X(LIST, milter_connect_macros, "j {daemon_name} {daemon_addr} v _") \
	X(LIST, milter_helo_macros, "{tls_version} {cipher} {cipher_bits}") \
	X(LIST, milter_mail_macros, "i {auth_type} {auth_authen} {mail_addr} {mail_host} {mail_mailer}") \
	X(LIST, milter_rcpt_macros, "i {rcpt_addr} {rcpt_host} {rcpt_mailer}") \
	X(LIST, milter_data_macros, "i") \
	X(LIST, milter_end_of_header_macros, "i") \
	X(LIST, milter_end_of_data_macros, "i") \
	X(DURATION, smtpd_tls_ticket_rotation, "3600s")

/* qmgr */
#define CFG_KEYS_QMGR(X) \
	X(LIST, alias_maps, "") \
	X(LIST, virtual_alias_maps, "") \
	X(LIST, transport_maps, "") \
	X(STRING, relayhost, "") \
	X(DURATION, minimal_backoff, "300s") \
	X(DURATION, maximal_backoff, "4000s") \
	X(DURATION, maximal_queue_lifetime, "5d") \
	X(DURATION, delay_warning_time, "0") \
	X(DURATION, queue_run_delay, "300s") \
	X(INT, qmgr_active_limit, "20000") \
	X(INT, destination_concurrency_limit, "20") \
	X(INT, initial_destination_concurrency, "5") \
	X(STRING, metrics_listen, "")

/* deliver */
#define CFG_KEYS_DELIVER(X) \
	X(INT, deliver_processes, "100") \
	X(DURATION, smtp_connect_timeout, "30s") \
	X(DURATION, smtp_timeout, "300s") \
	X(BOOL, smtp_per_request_deadline, "yes") \
	X(DURATION, smtp_session_time_limit, "3600s") \
	X(BOOL, smtp_chunking, "yes") \
	X(STRING, lmtp_destination, "unix:$run_directory/lmtp") \
	X(LIST, smtp_sasl_password_maps, "") \
	X(BOOL, smtp_sasl_allow_plaintext, "no") \
	X(INT, smtp_mx_address_limit, "5") \
	X(INT, smtp_mx_session_limit, "2") \
	X(LIST, smtp_fallback_relay, "") \
	X(LIST, dkim_signing_maps, "") \
	X(STRING, dkim_key_directory, "$config_directory/dkim") \
	X(STRING, smtp_tls_security_level, "may") \
	X(LIST, smtp_tls_policy_maps, "") \
	X(STRING, smtp_tls_CAfile, "") \
	X(STRING, smtp_tls_CApath, "/etc/ssl/certs") \
	X(LIST, smtp_tls_verify_cert_match, "hostname") \
	X(LIST, smtp_tls_secure_cert_match, "nexthop, dot-nexthop") \
	X(STRING, smtp_sasl_tls_security_level, "secure") \
	X(BOOL, smtp_tls_wrappermode, "no") \
	X(BOOL, smtp_tls_session_cache, "yes")

/* lmtpd */
#define CFG_KEYS_LMTPD(X) \
	X(LIST, lmtp_listen, "unix:$run_directory/lmtp") \
	X(STRING, lmtp_socket_group, "$user") \
	X(INT, lmtpd_processes, "20") \
	X(STRING, mailbox_base, "/var/vmail") \
	X(LIST, mailbox_maps, "") \
	X(SIZE, mailbox_quota, "0") \
	X(BOOL, mailbox_quota_tempfail, "yes") \
	X(INT, lmtpd_max_delivered_to, "20") \
	X(INT, lmtpd_recipient_limit, "1000") \
	X(DURATION, lmtpd_timeout, "300s")

/* local (local/: system users' mailboxes) */
#define CFG_KEYS_LOCAL(X) \
	X(LIST, local_recipient_maps, "") \
	X(STRING, mail_spool_directory, "/var/mail") \
	X(STRING, mail_spool_group, "mail") \
	X(STRING, home_mailbox, "") \
	X(INT, local_processes, "10") \
	X(STRING, default_privs, "nobody") \
	X(DURATION, command_time_limit, "1000s") \
	X(LIST, allow_mail_to_commands, "alias, forward") \
	X(LIST, allow_mail_to_files, "alias, forward")

/* smtpd's front door (issue 17): PROXY protocol, limits, AUTH throttling,
 * greylisting, relay_domains, stress */
#define CFG_KEYS_FRONT(X) \
	X(DURATION, smtpd_upstream_proxy_timeout, "5s") \
	X(LIST, smtpd_sender_login_maps, "") \
	X(INT, smtpd_client_auth_rate_limit, "0") \
	X(DURATION, smtpd_auth_lockout_time, "15m") \
	X(DURATION, smtpd_auth_failure_delay, "1s") \
	X(DURATION, smtpd_data_deadline, "1h") \
	X(INT, smtpd_client_connection_count_limit, "50") \
	X(INT, smtpd_client_connection_rate_limit, "0") \
	X(INT, smtpd_client_message_rate_limit, "0") \
	X(INT, smtpd_client_recipient_rate_limit, "0") \
	X(LIST, smtpd_client_event_limit_exceptions, "$mynetworks") \
	X(BOOL, smtpd_greylist, "no") \
	X(DURATION, smtpd_greylist_delay, "300s") \
	X(DURATION, smtpd_greylist_expiry, "35d") \
	X(INT, smtpd_greylist_auto_allow, "5") \
	X(LIST, smtpd_greylist_exceptions, "") \
	X(STRING, smtpd_greylist_database, "/var/lib/postern/greylist/greylist.db") \
	X(LIST, relay_domains, "") \
	X(LIST, relay_recipient_maps, "") \
	X(DURATION, smtpd_stress_timeout, "10s")

/* smtpd's mail authentication checks (issue 15): SPF, DKIM, DMARC and
 * Authentication-Results (smtpd/smtpd_authcheck.c) */
#define CFG_KEYS_AUTH(X) \
	X(STRING, smtpd_spf, "record") \
	X(BOOL, smtpd_dkim_verify, "yes") \
	X(INT, smtpd_dkim_max_signatures, "5") \
	X(STRING, dmarc_enforce, "no") \
	X(STRING, authserv_id, "$myhostname") \
	X(STRING, public_suffix_list, "/usr/share/publicsuffix/public_suffix_list.dat")

/* DANE and REQUIRETLS (issue 16): deliver's DNSSEC lookups */
#define CFG_KEYS_DANE(X) \
	X(STRING, smtp_dns_support_level, "enabled") \
	X(LIST, smtp_dnssec_trusted_resolvers, "127.0.0.0/8, [::1]/128")

/* screen, the first contact in front of smtpd (issue 17): screen/ */
#define CFG_KEYS_SCREEN(X) \
	X(BOOL, screen, "no") \
	X(LIST, screen_access_list, "permit_mynetworks") \
	X(STRING, screen_cache_map, "/var/lib/postern/screen/screen_cache.db") \
	X(DURATION, screen_cache_ttl, "1d") \
	X(DURATION, screen_greet_wait, "6s") \
	X(LIST, screen_dnsbl_sites, "") \
	X(INT, screen_dnsbl_threshold, "1") \
	X(DURATION, screen_dnsbl_timeout, "10s") \
	X(INT, screen_client_limit, "10000") \
	X(DURATION, screen_command_timeout, "300s") \
	X(DURATION, screen_handoff_timeout, "10s")

/* address rewriting for the satellite role (mail/rewrite.c; issue 13) */
#define CFG_KEYS_REWRITE(X) \
	X(LIST, canonical_maps, "") \
	X(LIST, sender_canonical_maps, "") \
	X(LIST, recipient_canonical_maps, "") \
	X(LIST, masquerade_domains, "") \
	X(LIST, masquerade_exceptions, "") \
	X(LIST, smtp_generic_maps, "")

/* MTA-STS and TLS-RPT (issue 16): deliver and postern tls report */
#define CFG_KEYS_MTASTS(X) \
	X(BOOL, smtp_mta_sts, "yes") \
	X(STRING, smtp_mta_sts_CAfile, "") \
	X(DURATION, smtp_mta_sts_timeout, "10s") \
	X(BOOL, smtp_tls_reporting, "yes") \
	X(STRING, tls_rpt_organization, "$myhostname") \
	X(STRING, tls_rpt_sender, "postmaster@$myhostname") \
	X(STRING, tls_rpt_contact, "")

/* open files for many idle clients (issue 20): master/master_limits.c */
#define CFG_KEYS_LIMITS(X) \
	X(INT, open_file_limit, "0")

/* workers cloned from a zygote per service (issue 20): master_zygote.c */
#define CFG_KEYS_ZYGOTE(X) \
	X(BOOL, process_zygote, "yes")

/* MTA-STS: how long a failed policy fetch is remembered (issue 16
 * follow-ups): deliver/deliver_mtasts.c */
#define CFG_KEYS_TRUST(X) \
	X(DURATION, smtp_mta_sts_negative_cache_time, "5m")

#define CFG_KEYS(X) \
	CFG_KEYS_CORE(X) \
	CFG_KEYS_SMTPD(X) \
	CFG_KEYS_QMGR(X) \
	CFG_KEYS_DELIVER(X) \
	CFG_KEYS_LMTPD(X) \
	CFG_KEYS_LOCAL(X) \
	CFG_KEYS_FRONT(X) \
	CFG_KEYS_AUTH(X) \
	CFG_KEYS_DANE(X) \
	CFG_KEYS_SCREEN(X) \
	CFG_KEYS_REWRITE(X) \
	CFG_KEYS_MTASTS(X) \
	CFG_KEYS_LIMITS(X) \
	CFG_KEYS_ZYGOTE(X) \
	CFG_KEYS_TRUST(X)
