#!/usr/bin/python3
"""screen_idle.py - hold many idle SMTP connections to screen, and time
one real SMTP session while they are held (tests/screen.bats).

    screen_idle.py PORT COUNT FIRST_ADDR NADDRS SCREEN_PID -- CMD...

Opens COUNT connections to 127.0.0.1:PORT from NADDRS loopback source
addresses (FIRST_ADDR, the next ones, round robin), waits (with a
deadline) until every one has read screen's whole greeting (the "220 "
line after screen_greet_wait: each has passed and would now send its
first command, but stays silent),
notes screen's VmRSS before and after, then runs CMD (once before,
with nothing held, for comparison) (a swaks session)
and times it, while the connections stay open and silent; then opens
three more and prints the first line each gets (past
screen_client_limit: 421). Prints
key=value lines; exits 1 if a connection is refused or closed.
"""
import ipaddress
import re
import resource
import selectors
import socket
import subprocess
import sys
import time


def vmrss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def replies_ms(out):
    """The sum of swaks's "=== response in N.NNNs" (--show-time-lapse):
    the time the session waited for the server, without swaks's own
    start-up."""
    return int(sum(float(x) for x in
                   re.findall(r"=== response in ([0-9.]+)s", out)) * 1000)


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    first = ipaddress.IPv4Address(sys.argv[3])
    naddrs, screen_pid = int(sys.argv[4]), int(sys.argv[5])
    cmd = sys.argv[sys.argv.index("--") + 1:]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    # The same session with nothing held, for comparison.
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    print(f"baseline_session_ms={int((time.monotonic() - t) * 1000)}")
    print(f"baseline_replies_ms={replies_ms(r.stdout)}")
    print(f"baseline_status={r.returncode}")

    rss_before = vmrss_kb(screen_pid)
    sel = selectors.DefaultSelector()
    socks = []
    t0 = time.monotonic()
    for i in range(count):
        s = socket.socket()
        s.bind((str(first + i % naddrs), 0))
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, b"")
        socks.append(s)
    # Every client has its whole greeting: screen holds them all.
    greeted = 0
    deadline = time.monotonic() + 60
    while greeted < count and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            data = key.fileobj.recv(4096)
            if not data:
                print("closed_early=1")
                return 1
            got = key.data + data
            if got.startswith(b"220 ") or b"\r\n220 " in got:
                sel.unregister(key.fileobj)
                greeted += 1
            else:
                sel.modify(key.fileobj, selectors.EVENT_READ, got)
    print(f"held={greeted}")
    print(f"open_ms={int((time.monotonic() - t0) * 1000)}")
    if greeted < count:
        return 1
    rss_held = vmrss_kb(screen_pid)
    print(f"rss_before_kb={rss_before}")
    print(f"rss_held_kb={rss_held}")
    print(f"bytes_per_conn={(rss_held - rss_before) * 1024 // count}")

    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    print(f"session_ms={int((time.monotonic() - t) * 1000)}")
    print(f"replies_ms={replies_ms(r.stdout)}")
    print(f"session_status={r.returncode}")
    sys.stdout.write(r.stdout)
    # Still held: none of them was closed meanwhile.
    alive = 0
    for s in socks:
        try:
            data = s.recv(4096)
            alive += 1 if data else 0
        except BlockingIOError:
            alive += 1
    print(f"still_held={alive}")
    # Past screen_client_limit: more clients, until one is refused.
    extra = []
    for i in range(3):
        s = socket.socket()
        s.bind((str(first), 0))
        s.connect(("127.0.0.1", port))
        s.settimeout(10)
        line = s.recv(4096).decode(errors="replace").splitlines()[0]
        print(f"extra_{i}={line}")
        extra.append(s)
    for s in extra:
        s.close()
    for s in socks:
        s.close()
    return 0


sys.exit(main())
