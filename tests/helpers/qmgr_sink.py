#!/usr/bin/env python3
"""qmgr_sink.py - a small SMTP server for the qmgr and bounce tests.

    qmgr_sink.py PORT DIR

Listens on 127.0.0.1:PORT and stores every accepted message as
DIR/msg-N.eml (the data, dot-unstuffed, CRLF line ends) with its envelope
in DIR/msg-N.env ("MAIL <sender> PARAMS" then one "RCPT <addr> PARAMS"
line per accepted recipient). Connections are counted in DIR/connections.

Per-recipient verdicts, so that one message can meet several outcomes:
  local part starting "hard"  -> 550 5.1.1 user unknown
  local part starting "soft"  -> 451 4.2.0 mailbox busy
  anything else               -> 250 2.1.5 ok
If DIR/tempfail exists, every RCPT gets 451 4.3.0 (the site is "down"
for mail) until it is removed. If DIR/hold exists when a message's data
has been read, the sink creates DIR/holding and keeps the reply to the
end of data back until DIR/hold is removed (a delivery kept in flight).
If DIR/nodsn exists, EHLO does not announce DSN (a next hop that cannot
report success itself). Stop it with SIGTERM.
"""
import os
import re
import socketserver
import sys
import threading

PORT = int(sys.argv[1])
DIR = sys.argv[2]
lock = threading.Lock()
counter = [0]


def next_name():
    with lock:
        counter[0] += 1
        return os.path.join(DIR, "msg-%d" % counter[0])


def count_connection():
    with lock:
        path = os.path.join(DIR, "connections")
        n = 0
        if os.path.exists(path):
            with open(path) as f:
                n = int(f.read().strip() or 0)
        with open(path + ".tmp", "w") as f:
            f.write("%d\n" % (n + 1))
        os.replace(path + ".tmp", path)


class Session(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        count_connection()
        self.reply("220 sink.test ESMTP qmgr_sink")
        sender = None
        rcpts = []
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd[:4].upper()
            if verb in ("EHLO", "LHLO"):
                nodsn = os.path.exists(os.path.join(DIR, "nodsn"))
                self.wfile.write(b"250-sink.test\r\n250-PIPELINING\r\n"
                                 b"250-8BITMIME\r\n250-SMTPUTF8\r\n"
                                 b"250-ENHANCEDSTATUSCODES\r\n" +
                                 (b"250 SIZE 100000000\r\n" if nodsn else
                                  b"250-SIZE 100000000\r\n250 DSN\r\n"))
                self.wfile.flush()
            elif verb == "HELO":
                self.reply("250 sink.test")
            elif verb == "MAIL":
                sender = cmd[5:].strip()
                rcpts = []
                self.reply("250 2.1.0 ok")
            elif verb == "RCPT":
                arg = cmd[5:].strip()
                m = re.match(r"(?i)TO:\s*<([^>]*)>", arg)
                local = m.group(1).split("@")[0].lower() if m else ""
                if os.path.exists(os.path.join(DIR, "tempfail")):
                    self.reply("451 4.3.0 try again later")
                elif local.startswith("hard"):
                    self.reply("550 5.1.1 <%s>: user unknown" % local)
                elif local.startswith("soft"):
                    self.reply("451 4.2.0 <%s>: mailbox busy" % local)
                else:
                    rcpts.append(arg)
                    self.reply("250 2.1.5 ok")
            elif verb == "DATA":
                if not rcpts:
                    self.reply("554 5.5.1 no valid recipients")
                    continue
                self.reply("354 go ahead")
                data = []
                while True:
                    l = self.rfile.readline(1 << 20)
                    if not l:
                        return
                    if l == b".\r\n":
                        break
                    if l.startswith(b"."):
                        l = l[1:]
                    data.append(l)
                hold = os.path.join(DIR, "hold")
                if os.path.exists(hold):
                    open(os.path.join(DIR, "holding"), "w").close()
                    while os.path.exists(hold):
                        threading.Event().wait(0.05)
                name = next_name()
                with open(name + ".eml.tmp", "wb") as f:
                    f.write(b"".join(data))
                with open(name + ".env", "w") as f:
                    f.write("MAIL %s\n" % sender)
                    for r in rcpts:
                        f.write("RCPT %s\n" % r)
                os.rename(name + ".eml.tmp", name + ".eml")
                self.reply("250 2.0.0 queued as %s" % os.path.basename(name))
            elif verb == "RSET":
                sender, rcpts = None, []
                self.reply("250 2.0.0 ok")
            elif verb == "NOOP":
                self.reply("250 2.0.0 ok")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:
                self.reply("502 5.5.2 unknown command")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    os.makedirs(DIR, exist_ok=True)
    with Server(("127.0.0.1", PORT), Session) as server:
        server.serve_forever()
