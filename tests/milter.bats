#!/usr/bin/env bats
# smtpd's milter client (smtpd/smtpd_milter.c, issue 14) against real
# filters: a scripted milter on python3-milter (libmilter, the library
# rspamd's and OpenDKIM's peers are measured against) covering every
# action, and a misbehaving one (tests/helpers/milter_bad.py) for the
# failure modes. One suite for the file; mail stays in the queue
# (smtp_maps), where the filtered envelope and content are read back
# with the independent reader tests/helpers/smtp_queue.py.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

PY=/usr/bin/python3

setup_file() {
	file_timer_start
	suite_init
	smtp_maps
	MILTER_PORT=$(free_port)
	BAD_PORT=$(free_port)
	$PY "$BATS_TEST_DIRNAME/helpers/milter_script.py" "$MILTER_PORT" "$T/milter.log" \
		>"$T/milter.out" 2>&1 3>&- &
	echo $! > "$T/milter.pid"
	$PY "$BATS_TEST_DIRNAME/helpers/milter_bad.py" "$BAD_PORT" "$T/milter.log" \
		>"$T/bad.out" 2>&1 3>&- &
	echo $! > "$T/bad.pid"
	wait_for_port "$MILTER_PORT" 10
	wait_for_port "$BAD_PORT" 10
	suite_conf smtpd_milters "inet:127.0.0.1:$MILTER_PORT, inet:127.0.0.1:$BAD_PORT"
	suite_conf milter_command_timeout 2s
	suite_conf milter_content_timeout 2s
	suite_conf smtpd_peername_lookup no
	suite_conf process_min_idle 1
	suite_start
	export MILTER_PORT BAD_PORT
}

teardown_file() {
	# The filters first: suite_stop removes $T, and their pid files.
	pidfile_kill milter bad unix
	suite_stop || true
	file_timer_report
}

send() {	# FROM TO SUBJECT [swaks options]
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --helo client.example \
		--from "$1" --to "$2" --header "Subject: $3" "${@:4}"
}

@test "connect, helo, mail, rcpt, data, headers and body reach the filter with Postfix's macros" {
	run send sender@example.org alice@postern.test plain
	echo "$output"
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	id=$(queued_id "$output")
	grep -q "^connect host=unknown addr=('127.0.0.1', [0-9]*) j=mx.postern.test daemon_name=mx.postern.test _=unknown \[127.0.0.1\]" "$T/milter.log"
	grep -q "^helo client.example" "$T/milter.log"
	grep -q "^mail <sender@example.org> args= mail_addr=sender@example.org" "$T/milter.log"
	grep -q "^rcpt <alice@postern.test> args= rcpt_addr=alice@postern.test" "$T/milter.log"
	grep -q "^data i=$id" "$T/milter.log"
	# Our Received header first, then the client's.
	grep -q "^eoh headers=Received,Date,To,From,Subject" "$T/milter.log"
	grep -q "^eom subject=plain chunks=1 .* i=$id" "$T/milter.log"
	[ "$(qtool show "$id" | $PY -c 'import json,sys; print(json.load(sys.stdin)["sender"])')" = sender@example.org ]
}

@test "ESMTP arguments go to the filter; a large body goes in chunks of at most 65535 octets" {
	head -c 300000 /dev/zero | tr '\0' 'x' | fold -w 76 > "$T/big.txt"
	run send sender@example.org alice@postern.test bigone --body @"$T/big.txt" --protocol ESMTP
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	grep -q "^mail <sender@example.org> args=SIZE=[0-9]*" "$T/milter.log" ||
		grep -q "^mail <sender@example.org> args=" "$T/milter.log"
	line=$(grep "^eom subject=bigone" "$T/milter.log")
	echo "$line"
	chunks=$(echo "$line" | sed 's/.*chunks=\([0-9]*\).*/\1/')
	[ "$chunks" -ge 5 ]
	! grep -q "body-chunk-too-big" "$T/milter.log"
}

@test "reject at MAIL and RCPT with the filter's reply; logged as milter-reject" {
	run send reject-mail@example.org alice@postern.test x
	[[ "$output" == *"<** 550 5.7.1 sender refused by the filter"* ]]
	wait_for_log "NOQUEUE: milter-reject: MAIL from unknown\[127.0.0.1\]: 550 5.7.1 sender refused by the filter; from=<reject-mail@example.org> proto=ESMTP helo=<client.example>"
	run send tempfail-mail@example.org alice@postern.test x
	[[ "$output" == *"<** 451 4.7.1 Service unavailable - try again later"* ]]
	run send sender@example.org reject-rcpt@example.net x
	[[ "$output" == *"<** 550 5.7.1 recipient refused by the filter"* ]]
	wait_for_log "NOQUEUE: milter-reject: RCPT from unknown\[127.0.0.1\]: 550 5.7.1 recipient refused by the filter; from=<sender@example.org> to=<reject-rcpt@example.net>"
}

@test "end of message: reject (multi-line), tempfail, discard, accept; nothing queued for the refused" {
	run send sender@example.org alice@postern.test reject
	echo "$output"
	[[ "$output" == *"<** 554-5.7.1 rejected by the"* ]]
	[[ "$output" == *"<** 554 5.7.1 scripted milter"* ]]
	wait_for_log "milter-reject: END-OF-MESSAGE from unknown\[127.0.0.1\]: 5.7.1 rejected by the"
	run send sender@example.org alice@postern.test tempfail
	[[ "$output" == *"<** 451 4.7.1 Service unavailable - try again later"* ]]
	run send sender@example.org alice@postern.test discard
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	discarded=$(queued_id "$output")
	wait_for_log "milter-discard: END-OF-MESSAGE from unknown\[127.0.0.1\]: milter triggers DISCARD action; from=<sender@example.org> to=<alice@postern.test>"
	run send sender@example.org discard-rcpt@example.net rcptdiscard
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	rcpt_discarded=$(queued_id "$output")
	run send sender@example.org alice@postern.test accept
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	accepted=$(queued_id "$output")
	# By queue ID, not by counting the queue, where an earlier test's
	# message may be delivered and removed meanwhile: the accepted one
	# reaches qmgr, the discarded ones never do and leave no file.
	[ -n "$discarded" ] && [ -n "$rcpt_discarded" ] && [ -n "$accepted" ]
	wait_for_log "qmgr\[[0-9]+\]: $accepted: from=<sender@example.org>, size=[0-9]+, nrcpt=1 \(queue active\)"
	! grep -E "qmgr\[[0-9]+\]: ($discarded|$rcpt_discarded): " "$T/log"
	[ -z "$(find "$T/queue" -name "$discarded" -o -name "$rcpt_discarded")" ]
}

@test "every edit is in the queue file before the 250: headers, body, sender, recipients" {
	run send sender@example.org alice@postern.test edit --header "X-Remove-Me: please"
	echo "$output"
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	id=$(queued_id "$output")
	qtool show "$id" > "$T/env.json"
	cat "$T/env.json"
	$PY - "$T/env.json" <<'PY'
import json, sys
env = json.load(open(sys.argv[1]))
assert env["sender"] == "changed@example.org", env["sender"]
rcpts = [r["address"] for r in env["rcpts"]]
assert rcpts == ["carol@localhost", "dave@example.net"], rcpts
assert env["rcpts"][1]["notify"] == "N", env["rcpts"][1]
PY
	qtool content "$id" > "$T/content"
	cat -A "$T/content"
	head -n1 "$T/content" | grep -q "^X-Milter-Top: first"
	grep -q "^Received: from client.example" "$T/content"
	grep -q "^Subject: edited by the filter" "$T/content"
	grep -q "^X-Milter-Added: yes" "$T/content"
	! grep -q "X-Remove-Me" "$T/content"
	# A folded value stays folded, CRLF line ends throughout.
	grep -q $'^X-Folded: one\r$' "$T/content"
	grep -q $'^\ttwo\r$' "$T/content"
	[ "$(tail -n2 "$T/content")" = $'replaced body\r\nsecond line\r' ]
	wait_for_log "$id: milter inet:127.0.0.1:$MILTER_PORT: change sender to <changed@example.org>"
}

@test "quarantine puts the message in hold/ with the reason logged" {
	run send sender@example.org alice@postern.test quarantine
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	id=$(queued_id "$output")
	[ -f "$T/queue/hold/$id" ]
	wait_for_log "$id: milter-hold: END-OF-MESSAGE from unknown\[127.0.0.1\]: milter triggers HOLD action \\(held by the milter test\\)"
	[ "$(qtool show "$id" | $PY -c 'import json,sys; print(json.load(sys.stdin)["attrs"]["quarantine"])')" = "held by the milter test" ]
	run "$POSTERN" -c "$T/conf" queue list
	echo "$output"
	[[ "$output" == *"$id!"* ]]
}

@test "a filter closing mid-body, a malformed reply, a bad reply code, a stall: 451, nothing queued, logged" {
	local who id
	for who in close-body malformed badcode stall; do
		run send "$who@example.org" alice@postern.test x
		echo "$who: $output"
		[[ "$output" == *"<** 451 4.7.1 Service unavailable - try again later"* ]]
	done
	# Nothing queued, followed by queue ID rather than by counting the
	# queue, where an earlier test's message may be delivered and removed
	# meanwhile: the ID of each refused message (its milter-reject line)
	# names no queue file and never reaches qmgr.
	for who in close-body malformed badcode stall; do
		wait_for_log "[0-9A-Za-z]{14}: milter-reject: END-OF-MESSAGE from .*; from=<$who@example.org>"
		id=$(sed -nE "s/.*: ([0-9A-Za-z]{14}): milter-reject: END-OF-MESSAGE from .*; from=<$who@example.org>.*/\1/p" "$T/log" | tail -n1)
		[ -n "$id" ]
		[ -z "$(find "$T/queue" -name "$id" -o -name ".$id")" ]
		! grep -E "qmgr\[[0-9]+\]: $id: " "$T/log"
	done
	wait_for_log "milter inet:127.0.0.1:$BAD_PORT: can't read SMFIC_BODY reply packet header"
	wait_for_log "milter inet:127.0.0.1:$BAD_PORT: malformed SMFIC_BODYEOB reply: unknown command in reply 'Z'"
	wait_for_log "milter inet:127.0.0.1:$BAD_PORT: malformed SMFIC_BODYEOB reply: reply code not 4xx/5xx"
	wait_for_log "milter inet:127.0.0.1:$BAD_PORT: can't read SMFIC_BODYEOB reply packet header: Connection timed out"
	wait_for_log "milter-reject: END-OF-MESSAGE from unknown\[127.0.0.1\]: 4.7.1 Service unavailable - try again later"
	# No temporary file left behind either.
	[ -z "$(queue_stray_temporaries)" ]
}

@test "a filter that cannot be reached: milter_default_action (tempfail, then accept)" {
	dead=$(free_port)
	suite_conf smtpd_milters "inet:127.0.0.1:$dead"
	"$POSTERN" -c "$T/conf" reload
	wait_until "send sender@example.org alice@postern.test x 2>&1 | grep -q '451 4.7.1'" 15
	wait_for_log "milter inet:127.0.0.1:$dead: can't connect"
	suite_conf milter_default_action accept
	"$POSTERN" -c "$T/conf" reload
	wait_until "send sender@example.org alice@postern.test x 2>&1 | grep -q 'queued as'" 15
}

@test "a filter on a Unix socket: the confined network worker reaches it" {
	$PY "$BATS_TEST_DIRNAME/helpers/milter_script.py" "unix:$T/milter.sock" "$T/unix.log" \
		>"$T/unix.out" 2>&1 3>&- &
	echo $! > "$T/unix.pid"
	wait_for_socket "$T/milter.sock" 10
	# connect(2) on a Unix socket needs write permission on it; the
	# worker runs as smtpd_user.
	chmod 666 "$T/milter.sock"
	suite_conf smtpd_milters "unix:$T/milter.sock"
	suite_conf milter_default_action tempfail
	"$POSTERN" -c "$T/conf" reload
	wait_until "send sender@example.org alice@postern.test reject 2>&1 | grep -q '554 5.7.1 scripted milter'" 20
	grep -q "^eom subject=reject" "$T/unix.log"
}
