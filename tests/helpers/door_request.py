"""Ask smtpd's door zygote for a door from outside, as a test's attacker.

door_request.py PID FD AS
  PID, FD: a process holding the door zygote's request socket (the smtpd
  zygote) and its descriptor, taken with pidfd_getfd (root). AS says who
  asks: "root" (this process, with a pair of its own), "uid:N" (a child
  that became uid N first: a worker after its drop), or "foreign" (a
  child that sends a pair its parent made). Prints "ready" when a door
  answered on the pair, "none" when the pair read end of file instead.
"""
import ctypes
import os
import socket
import struct
import sys

SYS_PIDFD_GETFD = 438

pid, fd, who = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(pid)
req = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
if req < 0:
    sys.exit("pidfd_getfd: " + os.strerror(ctypes.get_errno()))
req_sock = socket.socket(fileno=req)


def ask(pair_end):
    req_sock.sendmsg([b"type=door\n\n"],
                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                       struct.pack("i", pair_end.fileno()))])


mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
if who == "root":
    ask(theirs)
else:
    child = os.fork()
    if child == 0:
        if who.startswith("uid:"):
            uid = int(who[4:])
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        ask(theirs)
        os._exit(0)
    os.waitpid(child, 0)
theirs.close()
mine.settimeout(20)
answer = mine.recv(4096)
print("ready" if answer.startswith(b"type=ready\n") else "none")
