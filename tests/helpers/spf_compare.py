#!/usr/bin/python3
"""spf_compare.py - the SPF result of python3-spf (pyspf), an
implementation independent of postern, for each case of a table.

    spf_compare.py DNS_PORT < CASES

CASES: lines "IP SENDER HELO" ("#" comments). pyspf asks the name server
on 127.0.0.1:DNS_PORT only. Prints one result a line, in order.
"""
import sys

import dns.resolver
import spf

resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(sys.argv[1])
resolver.lifetime = 2
dns.resolver.default_resolver = resolver

for line in sys.stdin:
    line = line.split("#")[0].strip()
    if not line:
        continue
    ip, sender, helo = line.split()
    if sender == "<>":
        sender = ""
    result, _ = spf.check2(i=ip, s=sender, h=helo)
    print(result)
