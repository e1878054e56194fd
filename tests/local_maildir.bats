#!/usr/bin/env bats
# Local delivery with home_mailbox = Maildir/ (issue 13): the local agent
# writes the system user's ~/Maildir as that user (tmp/, fsync, new/),
# and mutt and Python's mailbox module read it. One suite for the file.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/local

U3=posternl3

setup_file() {
	[ "$(id -u)" -eq 0 ] || skip "needs root: delivers as other users"
	[ -x "$BUILD/local" ] || skip "local is not built"
	file_timer_start
	suite_init
	id "$U3" >/dev/null 2>&1 ||
		passwd_locked useradd --no-create-home --shell /usr/sbin/nologin "$U3"
	# The test's own home for the user (its passwd entry points here).
	passwd_locked usermod -d "$T/home3" "$U3"
	mkdir "$T/home3"
	chown "$U3:" "$T/home3"
	chmod 700 "$T/home3"
	mkdir "$T/spool"
	suite_conf local_recipient_maps unix:passwd
	suite_conf mail_spool_directory "$T/spool"
	suite_conf home_mailbox Maildir/
	suite_conf alias_maps ""
	suite_start
	wait_for_socket "$T/run/local"
}

teardown_file() {
	suite_stop
	passwd_locked usermod -d /nonexistent "$U3" 2>/dev/null || true
	file_timer_report
}

@test "home_mailbox = Maildir/: the user's ~/Maildir/new gets one file, the user's own, that mutt and Python read" {
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" --from sender@example.org \
		--to "$U3@localhost" --header "Subject: to the maildir" \
		--body $'From here on, no quoting in a Maildir.\r\n'
	[ "$status" -eq 0 ]
	wait_for_log "to=<$U3@localhost>, relay=local, .*dsn=2.0.0, status=sent \(delivered to maildir\)"
	run find "$T/home3/Maildir/new" -type f
	[ "${#lines[@]}" -eq 1 ]
	f=${lines[0]}
	[ "$(stat -c '%U %a' "$f")" = "$U3 600" ]
	[ "$(stat -c '%U %a' "$T/home3/Maildir")" = "$U3 700" ]
	[ -z "$(ls -A "$T/home3/Maildir/tmp")" ]
	[ ! -e "$T/spool/$U3" ]
	head -n2 "$f" | grep -qx 'Return-Path: <sender@example.org>'
	grep -qx "Delivered-To: $U3@localhost" "$f"
	grep -qx 'From here on, no quoting in a Maildir.' "$f"
	! grep -q $'\r' "$f"
	run /usr/bin/python3 -c 'import mailbox, sys
md = mailbox.Maildir(sys.argv[1], create=False)
print(len(md), [m["Subject"] for m in md])' "$T/home3/Maildir"
	[ "$output" = "1 ['to the maildir']" ]
	run mutt_index "$T/home3/Maildir"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"[Msgs:1 New:1 "* && "$output" == *"to the maildir"* ]]
}
