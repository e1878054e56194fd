#!/usr/bin/env bats
# Notifications about REQUIRETLS mail (RFC 8689 5): a bounce or delay
# notice about a message that came with REQUIRETLS is queued with
# REQUIRETLS itself (the Q record), returns only the header section
# whatever RET asked, and is then held to REQUIRETLS by deliver: over
# plain text it is never sent. The peer is tests/helpers/qmgr_sink.py,
# a plain SMTP server without STARTTLS that stores whatever it gets;
# dead.test is a port nobody listens on. One suite start.

load helpers/suite
load helpers/qmgr

QUEUE_PY="$BATS_TEST_DIRNAME/helpers/smtp_queue.py"

setup() {
	suite_init
	SECONDS=0
}

teardown() {
	sinks_stop
	suite_stop
	echo "# $BATS_TEST_DESCRIPTION: ${SECONDS}s" >&3
}

# send FROM TO: one message over STARTTLS with REQUIRETLS and RET=FULL;
# prints its queue ID.
send() {
	/usr/bin/python3 - "$SMTP_PORT" "$1" "$2" <<'PY'
import re, smtplib, ssl, sys
port, sender, rcpt = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
s.ehlo("client.test")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s.starttls(context=ctx)
s.ehlo("client.test")
assert s.has_extn("requiretls")
code, text = s.docmd("MAIL FROM:<%s> REQUIRETLS RET=FULL" % sender)
assert code == 250, (code, text)
code, text = s.docmd("RCPT TO:<%s>" % rcpt)
assert code == 250, (code, text)
msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: secret plans\r\n\r\n"
       "SECRET-BODY-LINE\r\n" % (sender, rcpt))
code, text = s.data(msg.encode())
m = re.search(r"queued as ([0-9A-Za-z]{14})", text.decode())
assert code == 250 and m, (code, text)
print(m.group(1))
s.quit()
PY
}

# The notification queued about message $1: its ID.
notice_of() {
	sed -n "s/.*$1: sender $2 notification: \([0-9A-Za-z]*\) (REQUIRETLS, headers only)$/\1/p" "$T/log"
}

@test "REQUIRETLS mail: its bounce and delay notice are queued with REQUIRETLS, headers only, never sent in clear" {
	suite_tls_selfsigned
	sink_and_dead_destination
	suite_conf delay_warning_time 1s
	suite_conf smtpd_processes 4
	suite_start

	# 1. The message cannot go to the plain relay (5.7.10); its bounce
	# is for dead.test, where it waits.
	local q1 b1
	q1=$(send a@dead.test hard@example.net)
	wait_for_log "$q1: to=<hard@example.net>, .*dsn=5.7.10, status=bounced"
	wait_for_log "$q1: sender non-delivery notification: .* \(REQUIRETLS, headers only\)$"
	b1=$(notice_of "$q1" non-delivery)
	wait_for_log "$b1: to=<a@dead.test>, .*status=deferred"
	run /usr/bin/python3 "$QUEUE_PY" show "$T/queue" "$b1"
	echo "$output"
	[[ "$output" == *'"requiretls": true'* ]]
	[[ "$output" == *'"kind": "BOUNCE"'* ]]
	run /usr/bin/python3 "$QUEUE_PY" content "$T/queue" "$b1"
	[[ "$output" == *"Content-Type: text/rfc822-headers"* ]]
	[[ "$output" == *"Subject: secret plans"* ]]
	[[ "$output" != *"SECRET-BODY-LINE"* ]]
	[[ "$output" != *"message/rfc822"* ]]
	# Its text says what is attached, and why not the body.
	[[ "$output" == *"The header section of your message is attached."$'\r\n'"Its body is not: it was sent with REQUIRETLS."* ]]
	[[ "$output" != *"A copy of your message"* ]]

	# 2. A bounce whose own destination is the plain relay: refused
	# there as its original was (5.7.10), never sent; the postmaster
	# copy keeps REQUIRETLS and headers only.
	local q2 b2
	q2=$(send b@example.org hard2@example.net)
	wait_for_log "$q2: sender non-delivery notification: .* \(REQUIRETLS, headers only\)$"
	b2=$(notice_of "$q2" non-delivery)
	wait_for_log "$b2: to=<b@example.org>, .*dsn=5.7.10, status=bounced \(TLS is required, but .*REQUIRETLS\)"
	wait_for_log "$b2: postmaster non-delivery notification: .* \(REQUIRETLS, headers only\)$"

	# 3. A delay notice about REQUIRETLS mail: the same rules.
	local q3 d3
	q3=$(send a@dead.test slow@dead.test)
	wait_for_log "$q3: sender delay notification: .* \(REQUIRETLS, headers only\)$" 15
	d3=$(notice_of "$q3" delay)
	run /usr/bin/python3 "$QUEUE_PY" show "$T/queue" "$d3"
	echo "$output"
	[[ "$output" == *'"requiretls": true'* ]]
	[[ "$output" == *'"kind": "DELAY"'* ]]

	# The plain relay got nothing at all: neither the messages nor
	# their notifications went out in clear.
	[ "$(sink_count sink)" -eq 0 ]
	! grep -E "relay=[^ ]*:$sink_PORT, .*status=sent" "$T/log"
}
