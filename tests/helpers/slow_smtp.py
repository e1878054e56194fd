#!/usr/bin/env python3
"""slow_smtp.py - an SMTP server on loopback that answers slowly, for
tests of deliver's deadlines (tests/deliver_deadline.bats).

  slow_smtp.py PORT dribble       the greeting never ends: "220-" lines,
                                  one a second, for ever
  slow_smtp.py PORT slow SECS     every reply is complete, but takes SECS
                                  seconds: a continuation line a second
                                  before its last line
  slow_smtp.py PORT lmtp-silent   an LMTP server that greets, answers LHLO
                                  (PIPELINING, CHUNKING, 8BITMIME), then
                                  reads the transaction and answers nothing

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


def serve_lmtp_silent(conn):
    f = conn.makefile("rb")
    conn.sendall(b"220 silent.test LMTP\r\n")
    for line in f:
        if line[:4].upper() == b"LHLO":
            conn.sendall(b"250-silent.test\r\n250-PIPELINING\r\n"
                         b"250-CHUNKING\r\n250 8BITMIME\r\n")
            break
    while conn.recv(65536):
        pass


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
            elif mode == "lmtp-silent":
                serve_lmtp_silent(conn)
            else:
                serve_slow(conn, int(sys.argv[3]))
        except OSError:
            pass
        conn.close()


main()
