#!/usr/bin/env python3
"""requiretls_send.py - Python smtplib as the client of tests/requiretls.bats.

  requiretls_send.py PORT FROM TO [--requiretls] [--no-tls]
                     [--header "Name: value"]
      One message. Prints "ehlo-plain: ..." and "ehlo-tls: ..." (whether
      REQUIRETLS was offered before and after STARTTLS), then the MAIL
      reply "mail: CODE TEXT" and, when queued, "queued: ID".
"""
import re
import smtplib
import ssl
import sys


def main(argv):
    port, sender, rcpt = int(argv[1]), argv[2], argv[3]
    rest = argv[4:]
    requiretls = "--requiretls" in rest
    use_tls = "--no-tls" not in rest
    headers = [rest[i + 1] for i, a in enumerate(rest) if a == "--header"]
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    s.ehlo("client.test")
    print("ehlo-plain: %s" % ("REQUIRETLS" if s.has_extn("requiretls")
                              else "none"))
    if use_tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s.starttls(context=ctx)
        s.ehlo("client.test")
        print("ehlo-tls: %s" % ("REQUIRETLS" if s.has_extn("requiretls")
                                else "none"))
    opts = " REQUIRETLS" if requiretls else ""
    code, text = s.docmd("MAIL FROM:<%s>%s" % (sender, opts))
    print("mail: %d %s" % (code, text.decode()))
    if code != 250:
        s.quit()
        return 1
    code, text = s.docmd("RCPT TO:<%s>" % rcpt)
    if code != 250:
        print("rcpt: %d %s" % (code, text.decode()))
        return 1
    msg = "".join(h + "\r\n" for h in headers)
    msg += "From: <%s>\r\nTo: <%s>\r\nSubject: requiretls\r\n\r\nhi\r\n" % (
        sender, rcpt)
    code, text = s.data(msg.encode())
    text = text.decode()
    m = re.search(r"queued as ([0-9A-Za-z]{14})", text)
    print("queued: %s" % (m.group(1) if m else "no (%d %s)" % (code, text)))
    s.quit()
    return 0 if m else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
