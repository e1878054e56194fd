#!/usr/bin/env bats
# lmtpd on its own: the LMTP server (RFC 2033) that master starts on
# lmtp_listen, talked to by real clients: swaks, Python sockets (for exact
# bytes: pipelining, BDAT chunks), and Postfix's lmtp client. Checks what
# lands in the Maildirs.
# test-runner: long

load helpers/suite

LMTP=

setup() {
	suite_init
	LMTP="unix:$T/run/lmtp"
	cat > "$T/conf/mailboxes" <<-EOF
	alice@postern.test	postern.test/alice/
	bob@postern.test	postern.test/bob/
	carol@postern.test	postern.test/carol/
	escape@postern.test	../outside/
	EOF
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/mailboxes"
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
}

teardown() {
	postfix_private_stop
	suite_stop
}

start() {
	suite_start
	wait_for_socket "$T/run/lmtp"
}

# Run a Python LMTP conversation (stdin) with tests/helpers/lmtp.py.
lmtp_py() {
	PYTHONPATH="$BATS_TEST_DIRNAME/helpers" LMTP="$LMTP" python3 -
}

# The files in a mailbox's new/ (one per line).
new_files() {
	find "$T/mail/postern.test/$1/new" -type f 2>/dev/null | sort
}

new_count() {
	new_files "$1" | wc -l
}

@test "LHLO announces the LMTP extensions; HELO and EHLO are refused" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.Session(os.environ["LMTP"])
	print(s.expect("220"))
	s.send("EHLO client.test\r\n"); print(s.expect("500"))
	s.send("HELO client.test\r\n"); print(s.expect("500"))
	s.send("MAIL FROM:<a@example.org>\r\n"); print(s.expect("503"))
	s.send("LHLO client.test\r\n")
	code, lines = s.reply()
	print("\n".join(lines))
	s.send("QUIT\r\n"); print(s.expect("221"))
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"220 mx.postern.test LMTP"* ]]
	[[ "$output" == *"500 5.5.1"* ]]
	[[ "$output" == *"503 5.5.1"* ]]
	for ext in PIPELINING ENHANCEDSTATUSCODES 8BITMIME "SIZE " SMTPUTF8 CHUNKING; do
		[[ "$output" == *"250-$ext"* || "$output" == *"250 $ext"* ]]
	done
	[[ "$output" == *"221 2.0.0"* ]]
}

@test "swaks: one file per recipient in new/, with Return-Path and Delivered-To; unknown is 550 5.1.1" {
	start
	run swaks --socket "$T/run/lmtp" --protocol LMTP \
		--from sender@example.org \
		--to alice@postern.test,nobody@postern.test,bob@postern.test \
		--header "Subject: first" \
		--body $'line one\n.leading dot\n..two dots\nlast line'
	echo "$output"
	[ "$status" -eq 0 ] || [ "$status" -eq 24 ]	# 24: some recipients refused
	[[ "$output" == *"550 5.1.1 <nobody@postern.test>"* ]]
	[ "$(new_count alice)" -eq 1 ]
	[ "$(new_count bob)" -eq 1 ]
	[ ! -e "$T/mail/postern.test/nobody" ]

	f=$(new_files alice)
	cat "$f"
	# Our trace fields first, in this order.
	[ "$(sed -n 1p "$f")" = "Return-Path: <sender@example.org>" ]
	[ "$(sed -n 2p "$f")" = "Delivered-To: alice@postern.test" ]
	grep -q '^Received: from client' "$f" || grep -q '^Received: from ' "$f"
	grep -q $'^\tby mx.postern.test (postern) with LMTP id ' "$f"
	grep -q '^Subject: first$' "$f"
	# Dot-stuffing undone, LF line ends (Maildir convention).
	grep -qx '.leading dot' "$f"
	grep -qx '..two dots' "$f"
	! grep -q $'\r' "$f"
	# The name carries the size; nothing is left in tmp/.
	size=$(stat -c %s "$f")
	[[ "$(basename "$f")" == *",S=$size" ]]
	[ -z "$(ls -A "$T/mail/postern.test/alice/tmp")" ]
	[ "$(sed -n 2p "$(new_files bob)")" = "Delivered-To: bob@postern.test" ]
	# Owned by mailbox_owner, readable by nobody else.
	[ "$(stat -c %U "$f")" = "$TEST_USER" ]
	[ "$(stat -c %a "$f")" = 600 ]
	grep -Eq 'rcpt=<alice@postern.test>, .*result=stored' "$T/log"
}

@test "user+detail is delivered to user's Maildir, Delivered-To keeps the detail" {
	start
	run swaks --socket "$T/run/lmtp" --protocol LMTP \
		--from sender@example.org --to alice+lists@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(new_count alice)" -eq 1 ]
	grep -qx 'Delivered-To: alice+lists@postern.test' "$(new_files alice)"
}

@test "lmtp_listen on TCP too; lmtpd runs as mailbox_owner, not as user" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run as another user"
	LMTP_PORT=$(free_port)
	suite_conf lmtp_listen "unix:$T/run/lmtp, 127.0.0.1:$LMTP_PORT"
	suite_conf mailbox_owner nobody
	chown nobody "$T/mail"
	start
	wait_for_port "$LMTP_PORT"
	run swaks --server "127.0.0.1:$LMTP_PORT" --protocol LMTP \
		--from sender@example.org --to carol@postern.test
	echo "$output"
	[ "$status" -eq 0 ]
	f=$(new_files carol)
	[ "$(stat -c %U "$f")" = nobody ]
	[ "$(stat -c %U "$T/mail/postern.test/carol")" = nobody ]
	grep -q '^Received: from .* (127.0.0.1)$' "$f"
	# Every lmtpd process has dropped to nobody.
	pids=$(pgrep -P "$SUITE_PID" -x lmtpd || true)
	[ -n "$pids" ]
	for p in $pids; do
		[ "$(ps -o user= -p "$p")" = nobody ]
	done
}

@test "a mailbox_maps value outside mailbox_base is refused with a temporary error" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	s.send("MAIL FROM:<a@example.org>\r\n"); s.expect("250")
	s.send("RCPT TO:<escape@postern.test>\r\n"); print(s.expect("451"))
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"451 4.3.5"* ]]
	[ ! -e "$T/outside" ]
}

@test "pipelined transaction: one reply per accepted recipient after DATA, in RCPT order" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	# The whole transaction in one write (RFC 2920).
	s.send("MAIL FROM:<sender@example.org> BODY=8BITMIME\r\n"
	       "RCPT TO:<bob@postern.test>\r\n"
	       "RCPT TO:<unknown@postern.test>\r\n"
	       "RCPT TO:<alice@postern.test>\r\n"
	       "DATA\r\n")
	for want in ("250", "250", "550", "250", "354"):
	    print(s.expect(want))
	s.send(lmtp.message("pipelined", "caf\u00e9 8bit body\n") + "\r\n.\r\n")
	# Two accepted recipients: exactly two replies, bob's first.
	print(s.expect("250")); print(s.expect("250"))
	s.send("NOOP\r\n"); print(s.expect("250"))
	s.send("QUIT\r\n"); s.expect("221")
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$(echo "$output" | grep -c '^250 2.0.0 <')" -eq 2 ]]
	[[ "$(echo "$output" | grep '^250 2.0.0 <' | head -1)" == *"<bob@postern.test>"* ]]
	[[ "$(echo "$output" | grep '^250 2.0.0 <' | tail -1)" == *"<alice@postern.test>"* ]]
	[ "$(new_count alice)" -eq 1 ]
	[ "$(new_count bob)" -eq 1 ]
	grep -q "caf$(printf '\xc3\xa9') 8bit body" "$(new_files alice)"
}

@test "DATA with no accepted recipient is 503; RSET starts over" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	s.send("DATA\r\n"); print(s.expect("503"))
	s.send("MAIL FROM:<>\r\n"); s.expect("250")
	s.send("RCPT TO:<nobody@postern.test>\r\n"); s.expect("550")
	s.send("DATA\r\n"); print(s.expect("503"))
	s.send("MAIL FROM:<x@example.org>\r\n"); print(s.expect("503"))
	s.send("RSET\r\n"); s.expect("250")
	s.send("MAIL FROM:<x@example.org>\r\n"); s.expect("250")
	s.send("RCPT TO:<carol@postern.test>\r\n"); s.expect("250")
	s.send("DATA\r\n"); s.expect("354")
	s.send("Subject: after rset\r\n\r\nbody\r\n.\r\n"); print(s.expect("250"))
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '^503 5.5.1')" -eq 3 ]
	[ "$(new_count carol)" -eq 1 ]
	grep -qx 'Return-Path: <x@example.org>' "$(new_files carol)"
}

@test "BDAT: chunks with CRLF split across them, no dot-stuffing, one reply per recipient after LAST" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	c1 = b"Subject: chunked\r\n\r\n.not stuffed\r"
	c2 = b"\nsecond line\r\nend"
	s.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@postern.test>\r\n"
	       b"RCPT TO:<bob@postern.test>\r\n"
	       + b"BDAT %d\r\n" % len(c1) + c1
	       + b"BDAT %d LAST\r\n" % len(c2) + c2)
	for want in ("250", "250", "250", "250"):
	    print(s.expect(want))
	print(s.expect("250")); print(s.expect("250"))
	# BDAT 0 LAST ends an empty chunk sequence too.
	s.send(b"MAIL FROM:<>\r\nRCPT TO:<carol@postern.test>\r\nBDAT 0 LAST\r\n")
	s.expect("250"); s.expect("250"); print(s.expect("250"))
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '^250 2.0.0 <')" -eq 3 ]
	f=$(new_files alice)
	cat -A "$f"
	grep -qx '.not stuffed' "$f"
	# the CRLF split between the chunks became one LF; the last line
	# gets its line end, as in smtpd (bare CR/LF: see the test at the end).
	[ "$(tail -n 2 "$f" | head -n 1)" = 'second line' ]
	[ "$(tail -c 4 "$f" | od -An -c | tr -d ' ')" = 'end\n' ]
	cmp <(tail -n 4 "$f") <(tail -n 4 "$(new_files bob)")
	[ "$(new_count carol)" -eq 1 ]
	grep -qx 'Return-Path: <>' "$(new_files carol)"
}

@test "SIZE: MAIL over message_size_limit is 552; data over it is 552 for every recipient" {
	suite_conf message_size_limit 2000
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	s.send("MAIL FROM:<a@example.org> SIZE=5000\r\n"); print(s.expect("552"))
	s.send("MAIL FROM:<a@example.org> SIZE=100\r\n"); s.expect("250")
	s.send("RCPT TO:<alice@postern.test>\r\nRCPT TO:<bob@postern.test>\r\nDATA\r\n")
	s.expect("250"); s.expect("250"); s.expect("354")
	s.send(lmtp.message("big", "x" * 70 + "\n") * 1 + ("y" * 70 + "\r\n") * 60 + ".\r\n")
	print(s.expect("552")); print(s.expect("552"))
	s.send("NOOP\r\n"); s.expect("250")
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '^552 5.3.4')" -eq 3 ]
	[ "$(new_count alice)" -eq 0 ]
	[ "$(new_count bob)" -eq 0 ]
}

@test "loop guard: more than 20 Delivered-To header fields is 554 5.4.6; 20 are fine" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	for n, want in ((21, "554"), (20, "250")):
	    s.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\n")
	    s.expect("250"); s.expect("250"); s.expect("354")
	    hdrs = ["Delivered-To: hop%d@example.net" % i for i in range(n)]
	    s.send(lmtp.message("loop %d" % n, "body\n", hdrs) + "\r\n.\r\n")
	    print(s.expect(want))
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"554 5.4.6"* ]]
	[ "$(new_count alice)" -eq 1 ]
	grep -q '^Subject: loop 20$' "$(new_files alice)"
}

@test "quota: a full mailbox defers only its own recipient, at RCPT or after DATA" {
	suite_conf mailbox_quota 3000
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	def send(rcpts, body):
	    s.send("MAIL FROM:<a@example.org>\r\n"); s.expect("250")
	    accepted = 0
	    for r in rcpts:
	        s.send("RCPT TO:<%s>\r\n" % r)
	        code, lines = s.reply(); print(lines[-1])
	        accepted += code == "250"
	    s.send("DATA\r\n"); s.expect("354")
	    s.send(lmtp.message("q", body) + "\r\n.\r\n")
	    for i in range(accepted):
	        print(s.reply()[1][-1])
	    print("--")
	# alice gets 2000 bytes and more: room for nothing of 1000 any more.
	send(["alice@postern.test"], "a" * 2000 + "\n")
	send(["alice@postern.test", "bob@postern.test"], "b" * 1000 + "\n")
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	second=$(echo "$output" | sed -n '4,$p')
	# after DATA: alice's copy would pass the quota, bob's is stored.
	[[ "$(echo "$second" | sed -n 3p)" == "452 4.2.2 <alice@postern.test>"* ]]
	[[ "$(echo "$second" | sed -n 4p)" == "250 2.0.0 <bob@postern.test>"* ]]
	[ "$(new_count alice)" -eq 1 ]
	[ "$(new_count bob)" -eq 1 ]
	grep -Eq 'rcpt=<alice@postern.test>, .*dsn=4.2.2, result=tempfail' "$T/log"

	# A mailbox already at its quota (say a big message was moved to cur/
	# by the reader) is refused at RCPT, before any data is sent.
	head -c 3000 /dev/zero > "$T/mail/postern.test/bob/cur/1.big,S=3000:2,S"
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	s.send("MAIL FROM:<a@example.org>\r\n"); s.expect("250")
	s.send("RCPT TO:<bob@postern.test>\r\n"); print(s.expect("452"))
	s.send("RCPT TO:<carol@postern.test>\r\n"); print(s.expect("250"))
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"452 4.2.2 <bob@postern.test>: Mailbox full"* ]]
}

@test "quota: mailbox_quota_tempfail = no makes a full mailbox a permanent 552 5.2.2" {
	suite_conf mailbox_quota 1000
	suite_conf mailbox_quota_tempfail no
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	s.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\n")
	s.expect("250"); s.expect("250"); s.expect("354")
	s.send(lmtp.message("too big for the box", "c" * 2000 + "\n") + "\r\n.\r\n")
	print(s.expect("552"))
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"552 5.2.2 <alice@postern.test>: Mailbox full"* ]]
	[ "$(new_count alice)" -eq 0 ]
}

@test "50 parallel LMTP sessions to one mailbox: every message present once, none truncated" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os, threading
	errors = []
	def one(i):
	    try:
	        s = lmtp.greet(os.environ["LMTP"], "client%d.test" % i)
	        s.send("MAIL FROM:<p%d@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\n" % i)
	        s.expect("250"); s.expect("250"); s.expect("354")
	        body = "".join("message %d line %d %s\n" % (i, n, "z" * 60) for n in range(400))
	        s.send(lmtp.message("parallel %d" % i, body) + "END %d\r\n.\r\n" % i)
	        s.expect("250")
	        s.send("QUIT\r\n"); s.expect("221")
	    except BaseException as e:
	        errors.append("%d: %r" % (i, e))
	threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
	for t in threads: t.start()
	for t in threads: t.join()
	print("\n".join(errors))
	print("errors=%d" % len(errors))
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"errors=0"* ]]
	[ "$(new_count alice)" -eq 50 ]
	for i in $(seq 0 49); do
		f=$(grep -l "^Subject: parallel $i\$" $(new_files alice))
		[ "$(echo "$f" | wc -l)" -eq 1 ]
		[ "$(grep -c "^message $i line " "$f")" -eq 400 ]
		[ "$(tail -n 1 "$f")" = "END $i" ]
		size=$(stat -c %s "$f")
		[[ "$f" == *",S=$size" ]]
	done
	[ -z "$(ls -A "$T/mail/postern.test/alice/tmp")" ]
}

@test "errors and junk are bounded: bad lines, unknown verbs, bad BDAT" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	# Not announced: a Maildir could not keep binary data intact.
	s.send("MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n"); print(s.expect("555"))
	s.send("MAIL FROM:<a@example.org>\r\n"); s.expect("250")
	s.send("RCPT TO:<alice@postern.test> NOTIFY=NEVER\r\n"); print(s.expect("555"))
	s.send("RCPT TO:<not an address>\r\n"); print(s.expect("501"))
	s.send("X" * 600 + "\r\n"); print(s.expect("500"))
	s.send("FOO\r\n"); print(s.expect("500"))
	s.send("RCPT TO:<alice@postern.test>\nDATA\r\n"); print(s.expect("500"))
	# A BDAT without a size cannot be framed: the server hangs up
	# (521, as smtpd and Postfix).
	s.send("BDAT lots\r\n"); print(s.expect("521"))
	print(s.reply())
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"(None, [])"* ]]
	[ "$(new_count alice)" -eq 0 ]
}

# A private Postfix instance (config, queue and log under $T/postfix) that
# relays postern.test to lmtpd over LMTP. Needs root for "postfix start".
postfix_private_start() {
	P="$T/postfix"
	PF_PORT=$(free_port)
	mkdir -p "$P/conf" "$P/queue" "$P/data"
	cat > "$P/conf/master.cf" <<-EOF
	127.0.0.1:$PF_PORT inet n - n - - smtpd
	cleanup   unix  n       -       n       -       0       cleanup
	qmgr      unix  n       -       n       300     1       qmgr
	rewrite   unix  -       -       n       -       -       trivial-rewrite
	bounce    unix  -       -       n       -       0       bounce
	defer     unix  -       -       n       -       0       bounce
	trace     unix  -       -       n       -       0       bounce
	verify    unix  -       -       n       -       1       verify
	flush     unix  n       -       n       1000?   0       flush
	proxymap  unix  -       -       n       -       -       proxymap
	smtp      unix  -       -       n       -       -       smtp
	relay     unix  -       -       n       -       -       smtp
	showq     unix  n       -       n       -       -       showq
	error     unix  -       -       n       -       -       error
	retry     unix  -       -       n       -       -       error
	discard   unix  -       -       n       -       -       discard
	lmtp      unix  -       -       n       -       -       lmtp
	anvil     unix  -       -       n       -       1       anvil
	scache    unix  -       -       n       -       1       scache
	postlog   unix-dgram n  -       n       -       1       postlogd
	EOF
	cat > "$P/conf/main.cf" <<-EOF
	compatibility_level = 3.6
	queue_directory = $P/queue
	data_directory = $P/data
	myhostname = pf.postern.test
	mydestination =
	inet_interfaces = 127.0.0.1
	inet_protocols = ipv4
	mynetworks = 127.0.0.0/8
	syslog_name = postfix-postern-test
	maillog_file = $P/maillog
	maillog_file_prefixes = $P
	relay_domains = postern.test
	relay_transport = lmtp:unix:$T/run/lmtp
	smtpd_recipient_restrictions = permit_mynetworks, reject
	alias_maps =
	alias_database =
	EOF
	chown postfix "$P/data"
	if ! postfix -c "$P/conf" start; then
		cat "$P/maillog" >&2
		return 1
	fi
}

postfix_private_stop() {
	[ -n "${P:-}" ] && [ -d "$P/conf" ] || return 0
	postfix -c "$P/conf" stop >/dev/null 2>&1 || true
	# "postfix stop" returns before master is gone: wait for its pid file.
	wait_until '! [ -e "$P/queue/pid/master.pid" ] ||
		! kill -0 "$(tr -d " " < "$P/queue/pid/master.pid")" 2>/dev/null' 10 ||
		true
}

@test "Postfix's lmtp client delivers into lmtpd (private Postfix instance)" {
	[ "$(id -u)" -eq 0 ] || skip "postfix start needs root"
	[ -x /usr/sbin/postfix ] || skip "postfix not installed"
	# The LMTP socket is 0660: Postfix's lmtp client gets in as a member
	# of lmtp_socket_group (lmtpd(8)).
	suite_conf lmtp_socket_group postfix
	start
	postfix_private_start
	run swaks --server 127.0.0.1 --port "$PF_PORT" --from sender@example.org \
		--to alice@postern.test,bob+x@postern.test --header "Subject: via postfix"
	echo "$output"
	local ok=
	wait_until '[ "$(new_count alice)" -eq 1 ] && [ "$(new_count bob)" -eq 1 ]' 20 &&
		ok=1
	tail -n 20 "$P/maillog" 2>/dev/null || true
	postfix_private_stop
	[ -n "$ok" ]
	grep -q '^Subject: via postfix$' "$(new_files alice)"
	grep -qx 'Delivered-To: bob+x@postern.test' "$(new_files bob)"
	grep -Eq 'status=sent \(250 2.0.0 <alice@postern.test>' "$P/maillog"
}

@test "settled with smtpd: MAIL FROM: without a path is 501 5.5.4, VRFY 252 2.0.0, bad BDAT syntax (RFC 3030) closes" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	s.send("MAIL FROM:\r\n"); print(s.expect("501"))
	s.send("VRFY alice@postern.test\r\n"); print(s.expect("252"))
	s.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@postern.test>\r\n")
	s.expect("250"); s.expect("250")
	# RFC 3030 2: one SP between the size and LAST, nothing after it.
	s.send("BDAT 3  LAST\r\nabc"); print(s.expect("521"))
	print(s.reply())
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "501 5.5.4 "* ]]
	[[ "${lines[1]}" == "252 2.0.0 "* ]]
	[[ "${lines[2]}" == "521 5.5.4 "* ]]
	[ "${lines[3]}" = "(None, [])" ]
	[ "$(new_count alice)" -eq 0 ]
}

@test "bare CR or LF in DATA or BDAT is refused as smtpd refuses it (550 5.5.2); nothing stored" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	for text in (b"Subject: lf\r\n\r\nouter\n.\nsmuggled\r\n.\r\n",
	             b"Subject: cr\r\n\r\nbare\rcr\r\n.\r\n"):
	    s.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\n")
	    s.expect("250"); s.expect("250"); s.expect("354")
	    s.send(text); print(s.expect("550"))
	chunk = b"Subject: bdat\r\n\r\nbare\nlf\r\n"
	s.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@postern.test>\r\n"
	       + b"BDAT %d LAST\r\n" % len(chunk) + chunk)
	s.expect("250"); s.expect("250"); print(s.expect("550"))
	s.send("QUIT\r\n"); s.expect("221")
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '^550 5.5.2 <alice@postern.test>: Error: bare <CR> or <LF>')" -eq 3 ]
	[ "$(new_count alice)" -eq 0 ]
}

@test "hop count: 51 Received headers are refused (554 5.4.6), 50 are delivered" {
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	for n, code in ((51, "554"), (50, "250")):
	    head = "".join("Received: from hop%d.example by x; Mon, 1 Jan 2026 00:00:00 +0000\r\n" % i
	                   for i in range(n))
	    s.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\n")
	    s.expect("250"); s.expect("250"); s.expect("354")
	    s.send(head + "Subject: hops %d\r\n\r\nloop?\r\n.\r\n" % n)
	    print(s.expect(code))
	s.send("QUIT\r\n"); s.expect("221")
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "554 5.4.6 <alice@postern.test>: Error: Too many hops" ]]
	[[ "${lines[1]}" == "250 2.0.0 "* ]]
	[ "$(new_count alice)" -eq 1 ]
	grep -q '^Subject: hops 50' "$(new_files alice)"
}

@test "errors are counted as in smtpd: smtpd_error_limit ends the session with 421 4.7.0" {
	suite_conf smtpd_error_limit 3
	start
	run lmtp_py <<-'EOF'
	import lmtp, os
	s = lmtp.greet(os.environ["LMTP"])
	s.send("MAIL FROM:<a@example.org>\r\n"); s.expect("250")
	s.send("RCPT TO:<nobody@postern.test>\r\n"); print(s.expect("550"))
	s.send("FOO\r\n"); print(s.expect("500"))
	s.send("RCPT TO:<x@@y>\r\n"); print(s.expect("501"))
	print(s.expect("421"))
	print(s.reply())
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[3]}" == "421 4.7.0 "*"too many errors" ]]
	[ "${lines[4]}" = "(None, [])" ]
}

@test "a Unix-socket client is named by its uid (SO_PEERCRED) in Received and in the log" {
	start
	uid=$(id -u)
	run swaks --socket "$T/run/lmtp" --protocol LMTP \
		--from sender@example.org --to alice@postern.test \
		--header "Subject: who" --body "traced"
	echo "$output"
	[ "$status" -eq 0 ]
	f=$(new_files alice)
	cat "$f"
	grep -q "^Received: from .* (unix uid=$uid)\$" "$f"
	grep -q "connect from unix uid=$uid\$" "$T/log"
}

# stalled_session ADDR OUT: with lmtpd's one process under strace
# (poll, read, setsockopt and ioctl calls into OUT), a transaction's
# commands on ADDR, then half a command and silence; lmtpd's 421 in
# $output.
stalled_session() {
	local w strace_pid
	wait_until 'w=$(ps -o pid=,comm=,args= --ppid "$SUITE_PID" | awk '"'"'$2 == "lmtpd" { print $1 }'"'"' | head -n 1); [ -n "$w" ]' 20
	strace -q -e trace=poll,read,setsockopt,ioctl -o "$2" -p "$w" 2>"$2.err" &
	strace_pid=$!
	wait_until 'grep -q "TracerPid:[[:space:]]*[1-9]" "/proc/$w/status"' 20
	LMTP=$1 run lmtp_py <<-'PY'
	import lmtp, os
	s = lmtp.Session(os.environ["LMTP"])
	s.expect("220")
	s.send("LHLO client.test\r\n"); s.expect("250")
	s.send("MAIL FROM:<a@example.org>\r\n"); s.expect("250")
	s.send("RCPT TO:<alice@postern.test>\r\n"); s.expect("250")
	s.send("RSET\r\n"); s.expect("250")
	# Half a command, then silence: cut at lmtpd_timeout.
	s.send("NOOP")
	print(s.expect("421"))
	PY
	kill "$strace_pid"
	wait "$strace_pid" || true
	cat "$2"
}

@test "lmtpd waits for a TCP client's commands in read(2), for a Unix socket's in poll(2); a client stalled mid-command gets 421 4.4.2 at lmtpd_timeout on either" {
	command -v strace >/dev/null || skip "strace is not installed"
	[ "$(id -u)" -eq 0 ] || skip "attaching to a worker that changed user needs root"
	LMTP_PORT=$(free_port)
	suite_conf lmtp_listen "unix:$T/run/lmtp, 127.0.0.1:$LMTP_PORT"
	suite_conf lmtpd_timeout 3s
	suite_conf lmtpd_processes 1
	suite_conf process_min_idle 1
	start
	wait_for_port "$LMTP_PORT"
	stalled_session "127.0.0.1:$LMTP_PORT" "$T/strace.tcp"
	[ "$status" -eq 0 ]
	[[ "$output" == *"4.4.2"* ]]
	# TCP: no poll, and the socket's SO_RCVTIMEO set once (before timed
	# reads: a poll before each of the 5 reads, and the stalled one).
	[ "$(grep -c '^poll(' "$T/strace.tcp")" -eq 0 ]
	[ "$(grep -c '^read(' "$T/strace.tcp")" -ge 5 ]
	[ "$(grep -c '^setsockopt(.*SO_RCVTIMEO' "$T/strace.tcp")" -ge 1 ]
	stalled_session "unix:$T/run/lmtp" "$T/strace.unix"
	[ "$status" -eq 0 ]
	[[ "$output" == *"4.4.2"* ]]
	# Unix socket: a poll before each read, no SO_RCVTIMEO, and the
	# socket made non-blocking, so that a write too has its deadline
	# (a wait in read(2) would be woken once more per message there,
	# each time the client reads our replies: util/bio.h).
	[ "$(grep -c '^poll(' "$T/strace.unix")" -ge 5 ]
	[ "$(grep -c '^setsockopt(.*SO_RCVTIMEO' "$T/strace.unix")" -eq 0 ]
	[ "$(grep -c '^ioctl(.*FIONBIO' "$T/strace.unix")" -eq 1 ]
}
