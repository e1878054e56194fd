#!/usr/bin/env python3
"""tls_relay.py - a relay that wants a password: an SMTP server offering
STARTTLS and AUTH PLAIN LOGIN, taking any credentials, recording every
command it receives. For tests/tls_sasl.bats: what reaches it is what a
man in the middle with that certificate would capture.

  tls_relay.py LOG PORT:CERT:KEY[:implicit]...

Each PORT:CERT:KEY is a listener on 127.0.0.1 with that certificate;
with ":implicit" TLS starts at once (smtps, RFC 8314) and there is no
STARTTLS.
Every line received is appended to LOG as "PORT tls|plain LINE". Prints
"listening" once all listeners are up. Runs until killed.
"""
import socket
import ssl
import sys
import threading

lock = threading.Lock()


def record(log, port, tls, line):
    with lock:
        with open(log, 'a') as f:
            f.write('%d %s %s\n' % (port, 'tls' if tls else 'plain', line))


def session(conn, ctx, log, port, implicit):
    tls = False
    if implicit:
        try:
            conn = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            record(log, port, False, '(handshake failed)')
            return
        tls = True
    f = conn.makefile('rb')

    def say(text):
        conn.sendall(text.encode() + b'\r\n')

    say('220 relay.tls.test ESMTP test relay')
    in_data = False
    while True:
        raw = f.readline()
        if not raw:
            return
        line = raw.decode('latin-1').rstrip('\r\n')
        if in_data:
            if line == '.':
                in_data = False
                say('250 2.0.0 queued')
            continue
        record(log, port, tls, line)
        verb = line.split(' ')[0].upper()
        if verb == 'EHLO':
            say('250-relay.tls.test')
            if not tls:
                say('250-STARTTLS')
            say('250 AUTH PLAIN LOGIN')
        elif verb == 'STARTTLS':
            say('220 2.0.0 go ahead')
            try:
                conn = ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                return
            tls = True
            f = conn.makefile('rb')
        elif verb == 'AUTH':
            if line.upper().startswith('AUTH LOGIN'):
                say('334 VXNlcm5hbWU6')
                record(log, port, tls, f.readline().decode().strip())
                say('334 UGFzc3dvcmQ6')
                record(log, port, tls, f.readline().decode().strip())
            say('235 2.7.0 authenticated')
        elif verb == 'DATA':
            in_data = True
            say('354 go ahead')
        elif verb == 'QUIT':
            say('221 2.0.0 bye')
            return
        else:
            say('250 2.0.0 ok')


def serve(srv, ctx, log, port, implicit):
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=session,
                         args=(conn, ctx, log, port, implicit),
                         daemon=True).start()


def main():
    log = sys.argv[1]
    threads = []
    for spec in sys.argv[2:]:
        port, cert, key = spec.split(':')[:3]
        implicit = spec.endswith(':implicit')
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(('127.0.0.1', int(port)))
        srv.listen(16)
        t = threading.Thread(target=serve,
                             args=(srv, ctx, log, int(port), implicit),
                             daemon=True)
        t.start()
        threads.append(t)
    print('listening', flush=True)
    for t in threads:
        t.join()


if __name__ == '__main__':
    main()
