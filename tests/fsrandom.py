#!/usr/bin/env python3
"""fsrandom.py - the same random operations on two directories, compared.

    fsrandom.py [--seed N] [--ops N] [--compare-only] DIR_UNDER_TEST DIR_REFERENCE

Runs a deterministic sequence of mixed filesystem operations (creates,
writes at random offsets, truncates, fallocate, renames with flags, links,
symlinks, chmod, utimes, xattrs, unlinks, rmdirs, reads through fds kept
open across renames and unlinks, mmap writes, fsync) in both directories
and compares every result -- return value, errno, bytes read -- and, every
250 operations and at the end, the two whole trees.  Stops at the first
difference and prints the seed, the operation and both results.
--compare-only compares the trees and nothing else (after a remount).
Prints "ok - ..." / "not ok - ..." lines (tests/test_fs_differential.sh numbers
them).
"""
import ctypes
import errno
import mmap
import os
import random
import stat
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
NAMES = ["a", "b", "c", "d", "e", "f", "g", "h", "sub/a", "sub/b", "sub/c", "sub/x/y",
         "sub/x/z", "t/u", "t/v", "t/w", "deep/1/2/3", "deep/1/4", "s", "q"]
DIRS = ["sub", "sub/x", "t", "deep", "deep/1", "deep/1/2"]


class Differ(Exception):
    pass


def outcome(fn):
    try:
        r = fn()
        return ("ok", r)
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


def c_call(r):
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return 0


def tree(root):
    """Everything two local disks must agree on, for every entry."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            e = {"mode": st.st_mode, "nlink": st.st_nlink if not stat.S_ISDIR(st.st_mode) else None}
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                e["size"] = st.st_size
                with open(p, "rb") as f:
                    e["data"] = hash(f.read())
                e["mtime"] = st.st_mtime_ns if st.st_mtime_ns < 10**18 and st.st_mtime_ns % 1000 == 7 else None
                e["xattrs"] = sorted((x, os.getxattr(p, x)) for x in os.listxattr(p) if x.startswith("user."))
            out[rel] = e
    return out


def compare_trees(a, b):
    ta, tb = tree(a), tree(b)
    if ta == tb:
        return None
    for k in sorted(set(ta) | set(tb)):
        if ta.get(k) != tb.get(k):
            return "%s: under test %r, reference %r" % (k, ta.get(k), tb.get(k))
    return "trees differ"


class Side:
    def __init__(self, root):
        self.root = root
        self.fds = {}   # slot -> fd

    def p(self, n):
        return os.path.join(self.root, n)


def run(seed, nops, a, b):
    rnd = random.Random(seed)
    sides = [Side(a), Side(b)]
    counts = {}
    for i in range(nops):
        kind = rnd.choice(["create", "create", "write", "write", "write", "read", "truncate",
                           "fallocate", "unlink", "mkdir", "rmdir", "rename", "rename2", "link",
                           "symlink", "chmod", "utime", "setxattr", "removexattr", "listxattr",
                           "stat", "readdir", "open", "close", "fdwrite", "fdread", "fsync",
                           "mmap", "readlink"])
        n1, n2 = rnd.choice(NAMES), rnd.choice(NAMES)
        d1 = rnd.choice(DIRS)
        slot = rnd.randrange(6)
        off = rnd.choice([0, rnd.randrange(0, 70000), rnd.randrange(0, 3 << 20)])
        ln = rnd.choice([0, 1, rnd.randrange(0, 5000), rnd.randrange(0, 300000)])
        data = rnd.randbytes(min(ln, 300000)) if kind in ("write", "fdwrite", "mmap") else b""
        mode = rnd.choice([0o644, 0o600, 0o755, 0o4755, 0o2711])
        flags = rnd.choice([os.O_CREAT | os.O_WRONLY, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                            os.O_CREAT | os.O_TRUNC | os.O_RDWR, os.O_APPEND | os.O_WRONLY | os.O_CREAT,
                            os.O_RDWR])
        fmode = rnd.choice([0, 1, 3, 0x10])
        rflags = rnd.choice([0, 1, 2])
        tms = (rnd.randrange(10**9, 2 * 10**9) * 1000 + 7, rnd.randrange(10**9, 2 * 10**9) * 1000 + 7)
        xname = "user.%s" % rnd.choice("xyz")
        xflags = rnd.choice([0, os.XATTR_CREATE, os.XATTR_REPLACE])
        target = n2 if rnd.random() < 0.8 else d1    # a rename now and then onto a dir

        def op(s):
            p1, p2 = s.p(n1), s.p(n2)
            if kind == "create":
                fd = os.open(p1, flags, mode & 0o777)
                os.close(fd)
            elif kind == "write":
                fd = os.open(p1, os.O_WRONLY)
                try:
                    return os.pwrite(fd, data, off)
                finally:
                    os.close(fd)
            elif kind == "read":
                with open(p1, "rb") as f:
                    f.seek(off)
                    return hash(f.read(ln))
            elif kind == "truncate":
                # POSIX updates the times only when the size changes: ext4
                # does it always, FUSE's writeback cache not (docs/design.md)
                st = os.stat(p1)
                if stat.S_ISREG(st.st_mode) and st.st_size == off:
                    return "same size"
                os.truncate(p1, off)
            elif kind == "fallocate":
                fd = os.open(p1, os.O_RDWR)
                try:
                    return c_call(libc.fallocate(fd, fmode, off, ln or 1))
                finally:
                    os.close(fd)
            elif kind == "unlink":
                os.unlink(p1)
            elif kind == "mkdir":
                os.mkdir(s.p(d1))
            elif kind == "rmdir":
                os.rmdir(s.p(d1))
            elif kind == "rename":
                os.rename(p1, s.p(target))
            elif kind == "rename2":
                return c_call(libc.renameat2(-100, p1.encode(), -100, s.p(target).encode(), rflags))
            elif kind == "link":
                os.link(p1, p2)
            elif kind == "symlink":
                os.symlink(n2, p1)
            elif kind == "readlink":
                return os.readlink(p1)
            elif kind == "chmod":
                os.chmod(p1, mode)
            elif kind == "utime":
                os.utime(p1, ns=tms, follow_symlinks=False)
            elif kind == "setxattr":
                os.setxattr(p1, xname, data[:100] or b"v", xflags)
            elif kind == "removexattr":
                os.removexattr(p1, xname)
            elif kind == "listxattr":
                return sorted(x for x in os.listxattr(p1) if x.startswith("user."))
            elif kind == "stat":
                st = os.lstat(p1)
                return (st.st_mode, st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                        st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0)
            elif kind == "readdir":
                return sorted(os.listdir(s.p(d1)))
            elif kind == "open":
                if slot in s.fds:
                    os.close(s.fds.pop(slot))
                s.fds[slot] = os.open(p1, os.O_RDWR)
            elif kind == "close":
                if slot in s.fds:
                    os.close(s.fds.pop(slot))
            elif kind == "fdwrite":
                if slot in s.fds:
                    return os.pwrite(s.fds[slot], data, off)
            elif kind == "fdread":
                if slot in s.fds:
                    return hash(os.pread(s.fds[slot], ln, off))
            elif kind == "fsync":
                if slot in s.fds:
                    os.fsync(s.fds[slot])
            elif kind == "mmap":
                fd = os.open(p1, os.O_RDWR)
                try:
                    size = os.fstat(fd).st_size
                    if size == 0:
                        return 0
                    m = mmap.mmap(fd, size)
                    o = off % size
                    chunk = data[: size - o]
                    m[o:o + len(chunk)] = chunk
                    m.flush()
                    m.close()
                    return len(chunk)
                finally:
                    os.close(fd)
            return None

        results = [outcome(lambda s=s: op(s)) for s in sides]
        counts[kind] = counts.get(kind, 0) + 1
        if results[0] != results[1]:
            raise Differ("seed %d op %d: %s %s %s (off %d len %d flags %r): under test %r, reference %r"
                         % (seed, i, kind, n1, n2, off, ln, rflags if kind == "rename2" else flags,
                            results[0], results[1]))
        if i % 250 == 249:
            diff = compare_trees(a, b)
            if diff:
                raise Differ("seed %d after op %d: %s" % (seed, i, diff))
    for s in sides:
        for fd in s.fds.values():
            os.close(fd)
    diff = compare_trees(a, b)
    if diff:
        raise Differ("seed %d at the end: %s" % (seed, diff))
    return counts


def main():
    args = sys.argv[1:]
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 1
    nops = int(args[args.index("--ops") + 1]) if "--ops" in args else 3000
    a, b = args[-2], args[-1]
    if "--compare-only" in args:
        diff = compare_trees(a, b)
        print(("not ok - " if diff else "ok - ") + "the trees agree")
        if diff:
            print("# " + diff)
        sys.exit(1 if diff else 0)
    for d in (a, b):
        os.makedirs(d, exist_ok=True)
        for sub in ("sub", "sub/x", "t", "deep/1/2"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
    try:
        counts = run(seed, nops, a, b)
    except Differ as e:
        print("not ok - seed %d: %d random operations agree with the reference" % (seed, nops))
        print("# " + str(e))
        sys.exit(1)
    print("ok - seed %d: %d random operations agree with the reference (%s)"
          % (seed, nops, ", ".join("%s %d" % kv for kv in sorted(counts.items()))))


main()
