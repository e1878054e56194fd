#!/usr/bin/env bats
# deliver's one-round-trip SMTP transaction (deliver/deliver_smtp.c,
# one_trip()): to a server that offers PIPELINING and CHUNKING, a message
# of up to 64 KiB goes as MAIL, the RCPTs and BDAT n LAST with its
# content in one write, and the replies come back together (RFC 2920,
# RFC 3030 2). Peers: a scripted server whose refusals the envelope asks
# for (tests/helpers/chunking_peer.py), the same without CHUNKING for the
# DATA path's answers, and Postfix's smtpd, which offers CHUNKING
# (Postfix's smtp-sink does not). deliver is driven through its socket
# as qmgr drives it (tests/helpers/deliver-job), started by master.
# test-runner: long

load helpers/suite
load helpers/peers

setup() {
	peers_setup 10s 5s
}

teardown() {
	peers_teardown
}

# start_peer NAME [chunking_peer.py options]: NAME's port in $PORT_NAME,
# its transcript and the messages it took in $T/NAME/.
start_peer() {
	local name=$1 port
	shift
	port=$(free_port)
	mkdir -p "$T/$name"
	"$BATS_TEST_DIRNAME/helpers/chunking_peer.py" "$port" "$T/$name" "$@" \
		>"$T/$name.out" 2>&1 &
	PEER_PIDS+=($!)
	wait_for_log listening 20 "$T/$name.out"
	printf -v "PORT_$name" '%s' "$port"
}

# job NAME SENDER RCPT...: one job to peer NAME; its result in $output.
job() {
	local port_var="PORT_$1" from=$2
	shift 2
	local to=() r
	for r in "$@"; do to+=(--to "$r"); done
	run deliver_job --nexthop "[127.0.0.1]:${!port_var}" --from "$from" \
		"${to[@]}" ${MESSAGE:+--message "$MESSAGE"} ${BODY:+--body "$BODY"} \
		${REPEAT:+--repeat "$REPEAT"}
	echo "$output"
}

@test "a small message goes as MAIL, RCPT and BDAT LAST in one write; the bytes that arrive are those DATA brings" {
	start_peer chunk
	start_peer plain --no-chunking
	suite_start
	# Dot lines (no stuffing in BDAT), 8-bit text, a last line without CRLF.
	printf 'Subject: bytes\r\n\r\n.\r\n..two\r\n.one\r\ncaf\xc3\xa9\r\nlast line without CRLF' > "$T/msg"
	MESSAGE=$T/msg BODY=8BITMIME job chunk a@example.org b@example.net c@example.net
	[[ "$output" == *"rcpt=0 S 2.0.0 250 2.0.0 Ok: queued as 1"* ]]
	[[ "$output" == *"rcpt=1 S 2.0.0 250 2.0.0 Ok: queued as 1"* ]]
	MESSAGE=$T/msg BODY=8BITMIME job plain a@example.org b@example.net c@example.net
	[[ "$output" == *"rcpt=1 S 2.0.0 250 2.0.0 Ok: queued as 1"* ]]
	cat "$T/chunk/transcript" "$T/plain/transcript"
	# The whole transaction before any reply; DATA waits for its 354.
	grep -qx 'batch: MAIL RCPT RCPT BDAT' "$T/chunk/transcript"
	! grep -q DATA "$T/chunk/transcript"
	grep -qx 'batch: MAIL RCPT RCPT DATA' "$T/plain/transcript"
	grep -qx 'batch: \.' "$T/plain/transcript"
	# Both servers hold the message, its last line ended by CRLF.
	printf '\r\n' >> "$T/msg"
	cmp "$T/msg" "$T/chunk/1.eml"
	cmp "$T/msg" "$T/plain/1.eml"
	wait_for_log "to=<b@example.net>, relay=127.0.0.1\[127.0.0.1\]:$PORT_chunk, .*status=sent \(250 2.0.0 Ok: queued as 1\)"
}

@test "refusals at MAIL, RCPT and the end of the content: every recipient's result is the DATA path's; the session stays in step" {
	start_peer chunk
	start_peer plain --no-chunking
	suite_start
	# SENDER RCPT...: the peers' scripts (helpers/chunking_peer.py). Each
	# job twice on one connection: the second finds the session in step.
	local cases=(
		"a@example.org ok@x.test r550@x.test r450@x.test"
		"a@example.org r550@x.test r450@x.test"
		"mail550@example.org ok@x.test"
		"mail450@example.org ok@x.test r550@x.test"
		"data554@example.org ok@x.test r450@x.test"
		"data452@example.org ok@x.test"
		"a@example.org ok@x.test"
		"close@example.org ok@x.test r550@x.test"
	)
	local peer c
	for peer in chunk plain; do
		for c in "${cases[@]}"; do
			REPEAT=2 job $peer $c
			grep '^rcpt=' <<<"$output" | sed "s/:${PORT_chunk}\b/:PORT/g; s/:${PORT_plain}\b/:PORT/g" \
				>> "$T/$peer.results"
			echo "--" >> "$T/$peer.results"
		done
	done
	cat "$T/chunk.results"
	cat "$T/chunk/transcript"
	diff "$T/plain.results" "$T/chunk.results"
	# Each transaction in one batch: none waited for a reply.
	[ "$(grep -c '^batch: MAIL RCPT.* BDAT$' "$T/chunk/transcript")" -eq 16 ]
	run cat "$T/chunk.results"
	# Some recipients refused: the others' copy is taken.
	[[ "$output" == *"rcpt=0 S 2.0.0 250 2.0.0 Ok: queued as 1"* ]]
	[[ "$output" == *"rcpt=1 B 5.1.1 550 5.1.1 No such user"* ]]
	[[ "$output" == *"rcpt=2 D 4.2.0 450 4.2.0 Mailbox busy"* ]]
	# None accepted: the chunk's 554 is nobody's result.
	! grep -q 'no valid recipients' "$T/chunk.results"
	# MAIL refused: every recipient, permanently or not.
	[[ "$output" == *"rcpt=0 B 5.7.1 550 5.7.1 Sender refused"* ]]
	[[ "$output" == *"rcpt=1 D 4.7.1 450 4.7.1 Try later"* ]]
	# The content refused: the accepted recipients take that reply.
	[[ "$output" == *"rcpt=0 B 5.6.0 554 5.6.0 Message content rejected"* ]]
	[[ "$output" == *"rcpt=0 D 4.3.1 452 4.3.1 Insufficient system storage"* ]]
	[[ "$output" == *"rcpt=0 S 2.0.0 250 2.0.0 Ok: queued as 3"* ]]
	# One connection per case, two transactions on it; a refused BDAT
	# fails the transaction (RFC 3030 2): RSET follows, to be sure.
	# The last case's server hangs up: a new connection for its second.
	[ "$(grep -c '^batch: EHLO' "$T/chunk/transcript")" -eq 9 ]
	[ "$(grep -c '^batch: RSET$' "$T/chunk/transcript")" -eq 10 ]
	# The server closes after the content: deferred, maybe sent twice.
	[[ "$output" == *"rcpt=0 D 4.4.2 lost connection with 127.0.0.1[127.0.0.1]:PORT while sending end of data -- message may be sent more than once"* ]]
	wait_for_log "to=<ok@x.test>, relay=127.0.0.1\[127.0.0.1\]:$PORT_chunk, .*status=bounced \(host 127.0.0.1\[127.0.0.1\]:$PORT_chunk said: 554 5.6.0 Message content rejected \(in reply to end of DATA command\)\)"
}

@test "the DATA path stays for a message over 64 KiB and for 8-bit mail to a server without 8BITMIME; BINARYMIME waits for the RCPT replies" {
	start_peer chunk
	start_peer no8bit --no-8bitmime
	start_peer binary --binarymime
	suite_start
	# 70 KB, dot lines throughout: DATA, stuffed, arrives as it was.
	{ head -c 70000 /dev/zero | tr '\0' 'x' | fold -w 68; echo; } |
		sed 's/^x/./; s/$/\r/' > "$T/big"
	MESSAGE=$T/big job chunk a@example.org b@example.net
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -qx 'batch: MAIL RCPT DATA' "$T/chunk/transcript"
	cmp "$T/big" "$T/chunk/1.eml"
	# 8-bit to a peer without 8BITMIME: DATA, converted to 7 bits; 7-bit
	# mail to the same peer goes in one round trip.
	printf 'Subject: eight\r\n\r\ncaf\xc3\xa9\r\n' > "$T/eight"
	MESSAGE=$T/eight BODY=8BITMIME job no8bit a@example.org b@example.net
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	MESSAGE= job no8bit a@example.org b@example.net
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	cat "$T/no8bit/transcript"
	grep -qx 'batch: MAIL RCPT DATA' "$T/no8bit/transcript"
	grep -qx 'batch: MAIL RCPT BDAT' "$T/no8bit/transcript"
	grep -q 'quoted-printable' "$T/no8bit/1.eml"
	# BINARYMIME: BDAT only once a recipient is accepted.
	printf 'Subject: bin\r\n\r\n\x00\x01binary' > "$T/bin"
	MESSAGE=$T/bin BODY=BINARYMIME job binary a@example.org b@example.net
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	cat "$T/binary/transcript"
	grep -qx 'batch: MAIL RCPT' "$T/binary/transcript"
	grep -qx 'batch: BDAT' "$T/binary/transcript"
	cmp "$T/bin" "$T/binary/1.eml"
}

@test "smtp_chunking = no: DATA to a server that offers CHUNKING" {
	start_peer chunk
	suite_conf smtp_chunking no
	suite_start
	run "$BUILD/postern" -c "$T/conf" config smtp_chunking
	[[ "$output" == *"no"* ]]
	job chunk a@example.org b@example.net
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -qx 'batch: MAIL RCPT DATA' "$T/chunk/transcript"
	! grep -q BDAT "$T/chunk/transcript"
}

@test "Postfix's smtpd as the peer: one round trip after STARTTLS; Postfix stores the message's lines" {
	[ "$(id -u)" -eq 0 ] || skip "postfix start needs root"
	# Held, so that postcat can show what Postfix stored.
	PF_EXTRA='header_checks = regexp:{ {/^Subject: hold/ HOLD} }' postfix_peer_start
	suite_start
	printf 'Subject: hold me\r\n\r\n.\r\n..two\r\ncaf\xc3\xa9\r\nlast line without CRLF' > "$T/msg"
	run deliver_job --nexthop "[127.0.0.1]:$PF_PORT" --from a@example.org \
		--to ok@pf.test --to refused@pf.test --message "$T/msg" --body 8BITMIME
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0 250 2.0.0 Ok: "*"queued as "* ]]
	[[ "$output" == *"rcpt=1 B 5.1.1 550 5.1.1 <refused@pf.test>: Recipient address rejected: no such user"* ]]
	qid=$(sed -n 's/^rcpt=0 S .* queued as //p' <<<"$output")
	wait_for_log "T[0-9]+: Untrusted TLS connection established to 127.0.0.1\[127.0.0.1\]:$PF_PORT"
	# Postfix counts the commands of a session when it ends (deliver
	# quits an idle session after 5 s): BDAT, no DATA.
	wait_for_log "disconnect from localhost\[127.0.0.1\] .* bdat=1 " 30 "$P/maillog"
	! grep -q "disconnect from localhost\[127.0.0.1\] .* data=" "$P/maillog"
	run postcat -c "$P/conf" -b -q "$qid"
	echo "$output"
	[ "$status" -eq 0 ]
	# The body after the blank line that ends the header section.
	[ "$output" = $'\n.\n..two\ncaf\xc3\xa9\nlast line without CRLF' ]
}
