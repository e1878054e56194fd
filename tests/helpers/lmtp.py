"""lmtp.py - a small LMTP/SMTP client for the bats tests.

Sends exactly the bytes a test gives it (so tests can pipeline, split
chunks and send malformed input) and reads replies, multi-line ones
whole. Used from bats through python3 heredocs:

    import lmtp
    s = lmtp.Session("unix:/path/to/lmtp")
    s.expect("220")
    s.send("LHLO client.test\r\n"); s.expect("250")
"""
import socket
import sys


class Session:
    def __init__(self, where, timeout=30):
        if where.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(where[5:])
        else:
            host, port = where.rsplit(":", 1)
            host = host.strip("[]")
            self.sock = socket.create_connection((host, int(port)), timeout)
        self.file = self.sock.makefile("rb")

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def reply(self):
        """One reply: (code, [text lines]); (None, []) at EOF."""
        lines = []
        while True:
            raw = self.file.readline()
            if not raw:
                return (None, lines)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return (line[:3], lines)

    def expect(self, code):
        """Read one reply; fail the test unless its code starts with code."""
        got, lines = self.reply()
        if got is None or not got.startswith(code):
            sys.exit("expected %s, got %r" % (code, lines))
        return lines[-1]

    def close(self):
        self.sock.close()


def greet(where, name="client.postern.test"):
    """Connect, read the greeting, send LHLO; returns the session."""
    s = Session(where)
    s.expect("220")
    s.send("LHLO %s\r\n" % name)
    s.expect("250")
    return s


def message(subject, body, extra_headers=()):
    """A small message with CRLF line ends."""
    head = ["From: sender@example.org", "To: rcpt@postern.test",
            "Subject: %s" % subject]
    head.extend(extra_headers)
    return "\r\n".join(head) + "\r\n\r\n" + body.replace("\n", "\r\n")
