#!/usr/bin/env bats
# Address rewriting for the satellite role (issue 13, mail/rewrite.c):
# canonical_maps, sender_canonical_maps and masquerade_domains where mail
# enters (pickup for sendmail's mail, smtpd for trusted clients only),
# smtp_generic_maps on the way out (deliver), checked on what a real SMTP
# server receives (qmgr_sink.py as relayhost): envelope and header
# fields. A stranger's relayed envelope is left alone. deliver signs with
# DKIM after the generic rewriting (python3-dkim verifies the signature
# of the From: domain that only the rewriting gives). One suite start.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/qmgr

setup_file() {
	file_timer_start
	suite_init
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	table sender_canonical <<-EOF
	cron@box.example.org robot@example.org
	EOF
	table canonical <<-EOF
	alice alice.liddell@example.org
	@old.test @new.test
	EOF
	table generic <<-EOF
	root@box.localdomain admin@example.org
	@box.localdomain @example.org
	EOF
	table aliases -a <<-EOF
	fwd: frank@sink.test
	EOF
	"$BUILD/postern" -c "$T/conf" dkim keygen example.org gen > "$T/gen.out"
	printf 'gen._domainkey.example.org %s\n' "$(sed -n '/IN TXT/,$p' "$T/gen.out" |
		grep -o '"[^"]*"' | tr -d '"\n')" > "$T/records"
	printf 'example.org gen:%s\n' "$T/conf/dkim/example.org.gen.key" |
		table dkim_signing
	suite_conf dkim_signing_maps "hash:$T/conf/dkim_signing"
	suite_conf alias_maps "hash:$T/conf/aliases"
	suite_conf sender_canonical_maps "hash:$T/conf/sender_canonical"
	suite_conf canonical_maps "hash:$T/conf/canonical"
	suite_conf masquerade_domains "example.net"
	suite_conf masquerade_exceptions "root"
	suite_conf smtp_generic_maps "hash:$T/conf/generic"
	# 127.0.0.1 is a stranger; [::1] is mynetworks.
	suite_conf mynetworks "[::1]/128"
	suite_conf smtp_listen "127.0.0.1:$SMTP_PORT, [::1]:$SMTP_PORT"
	suite_conf smtpd_peername_lookup no
	suite_start
}

teardown_file() {
	sinks_stop || true
	suite_stop || true
	file_timer_report
}

# sink_message RCPT: the message file the sink holds for RCPT
sink_message() {
	local env
	env=$(grep -l "^RCPT TO:<$1>" "$T"/sink/msg-*.env 2>/dev/null | head -1)
	[ -n "$env" ] && echo "${env%.env}.eml"
}

# local_send FROM-HEADER TO-HEADER SUBJECT SENDER RCPT...
local_send() {
	local from=$1 to=$2 subject=$3 sender=$4
	shift 4
	printf 'From: %s\nTo: %s\nSubject: %s\n\nhello\n' "$from" "$to" "$subject" |
		"$BUILD/sendmail" -C "$T/conf" -f "$sender" "$@"
}

@test "sendmail: sender_canonical_maps and canonical_maps rewrite envelope and header fields" {
	local_send "Cron Daemon <cron@box.example.org>" "Bob <bob@old.test>, alice@postern.test" \
		canonical cron@box.example.org bob@old.test
	wait_for_count "sink_message bob@new.test | grep -c ." 1
	msg=$(sink_message bob@new.test)
	cat "$msg" "${msg%.eml}.env"
	grep -q "^MAIL FROM:<robot@example.org>" "${msg%.eml}.env"
	grep -q "^From: Cron Daemon <robot@example.org>" "$msg"
	grep -q "^To: Bob <bob@new.test>, alice.liddell@example.org" "$msg"
	# The log keeps the sender as submitted (pickup's line, as Postfix).
	grep -q "postern/pickup.*uid=[0-9]* from=<cron@box.example.org>" "$T/log"
}

@test "masquerade_domains hides subdomains of the sender, not of masquerade_exceptions" {
	local_send "carol@host.example.net" "dave@sink.test" masq carol@host.example.net dave@sink.test
	local_send "root@host.example.net" "dave2@sink.test" masq2 root@host.example.net dave2@sink.test
	wait_for_count "sink_message dave@sink.test | grep -c ." 1
	wait_for_count "sink_message dave2@sink.test | grep -c ." 1
	msg=$(sink_message dave@sink.test)
	grep -q "^MAIL FROM:<carol@example.net>" "${msg%.eml}.env"
	grep -q "^From: carol@example.net" "$msg"
	msg=$(sink_message dave2@sink.test)
	grep -q "^MAIL FROM:<root@host.example.net>" "${msg%.eml}.env"
	grep -q "^From: root@host.example.net" "$msg"
}

@test "smtp_generic_maps: root@box.localdomain leaves as admin@example.org; the queue and logs keep root" {
	local_send "root@box.localdomain" "erin@sink.test" generic root@box.localdomain erin@sink.test
	wait_for_count "sink_message erin@sink.test | grep -c ." 1
	msg=$(sink_message erin@sink.test)
	cat "$msg"
	grep -q "^MAIL FROM:<admin@example.org>" "${msg%.eml}.env"
	grep -q "^From: admin@example.org" "$msg"
	grep -q "postern/qmgr.*from=<root@box.localdomain>" "$T/log"
	# Signed for example.org: the signer saw the rewritten From field.
	run /usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/dkim_check.py" "$msg" "$T/records"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"d=example.org s=gen"*pass* ]]
}

@test "smtpd: a trusted client's envelope is rewritten; a stranger's relayed envelope and headers are left alone" {
	# mynetworks ([::1]) submits to a remote address.
	swaks --server ::1 --port "$SMTP_PORT" --silent 2 \
		--from cron@box.example.org --to gina@sink.test \
		--header "From: cron@box.example.org" --header "Subject: trusted"
	# A stranger (127.0.0.1) writes to a local alias that forwards out.
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --silent 2 \
		--from cron@box.example.org --to fwd@postern.test \
		--header "From: cron@box.example.org" --header "Subject: stranger"
	wait_for_count "sink_message gina@sink.test | grep -c ." 1
	wait_for_count "sink_message frank@sink.test | grep -c ." 1
	msg=$(sink_message gina@sink.test)
	grep -q "^MAIL FROM:<robot@example.org>" "${msg%.eml}.env"
	grep -q "^From: robot@example.org" "$msg"
	msg=$(sink_message frank@sink.test)
	cat "$msg" "${msg%.eml}.env"
	grep -q "^MAIL FROM:<cron@box.example.org>" "${msg%.eml}.env"
	grep -q "^From: cron@box.example.org" "$msg"
}
