#!/usr/bin/env bats
# The pickup service and non_smtpd_milters (issues 13 and 14): mail that
# sendmail drops into maildrop/ is taken into the queue by pickup, through
# real filters: the scripted python3-milter filter of milter.bats
# (tests/helpers/milter_script.py: its actions are chosen by the Subject)
# and, when installed, OpenDKIM set up as its Postfix documentation says
# (the signature verified by python3-dkim). What leaves goes to a real
# SMTP server (qmgr_sink.py as relayhost), bounces included. One suite
# start for the file; the dead-filter test kills the scripted filter and
# so comes last.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common
load helpers/dkim
load helpers/qmgr

PY=/usr/bin/python3

setup_file() {
	file_timer_start
	suite_init
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_conf lmtp_destination "unix:$T/run/nowhere"
	MILTER_PORT=$(free_port)
	$PY "$BATS_TEST_DIRNAME/helpers/milter_script.py" "$MILTER_PORT" "$T/milter.log" \
		>"$T/milter.out" 2>&1 3>&- &
	echo $! > "$T/milter.pid"
	wait_for_port "$MILTER_PORT" 10
	local milters="inet:127.0.0.1:$MILTER_PORT"
	if command -v opendkim >/dev/null; then
		opendkim_start local
		milters="$milters, inet:127.0.0.1:$OPENDKIM_PORT"
	fi
	suite_conf non_smtpd_milters "$milters"
	suite_conf milter_connect_timeout 1s
	suite_conf milter_command_timeout 2s
	suite_conf milter_content_timeout 2s
	suite_start
	wait_for_log "postern/pickup.*starting" 10
	export MILTER_PORT OPENDKIM_PORT
}

teardown_file() {
	pidfile_kill milter opendkim
	sinks_stop || true
	suite_stop || true
	file_timer_report
}

# local_send SUBJECT FROM TO...: a message as cron or mail(1) submits it
local_send() {
	local subject=$1 from=$2
	shift 2
	printf 'From: %s\nTo: %s\nSubject: %s\nX-Remove-Me: gone\n\nbody of %s\n' \
		"$from" "$*" "$subject" "$subject" |
		"$BUILD/sendmail" -C "$T/conf" -f "$from" "$@"
}

# sink_message RCPT: the message file the sink holds for RCPT
sink_message() {
	local env
	env=$(grep -l "^RCPT TO:<$1>" "$T"/sink/msg-*.env 2>/dev/null | head -1)
	[ -n "$env" ] && echo "${env%.env}.eml"
}

@test "sendmail mail goes through the filter: its header and body edits and recipient changes are what leaves" {
	local_send edit alice@example.org alice@postern.test
	wait_for_count "sink_message dave@example.net | grep -c ." 1
	msg=$(sink_message dave@example.net)
	cat "$msg"
	grep -q "^X-Milter-Added: yes" "$msg"
	grep -q "^X-Milter-Top: first" "$msg"
	grep -q "^Subject: edited by the filter" "$msg"
	! grep -q "^X-Remove-Me" "$msg"
	grep -q "^replaced body" "$msg"
	grep -q "^MAIL FROM:<changed@example.org>" "${msg%.eml}.env"
	# alice was deleted, carol (local, LMTP is down here) added.
	! grep -q "alice@postern.test" "${msg%.eml}.env"
	id=$(grep -o 'postern/pickup[^:]*: [0-9A-Za-z]*: uid=[0-9]* from=<alice@example.org>' "$T/log" |
		head -1 | sed 's/.*: \([0-9A-Za-z]*\): uid=.*/\1/')
	[ -n "$id" ]
	# The stages Postfix's cleanup gives a local message: connect as
	# localhost [127.0.0.1], no HELO, the queue ID in the i macro.
	grep -q "^connect host=localhost addr=('127.0.0.1', 0)" "$T/milter.log"
	! grep -q "^helo" "$T/milter.log"
	grep -q "^mail <alice@example.org> args= mail_addr=alice@example.org" "$T/milter.log"
	grep -q "^rcpt <alice@postern.test> args= rcpt_addr=alice@postern.test" "$T/milter.log"
	grep -q "^data i=$id" "$T/milter.log"
	grep -q "^eom subject=edit chunks=1 .* i=$id" "$T/milter.log"
	wait_for_log "$id: milter inet:127.0.0.1:[0-9]*: add recipient <carol@localhost>" 5
	[ "$(queue_count maildrop)" -eq 0 ]
}

@test "OpenDKIM signs local mail as its Postfix setup describes; python3-dkim verifies the signature" {
	[ -n "${OPENDKIM_PORT:-}" ] || skip "opendkim is not installed"
	local_send "signed locally" root@example.org erin@example.net
	wait_for_count "sink_message erin@example.net | grep -c ." 1
	msg=$(sink_message erin@example.net)
	cat "$msg"
	grep -q "^DKIM-Signature:" "$msg"
	$PY - "$msg" "$T/dkim/local.txt" <<'PY'
import re, sys
import dkim
msg = open(sys.argv[1], "rb").read()
record = "".join(re.findall(r'"([^"]*)"', open(sys.argv[2]).read())).encode()
def dnsfunc(name, timeout=5):
    assert name == b"local._domainkey.example.org.", name
    return record
sys.exit(0 if dkim.verify(msg, dnsfunc=dnsfunc) else 1)
PY
}

@test "a filter's reject bounces local mail to its sender with the filter's reply" {
	local_send reject bounceme@example.org frank@example.net
	wait_for_count "sink_message bounceme@example.org | grep -c ." 1
	msg=$(sink_message bounceme@example.org)
	cat "$msg"
	grep -q "^MAIL FROM:<>" "${msg%.eml}.env"
	grep -q "5.7.1" "$msg"
	grep -q "rejected by the" "$msg"
	grep -q "Final-Recipient: rfc822; *frank@example.net" "$msg"
	# The rejected message itself went nowhere.
	[ -z "$(sink_message frank@example.net)" ]
	grep -q "postern/pickup.*milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 5.7.1 rejected by the" "$T/log"
}

@test "a filter's discard drops local mail; its quarantine holds it" {
	local_send discard alice@example.org gina@example.net
	wait_for_log "milter-discard: END-OF-MESSAGE from localhost" 10
	local_send quarantine alice@example.org hank@example.net
	wait_for_log "milter-hold: END-OF-MESSAGE from localhost" 10
	wait_for_count "queue_count hold" 1
	[ "$(queue_count maildrop)" -eq 0 ]
	[ -z "$(sink_message gina@example.net)" ]
}

@test "a tempfail, and a dead filter under milter_default_action=tempfail, keep local mail in maildrop; nothing is lost" {
	local_send tempfail alice@example.org ivan@example.net
	wait_for_log "milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 4" 10
	[ "$(queue_count maildrop)" -eq 1 ]
	# The filter dies: the next message waits too.
	kill -KILL "$(cat "$T/milter.pid")"
	wait_for_exit "$(cat "$T/milter.pid")" 10
	local_send later alice@example.org judy@example.net
	wait_for_log "milter inet:127.0.0.1:$MILTER_PORT: can't connect" 10
	[ "$(queue_count maildrop)" -eq 2 ]
	[ -z "$(sink_message judy@example.net)" ]
	# The filter is back; a connection to pickup's socket retries now
	# (else the next periodic scan would, within 10 s): the waiting
	# message goes through the filter and out, once.
	$PY "$BATS_TEST_DIRNAME/helpers/milter_script.py" "$MILTER_PORT" "$T/milter.log" \
		>>"$T/milter.out" 2>&1 3>&- &
	echo $! > "$T/milter.pid"
	wait_for_port "$MILTER_PORT" 10
	$PY -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.close()' \
		"$T/run/pickup"
	wait_for_count "sink_message judy@example.net | grep -c ." 1 10
	msg=$(sink_message judy@example.net)
	grep -q "^Subject: later" "$msg"
	[ "$(cat "$T"/sink/msg-*.eml | grep -c '^Subject: later')" -eq 1 ]
	# The message the filter itself tempfails is still waiting.
	[ "$(queue_count maildrop)" -eq 1 ]
}
