#!/usr/bin/env bats
# Bounces and other delivery status notifications (RFC 3464, RFC 3461):
# written by qmgr, delivered like any mail, parsed here with Python's
# email package. The peer is tests/helpers/qmgr_sink.py, which refuses
# local parts "hard*" (550) and "soft*" (451) and accepts the rest.
# test-runner: long

load helpers/suite
load helpers/qmgr

DSN_PARSE="$BATS_TEST_DIRNAME/helpers/dsn_parse.py"

setup() {
	suite_init
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
}

teardown() {
	sinks_stop
	suite_stop
}

# The stored message whose envelope sender is <> (the notification).
notification() {
	local env
	env=$(grep -l '^MAIL FROM:<>' "$T"/sink/*.env 2>/dev/null | head -n1)
	[ -n "$env" ] && echo "${env%.env}.eml"
}

notifications() {
	grep -l '^MAIL FROM:<>' "$T"/sink/*.env 2>/dev/null | grep -c . || true
}

@test "one 5xx recipient among good ones bounces alone, as RFC 3464" {
	suite_start
	send_mail --from sender@example.org \
		--to good1@example.net,hard1@example.net,good2@example.net \
		--header "Subject: mixed fortunes"
	wait_for_count notifications 1 15
	wait_for_count "log_count ': removed'" 2
	# The original reached the two good recipients, in one transaction.
	orig=$(grep -l '^MAIL FROM:<sender@example.org>' "$T"/sink/*.env)
	grep -q '^RCPT TO:<good1@example.net>' "$orig"
	grep -q '^RCPT TO:<good2@example.net>' "$orig"
	! grep -q 'hard1' "$orig"
	b=$(notification)
	grep -q '^RCPT TO:<sender@example.org>' "${b%.eml}.env"
	run python3 "$DSN_PARSE" "$b"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^content-type=multipart/report$'
	echo "$output" | grep -q '^report-type=delivery-status$'
	echo "$output" | grep -q '^reporting-mta=dns; mx.postern.test$'
	echo "$output" | grep -q '^auto-submitted=auto-replied$'
	[ "$(echo "$output" | grep -c '^rcpt=')" -eq 1 ]
	echo "$output" | grep -Eq '^rcpt=<hard1@example.net> action=failed status=5.1.1 remote=<dns; (sink.test|127.0.0.1)> diag=<smtp; 550 5.1.1 <hard1>: user unknown>'
	# No RET: a small message comes back whole.
	echo "$output" | grep -q '^returned=message/rfc822$'
	echo "$output" | grep -q '^returned-subject=mixed fortunes$'
	echo "$output" | grep -q '^returned-body=yes$'
	echo "$output" | grep -qx 'says-attached=A copy of your message is attached.'
	grep -Eq ': sender non-delivery notification: [0-9A-Za-z]{14}$' "$T/log"
	[ "$(queue_count)" -eq 0 ]
}

@test "after maximal_queue_lifetime the remaining recipients bounce" {
	suite_conf maximal_queue_lifetime 3s
	suite_start
	send_mail --from sender@example.org \
		--to soft1@example.net,fine@example.net
	wait_for_count "sink_count sink" 1
	wait_for_count notifications 1 20
	wait_for_log 'status=expired, returned to sender' 5
	run python3 "$DSN_PARSE" "$(notification)"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '^rcpt=')" -eq 1 ]
	echo "$output" | grep -q '^rcpt=<soft1@example.net> action=failed status=5.4.7 .*diag=<X-Postern; delivery time expired; last error: 451 4.2.0 <soft1>: mailbox busy>'
	wait_for_count "log_count ': removed'" 2
	[ "$(queue_count)" -eq 0 ]
}

@test "a delay notice goes out once after delay_warning_time" {
	suite_conf delay_warning_time 2s
	suite_start
	send_mail --from sender@example.org --to soft2@example.net
	wait_for_count notifications 1 20
	wait_for_log 'sender delay notification: ' 5
	run python3 "$DSN_PARSE" "$(notification)"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^subject=Delayed Mail'
	echo "$output" | grep -q '^rcpt=<soft2@example.net> action=delayed status=4.2.0'
	# Only the headers come back with a delay notice, and it says so.
	echo "$output" | grep -q '^returned=text/rfc822-headers$'
	echo "$output" | grep -qx 'says-attached=The header section of your message is attached.'
	# The message stays queued; a few more retries send no second notice.
	wait_for_count "log_count 'to=<soft2@example.net>.*status=deferred'" 4
	[ "$(notifications)" -eq 1 ]
	[ "$(log_count 'delay notification')" -eq 1 ]
}

@test "NOTIFY, RET, ENVID and ORCPT are honoured (RFC 3461)" {
	suite_start
	python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("client.test")
msg = (b"From: sender@example.org\r\nTo: several@example.net\r\n"
       b"Subject: dsn parameters\r\n\r\nbody line\r\n")
s.mail("sender@example.org", ["RET=HDRS", "ENVID=env+2Dcheck42"])
for rcpt, opts in (("hardnever@example.net", ["NOTIFY=NEVER"]),
                   ("hardfail@example.net",
                    ["NOTIFY=FAILURE", "ORCPT=rfc822;orig@example.net"]),
                   ("happy@example.net", ["NOTIFY=SUCCESS"])):
    code, _ = s.rcpt(rcpt, opts)
    assert code == 250, (rcpt, code)
code, _ = s.data(msg)
assert code == 250, code
s.quit()
PY
	# One bounce (hardfail only). happy asked for NOTIFY=SUCCESS, but the
	# sink announces DSN and got the parameters: it reports, not us
	# (RFC 3461 4.1, 5.2).
	wait_for_count notifications 1 15
	wait_for_count "log_count ': removed'" 2
	grep -q 'to=<happy@example.net>.*status=sent' "$T/log"
	for env in $(grep -l '^MAIL FROM:<>' "$T"/sink/*.env); do
		python3 "$DSN_PARSE" "${env%.env}.eml" >> "$T/dsns"
	done
	cat "$T/dsns"
	! grep -q 'hardnever' "$T/dsns"
	grep -q '^rcpt=<hardfail@example.net> action=failed status=5.1.1 orcpt=<rfc822;orig@example.net>' "$T/dsns"
	[ "$(grep -c 'happy@example.net' "$T/dsns")" -eq 0 ]
	grep -q 'NOTIFY=SUCCESS' $(grep -l 'happy@example.net' "$T"/sink/*.env)
	[ "$(grep -c '^envid=env-check42$' "$T/dsns")" -eq 1 ]
	# RET=HDRS: headers only, even in the bounce.
	[ "$(grep -c '^returned=text/rfc822-headers$' "$T/dsns")" -eq 1 ]
	grep -q '^returned-subject=dsn parameters$' "$T/dsns"
	# The text says so, and why: not "your message is attached".
	grep -qx 'says-attached=The header section of your message is attached. Its body is not: the headers only were asked for (RET=HDRS).' "$T/dsns"
}

@test "mail from <> is never bounced back; postmaster gets one copy, once" {
	suite_start
	python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.sendmail("", ["hardnull@example.net"],
           b"From: MAILER-DAEMON@example.org\r\nSubject: a bounce\r\n\r\nx\r\n")
s.quit()
PY
	# The failure goes to postmaster (local, no mailbox here: it fails
	# too), and that failure is dropped instead of bouncing again.
	wait_for_log 'postmaster non-delivery notification: ' 15
	wait_for_log 'undeliverable postmaster notification discarded' 15
	wait_for_count "log_count ': removed'" 2
	[ "$(notifications)" -eq 0 ]
	[ "$(log_count 'non-delivery notification')" -eq 1 ]
	[ "$(queue_count)" -eq 0 ]
}

@test "without RET a large message comes back as headers only" {
	suite_start
	python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys
body = b"".join(b"line %05d of a long message\r\n" % i for i in range(3000))
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.sendmail("sender@example.org", ["hardbig@example.net"],
           b"From: sender@example.org\r\nSubject: big one\r\n\r\n" + body)
s.quit()
PY
	wait_for_count notifications 1 15
	b=$(notification)
	run python3 "$DSN_PARSE" "$b"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^returned=text/rfc822-headers$'
	echo "$output" | grep -q '^returned-subject=big one$'
	echo "$output" | grep -qx 'says-attached=The header section of your message is attached. Its body is not: the message is too large to return.'
	! grep -q 'line 00001 of a long message' "$b"
}

@test "an SMTPUTF8 message gets an RFC 6533 report, sent with SMTPUTF8" {
	suite_start
	python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("client.test")
msg = ("From: jörg@example.org\r\nSubject: grüße\r\n\r\nhallo\r\n").encode()
s.mail("jörg@example.org", ["SMTPUTF8", "BODY=8BITMIME"])
code, _ = s.rcpt("hardümlaut@example.net")
assert code == 250, code
code, _ = s.data(msg)
assert code == 250, code
s.quit()
PY
	wait_for_count notifications 1 15
	b=$(notification)
	grep -q '^MAIL FROM:<> .*SMTPUTF8' "${b%.eml}.env"
	grep -q '^RCPT TO:<jörg@example.org>' "${b%.eml}.env"
	run python3 "$DSN_PARSE" "$b"
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '^report-type=global-delivery-status$'
	echo "$output" | grep -q '^rcpt=<hardümlaut@example.net> action=failed status=5.1.1'
	echo "$output" | grep -q '^returned=message/global$'
	echo "$output" | grep -q '^returned-subject=grüße$'
}

@test "NOTIFY=SUCCESS through a next hop without DSN: postern reports relayed" {
	# The sink does not announce DSN: the parameters stop here, so the
	# sender learns of the relay from us (RFC 3461 5.2.2.2).
	touch "$T/sink/nodsn"
	suite_start
	python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo("client.test")
s.mail("sender@example.org", ["ENVID=nodsn1"])
code, _ = s.rcpt("happy2@example.net", ["NOTIFY=SUCCESS"])
assert code == 250, code
code, _ = s.data(b"Subject: no dsn hop\r\n\r\nbody\r\n")
assert code == 250, code
s.quit()
PY
	wait_for_count notifications 1 15
	for env in $(grep -l '^MAIL FROM:<>' "$T"/sink/*.env); do
		python3 "$DSN_PARSE" "${env%.env}.eml" >> "$T/dsns"
	done
	cat "$T/dsns"
	grep -q '^rcpt=<happy2@example.net> action=relayed status=2.0.0' "$T/dsns"
	[ "$(cat "$T"/sink/*.env | grep -c 'NOTIFY=')" -eq 0 ]
}
