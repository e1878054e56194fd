#!/usr/bin/env bats
# The local delivery path end to end, through master with every daemon:
#   swaks --SMTP--> smtpd --> queue --> qmgr --> deliver lmtp --LMTP--> lmtpd
# and the routes around it: aliases that fan out to local and remote
# targets (a Postfix smtp-sink as the remote MX), deliver lmtp into
# Dovecot's LMTP server, bounces that come home to a local Maildir, and a
# full mailbox that defers only its own recipient.

load helpers/suite
load helpers/dovecot

setup() {
	for p in smtpd qmgr deliver lmtpd; do
		[ -x "$BUILD/$p" ] || skip "$p is not built yet"
	done
	suite_init
	cat > "$T/conf/mailboxes" <<-EOF
	alice@localhost		localhost/alice/
	bob@localhost		localhost/bob/
	postmaster@localhost	localhost/postmaster/
	EOF
	cat > "$T/conf/aliases" <<-EOF
	postmaster: postmaster@localhost
	team: alice@localhost, bob@localhost, remote@sink.test
	EOF
	: > "$T/conf/transport"
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	suite_conf alias_maps "hash:$T/conf/aliases"
	suite_conf transport_maps "hash:$T/conf/transport"
	build_maps
	SINK_PID=
	DOVE_PID=
}

teardown() {
	[ -n "${DOVE_PID:-}" ] && kill "$DOVE_PID" 2>/dev/null
	[ -n "${SINK_PID:-}" ] && kill "$SINK_PID" 2>/dev/null
	[ -n "${DOVE_PID:-}" ] && wait "$DOVE_PID" 2>/dev/null
	[ -n "${SINK_PID:-}" ] && wait "$SINK_PID" 2>/dev/null
	suite_stop
}

build_maps() {
	"$BUILD/postern" -c "$T/conf" map build "$T/conf/mailboxes" "$T/conf/transport"
	"$BUILD/postern" -c "$T/conf" map build -a "$T/conf/aliases"
}

# new_files USER: the files in localhost/USER/new/.
new_files() {
	find "$T/mail/localhost/$1/new" -type f 2>/dev/null | sort
}

new_count() {
	new_files "$1" | wc -l
}

# A Postfix smtp-sink on a free port that keeps every message in $T/sink.
start_sink() {
	SINK_PORT=$(free_port)
	mkdir -p "$T/sink"
	local as_user=()
	if [ "$(id -u)" -eq 0 ]; then
		chown "$TEST_USER" "$T/sink"
		as_user=(-u "$TEST_USER")
	fi
	smtp-sink "${as_user[@]}" -h sink.postern.test -d "$T/sink/%H%M%S." \
		"127.0.0.1:$SINK_PORT" 10 &
	SINK_PID=$!
	wait_for_port "$SINK_PORT"
}

sink_count() {
	find "$T/sink" -type f | wc -l
}

@test "swaks to smtpd for a local user ends as one file in the Maildir's new/, with the right headers" {
	suite_start
	run send_mail --from sender@example.org --to alice@localhost \
		--header "Subject: local delivery" --body $'hello alice\n.dot line'
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for_count "new_count alice" 1
	wait_for_queue_count 0	# every delivery done: the counts are final
	[ "$(new_count alice)" -eq 1 ]
	f=$(new_files alice)
	cat "$f"
	[ "$(sed -n 1p "$f")" = "Return-Path: <sender@example.org>" ]
	[ "$(sed -n 2p "$f")" = "Delivered-To: alice@localhost" ]
	# lmtpd's trace field on top of smtpd's.
	[ "$(grep -c '^Received: ' "$f")" -ge 2 ]
	grep -q $'^\tby mx.postern.test (postern) with LMTP id ' "$f"
	grep -q '^Subject: local delivery$' "$f"
	grep -qx 'hello alice' "$f"
	grep -qx '.dot line' "$f"
	! grep -q $'\r' "$f"
	[ -z "$(ls -A "$T/mail/localhost/alice/tmp")" ]
	# The queue is empty again, and every step was logged.
	wait_for_queue_count 0 5
	[ "$(queue_count)" -eq 0 ]
	grep -Eq 'postern/lmtpd\[[0-9]+\]: .*rcpt=<alice@localhost>.*result=stored' "$T/log"
	grep -Eq 'postern/deliver\[[0-9]+\]: .*to=<alice@localhost>.*status=sent' "$T/log"
}

@test "an alias with three targets: two local Maildirs and a remote smtp-sink" {
	start_sink
	printf 'sink.test\tsmtp:[127.0.0.1]:%s\n' "$SINK_PORT" > "$T/conf/transport"
	build_maps
	suite_start
	run send_mail --from sender@example.org --to team@localhost \
		--header "Subject: to the team"
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for_count "new_count alice" 1
	wait_for_count "new_count bob" 1
	wait_for_count "sink_count" 1
	wait_for_queue_count 0	# every delivery done: the counts are final
	[ "$(new_count alice)" -eq 1 ]
	[ "$(new_count bob)" -eq 1 ]
	[ "$(sink_count)" -eq 1 ]
	grep -qx 'Delivered-To: alice@localhost' "$(new_files alice)"
	grep -qx 'Delivered-To: bob@localhost' "$(new_files bob)"
	grep -q '^Subject: to the team$' "$(new_files bob)"
	s=$(find "$T/sink" -type f)
	cat "$s"
	grep -qx 'X-Rcpt-Args: <remote@sink.test>' "$s"
	grep -q '^Subject: to the team' "$s"
}

@test "deliver lmtp delivers into Dovecot's LMTP server (transport_maps lmtp:[127.0.0.1]:port)" {
	[ -x /usr/sbin/dovecot ] || skip "dovecot not installed"
	start_dovecot
	printf 'dove.test\tlmtp:[127.0.0.1]:%s\n' "$DOVE_PORT" > "$T/conf/transport"
	build_maps
	suite_start
	run send_mail --from sender@example.org --to carol@dove.test,dave@dove.test \
		--header "Subject: to dovecot"
	echo "$output"
	[ "$status" -eq 0 ]
	dove_count() { find "$T/dovecot/mail/$1/new" -type f 2>/dev/null | wc -l; }
	wait_for_count "dove_count carol" 1
	wait_for_count "dove_count dave" 1
	f=$(find "$T/dovecot/mail/carol/new" -type f)
	cat "$f"
	grep -q '^Subject: to dovecot$' "$f"
	[ "$(sed -n 1p "$f")" = "Return-Path: <sender@example.org>" ]
	grep -q $'^\tby mx.postern.test (postern) with ESMTP id ' "$f"
	grep -q '^Subject: to dovecot$' "$(find "$T/dovecot/mail/dave/new" -type f)"
	grep -Eq 'to=<carol@dove.test>, relay=.*127.0.0.1.*status=sent \(250 2.0.0 <carol@dove.test>' "$T/log"
}

@test "a bounce comes back to the sender's local Maildir" {
	printf 'nowhere.test\terror:5.1.1 no mailbox here\n' > "$T/conf/transport"
	build_maps
	suite_start
	run send_mail --from bob@localhost --to someone@nowhere.test \
		--header "Subject: will bounce"
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for_count "new_count bob" 1
	f=$(new_files bob)
	cat "$f"
	# RFC 3464 report from the null sender.
	[ "$(sed -n 1p "$f")" = "Return-Path: <>" ]
	grep -qx 'Delivered-To: bob@localhost' "$f"
	grep -qi '^Content-Type: multipart/report; *report-type="\{0,1\}delivery-status' "$f"
	grep -qi '^Final-Recipient: rfc822; *someone@nowhere.test' "$f"
	grep -qi '^Status: 5.1.1' "$f"
	grep -q 'Subject: will bounce' "$f"
}

@test "over quota: only the full mailbox's recipient is deferred, the other is delivered" {
	suite_conf mailbox_quota 3000
	suite_start
	# alice's Maildir is already full (say a big message in cur/).
	mkdir -p "$T/mail/localhost/alice/cur" "$T/mail/localhost/alice/new" \
		"$T/mail/localhost/alice/tmp"
	head -c 3000 /dev/zero > "$T/mail/localhost/alice/cur/1.big,S=3000:2,S"
	chown -R "$TEST_USER" "$T/mail/localhost"
	run send_mail --from sender@example.org --to alice@localhost,bob@localhost \
		--header "Subject: quota"
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for_count "new_count bob" 1
	wait_for_log 'to=<alice@localhost>.*status=deferred' 20
	[ "$(new_count alice)" -eq 0 ]
	grep -Eq 'to=<alice@localhost>.*4\.2\.2.*status=deferred' "$T/log"
	! grep -Eq 'to=<bob@localhost>.*status=deferred' "$T/log"
	# The message stays queued for alice alone.
	[ "$(queue_count)" -eq 1 ]
	# Retries (minimal_backoff is 1s here) go to alice only: bob keeps
	# exactly one copy.
	alice_deferrals() { grep -Ec 'postern/deliver\[.*to=<alice@localhost>.*status=deferred' "$T/log"; }
	wait_for_count "alice_deferrals" 2
	[ "$(new_count bob)" -eq 1 ]
}

@test "the make run configuration delivers to alice@localhost and bob@localhost out of the box" {
	# make-run-config as a non-root developer would run it (as root it
	# keeps its data in one shared /var/tmp directory, not for tests).
	local dev="$T/devrun" as=()
	mkdir -p "$dev"
	if [ "$(id -u)" -eq 0 ]; then
		chown "$TEST_USER" "$dev"
		as=(setpriv --reuid="$TEST_USER" --regid="$(id -g "$TEST_USER")" --init-groups)
	fi
	"${as[@]}" env BUILD="$BUILD" "$BATS_TEST_DIRNAME/helpers/make-run-config" "$dev"
	# Same configuration, on free ports.
	local port sub
	port=$(free_port)
	sub=$(free_port)
	sed -i -e "s/^smtp_listen = .*/smtp_listen = 127.0.0.1:$port/" \
		-e "s/^submission_listen = .*/submission_listen = 127.0.0.1:$sub/" \
		"$dev/postern.conf"
	"${as[@]}" "$BUILD/postern" -c "$dev" start -f >"$T/log" 2>&1 &
	SUITE_PID=$!
	wait_for_log 'daemon started' 10
	wait_for_port "$port"
	run swaks --server "127.0.0.1:$port" --silent 2 --from someone@example.org \
		--to alice@localhost,bob@localhost --header "Subject: make run"
	echo "$output"
	[ "$status" -eq 0 ]
	dev_count() { find "$dev/mail/$1/new" -type f 2>/dev/null | wc -l; }
	wait_for_count "dev_count alice" 1
	wait_for_count "dev_count bob" 1
	grep -qx 'Delivered-To: alice@localhost' "$dev"/mail/alice/new/*
	grep -q '^Subject: make run$' "$dev"/mail/bob/new/*
}
