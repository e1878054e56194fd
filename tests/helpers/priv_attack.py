#!/usr/bin/python3
# priv_attack.py - what a compromised daemon (running as the daemon user)
# would try against master's run_directory. Used by tests/priv.bats; run
# it as the daemon user (runuser -u USER).
#
#   priv_attack.py swap-sockets DIR TARGET SECONDS
#       Whenever one of master's sockets appears in DIR, rename a symlink
#       to TARGET over it, hoping that root then chowns or chmods the
#       path. Prints "planted N" (the number of swaps that succeeded).
#   priv_attack.py forge-pid DIR PID SECONDS
#       Replace DIR/master.pid with a file naming PID, and hold a lock on
#       it as a running master does. Prints "forged" or "refused: ERROR",
#       then keeps the lock for SECONDS.
import fcntl
import os
import stat
import sys
import time

SOCKETS = ("lmtp", "deliver", "qmgr")


def swap_sockets(directory, target, seconds):
    deadline = time.monotonic() + seconds
    planted = 0
    while time.monotonic() < deadline:
        for name in SOCKETS:
            path = os.path.join(directory, name)
            try:
                if not stat.S_ISSOCK(os.lstat(path).st_mode):
                    continue
                tmp = os.path.join(directory, ".evil-" + name)
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                os.symlink(target, tmp)
                os.rename(tmp, path)
                planted += 1
            except OSError:
                pass
    print("planted %d" % planted, flush=True)


def forge_pid(directory, pid, seconds):
    tmp = os.path.join(directory, ".forged")
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, ("%s\n" % pid).encode())
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, os.path.join(directory, "master.pid"))
    except OSError as e:
        print("refused: %s" % e, flush=True)
        return
    print("forged", flush=True)
    time.sleep(seconds)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "swap-sockets":
        swap_sockets(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif what == "forge-pid":
        forge_pid(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit("unknown attack " + what)
