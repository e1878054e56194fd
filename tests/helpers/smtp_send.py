#!/usr/bin/env python3
"""smtp_send.py - Python smtplib as a real SMTP client for smtpd's tests.

  smtp_send.py send PORT [options] FROM TO...
      One message. Prints every reply of the transaction as "CMD CODE
      TEXT" lines (MAIL, RCPT, DATA/BDAT), exits 0 if it was queued.
      --file PATH        the message (default: a small generated one)
      --size-mb N        a generated message of about N MiB
      --mail-opt OPT     a MAIL parameter (repeatable): SMTPUTF8, SIZE=...
      --rcpt-opt OPT     a RCPT parameter for every recipient (repeatable)
      --bdat N           send with BDAT in chunks of N octets (CHUNKING)
      --helo NAME        EHLO name (default client.test)
      --helo-only        use HELO instead of EHLO
  smtp_send.py load PORT COUNT SESSIONS SECONDS OUTFILE FROM TO [BANNER]
      COUNT messages over SESSIONS parallel connections, for at most
      SECONDS. Each accepted message's queue ID and number is appended to
      OUTFILE ("ID N") and flushed as soon as the 250 arrives, so that the
      list survives the server being killed. Connection errors are
      counted, not fatal (the crash test kills the server on purpose).
      With BANNER, a server whose greeting lacks that text is not used
      (another test instance that took the port while ours was down).
"""
import re
import smtplib
import sys
import threading
import time

QUEUED_RE = re.compile(r"queued as ([0-9A-Za-z]{14})")


def make_message(n=0, size_mb=0):
    head = ("From: sender@example.org\r\nTo: rcpt@example.net\r\n"
            "Subject: postern test %d\r\nMessage-Id: <%d.test@example.org>"
            "\r\n\r\n" % (n, n)).encode()
    body = b"Body of message %d.\r\n.a line starting with a dot\r\n" % n
    if size_mb:
        line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
        body += line * (size_mb * 1024 * 1024 // len(line))
    return head + body


def reply_text(msg):
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg


def cmd_send(args):
    opts = {"file": None, "size": 0, "mail": [], "rcpt": [], "bdat": 0,
            "helo": "client.test", "ehlo": True}
    port = int(args.pop(0))
    while args and args[0].startswith("--"):
        o = args.pop(0)
        if o == "--file":
            opts["file"] = args.pop(0)
        elif o == "--size-mb":
            opts["size"] = int(args.pop(0))
        elif o == "--mail-opt":
            opts["mail"].append(args.pop(0))
        elif o == "--rcpt-opt":
            opts["rcpt"].append(args.pop(0))
        elif o == "--bdat":
            opts["bdat"] = int(args.pop(0))
        elif o == "--helo":
            opts["helo"] = args.pop(0)
        elif o == "--helo-only":
            opts["ehlo"] = False
        else:
            print("unknown option " + o, file=sys.stderr)
            return 2
    sender, rcpts = args[0], args[1:]
    if opts["file"]:
        with open(opts["file"], "rb") as f:
            msg = f.read()
    else:
        msg = make_message(0, opts["size"])
    s = smtplib.SMTP("127.0.0.1", port, timeout=120)
    if opts["ehlo"]:
        s.ehlo(opts["helo"])
    else:
        s.helo(opts["helo"])
    code, text = s.mail(sender, opts["mail"])
    print("MAIL %d %s" % (code, reply_text(text)))
    if code != 250:
        s.quit()
        return 1
    good = 0
    for r in rcpts:
        code, text = s.rcpt(r, opts["rcpt"])
        print("RCPT %d %s" % (code, reply_text(text)))
        good += code == 250
    if opts["bdat"]:
        if not s.has_extn("chunking"):
            print("no CHUNKING")
            return 1
        chunks = [msg[i:i + opts["bdat"]]
                  for i in range(0, len(msg), opts["bdat"])] or [b""]
        for i, chunk in enumerate(chunks):
            last = " LAST" if i == len(chunks) - 1 else ""
            s.send(b"BDAT %d%s\r\n" % (len(chunk), last.encode()) + chunk)
            code, text = s.getreply()
            print("BDAT %d %s" % (code, reply_text(text)))
    else:
        code, text = s.data(msg) if good else s.docmd("DATA")
        print("DATA %d %s" % (code, reply_text(text)))
    try:
        s.quit()
    except smtplib.SMTPException:
        pass
    return 0 if code == 250 else 1


def cmd_load(args):
    port, count, sessions, seconds = (int(args[0]), int(args[1]),
                                      int(args[2]), float(args[3]))
    outfile, sender, rcpt = args[4], args[5], args[6]
    banner = args[7] if len(args) > 7 else None
    out = open(outfile, "a")
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "errors": 0}
    deadline = time.monotonic() + seconds

    def take():
        with lock:
            if state["next"] >= count or time.monotonic() > deadline:
                return None
            state["next"] += 1
            return state["next"]

    def worker():
        s = None
        while True:
            n = take()
            if n is None:
                break
            try:
                if s is None:
                    s = smtplib.SMTP(timeout=10)
                    code, greeting = s.connect("127.0.0.1", port)
                    if banner and banner not in reply_text(greeting):
                        s.close()
                        raise OSError("not our server")
                    s.ehlo("load.test")
                s.mail(sender)
                s.rcpt(rcpt)
                code, text = s.data(make_message(n))
                m = QUEUED_RE.search(reply_text(text))
                if code == 250 and m:
                    with lock:
                        out.write("%s %d\n" % (m.group(1), n))
                        out.flush()
                        state["ok"] += 1
                else:
                    s.rset()
            except (OSError, smtplib.SMTPException):
                with lock:
                    state["errors"] += 1
                s = None
                time.sleep(0.05)
        if s is not None:
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass

    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.close()
    print("queued=%d errors=%d" % (state["ok"], state["errors"]))
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "send":
        return cmd_send(argv[2:])
    if argv[1] == "load":
        return cmd_load(argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
