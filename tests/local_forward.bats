#!/usr/bin/env bats
# ~/.forward and the command, file and :include: targets of aliases
# (issue 13), delivered by the local agent as local(8) does: a pipe runs
# as the .forward's user (an alias's as default_privs, here nobody, since
# root owns the alias table), with the message on standard input and a
# clean environment; exit 75 defers, 1 bounces with the command's output
# in the DSN; command_time_limit (2 s here) kills a slow one and defers;
# a /file target that is a symbolic link is refused; :include: lists
# forward through qmgr; and mlmmj, Debian's mailing-list manager, runs
# from a pipe alias and its posts reach the subscribers' mailboxes
# through postern. One suite for the file.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/local

U1=posternf1
U2=posternf2

setup_file() {
	[ "$(id -u)" -eq 0 ] || skip "needs root: delivers as other users"
	[ -x "$BUILD/local" ] || skip "local is not built"
	file_timer_start
	suite_init
	mkdir -p "$T/home" "$T/spool" "$T/out"
	for u in $U1 $U2; do
		id "$u" >/dev/null 2>&1 ||
			passwd_locked useradd --no-create-home --home-dir /nonexistent \
				--shell /bin/sh "$u"
		passwd_locked usermod --home "$T/home/$u" "$u"
		mkdir -p "$T/home/$u"
		chown "$u:" "$T/home/$u"
	done
	chown root:mail "$T/spool"
	chmod 2775 "$T/spool"
	chmod 1777 "$T/out"
	U1_UID=$(id -u $U1)
	NOBODY_UID=$(id -u nobody)
	export U1_UID NOBODY_UID

	# U1 keeps a copy, pipes one to a command and appends one to a file.
	cat > "$T/home/$U1/.forward" <<-EOF
	# comments are allowed
	\\$U1, "|id -u > $T/out/f1.uid; env > $T/out/f1.env; cat > $T/out/f1.msg"
	$T/out/f1.mbox
	EOF
	chown $U1: "$T/home/$U1/.forward"
	chmod 644 "$T/home/$U1/.forward"

	printf '%s\n' "$U2" > "$T/conf/list.inc"
	ln -s /etc/hostname "$T/out/link.mbox"
	cat > "$T/conf/aliases" <<-EOF
	pipeok: "|id -u > $T/out/alias.uid; cat > $T/out/alias.msg"
	tempfail: "|echo busy right now; exit 75"
	permfail: "|echo no such list here; echo second line; exit 1"
	slow: "|sleep 30"
	inc: :include:$T/conf/list.inc
	filelink: $T/out/link.mbox
	mixed: $U2, "|echo mixed failure; exit 1"
	EOF
	suite_conf local_recipient_maps unix:passwd
	suite_conf mail_spool_directory "$T/spool"
	suite_conf alias_maps "hash:$T/conf/aliases"
	suite_conf command_time_limit 2s
	suite_conf mydomains "\$myhostname, localhost"

	# mlmmj: a list whose subscribers are U1 and U2, posting through
	# our SMTP port; run by the alias as nobody.
	if [ -x /usr/bin/mlmmj-receive ]; then
		ML="$T/ml/testlist"
		mkdir -p "$T/ml"
		# It asks for the domain, the owner and the texts' language.
		printf 'localhost\n%s@localhost\n\n' "$U1" |
			mlmmj-make-ml -L testlist -s "$T/ml" >/dev/null 2>&1
		echo 127.0.0.1 > "$ML/control/relayhost"
		echo "$SMTP_PORT" > "$ML/control/smtpport"
		for u in $U1 $U2; do
			/usr/bin/mlmmj-sub -L "$ML" -a "$u@localhost" -f -q -s
		done
		chown -R nobody "$T/ml"
		printf 'testlist: "|/usr/bin/mlmmj-receive -L %s/"\n' "$ML" >> "$T/conf/aliases"
		export ML
	fi
	"$POSTERN" -c "$T/conf" map build -a "$T/conf/aliases"
	suite_start
	wait_for_socket "$T/run/local"
}

teardown_file() {
	suite_stop
	for u in $U1 $U2; do passwd_locked usermod --home /nonexistent "$u" 2>/dev/null || true; done
	file_timer_report
}

send() {	# RCPT [swaks options]
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --from "${FROM:-sender@example.org}" \
		--to "$1" --helo client.example "${@:2}"
}

@test ".forward: a copy for the user, a pipe run as the user with local(8)'s environment, a file" {
	run send "$U1@localhost" --header "Subject: forward me"
	echo "$output" | tail -n 8
	[ "$status" -eq 0 ]
	wait_for_log "to=<$U1@localhost>, relay=local, .*status=sent \(delivered to command.*forwarded by .forward to 1 address\)"
	wait_for_log "to=<$U1@localhost>, orig_to=<$U1@localhost>, relay=local, .*status=sent \(delivered to mailbox\)|to=<$U1@localhost>, relay=local, .*status=sent \(delivered to mailbox\)"
	[ "$(cat "$T/out/f1.uid")" = "$U1_UID" ]
	grep -qx "SENDER=sender@example.org" "$T/out/f1.env"
	grep -qx "RECIPIENT=$U1@localhost" "$T/out/f1.env"
	grep -qx "USER=$U1" "$T/out/f1.env"
	grep -qx "LOGNAME=$U1" "$T/out/f1.env"
	grep -qx "HOME=$T/home/$U1" "$T/out/f1.env"
	grep -qx "LOCAL=$U1" "$T/out/f1.env"
	grep -qx "DOMAIN=localhost" "$T/out/f1.env"
	! grep -q '^BATS\|^POSTERN' "$T/out/f1.env"
	# The command reads the message with Return-Path and Delivered-To.
	grep -qx 'Return-Path: <sender@example.org>' "$T/out/f1.msg"
	grep -qx "Delivered-To: $U1@localhost" "$T/out/f1.msg"
	grep -qx 'Subject: forward me' "$T/out/f1.msg"
	# The file is an mbox of U1's; the mailbox got its copy.
	[ "$(stat -c %U "$T/out/f1.mbox")" = "$U1" ]
	[ "$(count_in "$T/out/f1.mbox")" -eq 1 ]
	[ "$(count_in "$T/spool/$U1")" -eq 1 ]
}

@test "pipe aliases: run as nobody; exit 75 defers, exit 1 bounces with the output; the time limit kills and defers" {
	run send pipeok@localhost --header "Subject: to a pipe"
	echo "$output" | tail -n 8
	[ "$status" -eq 0 ]
	wait_for_log "to=<pipeok@localhost>, relay=local, .*status=sent \(delivered to command"
	[ "$(cat "$T/out/alias.uid")" = "$NOBODY_UID" ]
	grep -qx 'Subject: to a pipe' "$T/out/alias.msg"

	run send tempfail@localhost
	echo "$output" | tail -n 8
	[ "$status" -eq 0 ]
	wait_for_log "to=<tempfail@localhost>, relay=local, .*dsn=4.3.0, status=deferred \(command .* failed with status 75: busy right now\)"

	# The bounce goes back to U2 and carries the command's output.
	FROM="$U2@localhost" run send permfail@localhost --header "Subject: bounce me"
	echo "$output" | tail -n 8
	[ "$status" -eq 0 ]
	wait_for_log "to=<permfail@localhost>, relay=local, .*dsn=5.3.0, status=bounced \(command .* failed with status 1: no such list here second line\)"
	wait_for_log "to=<$U2@localhost>, relay=local, .*status=sent \(delivered to mailbox\)"
	grep -q 'no such list here second line' "$T/spool/$U2"

	start=$(date +%s)
	run send slow@localhost
	echo "$output" | tail -n 8
	[ "$status" -eq 0 ]
	wait_for_log "to=<slow@localhost>, relay=local, .*dsn=4.3.0, status=deferred \(command .* killed: time limit of 2 s exceeded\)"
	[ $(( $(date +%s) - start )) -lt 20 ]
	# Killed with its process group: no sleep of ours is left.
	! pgrep -u nobody -f '^sleep 30$'
}

@test ":include: forwards its addresses; an alias both forwards and bounces its failed command; a /file symlink is refused" {
	before=$(count_in "$T/spool/$U2")
	run send inc@localhost --header "Subject: included"
	echo "$output" | tail -n 8
	[ "$status" -eq 0 ]
	wait_for_log "to=<inc@localhost>, relay=local, .*status=sent \(forwarded by alias to 1 address\)"
	wait_for_count "count_in '$T/spool/$U2'" $((before + 1))
	grep -q 'Subject: included' "$T/spool/$U2"

	# An alias that forwards and has a failing command: the address
	# gets the mail, the sender (U1) the bounce for the command.
	b2=$(count_in "$T/spool/$U2")
	b1=$(count_in "$T/spool/$U1")
	FROM="$U1@localhost" run send mixed@localhost --header "Subject: mixed alias"
	[ "$status" -eq 0 ]
	wait_for_log "to=<mixed@localhost>, relay=local, .*dsn=5.3.0, status=bounced \(command .* failed with status 1: mixed failure\)"
	wait_for_count "count_in '$T/spool/$U2'" $((b2 + 1))
	wait_for_count "count_in '$T/spool/$U1'" $((b1 + 1))
	grep -q 'Subject: mixed alias' "$T/spool/$U2"
	grep -q 'mixed failure' "$T/spool/$U1"

	run send filelink@localhost
	echo "$output" | tail -n 8
	[ "$status" -eq 0 ]
	wait_for_log "to=<filelink@localhost>, relay=local, .*dsn=5.2.0, status=bounced \(cannot append to .*link.mbox.*symbolic link"
	[ "$(readlink "$T/out/link.mbox")" = /etc/hostname ]
}

@test "mlmmj: a post to a pipe alias reaches the subscribers' mailboxes" {
	[ -n "${ML:-}" ] || skip "mlmmj is not installed"
	b1=$(count_in "$T/spool/$U1")
	b2=$(count_in "$T/spool/$U2")
	FROM="$U1@localhost" run send testlist@localhost --header "Subject: [list] hello subscribers"
	echo "$output" | tail -n 8
	[ "$status" -eq 0 ]
	wait_for_log "to=<testlist@localhost>, relay=local, .*status=sent \(delivered to command"
	wait_for_count "grep -c 'hello subscribers' '$T/spool/$U2'" 1 20
	wait_for_count "grep -c 'hello subscribers' '$T/spool/$U1'" 1 20
	[ "$(count_in "$T/spool/$U2")" -gt "$b2" ]
	[ "$(count_in "$T/spool/$U1")" -gt "$b1" ]
	# mlmmj sent them itself, through postern's SMTP port, from its
	# VERP bounce address.
	grep -q '^From testlist+bounces-[0-9]*-'"$U2"'=localhost@localhost ' "$T/spool/$U2"
	grep -q '^From testlist+bounces-[0-9]*-'"$U1"'=localhost@localhost ' "$T/spool/$U1"
}
