#!/usr/bin/env python3
"""slow_smtp.py - an SMTP server on loopback that answers slowly, for
tests of deliver's deadlines (tests/deliver_deadline.bats).

  slow_smtp.py PORT dribble       the greeting never ends: "220-" lines,
                                  one a second, for ever
  slow_smtp.py PORT slow SECS     every reply is complete, but takes SECS
                                  seconds: a continuation line a second
                                  before its last line

Serves one connection at a time, until killed. Writes "listening" to
standard output once the port is bound.
"""
import socket
import sys
import time


def reply(conn, code, text, secs):
    for _ in range(secs):
        conn.sendall(b"%d-wait\r\n" % code)
        time.sleep(1)
    conn.sendall(b"%d %s\r\n" % (code, text))


def serve_slow(conn, secs):
    f = conn.makefile("rb")
    reply(conn, 220, b"slow.test ESMTP", secs)
    in_data = False
    for line in f:
        if in_data:
            if line == b".\r\n":
                in_data = False
                reply(conn, 250, b"2.0.0 queued", secs)
            continue
        verb = line[:4].upper()
        if verb == b"DATA":
            reply(conn, 354, b"go ahead", secs)
            in_data = True
        elif verb == b"QUIT":
            conn.sendall(b"221 2.0.0 bye\r\n")
            return
        else:
            reply(conn, 250, b"2.0.0 ok", secs)


def serve_dribble(conn):
    while True:
        conn.sendall(b"220-dribble.test still greeting\r\n")
        time.sleep(1)


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(5)
    print("listening", flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            if mode == "dribble":
                serve_dribble(conn)
            else:
                serve_slow(conn, int(sys.argv[3]))
        except OSError:
            pass
        conn.close()


main()
