#!/usr/bin/env bats
# Privilege separation: root (master, and postern stop/reload run as
# root) never acts on a path the daemon user controls. Each test plays
# the daemon user, as a compromised smtpd would ($TEST_USER with
# setpriv), and checks that nothing happens to root's files or processes.

load helpers/suite

ATTACK="$BATS_TEST_DIRNAME/helpers/priv_attack.py"

setup() {
	suite_init
	VICTIM_FILE=
	VICTIM_PID=
}

teardown() {
	[ -n "$VICTIM_PID" ] && kill "$VICTIM_PID" 2>/dev/null
	[ -n "$VICTIM_FILE" ] && rm -f "$VICTIM_FILE"
	suite_stop
}

need_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root: the attacks play the daemon user"
}

# Run a command as the daemon user, with only its own group.
as_daemon_user() {
	setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --clear-groups -- "$@"
}

# A root-only file somewhere outside postern's directories.
make_victim_file() {
	VICTIM_FILE=$(mktemp /tmp/postern-victim.XXXXXX)
	echo precious > "$VICTIM_FILE"
	chmod 600 "$VICTIM_FILE"
}

victim_file_intact() {
	[ "$(stat -c '%U %G %a' "$VICTIM_FILE")" = "root root 600" ] &&
		[ "$(cat "$VICTIM_FILE")" = precious ]
}

# run_directory as postern before this fix left it (and as a daemon
# user could have prepared it): owned by the daemon user.
old_run_directory() {
	mkdir -p "$T/run"
	chown "$TEST_USER" "$T/run"
}

# Start master in the foreground and stop it with SIGTERM, waiting
# (bounded) for both; a start that fails is fine too.
start_and_stop_master() {
	local pid i
	"$POSTERN" -c "$T/conf" start -f >>"$T/log" 2>&1 &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		grep -q 'daemon started' "$T/log" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	# What the attacker swapped after the stop, not what master bound.
	rm -f "$T/run/lmtp" "$T/run/deliver" "$T/run/qmgr"
	: > "$T/log"
}

@test "root never chowns or chmods through a socket the daemon user swapped" {
	need_root
	make_victim_file
	old_run_directory
	as_daemon_user /usr/bin/python3 "$ATTACK" swap-sockets "$T/run" "$VICTIM_FILE" 12 \
		> "$T/attack.out" &
	attacker=$!
	for n in $(seq 10); do
		start_and_stop_master
		victim_file_intact || break
	done
	wait "$attacker"
	echo "# attacker: $(cat "$T/attack.out"), victim: $(stat -c '%U %G %a' "$VICTIM_FILE")" >&3
	victim_file_intact
	grep -qx 'planted 0' "$T/attack.out"
	# Root's directory now: the daemon user can add nothing to it.
	[ "$(stat -c '%U %a' "$T/run")" = "root 755" ]
	if as_daemon_user touch "$T/run/x" 2>/dev/null; then false; fi
}

@test "a master.pid symlink planted by the daemon user clobbers nothing" {
	need_root
	make_victim_file
	old_run_directory
	as_daemon_user ln -s "$VICTIM_FILE" "$T/run/master.pid"
	suite_start
	victim_file_intact
	[ ! -L "$T/run/master.pid" ]
	[ "$(stat -c '%U' "$T/run/master.pid")" = root ]
	[ "$(cat "$T/run/master.pid")" = "$SUITE_PID" ] ||
		[ "$(ps -o comm= -p "$(cat "$T/run/master.pid")")" = master ]
}

@test "stop and reload never signal a process the daemon user names" {
	need_root
	suite_start
	sleep 300 &
	VICTIM_PID=$!
	as_daemon_user /usr/bin/python3 "$ATTACK" forge-pid "$T/run" "$VICTIM_PID" 15 \
		> "$T/attack.out" &
	attacker=$!
	for i in $(seq 50); do [ -s "$T/attack.out" ] && break; sleep 0.1; done
	echo "# attacker: $(cat "$T/attack.out")" >&3
	run "$POSTERN" -c "$T/conf" reload
	is_alive "$VICTIM_PID"
	run "$POSTERN" -c "$T/conf" stop
	is_alive "$VICTIM_PID"
	kill "$attacker" 2>/dev/null || true
	# master itself got the signals.
	wait_for_log 'reload -- configuration'
	for i in $(seq 100); do is_alive "$SUITE_PID" || break; sleep 0.1; done
	if is_alive "$SUITE_PID"; then false; fi
}

@test "stop refuses a locked pid file that names a process other than master" {
	suite_start
	run "$POSTERN" -c "$T/conf" stop
	[ "$status" -eq 0 ]
	# A stale pid file, locked by some other program, naming a process
	# that is not postern's master: a pid reused after a crash, say.
	sleep 300 &
	VICTIM_PID=$!
	echo "$VICTIM_PID" > "$T/run/master.pid"
	flock "$T/run/master.pid" sleep 20 &
	locker=$!
	for i in $(seq 50); do
		flock -n "$T/run/master.pid" true 2>/dev/null || break
		sleep 0.1
	done
	run "$POSTERN" -c "$T/conf" stop
	echo "# $output" >&3
	[ "$status" -eq 1 ]
	[[ "$output" == *"is not"*"master"* ]]
	is_alive "$VICTIM_PID"
	run "$POSTERN" -c "$T/conf" reload
	[ "$status" -eq 1 ]
	is_alive "$VICTIM_PID"
	kill "$locker"
}

# PIDs of master's children running PROGRAM.
children_named() {
	ps -o pid=,comm= --ppid "$1" 2>/dev/null | awk -v p="$2" '$2 == p { print $1 }'
}

@test "each daemon has one uid, one group, no new privileges and a seccomp filter" {
	need_root
	suite_start
	for i in $(seq 50); do
		[ -n "$(children_named "$SUITE_PID" qmgr)" ] &&
			[ -n "$(children_named "$SUITE_PID" lmtpd)" ] &&
			[ -n "$(children_named "$SUITE_PID" deliver)" ] && break
		sleep 0.1
	done
	n=0
	for prog in smtpd qmgr deliver lmtpd; do
		# smtpd's network worker runs as smtpd_user (smtpd(8)).
		user=$TEST_USER
		[ "$prog" != smtpd ] || user=$TEST_SMTPD_USER
		uid=$(id -u "$user")
		gid=$(id -g "$user")
		for pid in $(children_named "$SUITE_PID" "$prog"); do
			status=$(cat "/proc/$pid/status")
			echo "# $prog $pid: $(grep -E '^(Uid|Gid|Groups|NoNewPrivs|Seccomp):' <<<"$status" | tr '\t\n' '  ')" >&3
			grep -Eq "^Uid:[[:space:]]+$uid[[:space:]]+$uid[[:space:]]+$uid[[:space:]]+$uid\$" <<<"$status"
			grep -Eq "^Gid:[[:space:]]+$gid[[:space:]]+$gid[[:space:]]+$gid[[:space:]]+$gid\$" <<<"$status"
			grep -Eq '^Groups:[[:space:]]*$' <<<"$status"
			grep -Eq '^NoNewPrivs:[[:space:]]+1$' <<<"$status"
			# The seccomp filter (mail/daemon_confine.c) is on.
			grep -Eq '^Seccomp:[[:space:]]+2$' <<<"$status"
			n=$((n + 1))
		done
	done
	[ "$n" -ge 4 ]
}

@test "the LMTP socket refuses a local user outside lmtp_socket_group" {
	need_root
	printf 'alice@localhost localhost/alice/\n' > "$T/conf/mailboxes"
	"$POSTERN" -c "$T/conf" map build "$T/conf/mailboxes"
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	suite_start
	[ "$(stat -c '%U %G %a' "$T/run/lmtp")" = "$TEST_USER $(id -gn "$TEST_USER") 660" ]
	lmtp_hello='
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused:", e.strerror)
    sys.exit(0)
print(s.recv(512).decode().strip())
'
	run setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
		/usr/bin/python3 -c "$lmtp_hello" "$T/run/lmtp"
	echo "# nobody: $output" >&3
	[[ "$output" == "refused: Permission denied" ]]
	# The group's members and postern's own deliver get in.
	run setpriv --reuid=nobody --regid=nogroup --groups="$(id -g "$TEST_USER")" -- \
		/usr/bin/python3 -c "$lmtp_hello" "$T/run/lmtp"
	[[ "$output" == "220 "* ]]
	send_mail --to alice@localhost --from nobody@example.org
	for i in $(seq 100); do
		[ -n "$(find "$T/mail" -path '*/new/*' -type f 2>/dev/null)" ] && break
		sleep 0.1
	done
	[ -n "$(find "$T/mail" -path '*/new/*' -type f)" ]
}

@test "after master is killed a new start binds at once and the old session finishes" {
	suite_start
	old_master=$SUITE_PID
	old_kids=$(child_pids "$old_master")
	/usr/bin/python3 - "$SMTP_PORT" "$T/go" > "$T/session.out" 2>&1 <<'PY' &
import os, smtplib, sys, time
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=60)
s.ehlo("client.test")
s.mail("sender@example.org")
s.rcpt("alice@localhost")
print("in session", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.05)
code, text = s.data(b"Subject: across a restart\r\n\r\nstill here\r\n")
print("data", code, flush=True)
s.quit()
PY
	client=$!
	for i in $(seq 100); do grep -q 'in session' "$T/session.out" && break; sleep 0.1; done
	grep -q 'in session' "$T/session.out"
	kill -KILL "$old_master"
	wait "$old_master" 2>/dev/null || true
	: > "$T/log"
	run timeout 20 "$POSTERN" -c "$T/conf" start
	echo "# start: $output" >&3
	SUITE_PID=$(master_pid)
	[ "$status" -eq 0 ]
	wait_for_port "$SMTP_PORT"
	touch "$T/go"
	wait "$client"
	cat "$T/session.out" | sed 's/^/# /' >&3
	grep -q 'data 250' "$T/session.out"
	for pid in $old_kids; do
		for i in $(seq 100); do is_alive "$pid" || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
}

@test "Ctrl-C on a foreground master stops it without alarming warnings" {
	: > "$T/log"
	setsid "$POSTERN" -c "$T/conf" start -f >>"$T/log" 2>&1 &
	SUITE_PID=$!
	wait_for_log 'daemon started'
	wait_for_port "$SMTP_PORT"
	for i in $(seq 50); do
		[ -n "$(children_named "$SUITE_PID" qmgr)" ] && break
		sleep 0.1
	done
	pgid=$(ps -o pgid= -p "$SUITE_PID" | tr -d ' ')
	[ "$pgid" = "$SUITE_PID" ]
	kids=$(child_pids "$SUITE_PID")
	[ -n "$kids" ]
	# What a terminal does on Ctrl-C: SIGINT to the whole process group.
	kill -INT -- "-$pgid"
	wait_for_log '^.*stopped$' 20
	cat "$T/log" | sed 's/^/# /' >&3
	if grep -Eq 'killed by signal|exit status' "$T/log"; then false; fi
	grep -q 'terminating on signal 2' "$T/log"
	for pid in $kids; do
		for i in $(seq 50); do is_alive "$pid" || break; sleep 0.1; done
		if is_alive "$pid"; then false; fi
	done
}

@test "smtpd serves STARTTLS with a root-only 0600 key its user cannot read" {
	need_root
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.postern.test \
		-keyout "$T/conf/key.pem" -out "$T/conf/cert.pem" 2>/dev/null
	chown root:root "$T/conf/key.pem"
	chmod 600 "$T/conf/key.pem"
	suite_conf tls_cert_file "$T/conf/cert.pem"
	suite_conf tls_key_file "$T/conf/key.pem"
	suite_start
	if as_daemon_user cat "$T/conf/key.pem" >/dev/null 2>&1; then false; fi
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" --tls --quit-after STARTTLS
	echo "$output" | tail -5 | sed 's/^/# /' >&3
	[ "$status" -eq 0 ]
	[[ "$output" == *"TLS started"* ]]
}
