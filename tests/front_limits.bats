#!/usr/bin/env bats
# Per-client limits shared across smtpd processes, counted by anvil:
# concurrent connections, connections, messages and recipients per
# minute, per client address; clients in
# smtpd_client_event_limit_exceptions ($mynetworks: 127.0.0.1 here) are
# not counted. Real clients: Python sockets bound to 127.0.0.2 ...
# 127.0.0.6 (tests/helpers/smtp_script.py), one suite for the whole file.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	suite_init
	suite_conf mynetworks 127.0.0.1/32
	suite_conf smtpd_client_connection_count_limit 2
	suite_conf smtpd_client_connection_rate_limit 5
	suite_conf smtpd_client_message_rate_limit 2
	suite_conf smtpd_client_recipient_rate_limit 3
	suite_conf smtpd_peername_lookup no
	suite_start
}

teardown_file() {
	suite_stop
	file_timer_report
}

@test "concurrent connections per client: the one past the limit gets 421 4.7.0; it recovers" {
	run smtp_script <<'PY'
a, ga = open_from("127.0.0.2")
b, gb = open_from("127.0.0.2")
c, gc = open_from("127.0.0.2")
print("1:", ga); print("2:", gb); print("3:", gc)
d, gd = open_from("127.0.0.3")
print("other:", gd)
e = [open_from("127.0.0.1") for i in range(3)]
print("mynetworks:", " | ".join(g for _, g in e))
say(a, "QUIT"); a.close()
# a's smtpd tells anvil right after its 221: retry until it has.
f, gf = open_when_free("127.0.0.2")
print("after:", gf)
PY
	echo "$output"
	[[ "${lines[0]}" == "1: 220 "* ]]
	[[ "${lines[1]}" == "2: 220 "* ]]
	[ "${lines[2]}" = "3: 421 4.7.0 mx.postern.test Error: too many connections from 127.0.0.2" ]
	[[ "${lines[3]}" == "other: 220 "* ]]
	[[ "${lines[4]}" == "mynetworks: 220 "*" | 220 "*" | 220 "* ]]
	[[ "${lines[5]}" == "after: 220 "* ]]
	wait_for_log "warning: Connection concurrency limit exceeded: 3 from unknown\[127.0.0.2\] for service smtp"
	[ "$(grep -c 'Connection concurrency limit exceeded' "$T/log")" -eq 1 ]
}

@test "connections per minute: the sixth from one client gets 421 4.7.0" {
	run smtp_script <<'PY'
for i in range(6):
    s, g = open_from("127.0.0.4")
    print(i + 1, g)
    if g.startswith("220"):
        say(s, "QUIT")
    s.close()
PY
	echo "$output"
	[[ "${lines[4]}" == "5 220 "* ]]
	[ "${lines[5]}" = "6 421 4.7.0 mx.postern.test Error: too many connections from 127.0.0.4" ]
	wait_for_log "warning: Connection rate limit exceeded: 6 from unknown\[127.0.0.4\] for service smtp"
}

@test "messages and recipients per minute: 450 4.7.1 past the limits" {
	run smtp_script <<'PY'
s, g = open_from("127.0.0.5")
say(s, "EHLO limits.example")
for i in range(3):
    print("mail", i + 1, say(s, "MAIL FROM:<a@example.org>"))
    say(s, "RSET")
t, g = open_from("127.0.0.6")
say(t, "EHLO limits.example")
say(t, "MAIL FROM:<a@example.org>")
for i in range(4):
    print("rcpt", i + 1, say(t, "RCPT TO:<alice%d@postern.test>" % i))
PY
	echo "$output"
	[[ "${lines[1]}" == "mail 2 250 "* ]]
	[ "${lines[2]}" = "mail 3 450 4.7.1 Error: too many messages from 127.0.0.5" ]
	[[ "${lines[5]}" == "rcpt 3 250 "* ]]
	[ "${lines[6]}" = "rcpt 4 450 4.7.1 Error: too many recipients from 127.0.0.6" ]
	wait_for_log "NOQUEUE: reject: MAIL from unknown\[127.0.0.5\]: 450 4.7.1 Error: too many messages from 127.0.0.5"
	wait_for_log "NOQUEUE: reject: RCPT from unknown\[127.0.0.6\]: 450 4.7.1 Error: too many recipients from 127.0.0.6"
	wait_for_log "warning: Recipient address rate limit exceeded: 4 from unknown\[127.0.0.6\] for service smtp"
}
