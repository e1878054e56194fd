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
	X(LIST, dns_servers, "") \
	X(STRING, tls_cert_file, "") \
	X(STRING, tls_key_file, "") \
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
	X(BOOL, submission_require_auth, "yes")

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
	X(STRING, lmtp_destination, "unix:$run_directory/lmtp") \
	X(LIST, smtp_sasl_password_maps, "") \
	X(BOOL, smtp_sasl_allow_plaintext, "no")

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

#define CFG_KEYS(X) \
	CFG_KEYS_CORE(X) \
	CFG_KEYS_SMTPD(X) \
	CFG_KEYS_QMGR(X) \
	CFG_KEYS_DELIVER(X) \
	CFG_KEYS_LMTPD(X)
