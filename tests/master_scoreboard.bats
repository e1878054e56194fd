#!/usr/bin/env bats
# master's busy/idle scoreboard (mail/daemon_scoreboard.h,
# master/master_scoreboard.c): master learns who is busy from shared
# memory, not from a status record per connection, and still keeps
# process_min_idle processes idle, answers 421 at the limit, counts a
# worker killed while busy out, and wakes far less than twice per
# connection. Master runs with -v: it logs "service smtp: N processes,
# M busy" whenever its counts change. Real clients: Python smtplib and
# sockets. One suite start for the file.

bats_require_minimum_version 1.5.0
load helpers/suite

setup_file() {
	file_timer_start
	suite_init
	suite_conf smtpd_processes 4
	suite_conf process_min_idle 2
	suite_conf smtpd_peername_lookup no
	# suite_start, with master's -v for its counts.
	: > "$T/log"
	"$POSTERN" -c "$T/conf" start -f -v >>"$T/log" 2>&1 &
	SUITE_PID=$!
	export SUITE_PID
	wait_for_log 'daemon started' 30
	wait_for_port "$SMTP_PORT" 30
}

teardown_file() {
	suite_stop
	file_timer_report
}

# Times master has slept and been woken (voluntary context switches).
ctxt() {
	awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$SUITE_PID/status"
}

# The last counts master logged for the smtp service: "N M".
smtp_counts() {
	sed -n 's/.*master.*service smtp: \([0-9]*\) processes, \([0-9]*\) busy$/\1 \2/p' \
		"$T/log" | tail -n 1
}

# Workers of the smtp service (its zygote is no worker).
smtp_workers() {
	ps -o pid=,comm=,args= --ppid "$SUITE_PID" |
		awk '$2 == "smtpd" && / -s smtp$/ { print $1 }'
}

# hold N NAME: N sessions (greeted, EHLO answered) held open in the
# background until $T/release-NAME exists; "$T/held-NAME" holds one line
# per session with the greeting's code once all are in.
hold() {
	/usr/bin/python3 - "$SMTP_PORT" "$1" "$T/held-$2" "$T/release-$2" <<'PY' &
import os, smtplib, sys, time
port, n, out, release = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
sessions, codes = [], []
for i in range(n):
    s = smtplib.SMTP(timeout=20)
    code, _ = s.connect("127.0.0.1", port)
    if code == 220:
        s.ehlo("holder.example")
    codes.append(str(code))
    sessions.append(s)
with open(out + ".tmp", "w") as f:
    f.write("\n".join(codes) + "\n")
os.rename(out + ".tmp", out)
deadline = time.monotonic() + 60
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.05)    # a bounded wait for the test's word
for s in sessions:
    try:
        s.quit()
    except Exception:
        pass
PY
}

# The greeting a new client gets: "220 ..." or "421 ...".
greeting() {
	/usr/bin/python3 - "$SMTP_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
data = b""
while not data.endswith(b"\r\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
if data.startswith(b"220"):
    s.sendall(b"QUIT\r\n")
s.close()
print(data.decode().strip())
PY
}

@test "master wakes far less than twice per connection" {
	wait_until '[ "$(smtp_counts | cut -d" " -f2)" = 0 ]' 10
	before=$(ctxt)
	run /usr/bin/python3 - "$SMTP_PORT" <<'PY'
import smtplib, sys
ok = 0
for i in range(200):
    s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
    s.ehlo("wake.example")
    s.quit()
    ok += 1
print(ok)
PY
	after=$(ctxt)
	[ "$status" -eq 0 ]
	[ "$output" = 200 ]
	wakes=$((after - before))
	echo "# master: $wakes voluntary context switches over 200 connections" >&3
	# Two status records per connection made it at least one wake-up
	# per connection, usually two; what is left is the one-second
	# timer and the replacement of workers at max_use.
	[ "$wakes" -lt 60 ]
}

# The smtp row of `postern status`: "PROCESSES BUSY IDLE MAXPROC".
status_smtp() {
	"$POSTERN" -c "$T/conf" status |
		awk '$1 == "smtp" && $2 == "smtpd" { print $4, $5, $6, $3 }'
}

@test "postern status shows the busy and idle processes of each accept service" {
	wait_until '[ "$(status_smtp | cut -d" " -f2)" = 0 ]' 10
	run "$POSTERN" -c "$T/conf" status
	[ "$status" -eq 0 ]
	echo "$output"
	[[ "${lines[0]}" == "postern is running (master pid $SUITE_PID)" ]]
	[[ "${lines[1]}" =~ ^service\ +command\ +maxproc\ +processes\ +busy\ +idle$ ]]
	# Accept services only: qmgr, anvil and pickup run one process.
	[[ "$output" =~ $'\n'"deliver "+deliver ]]
	[[ ! "$output" =~ $'\n'qmgr ]]
	# Three sessions held open: three busy, the fourth process idle.
	hold 3 s
	wait_for_file "$T/held-s" 20
	[ "$(sort -u "$T/held-s")" = 220 ]
	wait_until '[ "$(status_smtp)" = "4 3 1 4" ]' 10
	touch "$T/release-s"
	wait_until '[ "$(status_smtp | cut -d" " -f2)" = 0 ]' 10
	wait
}

@test "process_min_idle is refilled, 421 at the limit, a busy worker killed is counted out" {
	# Two sessions take both idle processes: master must start two.
	hold 2 a
	wait_for_file "$T/held-a" 20
	[ "$(sort -u "$T/held-a")" = 220 ]
	wait_until '[ "$(smtp_counts)" = "4 2" ]' 10
	wait_until '[ "$(smtp_workers | wc -l)" -eq 4 ]' 10
	# Two more: all four busy, the limit. After master's grace of a
	# second a newcomer gets 421 from master.
	hold 2 b
	wait_for_file "$T/held-b" 20
	[ "$(sort -u "$T/held-b")" = 220 ]
	wait_until '[ "$(smtp_counts)" = "4 4" ]' 10
	run greeting
	echo "$output"
	[ "$output" = "421 4.3.2 Service currently unavailable" ]
	# A worker killed while busy: master counts it out and starts one,
	# which is idle: 4 processes, 3 busy, and a newcomer gets 220.
	victim=$(smtp_workers | head -n 1)
	kill -KILL "$victim"
	wait_for_log "process $victim killed by signal 9"
	wait_until '[ "$(smtp_counts)" = "4 3" ]' 10
	run greeting
	echo "$output"
	[[ "$output" == "220 "* ]]
	# Everyone leaves: nothing busy.
	touch "$T/release-a" "$T/release-b"
	wait_until '[ "$(smtp_counts | cut -d" " -f2)" = 0 ]' 10
	wait
}

@test "garbage written into the scoreboard does not make master misbehave" {
	# The smtp zygote holds the page's descriptor: write random bytes
	# over all of it, as a compromised worker could.
	zygote=$(ps -o pid=,comm=,args= --ppid "$SUITE_PID" |
		awk '$2 == "smtpd-zygote" && / -s smtp$/ { print $1 }')
	[ -n "$zygote" ]
	page=$(find "/proc/$zygote/fd" -lname '/memfd:postern-scoreboard*' | head -n 1)
	[ -n "$page" ]
	woken=$(ctxt)
	/usr/bin/python3 - "$page" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
os.pwrite(fd, os.urandom(size), 0)
# Shrinking it would make master fault reading it: the seal refuses.
try:
    os.ftruncate(fd, 0)
    print("shrunk")
    sys.exit(1)
except OSError:
    pass
PY
	# Master reads it within a second; it is still there, its counts
	# stay within the limit, and clients are still served.
	wait_until '[ "$(ctxt)" -ge $((woken + 2)) ]' 5
	kill -0 "$SUITE_PID"
	read -r procs busy <<<"$(smtp_counts)"
	[ "$procs" -le 4 ] && [ "$busy" -ge 0 ] && [ "$busy" -le "$procs" ]
	run greeting
	echo "$output"
	[[ "$output" == "220 "* ]]
	kill -0 "$SUITE_PID"
}

@test "after a reload the new generation is counted from its own scoreboard" {
	run "$POSTERN" -c "$T/conf" reload
	[ "$status" -eq 0 ]
	wait_for_log 'reload -- configuration'
	# Only the new generation counts: the old processes finish and go.
	wait_until '[ "$(smtp_counts | cut -d" " -f2)" = 0 ]' 10
	hold 2 c
	wait_for_file "$T/held-c" 20
	[ "$(sort -u "$T/held-c")" = 220 ]
	wait_until '[ "$(smtp_counts | cut -d" " -f2)" = 2 ]' 10
	touch "$T/release-c"
	wait_until '[ "$(smtp_counts | cut -d" " -f2)" = 0 ]' 10
	wait
}
