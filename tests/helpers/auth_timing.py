#!/usr/bin/env python3
"""auth_timing.py - how long smtpd takes to refuse AUTH PLAIN for a user
that exists and for one that does not (both with a wrong password), over
STARTTLS on 127.0.0.1. Prints the median of each in ms and their ratio.

  auth_timing.py PORT REAL_USER UNKNOWN_USER [ROUNDS]

Attempts alternate between the two users, a few per connection (so the
session's error limit is never reached); exit 1 if any reply is not 535.
"""
import base64
import smtplib
import ssl
import statistics
import sys
import time


def main():
    port, real, unknown = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 25
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    times = {real: [], unknown: []}
    per_connection = 4
    done = 0
    while done < rounds:
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        s.starttls(context=ctx)
        s.ehlo("timing.test")
        for k in range(min(per_connection, rounds - done)):
            order = (real, unknown) if k % 2 == 0 else (unknown, real)
            for user in order:
                ir = base64.b64encode(b"\0" + user.encode() +
                                      b"\0wrong password").decode()
                t0 = time.perf_counter()
                code, _ = s.docmd("AUTH", "PLAIN " + ir)
                times[user].append((time.perf_counter() - t0) * 1000)
                if code != 535:
                    print("unexpected reply %d for %s" % (code, user))
                    return 1
            done += 1
        s.quit()
    m_real = statistics.median(times[real])
    m_unknown = statistics.median(times[unknown])
    print("median ms: %s %.2f, %s %.2f; ratio %.2f" % (
        real, m_real, unknown, m_unknown,
        max(m_real, m_unknown) / min(m_real, m_unknown)))
    return 0


sys.exit(main())
