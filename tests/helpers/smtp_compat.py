#!/usr/bin/env python3
"""smtp_compat.py - differential test of postern's smtpd against Postfix's.

  smtp_compat.py POSTFIX_PORT POSTERN_PORT [CASE-NAME-PREFIX...]

Both servers are configured alike by tests/compat.bats (local domain
postern.test with one user alice, relaying denied to 127.0.0.1,
message_size_limit 100000, 3 recipients per message). Every case below
is a list of raw steps; each step is written in one send() and is
answered by a known number of replies. For every reply the basic code
and the RFC 3463 enhanced code (or "-" when there is none) are compared,
never the text. A case listed with an expected postern answer is a
deliberate difference: postern must give exactly that, and the reason
says why we keep it. Prints one table row per case; exits 1 when a case
differs without being recorded (or a recorded difference changed).

Trusts: nothing it reads from either server (it only parses reply codes).
"""
import re
import socket
import sys
import time

EHLO = ("EHLO client.test\r\n", 1)
MAIL = ("MAIL FROM:<sender@example.test>\r\n", 1)
RCPT = ("RCPT TO:<alice@postern.test>\r\n", 1)
BODY = "From: <sender@example.test>\r\nSubject: compat\r\n\r\nhello\r\n"

# (name, steps, expected postern replies or None, reason)
# A step is (payload, number of replies).  The session starts after the
# greeting; "ehlo" is not implied: cases say what they send.
CASES = [
    # Command order (RFC 5321 4.1.4)
    ("order-mail-before-helo", [MAIL], 
     ['503 5.5.1'],
     'RFC 5321 4.1.4: HELO/EHLO comes first (Postfix smtpd_helo_required=no lets it slide)'),
    ("order-rcpt-before-mail", [EHLO, RCPT], None, ""),
    ("order-data-before-mail", [EHLO, ("DATA\r\n", 1)], None, ""),
    ("order-data-without-rcpt", [EHLO, MAIL, ("DATA\r\n", 1)], 
     ['250 -', '250 2.1.0', '503 5.5.1'],
     'RFC 5321 3.3 allows 503 or 554; no RCPT at all is a sequence error (554 when all were refused, as Postfix)'),
    ("order-nested-mail", [EHLO, MAIL, MAIL], None, ""),
    ("order-helo-twice", [EHLO, ("HELO client.test\r\n", 1), MAIL],
     None, ""),
    ("order-rset-then-rcpt", [EHLO, MAIL, ("RSET\r\n", 1), RCPT], None, ""),
    # Unknown and malformed commands
    ("cmd-unknown", [EHLO, ("FOO bar\r\n", 1)], None, ""),
    ("cmd-empty-line", [EHLO, ("\r\n", 1)], None, ""),
    ("cmd-lowercase", [("ehlo client.test\r\n", 1),
                       ("mail from:<sender@example.test>\r\n", 1)],
     None, ""),
    ("helo-empty", [("HELO\r\n", 1)], 
     ['501 5.5.4'],
     'every postern reply carries an RFC 3463 code; Postfix adds none before EHLO'),
    ("ehlo-empty", [("EHLO\r\n", 1)], 
     ['501 5.5.4'],
     'every postern reply carries an RFC 3463 code; Postfix adds none before EHLO'),
    ("ehlo-spaces", [("EHLO a b c\r\n", 1), MAIL], 
     ['501 5.5.2', '503 5.5.1'],
     'RFC 5321 4.1.1.1: EHLO takes one domain or address literal; Postfix accepts any text'),
    ("ehlo-address-literal", [("EHLO [127.0.0.1]\r\n", 1), MAIL], None, ""),
    # MAIL FROM syntax (RFC 5321 4.1.2; Postfix strict_rfc821_envelopes=no)
    ("mail-null-sender", [EHLO, ("MAIL FROM:<>\r\n", 1)], None, ""),
    ("mail-space-after-colon",
     [EHLO, ("MAIL FROM: <sender@example.test>\r\n", 1)], None, ""),
    ("mail-no-brackets", [EHLO, ("MAIL FROM:sender@example.test\r\n", 1)],
     None, ""),
    ("mail-no-colon", [EHLO, ("MAIL FROM <sender@example.test>\r\n", 1)],
     None, ""),
    ("mail-missing-close", [EHLO, ("MAIL FROM:<sender@example.test\r\n", 1)],
     None, ""),
    ("mail-trailing-junk",
     [EHLO, ("MAIL FROM:<sender@example.test> junk\r\n", 1)], None, ""),
    ("mail-source-route",
     [EHLO, ("MAIL FROM:<@relay.test:sender@example.test>\r\n", 1)],
     None, ""),
    ("mail-quoted-local",
     [EHLO, ("MAIL FROM:<\"send er\"@example.test>\r\n", 1)], None, ""),
    ("mail-address-literal",
     [EHLO, ("MAIL FROM:<sender@[192.0.2.1]>\r\n", 1)], None, ""),
    ("mail-long-local-part",
     [EHLO, ("MAIL FROM:<%s@example.test>\r\n" % ("l" * 65), 1)],
     None, ""),
    ("mail-envid",
     [EHLO, ("MAIL FROM:<sender@example.test> ENVID=QQ314159\r\n", 1)],
     None, ""),
    ("mail-envid-bad-xtext",
     [EHLO, ("MAIL FROM:<sender@example.test> ENVID=a+zz\r\n", 1)],
     None, ""),
    ("mail-auth-param-without-auth",
     [EHLO, ("MAIL FROM:<sender@example.test> AUTH=<>\r\n", 1)],
     
     ['250 -', '555 5.5.4'],
     'RFC 5321 4.1.1.11/RFC 4954 5: AUTH= belongs to an extension not offered here (no TLS)'),
    ("mail-unterminated-quote",
     [EHLO, ("MAIL FROM:<\"sender@example.test>\r\n", 1)], None, ""),
    ("mail-size-twice",
     [EHLO, ("MAIL FROM:<sender@example.test> SIZE=1 SIZE=2\r\n", 1)],
     
     ['250 -', '501 5.5.4'],
     'a repeated parameter is ambiguous (RFC 3461 4.1-4.4 forbid repeats); Postfix takes the last'),
    ("mail-from-nothing", [EHLO, ("MAIL FROM:\r\n", 1)], None, ""),
    ("rcpt-to-nothing", [EHLO, MAIL, ("RCPT TO: \r\n", 1)], None, ""),
    ("mail-no-argument", [EHLO, ("MAIL\r\n", 1)], None, ""),
    ("mail-no-brackets-param",
     [EHLO, ("MAIL FROM:sender@example.test SIZE=100\r\n", 1)], None, ""),
    ("mail-bad-domain",
     [EHLO, ("MAIL FROM:<sender@exa..mple.test>\r\n", 1)], None, ""),
    # ESMTP parameters (RFC 1870, 6152, 3461, 6531)
    ("size-over-limit",
     [EHLO, ("MAIL FROM:<sender@example.test> SIZE=200000\r\n", 1)],
     None, ""),
    ("size-within-limit",
     [EHLO, ("MAIL FROM:<sender@example.test> SIZE=1000\r\n", 1)], None, ""),
    ("size-not-a-number",
     [EHLO, ("MAIL FROM:<sender@example.test> SIZE=abc\r\n", 1)], None, ""),
    ("body-8bitmime",
     [EHLO, ("MAIL FROM:<sender@example.test> BODY=8BITMIME\r\n", 1)],
     None, ""),
    ("body-binarymime",
     [EHLO, ("MAIL FROM:<sender@example.test> BODY=BINARYMIME\r\n", 1)],
     None, ""),
    ("body-unknown",
     [EHLO, ("MAIL FROM:<sender@example.test> BODY=9BIT\r\n", 1)], None, ""),
    ("mail-unknown-param",
     [EHLO, ("MAIL FROM:<sender@example.test> FOO=BAR\r\n", 1)], None, ""),
    ("mail-smtputf8",
     [EHLO, ("MAIL FROM:<sender@example.test> SMTPUTF8\r\n", 1)], None, ""),
    ("mail-ret-bad",
     [EHLO, ("MAIL FROM:<sender@example.test> RET=SOME\r\n", 1)], None, ""),
    ("rcpt-notify-bad",
     [EHLO, MAIL, ("RCPT TO:<alice@postern.test> NOTIFY=BOGUS\r\n", 1)],
     None, ""),
    ("rcpt-notify-never-and-success",
     [EHLO, MAIL,
      ("RCPT TO:<alice@postern.test> NOTIFY=NEVER,SUCCESS\r\n", 1)],
     None, ""),
    ("rcpt-notify-ok",
     [EHLO, MAIL,
      ("RCPT TO:<alice@postern.test> NOTIFY=SUCCESS,FAILURE\r\n", 1)],
     None, ""),
    ("rcpt-orcpt-bad",
     [EHLO, MAIL, ("RCPT TO:<alice@postern.test> ORCPT=alice\r\n", 1)],
     None, ""),
    ("rcpt-unknown-param",
     [EHLO, MAIL, ("RCPT TO:<alice@postern.test> FOO=BAR\r\n", 1)],
     None, ""),
    # RCPT policy
    ("rcpt-known-user", [EHLO, MAIL, RCPT], None, ""),
    ("rcpt-unknown-user",
     [EHLO, MAIL, ("RCPT TO:<nobody@postern.test>\r\n", 1)], None, ""),
    ("rcpt-postmaster", [EHLO, MAIL, ("RCPT TO:<postmaster>\r\n", 1)],
     None, ""),
    ("rcpt-relay-denied",
     [EHLO, MAIL, ("RCPT TO:<someone@elsewhere.test>\r\n", 1)], None, ""),
    ("rcpt-literal-relay-denied",
     [EHLO, MAIL, ("RCPT TO:<someone@[192.0.2.1]>\r\n", 1)], None, ""),
    ("rcpt-quoted-unknown",
     [EHLO, MAIL, ("RCPT TO:<\"no body\"@postern.test>\r\n", 1)], None, ""),
    ("rcpt-space-after-colon",
     [EHLO, MAIL, ("RCPT TO: <alice@postern.test>\r\n", 1)], None, ""),
    ("rcpt-utf8-without-smtputf8",
     [EHLO, MAIL, ("RCPT TO:<\xc3\xa9lise@postern.test>\r\n", 1)],
     
     ['250 -', '250 2.1.0', '553 5.6.7'],
     'RFC 6531 3.4: a non-ASCII address needs MAIL ... SMTPUTF8 (553 5.6.7); Postfix looks the name up'),
    ("rcpt-local-part-only",
     [EHLO, MAIL, ("RCPT TO:<alice>\r\n", 1)], 
     ['250 -', '250 2.1.0', '501 5.1.3'],
     'RFC 5321 4.1.2: a forward-path has a domain (only <postmaster> may lack it); Postfix appends myorigin'),
    ("rcpt-ipv6-literal-relay-denied",
     [EHLO, MAIL, ("RCPT TO:<x@[IPv6:2001:db8::1]>\r\n", 1)], None, ""),
    ("rcpt-bad-domain",
     [EHLO, MAIL, ("RCPT TO:<alice@postern..test>\r\n", 1)], None, ""),
    ("rcpt-before-helo", [RCPT], None, ""),
    ("rcpt-empty", [EHLO, MAIL, ("RCPT TO:<>\r\n", 1)], None, ""),
    ("rcpt-too-many",
     [EHLO, MAIL, RCPT, ("RCPT TO:<root@postern.test>\r\n", 1),
      ("RCPT TO:<carol@localhost>\r\n", 1),
      ("RCPT TO:<postmaster@postern.test>\r\n", 1)], None, ""),
    ("rcpt-duplicates-not-counted",
     [EHLO, MAIL, RCPT, RCPT, RCPT, RCPT],
     ["250 -", "250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.1.5",
      "250 2.1.5"],
     "a repeated RCPT adds no recipient, so it does not count against "
     "smtpd_recipient_limit (Postfix counts commands)"),
    ("rcpt-no-brackets",
     [EHLO, MAIL, ("RCPT TO:alice@postern.test\r\n", 1)], None, ""),
    ("rcpt-no-brackets-junk",
     [EHLO, MAIL, ("RCPT TO:alice@postern.test junk\r\n", 1)], None, ""),
    ("rcpt-utf8-with-smtputf8",
     [EHLO, ("MAIL FROM:<sender@example.test> SMTPUTF8\r\n", 1),
      ("RCPT TO:<\xc3\xa9lise@postern.test>\r\n", 1)], None, ""),
    ("rcpt-no-brackets-param",
     [EHLO, MAIL, ("RCPT TO:alice@postern.test NOTIFY=NEVER\r\n", 1)],
     None, ""),
    # DATA and pipelining (RFC 2920)
    ("data-message", [EHLO, MAIL, RCPT, ("DATA\r\n", 1),
                      (BODY + ".\r\n", 1)], None, ""),
    ("pipelined-transaction",
     [EHLO, ("MAIL FROM:<sender@example.test>\r\nRCPT TO:<alice@postern.test>"
             "\r\nRCPT TO:<nobody@postern.test>\r\nDATA\r\n", 4),
      (BODY + ".\r\n", 1)], None, ""),
    ("data-dot-stuffing", [EHLO, MAIL, RCPT, ("DATA\r\n", 1),
                           ("Subject: dots\r\n\r\n..\r\n...x\r\n.\r\n",
                            1), ("NOOP\r\n", 1)], None, ""),
    ("data-then-second-transaction",
     [EHLO, MAIL, RCPT, ("DATA\r\n", 1), (BODY + ".\r\n", 1), MAIL, RCPT],
     None, ""),
    ("pipelined-after-quit",
     [EHLO, ("QUIT\r\nNOOP\r\n", 2)], None, ""),
    ("pipelined-all-rcpt-refused",
     [EHLO, ("MAIL FROM:<sender@example.test>\r\n"
             "RCPT TO:<nobody@postern.test>\r\nDATA\r\n", 3)], None, ""),
    # BDAT (RFC 3030)
    ("bdat-without-mail", [EHLO, ("BDAT 5 LAST\r\nhello", 1)], None, ""),
    ("bdat-bad-size", [EHLO, MAIL, RCPT, ("BDAT abc\r\n", 1)], None, ""),
    ("bdat-last-without-rcpt", [EHLO, MAIL, ("BDAT 5 LAST\r\nhello", 1)],
     
     ['250 -', '250 2.1.0', '503 5.5.1'],
     'as for DATA: no RCPT at all is a sequence error (RFC 5321 3.3 allows 503 or 554)'),
    ("bdat-then-data",
     [EHLO, MAIL, RCPT, ("BDAT 5\r\nhello", 1), ("DATA\r\n", 1)],
     None, ""),
    ("bdat-then-rset",
     [EHLO, MAIL, RCPT, ("BDAT 5\r\nhello", 1), ("RSET\r\n", 1), MAIL],
     None, ""),
    ("bdat-message",
     [EHLO, MAIL, RCPT, ("BDAT %d LAST\r\n%s" % (len(BODY), BODY), 1)],
     None, ""),
    # Other verbs with and without arguments
    ("vrfy-user", [EHLO, ("VRFY alice@postern.test\r\n", 1)], None, ""),
    ("vrfy-no-arg", [EHLO, ("VRFY\r\n", 1)], None, ""),
    ("expn", [EHLO, ("EXPN staff\r\n", 1)], 
     ['250 -', '502 5.5.1'],
     'RFC 5321 4.2.4: 502 for a known verb not implemented; Postfix calls EXPN unknown (500)'),
    ("help", [EHLO, ("HELP\r\n", 1)], 
     ['250 -', '214 2.0.0'],
     'RFC 5321 4.5.1: HELP is part of the minimum implementation; Postfix lacks it'),
    ("vrfy-unknown", [EHLO, ("VRFY nobody@postern.test\r\n", 1)],
     
     ['250 -', '252 2.0.0'],
     'RFC 5321 3.5.3: 252 cannot verify; postern does not confirm or deny users (no address harvesting)'),
    ("starttls-not-offered", [EHLO, ("STARTTLS\r\n", 1)], None, ""),
    ("noop-with-arg", [EHLO, ("NOOP hello\r\n", 1)], None, ""),
    ("rset-with-arg", [EHLO, ("RSET now\r\n", 1)], None, ""),
    ("quit", [EHLO, ("QUIT\r\n", 1)], None, ""),
    ("quit-with-arg", [EHLO, ("QUIT now\r\n", 1)], None, ""),
    ("auth-not-offered", [EHLO, ("AUTH PLAIN AGFsaWNlAHg=\r\n", 1)],
     None, ""),
    # Hostile bytes
    ("nul-in-command", [EHLO, ("NOOP a\x00b\r\n", 1)], 
     ['250 -', '500 5.5.2'],
     'NUL is not a valid command character (RFC 5321 4.1.1); Postfix drops it silently'),
    ("bare-lf-command", [EHLO, ("NOOP\nNOOP\r\n", 1)], 
     ['250 -', '500 5.5.2'],
     'RFC 5321 2.3.8: only CRLF ends a line; no SMTP smuggling (Postfix 3.7 lacks smtpd_forbid_bare_newline)'),
    ("long-command-line", [EHLO, ("NOOP " + "x" * 600 + "\r\n", 1)],
     
     ['250 -', '500 5.5.2'],
     'RFC 5321 4.5.3.1.4: command lines are at most 512 octets; Postfix reads up to 2048'),
    ("bare-lf-in-data", [EHLO, MAIL, RCPT, ("DATA\r\n", 1),
                         ("Subject: x\r\n\r\nline\nmore\r\n.\r\n", 1)],
     
     ['250 -', '250 2.1.0', '250 2.1.5', '354 -', '550 5.5.2'],
     'RFC 5321 2.3.8: bare LF in DATA is refused (smuggling); Postfix 3.7 accepts it'),
]


def read_reply(sock, state, deadline):
    """One complete reply as (code, enhanced) or ("EOF"/"TIMEOUT", "-")."""
    while True:
        while b"\r\n" in state["buf"]:
            line, state["buf"] = state["buf"].split(b"\r\n", 1)
            if len(line) >= 4 and line[3:4] == b"-":
                continue
            code = line[:3].decode("latin-1")
            m = re.match(rb"^\d{3} ([245]\.\d{1,3}\.\d{1,3})(?: |$)", line)
            return code, (m.group(1).decode() if m else "-")
        left = deadline - time.monotonic()
        if left <= 0:
            return "TIMEOUT", "-"
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return "TIMEOUT", "-"
        except OSError:
            data = b""
        if not data:
            return "EOF", "-"
        state["buf"] += data


def run_case(port, steps, timeout=3.0):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    state = {"buf": b""}
    out = []
    try:
        deadline = time.monotonic() + timeout
        greeting = read_reply(sock, state, deadline)
        if greeting[0] != "220":
            return ["greeting " + " ".join(greeting)]
        for payload, n in steps:
            try:
                sock.sendall(payload.encode("latin-1"))
            except OSError:
                out.append("EOF -")
                break
            for _ in range(n):
                code, enh = read_reply(sock, state,
                                       time.monotonic() + timeout)
                out.append(code + " " + enh)
                if code in ("EOF", "TIMEOUT"):
                    return out
    finally:
        sock.close()
    return out


def main(argv):
    pf_port, pt_port = int(argv[1]), int(argv[2])
    prefixes = argv[3:]
    failed = 0
    for name, steps, expected, reason in CASES:
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        pf = run_case(pf_port, steps)
        pt = run_case(pt_port, steps)
        if expected is None:
            ok = pf == pt
            verdict = "same" if ok else "DIFFERS"
        else:
            ok = pt == expected
            verdict = ("intended: " + reason) if ok else \
                "DIFFERS from recorded " + "|".join(expected)
        if not ok:
            failed += 1
        print("%-32s postfix=%-40s postern=%-40s %s" % (
            name, "|".join(pf), "|".join(pt), verdict))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
