#!/usr/bin/python3
"""spf_suite_dns.py - an authoritative DNS server (RFC 1035, UDP, loopback)
for the RFC 7208 / RFC 4408 SPF test suites (tests/spf_suite.bats).

    spf_suite_dns.py SUITE.yml[.gz] [--scenario N|DESCRIPTION [--port P]]

Loads the scenarios (YAML documents) of SUITE. Scenarios reuse names
(example.com), so each one is served on its own UDP socket on 127.0.0.1:
with --scenario, that one on port P (default: a free port); without, every
scenario on a free port of its own, so that the driver can run scenarios
side by side. Prints the ports, in scenario order, on one line.

Answers per the zonedata: A, AAAA, TXT (a string or a list of strings, split
into 255-octet character-strings), SPF (type 99, the same rdata as TXT), MX
([preference, host]), PTR, CNAME (followed within the zone, as an
authoritative server does). A name absent from the zone is NXDOMAIN; a name
present without the asked type is NOERROR with no answer (NODATA); a name
whose records include TIMEOUT gets no reply at all, so the client times out.
Names compare case-insensitively. Trusts its suite file; a malformed query
is dropped.
"""
import argparse
import gzip
import ipaddress
import select
import socket
import struct
import sys

import yaml

TYPES = {"A": 1, "CNAME": 5, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
         "SPF": 99}
T_ANY = 255
RCODE_NOERROR, RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_NOTIMP = 0, 1, 3, 4
TTL = 60


def load(path):
    """The scenarios of a suite file, in order."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def encode_name(name):
    """A domain name in wire form, uncompressed (RFC 1035 3.1)."""
    out = b""
    for label in name.rstrip(".").split("."):
        if not label:
            continue
        raw = label.encode("utf-8")
        if len(raw) > 63:
            raise ValueError("label too long: %r" % label)
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def character_strings(value):
    """TXT rdata: one or more <character-string>s (RFC 1035 3.3.14)."""
    parts = value if isinstance(value, list) else [value]
    out = b""
    for part in parts:
        raw = str(part).encode("utf-8")
        if not raw:
            out += b"\0"
        while raw:
            out += bytes([len(raw[:255])]) + raw[:255]
            raw = raw[255:]
    return out


def rdata(rtype, value):
    if rtype == "A":
        return ipaddress.IPv4Address(value).packed
    if rtype == "AAAA":
        return ipaddress.IPv6Address(value).packed
    if rtype in ("TXT", "SPF"):
        return character_strings(value)
    if rtype == "MX":
        return struct.pack("!H", int(value[0])) + encode_name(value[1])
    if rtype in ("PTR", "CNAME"):
        return encode_name(value)
    raise ValueError("unknown record type %s" % rtype)


class Zone:
    """One scenario's zonedata: lower-cased name -> [(type, rdata)].

    The suites' conventions (the header of rfc7208-tests.yml): an SPF
    record is served as TXT too, unless the name has TXT records of its own
    or "TXT: NONE"; TIMEOUT makes every query of the name that has no
    records of its type go unanswered (a TXT present is still answered).
    """

    def __init__(self, zonedata):
        self.names = {}
        self.timeout = set()
        for name, records in (zonedata or {}).items():
            key = name.lower().rstrip(".")
            entries = self.names.setdefault(key, [])
            spf, txt = [], False
            for rec in records or []:
                if rec == "TIMEOUT":
                    self.timeout.add(key)
                    continue
                for rtype, value in rec.items():
                    if rtype == "TXT":
                        txt = True
                        if value == "NONE":
                            continue
                    try:
                        entries.append((TYPES[rtype], rdata(rtype, value)))
                    except (ValueError, KeyError) as e:
                        # A record the wire cannot carry (a label over 63
                        # octets) is left out, as no server could hold it.
                        print("spf_suite_dns: %s: %s" % (name, e),
                              file=sys.stderr)
                        continue
                    if rtype == "SPF":
                        spf.append(entries[-1][1])
            if not txt:
                entries.extend((TYPES["TXT"], d) for d in spf)

    def resolve(self, qname, qtype):
        """(rcode, [(owner, type, rdata)]), or None for no reply."""
        answers = []
        owner = qname.rstrip(".")		# the question's case, echoed
        for _ in range(8):			# CNAME chains, bounded
            name = owner.lower()
            recs = self.names.get(name, [])
            hit = [(owner, t, d) for t, d in recs
                   if t == qtype or qtype == T_ANY]
            if hit:
                return RCODE_NOERROR, answers + hit
            if name in self.timeout:
                return None
            if name not in self.names:
                return (RCODE_NOERROR if answers else RCODE_NXDOMAIN,
                        answers)
            cname = [d for t, d in recs if t == TYPES["CNAME"]]
            if not cname:
                return RCODE_NOERROR, answers
            answers.append((owner, TYPES["CNAME"], cname[0]))
            owner = decode_name(cname[0], 0)[0]
        return RCODE_NOERROR, answers


def decode_name(msg, off):
    """(name, next offset) of an uncompressed name; queries never compress."""
    labels = []
    while True:
        if off >= len(msg):
            raise ValueError("truncated name")
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        if n & 0xC0:
            raise ValueError("compressed or extended label in a question")
        labels.append(msg[off:off + n].decode("utf-8", "replace"))
        off += n


def reply(query, zone):
    """The response datagram to query, or None for no reply."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000:			# a response: not for us
        return None
    opcode = (flags >> 11) & 0xF
    rd = flags & 0x0100
    if qdcount != 1 or opcode != 0:
        rcode = RCODE_NOTIMP if opcode != 0 else RCODE_FORMERR
        return struct.pack("!HHHHHH", qid, 0x8000 | (opcode << 11) | rd
                           | rcode, 0, 0, 0, 0)
    try:
        qname, off = decode_name(query, 12)
        qtype, qclass = struct.unpack("!HH", query[off:off + 4])
    except (ValueError, struct.error):
        return None
    question = query[12:off + 4]
    if qclass != 1:
        rcode, answers = RCODE_NOTIMP, []
    else:
        result = zone.resolve(qname, qtype)
        if result is None:
            return None
        rcode, answers = result
    # QR, AA, RD copied, no RA (RFC 1035 4.1.1); OPT records of the query
    # are not echoed, which RFC 6891 7 allows for a server without EDNS.
    head = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | rcode,
                       1, len(answers), 0, 0)
    body = b"".join(encode_name(owner) + struct.pack("!HHIH", t, 1, TTL,
                                                       len(d)) + d
                    for owner, t, d in answers)
    msg = head + question + body
    if len(msg) > 512 and not has_edns(query):
        # TC: the client retries over TCP, which this server does not
        # serve; the suites' answers fit in 512 octets anyway.
        return struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | 0x0200 | rd
                           | rcode, 1, 0, 0, 0) + question
    return msg


def has_edns(query):
    """Does the query carry additional records (an OPT, RFC 6891)?"""
    return struct.unpack("!H", query[10:12])[0] > 0


def pick(scenarios, which):
    """The index of a scenario given by number or by description."""
    if which.isdigit():
        return int(which)
    for i, s in enumerate(scenarios):
        if s.get("description") == which:
            return i
    raise SystemExit("spf_suite_dns: no scenario %r" % which)


def main():
    ap = argparse.ArgumentParser(description="DNS for the SPF test suites")
    ap.add_argument("suite")
    ap.add_argument("--scenario", help="serve only this one (index or "
                    "description); default: each on its own port")
    ap.add_argument("--port", type=int, default=0,
                    help="with --scenario: the port (default: a free one)")
    args = ap.parse_args()
    scenarios = load(args.suite)
    if args.scenario is not None:
        chosen = [pick(scenarios, args.scenario)]
    else:
        chosen = range(len(scenarios))
    socks = {}
    for i in chosen:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", args.port if args.scenario else 0))
        socks[sock] = Zone(scenarios[i].get("zonedata"))
    print(" ".join(str(s.getsockname()[1]) for s in socks), flush=True)
    while True:
        ready, _, _ = select.select(list(socks), [], [])
        for sock in ready:
            msg, peer = sock.recvfrom(65535)
            out = reply(msg, socks[sock])
            if out is not None:
                sock.sendto(out, peer)


if __name__ == "__main__":
    sys.exit(main())
