#!/usr/bin/env python3
"""dsn_parse.py FILE - parse a delivery status notification (RFC 3464)
with Python's email package and print what the tests check, one fact a
line:

    subject=...
    content-type=multipart/report
    report-type=delivery-status
    reporting-mta=dns; mx.postern.test
    envid=...                      (Original-Envelope-Id, when present)
    rcpt=<address> action=failed status=5.1.1 orcpt=<...> diag=<...>
    returned=message/rfc822        (or text/rfc822-headers)
    returned-subject=...           (Subject of the returned message)
    returned-body=yes|no           (does the returned part carry a body?)
    says-attached=...              (the text's sentences on what is
                                    attached, joined by one space)

Exits 1 if the message is not a well-formed multipart/report with a
delivery-status part.
"""
import email
import email.policy
import sys


def u(text):
    """Undo the parser's surrogate escapes: show UTF-8 as UTF-8."""
    if text is None:
        return ""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8",
                                                                "replace")


def header_raw(m, name):
    """A header's value as sent, UTF-8 included (compat32 would turn
    8-bit values into Header objects that print as replacement marks)."""
    for k, v in m.raw_items():
        if k.lower() == name.lower():
            return u(v).strip()
    return ""


with open(sys.argv[1], "rb") as f:
    msg = email.message_from_binary_file(f, policy=email.policy.compat32)

print("subject=%s" % msg.get("Subject", ""))
print("from=%s" % msg.get("From", ""))
print("auto-submitted=%s" % msg.get("Auto-Submitted", ""))
print("content-type=%s" % msg.get_content_type())
print("report-type=%s" % msg.get_param("report-type", ""))
if msg.get_content_type() != "multipart/report" or not msg.is_multipart():
    sys.exit(1)
parts = msg.get_payload()
if len(parts) < 2:
    sys.exit(1)
if parts[0].get_content_type() != "text/plain":
    sys.exit(1)
# What the human-readable text says is attached: from the sentence
# that names the attachment to the end of its paragraph.
said, saying = [], False
for line in u(parts[0].get_payload()).splitlines():
    saying = saying or " attached" in line
    if saying and not line.strip():
        break
    if saying:
        said.append(line.strip())
print("says-attached=%s" % " ".join(said))
status = parts[1]
if status.get_content_type() not in ("message/delivery-status",
                                     "message/global-delivery-status"):
    sys.exit(1)
# The email package parses message/delivery-status into a list of
# header blocks: the per-message one, then one per recipient. It leaves
# message/global-delivery-status (RFC 6533) as text: split it here.
blocks = status.get_payload()
if status.get_content_type() == "message/global-delivery-status":
    # Parsed like message/rfc822: the first block as headers, the rest
    # as its body. Put the text back together and split it.
    raw = (blocks[0].as_bytes().decode("utf-8", "replace")
           if isinstance(blocks, list) else u(blocks))
    raw = raw.replace("\r\n", "\n").strip("\n")
    blocks = [email.message_from_string(b + "\n")
              for b in raw.split("\n\n") if b.strip()]
if not isinstance(blocks, list) or len(blocks) < 2:
    sys.exit(1)
per_msg = blocks[0]
print("reporting-mta=%s" % per_msg.get("Reporting-MTA", ""))
if per_msg.get("Original-Envelope-Id"):
    print("envid=%s" % per_msg.get("Original-Envelope-Id"))
if not per_msg.get("Reporting-MTA"):
    sys.exit(1)
for b in blocks[1:]:
    final = header_raw(b, "Final-Recipient")
    addr = final.split(";", 1)[1].strip() if ";" in final else final
    for required in ("Final-Recipient", "Action", "Status"):
        if not b.get(required):
            sys.exit(1)
    line = "rcpt=<%s> action=%s status=%s" % (u(addr), b.get("Action"),
                                               b.get("Status"))
    if b.get("Original-Recipient"):
        line += " orcpt=<%s>" % b.get("Original-Recipient")
    if b.get("Remote-MTA"):
        line += " remote=<%s>" % b.get("Remote-MTA")
    if b.get("Diagnostic-Code"):
        line += " diag=<%s>" % " ".join(b.get("Diagnostic-Code").split())
    print(line)
if len(parts) >= 3:
    ret = parts[2]
    print("returned=%s" % ret.get_content_type())
    if ret.get_content_type() in ("message/rfc822", "message/global"):
        inner = ret.get_payload()[0]
    else:
        inner = None
    if inner is not None:
        print("returned-subject=%s" % header_raw(inner, "Subject"))
        body = inner.get_payload()
        print("returned-body=%s" % ("yes" if body and str(body).strip()
                                    else "no"))
    else:
        text = ret.get_payload()
        for line in str(text).splitlines():
            if line.lower().startswith("subject:"):
                print("returned-subject=%s" % line.split(":", 1)[1].strip())
        print("returned-body=no")
