#!/usr/bin/env python3
"""smtp_raw.py - talk raw bytes to an SMTP server, for the tests that a
well-behaved client library cannot express (pipelining in one packet,
bare CR/LF, smuggling payloads, NUL bytes, over-long lines, slow clients).

  smtp_raw.py PORT [options] PAYLOAD...

Each PAYLOAD is text with Python escapes (\\r \\n \\x00 ...), Latin-1 for
bytes >= 0x80. By default every payload is written in one send() (all
of them together: one packet, as far as TCP allows), then the server's
replies are read until it closes the connection, and printed with CRLF
shown as a line end. Options:

  --wait-greeting   read the 220 greeting before sending anything
  --step            send the payloads one by one, each after the server's
                    answer to the previous one (a reply line "NNN text")
  --timeout SECS    give up reading after SECS (default 20); exit 3 then
  --repeat N        the payloads N times over (load in one session)
  --file PATH       append the bytes of PATH as one more payload
  --host ADDR       connect to ADDR (default 127.0.0.1; "::1" for IPv6)

Exit status 0 when the server closed the connection, 3 on timeout.
"""
import codecs
import socket
import sys
import time


def decode_payload(text):
    return codecs.decode(text, "unicode_escape").encode("latin-1")


def read_reply(sock, buf, deadline):
    """Read one complete (possibly multi-line) reply; returns (reply, buf)."""
    while True:
        lines = buf.split(b"\r\n")
        for i, line in enumerate(lines[:-1]):
            if len(line) >= 4 and line[3:4] == b" ":
                reply = b"\r\n".join(lines[:i + 1]) + b"\r\n"
                return reply, b"\r\n".join(lines[i + 1:])
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            return buf, b""
        buf += data


def main(argv):
    args = argv[1:]
    port = int(args.pop(0))
    wait_greeting = step = False
    timeout = 20.0
    repeat = 1
    extra = []
    host = "127.0.0.1"
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--wait-greeting":
            wait_greeting = True
        elif opt == "--step":
            step = True
        elif opt == "--timeout":
            timeout = float(args.pop(0))
        elif opt == "--repeat":
            repeat = int(args.pop(0))
        elif opt == "--host":
            host = args.pop(0)
        elif opt == "--file":
            with open(args.pop(0), "rb") as f:
                extra.append(f.read())
        else:
            print("unknown option " + opt, file=sys.stderr)
            return 2
    payloads = [decode_payload(a) for a in args] * repeat + extra
    deadline = time.monotonic() + timeout
    out = sys.stdout.buffer
    sock = socket.create_connection((host, port), timeout=timeout)
    buf = b""
    try:
        if wait_greeting or step:
            reply, buf = read_reply(sock, buf, deadline)
            out.write(reply.replace(b"\r\n", b"\n"))
        if step:
            for p in payloads:
                sock.sendall(p)
                reply, buf = read_reply(sock, buf, deadline)
                out.write(reply.replace(b"\r\n", b"\n"))
                if not reply:
                    break
        else:
            sock.sendall(b"".join(payloads))
        out.write(buf.replace(b"\r\n", b"\n"))
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out.write(data.replace(b"\r\n", b"\n"))
    except (TimeoutError, socket.timeout):
        out.write(b"TIMEOUT\n")
        return 3
    except (BrokenPipeError, ConnectionResetError):
        # The server closed first (e.g. after 421); print what came.
        try:
            sock.settimeout(1)
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                out.write(data.replace(b"\r\n", b"\n"))
        except OSError:
            pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
