#!/usr/bin/env bats
# smtpd keeps a checked copy of master's ticket key block and reads the
# block again only when its seq moves (mail/tls_ticket.c). With the keys
# rotated every second: a ticket is refused once its key is two rotations
# old, by every process (one still using its first copy would take it
# forever), and a ticket made after the rotations resumes on any process.

load helpers/suite

setup_file() {
	suite_init
	suite_tls_selfsigned
	suite_conf smtpd_peername_lookup no
	suite_conf smtpd_tls_ticket_rotation 1s
	# Few processes, so that the ones that made the first tickets serve
	# the later connections too: each must see the rotations.
	suite_conf smtpd_processes 2
	suite_conf process_min_idle 1
	suite_start
}

teardown_file() {
	suite_stop
}

@test "TLS tickets after rotations: the old key refused within seconds, a new ticket resumes" {
	run /usr/bin/python3 - "$SMTP_PORT" <<-'PY'
	import smtplib, ssl, sys, time
	ctx = ssl.create_default_context()
	ctx.check_hostname = False
	ctx.verify_mode = ssl.CERT_NONE
	def session(sess=None):
	    s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=5)
	    s.ehlo('client.test')
	    assert s.docmd('STARTTLS')[0] == 220
	    s.sock = ctx.wrap_socket(s.sock, server_hostname='mx.postern.test',
	                             session=sess)
	    s.file = None
	    s.ehlo('client.test')   # reads the TLS 1.3 ticket too
	    reused, new = s.sock.session_reused, s.sock.session
	    s.quit()
	    return reused, new
	_, first = session()
	start = time.monotonic()
	print("at once reused=%s" % session(first)[0])
	# Keys rotate every second: poll until the first ticket is refused.
	refused_after = None
	while time.monotonic() - start < 10:
	    if not session(first)[0]:
	        refused_after = time.monotonic() - start
	        break
	    time.sleep(0.2)
	print("refused after %s s" % refused_after)
	print("old ticket refused=%s" % (refused_after is not None and
	      not any(session(first)[0] for _ in range(6))))
	_, fresh = session()
	print("new ticket reused=%s" % all(session(fresh)[0] for _ in range(6)))
	PY
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"at once reused=True"* ]]
	[[ "$output" == *"old ticket refused=True"* ]]
	[[ "$output" == *"new ticket reused=True"* ]]
}
