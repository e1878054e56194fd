#!/usr/bin/env python3
"""smtp_tls.py - a scripted SMTP client over TLS, for the STARTTLS and AUTH
tests that swaks and smtplib will not express (pipelined bytes behind
STARTTLS, malformed base64, a "*" cancel, AUTH twice...).

  smtp_tls.py PORT [--implicit] [--inject TEXT] [--host ADDR] COMMAND...

Connects, reads the greeting; with --implicit the TLS handshake comes
first (smtps). Without it, sends "EHLO plain.test", then "STARTTLS" with
TEXT (Python escapes) appended in the same send(), and starts TLS on 220.
Then each COMMAND (Python escapes; "\\r\\n" is added) is sent on its own
and its reply read. Every reply line is printed as received, after a
"TLS <version> <cipher>" line once TLS is up. The certificate is not
verified (the tests use a fresh self-signed one). Exit 0 when every
step got a reply, 2 when the server closed the connection early.
"""
import codecs
import socket
import ssl
import sys


def read_reply(f):
    out = []
    while True:
        line = f.readline()
        if not line:
            return out, False
        text = line.decode("latin-1").rstrip("\r\n")
        out.append(text)
        if len(text) < 4 or text[3] != "-":
            return out, True


def main():
    args = sys.argv[1:]
    port = int(args.pop(0))
    implicit = False
    inject = b""
    host = "127.0.0.1"
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--implicit":
            implicit = True
        elif opt == "--inject":
            inject = codecs.decode(args.pop(0), "unicode_escape").encode(
                "latin-1")
        elif opt == "--host":
            host = args.pop(0)
        else:
            sys.exit("unknown option " + opt)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = socket.create_connection((host, port), timeout=20)
    if implicit:
        sock = ctx.wrap_socket(sock)
        print("TLS", sock.version(), sock.cipher()[0])
    f = sock.makefile("rb")
    reply, ok = read_reply(f)
    print("\n".join(reply))
    if not ok:
        return 2
    if not implicit:
        for line in (b"EHLO plain.test\r\n", b"STARTTLS\r\n" + inject):
            sock.sendall(line)
            reply, ok = read_reply(f)
            print("\n".join(reply))
            if not ok:
                return 2
        if not reply[-1].startswith("220"):
            return 2
        sock = ctx.wrap_socket(sock)
        print("TLS", sock.version(), sock.cipher()[0])
        f = sock.makefile("rb")
    for cmd in args:
        data = codecs.decode(cmd, "unicode_escape").encode("latin-1")
        sock.sendall(data + b"\r\n")
        reply, ok = read_reply(f)
        print("\n".join(reply))
        if not ok:
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
