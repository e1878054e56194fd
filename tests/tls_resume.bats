#!/usr/bin/env bats
# Server-side TLS session resumption (issue 16): smtpd processes share
# the session ticket keys master makes (mail/tls_ticket.h), so a client
# resumes on another smtpd process than the one that gave the ticket.
# The client is Python's ssl module; the first connection is held open
# while the second is made, so the two are served by different processes.

load helpers/suite

setup() {
	suite_init
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-days 2 -subj /CN=mx.postern.test -keyout "$T/conf/key.pem" \
		-out "$T/conf/cert.pem" 2>/dev/null
	chmod 600 "$T/conf/key.pem"
	suite_conf tls_cert_file "$T/conf/cert.pem"
	suite_conf tls_key_file "$T/conf/key.pem"
}

teardown() {
	suite_stop
}

# resume PORT: two STARTTLS sessions, the second with the first's ticket.
resume() {
	/usr/bin/python3 - "$1" <<-'PY'
	import smtplib, ssl, sys
	ctx = ssl.create_default_context()
	ctx.check_hostname = False
	ctx.verify_mode = ssl.CERT_NONE
	def session(sess=None):
	    s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
	    s.ehlo('client.test')
	    code, _ = s.docmd('STARTTLS')
	    assert code == 220, code
	    s.sock = ctx.wrap_socket(s.sock, server_hostname='mx.postern.test',
	                             session=sess)
	    s.file = None
	    s.ehlo('client.test')   # reads the TLS 1.3 ticket too
	    return s
	first = session()
	print('first reused=%s %s' % (first.sock.session_reused, first.sock.version()))
	ticket = first.sock.session
	second = session(ticket)   # first still open: another process
	print('second reused=%s' % second.sock.session_reused)
	# A resumed session must leave with a fresh ticket: a TLS 1.3
	# client uses each ticket once (RFC 8446 C.4), so a sender's next
	# connection resumes from the second one's ticket.
	renewed = second.sock.session
	print('renewed=%s' % (renewed is not None and renewed.id != ticket.id))
	third = session(renewed)
	print('third reused=%s' % third.sock.session_reused)
	third.quit()
	second.quit()
	first.quit()
	PY
}

@test "TLS tickets: a session made on one smtpd process resumes on another" {
	suite_start
	run resume "$SMTP_PORT"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"first reused=False TLSv1.3"* ]]
	[[ "$output" == *"second reused=True"* ]]
	[[ "$output" == *"renewed=True"* ]]
	[[ "$output" == *"third reused=True"* ]]
	wait_for_log 'Anonymous TLS connection reused from localhost\[127.0.0.1\]: TLSv1.3 with cipher '
	# At least two smtpd processes logged them.
	local pids
	pids=$(grep -E 'TLS connection (established|reused) from' "$T/log" |
		sed -E 's/.*smtpd\[([0-9]+)\].*/\1/' | sort -u | wc -l)
	[ "$pids" -ge 2 ]
}

@test "TLS tickets: none without master's keys (smtpd_tls_ticket_rotation = 0)" {
	suite_conf smtpd_tls_ticket_rotation 0
	suite_start
	run resume "$SMTP_PORT"
	echo "$output"
	[[ "$output" == *"second reused=False"* ]]
}

# keybits PORT SIGALGS: the size of the server key a client offering only
# SIGALGS is given, as openssl s_client reports it.
keybits() {
	timeout 20 openssl s_client -starttls smtp -connect "127.0.0.1:$1" \
		-sigalgs "$2" </dev/null 2>/dev/null |
		sed -n 's/^Server public key is \([0-9]*\) bit.*/\1/p'
}

@test "TLS: an ECDSA certificate beside the RSA one (tls_eccert_file), each to the clients that ask for it" {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.postern.test \
		-keyout "$T/conf/rsa.key" -out "$T/conf/rsa.pem" 2>/dev/null
	suite_conf tls_cert_file "$T/conf/rsa.pem"
	suite_conf tls_key_file "$T/conf/rsa.key"
	suite_conf tls_eccert_file "$T/conf/cert.pem"
	suite_conf tls_eckey_file "$T/conf/key.pem"
	run "$POSTERN" -c "$T/conf" check
	echo "$output"
	[ "$status" -eq 0 ]
	suite_start
	[ "$(keybits "$SMTP_PORT" 'ECDSA+SHA256')" = 256 ]
	[ "$(keybits "$SMTP_PORT" 'rsa_pss_rsae_sha256:RSA+SHA256')" = 2048 ]
	# A key that is not the certificate's stops the check with both names.
	suite_conf tls_eckey_file "$T/conf/rsa.key"
	run "$POSTERN" -c "$T/conf" check
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"does not match certificate $T/conf/cert.pem"* ]]
}
