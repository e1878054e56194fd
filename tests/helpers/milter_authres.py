#!/usr/bin/python3
"""milter_authres.py - a milter on python3-milter (libmilter) for
tests/authres_helo.bats: it logs the Authentication-Results fields it is
shown, then adds one of its own that claims the MX's authserv-id, as
OpenDMARC or rspamd do on purpose.

  milter_authres.py PORT LOGFILE AUTHSERV_ID

One line per message in LOGFILE: "eom ar=VALUE|VALUE...".
"""
import sys

import Milter

LOG = None
AUTHSERV_ID = None


class AuthRes(Milter.Base):
    def __init__(self):
        self.seen = []

    def envfrom(self, sender, *args):
        self.seen = []
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "authentication-results":
            self.seen.append(" ".join(value.split()))
        return Milter.CONTINUE

    def eom(self):
        with open(LOG, "a") as f:
            f.write("eom ar=%s\n" % "|".join(self.seen))
        self.addheader("Authentication-Results",
                       "%s; dmarc=pass (added by the filter) "
                       "header.from=filter.test" % AUTHSERV_ID)
        return Milter.ACCEPT


def main():
    global LOG, AUTHSERV_ID
    port, LOG, AUTHSERV_ID = sys.argv[1], sys.argv[2], sys.argv[3]
    Milter.factory = AuthRes
    Milter.set_flags(Milter.ADDHDRS)
    Milter.runmilter("postern-authres", "inet:%s@127.0.0.1" % port, 60)


if __name__ == "__main__":
    main()
