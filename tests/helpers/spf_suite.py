#!/usr/bin/python3
"""spf_suite.py - run an SPF test suite of the RFCs (RFC 7208, RFC 4408; the
YAML of python3-spf) against `postern spf check` (tests/spf_suite.bats).

    spf_suite.py POSTERN CONFDIR SUITE.yml[.gz] [rfc7208|rfc4408]

Starts tests/helpers/spf_suite_dns.py (each scenario's zonedata on a port of
its own), writes one config dir per scenario (a copy of CONFDIR/postern.conf
with dns_servers at that port), runs every test's
`postern -c CONF spf check HOST MAILFROM HELO` (MAILFROM "" for the HELO
identity tests) a few at a time, and compares the printed result with the
expected one (or ones). A test's "explanation" (the exp= text) is not
compared: postern evaluates no exp= modifier and prints no explanation.
Prints one line per test and a summary "tests N passed N known N failed N";
exits 1 when a mismatch is not one of the KNOWN differences below. Trusts
the suite file.
"""
import concurrent.futures
import gzip
import os
import re
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))

# Mismatches that are not bugs, per suite: (scenario description, test
# name) -> why. Keep this list as short as the truth allows; a bug in
# postern is fixed in mail/spf*.c, not listed here. Both suites agree in
# full today (the RFC 4408 suite of python3-spf accepts the RFC 7208
# results where the RFCs differ); an entry that comes to agree is reported
# stale and fails the run.
KNOWN = {
    "rfc7208": {
    },
    "rfc4408": {
    },
}

RESULTS = ("none", "neutral", "pass", "fail", "softfail", "temperror",
           "permerror")


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def start_dns(suite):
    """The server's process and its ports, one per scenario."""
    proc = subprocess.Popen([sys.executable,
                             os.path.join(HERE, "spf_suite_dns.py"), suite],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()	# ends at the print, or at its exit
    if not line:
        proc.wait(timeout=10)
        raise SystemExit("spf_suite: the DNS server did not start")
    return proc, [int(p) for p in line.split()]


def write_conf(base, tmp, index, port):
    """A config dir for one scenario: base's config, our dns_servers."""
    with open(os.path.join(base, "postern.conf"), encoding="utf-8") as f:
        lines = [ln for ln in f
                 if not re.match(r"\s*dns_servers\s*=", ln)]
    conf = os.path.join(tmp, "conf%d" % index)
    os.mkdir(conf)
    with open(os.path.join(conf, "postern.conf"), "w",
              encoding="utf-8") as f:
        f.writelines(lines)
        f.write("dns_servers = 127.0.0.1:%d\n" % port)
    return conf


def run_one(postern, conf, test):
    """postern's result word for one test, and its whole line."""
    cmd = [postern, "-c", conf, "spf", "check", str(test["host"]),
           str(test.get("mailfrom") or ""), str(test.get("helo") or "")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    # The reason may quote a record's control characters: one line each.
    out = p.stdout.strip().encode("unicode_escape").decode("ascii")
    word = out.split(" ", 1)[0] if out else "(nothing: %s)" % \
        p.stderr.strip()
    return word, out


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    postern, base, suite = sys.argv[1:4]
    name = sys.argv[4] if len(sys.argv) == 5 else "rfc7208"
    known = KNOWN[name]
    scenarios = load(suite)
    proc, ports = start_dns(suite)
    try:
        with tempfile.TemporaryDirectory(prefix="spf_suite.") as tmp:
            jobs = []
            for i, (sc, port) in enumerate(zip(scenarios, ports)):
                conf = write_conf(base, tmp, i, port)
                for tname, test in sc["tests"].items():
                    jobs.append((i, sc["description"], tname, test, conf))
            # Side by side: the TIMEOUT tests wait on the resolver's timers.
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                runs = list(pool.map(lambda j: run_one(postern, j[4], j[3]),
                                     jobs))
    finally:
        proc.kill()
        proc.wait()

    passed = nknown = failed = 0
    unused = set(known)
    for (i, desc, tname, test, _), (got, line) in zip(jobs, runs):
        want = test["result"]
        want = want if isinstance(want, list) else [want]
        if got in want:
            passed += 1
            status = "ok"
            if (desc, tname) in known:
                status = "ok (listed as known, but agrees)"
        elif (desc, tname) in known:
            nknown += 1
            unused.discard((desc, tname))
            status = "known: " + known[(desc, tname)]
        else:
            failed += 1
            status = "FAIL"
        print("%s | %s | %s | want %s | got %s | %s" % (
            status, desc, tname, "/".join(want), line, test.get("spec", "")))
    for k in sorted(unused):
        print("stale known difference (it agrees or is gone): %s | %s" % k)
    print("tests %d passed %d known %d failed %d" % (
        len(jobs), passed, nknown, failed))
    return 1 if failed or unused else 0


if __name__ == "__main__":
    sys.exit(main())
