#!/usr/bin/env python3
"""tls_flights.py - an SMTP client over STARTTLS that decides how its TLS
records are grouped into TCP segments, for tests/tls_readahead.bats.

  tls_flights.py PORT RCPT

smtpd reads ahead under TLS (mail/tls.c): one read(2) may bring several
records, and the ones it holds undecrypted must be served without waiting
on the socket, which will not become readable again. So this client:
  1. sends its handshake Finished and "EHLO" in one send();
  2. sends MAIL, RCPT and DATA as three TLS records in one send()
     (PIPELINING, RFC 2920);
  3. sends the message in 20 records of about 100 octets, then ".", all
     in one send(), and QUIT after the reply.
The TLS runs over memory BIOs (ssl.SSLObject), so nothing leaves until
this script sends it. Every read has a 5 s timeout: a server waiting on
its socket with the data already read fails the test instead of hanging.
Prints each reply line; exit 0 when every reply came, 1 otherwise.
"""
import socket
import ssl
import sys

TIMEOUT_S = 5


def main():
    port, rcpt = int(sys.argv[1]), sys.argv[2]
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    plain = sock.makefile("rb")

    def plain_reply():
        while True:
            line = plain.readline().decode("latin-1").rstrip("\r\n")
            print(line)
            if len(line) < 4 or line[3] != "-":
                return line

    plain_reply()
    sock.sendall(b"EHLO flights.test\r\n")
    plain_reply()
    sock.sendall(b"STARTTLS\r\n")
    if not plain_reply().startswith("220"):
        return 1

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=False)

    def feed():
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        incoming.write(data)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                sock.sendall(outgoing.read())
            feed()
    # The Finished is still in outgoing: EHLO joins it in one segment.
    tls.write(b"EHLO flights.test\r\n")
    sock.sendall(outgoing.read())
    print("TLS %s %s" % (tls.version(), tls.cipher()[0]))

    buf = b""

    def reply():
        nonlocal buf
        while True:
            while b"\r\n" not in buf:
                try:
                    buf += tls.read(65536)
                except ssl.SSLWantReadError:
                    feed()
            line, buf = buf.split(b"\r\n", 1)
            text = line.decode("latin-1")
            print(text)
            if len(text) < 4 or text[3] != "-":
                return text

    def records(*chunks):
        for c in chunks:
            tls.write(c)	# one record each
        sock.sendall(outgoing.read())

    if not reply().startswith("250"):
        return 1
    records(b"MAIL FROM:<flights@example.org>\r\n",
            b"RCPT TO:<%s>\r\n" % rcpt.encode(), b"DATA\r\n")
    for want in ("250", "250", "354"):
        if not reply().startswith(want):
            return 1
    body = [b"Subject: read ahead\r\n\r\n"]
    body += [b"line %02d " % i + b"x" * 88 + b"\r\n" for i in range(20)]
    records(*body, b".\r\n")
    if not reply().startswith("250"):
        return 1
    records(b"QUIT\r\n")
    return 0 if reply().startswith("221") else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ConnectionError, ssl.SSLError) as e:
        print("error: %s" % e)
        sys.exit(1)
