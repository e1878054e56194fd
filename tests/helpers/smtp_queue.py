#!/usr/bin/env python3
"""smtp_queue.py - an independent reader of postern queue files, written
from the format in mail/queue.h, for smtpd's tests.

  smtp_queue.py find QUEUEDIR ID      path of the file (any subdirectory)
  smtp_queue.py show QUEUEDIR ID      the envelope as JSON
  smtp_queue.py content QUEUEDIR ID   the content, byte for byte
  smtp_queue.py body QUEUEDIR ID      the content after our Received header
  smtp_queue.py ids QUEUEDIR          every queue ID, one a line
  smtp_queue.py check QUEUEDIR        validate every file; exit 1 if any fails
  smtp_queue.py same-body QUEUEDIR FILE
                                      every message's content after our
                                      Received header equals FILE
  smtp_queue.py acked QUEUEDIR LIST   every "ID N" line of LIST (written by
                                      smtp_send.py load) is a valid file
                                      holding message N

Being a second implementation, it catches a writer and a reader of
mail/queue.c that agree with each other but not with the documented
format. Temporary files (names starting with ".") are not messages.
"""
import json
import os
import re
import sys
import time

ID_RE = re.compile(rb"^[0-9A-Za-z]{14}$")


class Corrupt(Exception):
    pass


def queue_files(qdir):
    for root, dirs, files in os.walk(qdir):
        for name in files:
            if not name.startswith("."):
                yield os.path.join(root, name)


def find(qdir, qid):
    for path in queue_files(qdir):
        if os.path.basename(path) == qid:
            return path
    return None


def parse(path):
    with open(path, "rb") as f:
        data = f.read()
    env = {"path": path, "attrs": {}, "rcpts": [], "smtputf8": False,
           "requiretls": False,
           "envid": None, "ret": None, "kind": "MAIL", "trailer": []}
    pos = 0
    first = True
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise Corrupt("no D record")
        rec = data[pos:nl]
        pos = nl + 1
        if not rec:
            raise Corrupt("empty record")
        letter = rec[:1]
        if rec[1:2] not in (b" ", b""):
            raise Corrupt("bad record %r" % rec[:20])
        value = rec[2:]
        if first:
            if letter != b"V" or value != b"1":
                raise Corrupt("first record is not V 1")
            first = False
            continue
        if letter == b"I":
            if not ID_RE.match(value):
                raise Corrupt("bad queue id")
            env["id"] = value.decode()
        elif letter == b"T":
            if not re.match(rb"^\d+\.\d{6}$", value):
                raise Corrupt("bad arrival time")
            env["arrival"] = value.decode()
        elif letter == b"F":
            env["sender"] = value.decode("utf-8")
        elif letter == b"B":
            if value not in (b"7BIT", b"8BITMIME", b"BINARYMIME"):
                raise Corrupt("bad body type")
            env["body"] = value.decode()
        elif letter == b"U":
            env["smtputf8"] = True
        elif letter == b"Q":
            if value:
                raise Corrupt("Q record has a value")
            env["requiretls"] = True
        elif letter == b"E":
            env["envid"] = value.decode()
        elif letter == b"N":
            if value not in (b"FULL", b"HDRS"):
                raise Corrupt("bad RET")
            env["ret"] = value.decode()
        elif letter == b"K":
            env["kind"] = value.decode()
        elif letter == b"A":
            name, eq, val = value.partition(b"=")
            if not eq or not re.match(rb"^[a-z0-9_]+$", name):
                raise Corrupt("bad attribute")
            env["attrs"][name.decode()] = val.decode("utf-8")
        elif letter == b"W":
            if value not in (b"0", b"1"):
                raise Corrupt("bad W")
        elif letter == b"R":
            m = re.match(rb"^([PSFA]) (\S+) (\S+) (.+)$", value)
            if not m:
                raise Corrupt("bad recipient record")
            env["rcpts"].append({
                "status": m.group(1).decode(),
                "notify": m.group(2).decode(),
                "orcpt": None if m.group(3) == b"-" else
                m.group(3).decode("utf-8"),
                "address": m.group(4).decode("utf-8")})
        elif letter == b"D":
            if not re.match(rb"^\d{20}$", value):
                raise Corrupt("bad D record")
            length = int(value)
            if pos + length > len(data):
                raise Corrupt("content shorter than its length")
            env["content_offset"] = pos
            env["content_length"] = length
            env["_content"] = data[pos:pos + length]
            for n, rec in enumerate(data[pos + length:].split(b"\n")[:-1]):
                # C <length> closes what the writer wrote (queue.h).
                if n == 0 and rec == b"C %d" % length:
                    continue
                if rec[:1] not in (b"X", b"Z"):
                    raise Corrupt("bad trailer record")
                env["trailer"].append(rec.decode("utf-8", "replace"))
            if not data.endswith(b"\n") and pos + length != len(data):
                raise Corrupt("unterminated trailer")
            break
        else:
            raise Corrupt("unknown record %r" % letter)
    for key in ("id", "arrival", "sender", "body"):
        if key not in env:
            raise Corrupt("missing %s record" % key)
    if env["id"] != os.path.basename(path):
        raise Corrupt("queue id differs from the file name")
    if not env["rcpts"]:
        raise Corrupt("no recipients")
    return env


def body_after_received(content):
    """The content minus the first header, which must be our Received."""
    if not content.startswith(b"Received: "):
        raise Corrupt("content does not start with Received:")
    pos = content.find(b"\r\n")
    while pos >= 0 and content[pos + 2:pos + 3] in (b"\t", b" "):
        pos = content.find(b"\r\n", pos + 2)
    if pos < 0:
        raise Corrupt("unterminated Received header")
    return content[pos + 2:]


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, qdir = argv[1], argv[2]
    if cmd == "ids":
        for path in sorted(queue_files(qdir)):
            print(os.path.basename(path))
        return 0
    if cmd == "same-body":
        with open(argv[3], "rb") as f:
            want = f.read()
        n = bad = 0
        for path in queue_files(qdir):
            n += 1
            try:
                if body_after_received(parse(path)["_content"]) != want:
                    print("%s: content differs" % path)
                    bad += 1
            except Corrupt as e:
                print("%s: %s" % (path, e))
                bad += 1
        print("%d files, %d bad" % (n, bad))
        return 1 if bad or n == 0 else 0
    if cmd == "acked":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import smtp_send
        n = bad = 0
        paths = {os.path.basename(p): p for p in queue_files(qdir)}
        with open(argv[3]) as f:
            for line in f:
                qid, num = line.split()
                n += 1
                path = paths.get(qid)
                if path is None:
                    print("%s (message %s): acknowledged but missing" %
                          (qid, num))
                    bad += 1
                    continue
                try:
                    env = parse(path)
                    body = body_after_received(env["_content"])
                    if body != smtp_send.make_message(int(num)):
                        raise Corrupt("content differs")
                except Corrupt as e:
                    print("%s: %s" % (path, e))
                    bad += 1
        print("%d acknowledged, %d bad" % (n, bad))
        return 1 if bad else 0
    if cmd == "check":
        bad = 0
        n = 0
        for path in queue_files(qdir):
            n += 1
            try:
                parse(path)
            except (Corrupt, UnicodeDecodeError) as e:
                print("%s: %s" % (path, e))
                bad += 1
        print("%d files, %d bad" % (n, bad))
        return 1 if bad else 0
    qid = argv[3]
    # qmgr may move the file (incoming, active, deferred) while we look:
    # look again, for a bounded time.
    for attempt in range(50):
        path = find(qdir, qid)
        if path is None:
            time.sleep(0.1)
            continue
        if cmd == "find":
            print(path)
            return 0
        try:
            env = parse(path)
            break
        except FileNotFoundError:
            path = None
            time.sleep(0.1)
        except Corrupt as e:
            print("%s: corrupt: %s" % (path, e), file=sys.stderr)
            return 1
    if path is None:
        print("%s: not in the queue" % qid, file=sys.stderr)
        return 1
    if cmd == "show":
        content = env.pop("_content")
        env["received"] = content[:content.find(b"\r\n\r\n")].decode(
            "utf-8", "replace").split("\r\n")[0:4]
        print(json.dumps(env, indent=1, sort_keys=True))
    elif cmd == "content":
        sys.stdout.buffer.write(env["_content"])
    elif cmd == "body":
        sys.stdout.buffer.write(body_after_received(env["_content"]))
    else:
        print("unknown command %s" % cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
