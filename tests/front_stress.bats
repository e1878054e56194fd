#!/usr/bin/env bats
# smtpd under stress: when every smtpd process of a service is busy,
# master answers new connections at once with "421 4.3.2 Service
# currently unavailable" instead of leaving them unseen in the listen
# backlog; when a process is free again, clients get smtpd's 220. And a
# message trickled in line by line is cut at smtpd_data_deadline, though
# every line comes well within smtpd_timeout. Real clients: Python
# sockets (holding sessions open, sending a line a second).

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	suite_init
	suite_conf smtpd_processes 2
	suite_conf process_min_idle 2
	suite_conf smtpd_peername_lookup no
	suite_conf smtpd_data_deadline 3s
	suite_start
}

teardown_file() {
	suite_stop
	file_timer_report
}

@test "all smtpd processes busy for a second: 421 4.3.2; a freed process serves again" {
	run python3 - "$SMTP_PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])

def greeting(s, timeout):
    s.settimeout(timeout)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()

held = []
for i in range(2):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    print("held", i, greeting(s, 10))
    held.append(s)
# Both processes are busy: a third client is answered by master.
t = time.monotonic()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
print("third", greeting(s, 10))
print("third_ms", int((time.monotonic() - t) * 1000))
s.close()
# Free one process (QUIT), then a new client gets smtpd's greeting;
# until master has seen the process idle it may still get a 421.
held[0].sendall(b"QUIT\r\n")
greeting(held[0], 10)
held[0].close()
deadline = time.monotonic() + 10
while True:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    g = greeting(s, 10)
    if g.startswith("220") or time.monotonic() > deadline:
        print("after", g)
        s.sendall(b"QUIT\r\n")
        s.close()
        break
    s.close()
    time.sleep(0.05)    # a retry interval, not synchronisation
held[1].close()
PY
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "held 0 220 "* ]]
	[[ "${lines[1]}" == "held 1 220 "* ]]
	[ "${lines[2]}" = "third 421 4.3.2 Service currently unavailable" ]
	ms=$(echo "$output" | sed -n 's/^third_ms //p')
	echo "# 421 after $ms ms" >&3
	# After master's grace of a second (master_busy.c), not unseen in
	# the backlog until a process is free.
	[ "$ms" -lt 3000 ]
	[[ "${lines[4]}" == "after 220 "* ]]
	wait_for_log "warning: service smtp: all 2 processes are busy: 421 4.3.2 to \[127.0.0.1\] and the others until one is free"
}

@test "a message trickled a line a second is cut at smtpd_data_deadline" {
	run python3 - "$SMTP_PORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline().decode().rstrip()
        if len(line) < 4 or line[3] != "-":
            return line
print(reply())
for cmd in ("EHLO slow.example", "MAIL FROM:<a@example.org>",
            "RCPT TO:<alice@postern.test>", "DATA"):
    s.sendall(cmd.encode() + b"\r\n")
    print(reply())
start = time.monotonic()
s.settimeout(0.05)
answer = ""
for i in range(20):
    try:
        s.sendall(b"line %d of a slow message\r\n" % i)
    except OSError:
        break
    try:
        data = s.recv(4096)
        if data:
            answer = data.decode().strip()
            break
    except socket.timeout:
        pass
    time.sleep(1)    # the slow client under test, one line a second
print("after %.1f s: %s" % (time.monotonic() - start, answer))
PY
	echo "$output"
	[[ "${lines[4]}" == "354 "* ]]
	[[ "$output" == *": 421 4.4.2 mx.postern.test Error: timeout exceeded"* ]]
	secs=$(echo "$output" | sed -n 's/^after \([0-9.]*\) s:.*/\1/p')
	echo "# cut after $secs s (smtpd_data_deadline 3s)" >&3
	awk -v t="$secs" 'BEGIN { exit !(t >= 2.5 && t < 8) }'
	wait_for_log "timeout after DATA from unknown\[127.0.0.1\]"
	[ "$(queue_count)" -eq 0 ]
}
