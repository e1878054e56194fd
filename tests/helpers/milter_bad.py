#!/usr/bin/python3
"""milter_bad.py - a milter that breaks the protocol on purpose, written
from the protocol description (libmilter cannot misbehave), for
tests/milter.bats. It negotiates properly and answers "continue" until
the sender of the message says otherwise:

  close-body@...   closes the connection when the first body chunk comes
  malformed@...    answers end-of-body with a packet of an unknown command
  badcode@...      answers end-of-body with a reply code "299 ok" (not 4xx/5xx)
  stall@...        never answers end-of-body (past milter_content_timeout)

  milter_bad.py PORT LOGFILE
"""
import socket
import struct
import sys
import threading


def log(path, *words):
    with open(path, "a") as f:
        f.write(" ".join(words) + "\n")


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        part = conn.recv(n - len(data))
        if not part:
            raise EOFError
        data += part
    return data


def send(conn, cmd, data=b""):
    conn.sendall(struct.pack("!I", len(data) + 1) + cmd + data)


def session(conn, logfile):
    sender = b""
    try:
        while True:
            (length,) = struct.unpack("!I", recv_exact(conn, 4))
            packet = recv_exact(conn, length)
            cmd, data = packet[:1], packet[1:]
            if cmd == b"O":
                # version 6, no actions, every step, no no-reply flags
                send(conn, b"O", struct.pack("!III", 6, 0, 0))
            elif cmd in (b"D", b"A"):
                continue		# macros and abort: no reply
            elif cmd in (b"Q", b"K"):
                return
            elif cmd == b"M":
                sender = data.split(b"\0")[0]
                log(logfile, "bad-mail", sender.decode())
                send(conn, b"c")
            elif cmd == b"B" and sender.startswith(b"<close-body@"):
                log(logfile, "bad-close-body")
                return
            elif cmd == b"E" and sender.startswith(b"<malformed@"):
                send(conn, b"Z", b"garbage")
            elif cmd == b"E" and sender.startswith(b"<badcode@"):
                send(conn, b"y", b"299 ok\0")
            elif cmd == b"E" and sender.startswith(b"<stall@"):
                log(logfile, "bad-stall")
                recv_exact(conn, 1)	# until postern gives up
            else:
                send(conn, b"c")
    except (EOFError, OSError):
        pass
    finally:
        conn.close()


def main():
    port, logfile = int(sys.argv[1]), sys.argv[2]
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    log(logfile, "bad-ready")
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=session, args=(conn, logfile),
                         daemon=True).start()


if __name__ == "__main__":
    main()
