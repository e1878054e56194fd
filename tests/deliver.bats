#!/usr/bin/env bats
# deliver: the SMTP and LMTP client against real peers (Postfix's
# smtp-sink, dnsmasq), driven through deliver's own socket the way qmgr
# drives it (tests/helpers/deliver-job), with deliver started by master.
# test-runner: long

load helpers/suite
load helpers/peers

setup() {
	peers_setup 10s 5s
	SINK_PORT=$(free_port)
}

teardown() {
	peers_teardown
}

# The log line of one recipient, per doc/logging.md.
log_line_re() {	# ADDRESS DSN STATUS
	printf '%s' "postern/deliver\[[0-9]+\]: T[0-9]+: to=<$1>, relay=[^ ]+, (conn_use=[0-9]+, )?delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=$2, status=$3 "
}

@test "delivers to smtp-sink, pipelined, one log line per recipient" {
	start_sink sink 127.0.0.1:$SINK_PORT
	CAPTURE_PORT=$(free_port)
	start_capture "$CAPTURE_PORT" "$SINK_PORT"
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$CAPTURE_PORT" \
		--from a@example.org --to b@example.net --to c@example.net
	[ "$status" -eq 0 ]
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0 250 2.0.0 Ok"* ]]
	[[ "$output" == *"rcpt=1 S 2.0.0 250 2.0.0 Ok"* ]]
	[[ "$output" == *"relay=127.0.0.1[127.0.0.1]:$CAPTURE_PORT"* ]]
	[[ "$output" == *"remote_mta=smtp-sink"* ]]
	[[ "$output" == *"nexthop_status=ok"* ]]
	wait_for_log "$(log_line_re b@example.net 2.0.0 sent)\(250 2.0.0 Ok\)"
	wait_for_log "$(log_line_re c@example.net 2.0.0 sent)"
	# PIPELINING: MAIL, both RCPTs and DATA left in one write.
	grep -F "MAIL FROM:<a@example.org>\\r\\nRCPT TO:<b@example.net>\\r\\nRCPT TO:<c@example.net>\\r\\nDATA\\r\\n'" "$T/capture"
	grep -q 'EHLO mx.postern.test' "$T/sink.out"
}

@test "without PIPELINING each command waits for its reply" {
	start_sink sink -p 127.0.0.1:$SINK_PORT
	CAPTURE_PORT=$(free_port)
	start_capture "$CAPTURE_PORT" "$SINK_PORT"
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$CAPTURE_PORT" \
		--from a@example.org --to b@example.net --to c@example.net
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	[[ "$output" == *"rcpt=1 S 2.0.0"* ]]
	grep -F "b'MAIL FROM:<a@example.org>\\r\\n'" "$T/capture"
	grep -F "b'RCPT TO:<c@example.net>\\r\\n'" "$T/capture"
	grep -F "b'DATA\\r\\n'" "$T/capture"
}

@test "two jobs, one connection; the idle connection is closed with QUIT" {
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --repeat 2 \
		--from a@example.org --to b@example.net
	echo "$output"
	[ "$(grep -c 'rcpt=0 S 2.0.0' <<<"$output")" -eq 2 ]
	wait_for_log 'to=<b@example.net>, relay=127.0.0.1\[127.0.0.1\]:[0-9]+, conn_use=2, '
	[ "$(grep -c 'smtp-sink: connect' "$T/sink.out")" -eq 1 ]
	[ "$(grep -c 'smtp-sink: MAIL FROM' "$T/sink.out")" -eq 2 ]
	# About 5 s idle, then QUIT.
	wait_for_log 'smtp-sink: QUIT' 15 "$T/sink.out"
	grep -q 'smtp-sink: QUIT' "$T/sink.out"
}

@test "a job for another nexthop closes the cached connection" {
	start_sink sink 127.0.0.1:$SINK_PORT
	SINK2_PORT=$(free_port)
	start_sink sink2 127.0.0.1:$SINK2_PORT
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	run deliver_job --nexthop "[127.0.0.1]:$SINK2_PORT" --from a@example.org \
		--to b@example.net
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	# Each deliver-job run is a new qmgr connection: the session of the
	# first ends with it, and the second went to the other sink.
	grep -q 'smtp-sink: QUIT' "$T/sink.out"
	grep -q 'smtp-sink: MAIL FROM' "$T/sink2.out"
}

@test "MX: the preferred host is down, the second one gets the mail" {
	start_dnsmasq --mx-host=two.test,mx1.two.test,10 \
		--mx-host=two.test,mx2.two.test,20 \
		--host-record=mx1.two.test,127.0.0.2 \
		--host-record=mx2.two.test,127.0.0.1
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "two.test:$SINK_PORT" --from a@example.org \
		--to b@two.test
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	[[ "$output" == *"relay=mx2.two.test[127.0.0.1]:$SINK_PORT"* ]]
	wait_for_log "connect to mx1.two.test\[127.0.0.2\]:$SINK_PORT: Connection refused; trying the next host"
	wait_for_log "$(log_line_re b@two.test 2.0.0 sent)"
}

@test "MX: a domain without MX gets mail at its address (implicit MX)" {
	start_dnsmasq --host-record=plain.test,127.0.0.1
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "plain.test:$SINK_PORT" --from a@example.org \
		--to b@plain.test
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	[[ "$output" == *"relay=plain.test[127.0.0.1]:$SINK_PORT"* ]]
}

@test "null MX bounces (RFC 7505)" {
	start_dnsmasq --mx-host=null.test,.,0
	suite_start
	run deliver_job --nexthop null.test --from a@example.org --to b@null.test
	echo "$output"
	[[ "$output" == *"rcpt=0 B 5.1.10 Domain null.test does not accept mail (nullMX)"* ]]
	[[ "$output" == *"relay=none"* ]]
	wait_for_log "$(log_line_re b@null.test 5.1.10 bounced)"
}

@test "a domain that does not exist bounces; a dead DNS server defers" {
	start_dnsmasq --host-record=plain.test,127.0.0.1
	suite_start
	run deliver_job --nexthop nosuch.test --from a@example.org --to b@nosuch.test
	echo "$output"
	[[ "$output" == *"rcpt=0 B 5.4.4 Host or domain name not found"* ]]
	suite_stop
	peers_stop
	suite_init	# its dns_servers: a loopback port where nothing answers
	suite_start
	run deliver_job --nexthop plain.test --from a@example.org --to b@plain.test
	echo "$output"
	[[ "$output" == *"rcpt=0 D 4.4.3 "* ]]
	[[ "$output" == *"nexthop_status=down"* ]]
}

@test "all hosts refuse the connection: deferred, nexthop down" {
	start_dnsmasq --mx-host=down.test,mx1.down.test,10 \
		--mx-host=down.test,mx2.down.test,20 \
		--host-record=mx1.down.test,127.0.0.2 \
		--host-record=mx2.down.test,127.0.0.3
	suite_start
	run deliver_job --nexthop "down.test:$SINK_PORT" --from a@example.org \
		--to b@down.test
	echo "$output"
	[[ "$output" == *"rcpt=0 D 4.4.1 connect to mx2.down.test[127.0.0.3]:$SINK_PORT: Connection refused"* ]]
	[[ "$output" == *"nexthop_status=down"* ]]
	[[ "$output" == *"relay=none"* ]]
	[[ "$output" != *"remote_mta="* ]]
	wait_for_log "$(log_line_re b@down.test 4.4.1 deferred)\(connect to mx2"
}

@test "a 5xx greeting at the first MX moves on to the next" {
	start_dnsmasq --mx-host=grumpy.test,mx1.grumpy.test,10 \
		--mx-host=grumpy.test,mx2.grumpy.test,20 \
		--host-record=mx1.grumpy.test,127.0.0.2 \
		--host-record=mx2.grumpy.test,127.0.0.1
	start_sink grumpy -f connect 127.0.0.2:$SINK_PORT
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "grumpy.test:$SINK_PORT" --from a@example.org \
		--to b@grumpy.test
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "host mx1.grumpy.test\[127.0.0.2\]:$SINK_PORT refused to talk to me: 5"
}

@test "a 4xx to MAIL FROM at the first MX moves on to the next; the last host's answer stands" {
	start_dnsmasq --mx-host=busy.test,mx1.busy.test,10 \
		--mx-host=busy.test,mx2.busy.test,20 \
		--host-record=mx1.busy.test,127.0.0.2 \
		--host-record=mx2.busy.test,127.0.0.1 \
		--mx-host=allbusy.test,mx1.busy.test,10 \
		--mx-host=allbusy.test,mx3.busy.test,20 \
		--host-record=mx3.busy.test,127.0.0.3
	# mx1 speaks plain SMTP (no PIPELINING), mx3 pipelines: both ways.
	start_sink busy -e -r mail 127.0.0.2:$SINK_PORT
	start_sink busy3 -r mail 127.0.0.3:$SINK_PORT
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "busy.test:$SINK_PORT" --from a@example.org \
		--to b@busy.test --to c@busy.test
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	[[ "$output" == *"rcpt=1 S 2.0.0"* ]]
	wait_for_log "host mx1.busy.test\[127.0.0.2\]:$SINK_PORT said: 4[0-9][0-9] .* \(in reply to MAIL FROM command\); trying the next host"
	grep -q 'MAIL FROM:<a@example.org>' "$T/busy.out"
	[ "$(grep -c 'smtp-sink: DATA' "$T/busy.out")" -eq 0 ]
	# Every host busy: the mail waits, it does not bounce.
	run deliver_job --nexthop "allbusy.test:$SINK_PORT" \
		--from a@example.org --to b@allbusy.test
	echo "$output"
	[[ "$output" == *"rcpt=0 D 4."* ]]
	grep -q 'MAIL FROM:<a@example.org>' "$T/busy3.out"
}

@test "a 4xx to RCPT or to the end of data at the first MX: those recipients go to the next" {
	start_dnsmasq --mx-host=rcptsoft.test,mx1.rcptsoft.test,10 \
		--mx-host=rcptsoft.test,mx2.rcptsoft.test,20 \
		--host-record=mx1.rcptsoft.test,127.0.0.4 \
		--host-record=mx2.rcptsoft.test,127.0.0.1 \
		--mx-host=dotsoft.test,mx1.dotsoft.test,10 \
		--mx-host=dotsoft.test,mx2.rcptsoft.test,20 \
		--host-record=mx1.dotsoft.test,127.0.0.5
	start_sink rcptsoft -r rcpt 127.0.0.4:$SINK_PORT
	start_sink dotsoft -r . 127.0.0.5:$SINK_PORT
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "rcptsoft.test:$SINK_PORT" --from a@example.org \
		--to b@rcptsoft.test --to c@rcptsoft.test
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	[[ "$output" == *"rcpt=1 S 2.0.0"* ]]
	wait_for_log "host mx1.rcptsoft.test\[127.0.0.4\]:$SINK_PORT said: 4[0-9][0-9] .* \(in reply to RCPT TO command\); trying the next host"
	run deliver_job --nexthop "dotsoft.test:$SINK_PORT" --from a@example.org \
		--to b@dotsoft.test
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	wait_for_log "host mx1.dotsoft.test\[127.0.0.5\]:$SINK_PORT said: 4[0-9][0-9] .* \(in reply to end of DATA command\); trying the next host"
	[ "$(grep -c 'smtp-sink: DATA' "$T/sink.out")" -eq 2 ]
}

@test "a cached connection's host says 4xx: the mail goes on to the other MX, not back to it" {
	start_dnsmasq --mx-host=flaky.test,mx1.flaky.test,10 \
		--mx-host=flaky.test,mx2.flaky.test,20 \
		--host-record=mx1.flaky.test,127.0.0.2 \
		--host-record=mx2.flaky.test,127.0.0.1
	# mx1 takes the first message and answers 451 to every MAIL after it.
	python3 - 127.0.0.2 "$SINK_PORT" >"$T/flaky.out" 2>&1 <<-'PY' &
	import socket, sys
	srv = socket.socket()
	srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	srv.bind((sys.argv[1], int(sys.argv[2])))
	srv.listen(5)
	print("listening", flush=True)
	mails = 0
	while True:
	    conn, _ = srv.accept()
	    f = conn.makefile("rb")
	    conn.sendall(b"220 mx1.flaky.test ESMTP\r\n")
	    in_data = False
	    for line in f:
	        cmd = line.strip().upper()
	        print("C:", line.strip().decode(), flush=True)
	        if in_data:
	            if line.rstrip(b"\r\n") == b".":
	                in_data = False
	                conn.sendall(b"250 2.0.0 queued\r\n")
	        elif cmd.startswith(b"EHLO"):
	            conn.sendall(b"250-mx1.flaky.test\r\n250 8BITMIME\r\n")
	        elif cmd.startswith(b"MAIL"):
	            mails += 1
	            conn.sendall(b"250 2.1.0 ok\r\n" if mails == 1 else
	                         b"451 4.3.2 slow down\r\n")
	        elif cmd.startswith(b"RCPT"):
	            conn.sendall(b"250 2.1.5 ok\r\n")
	        elif cmd == b"DATA":
	            in_data = True
	            conn.sendall(b"354 go\r\n")
	        elif cmd == b"QUIT":
	            conn.sendall(b"221 bye\r\n")
	            break
	        else:
	            conn.sendall(b"250 ok\r\n")
	    conn.close()
	PY
	PEER_PIDS+=($!)
	wait_for_log listening 30 "$T/flaky.out"
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "flaky.test:$SINK_PORT" --repeat 2 \
		--from a@example.org --to b@flaky.test
	echo "$output"
	cat "$T/flaky.out"
	[ "$(grep -c 'rcpt=0 S 2.0.0' <<<"$output")" -eq 2 ]
	wait_for_log "host mx1.flaky.test\[127.0.0.2\]:$SINK_PORT said: 451 4.3.2 slow down \(in reply to MAIL FROM command\); trying the next host"
	# mx1 saw two MAILs on one connection, and was not tried a third time.
	[ "$(grep -c '^C: MAIL' "$T/flaky.out")" -eq 2 ]
	[ "$(grep -c 'smtp-sink: MAIL FROM' "$T/sink.out")" -eq 1 ]
}

# smtp_sasl_password_maps with entries for the sink's nexthop and for
# LOGIN_PORT; the password never goes out without TLS unless allowed.
sasl_passwords() {
	LOGIN_PORT=$(free_port)
	printf '[127.0.0.1]:%s bob:s3cret\n[127.0.0.1]:%s bob:s3cret\n' \
		"$SINK_PORT" "$LOGIN_PORT" > "$T/conf/sasl_passwd"
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/sasl_passwd"
	suite_conf smtp_sasl_password_maps "hash:$T/conf/sasl_passwd"
}

@test "SMTP AUTH: no password in clear text unless smtp_sasl_allow_plaintext" {
	sasl_passwords
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net
	echo "$output"
	# Credentials raise the level to smtp_sasl_tls_security_level (secure).
	[[ "$output" == *"rcpt=0 D 4.7.4 TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]:$SINK_PORT (SASL credentials go only over a channel of smtp_sasl_tls_security_level)"* ]]
	[ "$(grep -c 'AUTH' "$T/sink.out")" -eq 0 ]
	[ "$(grep -c 'MAIL FROM' "$T/sink.out")" -eq 0 ]
}

@test "SMTP AUTH PLAIN to smtp-sink, AUTH LOGIN to a server that offers only that" {
	sasl_passwords
	suite_conf smtp_sasl_allow_plaintext yes
	start_sink sink 127.0.0.1:$SINK_PORT
	python3 - 127.0.0.1 "$LOGIN_PORT" >"$T/login.out" 2>&1 <<-'PY' &
	import base64, socket, sys
	srv = socket.socket()
	srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	srv.bind((sys.argv[1], int(sys.argv[2])))
	srv.listen(5)
	print("listening", flush=True)
	while True:
	    conn, _ = srv.accept()
	    f = conn.makefile("rb")
	    say = lambda t: conn.sendall(t.encode() + b"\r\n")
	    say("220 login-only ESMTP")
	    authed = False
	    for line in f:
	        cmd = line.strip()
	        up = cmd.upper()
	        print("C:", cmd.decode(), flush=True)
	        if up.startswith(b"EHLO"):
	            say("250-login-only\r\n250-AUTH LOGIN CRAM-MD5\r\n250 8BITMIME")
	        elif up == b"AUTH LOGIN":
	            say("334 VXNlcm5hbWU6")
	            user = base64.b64decode(f.readline().strip())
	            say("334 UGFzc3dvcmQ6")
	            pw = base64.b64decode(f.readline().strip())
	            authed = (user, pw) == (b"bob", b"s3cret")
	            print("login", user.decode(), authed, flush=True)
	            say("235 2.7.0 ok" if authed else "535 5.7.8 no")
	        elif up.startswith(b"MAIL"):
	            say("250 2.1.0 ok" if authed else "530 5.7.0 auth first")
	        elif up.startswith(b"RCPT"):
	            say("250 2.1.5 ok")
	        elif up == b"DATA":
	            say("354 go")
	            for l in f:
	                if l.rstrip(b"\r\n") == b".":
	                    break
	            say("250 2.0.0 queued")
	        elif up == b"QUIT":
	            say("221 bye")
	            break
	        else:
	            say("250 ok")
	    conn.close()
	PY
	PEER_PIDS+=($!)
	wait_for_log listening 30 "$T/login.out"
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	# PLAIN: NUL bob NUL s3cret
	grep -q "AUTH PLAIN $(printf '\0bob\0s3cret' | base64 -w0)\$" "$T/sink.out"
	wait_for_log "authenticated to 127.0.0.1\[127.0.0.1\]:$SINK_PORT as bob"
	run deliver_job --nexthop "[127.0.0.1]:$LOGIN_PORT" --from a@example.org \
		--to b@example.net
	echo "$output"
	cat "$T/login.out"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -q "^login bob True" "$T/login.out"
}

@test "a peer without SMTPUTF8: UTF-8 mail bounces, ASCII mail goes" {
	start_sink sink 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --smtputf8 \
		--from a@example.org --to 'jörg@example.net'
	echo "$output"
	[[ "$output" == *"rcpt=0 B 5.6.7 SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]:$SINK_PORT"* ]]
	[ "$(grep -c 'MAIL FROM' "$T/sink.out")" -eq 0 ]
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --smtputf8 \
		--from a@example.org --to b@example.net
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -q 'MAIL FROM:<a@example.org>$' "$T/sink.out"
}

@test "5xx to RCPT bounces, 4xx to MAIL defers every recipient" {
	start_sink sink -f rcpt 127.0.0.1:$SINK_PORT
	SINK2_PORT=$(free_port)
	start_sink sink2 -r mail 127.0.0.1:$SINK2_PORT
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net --to c@example.net
	echo "$output"
	[[ "$output" == *"rcpt=0 B 5.3.0 500 5.3.0 Error: command failed"* ]]
	[[ "$output" == *"rcpt=1 B 5.3.0 500 5.3.0 Error: command failed"* ]]
	wait_for_log "status=bounced \(host 127.0.0.1\[127.0.0.1\]:$SINK_PORT said: 500 5.3.0 Error: command failed \(in reply to RCPT TO command\)\)"
	[ "$(grep -c 'smtp-sink: DATA' "$T/sink.out")" -eq 0 ]
	run deliver_job --nexthop "[127.0.0.1]:$SINK2_PORT" --from a@example.org \
		--to b@example.net --to c@example.net
	echo "$output"
	[[ "$output" == *"rcpt=0 D 4.3.0 450 4.3.0 Error: command failed"* ]]
	[[ "$output" == *"rcpt=1 D 4.3.0 450 4.3.0 Error: command failed"* ]]
	wait_for_log "in reply to MAIL FROM command"
}

@test "a peer that names our own host is a mail loop" {
	start_sink sink -h mx.postern.test 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net
	echo "$output"
	[[ "$output" == *"rcpt=0 B 5.4.6 mail for [127.0.0.1]:$SINK_PORT loops back to myself"* ]]
}

@test "HELO for a server without ESMTP" {
	start_sink sink -e 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -q 'HELO mx.postern.test' "$T/sink.out"
}

@test "content is dot-stuffed; DSN and 8BITMIME parameters are passed on" {
	mkdir "$T/dump"
	[ "$(id -u)" -ne 0 ] || chown "$TEST_USER" "$T/dump"
	start_sink sink -d "$T/dump/%M." 127.0.0.1:$SINK_PORT
	suite_start
	printf 'Subject: dots\r\n\r\n.\r\n..two\r\n.one\r\nlast line without CRLF' > "$T/msg"
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net --message "$T/msg" --body 8BITMIME \
		--notify SF --orcpt 'rfc822;B+@example.net' --envid 'id 1' --ret HDRS
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	dump=$(cat "$T"/dump/*)
	echo "$dump"
	[[ "$dump" == *"X-Mail-Args: <a@example.org> BODY=8BITMIME RET=HDRS ENVID=id+201"* ]]
	[[ "$dump" == *"X-Rcpt-Args: <b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2B@example.net"* ]]
	# The sink undoes the stuffing: the lines arrive as written.
	grep -qx $'\\.\r\\?' <(sed -n '/^Subject: dots/,$p' "$T"/dump/*)
	grep -q '^\.\.two' "$T"/dump/*
	grep -q '^\.one' "$T"/dump/*
	grep -q '^last line without CRLF' "$T"/dump/*
}

@test "dot-stuffing at the content's chunk boundary, after a bare CR, never mid-line" {
	mkdir "$T/dump"
	[ "$(id -u)" -ne 0 ] || chown "$TEST_USER" "$T/dump"
	start_sink sink -d "$T/dump/%M." 127.0.0.1:$SINK_PORT
	suite_start
	# deliver reads the first 64 KiB, then the rest: the line ".boundary"
	# starts at byte 65536 of the content, after an LF in the first read.
	/usr/bin/python3 - "$T/msg" <<'PY'
import sys
head = b"Subject: boundary\r\n\r\n.first\r\na.b mid-line\r\nbare\r.dot\r\n"
pad = 65536 - len(head)
lines = b""
while pad > 80:
    lines += b"x" * 76 + b"\r\n"
    pad -= 78
lines += b"y" * (pad - 2) + b"\r\n"
body = head + lines
assert len(body) == 65536
body += b".boundary\r\n..two at the end\r\n"
open(sys.argv[1], "wb").write(body)
PY
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net --message "$T/msg"
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	# The sink undoes the stuffing of line starts (LF): what arrives is
	# the message as written, but for the dot after the bare CR, which
	# deliver doubles (a CR may end a line for some peers) and the sink
	# keeps.
	f=$(ls "$T"/dump/*)
	grep -q '^\.first' "$f"
	grep -q '^a\.b mid-line' "$f"
	grep -q '^bare\.\.dot' "$f"	# smtp-sink drops the bare CR
	grep -q '^\.boundary' "$f"
	grep -q '^\.\.two at the end' "$f"
	run grep -c '^\.\.boundary\|^\.\.first\|^\.\.\.two\|^a\.\.b' "$f"
	[ "$output" = 0 ]
}

@test "8-bit mail to a peer without 8BITMIME goes as quoted-printable, and decodes to what was sent" {
	mkdir "$T/dump"
	[ "$(id -u)" -ne 0 ] || chown "$TEST_USER" "$T/dump"
	start_sink sink -8 -d "$T/dump/%M." 127.0.0.1:$SINK_PORT
	suite_start
	printf '%s\r\n' 'Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=' 'MIME-Version: 1.0' \
		'Content-Type: multipart/mixed; boundary="b1"' '' 'preamble' \
		'--b1' 'Content-Type: text/plain; charset=utf-8' \
		'Content-Transfer-Encoding: 8bit' '' 'Grüße aus Köln = 100%' \
		'.a dot' '--b1' 'Content-Type: text/plain' '' 'ascii only' \
		'--b1--' > "$T/msg"
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net --message "$T/msg" --body 8BITMIME
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	cat "$T"/dump/*
	grep -q '^X-Mail-Args: <a@example.org>.\?$' "$T"/dump/*
	# Not one 8-bit byte on the wire.
	[ "$(LC_ALL=C grep -c $'[\x80-\xff]' "$T"/dump/*)" -eq 0 ]
	grep -q '^Gr=C3=BC=C3=9Fe aus K=C3=B6ln =3D 100%' "$T"/dump/*
	# A MIME parser reads the same text back.
	python3 - "$T"/dump/* <<-'PY'
	import email, email.policy, sys
	raw = open(sys.argv[1], "rb").read()
	msg = email.message_from_bytes(raw[raw.index(b"Subject:"):],
	                               policy=email.policy.default)
	parts = [p for p in msg.walk() if not p.is_multipart()]
	assert parts[0]["Content-Transfer-Encoding"] == "quoted-printable"
	assert parts[0].get_content() == "Grüße aus Köln = 100%\n.a dot", \
	    repr(parts[0].get_content())
	assert parts[1].get_content() == "ascii only"
	assert "Content-Transfer-Encoding" not in parts[1]
	PY
	# The same message to a peer with 8BITMIME goes as it is.
	SINK2_PORT=$(free_port)
	mkdir "$T/dump2"
	[ "$(id -u)" -ne 0 ] || chown "$TEST_USER" "$T/dump2"
	start_sink sink2 -d "$T/dump2/%M." 127.0.0.1:$SINK2_PORT
	run deliver_job --nexthop "[127.0.0.1]:$SINK2_PORT" --from a@example.org \
		--to b@example.net --message "$T/msg" --body 8BITMIME
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -q '^Grüße aus Köln = 100%' "$T"/dump2/*
}

@test "LMTP over a Unix socket: one reply per recipient" {
	# Our own lmtpd gives our name: with LMTP that is no mail loop.
	start_sink lmtp -L -h mx.postern.test unix:"$T/lmtp.sock"
	suite_start
	run deliver_job --transport lmtp --nexthop "unix:$T/lmtp.sock" \
		--from '' --to b@example.net --to c@example.net
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.2.0"* ]]
	[[ "$output" == *"rcpt=1 S 2.2.0"* ]]
	[[ "$output" == *"relay=localhost[$T/lmtp.sock]"* ]]
	grep -q 'LHLO mx.postern.test' "$T/lmtp.out"
	grep -q 'MAIL FROM:<>' "$T/lmtp.out"
}

@test "a server that stalls after DATA times out and defers" {
	suite_conf smtp_timeout 2s
	# -p: no PIPELINING, so the stall is met at DATA (the sink holds
	# pipelined replies back until it answers the whole group).
	start_sink sink -p -w 5 127.0.0.1:$SINK_PORT
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$SINK_PORT" --from a@example.org \
		--to b@example.net
	echo "$output"
	[[ "$output" == *"rcpt=0 D 4.4.2 conversation with 127.0.0.1[127.0.0.1]:$SINK_PORT timed out while sending DATA command"* ]]
}

@test "Postfix as the peer: STARTTLS, per-recipient RCPT results, SIZE" {
	[ "$(id -u)" -eq 0 ] || skip "postfix start needs root"
	PF_SIZE_LIMIT=4000 postfix_peer_start
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$PF_PORT" --from a@example.org \
		--to ok@pf.test --to refused@pf.test
	echo "$output"
	# Postfix offers CHUNKING: its reply to BDAT LAST says "Ok: N bytes queued as ID".
	[[ "$output" == *"rcpt=0 S 2.0.0 250 2.0.0 Ok: "*"queued as "* ]]
	[[ "$output" == *"rcpt=1 B 5.1.1 550 5.1.1 <refused@pf.test>: Recipient address rejected: no such user"* ]]
	wait_for_log "T[0-9]+: Untrusted TLS connection established to 127.0.0.1\[127.0.0.1\]:$PF_PORT: TLSv1.[23] with cipher "
	wait_for_log "to=<refused@pf.test>, .*status=bounced \(host 127.0.0.1\[127.0.0.1\]:$PF_PORT said: 550 5.1.1 <refused@pf.test>: Recipient address rejected: no such user \(in reply to RCPT TO command\)\)"
	grep -q 'TLS connection established from localhost\[127.0.0.1\]' "$P/maillog"

	# Postfix announces "SIZE 4000": a bigger message is not even offered.
	head -c 6000 /dev/zero | tr '\0' 'x' | fold -w 70 | sed 's/$/\r/' > "$T/big"
	run deliver_job --nexthop "[127.0.0.1]:$PF_PORT" --from a@example.org \
		--to ok@pf.test --message "$T/big"
	echo "$output"
	[[ "$output" == *"rcpt=0 B 5.3.4 message size "*" exceeds size limit 4000 of server 127.0.0.1[127.0.0.1]:$PF_PORT"* ]]

	# Postfix offers SMTPUTF8: UTF-8 mail goes through.
	run deliver_job --nexthop "[127.0.0.1]:$PF_PORT" --smtputf8 \
		--from a@example.org --to 'jörg@pf.test'
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	postfix_peer_stop
}

@test "a failed TLS handshake falls back to plain text" {
	[ "$(id -u)" -eq 0 ] || skip "postfix start needs root"
	# The peer offers STARTTLS but speaks only TLS 1.0/1.1, below our floor.
	PF_EXTRA='smtpd_tls_protocols = <=TLSv1.1' postfix_peer_start
	suite_start
	run deliver_job --nexthop "[127.0.0.1]:$PF_PORT" --from a@example.org \
		--to ok@pf.test
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0 250 2.0.0 Ok: "*"queued as "* ]]
	wait_for_log "TLS handshake failed with 127.0.0.1\[127.0.0.1\]:$PF_PORT: .*; trying again without TLS"
	[ "$(grep -c 'Untrusted TLS connection established' "$T/log")" -eq 0 ]
	postfix_peer_stop
}
