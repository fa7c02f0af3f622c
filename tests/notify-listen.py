#!/usr/bin/env python3
"""notify-listen.py SOCKET LOG - a NOTIFY_SOCKET of the test's own.

Binds a unix datagram socket at SOCKET and appends every sd_notify message
it receives to LOG, one line per assignment (READY=1, STATUS=..., ...).
Exits when its stdin closes or after 600 s, whichever comes first.
"""
import os
import select
import socket
import sys
import time

path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("READY", flush=True)
deadline = time.time() + 600
while time.time() < deadline:
    r, _, _ = select.select([s, sys.stdin], [], [], 1.0)
    if sys.stdin in r and not os.read(sys.stdin.fileno(), 4096):
        break
    if s in r:
        data = s.recv(65536).decode("utf-8", "replace")
        with open(log, "a") as f:
            for line in data.split("\n"):
                if line:
                    f.write(line + "\n")
