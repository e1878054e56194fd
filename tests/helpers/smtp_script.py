#!/usr/bin/env python3
"""smtp_script.py PORT - run the Python script read from stdin against
the SMTP server on 127.0.0.1:PORT, with these in its scope (the client
pieces that tests/front_limits.bats, tests/smtpd_hops.bats and
tests/front_deadline.bats share, through smtp_common.bash's
smtp_script):

  open_from(SOURCE)    connect from address SOURCE (127.0.0.N); returns
                       (socket, greeting), the greeting's last line
  reply(sock)          the last line of the next complete reply ("" when
                       the server closed first)
  say(sock, LINE)      send LINE with CRLF; returns reply(sock)
  session(SOURCE)      a whole session from SOURCE, greeting, EHLO and
                       QUIT: "220 250 221" (their codes)
  open_when_free(SOURCE, SECONDS=5)  open_from until the greeting is a
                       220 (a slot freed by a session's end is told to
                       anvil, or master, just after its 221), for SECONDS
                       at most; the last (socket, greeting)
"""
import socket
import sys
import time

PORT = int(sys.argv[1])


def reply(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return data.decode().strip()
        data += chunk
        for line in data.split(b"\r\n")[:-1]:
            if line[3:4] == b" ":
                return line.decode()


def open_from(source):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10,
                                 source_address=(source, 0))
    return s, reply(s)


def say(s, line):
    s.sendall(line.encode() + b"\r\n")
    return reply(s)


def session(source):
    s, g = open_from(source)
    e = say(s, "EHLO script.test")
    q = say(s, "QUIT")
    s.recv(100)
    s.close()
    return g[:3] + " " + e[:3] + " " + q[:3]


def open_when_free(source, seconds=5):
    deadline = time.monotonic() + seconds
    while True:
        s, g = open_from(source)
        if g.startswith("220") or time.monotonic() > deadline:
            return s, g
        s.close()
        time.sleep(0.05)    # a retry interval, not synchronisation


exec(compile(sys.stdin.read(), "<script>", "exec"))
