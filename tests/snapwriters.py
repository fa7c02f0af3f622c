#!/usr/bin/env python3
"""snapwriters.py - writers that a live snapshot must not tear, and their checks.

  snapwriters.py append FILE STOPFILE     appends 512-byte records (a counter
                                          and a checksum) until STOPFILE exists
  snapwriters.py rewrite FILE STOPFILE    rewrites FILE in place, all 'A' then
                                          all 'B' (1 MiB each), until STOPFILE
  snapwriters.py check-append FILE        0 when FILE is whole records 0, 1, 2...
  snapwriters.py check-rewrite FILE       0 when FILE is all 'A' or all 'B', or
                                          empty (as it was made, before its
                                          first write reached cairnfs)
Each writer prints "started" on stdout after its first write.
"""
import hashlib
import os
import sys
import time

REC = 512
SIZE = 1 << 20


def record(n):
    body = b"record %012d " % n
    body += b"." * (REC - 32 - len(body))
    return body + hashlib.sha256(body).hexdigest()[:32].encode()


def append(path, stop):
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    deadline = time.time() + 120
    while not os.path.exists(stop) and time.time() < deadline:
        os.write(fd, record(n))
        n += 1
        if n == 1:
            print("started", flush=True)
        if n % 64 == 0:
            time.sleep(0.001)
    os.close(fd)


def rewrite(path, stop):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    blocks = [b"A" * SIZE, b"B" * SIZE]
    i = 0
    deadline = time.time() + 120
    while not os.path.exists(stop) and time.time() < deadline:
        os.pwrite(fd, blocks[i % 2], 0)
        i += 1
        if i == 1:
            print("started", flush=True)
        time.sleep(0.002)
    os.close(fd)


def check_append(path):
    data = open(path, "rb").read()
    if len(data) % REC:
        print("%s: %d bytes, not whole records" % (path, len(data)))
        return 1
    for n in range(len(data) // REC):
        if data[n * REC:(n + 1) * REC] != record(n):
            print("%s: record %d is torn or out of place" % (path, n))
            return 1
    print("%s: %d whole records" % (path, len(data) // REC))
    return 0


def check_rewrite(path):
    data = open(path, "rb").read()
    if data in (b"", b"A" * SIZE, b"B" * SIZE):
        print("%s: all %s" % (path, chr(data[0]) if data else "empty, as made"))
        return 0
    print("%s: %d bytes, %d A, %d B: a mix" % (path, len(data), data.count(b"A"), data.count(b"B")))
    return 1


def main():
    op = sys.argv[1]
    if op == "append":
        append(sys.argv[2], sys.argv[3])
    elif op == "rewrite":
        rewrite(sys.argv[2], sys.argv[3])
    elif op == "check-append":
        return check_append(sys.argv[2])
    elif op == "check-rewrite":
        return check_rewrite(sys.argv[2])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
