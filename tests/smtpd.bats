#!/usr/bin/env bats
# smtpd: the protocol as real clients see it (swaks, Python smtplib, raw
# sockets for what a library will not send), started through master. One
# instance serves the whole file; every test uses its own addresses.
# test-runner: long

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	suite_init
	smtp_maps
	suite_start
}

teardown_file() {
	suite_stop
}

@test "greeting, EHLO extensions, HELO, QUIT" {
	run raw 'EHLO client.test\r\nHELO client.test\r\nQUIT\r\n'
	replies
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "220 mx.postern.test ESMTP postern" ]
	[ "${lines[1]}" = "250-mx.postern.test" ]
	for ext in PIPELINING "SIZE 52428800" ENHANCEDSTATUSCODES 8BITMIME DSN SMTPUTF8; do
		printf '%s\n' "${lines[@]}" | grep -qx "250-$ext"
	done
	[ "${lines[8]}" = "250 CHUNKING" ]
	[ "${reply[2]}" = "250 mx.postern.test" ]
	[ "${reply[3]}" = "221 2.0.0 Bye" ]
}

@test "swaks: a message is queued with envelope, attributes and Received" {
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" --helo swaks.test \
		--from sender1@example.org --to alice@postern.test \
		--header "Subject: swaks one"
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	[ -n "$id" ]
	run qtool show "$id"
	[ "$status" -eq 0 ]
	echo "$output" | grep -q '"sender": "sender1@example.org"'
	echo "$output" | grep -q '"address": "alice@postern.test"'
	echo "$output" | grep -q '"client_addr": "127.0.0.1"'
	echo "$output" | grep -q '"helo": "swaks.test"'
	echo "$output" | grep -q '"protocol": "ESMTP"'
	run qtool content "$id"
	echo "$output" | head -n 3 | grep -q "^Received: from swaks.test (localhost \[127.0.0.1\])"
	echo "$output" | grep -q "by mx.postern.test (postern) with ESMTP id $id"
	echo "$output" | grep -q "for <alice@postern.test>; "
	echo "$output" | grep -q "^Subject: swaks one"
	wait_for_log "$id: client=localhost\[127.0.0.1\]"
	# the project's own reader (mail/queue_*.c) agrees
	run "$POSTERN" -c "$T/conf" queue show "$id"
	[ "$status" -eq 0 ]
	echo "$output" | grep -qx "sender: <sender1@example.org>"
	echo "$output" | grep -qx "attribute: protocol=ESMTP"
	echo "$output" | grep -q "^recipient 0: <alice@postern.test>"
	echo "$output" | grep -q "^Received: from swaks.test (localhost \[127.0.0.1\])"
}

@test "Received has no for clause with two recipients" {
	run psend sender2@example.org alice@postern.test root@postern.test
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	run qtool content "$id"
	! echo "$output" | grep -q "for <"
	run qtool show "$id"
	echo "$output" | grep -q '"address": "root@postern.test"'
}

@test "command order: 503 5.5.1 for MAIL, RCPT, DATA out of sequence" {
	run raw 'MAIL FROM:<a@example.org>\r\nEHLO c.test\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\nMAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\nDATA\r\nRCPT TO:<nobody@postern.test>\r\nDATA\r\nQUIT\r\n'
	replies
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "503 5.5.1 Error: send HELO/EHLO first" ]
	[ "${reply[3]}" = "503 5.5.1 Error: need MAIL command" ]
	[ "${reply[4]}" = "503 5.5.1 Error: need RCPT command" ]
	[ "${reply[5]}" = "250 2.1.0 Ok" ]
	[ "${reply[6]}" = "503 5.5.1 Error: nested MAIL command" ]
	[ "${reply[7]}" = "503 5.5.1 Error: need RCPT command" ]
	[[ "${reply[8]}" == "550 5.1.1 <nobody@postern.test>: Recipient address rejected: User unknown"* ]]
	# RFC 2920: DATA after only failed RCPTs
	[ "${reply[9]}" = "554 5.5.1 Error: no valid recipients" ]
	[ "${reply[10]}" = "221 2.0.0 Bye" ]
}

@test "EHLO resets the transaction; HELO/EHLO need an argument" {
	run raw 'EHLO\r\nHELO \r\nEHLO bad\x01name\r\nEHLO c.test\r\nMAIL FROM:<a@example.org>\r\nEHLO c.test\r\nRCPT TO:<alice@postern.test>\r\nQUIT\r\n'
	[ "${lines[1]}" = "501 5.5.4 Syntax: EHLO hostname" ]
	[ "${lines[2]}" = "501 5.5.4 Syntax: HELO hostname" ]
	[[ "${lines[3]}" == "501 5.5.2 Syntax: EHLO hostname:"* ]]
	printf '%s\n' "${lines[@]}" | grep -qx "503 5.5.1 Error: need MAIL command"
}

@test "RSET, NOOP, VRFY, HELP, EXPN, unknown commands" {
	run raw 'EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRSET\r\nRCPT TO:<alice@postern.test>\r\nNOOP\r\nVRFY alice\r\nVRFY\r\nHELP\r\nEXPN staff\r\nETRN x\r\nXYZZY\r\nRSET x\r\nQUIT\r\n'
	replies
	out=$(printf '%s\n' "${reply[@]:2}")
	[ "${reply[2]}" = "250 2.1.0 Ok" ]
	[ "${reply[3]}" = "250 2.0.0 Ok" ]
	[ "${reply[4]}" = "503 5.5.1 Error: need MAIL command" ]
	[ "${reply[5]}" = "250 2.0.0 Ok" ]
	[[ "${reply[6]}" == "252 2.0.0 "* ]]
	! [[ "${reply[6]}" == *alice* ]]
	[ "${reply[7]}" = "501 5.5.4 Syntax: VRFY address" ]
	# no TLS here: HELP names neither STARTTLS nor AUTH, as EHLO does not
	[ "${reply[8]}" = "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP" ]
	[ "${reply[9]}" = "502 5.5.1 Error: command not implemented" ]
	[ "${reply[10]}" = "502 5.5.1 Error: command not implemented" ]
	[ "${reply[11]}" = "500 5.5.2 Error: command not recognized" ]
	[ "${reply[12]}" = "501 5.5.4 Syntax: RSET" ]
	[ "${reply[13]}" = "221 2.0.0 Bye" ]
}

@test "every reply carries an enhanced status code" {
	run raw 'EHLO c.test\r\nMAIL FROM:<a@example.org> FOO=1\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@[300.1.1.1]>\r\nRCPT TO:<alice@postern.test>\r\nBDAT 3\r\nabcBDAT 0 LAST\r\nNOOP\r\nVRFY x\r\nQUIT\r\n'
	replies
	# The greeting, EHLO and one reply for each of the nine commands:
	# a server that sends nothing fails here, not in an empty loop.
	[ "${#reply[@]}" -eq 11 ]
	for l in "${reply[@]:2}"; do
		[[ "$l" =~ ^[245][0-9][0-9]\ [245]\.[0-9]{1,3}\.[0-9]{1,3}\  ]] || { echo "no code: $l"; false; }
	done
}

@test "MAIL and RCPT parameters: SIZE, BODY, RET, ENVID, NOTIFY, ORCPT" {
	run psend --mail-opt SIZE=1000 --mail-opt BODY=8BITMIME --mail-opt RET=HDRS \
		--mail-opt ENVID=env+2Bid-1 \
		--rcpt-opt NOTIFY=SUCCESS,FAILURE --rcpt-opt "ORCPT=rfc822;Alice+2Btag@postern.test" \
		dsn@example.org alice@postern.test
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	run qtool show "$id"
	echo "$output" | grep -q '"body": "8BITMIME"'
	echo "$output" | grep -q '"ret": "HDRS"'
	echo "$output" | grep -q '"envid": "env+id-1"'
	echo "$output" | grep -q '"orcpt": "rfc822;Alice+tag@postern.test"'
	echo "$output" | grep -q '"notify": "SF"\|"notify": "FS"'
}

@test "an ORCPT the queue cannot hold (a space) is dropped, not the message" {
	run psend --rcpt-opt 'ORCPT=rfc822;"a+20b"@postern.test' sp@example.org alice@postern.test
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	run qtool show "$id"
	echo "$output" | grep -q '"orcpt": null'
}

@test "bad and unknown parameters: 501 5.5.4 and 555 5.5.4; SIZE over the limit 552" {
	run raw 'EHLO c.test\r\nMAIL FROM:<a@example.org> SIZE=abc\r\nMAIL FROM:<a@example.org> XFOO=1\r\nMAIL FROM:<a@example.org> SIZE=60000000\r\nMAIL FROM:<a@example.org> BODY=9BIT\r\nMAIL FROM:<a@example.org> RET=ALL\r\nMAIL FROM:<a@example.org>SIZE=1\r\nMAIL FROM:<a@example.org> ENVID=a+0Db\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@postern.test> NOTIFY=NEVER,DELAY\r\nRCPT TO:<alice@postern.test> ORCPT=nosemicolon\r\nRCPT TO:<alice@postern.test> FOO=BAR\r\nQUIT\r\n'
	replies
	[ "${reply[2]}" = "501 5.5.4 Bad SIZE syntax" ]
	[ "${reply[3]}" = "555 5.5.4 Unsupported MAIL parameter" ]
	[ "${reply[4]}" = "552 5.3.4 Message size exceeds fixed limit" ]
	[ "${reply[5]}" = "555 5.5.4 Unsupported BODY type" ]
	[ "${reply[6]}" = "501 5.5.4 Bad RET syntax" ]
	[ "${reply[7]}" = "501 5.5.4 Syntax: MAIL FROM:<address>" ]
	[ "${reply[8]}" = "501 5.5.4 Bad ENVID syntax" ]
	[ "${reply[9]}" = "250 2.1.0 Ok" ]
	[ "${reply[10]}" = "501 5.5.4 Bad NOTIFY syntax" ]
	[ "${reply[11]}" = "501 5.5.4 Bad ORCPT syntax" ]
	[ "${reply[12]}" = "555 5.5.4 Unsupported RCPT parameter" ]
}

@test "HELO session: no ESMTP parameters, protocol SMTP" {
	run raw 'HELO c.test\r\nMAIL FROM:<a@example.org> SIZE=10\r\nMAIL FROM:<helo@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\nSubject: helo\r\n\r\nhi\r\n.\r\nQUIT\r\n'
	[ "${lines[2]}" = "555 5.5.4 Unsupported MAIL parameter" ]
	id=$(queued_id "$output")
	[ -n "$id" ]
	run qtool content "$id"
	echo "$output" | grep -q "with SMTP id $id"
}

@test "addresses: null sender, postmaster, quoting, literals, source routes" {
	run raw 'EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<postmaster@postern.test>\r\nRCPT TO:<"alice"@postern.test>\r\nRCPT TO:<@relay.example,@other.example:root@postern.test>\r\nRCPT TO:<x@[127.0.0.1]>\r\nRCPT TO:<x@[IPv6:::1]>\r\nRCPT TO:<a b@postern.test>\r\nRCPT TO:<alice@postern..test>\r\nRCPT TO:alice@postern.test\r\nRCPT TO:<>\r\nRSET\r\nMAIL FROM:<a@@example.org>\r\nQUIT\r\n'
	replies
	[ "${reply[2]}" = "250 2.1.0 Ok" ]
	for i in 10 11 12 13 14 15; do [ "${lines[$i]}" = "250 2.1.5 Ok" ]; done
	for i in 16 17 19; do [[ "${lines[$i]}" == "501 5.1.3 Bad recipient address syntax"* ]]; done
	# no <>: tolerated, as Postfix does with strict_rfc821_envelopes = no
	[ "${reply[11]}" = "250 2.1.5 Ok" ]
	[[ "${reply[14]}" == "501 5.1.7 Bad sender address syntax"* ]]
}

@test "pipelining: MAIL, RCPT, RCPT, DATA and the text in one packet" {
	run raw 'EHLO c.test\r\nMAIL FROM:<pipe@example.org>\r\nRCPT TO:<alice@postern.test>\r\nRCPT TO:<nobody@postern.test>\r\nRCPT TO:<root@postern.test>\r\nDATA\r\nSubject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<pipe2@example.org>\r\nRCPT TO:<nobody2@postern.test>\r\nDATA\r\nRSET\r\nQUIT\r\n'
	replies
	[ "$status" -eq 0 ]
	[ "${reply[2]}" = "250 2.1.0 Ok" ]
	[ "${reply[3]}" = "250 2.1.5 Ok" ]
	[[ "${reply[4]}" == "550 5.1.1 <nobody@postern.test>"* ]]
	[ "${reply[5]}" = "250 2.1.5 Ok" ]
	[ "${reply[6]}" = "354 End data with <CR><LF>.<CR><LF>" ]
	[[ "${reply[7]}" == "250 2.0.0 Ok: queued as "* ]]
	[ "${reply[8]}" = "250 2.1.0 Ok" ]
	[[ "${reply[9]}" == "550 5.1.1 <nobody2@postern.test>"* ]]
	[ "${reply[10]}" = "554 5.5.1 Error: no valid recipients" ]
	[ "${reply[11]}" = "250 2.0.0 Ok" ]
	[ "${reply[12]}" = "221 2.0.0 Bye" ]
	[ "${#reply[@]}" -eq 13 ]
	wait_for_log 'NOQUEUE: reject: RCPT from localhost\[127.0.0.1\]: 550 5.1.1 <nobody@postern.test>: Recipient address rejected: User unknown in local recipient table; from=<pipe@example.org> to=<nobody@postern.test> proto=ESMTP helo=<c.test>'
}

@test "pipelining: 200 messages in one write get 200 queued replies in order" {
	msg='MAIL FROM:<many@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\nSubject: many\r\n\r\n.dot\r\n.\r\n'
	run raw --timeout 60 'EHLO c.test\r\n' "$msg" "$msg" "$msg" 'QUIT\r\n'
	[ "$(printf '%s\n' "${lines[@]}" | grep -c 'queued as')" -eq 3 ]
	big=$(python3 -c "import sys; sys.stdout.write(sys.argv[1] * 200)" "$msg")
	run raw --timeout 120 'EHLO c.test\r\n' "$big" 'QUIT\r\n'
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep -c 'queued as')" -eq 200 ]
	[ "${lines[-1]}" = "221 2.0.0 Bye" ]
}

@test "dot-stuffing: leading dots are unstuffed, the content is byte-exact" {
	printf 'Subject: dots\r\n\r\n.\r\n..\r\n...leading\r\nmid.dle\r\n. \r\nend\r\n' > "$T/dots.eml"
	run psend --file "$T/dots.eml" dots@example.org alice@postern.test
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	qtool body "$id" > "$T/dots.got"
	cmp "$T/dots.eml" "$T/dots.got"
}

@test "BDAT: chunks, no dot-unstuffing, BDAT 0 LAST; BINARYMIME (not offered) refused" {
	printf 'Subject: chunks\r\n\r\n.not stuffed\r\n..two\r\nline\r\n' > "$T/chunk.eml"
	run psend --bdat 7 --file "$T/chunk.eml" bdat@example.org alice@postern.test
	[ "$status" -eq 0 ]
	echo "$output" | grep -q "BDAT 250 2.0.0 Ok: 7 octets received"
	id=$(queued_id "$output")
	qtool body "$id" > "$T/chunk.got"
	cmp "$T/chunk.eml" "$T/chunk.got"
	run raw 'EHLO c.test\r\nMAIL FROM:<b0@example.org>\r\nRCPT TO:<alice@postern.test>\r\nBDAT 0 LAST\r\nMAIL FROM:<bin@example.org> BODY=BINARYMIME\r\nQUIT\r\n'
	replies
	echo "$output"
	[[ "${reply[4]}" == "250 2.0.0 Ok: queued as "* ]]
	# RFC 3030 3: BINARYMIME only where it is offered; we offer it not.
	refute_line() { ! printf '%s\n' "${lines[@]}" | grep -qx "$1"; }
	refute_line "250-BINARYMIME"
	[ "${reply[5]}" = "555 5.5.4 Unsupported BODY type" ]
}

@test "BDAT: DATA after BDAT refused, errors consume the chunk, bad syntax closes" {
	run raw 'EHLO c.test\r\nBDAT 5\r\nxxxxxMAIL FROM:<bx@example.org>\r\nRCPT TO:<alice@postern.test>\r\nBDAT 3\r\nabcDATA\r\nBDAT 4 LAST\r\ndef\nRCPT TO:<alice@postern.test>\r\nBDAT 10 LAST\r\nQUIT\r\nxyzzNOOP\r\nBDAT x\r\nNOOP\r\n'
	replies
	[ "${reply[2]}" = "503 5.5.1 Error: need MAIL command" ]
	[ "${reply[3]}" = "250 2.1.0 Ok" ]
	[ "${reply[4]}" = "250 2.1.5 Ok" ]
	[ "${reply[5]}" = "250 2.0.0 Ok: 3 octets received" ]
	[ "${reply[6]}" = "503 5.5.1 Error: DATA after BDAT" ]
	# "abcdef\n": a bare LF in a text message is refused
	[ "${reply[7]}" = "550 5.5.2 Error: bare <CR> or <LF> received in message text" ]
	[ "${reply[8]}" = "503 5.5.1 Error: need MAIL command" ]
	[ "${reply[9]}" = "503 5.5.1 Error: need MAIL command" ]
	[ "${reply[10]}" = "250 2.0.0 Ok" ]
	[ "${reply[11]}" = "521 5.5.4 Syntax: BDAT count [LAST]" ]
	[ "${#reply[@]}" -eq 12 ]
}

@test "8-bit and UTF-8: SMTPUTF8 addresses, UTF8SMTP in Received, 553 without it" {
	printf 'Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGr\xc3\xbc\xc3\x9fe, J\xc3\xb6rg\r\n' > "$T/utf8.eml"
	run psend --mail-opt SMTPUTF8 --mail-opt BODY=8BITMIME --file "$T/utf8.eml" \
		"j$(printf '\xc3\xb6')rg@b$(printf '\xc3\xbc')cher.example" "alice@postern.test"
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	run qtool show "$id"
	echo "$output" | grep -q '"smtputf8": true'
	echo "$output" | grep -q '"protocol": "UTF8SMTP"'
	qtool content "$id" | grep -q "with UTF8SMTP id $id"
	qtool body "$id" | cmp - "$T/utf8.eml"
	run raw 'EHLO c.test\r\nMAIL FROM:<j\xc3\xb6rg@example.org>\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<\xc3\xa9@postern.test>\r\nQUIT\r\n'
	replies
	[ "${reply[2]}" = "553 5.6.7 Error: non-ASCII sender address needs SMTPUTF8" ]
	[ "${reply[4]}" = "553 5.6.7 Error: non-ASCII recipient address needs SMTPUTF8" ]
}

@test "a 20 MB message through smtplib, byte-exact" {
	run psend --size-mb 20 big@example.org alice@postern.test
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import smtp_send; sys.stdout.buffer.write(smtp_send.make_message(0, 20))' "$HELPERS" > "$T/big.eml"
	qtool body "$id" > "$T/big.got"
	[ "$(stat -c %s "$T/big.got")" -gt 20000000 ]
	cmp "$T/big.eml" "$T/big.got"
	rm -f "$T/big.eml" "$T/big.got"
}

@test "SMTP smuggling: <LF>.<LF>, <LF>.<CR><LF>, <CR>.<CR> never end the data" {
	for end in '\n.\n' '\n.\r\n' '\r.\r' '\r\n.\n' '\n.\r'; do
		run raw "EHLO c.test\r\nMAIL FROM:<smuggle@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\nSubject: outer\r\n\r\nouter${end}MAIL FROM:<smuggled@example.org>\r\nRCPT TO:<root@postern.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\nQUIT\r\n"
		replies
		[ "$status" -eq 0 ]
		# one answer for the whole text: refused, nothing queued
		[ "${reply[5]}" = "550 5.5.2 Error: bare <CR> or <LF> received in message text" ]
		[ "${reply[6]}" = "221 2.0.0 Bye" ]
		[ "${#reply[@]}" -eq 7 ]
	done
	# (qmgr may move files meanwhile: -s, and judge by what is found)
	run grep -rls 'smuggled@example.org' "$T/queue"
	[ -z "$output" ]
	wait_for_log 'NOQUEUE: reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 550 5.5.2'
	wait_for_log 'warning: bare <CR> or <LF> in message text'
}

@test "MAIL and RCPT may pass 512 octets with parameters, up to 2048; other commands may not" {
	orcpt=$(printf 'x%.0s' {1..480})
	run raw 'EHLO c.test\r\nMAIL FROM:<long@example.org> RET=HDRS ENVID=env1\r\n' "RCPT TO:<alice@postern.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;$orcpt@example.org\r\n" "NOOP $(printf 'y%.0s' {1..600})\r\n" "RCPT TO:<alice@postern.test> ORCPT=rfc822;$(printf 'z%.0s' {1..2100})\r\n" 'RSET\r\nQUIT\r\n'
	replies
	echo "$output"
	[ "${reply[2]}" = "250 2.1.0 Ok" ]
	[ "${reply[3]}" = "250 2.1.5 Ok" ]
	[ "${reply[4]}" = "500 5.5.2 Error: line too long" ]
	[ "${reply[5]}" = "500 5.5.2 Error: line too long" ]
	[ "${reply[6]}" = "250 2.0.0 Ok" ]
}

@test "commands: bare LF, NUL and over-long lines are refused" {
	run raw 'EHLO c.test\r\nNOOP\nQUIT\r\nNO\x00OP\r\n' "NOOP $(printf 'x%.0s' {1..600})\r\n" 'MAIL FROM:<a@example.org>\rRCPT TO:<b@example.org>\r\nQUIT\r\n'
	replies
	[ "${reply[2]}" = "500 5.5.2 Error: bare <CR> or <LF> received in command" ]
	[ "${reply[3]}" = "500 5.5.2 Error: NUL character in command" ]
	[ "${reply[4]}" = "500 5.5.2 Error: line too long" ]
	[ "${reply[5]}" = "500 5.5.2 Error: bare <CR> or <LF> received in command" ]
	[ "${reply[6]}" = "221 2.0.0 Bye" ]
	wait_for_log 'warning: bare <LF> in command from localhost'
}

@test "local recipients: mailbox, alias, +extension, unknown; relay from mynetworks" {
	run raw 'EHLO c.test\r\nMAIL FROM:<pol@example.org>\r\nRCPT TO:<ALICE@Postern.Test>\r\nRCPT TO:<alice+news@postern.test>\r\nRCPT TO:<root@postern.test>\r\nRCPT TO:<carol@localhost>\r\nRCPT TO:<dave@localhost>\r\nRCPT TO:<someone@remote.example>\r\nQUIT\r\n'
	replies
	for i in 10 11 12 13; do [ "${lines[$i]}" = "250 2.1.5 Ok" ]; done
	[ "${reply[7]}" = "550 5.1.1 <dave@localhost>: Recipient address rejected: User unknown in local recipient table" ]
	# 127.0.0.1 is in the default mynetworks
	[ "${reply[8]}" = "250 2.1.5 Ok" ]
}

@test "disconnect line counts commands; client gone mid-DATA queues nothing" {
	run raw 'EHLO count.test\r\nMAIL FROM:<cnt@example.org>\r\nRCPT TO:<alice@postern.test>\r\nRCPT TO:<nobody3@postern.test>\r\nNOOP\r\nBOGUS\r\nQUIT\r\n'
	wait_for_log 'disconnect from localhost\[127.0.0.1\] ehlo=1 mail=1 rcpt=1/2 noop=1 quit=1 unknown=0/1 commands=5/7'
	# smtpd logs "ID: client=" for each message it commits
	before=$(grep -c ': client=' "$T/log" || true)
	run raw 'EHLO gone.test\r\nMAIL FROM:<gone@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\nSubject: half\r\n\r\nhalf a message'
	wait_for_log 'lost connection after DATA from localhost'
	[ "$(grep -c ': client=' "$T/log" || true)" -eq "$before" ]
	run grep -rls 'half a message' "$T/queue"
	[ -z "$output" ]
}

@test "submission port: the same session" {
	run raw_port "$SUBMISSION_PORT" 'EHLO c.test\r\nMAIL FROM:<sub@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\nSubject: sub\r\n\r\nx\r\n.\r\nQUIT\r\n'
	replies
	[[ "${reply[5]}" == "250 2.0.0 Ok: queued as "* ]]
}

@test "hop count: 51 Received headers get 554 5.4.6 at the end of the data and nothing is queued; 50 are queued" {
	hops() {
		local i
		for ((i = 0; i < $1; i++)); do
			printf 'Received: from hop%d.example by x; Mon, 1 Jan 2026 00:00:00 +0000\r\n' "$i"
		done
		printf 'Subject: hops %d\r\n\r\nloop?\r\n' "$1"
	}
	hops 51 > "$T/hops51.eml"
	hops 50 > "$T/hops50.eml"
	run psend --file "$T/hops51.eml" hops51@example.org alice@postern.test
	echo "$output"
	[[ "$output" == *"554"*"5.4.6"*"Too many hops"* ]]
	run grep -rls 'hops51@example.org' "$T/queue"
	[ -z "$output" ]
	wait_for_log 'NOQUEUE: reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 554 5.4.6 Error: Too many hops'
	run psend --file "$T/hops50.eml" hops50@example.org alice@postern.test
	[ "$status" -eq 0 ]
	id=$(queued_id "$output")
	[ -n "$id" ]
	# BDAT takes the same path through the core.
	run psend --bdat 1000 --file "$T/hops51.eml" hops51b@example.org alice@postern.test
	[[ "$output" == *"554"*"5.4.6"* ]]
}

@test "quoted local parts (RFC 5321 4.1.2) end to end: smtpd accepts, deliver sends the exact address to the next hop" {
	load helpers/peers
	relay=$(sed -n 's/^relayhost *= *\[127.0.0.1\]:\([0-9]*\)$/\1/p' "$T/conf/postern.conf" | tail -n1)
	[ -n "$relay" ]
	start_sink e2e "127.0.0.1:$relay"
	run raw 'EHLO c.test\r\nMAIL FROM:<"x>y"@example.org>\r\nRCPT TO:<"a b"@remote.example>\r\nRCPT TO:<"odd<>\\"q"@remote.example>\r\nRCPT TO:<"a..b"@remote.example>\r\nDATA\r\nSubject: quoted\r\n\r\nq\r\n.\r\nQUIT\r\n'
	replies
	echo "$output"
	[[ "${reply[7]}" == "250 2.0.0 Ok: queued as "* ]]
	for ((i = 0; i < 100; i++)); do
		grep -q 'smtp-sink: DATA' "$T/e2e.out" && break
		sleep 0.1
	done
	cat "$T/e2e.out"
	grep -qF 'smtp-sink: MAIL FROM:<"x>y"@example.org>' "$T/e2e.out"
	grep -qF 'smtp-sink: RCPT TO:<"a b"@remote.example>' "$T/e2e.out"
	grep -qF 'smtp-sink: RCPT TO:<"odd<>\"q"@remote.example>' "$T/e2e.out"
	grep -qF 'smtp-sink: RCPT TO:<"a..b"@remote.example>' "$T/e2e.out"
	! grep -q 'malformed job' "$T/log"
	peers_stop
}

@test "BDAT syntax is RFC 3030's: one SP before LAST and nothing after it, else 521 and the session ends" {
	for arg in '3 LAST ' '3  LAST' '3 ' '03x'; do
		run raw "EHLO c.test\r\nMAIL FROM:<bdatsyn@example.org>\r\nRCPT TO:<alice@postern.test>\r\nBDAT $arg\r\nabcNOOP\r\n"
		replies
		echo "$arg: $output"
		[ "${reply[4]}" = "521 5.5.4 Syntax: BDAT count [LAST]" ]
		[ "${#reply[@]}" -eq 5 ]
	done
	run raw 'EHLO c.test\r\nMAIL FROM:<bdatsyn@example.org>\r\nRCPT TO:<alice@postern.test>\r\nBDAT 003 last\r\nabcQUIT\r\n'
	replies
	[[ "${reply[4]}" == "250 2.0.0 Ok: queued as "* ]]
}
