#!/usr/bin/env bats
# Local delivery to system users (issue 13): local_recipient_maps =
# unix:passwd, the local agent writes mail_spool_directory/USER in mbox
# format as the user, with the dotlock and fcntl locks of Debian policy
# 22.6, and the mail readers of Debian (bsd-mailx's mail(1), mutt,
# Python's mailbox module) read what it wrote. One suite for the file;
# the spool is $T/spool, root:mail 2775 as /var/mail is on Debian.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/local

U1=posternl1
U2=posternl2

setup_file() {
	[ "$(id -u)" -eq 0 ] || skip "needs root: delivers as other users"
	[ -x "$BUILD/local" ] || skip "local is not built"
	file_timer_start
	for u in $U1 $U2; do
		id "$u" >/dev/null 2>&1 ||
			passwd_locked useradd --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin "$u"
	done
	suite_init
	mkdir "$T/spool"
	# A small file system of its own, for the test of a full one.
	if mount -t tmpfs -o size=1m tmpfs "$T/spool" 2>/dev/null; then
		touch "$T/spool-is-tmpfs"
	fi
	chown root:mail "$T/spool"
	chmod 2775 "$T/spool"
	suite_conf local_recipient_maps unix:passwd
	suite_conf mail_spool_directory "$T/spool"
	# Not the host's /etc/aliases, the default with system users.
	suite_conf alias_maps ""
	suite_conf mydomains "\$myhostname, localhost"
	suite_start
	wait_for_socket "$T/run/local"
}

teardown_file() {
	umount "$T/spool" 2>/dev/null || umount -l "$T/spool" 2>/dev/null || true
	suite_stop
	file_timer_report
}

send() {	# RCPT [swaks options]
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --from "${FROM:-sender@example.org}" \
		--to "$1" --helo client.example "${@:2}"
}

@test "a system user's mail lands in its mbox as the user; mail(1), mutt and Python read it" {
	body=$'Hello.\r\nFrom the start of a line, this must be quoted.\r\n>From this one is left alone.\r\n'
	run send "$U1@localhost" --header "Subject: first local" --body "$body"
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for_log "to=<$U1@localhost>, relay=local, .*dsn=2.0.0, status=sent \(delivered to mailbox\)"
	box="$T/spool/$U1"
	# Owned by the user, group mail, private; no lock left behind.
	[ "$(stat -c '%U %G %a' "$box")" = "$U1 mail 600" ]
	[ ! -e "$box.lock" ]
	cat "$box"
	head -n1 "$box" | grep -Eq '^From sender@example\.org (Mon|Tue|Wed|Thu|Fri|Sat|Sun) '
	grep -qx 'Return-Path: <sender@example.org>' "$box"
	grep -qx "Delivered-To: $U1@localhost" "$box"
	grep -qx '>From the start of a line, this must be quoted.' "$box"
	grep -qx '>From this one is left alone.' "$box"
	! grep -q $'\r' "$box"
	# A second message is appended after an empty line.
	run send "$U1@localhost" --header "Subject: second local" --body "two"
	[ "$status" -eq 0 ]
	wait_for_count "grep -c 'to=<$U1@localhost>, relay=local, .*status=sent' '$T/log'" 2
	[ "$(count_in "$box")" -eq 2 ]
	# bsd-mailx lists both, by subject (Debian 12's has no -H: its
	# header summary, then "x" leaves the mailbox as it was).
	run mail -f "$box" <<<x
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"\"$box\": 2 messages 2 new"* ]]
	[ "$(grep -Ec '^.N +[12] sender@example.or.* (first|second) local$' <<<"$output")" -eq 2 ]
	[[ "$output" == *"first local"* && "$output" == *"second local"* ]]
	# Python undoes the quoting of the first message's body.
	run /usr/bin/python3 -c 'import mailbox, sys
m = mailbox.mbox(sys.argv[1])[0]
print(m["Subject"]); print(m.get_payload())' "$box"
	echo "$output"
	[[ "$output" == *"first local"* && "$output" == *"From the start of a line"* ]]
	# mutt opens it (a copy: mutt marks what it reads) and lists both.
	cp "$box" "$T/mutt-box"
	run mutt_index "$T/mutt-box"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"[Msgs:2 New:2 "* ]]
	[[ "$output" == *"first local"* && "$output" == *"second local"* ]]
}

@test "unknown users get 550 5.1.1 at RCPT; postmaster is root's without an alias" {
	run send "nosuchuser-xyz@localhost"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"<** 550 5.1.1 "* ]]
	run send "postmaster@localhost" --header "Subject: for the postmaster"
	echo "$output"
	[ "$status" -eq 0 ]
	wait_for_log "to=<root@localhost>, relay=local, .*status=sent"
	[ "$(stat -c '%U %a' "$T/spool/root")" = "root 600" ]
	grep -qx 'Delivered-To: root@localhost' "$T/spool/root"
}

@test "echo hi | sendmail root: the cron and daemon way lands in root's mbox" {
	before=$(count_in "$T/spool/root")
	printf 'Subject: from cron\n\nhi\n' | "$BUILD/sendmail" -C "$T/conf" root
	wait_for_log "to=<root@mx.postern.test>, relay=local, .*status=sent"
	[ "$(count_in "$T/spool/root")" -eq $((before + 1)) ]
	run mail -f "$T/spool/root" <<<x
	echo "$output"
	[[ "$output" == *"from cron"* ]]
}

@test "delivery waits for a reader's dotlock, then appends" {
	box="$T/spool/$U2"
	: > "$box.lock"
	run send "$U2@localhost" --header "Subject: after the lock"
	[ "$status" -eq 0 ]
	wait_for_log "mailbox $T/spool/$U2 is locked; waiting"
	[ "$(count_in "$box")" -eq 0 ]
	rm "$box.lock"
	wait_for_log "to=<$U2@localhost>, relay=local, .*status=sent"
	[ "$(count_in "$box")" -eq 1 ]
	[ ! -e "$box.lock" ]
}

@test "a mailbox that is a symlink is refused and bounced; a looping message is bounced" {
	box="$T/spool/$U2"
	rm -f "$box"
	: > "$T/target"
	ln -s "$T/target" "$box"
	# The bounces come home to U1's mailbox.
	before=$(count_in "$T/spool/$U1")
	FROM="$U1@localhost" run send "$U2@localhost" --header "Subject: through a link"
	[ "$status" -eq 0 ]
	wait_for_log "to=<$U2@localhost>, relay=local, .*dsn=5.2.0, status=bounced \(cannot update mailbox $T/spool/$U2 for user $U2: mailbox $U2 is a symbolic link: refused\)"
	[ ! -s "$T/target" ]
	[ -L "$box" ]
	rm "$box"
	FROM="$U1@localhost" run send "$U2@localhost" --header "Delivered-To: $U2@localhost" \
		--header "Subject: looped"
	[ "$status" -eq 0 ]
	wait_for_log "to=<$U2@localhost>, relay=local, .*dsn=5.4.6, status=bounced \(mail forwarding loop for $U2@localhost\)"
	[ ! -e "$box" ]
	wait_for_count "count_in '$T/spool/$U1'" $((before + 2))
	grep -q 'symbolic link: refused' "$T/spool/$U1"
	grep -q 'mail forwarding loop' "$T/spool/$U1"
}

@test "a mailbox that fills its file system is cut back to its size before, and the mail deferred" {
	[ -e "$T/spool-is-tmpfs" ] || skip "cannot mount tmpfs here"
	box="$T/spool/$U2"
	run send "$U2@localhost" --header "Subject: fits"
	[ "$status" -eq 0 ]
	wait_for_count "grep -c 'to=<$U2@localhost>, relay=local, .*status=sent' '$T/log'" 2
	size=$(stat -c %s "$box")
	# Leave about 32 KB free; 200 KB of text cannot fit.
	free_kb=$(df -k --output=avail "$T/spool" | tail -n1)
	dd if=/dev/zero of="$T/spool/filler" bs=1k count=$((free_kb - 32)) 2>/dev/null
	/usr/bin/python3 -c 'print(("x" * 70 + "\r\n") * 2800, end="")' > "$T/big"
	run send "$U2@localhost" --header "Subject: too big" --body "$T/big"
	[ "$status" -eq 0 ]
	wait_for_log "to=<$U2@localhost>, relay=local, .*dsn=4.2.0, status=deferred \(cannot update mailbox $T/spool/$U2 for user $U2: cannot write mailbox: No space left on device\)"
	# Retries follow every second: take the dotlock as a mail reader
	# would (O_EXCL), so that none is writing while we look.
	wait_until "( set -C; : > '$box.lock' ) 2>/dev/null"
	# Cut back to the byte: the message before is whole, nothing after.
	[ "$(stat -c %s "$box")" -eq "$size" ]
	[ "$(count_in "$box")" -eq 1 ]
	rm "$box.lock"
}
