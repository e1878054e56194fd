#!/usr/bin/python3
"""dkim_sign_peer.py - messages signed by dkimpy (python3-dkim), an
implementation independent of postern, for postern's verifier.

    dkim_sign_peer.py DIR

Writes into DIR an RSA key (rsa.pem, PKCS#1, for OpenDKIM too) and an
Ed25519 one, "records" (lines "NAME TXT" of their key records under
peer.test, plus a 512-bit RSA key that verifiers must refuse), and
signed messages NAME.eml (CRLF line ends):
  rsa-relaxed, rsa-simple, ed-relaxed     good signatures
  rsa-length                              l= set, then text appended
  rsa-tampered                            body changed after signing
  rsa-weak                                signed with the 512-bit key
  rsa-headers                             Subject changed after signing
"""
import base64
import os
import subprocess
import sys

import dkim
import nacl.signing

out = sys.argv[1]


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, check=True,
                          capture_output=True).stdout


def rsa_key(bits, name):
    pem = openssl("genrsa", "-traditional", str(bits))
    open(os.path.join(out, name), "wb").write(pem)
    der = openssl("rsa", "-pubout", "-outform", "DER", data=pem)
    return pem, base64.b64encode(der).decode()


rsa_pem, rsa_pub = rsa_key(2048, "rsa.pem")
weak_pem, weak_pub = rsa_key(512, "weak.pem")
sk = nacl.signing.SigningKey.generate()
ed_priv = base64.b64encode(bytes(sk))
ed_pub = base64.b64encode(bytes(sk.verify_key)).decode()

with open(os.path.join(out, "records"), "w") as f:
    f.write("rsa._domainkey.peer.test v=DKIM1; k=rsa; p=%s\n" % rsa_pub)
    f.write("weak._domainkey.peer.test v=DKIM1; k=rsa; p=%s\n" % weak_pub)
    f.write("ed._domainkey.peer.test v=DKIM1; k=ed25519; p=%s\n" % ed_pub)

msg = (b"From: Peter <peter@peer.test>\r\nTo: bob@postern.test\r\n"
       b"Subject: from the peer\r\nDate: Sun, 06 Dec 2026 16:00:00 +0000\r\n"
       b"Message-ID: <1@peer.test>\r\n\r\n"
       b"Hello  there,\r\n\r\n  with   spaces \r\n\r\n\r\n")
hdrs = [b"from", b"to", b"subject", b"date", b"message-id"]


def sign(key, sel, canon=(b"relaxed", b"relaxed"), alg=b"rsa-sha256",
         **kw):
    sig = dkim.sign(msg, sel, b"peer.test", key, canonicalize=canon,
                    signature_algorithm=alg, include_headers=hdrs, **kw)
    return sig + msg


def write(name, data):
    open(os.path.join(out, name + ".eml"), "wb").write(data)


write("rsa-relaxed", sign(rsa_pem, b"rsa"))
write("rsa-simple", sign(rsa_pem, b"rsa", canon=(b"simple", b"simple")))
write("ed-relaxed", sign(ed_priv, b"ed", alg=b"ed25519-sha256"))
write("rsa-length", sign(rsa_pem, b"rsa", length=True) +
      b"appended by a list\r\n")
write("rsa-tampered", sign(rsa_pem, b"rsa").replace(b"Hello", b"Jello"))
write("rsa-weak", sign(weak_pem, b"weak"))
write("rsa-headers", sign(rsa_pem, b"rsa").replace(b"from the peer",
                                                   b"from a forger"))
