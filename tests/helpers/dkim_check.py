#!/usr/bin/python3
"""dkim_check.py - verify every DKIM signature of a message with dkimpy
(python3-dkim), an implementation independent of postern.

    dkim_check.py MESSAGE RECORDS [--smtp-sink] [--without N]

RECORDS holds "NAME TXT..." lines: the key records dkimpy's DNS function
answers with (nothing else is looked up). --smtp-sink: MESSAGE is a file
smtp-sink -d wrote (LF line ends, dots as sent): turned back into the
message as sent (CRLF, dot-unstuffed, RFC 5321 4.5.2). --without N:
write the message minus its signature number N (from 0) to stdout instead
(so that another verifier sees one signature at a time).
Prints one line per signature: "N d=D s=S a=A pass|fail", and exits 1
unless there is at least one signature and every one passes.
"""
import re
import sys

import dkim

args = sys.argv[1:]
smtp_sink = "--smtp-sink" in args
without = None
if "--without" in args:
    without = int(args[args.index("--without") + 1])
msg = open(args[0], "rb").read()
records = {}
for line in open(args[1]):
    name, _, txt = line.strip().partition(" ")
    records[name.rstrip(".").lower()] = txt.encode()

if smtp_sink:
    msg = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    msg = re.sub(rb"(?m)^\.\.", b".", msg)

head, sep, body = msg.partition(b"\r\n\r\n")
fields = re.split(rb"\r\n(?![ \t])", head)
sigs = [i for i, f in enumerate(fields)
        if f.lower().startswith(b"dkim-signature:")]

if without is not None:
    del fields[sigs[without]]
    sys.stdout.buffer.write(b"\r\n".join(fields) + sep + body)
    sys.exit(0)


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return records.get(name.rstrip(".").lower())


ok = bool(sigs)
for n, i in enumerate(sigs):
    tags = dict(re.findall(rb"(\w+)=([^;]*)", re.sub(rb"\s+", b"",
                                                    fields[i][15:])))
    d = dkim.DKIM(msg)
    passed = d.verify(idx=n, dnsfunc=dnsfunc)
    ok = ok and passed
    print("%d d=%s s=%s a=%s %s" % (n, tags[b"d"].decode(),
          tags[b"s"].decode(), tags[b"a"].decode(),
          "pass" if passed else "fail"))
sys.exit(0 if ok else 1)
