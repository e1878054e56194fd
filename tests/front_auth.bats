#!/usr/bin/env bats
# AUTH throttling, per client address and per account, counted by anvil
# across every smtpd process: each failure makes the next 535 wait longer
# (smtpd_auth_failure_delay times the earlier failures), and at
# smtpd_client_auth_rate_limit failures the client (or the account) is
# locked out for smtpd_auth_lockout_time, even with the right password.
# Real client: swaks over STARTTLS from 127.0.0.3 ... 127.0.0.8. The log
# lines are checked with Debian's fail2ban-regex and its postfix filter
# in mode=auth (the postfix-sasl jail), with postern's program name.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	suite_init
	smtp_maps
	suite_tls_selfsigned
	suite_sasl_users alice alice-pw bob bob-pw
	suite_conf smtpd_client_auth_rate_limit 3
	suite_conf smtpd_auth_lockout_time 1m
	suite_conf smtpd_auth_failure_delay 1s
	suite_conf smtpd_peername_lookup no
	suite_start
}

teardown_file() {
	suite_stop
	file_timer_report
}

# AUTH PLAIN on the submission port: SOURCE USER PASSWORD
auth_from() {
	swaks --server 127.0.0.1 --port "$SUBMISSION_PORT" --local-interface "$1" \
		--tls --helo client.example --auth PLAIN --auth-user "$2" \
		--auth-password "$3" --quit-after AUTH
}

ms_since() {
	echo $(( ($(date +%s%N) - $1) / 1000000 ))
}

@test "failures from one client wait longer each time, then lock it out" {
	t=$(date +%s%N)
	run auth_from 127.0.0.3 alice wrong1
	first=$(ms_since "$t")
	[[ "$output" == *"<~* 535 5.7.8 Error: authentication failed"* ]]
	t=$(date +%s%N)
	run auth_from 127.0.0.3 alice wrong2
	second=$(ms_since "$t")
	[[ "$output" == *"<~* 535 5.7.8"* ]]
	t=$(date +%s%N)
	run auth_from 127.0.0.3 bob wrong3
	third=$(ms_since "$t")
	[[ "$output" == *"<~* 535 5.7.8"* ]]
	echo "# 535 after $first, $second, $third ms (delay 0, 1, 2 s)" >&3
	[ "$second" -ge 1000 ]
	[ "$third" -ge 2000 ]
	# The third failure locked 127.0.0.3 out: no exchange, even with
	# the right password, and the session ends.
	run auth_from 127.0.0.3 alice alice-pw
	echo "$output"
	[[ "$output" == *"<~* 421 4.7.0 mx.postern.test Error: too many failed authentication attempts; try again later"* ]]
	wait_for_log "client 127.0.0.3: 3 failed AUTH attempts: locked out for 60s"
	wait_for_log "warning: unknown\[127.0.0.3\]: SASL PLAIN authentication failed: too many failed attempts from this client: locked out"
	# Another client is not concerned.
	run auth_from 127.0.0.4 alice alice-pw
	[[ "$output" == *"<~  235 2.7.0 Authentication successful"* ]]
}

@test "failures for one account from many clients lock the account out" {
	run auth_from 127.0.0.5 bob wrong-a
	[[ "$output" == *"<~* 535 5.7.8"* ]]
	run auth_from 127.0.0.6 bob wrong-b
	[[ "$output" == *"<~* 535 5.7.8"* ]]
	# bob has 1 failure from test 1 (127.0.0.3) and 2 now: locked.
	run auth_from 127.0.0.7 bob bob-pw
	echo "$output"
	[[ "$output" == *"<~* 454 4.7.0 Temporary authentication failure: too many failed attempts; try again later"* ]]
	wait_for_log "account bob: 3 failed AUTH attempts: locked out for 60s"
	wait_for_log "warning: unknown\[127.0.0.7\]: SASL PLAIN authentication failed: too many failed attempts: locked out, sasl_username=bob"
	# alice is not concerned, from the same client.
	run auth_from 127.0.0.7 alice alice-pw
	[[ "$output" == *"<~  235 2.7.0 Authentication successful"* ]]
}

@test "fail2ban's postfix filter (mode=auth, postern's name) matches every failure line" {
	command -v fail2ban-regex >/dev/null || skip "fail2ban is not installed"
	# syslog puts a time stamp and the host name before what we write.
	stamp=$(date '+%b %e %H:%M:%S')
	sed -n "s/^postern\//$stamp mx postern\//p" "$T/log" > "$T/syslog"
	want=$(grep -c 'SASL [A-Z]* authentication failed' "$T/syslog")
	[ "$want" -ge 6 ]
	run fail2ban-regex -v "$T/syslog" 'postfix[mode=auth, _daemon=postern/\w+]'
	echo "$output"
	[[ "$output" == *"Lines: "*", $want matched,"* ]]
	[[ "$output" == *"127.0.0.3"* ]]
	[[ "$output" == *"127.0.0.6"* ]]
}
