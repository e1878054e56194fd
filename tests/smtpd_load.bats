#!/usr/bin/env bats
# test-runner: alone (what it checks is timing or load)
# smtpd under load and under kill -9: Postfix's smtp-source sends 2,000
# messages over 20 sessions, and every acknowledged message must be in
# the queue, valid and byte-exact; then master and all its children are
# killed at random moments while a client sends, and every message that
# got a 250 must survive.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup() {
	suite_init
	smtp_maps
}

teardown() {
	suite_stop
}

@test "smtp-source: 2,000 messages over 20 sessions, all queued byte-exact" {
	suite_start
	# smtp-source adds CRLF to each line and stuffs leading dots
	printf 'From: <load@example.org>\nTo: <rcpt@remote.example>\nSubject: load\n\n.leading dot\nline two\n' > "$T/load.txt"
	printf 'From: <load@example.org>\r\nTo: <rcpt@remote.example>\r\nSubject: load\r\n\r\n.leading dot\r\nline two\r\n\r\n' > "$T/load.eml"
	run timeout 300 /usr/sbin/smtp-source -s 20 -m 2000 -d -F "$T/load.txt" \
		-f load@example.org -t rcpt@remote.example "127.0.0.1:$SMTP_PORT"
	[ "$status" -eq 0 ]
	suite_halt
	[ "$(grep -c ': client=localhost\[127.0.0.1\]' "$T/log")" -eq 2000 ]
	# every logged queue ID has its file
	for id in $(sed -n 's/.*smtpd\[[0-9]*\]: \([0-9A-Za-z]\{14\}\): client=.*/\1/p' "$T/log"); do
		[ -n "$(find "$T/queue" -type f -name "$id")" ] || { echo "missing $id"; false; }
	done
	run qtool check
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "2000 files, 0 bad" ]
	run qtool same-body "$T/load.eml"
	[ "$status" -eq 0 ]
	[ "${lines[-1]}" = "2000 files, 0 bad" ]
	# no client of smtp-source was cut off (the port probe's CONNECT aside)
	! grep -Eq 'smtpd\[[0-9]+\]: (warning|timeout after|lost connection after (EHLO|HELO|MAIL|RCPT|DATA|BDAT|RSET|NOOP|QUIT))' "$T/log"
}

@test "kill -9 of master and every child while mail flows: nothing acknowledged is lost" {
	banner="mx.postern.test ESMTP crash-$$-$RANDOM"
	suite_conf smtpd_banner "$banner"
	suite_start
	: > "$T/acked"
	python3 "$HELPERS/smtp_send.py" load "$SMTP_PORT" 100000 8 14 "$T/acked" \
		crash@example.org rcpt@remote.example "$banner" > "$T/load.out" 2>&1 &
	load_pid=$!
	for round in 1 2 3; do
		sleep "$(python3 -c 'import random; print(round(random.uniform(1.0, 3.0), 2))')"
		# stopped first, master cannot fork a child we would miss
		kill -STOP "$SUITE_PID"
		kids=$(child_pids "$SUITE_PID")
		kill -KILL $kids "$SUITE_PID" 2>/dev/null || true
		wait "$SUITE_PID" 2>/dev/null || true
		for pid in $kids; do
			wait_for_exit "$pid" 5 || true
		done
		echo "# round $round: killed master and $(echo $kids | wc -w) children after $(wc -l < "$T/acked") acknowledged" >&3
		suite_start
	done
	wait "$load_pid"
	cat "$T/load.out" >&3
	suite_halt
	[ "$(wc -l < "$T/acked")" -gt 10 ]
	run qtool acked "$T/acked"
	echo "$output" | tail -n 5 >&3
	[ "$status" -eq 0 ]
	# what is in the queue parses, whether acknowledged or not
	run qtool check
	[ "$status" -eq 0 ]
}
