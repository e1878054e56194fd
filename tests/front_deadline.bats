#!/usr/bin/env bats
# Deadlines per command and stress-adaptive timeouts in smtpd. A client
# that trickles a command (a byte every half second), or an endless
# command line (a kilobyte a second, each piece well within
# smtpd_timeout), is cut with 421 4.4.2 at smtpd_timeout (5 s here) from
# the start of the command. When every smtpd process of a service is
# busy, master tells them so (SIGUSR1) and their idle sessions are cut
# at smtpd_stress_timeout (1 s) instead; once a process is free the
# next session has smtpd_timeout again. Real clients: Python sockets.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	suite_init
	suite_conf smtpd_processes 3
	suite_conf process_min_idle 3
	suite_conf smtpd_timeout 5s
	suite_conf smtpd_stress_timeout 1s
	suite_conf smtpd_peername_lookup no
	suite_start
}

teardown_file() {
	suite_stop
	file_timer_report
}

@test "a trickled command and an endless command line are cut at smtpd_timeout with 421 4.4.2" {
	# Two clients at once, on the submission service (2 of its 3
	# processes: not full, so no stress).
	run /usr/bin/python3 - "$SUBMISSION_PORT" <<'PY'
import socket, sys, threading, time
port = int(sys.argv[1])
results = {}

def trickle(name, pieces, interval):
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = s.makefile("rb")
    f.readline()                       # the greeting
    s.settimeout(interval)
    start = time.monotonic()
    answer = ""
    for piece in pieces:
        try:
            s.sendall(piece)
        except OSError:
            break
        try:
            data = s.recv(4096)
            if data:
                answer = data.decode(errors="replace").strip()
                break
        except socket.timeout:
            pass                       # the slow client under test
        if time.monotonic() - start > 15:
            break
    results[name] = "after %.1f s: %s" % (time.monotonic() - start, answer)

threads = [
    # EHLO, one byte every half second: the line never ends in time.
    threading.Thread(target=trickle, args=("bytes",
        [bytes([c]) for c in b"EHLO slow.example.org.and.more.and.more"],
        0.5)),
    # A line without end, 1000 octets a second (past 512 it is refused,
    # but only once it ends: it must end in time).
    threading.Thread(target=trickle, args=("line",
        [b"NOOP " + b"x" * 995] * 30, 1.0)),
]
for t in threads: t.start()
for t in threads: t.join()
for k in sorted(results): print(k, results[k])
PY
	echo "$output"
	[ "$status" -eq 0 ]
	for k in bytes line; do
		line=$(echo "$output" | grep "^$k ")
		[[ "$line" == *": 421 4.4.2 mx.postern.test Error: timeout exceeded"* ]]
		secs=$(echo "$line" | sed -n 's/^[a-z]* after \([0-9.]*\) s:.*/\1/p')
		echo "# $k: cut after $secs s (smtpd_timeout 5s)" >&3
		awk -v t="$secs" 'BEGIN { exit !(t >= 4.5 && t < 9) }'
	done
	wait_for_log "timeout after CONNECT from unknown\[127.0.0.1\]"
}

@test "all processes busy: idle sessions are cut at smtpd_stress_timeout; a free process has smtpd_timeout again" {
	run smtp_script <<'PY'
import time
held = []
for i in range(3):
    s, g = open_from("127.0.0.1")
    say(s, "EHLO idle.example.org")
    held.append(s)
# The third session made the service full: each idle one is cut soon.
start = time.monotonic()
for i, s in enumerate(held):
    answer = reply(s)
    print("held%d after %.1f s: %s" % (i, time.monotonic() - start, answer))
    s.close()
# Free again: a new session waits longer than the stress timeout.
s, g = open_when_free("127.0.0.1", 10)
say(s, "EHLO calm.example.org")
time.sleep(2.5)         # idle longer than smtpd_stress_timeout, on purpose
print("calm:", say(s, "NOOP"))
say(s, "QUIT")
PY
	echo "$output"
	[ "$status" -eq 0 ]
	for i in 0 1 2; do
		line=$(echo "$output" | grep "^held$i ")
		[[ "$line" == *": 421 4.4.2 mx.postern.test Error: timeout exceeded"* ]]
		secs=$(echo "$line" | sed -n 's/^held[0-9] after \([0-9.]*\) s:.*/\1/p')
		echo "# held$i: cut after $secs s under stress (smtpd_timeout 5s, smtpd_stress_timeout 1s)" >&3
		awk -v t="$secs" 'BEGIN { exit !(t < 3.5) }'
	done
	[[ "$output" == *"calm: 250 2.0.0 Ok"* ]]
	wait_for_log "warning: service smtp: all 3 processes are busy: stress: [1-3] sessions get 1s to answer \(smtpd_stress_timeout\)"
	wait_for_log "stress: service smtp is full: unknown\[127.0.0.1\] gets 1s to answer \(smtpd_stress_timeout\)"
	wait_for_log "timeout after EHLO from unknown\[127.0.0.1\]"
}
