#!/usr/bin/env bats
# deliver's one-round-trip LMTP transaction (deliver/deliver_smtp.c,
# one_trip()): to an LMTP server that offers PIPELINING, CHUNKING and
# 8BITMIME, a message that deliver read whole goes as MAIL, RCPT and
# BDAT LAST with its content in one write (RFC 2920, RFC 3030 4.2), and
# the replies come back together. Through the whole suite:
#   swaks --SMTP--> smtpd --> qmgr --> deliver lmtp --LMTP--> lmtpd / Dovecot
# One suite start for the file; Dovecot's LMTP server is the real peer
# beside our lmtpd.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/dovecot

setup_file() {
	for p in smtpd qmgr deliver lmtpd; do
		[ -x "$BUILD/$p" ] || skip "$p is not built"
	done
	file_timer_start
	suite_init
	# alice's Maildir path leaves mailbox_base: lmtpd refuses her at
	# RCPT (451 4.3.5), after smtpd took her.
	printf 'alice@localhost ../alice/\nbob@localhost localhost/bob/\n' \
		> "$T/conf/mailboxes"
	: > "$T/conf/transport"
	DOVE_PID=
	if [ -x /usr/sbin/dovecot ]; then
		start_dovecot
		printf 'dove.test\tlmtp:[127.0.0.1]:%s\n' "$DOVE_PORT" > "$T/conf/transport"
	fi
	export DOVE_PID DOVE_PORT
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	suite_conf transport_maps "hash:$T/conf/transport"
	# alice's deferred mail is not retried while the file runs.
	suite_conf minimal_backoff 300s
	suite_conf maximal_backoff 300s
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/mailboxes" "$T/conf/transport"
	suite_start
}

teardown_file() {
	[ -n "${DOVE_PID:-}" ] && kill "$DOVE_PID" 2>/dev/null
	[ -n "${DOVE_PID:-}" ] && wait "$DOVE_PID" 2>/dev/null
	suite_stop
	file_timer_report
}

# LMTP sessions to lmtpd not yet ended.
lmtp_open() {
	echo $(( $(grep -Ec 'postern/lmtpd\[[0-9]+\]: connect from' "$T/log") -
		$(grep -Ec 'postern/lmtpd\[[0-9]+\]: disconnect from' "$T/log") ))
}
bob_files() { find "$T/mail/localhost/bob/new" -type f 2>/dev/null | sort; }
bob_count() { bob_files | wc -l; }
# The file in bob's new/ whose Subject is $1.
bob_file() { grep -l "^Subject: $1\$" $(bob_files) 2>/dev/null | head -n1; }

@test "lmtpd: one round trip per small message, content intact; a refused recipient and a message with none accepted keep the session in step; a large one goes by DATA" {
	# 1. Two recipients, one refused at RCPT: bob's copy is stored, alice
	#    deferred with lmtpd's reason, not the BDAT's.
	run send_mail --from sender@example.org --to alice@localhost,bob@localhost \
		--header "Subject: one" --body $'first line\r\n.starts with a dot\r\n..two dots\r\nlast'
	[ "$status" -eq 0 ]
	# 2. 8-bit text (BODY=8BITMIME) goes as it is.
	run send_mail --from sender@example.org --to bob@localhost \
		--header "Subject: two" --body $'caf\xc3\xa9 cr\xc3\xa8me\r\n'
	[ "$status" -eq 0 ]
	# 3. Only alice: no recipient accepted, BDAT gets one 503, the session
	#    is reset, and the next message goes on.
	run send_mail --from sender@example.org --to alice@localhost \
		--header "Subject: three"
	[ "$status" -eq 0 ]
	# 4. Larger than deliver reads at once (64 KiB): MAIL/RCPT/DATA, the
	#    wait for 354, then the stuffed body.
	head -c 90000 /dev/zero | tr '\0' 'x' | fold -w 76 | sed 's/^x/./' > "$T/big"
	run send_mail --from sender@example.org --to bob@localhost \
		--header "Subject: four" --body "@$T/big"
	echo "$output"
	[ "$status" -eq 0 ]
	run send_mail --from sender@example.org --to bob@localhost \
		--header "Subject: five" --body "after the big one"
	[ "$status" -eq 0 ]
	wait_for_count bob_count 4 30
	f=$(bob_file one)
	[ -n "$f" ]
	grep -qx 'Delivered-To: bob@localhost' "$f"
	# No dot-stuffing in BDAT, and none left by lmtpd; CRLF became LF.
	grep -qx 'first line' "$f"
	grep -qx '.starts with a dot' "$f"
	grep -qx '..two dots' "$f"
	grep -qx 'last' "$f"
	! grep -q $'\r' "$f"
	grep -qx $'caf\xc3\xa9 cr\xc3\xa8me' "$(bob_file two)"
	f=$(bob_file four)
	[ "$(grep -c '^\.x' "$f")" -eq "$(grep -c '^\.x' "$T/big")" ]
	! grep -q '^\.\.x' "$f"
	grep -qx 'after the big one' "$(bob_file five)"
	wait_for_log 'to=<alice@localhost>.*4\.3\.5.*status=deferred' 20
	grep -Eq 'to=<alice@localhost>.*status=deferred .*Mailbox misconfigured.*in reply to RCPT TO' "$T/log"
	! grep -Eq 'to=<alice@localhost>.*503' "$T/log"
	[ "$(grep -Ec 'postern/deliver\[.*to=<bob@localhost>.*status=sent' "$T/log")" -eq 4 ]
	[ "$(bob_count)" -eq 4 ]
	[ ! -e "$T/mail/alice" ]
	# lmtpd's session counts (after deliver's idle close, 5 s; "bdat=3/4"
	# is 3 of 4 accepted): every small message came as BDAT, the large
	# one by DATA.
	wait_until '[ "$(lmtp_open)" -eq 0 ]' 20
	bdat=$(grep -Eo 'postern/lmtpd\[[0-9]+\]: disconnect from .*' "$T/log" |
		grep -o ' bdat=[0-9/]*' | sed 's|.*[=/]||' | paste -sd+ | bc)
	data=$(grep -Eo 'postern/lmtpd\[[0-9]+\]: disconnect from .*' "$T/log" |
		grep -o ' data=[0-9/]*' | sed 's|.*[=/]||' | paste -sd+ | bc)
	echo "bdat=$bdat data=$data"
	# one, two, three and five: BDAT; four: DATA.
	[ "$bdat" -eq 4 ]
	[ "$data" -eq 1 ]
}

@test "Dovecot's LMTP server: two recipients in one round trip, both stored" {
	[ -n "${DOVE_PID:-}" ] || skip "dovecot is not installed"
	run send_mail --from sender@example.org --to carol@dove.test,dave@dove.test \
		--header "Subject: to dovecot" --body $'.a dot line\r\nend'
	[ "$status" -eq 0 ]
	dove_count() { find "$T/dovecot/mail/$1/new" -type f 2>/dev/null | wc -l; }
	wait_for_count "dove_count carol" 1 30
	wait_for_count "dove_count dave" 1 30
	for u in carol dave; do
		f=$(find "$T/dovecot/mail/$u/new" -type f)
		grep -q '^Subject: to dovecot$' "$f"
		grep -qx '.a dot line' "$f"
		grep -qx 'end' "$f"
	done
	grep -Eq 'to=<carol@dove.test>, relay=.*127.0.0.1.*status=sent \(250 2.0.0 <carol@dove.test>' "$T/log"
	grep -Eq 'to=<dave@dove.test>, relay=.*127.0.0.1.*status=sent \(250 2.0.0 <dave@dove.test>' "$T/log"
}
