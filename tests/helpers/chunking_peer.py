#!/usr/bin/env python3
"""chunking_peer.py PORT DIR [--no-chunking] [--no-8bitmime] [--binarymime]
- a scripted SMTP server on 127.0.0.1:PORT with PIPELINING and CHUNKING
(RFC 2920, RFC 3030), whose refusals a test asks for through the
envelope, for tests/deliver_bdat.bats:

  sender mail450@... / mail550@...   MAIL gets 450 4.7.1 / 550 5.7.1
  sender data452@... / data554@...   the end of the content (BDAT LAST,
                                     or DATA's final dot) gets 452 4.3.1
                                     / 554 5.6.0
  sender close@...                   the connection is closed once the
                                     content is read, without a reply
  recipient r450@... / r550@...      RCPT gets 450 4.2.0 / 550 5.1.1

As RFC 3030 2 asks, a chunk is read whatever its reply: 503 without an
accepted MAIL, 554 without an accepted recipient. Replies to what one
read brought are sent together once the input is used up, as a
pipelining server does, and each such group is logged to DIR/transcript
as "batch: VERB VERB ..." ("." is DATA's end): a transaction in one
batch came in one write, before any reply. The content of each accepted
message goes to DIR/N.eml as it arrived (BDAT: the chunks' octets;
DATA: unstuffed, up to the final dot). A thread per connection (an
idle session cached by one deliver process must not hold up the next
process's), until killed; prints "listening" once bound.
"""
import socket
import sys
import threading

port, out = int(sys.argv[1]), sys.argv[2]
opts = set(sys.argv[3:])
ehlo = [b"peer.test", b"PIPELINING", b"ENHANCEDSTATUSCODES", b"SIZE 1000000"]
if "--no-8bitmime" not in opts:
    ehlo.append(b"8BITMIME")
if "--no-chunking" not in opts:
    ehlo.append(b"CHUNKING")
if "--binarymime" in opts:
    ehlo.append(b"BINARYMIME")
transcript = open(out + "/transcript", "a", buffering=1)
stored = 0
stored_lock = threading.Lock()


def local(arg):
    """The local part of the address in MAIL FROM:<...> / RCPT TO:<...>."""
    return arg[arg.find(b"<") + 1:].split(b"@")[0].lower()


class Session:
    def __init__(self, conn):
        self.conn, self.buf, self.replies, self.verbs = conn, b"", [], []
        self.reset()

    def reset(self):
        self.sender, self.rcpts, self.content = None, 0, b""

    def recv(self):
        data = self.conn.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def say(self, text):
        self.replies.append(text + b"\r\n")

    def flush(self):
        if self.verbs:
            transcript.write("batch: %s\n" % " ".join(self.verbs))
        self.conn.sendall(b"".join(self.replies))
        self.replies, self.verbs = [], []

    def line(self):
        """The next command line; replies go out when input runs dry."""
        while b"\r\n" not in self.buf:
            if self.replies:
                self.flush()
            self.recv()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def octets(self, n):
        while len(self.buf) < n:
            self.recv()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def end_of_content(self):
        """The reply to BDAT LAST or DATA's dot; False to hang up."""
        global stored
        if self.sender == b"close":
            return False
        if self.sender == b"data452":
            self.say(b"452 4.3.1 Insufficient system storage")
        elif self.sender == b"data554":
            self.say(b"554 5.6.0 Message content rejected")
        else:
            with stored_lock:
                stored += 1
                n = stored
            with open("%s/%d.eml" % (out, n), "wb") as f:
                f.write(self.content)
            self.say(b"250 2.0.0 Ok: queued as %d" % n)
        self.reset()
        return True

    def bdat(self, arg):
        words = arg.split()
        size, last = int(words[0]), words[1:] == [b"LAST"]
        chunk = self.octets(size)
        if self.sender is None:
            self.say(b"503 5.5.1 Error: send MAIL first")
        elif self.rcpts == 0:
            self.say(b"554 5.5.1 Error: no valid recipients")
        elif not last:
            self.content += chunk
            self.say(b"250 2.0.0 %d octets received" % size)
        else:
            self.content += chunk
            return self.end_of_content()
        return True

    def data(self):
        if self.sender is None or self.rcpts == 0:
            self.say(b"554 5.5.1 Error: no valid recipients")
            return True
        self.say(b"354 End data with <CR><LF>.<CR><LF>")
        while True:
            line = self.line()
            if line == b".":
                self.verbs.append(".")
                return self.end_of_content()
            self.content += (line[1:] if line.startswith(b".") else line) + b"\r\n"

    def command(self, line):
        verb, _, arg = line.partition(b" ")
        verb = verb.upper()
        self.verbs.append(verb.decode("ascii", "replace"))
        if verb == b"EHLO":
            self.say(b"\r\n".join(b"250-" + w for w in ehlo[:-1]) +
                     b"\r\n250 " + ehlo[-1])
        elif verb == b"MAIL":
            who = local(arg)
            if who in (b"mail450", b"mail550"):
                self.say(b"450 4.7.1 Try later" if who == b"mail450"
                         else b"550 5.7.1 Sender refused")
            else:
                self.reset()
                self.sender = who
                self.say(b"250 2.1.0 Ok")
        elif verb == b"RCPT":
            who = local(arg)
            if self.sender is None:
                self.say(b"503 5.5.1 Error: need MAIL command")
            elif who == b"r450":
                self.say(b"450 4.2.0 Mailbox busy")
            elif who == b"r550":
                self.say(b"550 5.1.1 No such user")
            else:
                self.rcpts += 1
                self.say(b"250 2.1.5 Ok")
        elif verb == b"BDAT" and b"CHUNKING" in ehlo:
            return self.bdat(arg)
        elif verb == b"DATA":
            return self.data()
        elif verb == b"RSET":
            self.reset()
            self.say(b"250 2.0.0 Ok")
        elif verb == b"QUIT":
            self.say(b"221 2.0.0 Bye")
            return False
        else:
            self.say(b"502 5.5.2 Error: command not recognized")
        return True

    def run(self):
        self.conn.sendall(b"220 peer.test ESMTP\r\n")
        try:
            while self.command(self.line()):
                pass
            self.flush()
        except (EOFError, OSError):
            pass
        transcript.write("closed\n")
        self.conn.close()


srv = socket.create_server(("127.0.0.1", port))    # SO_REUSEADDR on
print("listening", flush=True)
while True:
    threading.Thread(target=Session(srv.accept()[0]).run, daemon=True).start()
