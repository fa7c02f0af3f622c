#!/usr/bin/env python3
# repo_tool.py - the Python side of tests/test_repo.sh: generating the test tree,
# manifests and their comparison, watching which files a snapshot opens,
# flipping bytes of store objects, reading the proxy's fault rules.
# Run as: python3 repo_tool.py COMMAND ARGS... (see main() at the end).
import ctypes, errno, hashlib, json, os, random, select, signal, stat, struct, sys, time

MARK_DATA = b"CAIRN-PRIVACY-DATA-MARKER-5e1f0c77a9"
MARK_NAME = "cairn-privacy-name-marker-b84d2e"	# test_repo.sh greps the store for both
XATTRS = True


def setxattrs(path, d, follow=True):
    for k, v in d.items():
        if XATTRS:
            os.setxattr(path, k, v, follow_symlinks=follow)


def probe_xattrs(root):
    """False (and a note) when the filesystem of root has no user xattrs."""
    p = os.path.join(root, ".xattr-probe")
    open(p, "w").close()
    try:
        os.setxattr(p, "user.probe", b"1")
        return True
    except OSError as e:
        print("# no user xattrs under %s (%s): the tree has none" % (root, e.strerror))
        return False
    finally:
        os.unlink(p)


def gen(root, seed, small_files):
    """A workspace: nested sources, a node_modules-like part full of
    duplicates, a few partly random files of 1-12 MB, hard links, symlinks,
    xattrs, empty files and dirs, odd names, a fifo, odd modes and owners,
    nanosecond mtimes."""
    rnd = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "cairn", "stone", "river", "tree",
             "pack", "blob", "index", "head", "lease", "prune", "const", "return"]
    os.makedirs(root, exist_ok=True)
    global XATTRS
    XATTRS = probe_xattrs(root)

    def text(n):
        return (" ".join(rnd.choice(words) for _ in range(n)) + "\n").encode()

    def write(rel, data, mode=None):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        if mode is not None:
            os.chmod(p, mode)
        return p

    count = 0
    # sources: 3 levels of directories
    ndirs = max(1, small_files // 2 // 20)
    for d in range(ndirs):
        sub = "src/m%02d/d%03d" % (d % 7, d) + ("/deep/er" if d % 5 == 0 else "")
        for f in range(20):
            write("%s/f%02d.txt" % (sub, f), text(rnd.randint(5, 400)))
            count += 1
    # node_modules: packages share a license, and draw their code from small pools
    license = text(300)
    pool_index = [text(rnd.randint(50, 900)) for _ in range(25)]
    pool_util = [text(rnd.randint(20, 200)) for _ in range(10)]
    npkg = max(1, (small_files - count) // 12)
    for p in range(npkg):
        name = ("@scope%d/pkg%03d" % (p % 4, p)) if p % 3 == 0 else "pkg%03d" % p
        base = "node_modules/" + name
        write(base + "/package.json", b'{"name":"%s","version":"1.0.%d"}\n' % (name.encode(), p % 3))
        write(base + "/index.js", pool_index[p % len(pool_index)])
        write(base + "/LICENSE", license)
        write(base + "/README.md", text(30))
        write(base + "/lib/util.js", pool_util[p % len(pool_util)])
        write(base + "/lib/a.js", pool_index[(p * 3) % len(pool_index)])
        write(base + "/lib/b.js", pool_util[(p * 7) % len(pool_util)])
        write(base + "/lib/c.js", text(rnd.randint(10, 100)))
        write(base + "/lib/d.js", license)
        write(base + "/dist/bundle.js", pool_index[p % 5] + pool_index[p % 7])
        write(base + "/dist/bundle.min.js", pool_util[p % 3])
        write(base + "/.npmignore", b"test/\n")
        count += 12
        if p % 5 == 0:
            write(base + "/node_modules/dep/index.js", pool_index[(p * 7) % len(pool_index)])
            write(base + "/node_modules/dep/package.json", b'{"name":"dep"}\n')
            count += 2
    # large files, partly random
    write("data/big1.bin", rnd.randbytes(1 << 20))
    write("data/big5.bin", rnd.randbytes(5 << 19) + text(1) * 1 + bytes(5 << 19))
    write("data/big12.bin", rnd.randbytes(4 << 20) + bytes(4 << 20) + rnd.randbytes(4 << 20))
    # hard links: three names in three dirs, a pair in one dir, a 2 MB random one
    hl = write("misc/links/a/three", text(50))
    os.makedirs(os.path.join(root, "misc/links/b"), exist_ok=True)
    os.link(hl, os.path.join(root, "misc/links/b/three-again"))
    os.link(hl, os.path.join(root, "misc/links/three-thrice"))
    pr = write("misc/links/pair-1", text(20), 0o640)
    os.link(pr, os.path.join(root, "misc/links/pair-2"))
    bg = write("misc/links/big-linked.bin", rnd.randbytes(2 << 20))
    os.link(bg, os.path.join(root, "data/big-linked-too.bin"))
    # symlinks: relative, absolute, dangling, to a directory
    sl = os.path.join(root, "misc/sym")
    os.makedirs(sl)
    os.symlink("../links/pair-1", sl + "/relative")
    os.symlink("/etc/hostname", sl + "/absolute")
    os.symlink("/nonexistent/cairn/target", sl + "/absolute-dangling")
    os.symlink("no-such-file", sl + "/dangling")
    os.symlink("../../src", sl + "/to-dir")
    os.lchown(sl + "/relative", 1234, 4321)
    # empty files and dirs
    for rel in ("misc/empty/file", "misc/empty/.hidden-empty", "misc/zero"):
        write(rel, b"")
    for rel in ("misc/empty/dir", "misc/empty/nested/a/b/c", "emptydir"):
        os.makedirs(os.path.join(root, rel))
    # names
    for rel in ("names/café.txt", "names/日本語/ファイル.txt", "names/emoji-🎉.md",
                "names/Ünïcødé dir/x", "names/name with spaces.txt", "names/new\nline.txt",
                "names/tab\there", "names/-leading-dash", "names/#hash;semi'quote\"dq",
                "names/" + "L" * 200):
        write(rel, text(3))
    # a fifo
    os.mkfifo(os.path.join(root, "misc/fifo"))
    os.chmod(os.path.join(root, "misc/fifo"), 0o620)
    # modes and owners
    write("misc/modes/secret", text(4), 0o600)
    write("misc/modes/script.sh", b"#!/bin/sh\necho hi\n", 0o755)
    write("misc/modes/none", text(4), 0o000)
    sg = os.path.join(root, "misc/modes/setgid-dir")
    os.makedirs(sg)
    os.chown(sg, 0, 2000)
    os.chmod(sg, 0o2775)
    write("misc/modes/setgid-dir/inside", text(4))
    st = os.path.join(root, "misc/modes/sticky")
    os.makedirs(st)
    os.chmod(st, 0o1777)
    su = write("misc/modes/setuid", text(4))
    os.chown(su, 1001, 1002)
    os.chmod(su, 0o4750)
    os.chown(write("misc/owners/nobody", text(4)), 65534, 65534)
    os.chown(os.path.join(root, "misc/owners"), 1500, 1600)
    # xattrs (user.*) on files and directories
    setxattrs(os.path.join(root, "misc/modes/secret"),
              {"user.comment": b"hello", "user.bin": bytes(range(256)), "user.empty": b""})
    setxattrs(os.path.join(root, "misc"), {"user.dir": b"a directory attribute"})
    setxattrs(hl, {"user.linked": b"on a hard link"})
    setxattrs(os.path.join(root, "data/big1.bin"), {"user.big": rnd.randbytes(3000)})
    many = write("misc/many-xattrs", text(2))
    setxattrs(many, {"user.k%03d" % i: b"v%d" % i for i in range(40)})
    # privacy markers: in incompressible data, in a compressible file, in a name
    write("privacy/one.bin", rnd.randbytes(512 << 10) + MARK_DATA + rnd.randbytes(512 << 10))
    write("privacy/two.bin", rnd.randbytes(300 << 10) + MARK_DATA + rnd.randbytes(700 << 10))
    write("privacy/plain.txt", b"marker follows: " + MARK_DATA + b"\n")
    write("privacy/" + MARK_NAME + ".txt", text(5))
    os.makedirs(os.path.join(root, "privacy/dir-" + MARK_NAME))
    # nanosecond mtimes, directories last (deepest first)
    base = 1600000000 * 10**9
    for dp, dns, fns in os.walk(root, topdown=False):
        for n in fns + dns:
            p = os.path.join(dp, n)
            t = base + rnd.randrange(10**17)
            os.utime(p, ns=(t, t), follow_symlinks=False)
    t = base + 123456789
    os.utime(root, ns=(t, t))


def big(root, mib, seed):
    """mib MiB of random data in 8 MiB files."""
    rnd = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    left, i = mib, 0
    while left > 0:
        n = min(8, left)
        with open(os.path.join(root, "part%03d.bin" % i), "wb") as f:
            for _ in range(n):
                f.write(rnd.randbytes(1 << 20))
        left -= n
        i += 1


def rand(path, kib, seed):
    """A file of kib KiB of random bytes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(random.Random(seed).randbytes(kib << 10))


def modify(root):
    """Changes 3 files, adds 1, deletes 1; prints the changed and added paths."""
    changed = ["src/m00/d000/deep/er/f03.txt", "node_modules/pkg001/index.js", "data/big12.bin"]
    with open(os.path.join(root, changed[0]), "wb") as f:
        f.write(b"rewritten\n")
    with open(os.path.join(root, changed[1]), "ab") as f:
        f.write(b"// appended\n")
    with open(os.path.join(root, changed[2]), "r+b") as f:
        f.seek(2 << 20)
        f.write(os.urandom(100))
    with open(os.path.join(root, "src/added.txt"), "wb") as f:
        f.write(b"a new file\n")
    os.unlink(os.path.join(root, "src/m01/d001/f02.txt"))
    for p in changed + ["src/added.txt"]:
        print(p)


def manifest(root, out):
    """Everything restore promises to keep, per path relative to root."""
    m, inodes = {}, {}
    for dp, dns, fns in os.walk(root):
        for n in sorted(dns + fns):
            p = os.path.join(dp, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            e = {"uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
            xs = {}
            for k in os.listxattr(p, follow_symlinks=False):
                if k == "security.selinux":
                    continue	# labels come from the policy of the place
                try:
                    xs[k] = os.getxattr(p, k, follow_symlinks=False).hex()
                except OSError as ex:
                    xs[k] = "error %d" % ex.errno
            e["xattrs"] = xs
            if stat.S_ISLNK(st.st_mode):
                e["type"] = "symlink"
                e["target"] = os.readlink(p)
            else:
                e["mode"] = "%o" % stat.S_IMODE(st.st_mode)
                if stat.S_ISDIR(st.st_mode):
                    e["type"] = "dir"
                elif stat.S_ISREG(st.st_mode):
                    e["type"] = "file"
                    e["size"] = st.st_size
                    h = hashlib.sha256()
                    with open(p, "rb") as f:
                        while True:
                            b = f.read(1 << 20)
                            if not b:
                                break
                            h.update(b)
                    e["sha256"] = h.hexdigest()
                elif stat.S_ISFIFO(st.st_mode):
                    e["type"] = "fifo"
                else:
                    e["type"] = "other %o" % stat.S_IFMT(st.st_mode)
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
                e["nlink"] = st.st_nlink
            m[rel] = e
    for names in inodes.values():
        for n in names:
            m[n]["links"] = sorted(names)
    with open(out, "w") as f:
        json.dump(m, f, sort_keys=True, indent=0)


def compare(a, b):
    """Exit 0 when two manifests are equal; else print the differences."""
    ma, mb = json.load(open(a)), json.load(open(b))
    diffs = []
    for k in sorted(set(ma) | set(mb)):
        if k not in mb:
            diffs.append("missing: %r" % k)
        elif k not in ma:
            diffs.append("extra: %r" % k)
        elif ma[k] != mb[k]:
            fields = [f for f in sorted(set(ma[k]) | set(mb[k])) if ma[k].get(f) != mb[k].get(f)]
            diffs.append("%r: %s" % (k, "; ".join("%s %r != %r" % (f, ma[k].get(f), mb[k].get(f))
                                                  for f in fields)))
    for d in diffs[:15]:
        print("# " + d.replace("\n", "\\n"))
    if len(diffs) > 15:
        print("# ... %d differences in all" % len(diffs))
    if not diffs and len(ma) < 10:
        print("# suspiciously small manifest: %d entries" % len(ma))
        return 1
    return 1 if diffs else 0


def count(path):
    """files, dirs, regular-file bytes of a manifest"""
    m = json.load(open(path))
    print(sum(e["type"] == "file" for e in m.values()), sum(e["type"] == "dir" for e in m.values()),
          sum(e.get("size", 0) for e in m.values()))


IN_OPEN, IN_Q_OVERFLOW, IN_ISDIR = 0x20, 0x4000, 0x40000000


def watch(root, ready, stop, out):
    """Logs every regular file opened under root (inotify IN_OPEN on every
    directory) from when `ready` is written until `stop` appears."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        sys.exit("inotify_init1: %s" % os.strerror(ctypes.get_errno()))
    wds = {}
    for dp, dns, fns in os.walk(root):
        wd = libc.inotify_add_watch(fd, os.fsencode(dp), IN_OPEN)
        if wd < 0:
            sys.exit("inotify_add_watch %s: %s" % (dp, os.strerror(ctypes.get_errno())))
        wds[wd] = dp
    open(ready, "w").write("%d\n" % len(wds))
    opened, overflow, done = [], False, False
    while True:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                buf = os.read(fd, 1 << 16)
            except BlockingIOError:
                buf = b""
            off = 0
            while off < len(buf):
                wd, mask, _, ln = struct.unpack_from("iIII", buf, off)
                name = buf[off + 16:off + 16 + ln].rstrip(b"\0")
                off += 16 + ln
                if mask & IN_Q_OVERFLOW:
                    overflow = True
                elif name and not mask & IN_ISDIR:
                    opened.append(os.path.relpath(os.path.join(wds[wd], os.fsdecode(name)), root))
        elif done:
            break
        if not done and os.path.exists(stop):
            done = True	# drain what is queued, then stop
    with open(out, "w") as f:
        json.dump({"overflow": overflow, "opened": opened}, f)


def check_opened(log, allowed, all_of=False):
    """Exit 0 when only allowed files (one per line in `allowed`) were
    opened; with all_of, when every allowed file was opened."""
    d = json.load(open(log))
    ok = set(open(allowed).read().split("\n")) - {""}
    if all_of:
        missing = sorted(ok - set(d["opened"]))
        for m in missing:
            print("# not seen opened: %r" % m)
        return 1 if missing else 0
    bad = sorted(set(d["opened"]) - ok)
    print("# %d opens logged, %d of files that were allowed" % (len(d["opened"]), len(set(d["opened"]) & ok)))
    for b in bad[:10]:
        print("# opened although unchanged: %r" % b)
    if d["overflow"]:
        print("# the inotify queue overflowed")
    return 1 if bad or d["overflow"] else 0


def flip(path, where):
    """Flips the low bit of one byte: offset `where` (negative: from the end,
    'mid': the middle)."""
    size = os.path.getsize(path)
    off = size // 2 if where == "mid" else int(where) % size
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 1]))


OBJ_KINDS = {"head": 4, "lease": 5, "snapshots": 3, "index": 2, "data": 1, "tree": 1}


def sealed(wsdir, keyfile):
    """Every object of a workspace but `config` is sealed: a wrapped key
    (cairnkey) under the tenant key of keyfile, the key set (cairnset,
    MACed; it lists only wrapped keys), or a sealed object (cairnobj, of
    the kind its name says; a pack's header at its end) under one of those
    wrapped keys.  s3rver's files: only *._S3rver_object."""
    kek_id = open(keyfile).read().strip().split(":")[1]
    suffix = "._S3rver_object"
    files = []
    for dp, dns, fns in os.walk(wsdir):
        files += [os.path.join(dp, f) for f in fns]
    if any(f.endswith(suffix) for f in files):
        files = [f for f in files if f.endswith(suffix)]
    wrapped, used, bad, n = set(), set(), [], 0
    for p in sorted(files):
        rel = os.path.relpath(p, wsdir)
        if rel.endswith(suffix):
            rel = rel[:-len(suffix)]
        if rel == "config":
            continue
        n += 1
        b = open(p, "rb").read()
        top = rel.split("/")[0]
        if top == "keys":
            if b[:9] != b"cairnkey\x01" or b[20:28].hex() != kek_id:
                bad.append(rel)
            wrapped.add(b[12:20].hex())
            continue
        if top == "keyset":
            if b[:9] != b"cairnset\x01":
                bad.append(rel)
            m, ws = struct.unpack("<H", b[44:46])[0], b[10]
            used.update(b[46 + ws + 8 * i:54 + ws + 8 * i].hex() for i in range(m))
            continue
        if top not in OBJ_KINDS:
            bad.append(rel + " (unknown object)")
            continue
        h = b
        if top in ("data", "tree"):
            hlen = struct.unpack("<I", b[-4:])[0] if len(b) >= 4 else 0
            h = b[len(b) - 4 - hlen:] if 65 <= hlen <= len(b) - 4 else b""
        if h[:9] != b"cairnobj\x01" or h[9] != OBJ_KINDS[top]:
            bad.append(rel)
        used.add(h[12:20].hex())
    for x in bad[:10]:
        print("# not sealed as its name says: %s" % x)
    for k in sorted(used - wrapped):
        print("# sealed under key %s, which keys/ does not hold" % k)
    print("# %d objects, sealed under %d keys wrapped by tenant key %s" % (n, len(used), kek_id))
    return 1 if bad or used - wrapped or n < 5 else 0


def jget(field):
    """One field of the last JSON line on stdin (a.b for nesting)."""
    lines = [l for l in sys.stdin.read().splitlines() if l.startswith("{")]
    v = json.loads(lines[-1])
    for k in field.split("."):
        v = v[k]
    print(v)


def proxy_rule(field, key):
    """remaining count of the fault rule whose key is `key` (stdin: /__proxy/faults)"""
    d = json.load(sys.stdin)
    rules = d if isinstance(d, list) else d.get("rules", d.get("faults", []))
    for r in rules:
        if r.get("key") == key:
            print(r.get(field))
            return 0
    print(0)
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0], int(args[1]), int(args[2]))
    elif cmd == "big":
        big(args[0], int(args[1]), int(args[2]))
    elif cmd == "rand":
        rand(args[0], int(args[1]), int(args[2]))
    elif cmd == "modify":
        modify(args[0])
    elif cmd == "manifest":
        manifest(args[0], args[1])
    elif cmd == "compare":
        sys.exit(compare(args[0], args[1]))
    elif cmd == "count":
        count(args[0])
    elif cmd == "watch":
        watch(*args)
    elif cmd == "check-opened":
        sys.exit(check_opened(args[0], args[1], args[2:] == ["--all-of"]))
    elif cmd == "flip":
        flip(args[0], args[1])
    elif cmd == "sealed":
        sys.exit(sealed(args[0], args[1]))
    elif cmd == "jget":
        jget(args[0])
    elif cmd == "proxy-rule":
        sys.exit(proxy_rule(args[0], args[1]))
    else:
        sys.exit("unknown command " + cmd)
