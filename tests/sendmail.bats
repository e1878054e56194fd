#!/usr/bin/env bats
# sendmail, mailq, newaliases: local submission into maildrop/.
#
# Most tests run without master, so that the files sendmail writes stay in
# maildrop/ to be inspected (qmgr would pick them up); the queue tree is
# made here with the modes master gives it. The queue files are read back
# with an independent reader (python) that follows the format in queue.h.
# Real clients: python's email library and smtplib-style callers that run
# "sendmail -t -oi", cron-style "echo | sendmail user", setgid submission
# as an unprivileged user.
# test-runner: long

load helpers/suite

setup() {
	suite_init
	CONF="$T/conf"
	suite_queue_tree
}

teardown() {
	suite_stop || return
	[ -n "${KEEP_TEST_DIR:-}" ] || rm -rf "$T"
}

sm() {
	"$BUILD/sendmail" -C "$CONF" "$@"
}

# IDs in maildrop/, oldest first.
maildrop_ids() {
	find "$T/queue/maildrop" -type f ! -name '.*' -printf '%f\n' | sort
}

only_id() {
	local ids
	ids=$(maildrop_ids)
	[ "$(printf '%s\n' "$ids" | grep -c .)" -eq 1 ] || {
		echo "# maildrop has: $ids" >&3
		return 1
	}
	printf '%s\n' "$ids"
}

# Envelope records or content of a queue file, read per queue.h.
qfile() {
	python3 - "$1" "$2" <<'PY'
import sys
data = open(sys.argv[2], 'rb').read()
pos = 0
records = []
while True:
    nl = data.index(b'\n', pos)
    line = data[pos:nl]
    pos = nl + 1
    records.append(line)
    if line.startswith(b'D '):
        n = int(line[2:])
        break
if sys.argv[1] == 'content':
    sys.stdout.buffer.write(data[pos:pos + n])
else:
    sys.stdout.buffer.write(b'\n'.join(records) + b'\n')
PY
}

content() { qfile content "$T/queue/maildrop/$1"; }
envelope() { qfile envelope "$T/queue/maildrop/$1"; }

@test "a message from stdin lands in maildrop with CRLF line ends" {
	run sm -v bob@example.org <<<$'Subject: plain\n\nline one\nline two'
	[ "$status" -eq 0 ]
	id=$(only_id)
	[[ "$output" == *"queued as $id"* ]]
	[ "$(stat -c %a "$T/queue/maildrop/$id")" = 644 ]
	envelope "$id" > "$T/env"
	grep -qx "F $(id -un)@mx.postern.test" "$T/env"
	grep -qx "R P - - bob@example.org" "$T/env"
	grep -qx "A origin=local" "$T/env"
	grep -qx "A uid=$(id -u)" "$T/env"
	grep -qx "B 7BIT" "$T/env"
	# Every LF is preceded by CR, and the body is intact.
	content "$id" | python3 -c '
import sys
d = sys.stdin.buffer.read()
assert d.count(b"\n") == d.count(b"\r\n"), d
assert d.endswith(b"\r\n\r\nline one\r\nline two\r\n"), d'
	# No temporary file is left behind.
	[ -z "$(find "$T/queue/maildrop" -name '.*' -type f)" ]
}

@test "missing Date, Message-ID and From are added (RFC 5322 3.6)" {
	sm alice@example.org <<<$'Subject: bare\n\nbody'
	id=$(only_id)
	content "$id" > "$T/msg"
	python3 - "$T/msg" "$id" "$(id -un)" <<'PY'
import sys, email, email.utils, email.policy
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
qid, user = sys.argv[2], sys.argv[3]
assert msg['Subject'] == 'bare'
assert email.utils.parsedate_to_datetime(msg['Date']) is not None
mid = msg['Message-ID']
assert mid.startswith('<') and mid.endswith('@mx.postern.test>') and qid in mid, mid
assert email.utils.parseaddr(msg['From'])[1] == user + '@mx.postern.test', msg['From']
rcvd = msg.get_all('Received')
assert len(rcvd) == 1 and 'id ' + qid in rcvd[0] and 'mx.postern.test' in rcvd[0], rcvd
for h in ('Date', 'Message-ID', 'From'):
    assert len(msg.get_all(h)) == 1, h
assert msg.get_content() == 'body\n', repr(msg.get_content())
PY
}

@test "headers the message has are kept and not added again" {
	sm alice@example.org <<-'EOF'
	From: Someone Else <other@example.net>
	Date: Mon, 1 Jan 2024 10:00:00 +0100
	Message-ID: <keep.this@example.net>
	Subject: complete

	body
	EOF
	id=$(only_id)
	content "$id" > "$T/msg"
	[ "$(grep -c '^From:' "$T/msg")" -eq 1 ]
	[ "$(grep -c '^Date:' "$T/msg")" -eq 1 ]
	[ "$(grep -ic '^Message-ID:' "$T/msg")" -eq 1 ]
	grep -q '^From: Someone Else <other@example.net>' "$T/msg"
	grep -q '^Date: Mon, 1 Jan 2024 10:00:00 +0100' "$T/msg"
	grep -q '^Message-ID: <keep.this@example.net>' "$T/msg"
}

@test "a message without a header section gets one before its body" {
	printf 'just a line of text\nand another\n' | sm carol@example.org
	id=$(only_id)
	content "$id" > "$T/msg"
	python3 - "$T/msg" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
head, sep, body = d.partition(b'\r\n\r\n')
assert sep and body == b'just a line of text\r\nand another\r\n', d
assert b'\r\nDate: ' in head and b'\r\nFrom: ' in head
PY
}

@test "-t takes To, Cc and Bcc, removes Bcc, adds command-line recipients" {
	sm -t -oi extra@example.org <<-'EOF'
	To: Bob <bob@example.net>, "Smith, Carol" <carol@example.com>
	Cc: team: dave@example.org, (a comment) erin@example.org;,
	  frank@example.org
	Bcc: hidden@example.org, bob@example.net
	Return-Path: <forged@example.com>
	Subject: -t

	body
	EOF
	id=$(only_id)
	envelope "$id" | sed -n 's/^R P - - //p' > "$T/rcpts"
	printf '%s\n' extra@example.org bob@example.net carol@example.com \
		dave@example.org erin@example.org frank@example.org \
		hidden@example.org | diff - "$T/rcpts"
	content "$id" > "$T/msg"
	refute grep -qi '^Bcc:' "$T/msg"
	refute grep -q 'hidden@example.org' "$T/msg"
	refute grep -qi '^Return-Path:' "$T/msg"
	grep -q '^To: Bob <bob@example.net>' "$T/msg"
	grep -q '^  frank@example.org' "$T/msg"
}

@test "-t uses the Resent- headers of a resent message" {
	sm -t <<-'EOF'
	To: original@example.org
	Resent-To: new@example.org
	Resent-Bcc: newhidden@example.org
	Subject: resent

	body
	EOF
	id=$(only_id)
	envelope "$id" | sed -n 's/^R P - - //p' > "$T/rcpts"
	printf '%s\n' new@example.org newhidden@example.org | diff - "$T/rcpts"
	refute grep -qi '^Resent-Bcc:' <(content "$id")
}

@test "a lone dot ends the message unless -i or -oi is given" {
	printf 'Subject: d\n\nbefore\n..two dots\n.\nafter\n' | sm a@example.org
	printf 'Subject: d\n\nbefore\n..two dots\n.\nafter\n' | sm -i a@example.org
	printf 'Subject: d\n\nbefore\n.\nafter\n' | sm -oi a@example.org
	ids=($(maildrop_ids))
	[ "${#ids[@]}" -eq 3 ]
	content "${ids[0]}" | python3 -c '
import sys; d = sys.stdin.buffer.read()
assert d.endswith(b"\r\n\r\nbefore\r\n..two dots\r\n"), d'
	content "${ids[1]}" | python3 -c '
import sys; d = sys.stdin.buffer.read()
assert d.endswith(b"\r\n\r\nbefore\r\n..two dots\r\n.\r\nafter\r\n"), d'
	content "${ids[2]}" | python3 -c '
import sys; d = sys.stdin.buffer.read()
assert d.endswith(b"before\r\n.\r\nafter\r\n"), d'
}

@test "-f sets the sender, -F the full name; -f <> is the null sender" {
	sm -f list-bounces@example.org -F 'Mailing List, Inc.' a@example.org <<<$'Subject: f\n\nx'
	sm -f '<>' b@example.org <<<$'Subject: null\n\nx'
	sm -f plainuser -F Plain c@example.org <<<$'Subject: local\n\nx'
	ids=($(maildrop_ids))
	envelope "${ids[0]}" | grep -qx 'F list-bounces@example.org'
	content "${ids[0]}" | grep -q '^From: "Mailing List, Inc." <list-bounces@example.org>'
	envelope "${ids[1]}" | grep -qx 'F '
	content "${ids[1]}" | grep -q '^From: MAILER-DAEMON'
	envelope "${ids[2]}" | grep -qx 'F plainuser@mx.postern.test'
	content "${ids[2]}" | grep -q '^From: Plain <plainuser@mx.postern.test>'
}

@test "DSN options -N -R -V reach the envelope" {
	sm -N success,delay -R hdrs -V env42 a@example.org <<<$'Subject: dsn\n\nx'
	id=$(only_id)
	envelope "$id" > "$T/env"
	grep -qx 'E env42' "$T/env"
	grep -qx 'N HDRS' "$T/env"
	grep -qx 'R P SD - a@example.org' "$T/env"
	run sm -N never,success a@example.org </dev/null
	[ "$status" -eq 64 ]
}

@test "a python email client: UTF-8 headers and 8-bit body via sendmail -t -oi" {
	python3 - "$BUILD/sendmail" "$CONF" <<'PY'
import subprocess, sys
from email.message import EmailMessage
m = EmailMessage()
m['From'] = 'Jörg <joerg@example.org>'
m['To'] = 'Zoë <zoe@example.net>'
m['Subject'] = 'Grüße aus Köln'
m.set_content('Schöne Grüße\n.\nEnde\n', cte='8bit')
p = subprocess.run([sys.argv[1], '-C', sys.argv[2], '-t', '-oi'],
                   input=m.as_bytes())
sys.exit(p.returncode)
PY
	id=$(only_id)
	envelope "$id" > "$T/env"
	grep -qx 'B 8BITMIME' "$T/env"
	grep -qx 'R P - - zoe@example.net' "$T/env"
	content "$id" > "$T/msg"
	python3 - "$T/msg" <<'PY'
import sys, email, email.policy
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
assert str(msg['Subject']) == 'Grüße aus Köln', msg['Subject']
assert msg.get_content() == 'Schöne Grüße\n.\nEnde\n', repr(msg.get_content())
assert msg['From'].addresses[0].addr_spec == 'joerg@example.org'
PY
}

@test "UTF-8 addresses set SMTPUTF8" {
	sm 'jürgen@bücher.example' <<<$'Subject: u\n\nx'
	id=$(only_id)
	envelope "$id" | grep -qx 'U'
	envelope "$id" | grep -qx 'R P - - jürgen@bücher.example'
}

@test "usage errors: no recipients, bad addresses, unknown options" {
	run sm <<<$'Subject: x\n\nx'
	[ "$status" -eq 64 ]
	[[ "$output" == *"no recipients"* ]]
	run sm -t <<<$'Subject: no to\n\nx'
	[ "$status" -eq 64 ]
	run sm 'bad address@@example.org' <<<$'Subject: x\n\nx'
	[ "$status" -eq 65 ]
	[[ "$output" == *"bad recipient address"* ]]
	run sm -t <<<$'To: ok@example.org, <broken@>\n\nx'
	[ "$status" -eq 65 ]
	[[ "$output" == *"in To:"* ]]
	run sm -Q a@example.org </dev/null
	[ "$status" -eq 64 ]
	[[ "$output" == *"unknown option -Q"* ]]
	run sm -bd </dev/null
	[ "$status" -eq 64 ]
	run sm -f
	[ "$status" -eq 64 ]
	[ -z "$(maildrop_ids)" ]
	# sendmail 8 options without meaning here are accepted.
	sm -oem -odb -oQ/tmp -U -m -n a@example.org <<<$'Subject: o\n\nx'
	[ -n "$(maildrop_ids)" ]
}

@test "sendmail -bs: swaks submits over a pipe, pipelined too" {
	run swaks --pipe "$BUILD/sendmail -C $CONF -bs" --helo client.example \
		--from alice@example.org --to bob@example.net,carol@example.net \
		--header 'Subject: over a pipe' --body $'line\n.dot\n.'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"250-PIPELINING"* ]]
	[[ "$output" == *"250-8BITMIME"* ]]
	[[ "$output" == *"250 2.0.0 Ok: queued as "* ]]
	id=$(only_id)
	[[ "$output" == *"queued as $id"* ]]
	envelope "$id" > "$T/env"
	grep -qx "F alice@example.org" "$T/env"
	grep -qx "R P - - bob@example.net" "$T/env"
	grep -qx "R P - - carol@example.net" "$T/env"
	grep -qx "A origin=local" "$T/env"
	grep -qx "A uid=$(id -u)" "$T/env"
	content "$id" > "$T/msg"
	python3 - "$T/msg" "$id" <<'PY'
import sys, email, email.policy
msg = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
rcvd = msg.get_all('Received')
assert len(rcvd) == 1, rcvd
assert rcvd[0].startswith('from client.example by mx.postern.test'), rcvd
assert 'with ESMTP id ' + sys.argv[2] in rcvd[0], rcvd
assert msg['Subject'] == 'over a pipe'
assert msg['Message-ID'] and msg['Date'], msg
# swaks stuffs the dots and we take them off again: the lines arrive as
# written (swaks adds empty lines at the end).
assert msg.get_content().startswith('line\n.dot\n.\n'), repr(msg.get_content())
PY
	run swaks --pipe "$BUILD/sendmail -C $CONF -bs" --pipeline \
		--from alice@example.org --to dave@example.net
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(maildrop_ids | wc -l)" -eq 2 ]
}

@test "sendmail -bs: replies to bad commands, LF line ends, a message cut short" {
	run sm -bs < <(printf '%s\n' 'MAIL FROM:<a@example.org>' 'EHLO' \
		'HELO client.example' 'RCPT TO:<b@example.org>' \
		'MAIL FROM:<a@example.org> SIZE=10' 'MAIL FROM:<a@example.org>' \
		'DATA' 'RCPT TO:<bad@@x>' 'RCPT TO:<b@example.org> NOTIFY=NEVER' \
		'RCPT TO:<bob>' 'BDAT 10 LAST' 'FOO' 'DATA' 'Subject: lf' '' \
		'typed by hand' '.' 'QUIT')
	echo "$output"
	[ "$status" -eq 0 ]
	want=(
		'220 mx.postern.test ESMTP postern'
		'503 5.5.1 Error: send HELO/EHLO first'
		'501 5.5.4 Syntax: EHLO hostname'
		'250 mx.postern.test'
		'503 5.5.1 Error: need MAIL command'
		'555 5.5.4 '
		'250 2.1.0 Ok'
		'503 5.5.1 Error: need RCPT command'
		'501 5.1.3 Bad recipient address syntax'
		'555 5.5.4 '
		'250 2.1.5 Ok'
		'502 5.5.1 Error: command not implemented'
		'500 5.5.2 Error: command not recognized'
		'354 '
		'250 2.0.0 Ok: queued as '
		'221 2.0.0 Bye'
	)
	for i in "${!want[@]}"; do
		[[ "${lines[$i]}" == "${want[$i]}"* ]] || {
			echo "# line $i: ${lines[$i]}, want ${want[$i]}" >&3
			return 1
		}
	done
	id=$(only_id)
	envelope "$id" | grep -qx "R P - - bob@mx.postern.test"
	content "$id" | grep -q $'^typed by hand\r$'
	# The input ends inside a message: nothing is queued.
	rm -f "$T/queue/maildrop/$id"
	run sm -bs < <(printf '%s\r\n' 'EHLO c' 'MAIL FROM:<a@example.org>' \
		'RCPT TO:<b@example.org>' 'DATA' 'Subject: cut' '' 'half')
	[ "$status" -eq 0 ]
	[[ "$output" == *"354 "* ]]
	[ -z "$(maildrop_ids)" ]
}

@test "sendmail -bs: a message over message_size_limit gets 552 and leaves nothing" {
	echo "message_size_limit = 1000" >> "$CONF/postern.conf"
	run sm -bs < <(printf '%s\r\n' 'EHLO c' 'MAIL FROM:<a@example.org> SIZE=5000' \
		'MAIL FROM:<a@example.org>' 'RCPT TO:<b@example.org>' 'DATA'
		for i in $(seq 100); do printf '%s\r\n' "line $i of a long message"; done
		printf '%s\r\n' '.' 'QUIT')
	echo "$output"
	[[ "$output" == *"250-SIZE 1000"* ]]
	[[ "$output" == *"552 5.3.4 Message size exceeds fixed limit"* ]]
	[[ "$output" == *"552 5.3.4 Error: message file too big"* ]]
	[[ "$output" == *"221 2.0.0 Bye"* ]]
	[ -z "$(maildrop_ids)" ]
}

@test "a message over message_size_limit is refused and leaves nothing" {
	suite_conf message_size_limit 10k
	run sm a@example.org < <(python3 -c 'print("Subject: big\n"); print("x" * 20000)')
	[ "$status" -eq 65 ]
	[[ "$output" == *"message_size_limit"* ]]
	[ -z "$(find "$T/queue/maildrop" -type f)" ]
}

@test "queue trouble is a temporary failure (EX_TEMPFAIL)" {
	rmdir "$T/queue/maildrop"
	run sm a@example.org <<<$'Subject: x\n\nx'
	[ "$status" -eq 75 ]
	[[ "$output" == *"maildrop"* ]]
}

@test "a bad or missing configuration is EX_CONFIG" {
	run "$BUILD/sendmail" -C "$T/nonexistent" a@example.org </dev/null
	[ "$status" -eq 78 ]
	echo 'no_such_key = 1' >> "$CONF/postern.conf"
	run sm a@example.org </dev/null
	[ "$status" -eq 78 ]
	[[ "$output" == *"no_such_key"* ]]
}

@test "POSTERN_CONFIG_DIR is used when nothing is elevated" {
	POSTERN_CONFIG_DIR="$CONF" run "$BUILD/sendmail" a@example.org <<<$'Subject: env\n\nx'
	[ "$status" -eq 0 ]
	[ -n "$(maildrop_ids)" ]
}

@test "mailq and sendmail -bp list maildrop" {
	run "$BUILD/mailq" -C "$CONF"
	[ "$status" -eq 0 ]
	[ "$output" = "Mail queue is empty" ]
	sm -f s@example.org r@example.org <<<$'Subject: q\n\nx'
	id=$(only_id)
	ln -s "$BUILD/sendmail" "$T/mailq"
	run "$T/mailq" -C "$CONF"
	[ "$status" -eq 0 ]
	[[ "${lines[1]}" == "$id "*"s@example.org" ]]
	[[ "${lines[2]}" =~ ^\ +r@example.org$ ]]
	[[ "$output" == *"in 1 Request."* ]]
	run sm -bp
	[ "$status" -eq 0 ]
	[[ "$output" == *"$id"* ]]
}

@test "setgid postdrop: -C and the environment cannot borrow the group" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to make a setgid copy"
	# A sanitizer runtime cannot read its options in a setgid process and
	# LeakSanitizer then fails the exit status (make check-sanitize).
	if grep -q __asan_init "$BUILD/sendmail"; then
		skip "sanitizer build: LeakSanitizer cannot run setgid"
	fi
	group=$(id -gn "$TEST_USER")
	chown "$TEST_USER:$group" "$T/queue/maildrop"
	install -d -m 0755 "$T/bin"
	install -m 2755 -g "$group" "$BUILD/sendmail" "$T/bin/sendmail"
	as_nobody() {
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
	}
	# Without the group, maildrop/ can be neither listed nor written.
	run as_nobody ls "$T/queue/maildrop"
	[ "$status" -ne 0 ]
	# -C from an ordinary user gives up the group before it is used.
	run as_nobody "$T/bin/sendmail" -C "$CONF" a@example.org <<<$'Subject: x\n\nx'
	[ "$status" -eq 75 ]
	[[ "$output" == *"Permission denied"* ]]
	# The environment of a setgid run is ignored: the default config
	# directory is used instead of POSTERN_CONFIG_DIR.
	if [ ! -e /etc/postern/postern.conf ]; then
		run as_nobody env POSTERN_CONFIG_DIR="$CONF" "$T/bin/sendmail" \
			a@example.org <<<$'Subject: x\n\nx'
		[ "$status" -eq 78 ]
		[[ "$output" == *"/etc/postern/postern.conf"* ]]
	fi
	[ -z "$(find "$T/queue/maildrop" -type f)" ]
}

@test "the postdrop group alone can submit into maildrop it cannot list" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to switch users"
	group=$(id -gn "$TEST_USER")
	chown "$TEST_USER:$group" "$T/queue/maildrop"
	# nobody with the maildrop group as its group: the rights a setgid
	# sendmail has (write and search, no read), without elevation, so
	# that the test configuration may come from the environment.
	run setpriv --reuid=nobody --regid="$group" --clear-groups \
		env POSTERN_CONFIG_DIR="$CONF" "$BUILD/sendmail" -v a@example.org <<<$'Subject: x\n\nx'
	[ "$status" -eq 0 ]
	id=$(only_id)
	[[ "$output" == *"queued as $id"* ]]
	[ "$(stat -c '%U %a' "$T/queue/maildrop/$id")" = "nobody 644" ]
	envelope "$id" | grep -qx "A uid=$(id -u nobody)"
	envelope "$id" | grep -qx "F nobody@mx.postern.test"
}

@test "newaliases builds every hash table of alias_maps" {
	printf 'postmaster: root\nteam: a@example.org, b@example.org\n' > "$CONF/aliases"
	printf 'extra: c@example.org\n' > "$CONF/aliases2"
	suite_conf alias_maps "hash:$CONF/aliases, hash:$CONF/aliases2"
	ln -s "$BUILD/sendmail" "$T/newaliases"
	run "$T/newaliases" -C "$CONF"
	[ "$status" -eq 0 ]
	[ -f "$CONF/aliases.db" ] && [ -f "$CONF/aliases2.db" ]
	run "$BUILD/postern" -c "$CONF" map query "hash:$CONF/aliases" team
	[ "$status" -eq 0 ]
	[[ "$output" == *"a@example.org"*"b@example.org"* ]]
	run "$BUILD/postern" -c "$CONF" map query "hash:$CONF/aliases2" extra
	[ "$output" = "c@example.org" ]
	# A broken source fails with a message, and sendmail -bi is the same.
	printf 'no colon here\n' > "$CONF/aliases2"
	run sm -bi
	[ "$status" -ne 0 ]
	[[ "$output" == *"aliases2"* ]]
}

@test "qmgr picks up what sendmail drops" {
	[ -x "$BUILD/qmgr" ] || skip "qmgr not built yet"
	suite_start
	sm -v postmaster@postern.test <<<$'Subject: pickup\n\nx' 2> "$T/sm.err"
	id=$(sed -n 's/.*queued as //p' "$T/sm.err")
	[ -n "$id" ]
	wait_until '[ -z "$(maildrop_ids)" ]' 10
	[ -z "$(maildrop_ids)" ]
}

# N "Received:" header fields, then a subject and a body.
hops_message() {
	local i
	for ((i = 0; i < $1; i++)); do
		printf 'Received: from hop%d.example by x; Mon, 1 Jan 2026 00:00:00 +0000\n' "$i"
	done
	printf 'Subject: hops %d\n\nloop?\n' "$1"
}

@test "hop count: 51 Received headers are refused with EX_DATAERR and nothing in maildrop; 50 are queued" {
	run sm a@example.org < <(hops_message 51)
	echo "$output"
	[ "$status" -eq 65 ]
	[[ "$output" == *"too many Received: and Delivered-To: header fields (51, hopcount_limit is 50)"* ]]
	[ -z "$(maildrop_ids)" ]
	run sm a@example.org < <(hops_message 50)
	[ "$status" -eq 0 ]
	id=$(only_id)
	content "$id" | grep -q '^Subject: hops 50'
}

@test "sendmail -bs: hop count, bare CR, error limit and VRFY as smtpd and lmtpd" {
	echo "smtpd_error_limit = 3" >> "$CONF/postern.conf"
	run sm -bs < <(printf '%s\r\n' 'EHLO c' 'VRFY bob' 'MAIL FROM:' \
		'MAIL FROM:<a@example.org>' 'RCPT TO:<b@example.org>' 'DATA'
		hops_message 51 | sed 's/$/\r/'
		printf '%s\r\n' '.' 'MAIL FROM:<a@example.org>' 'RCPT TO:<b@example.org>' 'DATA'
		printf 'Subject: cr\r\n\r\nbare\rcr\r\n.\r\n'
		printf '%s\r\n' 'NOOP')
	echo "$output"
	[[ "$output" == *"252 2.0.0 "* ]]
	[[ "$output" == *"501 5.5.4 Syntax: MAIL FROM:<address>"* ]]
	[[ "$output" == *"554 5.4.6 Error: Too many hops"* ]]
	[[ "$output" == *"550 5.5.2 Error: bare <CR> received in message text"* ]]
	# three errors: 501, 554, 550; the third ends the session
	[[ "$output" == *"421 4.7.0 mx.postern.test Error: too many errors"* ]]
	[ -z "$(maildrop_ids)" ]
	run sm -bs < <(printf '%s\r\n' 'EHLO c' 'MAIL FROM:<a@example.org>' \
		'RCPT TO:<b@example.org>' 'DATA'
		hops_message 50 | sed 's/$/\r/'
		printf '%s\r\n' '.' 'QUIT')
	echo "$output"
	[[ "$output" == *"250 2.0.0 Ok: queued as "* ]]
	[ -n "$(only_id)" ]
}

@test "setgid: the postdrop group is given up for good, the saved GID too (setresgid)" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to make a setgid copy"
	if grep -q __asan_init "$BUILD/sendmail"; then
		skip "sanitizer build: LeakSanitizer cannot run setgid"
	fi
	group=$(id -gn "$TEST_USER")
	gid=$(id -g "$TEST_USER")
	install -d -m 0755 "$T/bin"
	install -m 2755 -g "$group" "$BUILD/sendmail" "$T/bin/sendmail"
	nogroup=$(getent group nogroup | cut -d: -f3)
	# -C from an ordinary user drops the group, then reads the message
	# from a FIFO that nobody writes yet: look at it while it waits.
	mkfifo -m 0666 "$T/fifo"
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$T/bin/sendmail" -C "$CONF" a@example.org < "$T/fifo" &
	pid=$!
	exec 9> "$T/fifo"
	# Poll (bounded) until sendmail itself sits in read(2) on the FIFO.
	status_gid=
	for ((i = 0; i < 200; i++)); do
		if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$T/bin/sendmail" ] &&
		    [ "$(cut -d' ' -f1 "/proc/$pid/syscall" 2>/dev/null)" = 0 ]; then
			status_gid=$(awk '/^Gid:/ { print $2, $3, $4 }' "/proc/$pid/status")
			break
		fi
		sleep 0.05
	done
	exec 9>&-
	wait "$pid" || true
	echo "# Gid: $status_gid (postdrop stand-in $gid, nogroup $nogroup)" >&3
	[ "$status_gid" = "$nogroup $nogroup $nogroup" ]
}
