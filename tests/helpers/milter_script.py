#!/usr/bin/python3
"""milter_script.py - a scripted milter on python3-milter (libmilter), for
tests/milter.bats: what it does is chosen by the message, so one filter
process serves every test of the file.

  milter_script.py PORT|unix:/PATH LOGFILE

Listens on inet:PORT@127.0.0.1 (or the Unix socket) and appends one line per event to LOGFILE
("stage key=value ..."), so a test can check what postern sent (macros,
ESMTP arguments, headers, body chunks).

  MAIL FROM reject-mail@...    550 5.7.1 sender refused by the filter
  MAIL FROM tempfail-mail@...  TEMPFAIL
  RCPT TO reject-rcpt@...      550 5.7.1 recipient refused by the filter
  RCPT TO discard-rcpt@...     DISCARD
  Subject at end of message:
    accept / reject (multi-line 554) / tempfail / discard / quarantine
    edit        every header, body and envelope edit at once
    slow        sleeps past milter_content_timeout, sending PROGRESS first
    skip        SKIP after the first body chunk
"""
import sys
import time

import Milter

LOG = None


def log(*words):
    with open(LOG, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")


class Script(Milter.Base):
    def __init__(self):
        self.subject = ""
        self.chunks = 0
        self.body_len = 0
        self.headers = []

    def connect(self, hostname, family, hostaddr):
        log("connect", "host=%s" % hostname, "addr=%s" % (hostaddr,),
            "j=%s" % self.getsymval("j"),
            "daemon_name=%s" % self.getsymval("{daemon_name}"),
            "_=%s" % self.getsymval("_"))
        return Milter.CONTINUE

    def hello(self, name):
        log("helo", name)
        return Milter.CONTINUE

    def envfrom(self, sender, *args):
        log("mail", sender, "args=%s" % ",".join(args),
            "mail_addr=%s" % self.getsymval("{mail_addr}"),
            "auth_authen=%s" % self.getsymval("{auth_authen}"))
        self.subject, self.chunks, self.body_len, self.headers = "", 0, 0, []
        if sender.startswith("<reject-mail@"):
            self.setreply("550", "5.7.1", "sender refused by the filter")
            return Milter.REJECT
        if sender.startswith("<tempfail-mail@"):
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *args):
        log("rcpt", rcpt, "args=%s" % ",".join(args),
            "rcpt_addr=%s" % self.getsymval("{rcpt_addr}"))
        if rcpt.startswith("<reject-rcpt@"):
            self.setreply("550", "5.7.1", "recipient refused by the filter")
            return Milter.REJECT
        if rcpt.startswith("<discard-rcpt@"):
            return Milter.DISCARD
        return Milter.CONTINUE

    def data(self):
        log("data", "i=%s" % self.getsymval("i"))
        return Milter.CONTINUE

    def header(self, name, value):
        self.headers.append(name)
        if name.lower() == "subject":
            self.subject = value.strip()
        return Milter.CONTINUE

    def eoh(self):
        log("eoh", "headers=%s" % ",".join(self.headers))
        return Milter.CONTINUE

    def body(self, chunk):
        self.chunks += 1
        self.body_len += len(chunk)
        if len(chunk) > 65535:
            log("body-chunk-too-big", len(chunk))
        if self.subject == "skip":
            return Milter.SKIP
        return Milter.CONTINUE

    def eom(self):
        s = self.subject
        log("eom", "subject=%s" % s, "chunks=%d" % self.chunks,
            "body=%d" % self.body_len, "i=%s" % self.getsymval("i"))
        if s == "accept":
            return Milter.ACCEPT
        if s == "reject":
            self.setreply("554", "5.7.1", "rejected by the", "scripted milter")
            return Milter.REJECT
        if s == "tempfail":
            return Milter.TEMPFAIL
        if s == "discard":
            return Milter.DISCARD
        if s == "quarantine":
            self.quarantine("held by the milter test")
            return Milter.CONTINUE
        if s == "slow":
            self.progress()
            time.sleep(6)
            return Milter.CONTINUE
        if s == "edit":
            self.progress()
            self.addheader("X-Milter-Added", "yes")
            self.addheader("X-Milter-Top", "first", 0)
            self.chgheader("Subject", 1, "edited by the filter")
            self.chgheader("X-Remove-Me", 1, "")
            self.addheader("X-Folded", "one\n\ttwo")
            self.replacebody(b"replaced body\r\n")
            self.replacebody(b"second line\n")
            self.chgfrom("<changed@example.org>")
            self.addrcpt("<carol@localhost>")
            self.addrcpt("<dave@example.net>", "NOTIFY=NEVER")
            self.delrcpt("<alice@postern.test>")
            return Milter.ACCEPT
        return Milter.CONTINUE


def main():
    global LOG
    port, LOG = sys.argv[1], sys.argv[2]
    Milter.factory = Script
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY |
                     Milter.ADDRCPT | Milter.ADDRCPT_PAR | Milter.DELRCPT |
                     Milter.CHGFROM | Milter.QUARANTINE)
    log("ready")
    spec = port if port.startswith("unix:") else "inet:%s@127.0.0.1" % port
    Milter.runmilter("postern-test", spec, 60)


if __name__ == "__main__":
    main()
