"""free_port.py PROTO... - print a loopback port that binds now for each
PROTO (tcp, udp) on 127.0.0.1, and on ::1 where the host has it, picked
at random below the kernel's ephemeral range (tests/helpers/suite.bash,
free_port, says why)."""
import random
import socket
import sys

LOW, HIGH = 20000, 32767
KINDS = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}


def binds(port, kind):
    for family, addr in ((socket.AF_INET, "127.0.0.1"),
                         (socket.AF_INET6, "::1")):
        try:
            s = socket.socket(family, kind)
        except OSError:
            continue	# no IPv6 on this host: no conflict there
        try:
            s.bind((addr, port))
        except OSError as e:
            if family == socket.AF_INET6 and e.errno == 99:
                continue	# no ::1 on this host: no conflict there
            return False
        finally:
            s.close()
    return True


def main():
    kinds = [KINDS[a] for a in sys.argv[1:]] or [socket.SOCK_STREAM]
    for _ in range(500):
        port = random.randint(LOW, HIGH)
        if all(binds(port, k) for k in kinds):
            print(port)
            return 0
    print("free_port.py: no free port in %d-%d" % (LOW, HIGH),
          file=sys.stderr)
    return 1


sys.exit(main())
