#!/usr/bin/env python3
"""posix.py - what a local disk gives programs, checked in a directory.

    posix.py [--cairnfs] [--big N] DIR

Runs every check in DIR (made fresh), as root, then again as an
unprivileged user (65534) for ownership and permissions.  Prints one line
per check: "ok - NAME" or "not ok - NAME" with "# ..." lines saying what
was seen; tests/test_fs_ops.sh numbers them as TAP.  Every check passes
on ext4 and tmpfs; --cairnfs adds the answers cairnfs gives where it
differs on purpose (O_TMPFILE, ACLs, whiteout: not supported, and said so).
"""
import ctypes
import errno
import fcntl
import mmap
import os
import stat
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE = 1, 2, 8
FALLOC_FL_ZERO_RANGE = 0x10
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
libc.lgetxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.lgetxattr.restype = ctypes.c_ssize_t

failed = 0


def report(ok, name, why=""):
    global failed
    print(("ok - " if ok else "not ok - ") + name, flush=True)
    if not ok:
        failed += 1
        for line in str(why).splitlines():
            print("# " + line, flush=True)


def check(name, fn):
    """fn returns True, or raises/returns a reason."""
    try:
        r = fn()
    except Exception as e:  # noqa: BLE001 - the reason is the report
        report(False, name, "%s: %s" % (type(e).__name__, e))
        return
    report(r is True or r is None, name, r)


def fails(name, want, fn):
    """fn must fail with errno want."""
    try:
        fn()
    except OSError as e:
        report(e.errno == want, name, "errno %s, wanted %s" % (
            errno.errorcode.get(e.errno, e.errno), errno.errorcode[want]))
        return
    report(False, name, "succeeded, wanted %s" % errno.errorcode[want])


def c_err(r):
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def renameat2(a, b, flags):
    c_err(libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags))


def fallocate(fd, mode, off, length):
    c_err(libc.fallocate(fd, mode, off, length))


def write(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def eq(got, want):
    return True if got == want else "got %r, wanted %r" % (got, want)


def files(d, big, cairnfs):
    p = lambda *n: os.path.join(d, *n)  # noqa: E731

    # open, create, truncate, append
    fd = os.open(p("a"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)
    os.write(fd, b"hello world")
    os.close(fd)
    check("O_CREAT|O_EXCL makes a file with the mode asked (umask 0)",
          lambda: eq(stat.S_IMODE(os.stat(p("a")).st_mode), 0o640))
    fails("O_CREAT|O_EXCL on an existing name: EEXIST", errno.EEXIST,
          lambda: os.open(p("a"), os.O_RDWR | os.O_CREAT | os.O_EXCL))
    fails("open of a missing file: ENOENT", errno.ENOENT, lambda: os.open(p("nope"), os.O_RDONLY))
    fails("open of a file as a directory: ENOTDIR", errno.ENOTDIR, lambda: os.open(p("a", "x"), os.O_RDONLY))
    fails("open of a directory for writing: EISDIR", errno.EISDIR, lambda: os.open(d, os.O_WRONLY))
    os.close(os.open(p("a"), os.O_WRONLY | os.O_TRUNC))
    check("O_TRUNC empties the file", lambda: eq(os.stat(p("a")).st_size, 0))
    write(p("ap"), b"12345")
    fd = os.open(p("ap"), os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"678")
    os.close(fd)
    check("O_APPEND writes at the end whatever the offset", lambda: eq(read(p("ap")), b"12345678"))
    fd = os.open(p("pw"), os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"abcdef", 0)
    os.pwrite(fd, b"XY", 2)
    check("pwrite/pread at offsets", lambda: eq(os.pread(fd, 10, 1), b"bXYef"))
    check("read at EOF returns nothing", lambda: eq(os.pread(fd, 10, 6), b""))
    os.close(fd)

    # sparse files and truncate
    fd = os.open(p("sparse"), os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"end", 64 << 20)
    st = os.fstat(fd)
    check("a write far past EOF sets the size", lambda: eq(st.st_size, (64 << 20) + 3))
    check("the hole reads as zeros", lambda: eq(os.pread(fd, 4096, 1 << 20), bytes(4096)))
    check("a sparse file does not take its size on disk",
          lambda: True if st.st_blocks * 512 < (8 << 20) else "%d blocks" % st.st_blocks)
    # a filesystem may report holes as data, never data as a hole
    check("SEEK_DATA never skips data",
          lambda: (lambda o: True if 0 <= o <= (64 << 20) else "at %d" % o)(os.lseek(fd, 0, os.SEEK_DATA)))
    check("SEEK_HOLE finds no hole inside the data",
          lambda: (lambda o: True if o >= (64 << 20) + 3 else "at %d" % o)(
              os.lseek(fd, 64 << 20, os.SEEK_HOLE)))
    os.close(fd)
    write(p("tr"), b"abcdef")
    os.truncate(p("tr"), 2)
    os.truncate(p("tr"), 5)
    check("truncate down then up: the regrown tail is zeros", lambda: eq(read(p("tr")), b"ab\0\0\0"))
    fd = os.open(p("tr"), os.O_RDWR)
    os.ftruncate(fd, 1)
    os.close(fd)
    check("ftruncate", lambda: eq(read(p("tr")), b"a"))
    fails("truncate of a directory: EISDIR", errno.EISDIR, lambda: os.truncate(d, 0))

    # fallocate
    fd = os.open(p("fa"), os.O_RDWR | os.O_CREAT, 0o644)
    fallocate(fd, 0, 0, 1 << 20)
    check("fallocate extends the size", lambda: eq(os.fstat(fd).st_size, 1 << 20))
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 << 20)
    check("fallocate KEEP_SIZE keeps it", lambda: eq(os.fstat(fd).st_size, 1 << 20))
    os.pwrite(fd, b"\xff" * 65536, 0)
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192)
    check("PUNCH_HOLE zeroes the range, and only it",
          lambda: eq(os.pread(fd, 16384, 0), b"\xff" * 4096 + bytes(8192) + b"\xff" * 4096))
    check("ZERO_RANGE zeroes the range",
          lambda: (fallocate(fd, FALLOC_FL_ZERO_RANGE, 20000, 100),
                   eq(os.pread(fd, 102, 19999), b"\xff" + bytes(100) + b"\xff"))[1])
    if cairnfs:
        fails("fallocate COLLAPSE_RANGE: EOPNOTSUPP", errno.EOPNOTSUPP,
              lambda: fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096))
    os.close(fd)

    # fsync, mmap
    fd = os.open(p("fs"), os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"durable")
    check("fsync", lambda: os.fsync(fd))
    check("fdatasync", lambda: os.fdatasync(fd))
    os.close(fd)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    check("fsync of a directory", lambda: os.fsync(dfd))
    os.close(dfd)
    fd = os.open(p("mm"), os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 3 * 4096)
    m = mmap.mmap(fd, 3 * 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[4096:4101] = b"shard"
    m.flush()
    check("a shared writable mapping is seen by read()", lambda: eq(os.pread(fd, 5, 4096), b"shard"))
    m.close()
    os.close(fd)
    check("and after close and reopen", lambda: eq(read(p("mm"))[4096:4101], b"shard"))

    # unlink, rmdir, mkdir
    fails("unlink of a missing name: ENOENT", errno.ENOENT, lambda: os.unlink(p("nope")))
    os.mkdir(p("dir"))
    fails("unlink of a directory: EISDIR", errno.EISDIR, lambda: os.unlink(p("dir")))
    fails("mkdir of an existing name: EEXIST", errno.EEXIST, lambda: os.mkdir(p("dir")))
    write(p("dir", "f"), b"x")
    fails("rmdir of a non-empty directory: ENOTEMPTY", errno.ENOTEMPTY, lambda: os.rmdir(p("dir")))
    fails("rmdir of a file: ENOTDIR", errno.ENOTDIR, lambda: os.rmdir(p("dir", "f")))
    fd = os.open(p("dir", "f"), os.O_RDWR)
    os.unlink(p("dir", "f"))
    os.pwrite(fd, b"still", 1)
    check("an unlinked open file still reads and writes", lambda: eq(os.pread(fd, 6, 0), b"xstill"))
    os.close(fd)
    check("rmdir of the emptied directory", lambda: os.rmdir(p("dir")))
    check("and it is gone", lambda: eq(os.path.exists(p("dir")), False))
    os.mkdir(p("d2"))
    st0 = os.stat(p("d2"))
    time.sleep(0.01)
    write(p("d2", "n"), b"")
    check("a create changes the directory's mtime",
          lambda: True if os.stat(p("d2")).st_mtime_ns > st0.st_mtime_ns else "unchanged")
    check("a subdirectory counts in the parent's link count",
          lambda: (os.mkdir(p("d2", "sub")), eq(os.stat(p("d2")).st_nlink, 3))[1])

    # rename
    write(p("r1"), b"one")
    write(p("r2"), b"two")
    os.rename(p("r1"), p("r2"))
    check("rename over a file replaces it", lambda: eq((read(p("r2")), os.path.exists(p("r1"))), (b"one", False)))
    os.mkdir(p("ra"))
    os.mkdir(p("rb"))
    os.rename(p("ra"), p("rb"))
    check("rename of a directory over an empty one", lambda: eq(os.path.isdir(p("rb")) and not os.path.exists(p("ra")), True))
    os.mkdir(p("rc"))
    write(p("rb", "x"), b"")
    fails("rename over a non-empty directory: ENOTEMPTY", errno.ENOTEMPTY, lambda: os.rename(p("rc"), p("rb")))
    fails("rename of a directory over a file: ENOTDIR", errno.ENOTDIR, lambda: os.rename(p("rc"), p("r2")))
    fails("rename of a file over a directory: EISDIR", errno.EISDIR, lambda: os.rename(p("r2"), p("rc")))
    fails("rename of a directory into itself: EINVAL", errno.EINVAL, lambda: os.rename(p("rb"), p("rb", "in")))
    os.link(p("r2"), p("r2l"))
    os.rename(p("r2"), p("r2l"))
    check("rename between two links of one file does nothing",
          lambda: eq((os.path.exists(p("r2")), os.stat(p("r2l")).st_nlink), (True, 2)))
    os.makedirs(p("m1", "deep"))
    os.rename(p("m1", "deep"), p("rc", "deep"))
    check("a directory moved to another parent moves the link counts",
          lambda: eq((os.stat(p("m1")).st_nlink, os.stat(p("rc")).st_nlink), (2, 3)))
    write(p("n1"), b"1")
    write(p("n2"), b"2")
    fails("RENAME_NOREPLACE onto an existing name: EEXIST", errno.EEXIST,
          lambda: renameat2(p("n1"), p("n2"), RENAME_NOREPLACE))
    check("RENAME_NOREPLACE onto a free name",
          lambda: (renameat2(p("n1"), p("n3"), RENAME_NOREPLACE), eq(read(p("n3")), b"1"))[1])
    renameat2(p("n3"), p("rc"), RENAME_EXCHANGE)
    check("RENAME_EXCHANGE swaps a file and a directory",
          lambda: eq((read(p("rc")), os.path.isdir(p("n3"))), (b"1", True)))
    fails("RENAME_EXCHANGE with a missing target: ENOENT", errno.ENOENT,
          lambda: renameat2(p("n2"), p("nope"), RENAME_EXCHANGE))
    if cairnfs:
        fails("RENAME_WHITEOUT: EINVAL (not supported)", errno.EINVAL,
              lambda: renameat2(p("n2"), p("n4"), RENAME_WHITEOUT))

    # links
    write(p("h1"), b"linked")
    os.link(p("h1"), p("h2"))
    check("a hard link: one inode, two links",
          lambda: eq((os.stat(p("h1")).st_ino == os.stat(p("h2")).st_ino, os.stat(p("h1")).st_nlink), (True, 2)))
    ct = os.stat(p("h1")).st_ctime_ns
    os.unlink(p("h1"))
    check("unlinking one name keeps the data under the other",
          lambda: eq((read(p("h2")), os.stat(p("h2")).st_nlink), (b"linked", 1)))
    check("and changes its ctime", lambda: True if os.stat(p("h2")).st_ctime_ns >= ct else "went back")
    fails("a hard link to a directory: EPERM", errno.EPERM, lambda: os.link(p("rb"), p("rbl")))
    fails("a hard link onto an existing name: EEXIST", errno.EEXIST, lambda: os.link(p("h2"), p("ap")))
    os.symlink("h2", p("s1"))
    check("a symlink: readlink, lstat and stat",
          lambda: eq((os.readlink(p("s1")), stat.S_ISLNK(os.lstat(p("s1")).st_mode), read(p("s1"))),
                     ("h2", True, b"linked")))
    os.symlink("nowhere", p("dangling"))
    fails("a dangling symlink: ENOENT through it", errno.ENOENT, lambda: os.stat(p("dangling")))
    os.symlink("loop2", p("loop1"))
    os.symlink("loop1", p("loop2"))
    fails("a symlink loop: ELOOP", errno.ELOOP, lambda: os.stat(p("loop1")))
    long_target = "t" * 4095
    os.symlink(long_target, p("longlink"))
    check("a symlink target of 4095 bytes", lambda: eq(os.readlink(p("longlink")), long_target))
    fails("a symlink target of 4096 bytes: ENAMETOOLONG", errno.ENAMETOOLONG,
          lambda: os.symlink("t" * 4096, p("toolong")))
    fails("a symlink onto an existing name: EEXIST", errno.EEXIST, lambda: os.symlink("x", p("h2")))

    # attributes
    os.chmod(p("h2"), 0o4751)
    check("chmod, setuid bit included", lambda: eq(stat.S_IMODE(os.stat(p("h2")).st_mode), 0o4751))
    os.chown(p("h2"), 1234, 5678)
    check("chown by root", lambda: eq((os.stat(p("h2")).st_uid, os.stat(p("h2")).st_gid), (1234, 5678)))
    os.lchown(p("s1"), 4321, 8765)
    check("lchown changes the link, not the target",
          lambda: eq((os.lstat(p("s1")).st_uid, os.stat(p("h2")).st_uid), (4321, 1234)))
    os.utime(p("h2"), ns=(1000000001, 2000000002))
    check("utimensat keeps nanoseconds",
          lambda: eq((os.stat(p("h2")).st_atime_ns, os.stat(p("h2")).st_mtime_ns), (1000000001, 2000000002)))
    c_err(libc.utimensat(AT_FDCWD, p("h2").encode(),
                         (ctypes.c_long * 4)(0, (1 << 30) - 2, 5, 0), 0))  # UTIME_OMIT atime, mtime 5
    check("UTIME_OMIT leaves atime", lambda: eq((os.stat(p("h2")).st_atime_ns, os.stat(p("h2")).st_mtime_ns),
                                                 (1000000001, 5000000000)))
    before = time.time_ns()
    os.utime(p("h2"))
    check("UTIME_NOW", lambda: True if os.stat(p("h2")).st_mtime_ns >= before - 10**9 else "old mtime")
    ct = os.stat(p("ap")).st_ctime_ns
    time.sleep(0.01)
    os.chmod(p("ap"), 0o600)
    check("chmod changes ctime", lambda: True if os.stat(p("ap")).st_ctime_ns > ct else "unchanged")

    # xattrs
    os.setxattr(p("ap"), "user.a", b"1")
    os.setxattr(p("ap"), "user.b", b"")
    check("setxattr/getxattr", lambda: eq((os.getxattr(p("ap"), "user.a"), os.getxattr(p("ap"), "user.b")), (b"1", b"")))
    check("listxattr", lambda: eq(sorted(x for x in os.listxattr(p("ap")) if x.startswith("user.")), ["user.a", "user.b"]))
    fails("XATTR_CREATE on an existing name: EEXIST", errno.EEXIST,
          lambda: os.setxattr(p("ap"), "user.a", b"2", os.XATTR_CREATE))
    fails("XATTR_REPLACE of a missing name: ENODATA", errno.ENODATA,
          lambda: os.setxattr(p("ap"), "user.zz", b"2", os.XATTR_REPLACE))
    fails("getxattr of a missing name: ENODATA", errno.ENODATA, lambda: os.getxattr(p("ap"), "user.zz"))
    # ext4 keeps a value in one block; cairnfs takes Linux's whole 64 KiB
    vlen = 65536 if cairnfs else 4000
    xval = os.urandom(vlen)
    check("a %d-byte xattr value" % vlen,
          lambda: (os.setxattr(p("ap"), "user.big", xval), eq(os.getxattr(p("ap"), "user.big"), xval))[1])
    check("getxattr with size 0 says the size",
          lambda: eq(libc.lgetxattr(p("ap").encode(), b"user.big", None, 0), vlen))
    buf = ctypes.create_string_buffer(10)
    r = libc.lgetxattr(p("ap").encode(), b"user.big", buf, 10)
    report(r == -1 and ctypes.get_errno() == errno.ERANGE, "getxattr into a small buffer: ERANGE",
           "returned %d errno %d" % (r, ctypes.get_errno()))
    os.removexattr(p("ap"), "user.a")
    fails("removexattr, then getxattr: ENODATA", errno.ENODATA, lambda: os.getxattr(p("ap"), "user.a"))
    fails("removexattr of a missing name: ENODATA", errno.ENODATA, lambda: os.removexattr(p("ap"), "user.a"))
    os.setxattr(p("ap"), "trusted.t", b"root only")
    check("trusted.* xattrs as root", lambda: eq(os.getxattr(p("ap"), "trusted.t"), b"root only"))
    os.setxattr(p("s1"), "trusted.onlink", b"l", follow_symlinks=False)
    check("xattrs on a symlink itself",
          lambda: eq(os.getxattr(p("s1"), "trusted.onlink", follow_symlinks=False), b"l"))
    if cairnfs:
        fails("a POSIX ACL: EOPNOTSUPP (not enforced, so not stored)", errno.EOPNOTSUPP,
              lambda: os.setxattr(p("ap"), "system.posix_acl_access", b"\x02\0\0\0"))

    # names
    check("a name of 255 bytes", lambda: (write(p("n" * 255), b"x"), eq(os.path.exists(p("n" * 255)), True))[1])
    fails("a name of 256 bytes: ENAMETOOLONG", errno.ENAMETOOLONG, lambda: write(p("n" * 256), b"x"))
    uni = ["caf\u00e9", "cafe\u0301", "\U0001F600 smile", "\u65e5\u672c\u8a9e", "tab\tand\nnewline"]
    os.mkdir(p("uni"))
    for n in uni:
        write(p("uni", n), n.encode())
    check("unicode and odd names come back byte for byte",
          lambda: eq(sorted(os.listdir(p("uni"))), sorted(uni)))
    check("and each opens under its name",
          lambda: eq([read(p("uni", n)) for n in uni], [n.encode() for n in uni]))

    # readdir
    os.mkdir(p("types"))
    write(p("types", "f"), b"")
    os.mkdir(p("types", "d"))
    os.symlink("f", p("types", "l"))
    os.mkfifo(p("types", "p"))
    os.mknod(p("types", "c"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    kinds = {e.name: (e.is_file(follow_symlinks=False), e.is_dir(follow_symlinks=False),
                      e.is_symlink()) for e in os.scandir(p("types"))}
    check("readdir gives each entry its type",
          lambda: eq(kinds, {"f": (True, False, False), "d": (False, True, False),
                             "l": (False, False, True), "p": (False, False, False),
                             "c": (False, False, False)}))
    check("a fifo is a fifo", lambda: eq(stat.S_ISFIFO(os.stat(p("types", "p")).st_mode), True))
    check("a device node keeps its numbers",
          lambda: eq((stat.S_ISCHR(os.stat(p("types", "c")).st_mode), os.stat(p("types", "c")).st_rdev),
                     (True, os.makedev(1, 3))))
    os.mkdir(p("bigdir"))
    for i in range(big):
        os.close(os.open(p("bigdir", "entry-%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
    names = os.listdir(p("bigdir"))
    check("a directory of %d entries lists each exactly once" % big,
          lambda: eq((len(names), len(set(names))), (big, big)))
    check("and stats", lambda: eq(os.stat(p("bigdir", "entry-%06d" % (big // 2))).st_size, 0))
    for n in names:
        os.unlink(p("bigdir", n))
    check("and empties", lambda: eq(os.listdir(p("bigdir")), []))

    # locks
    write(p("lk"), b"lock")
    a = os.open(p("lk"), os.O_RDWR)
    b = os.open(p("lk"), os.O_RDWR)
    fcntl.flock(a, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fails("flock: a second open file description is refused (EWOULDBLOCK)", errno.EWOULDBLOCK,
          lambda: fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB))
    fcntl.flock(a, fcntl.LOCK_UN)
    check("flock after unlock", lambda: fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB))
    fcntl.flock(b, fcntl.LOCK_UN)
    fcntl.lockf(a, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(p("lk"), os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
            os._exit(1)
        except OSError as e:
            os._exit(0 if e.errno in (errno.EAGAIN, errno.EACCES) else 2)
    _, st = os.waitpid(pid, 0)
    check("a POSIX lock conflicts with another process's", lambda: eq(os.waitstatus_to_exitcode(st), 0))
    os.close(a)
    os.close(b)
    if hasattr(fcntl, "F_OFD_SETLK"):
        import struct
        a = os.open(p("lk"), os.O_RDWR)
        b = os.open(p("lk"), os.O_RDWR)
        lk = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
        fcntl.fcntl(a, fcntl.F_OFD_SETLK, lk)
        fails("an OFD lock conflicts with another open file description", errno.EAGAIN,
              lambda: fcntl.fcntl(b, fcntl.F_OFD_SETLK, lk))
        os.close(a)
        os.close(b)

    # statfs, tmpfile, copy_file_range
    sv = os.statvfs(d)
    check("statfs reports a disk", lambda: eq((sv.f_bsize > 0, sv.f_blocks > 0, sv.f_namemax), (True, True, 255)))
    if cairnfs:
        fails("O_TMPFILE: EOPNOTSUPP (libfuse 3.14 has no tmpfile operation)", errno.EOPNOTSUPP,
              lambda: os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600))
    else:
        check("O_TMPFILE", lambda: os.close(os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600)))
    write(p("cf1"), b"copy me " * 1000)
    fi, fo = os.open(p("cf1"), os.O_RDONLY), os.open(p("cf2"), os.O_WRONLY | os.O_CREAT, 0o644)
    n = os.copy_file_range(fi, fo, 8000)
    os.close(fi)
    os.close(fo)
    check("copy_file_range", lambda: eq((n, read(p("cf2"))), (8000, b"copy me " * 1000)))


def as_user(d, uid, gid):
    """Ownership and permissions, seen by an unprivileged process."""
    p = lambda *n: os.path.join(d, *n)  # noqa: E731
    os.mkdir(p("pub"), 0o1777)
    os.chmod(p("pub"), 0o1777)
    write(p("pub", "roots"), b"root's", 0o644)
    write(p("secret"), b"no", 0o600)
    os.mkdir(p("closed"), 0o755)
    os.mkdir(p("sg"), 0o2777)
    os.chown(p("sg"), 0, 4242)
    os.chmod(p("sg"), 0o2777)
    os.mkdir(p("mine"), 0o755)
    os.chown(p("mine"), uid, gid)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = os.fdopen(w, "w")
        sys.stdout = out
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
        q = lambda *n: os.path.join(d, *n)  # noqa: E731
        write(q("pub", "f"), b"x")
        os.mkdir(q("pub", "dd"))
        os.symlink("f", q("pub", "sl"))
        os.mkfifo(q("pub", "ff"))
        own = [(os.lstat(q("pub", n)).st_uid, os.lstat(q("pub", n)).st_gid) for n in ("f", "dd", "sl", "ff")]
        check("a new file, dir, symlink and fifo belong to the caller", lambda: eq(own, [(uid, gid)] * 4))
        fails("chmod of root's file: EPERM", errno.EPERM, lambda: os.chmod(q("pub", "roots"), 0o666))
        fails("chown of one's own file to root: EPERM", errno.EPERM, lambda: os.chown(q("pub", "f"), 0, 0))
        fails("open of root's 0600 file: EACCES", errno.EACCES, lambda: os.open(q("secret"), os.O_RDONLY))
        fails("a create in root's 0755 dir: EACCES", errno.EACCES, lambda: write(q("closed", "x"), b""))
        fails("unlink of root's file in a sticky dir: EPERM", errno.EPERM, lambda: os.unlink(q("pub", "roots")))
        fails("utime with explicit times on root's file: EPERM", errno.EPERM,
              lambda: os.utime(q("pub", "roots"), (1, 1)))
        fails("write to root's 0644 file: EACCES", errno.EACCES, lambda: os.open(q("pub", "roots"), os.O_WRONLY))
        fails("setxattr user.* on root's file: EACCES", errno.EACCES,
              lambda: os.setxattr(q("pub", "roots"), "user.x", b"1"))
        fails("trusted.* xattrs need root: EPERM", errno.EPERM,
              lambda: os.setxattr(q("pub", "f"), "trusted.x", b"1"))
        write(q("sg", "f"), b"")
        os.mkdir(q("sg", "sub"))
        check("in a setgid dir a new file takes the dir's group",
              lambda: eq(os.stat(q("sg", "f")).st_gid, 4242))
        check("and a new subdir its group and the setgid bit",
              lambda: eq((os.stat(q("sg", "sub")).st_gid, bool(os.stat(q("sg", "sub")).st_mode & stat.S_ISGID)),
                         (4242, True)))
        write(q("mine", "own"), b"mine")
        os.chmod(q("mine", "own"), 0o600)
        os.utime(q("mine", "own"), (7, 7))
        check("the owner may chmod and utime its own file",
              lambda: eq((stat.S_IMODE(os.stat(q("mine", "own")).st_mode), os.stat(q("mine", "own")).st_mtime),
                         (0o600, 7)))
        os.rename(q("mine", "own"), q("pub", "moved"))
        check("and rename it into a sticky dir", lambda: eq(read(q("pub", "moved")), b"mine"))
        out.flush()
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        for line in f:
            sys.stdout.write(line)
            if line.startswith("not ok"):
                global failed
                failed += 1
    _, st = os.waitpid(pid, 0)
    report(os.waitstatus_to_exitcode(st) == 0, "the unprivileged checks ran to the end",
           "exit status %d" % os.waitstatus_to_exitcode(st))


def main():
    args = sys.argv[1:]
    cairnfs = "--cairnfs" in args
    big = 20000
    if "--big" in args:
        big = int(args[args.index("--big") + 1])
    d = args[-1]
    os.umask(0)
    os.makedirs(os.path.join(d, "root"))
    os.makedirs(os.path.join(d, "user"))
    os.chmod(d, 0o755)
    files(os.path.join(d, "root"), big, cairnfs)
    as_user(os.path.join(d, "user"), 65534, 65534)
    sys.exit(1 if failed else 0)


main()
