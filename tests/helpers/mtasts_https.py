#!/usr/bin/python3
"""mtasts_https.py - an HTTPS server for MTA-STS policies (RFC 8461 3.3),
for tests/mtasts.bats and tests/tlsrpt.bats.

  mtasts_https.py --root DIR --cert PEM --key PEM --addr-file FILE

Binds port 443 (the RFC fixes it) on the first free loopback address
127.0.1.N, writes that address into FILE, and serves
DIR/HOST/mta-sts.txt as text/plain for GET /.well-known/mta-sts.txt
with "Host: HOST". DIR/HOST/redirect makes it answer 301 instead. Each
request is printed on standard output ("GET HOST PATH STATUS").
"""
import argparse
import http.server
import os
import random
import socket
import socketserver
import ssl
import sys


class Server(http.server.HTTPServer):
    # HTTPServer.server_bind asks getfqdn() for the bound address: a
    # reverse look-up of 127.0.1.N that goes to the machine's resolver.
    # Tests ask loopback only, and the server needs no name of its own.
    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class Handler(http.server.BaseHTTPRequestHandler):
    root = '.'

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body=b'', ctype='text/plain', extra=None):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        host = (self.headers.get('Host') or '').split(':')[0]
        print('GET %s %s %d' % (host, self.path, status), flush=True)

    def do_GET(self):
        host = (self.headers.get('Host') or '').split(':')[0].lower()
        d = os.path.join(self.root, os.path.basename(host))
        if self.path != '/.well-known/mta-sts.txt' or not os.path.isdir(d):
            return self.answer(404, b'not found\n')
        if os.path.exists(os.path.join(d, 'redirect')):
            return self.answer(301, b'moved\n', extra={
                'Location': 'https://mta-sts.good.test/.well-known/mta-sts.txt'})
        with open(os.path.join(d, 'mta-sts.txt'), 'rb') as f:
            return self.answer(200, f.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', required=True)
    ap.add_argument('--cert', required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--addr-file', required=True)
    a = ap.parse_args()
    Handler.root = a.root
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    start = random.randrange(2, 250)
    httpd = None
    for i in range(250):
        addr = '127.0.1.%d' % ((start + i) % 250 + 2)
        try:
            httpd = Server((addr, 443), Handler)
            break
        except OSError:
            continue
    if httpd is None:
        sys.exit('no free 127.0.1.N:443')
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    tmp = a.addr_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write(addr + '\n')
    os.rename(tmp, a.addr_file)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
