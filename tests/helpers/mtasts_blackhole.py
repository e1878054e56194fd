#!/usr/bin/python3
"""mtasts_blackhole.py - a policy host that never answers, for
tests/mtasts_negative.bats.

  mtasts_blackhole.py --addr-file FILE

Binds port 443 on the first free loopback address 127.0.1.N (as
mtasts_https.py does), writes that address into FILE, accepts every
connection and says nothing: an HTTPS client waits until its own
timeout. Prints "CONNECT" for each connection accepted, so that a test
counts the fetch attempts from outside the client; a connection is
closed when its client closes it.
"""
import argparse
import os
import random
import selectors
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--addr-file', required=True)
    a = ap.parse_args()
    start = random.randrange(2, 250)
    lsock = None
    for i in range(250):
        addr = '127.0.1.%d' % ((start + i) % 250 + 2)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((addr, 443))
        except OSError:
            s.close()
            continue
        lsock = s
        break
    if lsock is None:
        sys.exit('no free 127.0.1.N:443')
    lsock.listen(64)
    tmp = a.addr_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write(addr + '\n')
    os.rename(tmp, a.addr_file)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in sel.select():
                if key.fileobj is lsock:
                    conn, _ = lsock.accept()
                    print('CONNECT', flush=True)
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b''
                if not data:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
