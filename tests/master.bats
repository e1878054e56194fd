#!/usr/bin/env bats
# master: start/stop, pre-forking, respawn, throttling, reload, pid file,
# config errors, privilege drop, systemd notification.

load helpers/suite

setup() {
	suite_init
}

teardown() {
	suite_stop
}

# PIDs of master's children running PROGRAM.
children_named() {
	ps -o pid=,comm= --ppid "$SUITE_PID" 2>/dev/null | awk -v p="$1" '$2 == p { print $1 }'
}

count_children() {
	children_named "$1" | wc -l
}

# Wait until master has N children named PROGRAM: at least N, and at
# most N+1 (a connection that was being served when master counted idle
# processes, such as the start-up probe, may have made it fork one more).
wait_children() {
	local prog=$1 want=$2 have
	wait_until 'have=$(count_children "$prog") &&
		[ "$have" -ge "$want" ] && [ "$have" -le $((want + 1)) ]' 10
}

need_smtpd() {
	[ -x "$BUILD/smtpd" ] || skip "smtpd not built yet"
}

@test "start and stop leave no process behind" {
	suite_start
	run "$POSTERN" -c "$T/conf" status
	[ "$status" -eq 0 ]
	[[ "$output" == *"running"* ]]
	kids=$(child_pids "$SUITE_PID")
	run "$POSTERN" -c "$T/conf" stop
	[ "$status" -eq 0 ]
	! is_alive "$SUITE_PID"
	for pid in $kids; do
		! is_alive "$pid"
	done
	run "$POSTERN" -c "$T/conf" status
	[ "$status" -eq 1 ]
	[ ! -e "$T/run/master.pid" ]
	[ ! -e "$T/run/master.status" ]
	grep -q 'terminating on signal 15' "$T/log"
}

@test "queue and run directories are created" {
	suite_start
	for d in maildrop incoming active deferred hold corrupt; do
		[ -d "$T/queue/$d" ]
	done
	[ -d "$T/run" ]
	run "$POSTERN" -c "$T/conf" check
	[ "$status" -eq 0 ]
}

@test "a second start is refused" {
	suite_start
	run "$POSTERN" -c "$T/conf" start
	[ "$status" -eq 1 ]
	[[ "$output" == *"already running"* ]]
	run "$BUILD/master" -c "$T/conf" -e
	[ "$status" -eq 1 ]
	[[ "$output" == *"already running"* ]]
}

@test "background start and stop" {
	run "$POSTERN" -c "$T/conf" start
	[ "$status" -eq 0 ]
	[[ "$output" == *"started"* ]]
	pid=$(master_pid)
	SUITE_PID=$pid	# so that teardown stops it if a check fails
	kill -0 "$pid"
	run "$POSTERN" -c "$T/conf" stop
	[ "$status" -eq 0 ]
	! is_alive "$pid"
}

@test "a bad config is rejected with file and line" {
	printf 'smtpd_timeout = 30s\nno_such_key = 1\n' >> "$T/conf/postern.conf"
	run "$POSTERN" -c "$T/conf" check
	[ "$status" -eq 1 ]
	[[ "$output" == *"postern.conf:"*": unknown parameter \"no_such_key\""* ]]
	line=$(grep -n no_such_key "$T/conf/postern.conf" | cut -d: -f1)
	[[ "$output" == *"postern.conf:$line:"* ]]
	run "$POSTERN" -c "$T/conf" start -f
	[ "$status" -ne 0 ]
	[[ "$output" == *"postern.conf:$line: unknown parameter"* ]]
}

@test "bad values are rejected with file and line" {
	suite_conf message_size_limit 10q
	run "$POSTERN" -c "$T/conf" check
	[ "$status" -eq 1 ]
	[[ "$output" == *"message_size_limit: \"10q\" is not a size"* ]]
	suite_conf message_size_limit 10m
	suite_conf smtp_listen 127.0.0.1
	run "$POSTERN" -c "$T/conf" check
	[ "$status" -eq 1 ]
	[[ "$output" == *"needs a port"* ]]
}

@test "config prints effective values" {
	suite_conf message_size_limit 20m
	run "$POSTERN" -c "$T/conf" config message_size_limit run_directory smtpd_banner
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "message_size_limit = 20m" ]]
	[[ "${lines[1]}" == "run_directory = $T/run" ]]
	[[ "${lines[2]}" == "smtpd_banner = mx.postern.test ESMTP postern" ]]
	run "$POSTERN" -c "$T/conf" config
	[ "$status" -eq 0 ]
	[[ "$output" == *"maximal_queue_lifetime = 5d"* ]]
}

@test "pre-forks the configured number of idle processes" {
	need_smtpd
	suite_conf process_min_idle 3
	suite_start
	# smtp and submission services: 3 idle smtpd each.
	wait_children smtpd 6
}

@test "a killed child is respawned" {
	need_smtpd
	suite_start
	wait_children smtpd 4
	# The submission service has exactly process_min_idle (2) processes:
	# nothing has connected to it.
	submission() {
		# Its workers; its zygote (smtpd-zygote) is no worker.
		ps -o pid=,comm=,args= --ppid "$SUITE_PID" |
			awk '$2 == "smtpd" && /-s submission/ { print $1 }'
	}
	[ "$(submission | wc -l)" -eq 2 ]
	victim=$(submission | head -n1)
	kill -KILL "$victim"
	wait_for_log "process $victim killed by signal 9"
	wait_until '[ "$(submission | wc -l)" -eq 2 ]' 5
	[ "$(submission | wc -l)" -eq 2 ]
	! submission | grep -qx "$victim"
}

@test "a service failing at start-up is throttled" {
	mkdir "$T/bin"
	for p in "$BUILD"/*; do
		[ -f "$p" ] && [ -x "$p" ] && ln -s "$p" "$T/bin/"
	done
	rm -f "$T/bin/smtpd"
	printf '#!/bin/sh\nexit 1\n' > "$T/bin/smtpd"
	chmod 755 "$T/bin/smtpd"
	suite_conf daemon_directory "$T/bin"
	suite_conf service_throttle_time 60s
	: > "$T/log"
	"$POSTERN" -c "$T/conf" start -f >>"$T/log" 2>&1 &
	SUITE_PID=$!
	# 30 s: a sanitized master at a load of 30 took more than 10.
	wait_for_log 'fails at start-up -- throttling' 30
	sleep 2
	# Without the throttle this would be hundreds of attempts: each
	# service's zygote fails once, then its first workers (fork and
	# exec) once, and the service is throttled.
	attempts=$(grep -c 'process [0-9]* exit status 1' "$T/log" || true)
	[ "$attempts" -le 4 ]
	# A zygote that exits at once is reported by whichever master sees
	# first: its exit status when reaped, or the EOF on its socket
	# ("... : replaced").
	zygote_attempts=$(grep -cE 'zygote [0-9]+ (exit status 1|.*: replaced)' "$T/log" || true)
	[ "$zygote_attempts" -ge 1 ]
	[ "$zygote_attempts" -le 2 ]
	kill -0 "$SUITE_PID"
}

@test "SIGHUP reload picks up a changed value" {
	need_smtpd
	suite_start
	wait_children smtpd 4
	old=$(children_named smtpd | sort)
	suite_conf process_min_idle 3
	run "$POSTERN" -c "$T/conf" reload
	[ "$status" -eq 0 ]
	wait_for_log 'reload -- configuration'
	wait_children smtpd 6
	# The old generation has gone.
	for pid in $old; do
		! children_named smtpd | grep -qx "$pid"
	done
}

@test "a reload with a bad config keeps the running one" {
	suite_start
	echo 'smtpd_timeout = forever' >> "$T/conf/postern.conf"
	run "$POSTERN" -c "$T/conf" reload
	[ "$status" -eq 1 ]
	[[ "$output" == *"is not a duration"* ]]
	kill -HUP "$SUITE_PID"
	wait_for_log 'reload failed, keeping the running configuration'
	kill -0 "$SUITE_PID"
}

@test "daemons drop privileges when started as root" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	need_smtpd
	suite_start
	wait_children smtpd 4
	[ "$(ps -o user= -p "$SUITE_PID" | tr -d ' ')" = root ]
	# smtpd's network worker runs as smtpd_user (smtpd(8)).
	for pid in $(children_named smtpd); do
		[ "$(ps -o user= -p "$pid" | tr -d ' ')" = "$TEST_SMTPD_USER" ]
	done
	[ "$(stat -c %U "$T/queue/incoming")" = "$TEST_USER" ]
}

@test "runs as a non-root user" {
	if [ "$(id -u)" -eq 0 ]; then
		# Run the whole suite as the unprivileged test user.
		chown -R "$TEST_USER" "$T"
		: > "$T/log"
		chown "$TEST_USER" "$T/log"
		runuser -u "$TEST_USER" -- "$POSTERN" -c "$T/conf" start -f >>"$T/log" 2>&1 &
		SUITE_PID=$!
	else
		suite_start
	fi
	wait_for_log 'not running as root'
	wait_for_log 'daemon started'
	pid=$(master_pid)
	[ "$(ps -o user= -p "$pid" | tr -d ' ')" = "$TEST_USER" ]
	if [ -x "$BUILD/smtpd" ]; then
		wait_for_port "$SMTP_PORT"
	fi
	for kid in $(child_pids "$pid"); do
		[ "$(ps -o user= -p "$kid" | tr -d ' ')" = "$TEST_USER" ]
	done
	SUITE_PID=$pid
}

@test "tells systemd READY, RELOADING and STOPPING" {
	sock="$T/notify"
	python3 - "$sock" > "$T/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
seen = []
try:
    while "STOPPING=1" not in seen:
        seen.append(s.recv(4096).decode())
        print(seen[-1], flush=True)
except socket.timeout:
    pass
PY
	listener=$!
	wait_for_socket "$sock" 20
	NOTIFY_SOCKET="$sock" "$POSTERN" -c "$T/conf" start -f >>"$T/log" 2>&1 &
	SUITE_PID=$!
	wait_for_log 'daemon started'
	kill -HUP "$SUITE_PID"
	wait_for_log 'reload -- configuration'
	run "$POSTERN" -c "$T/conf" stop
	[ "$status" -eq 0 ]
	wait "$listener"
	run cat "$T/notify.out"
	[ "${lines[0]}" = "READY=1" ]
	[ "${lines[1]}" = "RELOADING=1" ]
	[ "${lines[2]}" = "READY=1" ]
	[ "${lines[3]}" = "STOPPING=1" ]
}
