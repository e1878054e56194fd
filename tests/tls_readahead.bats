#!/usr/bin/env bats
# smtpd reads ahead under TLS (mail/tls.c: one read(2) may bring several
# TLS records): records it already holds must be served without waiting
# on the socket. A client (helpers/tls_flights.py) sends its handshake
# Finished and EHLO in one segment, MAIL/RCPT/DATA as three records in
# one segment, and the message as 21 records in one; each reply must come
# within 5 s, and the message must be queued.

load helpers/suite
load helpers/smtp_common

setup_file() {
	suite_init
	smtp_maps
	suite_tls_selfsigned
	suite_conf smtpd_peername_lookup no
	suite_start
}

teardown_file() {
	suite_stop
}

@test "read ahead under TLS: records held by OpenSSL are served, the message is queued" {
	run /usr/bin/python3 "$HELPERS/tls_flights.py" "$SMTP_PORT" alice@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	echo "$output" | grep -Eq '^TLS TLSv1\.3 '
	[ "$(echo "$output" | sed -n '/^TLS /,$p' | grep -c '^250-PIPELINING$')" -eq 1 ]
	id=$(queued_id "$output")
	[ -n "$id" ]
	echo "$output" | grep -qx '221 2.0.0 Bye'
	wait_for_log "Anonymous TLS connection established from unknown\\[127.0.0.1\\]: TLSv1.3 "
}
