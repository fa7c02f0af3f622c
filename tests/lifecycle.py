#!/usr/bin/env python3
"""lifecycle.py - the agent and the checks of tests/test_lifecycle.sh.

  lifecycle.py agent VM DIR MNT HOME
      The agent cairnd starts on VM number VM.  DIR is the VM's own dir
      (outside the workspace), MNT the workspace, HOME the home whose
      ~/.claude and ~/.claude.json cairnd keeps with the workspace.
      First it copies the agent config as it finds it to DIR/seen and
      writes its own marks into it (~/.claude/settings.json and
      ~/.claude.json name the VM); then says it runs (DIR/started, the
      time); then appends records "VM N" (N = 1, 2, ...) to
      MNT/records.txt, each through its own open, write, fsync and close,
      and after each one acknowledges it outside the workspace: DIR/ack
      holds the last N (renamed into place, so a kill never leaves it
      empty) and DIR/acks gets a line "N TIME".  Before each record its
      line goes into ~/.claude/history, so every acknowledged record's
      config line is older than its ack.  Once the workspace is gone
      (unmounted, or its daemon) it writes nothing more and waits to be
      stopped; started again on the same VM, it writes nothing at all.
  lifecycle.py records FILE VM NEED
      FILE is a whole sequence of records (per VM: 1, 2, ... with no hole,
      the VMs in order) and holds at least records 1..NEED of VM.
  lifecycle.py config SEEN FINAL VM NEED
      SEEN (the agent config a VM's agent found) is the agent config of
      VM as it ended (FINAL) up to at least its record NEED: its marks
      equal, its history a prefix of FINAL's that reaches "VM NEED".
  lifecycle.py need ACKS SNAPSHOT_JSON
      Prints how many records ACKS says were acknowledged before the
      snapshot (`cairn cat snapshot ID --json`) started.
Each check prints one line that says what it found; exit status 0 or 1.
"""
import json
import os
import shutil
import sys
import time


def put(path, text):
    """Replaces path with text atomically (a rename)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def agent(vm, d, mnt, home):
    if os.path.exists(os.path.join(d, "started")):
        while True:		# restarted on the same VM: numbering would repeat
            time.sleep(60)
    seen = os.path.join(d, "seen")
    os.makedirs(seen, exist_ok=True)
    for name in (".claude", ".claude.json"):
        p = os.path.join(home, name)
        if os.path.isdir(p):
            shutil.copytree(p, os.path.join(seen, name), symlinks=True)
        elif os.path.exists(p):
            shutil.copy2(p, os.path.join(seen, name))
    cfg = os.path.join(home, ".claude")
    os.makedirs(cfg, exist_ok=True)
    put(os.path.join(cfg, "settings.json"), json.dumps({"vm": int(vm), "theme": "dark"}) + "\n")
    put(os.path.join(home, ".claude.json"), json.dumps({"vm": int(vm), "onboarded": True}) + "\n")
    hist = os.open(os.path.join(cfg, "history"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    acks = os.open(os.path.join(d, "acks"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    rec = os.path.join(mnt, "records.txt")
    if not os.path.exists(rec):
        os.close(os.open(rec, os.O_WRONLY | os.O_CREAT, 0o644))
    put(os.path.join(d, "started"), "%.6f\n" % time.time())
    n = 0
    while True:
        n += 1
        line = b"%s %d\n" % (vm.encode(), n)
        os.write(hist, line)
        try:
            fd = os.open(rec, os.O_WRONLY | os.O_APPEND)	# no O_CREAT: not beside the mount
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            break		# the workspace is gone: nothing more is acknowledged
        put(os.path.join(d, "ack"), "%d\n" % n)
        os.write(acks, b"%d %.6f\n" % (n, time.time()))
        time.sleep(0.02)
    while True:
        time.sleep(60)


def parse(path):
    """The records of path as (vm, n) pairs; a last line without its
    newline is a write under way and is left out.  None when malformed."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")[:-1]
    out = []
    for line in lines:
        w = line.split(b" ")
        if len(w) != 2 or not w[0].isdigit() or not w[1].isdigit():
            return None, "a torn or foreign line %r" % line[:40]
        out.append((int(w[0]), int(w[1])))
    return out, None


def records(path, vm, need):
    recs, why = parse(path)
    if recs is None:
        print("%s: %s" % (path, why))
        return 1
    last = {}
    prev_vm = 0
    for v, n in recs:
        if v < prev_vm:
            print("%s: records of VM %d after those of VM %d" % (path, v, prev_vm))
            return 1
        if n != last.get(v, 0) + 1:
            print("%s: VM %d's record %d follows its record %d" % (path, v, n, last.get(v, 0)))
            return 1
        prev_vm = v
        last[v] = n
    have = last.get(vm, 0)
    print("VM %d: %d acknowledged records needed, records 1..%d there" % (vm, need, have))
    return 0 if have >= need else 1


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def config(seen, final, vm, need):
    bad = []
    for name in (".claude/settings.json", ".claude.json"):
        a, b = read(os.path.join(seen, name)), read(os.path.join(final, name))
        if a != b:
            bad.append("%s is %r, VM %d left %r" % (name, a, vm, b))
    got = (read(os.path.join(seen, ".claude/history")) or b"").split(b"\n")[:-1]
    want = (read(os.path.join(final, ".claude/history")) or b"").split(b"\n")[:-1]
    mark = b"%d %d" % (vm, need)
    if got != want[:len(got)]:
        bad.append("the history is not what VM %d wrote" % vm)
    elif need > 0 and mark not in got:
        bad.append("the history ends at %r, before %r" % (got[-1] if got else b"", mark))
    if bad:
        print("; ".join(bad))
        return 1
    print("the agent config of VM %d: its marks and %d history lines (up to record %d needed)"
          % (vm, len(got), need))
    return 0


def need(acks, snap):
    s = json.load(open(snap))
    start = (s["time"] - s["stats"]["duration_ns"]) / 1e9 - 0.05	# clock slack
    n = 0
    for line in open(acks):
        w = line.split()
        if len(w) == 2 and float(w[1]) <= start:
            n = max(n, int(w[0]))
    print(n)
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "agent":
        agent(*args)
    elif cmd == "records":
        return records(args[0], int(args[1]), int(args[2]))
    elif cmd == "config":
        return config(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "need":
        return need(args[0], args[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
