#!/usr/bin/env bats
# qmgr's local side: alias_maps and virtual_alias_maps expansion before
# scheduling, local delivery through deliver lmtp into lmtpd's Maildirs,
# and pickup of local submissions (sendmail) from maildrop/.

load helpers/suite
load helpers/qmgr

setup() {
	suite_init
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	table mailboxes <<-EOF
	alice@postern.test	postern.test/alice/
	bob@postern.test	postern.test/bob/
	loop1@postern.test	postern.test/loop1/
	EOF
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
}

teardown() {
	sinks_stop
	suite_stop
}

new_count() {
	find "$T/mail/postern.test/$1/new" -type f 2>/dev/null | wc -l
}

@test "alias_maps: recursive, loop-safe, local and remote targets, duplicates once" {
	# team reaches alice twice (directly and through bob) and a remote
	# address; bob keeps his own copy (an alias to itself); loop1 and
	# loop2 name each other.
	table aliases -a <<-EOF
	team: alice, bob, far@example.net
	bob: bob, alice
	loop1: loop2
	loop2: loop1
	EOF
	suite_conf alias_maps "hash:$T/conf/aliases"
	suite_start
	send_mail --from s@example.org --to team@postern.test
	wait_for_count "new_count alice" 1
	wait_for_count "new_count bob" 1
	wait_for_count "sink_count sink" 1
	wait_for_log ': removed' 10
	[ "$(new_count alice)" -eq 1 ]
	[ "$(new_count bob)" -eq 1 ]
	grep -q '^RCPT TO:<far@example.net>' "$T"/sink/msg-1.env
	grep -q '<team@postern.test> expanded to 3 recipients' "$T/log"

	send_mail --from s@example.org --to loop1@postern.test
	wait_for_count "new_count loop1" 1
	wait_for_count "log_count ': removed'" 2
	[ "$(new_count loop1)" -eq 1 ]
	[ "$(queue_count)" -eq 0 ]
}

@test "virtual_alias_maps rewrites any recipient; a failed local recipient bounces alone" {
	table virtual <<-EOF
	info@example.com	alice@postern.test
	@catchall.test	bob@postern.test
	lost@example.com	nobody@postern.test
	EOF
	suite_conf virtual_alias_maps "hash:$T/conf/virtual"
	suite_start
	send_mail --from s@example.org \
		--to info@example.com,whoever@catchall.test,lost@example.com
	wait_for_count "new_count alice" 1
	wait_for_count "new_count bob" 1
	# nobody has no mailbox: lmtpd refuses it, and only it bounces.
	wait_for_log 'sender non-delivery notification' 10
	wait_for_count "sink_count sink" 1
	run python3 "$BATS_TEST_DIRNAME/helpers/dsn_parse.py" "$(sink_files sink)"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '^rcpt=')" -eq 1 ]
	echo "$output" | grep -q '^rcpt=<nobody@postern.test> action=failed status=5.1.1'
}

# expansion_recorded: the queue file of the one message, in deferred/ or
# active/, has its parent expanded and the children's states.
expansion_recorded() {
	local f
	f=$(find "$T/queue/deferred" "$T/queue/active" -type f ! -name '.*' 2>/dev/null | head -n1)
	[ -n "$f" ] &&
		grep -aq '^R A ' "$f" 2>/dev/null &&
		grep -aq '^X 0 S .* alice@postern.test$' "$f" 2>/dev/null &&
		grep -aq '^X 0 P .* far@example.net$' "$f" 2>/dev/null
}

@test "an expansion is recorded in the queue file before its parent is marked" {
	table aliases -a <<-EOF
	pair: alice, far@example.net
	EOF
	suite_conf alias_maps "hash:$T/conf/aliases"
	touch "$T/sink/tempfail"
	suite_start
	send_mail --from s@example.org --to pair@postern.test
	wait_for_count "new_count alice" 1
	wait_for_count "queue_count deferred" 1
	# R 0 is expanded (A), X records carry the children: alice is done
	# (S), the remote one still waits (P). qmgr may move the file back to
	# active/ for its retry between two reads: read it where it is.
	wait_until 'expansion_recorded' 10
	rm "$T/sink/tempfail"
	wait_for_count "sink_count sink" 1 15
	wait_for_log ': removed' 10
	# alice was not delivered a second time by the retry.
	[ "$(new_count alice)" -eq 1 ]
}

@test "sendmail submissions are picked up from maildrop/; garbage goes to corrupt/" {
	[ -x "$BUILD/sendmail" ] || skip "sendmail is not built yet"
	suite_start
	printf 'Subject: local one\n\nhello from sendmail\n' |
		"$BUILD/sendmail" -C "$T/conf" -f me@postern.test alice@postern.test
	wait_for_count "new_count alice" 1
	wait_for_log ': uid=[0-9]+ from=<me@postern.test>' 5
	f=$(find "$T/mail/postern.test/alice/new" -type f)
	grep -q '^Subject: local one' "$f"
	grep -q '^hello from sendmail' "$f"
	[ "$(queue_count maildrop)" -eq 0 ]

	printf 'this is not a queue file\n' > "$T/queue/maildrop/junk"
	"$BUILD/sendmail" -C "$T/conf" -f me@postern.test bob@postern.test </dev/null
	wait_for_count "new_count bob" 1
	wait_for_log 'maildrop file junk: .*moved to corrupt' 10
	[ -f "$T/queue/corrupt/junk" ]
	[ "$(queue_count maildrop)" -eq 0 ]
}
