#!/usr/bin/env bats
# Mailboxes on several LMTP back ends (issue 19), through the real suite:
# postern's own lmtpd (Unix socket) and a private Dovecot LMTP (TCP).
# transport_maps names the back end of some users of a local domain
# (looked up before the local check, as Postfix's trivial-rewrite);
# lmtp_destination is a list tried in order. One suite start proves
#   - per-user routing to two back ends, each message in one mailbox;
#   - lmtp_destination failover: the first back end refuses, the next
#     takes the mail;
#   - connection reuse per back end (conn_use=2 on Dovecot's session);
#   - Dovecot down: only its recipients are deferred, the others are
#     delivered; Dovecot back: the deferred ones arrive, no duplicates.

load helpers/suite
load helpers/dovecot

setup() {
	[ -x /usr/sbin/dovecot ] || skip "dovecot is not installed"
	suite_init
	DOVE_PID=
	# Every mailbox of the site, for smtpd's RCPT check; carol's and
	# dave's live on Dovecot (transport_maps), postern's lmtpd never
	# sees them.
	cat > "$T/conf/mailboxes" <<-EOF
	alice@postern.test	postern.test/alice/
	bob@postern.test	postern.test/bob/
	carol@postern.test	elsewhere/carol/
	dave@postern.test	elsewhere/dave/
	EOF
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	suite_conf initial_destination_concurrency 1
	suite_conf destination_concurrency_limit 1
}

teardown() {
	[ -n "${DOVE_PID:-}" ] && kill "$DOVE_PID" 2>/dev/null
	[ -n "${DOVE_PID:-}" ] && wait "$DOVE_PID" 2>/dev/null
	suite_stop
	echo "# hosts_lmtp.bats: ${SECONDS}s" >&3
}

postern_count() {
	find "$T/mail/postern.test/$1/new" -type f 2>/dev/null | wc -l
}

dove_count() {
	find "$T/dovecot/mail/$1/new" -type f 2>/dev/null | wc -l
}

@test "two LMTP back ends: per-user routing, failover, reuse, one down defers only its own" {
	start_dovecot
	DEAD_PORT=$(free_port)
	cat > "$T/conf/transport" <<-EOF
	carol@postern.test	lmtp:[127.0.0.1]:$DOVE_PORT
	dave@postern.test	lmtp:127.0.0.1:$DOVE_PORT
	EOF
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/mailboxes" "$T/conf/transport"
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf lmtp_destination "[127.0.0.1]:$DEAD_PORT, unix:$T/run/lmtp"
	suite_start

	# One message, two back ends.
	send_mail --from s@example.org --to alice@postern.test,carol@postern.test \
		--header "Subject: one"
	wait_for_count "postern_count alice" 1
	wait_for_count "dove_count carol" 1
	grep -q "connect to 127.0.0.1\[127.0.0.1\]:$DEAD_PORT: Connection refused; trying the next host" "$T/log"
	grep -Eq "to=<alice@postern.test>, relay=localhost\[$T/run/lmtp\], .*status=sent" "$T/log"
	grep -Eq "to=<carol@postern.test>, relay=127.0.0.1\[127.0.0.1\]:$DOVE_PORT, .*status=sent" "$T/log"

	# The next message to Dovecot rides the same session.
	send_mail --from s@example.org --to carol@postern.test --header "Subject: two"
	wait_for_count "dove_count carol" 2
	grep -Eq "to=<carol@postern.test>, relay=127.0.0.1\[127.0.0.1\]:$DOVE_PORT, conn_use=2, .*status=sent" "$T/log"

	# Dovecot goes away: dave waits, bob does not.
	kill "$DOVE_PID"
	wait "$DOVE_PID" 2>/dev/null || true
	DOVE_PID=
	send_mail --from s@example.org --to bob@postern.test,dave@postern.test \
		--header "Subject: three"
	wait_for_count "postern_count bob" 1
	wait_for_log "to=<dave@postern.test>, .*status=deferred" 20
	! grep -q "to=<bob@postern.test>, .*status=deferred" "$T/log"
	[ "$(queue_count)" -eq 1 ]

	# Dovecot is back on its port: the retry delivers dave's copy.
	start_dovecot "$DOVE_PORT"
	wait_for_count "dove_count dave" 1 30
	wait_for_queue_count 0 10
	[ "$(postern_count alice)" -eq 1 ]
	[ "$(postern_count bob)" -eq 1 ]
	[ "$(dove_count carol)" -eq 2 ]
	[ "$(dove_count dave)" -eq 1 ]
	grep -q '^Subject: three' "$(find "$T/dovecot/mail/dave/new" -type f)"
}
