#!/usr/bin/env bats
# deliver on the full path: swaks -> smtpd -> qmgr -> deliver -> real peers
# (Postfix's smtp-sink, dnsmasq for MX records), all started by master.

load helpers/suite
load helpers/peers

setup() {
	peers_setup 10s 5s
	SINK_PORT=$(free_port)
}

teardown() {
	peers_teardown
}

@test "two messages, one connection, MAIL/RCPT/DATA pipelined" {
	start_sink sink 127.0.0.1:$SINK_PORT
	CAPTURE_PORT=$(free_port)
	start_capture "$CAPTURE_PORT" "$SINK_PORT"
	suite_conf relayhost "[127.0.0.1]:$CAPTURE_PORT"
	# One delivery at a time, so both messages meet the same session.
	suite_conf initial_destination_concurrency 1
	suite_conf destination_concurrency_limit 1
	suite_start
	send_mail --from a@example.org --to b@example.net --header "Subject: one"
	send_mail --from a@example.org --to c@example.net --header "Subject: two"
	wait_for_log 'to=<b@example.net>, relay=127.0.0.1\[127.0.0.1\]:[0-9]+, .*status=sent' 20
	wait_for_log 'to=<c@example.net>, relay=127.0.0.1\[127.0.0.1\]:[0-9]+, .*status=sent' 20
	grep -Eq 'to=<[bc]@example.net>, relay=[^ ]+, conn_use=2, ' "$T/log"
	[ "$(grep -c 'smtp-sink: connect' "$T/sink.out")" -eq 1 ]
	grep -F "MAIL FROM:<a@example.org>" "$T/capture" | grep -F "RCPT TO:<b@example.net>\\r\\nDATA\\r\\n'"
}

@test "the preferred MX is down: the mail goes to the second" {
	start_dnsmasq --mx-host=two.test,mx1.two.test,10 \
		--mx-host=two.test,mx2.two.test,20 \
		--host-record=mx1.two.test,127.0.0.2 \
		--host-record=mx2.two.test,127.0.0.1
	start_sink sink 127.0.0.1:$SINK_PORT
	printf 'two.test smtp:two.test:%s\n' "$SINK_PORT" > "$T/conf/transport"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/transport"
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_start
	send_mail --from '<>' --to b@two.test
	wait_for_log "to=<b@two.test>, relay=mx2.two.test\[127.0.0.1\]:$SINK_PORT, .*dsn=2.0.0, status=sent" 20
	grep -q "connect to mx1.two.test\[127.0.0.2\]:$SINK_PORT: Connection refused" "$T/log"
}

@test "null MX bounces at once" {
	start_dnsmasq --mx-host=null.test,.,0
	suite_start
	send_mail --from '<>' --to b@null.test
	wait_for_log 'to=<b@null.test>, relay=none, .*dsn=5.1.10, status=bounced \(Domain null.test does not accept mail \(nullMX\)\)' 20
}

@test "UTF-8 mail to a peer without SMTPUTF8 bounces" {
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_conf relayhost "[127.0.0.1]:$SINK_PORT"
	suite_start
	run python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.ehlo('client.example')
if not s.has_extn('smtputf8'):
    print('smtpd does not offer SMTPUTF8'); sys.exit(2)
msg = 'Subject: grüße\r\n\r\nhallo\r\n'.encode('utf-8')
s.sendmail('', ['jörg@example.net'], msg, mail_options=['SMTPUTF8'])
s.quit()
PY
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for_log "dsn=5.6.7, status=bounced \(SMTPUTF8 is required, but was not offered by host 127.0.0.1\[127.0.0.1\]:$SINK_PORT\)" 20
	[ "$(grep -c 'smtp-sink: MAIL FROM' "$T/sink.out")" -eq 0 ]
}
