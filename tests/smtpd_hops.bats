#!/usr/bin/env bats
# Process hops per SMTP session (issue 20, accept3): smtpd asks anvil
# only when a per-client limit applies to the client, and then once per
# session: its connect is answered, the release at the session's end is
# told, not asked (anvil/anvil.c "release"), so the worker does not wait
# for anvil between its 221 and its next client. anvil's own system
# calls (/proc/PID/io: syscr, syscw) count what it did: one read per
# request or batch of requests, one write per answer. The limit still
# holds: the session past it gets 421, and a slot freed by a release
# is free for the next session. One suite for the file; real clients
# (Python sockets bound to 127.0.0.1, in mynetworks, and 127.0.0.2;
# tests/helpers/smtp_script.py).

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	suite_init
	suite_conf mynetworks 127.0.0.1/32
	suite_conf smtpd_client_connection_count_limit 1
	suite_conf smtpd_peername_lookup no
	suite_start
}

teardown_file() {
	suite_stop
	file_timer_report
}

anvil_pid() {
	ps -o pid=,comm= --ppid "$(master_pid)" | awk '$2 == "anvil" { print $1 }' | head -n1
}

# "syscr syscw" of anvil.
anvil_io() {
	awk '/^syscr:/ { r = $2 } /^syscw:/ { w = $2 } END { print r, w }' \
		"/proc/$(anvil_pid)/io"
}

@test "a client the limits do not apply to costs anvil nothing; a stranger one answered request a session, and the limit holds" {
	[ -r "/proc/$(anvil_pid)/io" ] || skip "cannot read anvil's /proc/PID/io"
	# Every worker has met a stranger first, so that the connections
	# to anvil are open: the counts below are requests, not connects.
	run smtp_script <<'PY'
for i in range(4):
    print(session("127.0.0.2"))
PY
	[ "$status" -eq 0 ]
	# mynetworks (smtpd_client_event_limit_exceptions): not counted.
	read -r r0 w0 < <(anvil_io)
	run smtp_script <<'PY'
for i in range(5):
    print(session("127.0.0.1"))
PY
	[ "$status" -eq 0 ]
	[ "$(grep -c '^220 250 221$' <<< "$output")" -eq 5 ]
	read -r r1 w1 < <(anvil_io)
	[ "$r1" -eq "$r0" ]
	[ "$w1" -eq "$w0" ]
	# A stranger, one session after the other: each connect answered
	# (one write each), each release not (none). The release of the
	# one session is read before, or with, the next one's connect.
	run smtp_script <<'PY'
for i in range(5):
    print(session("127.0.0.2"))
PY
	[ "$status" -eq 0 ]
	[ "$(grep -c '^220 250 221$' <<< "$output")" -eq 5 ]
	# The last release: one read more, no write.
	wait_until "[ \"\$(anvil_io | cut -d' ' -f1)\" -gt $r1 ]" 5 "anvil read"
	read -r r2 w2 < <(anvil_io)
	[ "$((w2 - w1))" -eq 5 ]
	[ "$((r2 - r1))" -ge 5 ]
	[ "$((r2 - r1))" -le 10 ]
	# The limit (1 session at once) holds: the second gets 421 4.7.0;
	# after the first ends, its release frees the slot.
	run smtp_script <<'PY'
a, ga = open_from("127.0.0.2")
b, gb = open_from("127.0.0.2")
print("first:", ga)
print("second:", gb)
say(a, "QUIT"); a.close()
c, gc = open_when_free("127.0.0.2")
print("after:", gc)
PY
	[ "$status" -eq 0 ]
	grep -q '^first: 220 ' <<< "$output"
	grep -q '^second: 421 4.7.0 ' <<< "$output"
	grep -q '^after: 220 ' <<< "$output"
}
