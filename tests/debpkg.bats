#!/usr/bin/env bats
# The Debian package as the system MTA (issue 13): the real .deb, built
# from the tracked sources, installed with its dependencies into a clean
# Debian 12 tree made by mmdebstrap, with a policy-rc.d that starts no
# service; then, inside it with chroot: a non-interactive install asks
# nothing and gives the safe "Local only" config, /etc/aliases and its
# table, sendmail from an ordinary user before any daemon ran,
# dpkg-reconfigure changing only its keys, master started by hand and
# stopped by the removal, "echo hi | mail -s test root" delivered to the
# root recipient's /var/mail file and listed by mail(1), and a purge that
# leaves nothing. lintian runs on the .deb on the host.
#
# The tests run in order on one tree (setup_file): each one carries the
# tree on to the next state. The .deb and the base tree are cached under
# /var/tmp (tests/helpers/debpkg.bash): warm, the file takes well under
# 90 s; cold, the package build and mmdebstrap take minutes.
# test-runner: long

load helpers/debpkg

setup_file() {
	export DEBPKG_T0=$SECONDS
	local why
	why=$(debpkg_build_missing)
	if [ -n "$why" ]; then
		export DEBPKG_SKIP="$why"
		return 0
	fi
	debpkg_build || { export DEBPKG_SKIP="the package did not build"; return 1; }
	if ! debpkg_base_tree >"$BATS_FILE_TMPDIR/why"; then
		DEBPKG_SKIP=$(cat "$BATS_FILE_TMPDIR/why")
		export DEBPKG_SKIP
		return 0
	fi
	debpkg_chroot_setup
	export DEB DEB_CHANGES BASE_TAR R
}

teardown_file() {
	debpkg_chroot_teardown
	echo "# debpkg.bats: $((SECONDS - DEBPKG_T0)) s" >&3
}

setup() {
	[ -z "${DEBPKG_SKIP:-}" ] || skip "$DEBPKG_SKIP"
}

# Is the test user's message in maildrop/? Counted as root.
maildrop_count() {
	find "$R/var/spool/postern/maildrop" -type f | wc -l
}

@test "a non-interactive install asks nothing and listens on loopback only" {
	# No /etc/mailname and no /etc/aliases, as on a fresh host.
	rm -f "$R/etc/mailname" "$R/etc/aliases" "$R/etc/aliases.db"
	# DEBIAN_FRONTEND=noninteractive (in_root), no terminal, no input:
	# every question takes its default.
	run in_root dpkg -i /tmp/postern.deb </dev/null
	echo "$output"
	[ "$status" -eq 0 ]
	run in_root postern config smtp_listen submission_listen alias_maps relayhost myhostname
	echo "$output"
	[ "${lines[0]}" = "smtp_listen = 127.0.0.1:25, [::1]:25" ]
	[ "${lines[1]}" = "submission_listen = " ]
	[ "${lines[2]}" = "alias_maps = hash:/etc/aliases" ]
	[ "${lines[3]}" = "relayhost = " ]
	# The mail name: the FQDN, written to /etc/mailname as it was missing.
	[ -s "$R/etc/mailname" ]
	[ "${lines[4]}" = "myhostname = $(cat "$R/etc/mailname")" ]
	# /etc/aliases with postmaster, root left to root's mailbox; its table.
	grep -qx 'postmaster: root' "$R/etc/aliases"
	grep -q '^#root:' "$R/etc/aliases"
	[ -f "$R/etc/aliases.db" ]
	run in_root postern map query hash:/etc/aliases postmaster
	[ "$output" = root ]
	# The traditional paths, and sendmail setgid postdrop by statoverride.
	for p in /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq /usr/bin/newaliases; do
		[ "$(readlink -f "$R$p")" = "$R/usr/sbin/sendmail" ]
	done
	[ -f "$R/usr/share/man/man1/newaliases.1.gz" ]
	run in_root dpkg-statoverride --list /usr/sbin/sendmail
	[ "$output" = "root postdrop 2755 /usr/sbin/sendmail" ]
	[ "$(in_root stat -c %a:%G /usr/sbin/sendmail)" = "2755:postdrop" ]
	# The config is postern's, not a conffile dpkg would ask about.
	if grep -q postern.conf "$R/var/lib/dpkg/info/postern.conffiles" 2>/dev/null; then
		echo "postern.conf is a conffile"; false
	fi
	run in_root postern check
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "an ordinary user's sendmail -t queues a message before any daemon ran" {
	in_root useradd -m -s /bin/sh alice
	[ ! -e "$R/run/postern/master.pid" ]
	run in_root runuser -u alice -- sh -c 'printf "To: root\nSubject: first\n\nhello\n" | /usr/sbin/sendmail -t; echo rc=$?'
	echo "$output"
	[ "${lines[-1]}" = "rc=0" ]
	[ "$(maildrop_count)" -eq 1 ]
	# newaliases and mailq are on every user's PATH (Debian's default
	# for users has no sbin).
	run in_root runuser -u alice -- env PATH=/usr/local/bin:/usr/bin:/bin \
		sh -c 'command -v mailq; command -v newaliases'
	[ "${lines[0]}" = /usr/bin/mailq ]
	[ "${lines[1]}" = /usr/bin/newaliases ]
}

@test "dpkg-reconfigure rewrites only the keys of its answers" {
	# An admin's own lines stay as they are.
	printf '# my own comment\nmessage_size_limit = 10m\n' >>"$R/etc/postern/postern.conf"
	in_root debconf-set-selections <<-'EOF'
	postern postern/main_mailer_type select Satellite system
	postern postern/relayhost string [smtp.example.net]:587
	postern postern/mailname string mail.example.org
	postern postern/root_address string alice
	EOF
	run in_root dpkg-reconfigure -fnoninteractive postern
	echo "$output"
	[ "$status" -eq 0 ]
	run in_root postern config smtp_listen relayhost myhostname message_size_limit
	[ "${lines[0]}" = "smtp_listen = 127.0.0.1:25, [::1]:25" ]
	[ "${lines[1]}" = "relayhost = [smtp.example.net]:587" ]
	[ "${lines[2]}" = "myhostname = mail.example.org" ]
	[ "${lines[3]}" = "message_size_limit = 10m" ]
	grep -qx '# my own comment' "$R/etc/postern/postern.conf"
	[ "$(grep -c '^relayhost' "$R/etc/postern/postern.conf")" -eq 1 ]
	[ "$(cat "$R/etc/mailname")" = mail.example.org ]
	grep -qx 'root: alice' "$R/etc/aliases"
	run in_root postern map query hash:/etc/aliases root
	[ "$output" = alice ]
	# Internet Site opens port 25 and submission, drops the smarthost.
	echo 'postern postern/main_mailer_type select Internet Site' | in_root debconf-set-selections
	run in_root dpkg-reconfigure -fnoninteractive postern
	[ "$status" -eq 0 ]
	run in_root postern config smtp_listen submission_listen relayhost
	[ "${lines[0]}" = "smtp_listen = 0.0.0.0:25, [::]:25" ]
	[ "${lines[1]}" = "submission_listen = 0.0.0.0:587, [::]:587" ]
	[ "${lines[2]}" = "relayhost = " ]
	# Back to the safe default for what follows.
	echo 'postern postern/main_mailer_type select Local only' | in_root debconf-set-selections
	in_root dpkg-reconfigure -fnoninteractive postern
	grep -qx 'smtp_listen = 127.0.0.1:25, \[::1\]:25' "$R/etc/postern/postern.conf"
	# An upgrade (here a reinstall) that asks nothing changes nothing.
	sed -i 's|^smtp_listen = .*|smtp_listen = 127.0.0.1:2525|' "$R/etc/postern/postern.conf"
	sed -i 's|^root: .*|root: bob|' "$R/etc/aliases"
	run in_root dpkg -i /tmp/postern.deb </dev/null
	[ "$status" -eq 0 ]
	grep -qx 'smtp_listen = 127.0.0.1:2525' "$R/etc/postern/postern.conf"
	grep -qx 'root: bob' "$R/etc/aliases"
}

@test "lintian finds no error and no warning in the package" {
	command -v lintian >/dev/null || skip "lintian is not installed"
	run debpkg_lintian
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "master starts by hand in the tree, serves loopback and picks up the message" {
	# Outside systemd, as an admin may start it; on a free loopback port
	# so that the host's own MTA is not in the way.
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	sed -i "s|^smtp_listen = .*|smtp_listen = 127.0.0.1:$port|" "$R/etc/postern/postern.conf"
	run in_root postern start
	echo "$output"
	[ "$status" -eq 0 ]
	kill -0 "$(cat "$R/run/postern/master.pid")"
	run /usr/bin/python3 - "$port" <<-'PY'
	import smtplib, sys
	s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
	print(s.noop()[0])
	s.quit()
	PY
	echo "$output"
	[ "$output" = 250 ]
	# The message of the earlier test leaves maildrop/ (picked up).
	for _ in $(seq 100); do
		[ "$(maildrop_count)" -eq 0 ] && break
		sleep 0.1
	done
	[ "$(maildrop_count)" -eq 0 ]
}

@test "echo hi | mail -s test root lands in the root recipient's /var/mail file, and mail(1) lists it" {
	debpkg_after_debs >"$BATS_TEST_TMPDIR/why" || skip "$(cat "$BATS_TEST_TMPDIR/why")"
	mkdir -p "$R/tmp/after"
	cp "$AFTER_DEBS"/*.deb "$R/tmp/after/"
	run in_root sh -c 'dpkg -i /tmp/after/*.deb </dev/null'
	echo "$output"
	[ "$status" -eq 0 ]
	# Root's mail goes to alice (a user of the tree since test 2).
	sed -i 's|^#\{0,1\}root:.*|root: alice|' "$R/etc/aliases"
	in_root newaliases
	run in_root sh -c 'echo hi | mail -s test root; echo rc=$?'
	echo "$output"
	[ "${lines[-1]}" = rc=0 ]
	for _ in $(seq 200); do
		grep -q '^Subject: test$' "$R/var/mail/alice" 2>/dev/null && break
		sleep 0.1
	done
	grep -q '^Subject: test$' "$R/var/mail/alice"
	grep -qx 'hi' "$R/var/mail/alice"
	# alice's, made by local as Debian's /var/mail wants it (names as
	# the tree's passwd and group say).
	[ "$(in_root stat -c '%U %G %a' /var/mail/alice)" = "alice mail 600" ]
	# bsd-mailx's header summary, as alice reads her mail (Debian 12's
	# mail has no -H: the summary, then "x" leaves the mailbox as it was).
	run in_root runuser -u alice -- sh -c 'echo x | mail'
	echo "$output"
	echo "$output" | grep -Eq '^.?[NUO]? +[0-9]+ .* test$'
	# bsd-mailx needs an MTA: gone before postern's purge.
	in_root dpkg --purge bsd-mailx liblockfile1 liblockfile-bin >/dev/null
}

@test "removing the package stops that master; purge leaves nothing" {
	# What the test before installed, if it stopped half-way.
	in_root dpkg --purge bsd-mailx liblockfile1 liblockfile-bin >/dev/null 2>&1 || true
	pid=$(cat "$R/run/postern/master.pid")
	kill -0 "$pid"
	run in_root dpkg --purge postern
	echo "$output"
	[ "$status" -eq 0 ]
	# Gone, or a zombie its parent (this test's shell) has not reaped yet.
	for _ in $(seq 100); do
		state=$(ps -o stat= -p "$pid" 2>/dev/null) || break
		[[ "$state" == Z* ]] && break
		sleep 0.1
	done
	state=$(ps -o stat= -p "$pid" 2>/dev/null) || state=gone
	if [[ "$state" != gone && "$state" != Z* ]]; then echo "master $pid still runs ($state)"; false; fi
	for p in /etc/postern /var/spool/postern /var/lib/postern /run/postern \
		/etc/aliases.db /usr/sbin/sendmail /usr/bin/mailq; do
		[ ! -e "$R$p" ] || { echo "left: $p"; false; }
	done
	# /etc/aliases is every MTA's: it stays.
	[ -f "$R/etc/aliases" ]
	for u in postern postern-smtpd vmail; do
		if in_root getent passwd "$u"; then echo "user $u left"; false; fi
	done
	for g in postern postern-smtpd vmail postdrop; do
		if in_root getent group "$g"; then echo "group $g left"; false; fi
	done
	run in_root dpkg-statoverride --list /usr/sbin/sendmail
	[ -z "$output" ]
	run in_root sh -c 'echo get postern/main_mailer_type | debconf-communicate postern'
	[[ "$output" != "0 "* ]]
}
