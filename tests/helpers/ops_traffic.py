#!/usr/bin/python3
"""ops_traffic.py - one scripted day of mail, the same for any MTA.

    ops_traffic.py PORT

Talks SMTP to 127.0.0.1:PORT with smtplib. The MTA under test serves
local.test (mailboxes alice and bob, the alias team -> alice, bob) and
relays remote.test to tests/helpers/qmgr_sink.py, whose verdicts are by
local part: hard* 550, soft* 451, others 250. The traffic:

  1  carol@ext.test  -> alice@local.test              delivered locally
  2  carol@ext.test  -> team@local.test               alias: 2 deliveries
  3  alice@local.test -> dave@remote.test             delivered remotely
                      + hard@remote.test             bounced (RET=HDRS:
                                                      the notice, to alice,
                                                      is one more delivery)
  4  erin@other.test -> soft@remote.test              deferred
  5  mallory@bad.test -> nobody@local.test            rejected at RCPT

Bodies are some kilobytes, so that pflogsumm's byte counts are made of
the messages more than of each MTA's own header fields. Prints one line
per step; exits non-zero if a reply was not the one expected.
"""
import smtplib
import sys

PORT = int(sys.argv[1])


def body(n, subject):
    lines = ["From: sender <sender@ext.test>", "To: someone",
             "Subject: %s" % subject,
             "Message-ID: <ops-%d@traffic.test>" % n, ""]
    lines += ["line %04d of message %d, padding the day's traffic." % (i, n)
              for i in range(40 * n)]
    return "\r\n".join(lines) + "\r\n"


def send(n, sender, rcpts, mail_options=()):
    with smtplib.SMTP("127.0.0.1", PORT, timeout=10) as s:
        s.ehlo("client.traffic.test")
        refused = s.sendmail(sender, rcpts, body(n, "message %d" % n),
                             mail_options=list(mail_options))
        print("message %d: sent, refused %s" % (n, sorted(refused)))


send(1, "carol@ext.test", ["alice@local.test"])
send(2, "carol@ext.test", ["team@local.test"])
send(3, "alice@local.test", ["dave@remote.test", "hard@remote.test"],
     ["RET=HDRS"])
send(4, "erin@other.test", ["soft@remote.test"])

with smtplib.SMTP("127.0.0.1", PORT, timeout=10) as s:
    s.ehlo("client.traffic.test")
    s.mail("mallory@bad.test")
    code, text = s.rcpt("nobody@local.test")
    print("message 5: RCPT %d %s" % (code, text.decode(errors="replace")))
    if code != 550:
        sys.exit(1)
    s.rset()
