#!/bin/sh
# test_repo.sh - the repository engine end to end, as a user runs it: a
# generated workspace (thousands of small files, a node_modules full of
# duplicates, large partly random files, hard links, symlinks, xattrs, odd
# names, modes and owners, a fifo) snapshotted and restored byte for byte on
# a file:// store and on S3 through the verifying proxy; incremental
# snapshots that upload and open only what changed; dedup; no name or
# content in the store's bytes; wrong keys, flipped bytes, a rolled-back
# store, a held lease, kill -9 during snapshot and prune, a store that is
# down.  Prints TAP.  Runs as root (owners are restored) or not (skipped).
set -u

. "${CAIRN_SRCDIR:-.}/tests/lib.sh"
cairn=$CAIRN

# Nothing from the caller's environment or /etc/cairn may steer cairn here.
unset CAIRN_WORKSPACE CAIRN_TENANT CAIRN_WORKSPACE_NAME CAIRN_HOST_ID \
	CAIRN_LEASE_TTL CAIRN_S3_RETRY_SECONDS CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR
CAIRN_CONFIG=$TMP/no-cairn.conf
export CAIRN_CONFIG

if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root: the tree has files of other owners, and restore keeps owners only as root"
	exit 0
fi
if ! command -v python3 >/dev/null; then
	echo "1..0 # SKIP needs python3"
	exit 0
fi

start=$(date +%s)
section() {	# section NAME: a diagnostic with the time so far
	diag "--- $1 ($(($(date +%s) - start)) s)"
}

# run CMD...: cairn with its output kept; sets and returns $rc
run() {
	"$cairn" "$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	return $rc
}
show() { cat "$TMP/out" "$TMP/err" | head -n 20 | sed 's/^/# /'; }
rc_is() { [ "$rc" -eq "$1" ] || { diag "exit status $rc, expected $1"; show; false; }; }
err_has() { grep -q -- "$1" "$TMP/err" || { diag "stderr lacks '$1':"; show; false; }; }
py() { python3 "$TMP/tool.py" "$@"; }
jget() { py jget "$1" <"$TMP/out"; }

# restored SNAPSHOT DIR MANIFEST [FLAGS]: restores into a new DIR and
# compares it with MANIFEST (type, mode, owner, size, content, mtime,
# xattrs, symlink target, hard-link group of every path); --privileged,
# since the tree has a setuid file (test_privileges.sh has the default)
restored() {
	rm -rf "$2"
	if ! run restore --privileged ${4:-} "$1" "$2"; then
		show
		return 1
	fi
	py manifest "$2" "$2.json" && py compare "$3" "$2.json"
}

# nothing_restored DIR: no regular file (nor temp file) in DIR
nothing_restored() {
	[ -z "$(find "$1" -type f 2>/dev/null | head -n 3)" ] ||
		{ diag "files in $1:"; find "$1" -type f | head -n 5 | sed 's/^/# /'; false; }
}

snapshots() { run ls --json && grep -c '^{' "$TMP/out"; }
lt() { [ "$1" -lt "$2" ] || { diag "$1 is not below $2"; false; }; }
eq() { [ "$1" = "$2" ] || { diag "'$1' != '$2'"; false; }; }

# a file:// store's packs (NAME: data or tree), one relative name per line
packs() { (cd "$WSDIR" && find "$1" -type f 2>/dev/null | sort); }
dir_bytes() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
has_check() { "$cairn" help 2>/dev/null | grep -q '^  check '; }

# S3: counting PUTs of packs by kind with two no-op fault rules (delay:0)
s3_count_start() {
	s3_ctl POST /__proxy/reset >/dev/null &&
	s3_ctl POST "/__proxy/fault?kind=delay:0&count=1000000&method=PUT&key=/data/" >/dev/null &&
	s3_ctl POST "/__proxy/fault?kind=delay:0&count=1000000&method=PUT&key=/tree/" >/dev/null
}
s3_puts() {	# s3_puts data|tree: PUTs under data/ (tree/) since s3_count_start
	_left=$(s3_ctl GET /__proxy/faults | py proxy-rule remaining "/$1/")
	echo $((1000000 - _left))
}

# ---- the python side: generating, comparing, watching, flipping -----------
cat >"$TMP/tool.py" <<'PYTHON'
import ctypes, errno, hashlib, json, os, random, select, signal, stat, struct, sys, time

MARK_DATA = b"CAIRN-PRIVACY-DATA-MARKER-5e1f0c77a9"
MARK_NAME = "cairn-privacy-name-marker-b84d2e"	# both also in the grep below
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
    (cairnkey) under the tenant key of keyfile, or a sealed object
    (cairnobj, of the kind its name says; a pack's header at its end) under
    one of those wrapped keys.  s3rver's files: only *._S3rver_object."""
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
PYTHON

# ---- the scenario both stores run ------------------------------------------
# scenario KIND STORE_URL: KIND is file or s3.  Leaves D, WS, WSID, WSDIR,
# LATEST (the manifest of the latest snapshot) and friends for the
# store-specific parts that follow.
scenario() {
	KIND=$1
	D=$TMP/$KIND-run
	WS=$D/ws
	mkdir -p "$D"
	CAIRN_STORE=$2
	CAIRN_KEY=file:$D/key
	CAIRN_STATE_DIR=$D/state
	export CAIRN_STORE CAIRN_KEY CAIRN_STATE_DIR
	section "$KIND: $CAIRN_STORE"

	run init --create-key --json
	check "$KIND: init --create-key creates a workspace and a key" rc_is 0
	WSID=$(jget workspace)
	check "$KIND: the key file is 0600" eq "$(stat -c %a "$D/key")" 600
	if [ "$KIND" = file ]; then
		WSDIR=$D/store/tenants/default/workspaces/$WSID
		STOREDIR=$D/store
	else
		WSDIR=$TMP/s3/cairn-test/${2#s3://cairn-test/}/tenants/default/workspaces/$WSID
		STOREDIR=$TMP/s3
	fi

	# 1. a full snapshot, restored byte for byte
	py gen "$WS" 7 2000
	py manifest "$WS" "$D/m1.json"
	set -- $(py count "$D/m1.json")
	tree_files=$1 tree_bytes=$3
	diag "the tree: $1 files, $2 directories, $3 bytes"
	[ "$KIND" = s3 ] && s3_ctl POST /__proxy/reset >/dev/null
	run snapshot --json "$WS"
	check "$KIND: the first snapshot exits 0" rc_is 0
	check "$KIND: it counts every file" eq "$(jget stats.files)" "$tree_files"
	if [ "$KIND" = s3 ]; then
		full_put=$(s3_stat put.bytes_in)
		diag "first snapshot: $(s3_stat put.count) PUTs, $full_put bytes"
	else
		packs data >"$D/packs1-data"
		packs tree >"$D/packs1-tree"
	fi
	check "$KIND: the restore equals the tree: content, modes, owners, times, xattrs, links" \
		restored latest "$D/r1" "$D/m1.json"
	run ls --json
	first=$(head -n 1 "$TMP/out" | py jget id)

	# 2. an incremental snapshot: 3 files changed, 1 added, 1 deleted
	py modify "$WS" >"$D/changed"
	py manifest "$WS" "$D/m2.json"
	rm -f "$D/ready" "$D/stop"
	python3 "$TMP/tool.py" watch "$WS" "$D/ready" "$D/stop" "$D/opened.json" &
	watcher=$!
	bg_track $watcher
	i=0
	while [ ! -s "$D/ready" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	[ "$KIND" = s3 ] && s3_count_start
	before=$(dir_bytes "$STOREDIR")
	run snapshot --json "$WS"
	check "$KIND: the incremental snapshot exits 0" rc_is 0
	touch "$D/stop"
	bg_wait $watcher
	check "$KIND: the inotify watcher ran" test "$bg_rc" -eq 0 -a -s "$D/opened.json"
	check "$KIND: unchanged files were never opened (inotify)" py check-opened "$D/opened.json" "$D/changed"
	check "$KIND: the changed and added files were opened" \
		py check-opened "$D/opened.json" "$D/changed" --all-of
	check "$KIND: the snapshot read exactly the 4 changed or added files" eq "$(jget stats.new_files)" 4
	grown=$(($(dir_bytes "$STOREDIR") - before))
	diag "incremental: ${grown} bytes more in the store, stored_bytes $(jget stats.stored_bytes), tree $tree_bytes bytes"
	check "$KIND: it stored a small part of the tree" lt "$grown" $((tree_bytes / 4))
	if [ "$KIND" = s3 ]; then
		inc_put=$(s3_stat put.bytes_in)
		diag "incremental: $(s3_stat put.count) PUTs ($(s3_puts data) data packs, $(s3_puts tree) tree packs), $inc_put bytes; full: $full_put"
		check "$KIND: the incremental uploaded a few packs" lt "$(s3_puts data)" 3
		check "$KIND: and well under the tree's size in bytes" lt "$inc_put" $((tree_bytes / 4))
	fi
	check "$KIND: the incremental restores to the changed tree" restored latest "$D/r2" "$D/m2.json"

	# 3. no change: no pack at all
	[ "$KIND" = s3 ] && s3_count_start
	[ "$KIND" = file ] && packs data >"$D/before-data" && packs tree >"$D/before-tree"
	run snapshot --json "$WS"
	check "$KIND: a snapshot of an unchanged tree exits 0" rc_is 0
	check "$KIND: and reads no file" eq "$(jget stats.new_files)/$(jget stats.new_bytes)" 0/0
	if [ "$KIND" = s3 ]; then
		diag "no change: $(s3_stat put.count) PUTs, $(s3_stat put.bytes_in) bytes"
		check "$KIND: and uploads no data pack" eq "$(s3_puts data)" 0
		check "$KIND: and no tree pack" eq "$(s3_puts tree)" 0
		check "$KIND: only a few KiB in all (index, record, head, lease)" lt "$(s3_stat put.bytes_in)" 65536
	else
		check "$KIND: and writes no data pack" eq "$(packs data | cmp - "$D/before-data" && echo same)" same
		check "$KIND: and no tree pack" eq "$(packs tree | cmp - "$D/before-tree" && echo same)" same
	fi
	check "$KIND: ls shows 3 snapshots" eq "$(snapshots)" 3
	check "$KIND: the first snapshot still restores to the first tree" \
		restored "$(echo "$first" | cut -c1-8)" "$D/r1b" "$D/m1.json"
	rm -rf "$D/r1" "$D/r1b" "$D/r2" "$D/r1.json" "$D/r1b.json" "$D/r2.json"
	run restore latest "$D/inc" --include misc/links --json
	check "$KIND: restore takes options after its arguments, as its usage says" rc_is 0
	check "$KIND: --include restores that path only" \
		eq "$(cd "$D/inc" && find . -type f | sort | tr '\n' ' ')" \
		"./misc/links/a/three ./misc/links/b/three-again ./misc/links/big-linked.bin ./misc/links/pair-1 ./misc/links/pair-2 ./misc/links/three-thrice "
	check "$KIND: and says how many files it wrote" eq "$(jget files)" 6
	rm -rf "$D/inc"

	# 4. dedup: a second copy of the tree in the same workspace
	cp -a "$WS" "$D/copy" && mv "$D/copy" "$WS/copy"
	[ "$KIND" = s3 ] && s3_count_start
	before=$(dir_bytes "$STOREDIR")
	run snapshot --json "$WS"
	check "$KIND: a snapshot with a copy of the tree exits 0" rc_is 0
	check "$KIND: the copy's files were read (new inodes)" lt $((tree_files / 2)) "$(jget stats.new_files)"
	check "$KIND: but made no new data blob" eq "$(jget stats.new_bytes)" 0
	grown=$(($(dir_bytes "$STOREDIR") - before))
	diag "dedup: ${grown} bytes more in the store for a $tree_bytes-byte copy"
	check "$KIND: and the store grew by under 2% of the copy" lt "$grown" $((tree_bytes / 50))
	if [ "$KIND" = s3 ]; then
		check "$KIND: no data pack was uploaded" eq "$(s3_puts data)" 0
	fi
	rm -rf "$WS/copy"
	run snapshot "$WS"
	check "$KIND: and without the copy again" rc_is 0
	py manifest "$WS" "$D/m5.json"
	LATEST=$D/m5.json

	# 5. privacy: no marker of a name or of content anywhere in the store
	grep -r -a -l -F -e CAIRN-PRIVACY-DATA-MARKER-5e1f0c77a9 -e cairn-privacy-name-marker-b84d2e \
		-e node_modules -e big12.bin "$STOREDIR" >"$D/found"
	check "$KIND: the markers are in the workspace (the grep works)" \
		grep -r -q -a -F CAIRN-PRIVACY-DATA-MARKER-5e1f0c77a9 "$WS/privacy"
	check "$KIND: no content marker and no file name in any object of the store" \
		eq "$(head -n 3 "$D/found")" ""

	check "$KIND: every object but config is sealed, under keys only our tenant key unwraps" \
		py sealed "$WSDIR" "$D/key"

	# 6. another tenant key: refused, nothing written anywhere
	CAIRN_STORE=file://$D/other CAIRN_STATE_DIR=$D/other-state run init --create-key --key "file:$D/key2"
	check "$KIND: a second tenant key (another store)" rc_is 0
	find "$STOREDIR" -type f | sort >"$D/objects-before"
	[ "$KIND" = s3 ] && s3_ctl POST /__proxy/reset >/dev/null
	CAIRN_KEY=file:$D/key2 run ls
	check "$KIND: ls with another tenant key exits 1" rc_is 1
	check "$KIND: saying: wrong tenant key" err_has "wrong tenant key"
	CAIRN_KEY=file:$D/key2 run restore latest "$D/wrong"
	check "$KIND: restore with another tenant key exits 1" rc_is 1
	check "$KIND: saying: wrong tenant key" err_has "wrong tenant key"
	check "$KIND: and writes nothing to the target" nothing_restored "$D/wrong"
	CAIRN_KEY=file:$D/key2 run snapshot "$WS"
	check "$KIND: snapshot with another tenant key exits 1" rc_is 1
	# the same kek id with other key bytes: the wrapped keys fail to open
	printf '%s:%s\n' "$(cut -d: -f1,2 "$D/key")" "$(cut -d: -f3 "$D/key2")" >"$D/key3"
	chmod 600 "$D/key3"
	CAIRN_KEY=file:$D/key3 run restore latest "$D/wrong"
	check "$KIND: a key with the right id but other bytes exits 1" rc_is 1
	check "$KIND: saying: cannot unwrap key ...: wrong tenant key?" err_has "cannot unwrap key .*wrong tenant key?"
	check "$KIND: and writes nothing to the target" nothing_restored "$D/wrong"
	find "$STOREDIR" -type f | sort >"$D/objects-after"
	check "$KIND: nothing was written to the store" cmp -s "$D/objects-before" "$D/objects-after"
	if [ "$KIND" = s3 ]; then
		check "$KIND: not one PUT reached S3" eq "$(s3_stat put.count)" 0
	fi
}

# ---- file:// only: flipped bytes, a rolled-back store, kill -9 ---------------

# tamper_reset NAME: puts the saved store back and gives a fresh state dir
# (no index cache: every index object is read), for one tamper case
tamper_reset() {
	rm -rf "$D/store" "$D/t-out"
	cp -a "$D/store.saved" "$D/store"
	tstate=$D/tstate-$1
	rm -rf "$tstate"
}
tamper_restore() {	# tamper_restore CASE SNAPSHOT: a restore that must fail
	CAIRN_STATE_DIR=$tstate run restore "$2" "$D/t-out"
	check "tamper $1: restore exits 1" rc_is 1
	check "tamper $1: and writes no file" nothing_restored "$D/t-out"
	diag "$(head -n 1 "$TMP/err")"
}

file_only() {
	section "file: tampering, one object at a time"
	cp -a "$D/store" "$D/store.saved"

	pack=$(head -n 1 "$D/packs1-data")
	tamper_reset data
	py flip "$WSDIR/$pack" 30
	tamper_restore "data pack" "$first"
	check "tamper data pack: the error names the pack" err_has "$pack"
	check "tamper data pack: no temp file is left behind" \
		eq "$(find "$D/t-out" -name '.cairn-restore-*' | head -n 1)" ""

	pack=$(head -n 1 "$D/packs1-tree")
	tamper_reset tree
	py flip "$WSDIR/$pack" 30
	CAIRN_STATE_DIR=$tstate run ls "$first"
	check "tamper tree pack: ls of the snapshot exits 1" rc_is 1
	check "tamper tree pack: naming the pack" err_has "$pack"
	tamper_restore "tree pack" "$first"
	check "tamper tree pack: restore names the pack" err_has "$pack"

	tamper_reset head
	py flip "$WSDIR/head" mid
	tamper_restore head latest
	check "tamper head: the error names the head" err_has "head"
	CAIRN_STATE_DIR=$tstate run snapshot "$WS"
	check "tamper head: snapshot exits 1" rc_is 1

	tamper_reset record
	rec=$(cd "$WSDIR" && ls snapshots | sort | head -n 1)
	py flip "$WSDIR/snapshots/$rec" -20
	CAIRN_STATE_DIR=$tstate run ls
	check "tamper snapshot record: ls exits 1" rc_is 1
	check "tamper snapshot record: naming the record" err_has "snapshots/$rec"
	tamper_restore "snapshot record" "$(echo "$rec" | cut -c1-8)"

	tamper_reset index
	idx=$(cd "$WSDIR" && ls index | sort | head -n 1)
	py flip "$WSDIR/index/$idx" mid
	tamper_restore index latest
	check "tamper index: the error names the index object" err_has "index/$idx"

	tamper_reset key
	key=$(cd "$WSDIR" && ls keys | sort | head -n 1)
	py flip "$WSDIR/keys/$key" -10
	tamper_restore "wrapped key" latest

	tamper_reset config
	sed 's/"format":1/"format":2/' "$WSDIR/config" >"$D/config" && cat "$D/config" >"$WSDIR/config"
	CAIRN_STATE_DIR=$tstate run ls
	check "config format 2: ls exits 1" rc_is 1
	check "config format 2: naming the version found" err_has "version 2"
	check "config format 2: and the version supported" err_has "version 1"
	tamper_restore "config format 2" latest

	tamper_reset none
	check "tamper: the untouched copy restores (each case failed for its flip alone)" \
		env CAIRN_STATE_DIR="$tstate" "$cairn" restore -q latest "$D/t-out"
	rm -rf "$D/t-out" "$D/store.saved" "$D"/tstate-*

	section "file: rollback"
	run ls --json
	gen=$(tail -n 1 "$TMP/out" | py jget generation)
	cp -a "$D/store" "$D/store.old"
	run snapshot "$WS"
	check "rollback: snapshot $((gen + 1)) exits 0" rc_is 0
	mv "$D/store" "$D/store.new"
	cp -a "$D/store.old" "$D/store"
	run snapshot "$WS"
	check "rollback: snapshot on the old store exits 1" rc_is 1
	check "rollback: naming generation $gen" err_has "generation $gen"
	check "rollback: and generation $((gen + 1))" err_has "generation $((gen + 1))"
	run restore latest "$D/rb"
	check "rollback: restore latest exits 1" rc_is 1
	check "rollback: naming both generations" err_has "generation $gen.*generation $((gen + 1))"
	check "rollback: and restores nothing" nothing_restored "$D/rb"
	check "rollback: --allow-rollback restores the old head" \
		restored latest "$D/rb" "$LATEST" --allow-rollback
	rm -rf "$D/store" "$D/store.old" "$D/rb" "$D/rb.json"
	mv "$D/store.new" "$D/store"

	section "file: kill -9 during a snapshot"
	py big "$D/big" 160 11
	nsnap=$(snapshots)
	packs data >"$D/before-kill"
	ndata=$(wc -l <"$D/before-kill")
	"$cairn" snapshot "$D/big" >"$D/killed.out" 2>&1 &
	pid=$!
	bg_track $pid
	i=0
	while [ "$(packs data | wc -l)" -le "$ndata" ] && [ $i -lt 300 ]; do sleep 0.02; i=$((i + 1)); done
	kill -9 $pid
	bg_wait $pid
	check "kill -9: the snapshot was killed after it had uploaded a pack" \
		test "$bg_rc" -eq 137 -a "$(packs data | wc -l)" -gt "$ndata"
	diag "killed after $(($(packs data | wc -l) - ndata)) new data packs"
	packs data | comm -13 "$D/before-kill" - >"$D/orphans"
	check "kill -9: no snapshot was added" eq "$(snapshots)" "$nsnap"
	check "kill -9: the previous snapshot restores bit for bit" restored latest "$D/rk" "$LATEST"
	if has_check; then
		run check
		check "kill -9: cairn check exits 0 (unreferenced packs are a warning)" rc_is 0
	fi
	t0=$(date +%s)
	run snapshot "$WS"
	check "kill -9: the dead process's lease is taken over at once, and a snapshot works" rc_is 0
	check "kill -9: at once (no wait for the lease to expire)" lt $(($(date +%s) - t0)) 10
	run prune
	check "kill -9: prune exits 0" rc_is 0
	check "kill -9: and removes the packs the killed snapshot left" \
		eq "$(packs data | comm -12 - "$D/orphans" | head -n 3)" ""
	check "kill -9: the latest snapshot still restores bit for bit" restored latest "$D/rk" "$LATEST"
	rm -rf "$D/big" "$D/rk" "$D/rk.json"
}

# ---- S3 only: the lease, a store that fails, kill -9 during prune ------------
s3_only() {
	section "s3: the lease"
	py rand "$WS/lease-test/new.bin" 256 21
	s3_ctl POST /__proxy/reset >/dev/null
	s3_ctl POST "/__proxy/fault?kind=delay:3000&count=1&method=PUT&key=/data/" >/dev/null
	CAIRN_HOST_ID=hostA "$cairn" snapshot "$WS" >"$D/hostA.out" 2>&1 &
	pid=$!
	bg_track $pid
	i=0	# hostA holds the lease once its first pack upload is held up
	while [ "$(s3_stat faults)" -lt 1 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	CAIRN_HOST_ID=hostB run snapshot "$WS"
	check "lease: a second writer (hostB) exits 1 while hostA snapshots" rc_is 1
	check "lease: naming the holder hostA" err_has "hostA"
	bg_wait $pid
	check "lease: hostA's snapshot exits 0" test "$bg_rc" -eq 0 || sed 's/^/# /' "$D/hostA.out"
	CAIRN_HOST_ID=hostB run snapshot "$WS"
	check "lease: once hostA is done, hostB's snapshot works" rc_is 0
	py manifest "$WS" "$D/m-lease.json"
	LATEST=$D/m-lease.json

	section "s3: the store down, then back"
	nsnap=$(snapshots)
	py rand "$WS/lease-test/while-down.bin" 512 22
	s3_ctl POST "/__proxy/outage?ms=6000" >/dev/null
	t0=$(date +%s)
	CAIRN_S3_RETRY_SECONDS=3 run snapshot "$WS"
	check "store down: snapshot exits 1" rc_is 1
	check "store down: with a message that says it gave up reaching the store" err_has "gave up after"
	check "store down: after retrying for the budget, not for ever" lt $(($(date +%s) - t0)) 20
	i=0
	while ! s3_ctl GET /__proxy/stats >/dev/null 2>&1 && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
	check "store back: no snapshot was added" eq "$(snapshots)" "$nsnap"
	check "store back: the previous snapshot restores bit for bit" restored latest "$D/rd" "$LATEST"

	s3_ctl POST "/__proxy/fault?kind=status:503&count=100000&method=PUT&key=/data/" >/dev/null
	CAIRN_S3_RETRY_SECONDS=3 run snapshot "$WS"
	check "pack uploads failing (503): snapshot exits 1" rc_is 1
	check "pack uploads failing (503): naming the pack and the answer" err_has "data/.*503"
	s3_ctl POST /__proxy/reset >/dev/null
	check "503s over: no snapshot was added" eq "$(snapshots)" "$nsnap"
	check "503s over: the previous snapshot restores bit for bit" restored latest "$D/rd" "$LATEST"
	run snapshot "$WS"
	check "503s over: a snapshot works again" rc_is 0
	py manifest "$WS" "$D/m6.json"
	check "503s over: and restores bit for bit" restored latest "$D/rd" "$D/m6.json"
	rm -rf "$D/rd" "$D/rd.json"
}

# ---- kill -9 during prune (S3, every request slowed so kills land mid-way) ----
prune_kills() {
	section "prune: kill -9 at several moments"
	P=$TMP/prune
	mkdir -p "$P"
	CAIRN_STORE=s3://cairn-test/prune
	CAIRN_STATE_DIR=$P/state
	export CAIRN_STORE CAIRN_STATE_DIR
	run init --create-key
	check "prune: a workspace for prune" rc_is 0
	for i in 0 1 2 3 4 5 6 7; do py rand "$P/src/big$i" 3072 $((100 + i)); done
	for i in 0 1 2 3 4 5 6 7 8 9; do echo "small $i" >"$P/src/small$i"; done
	run snapshot "$P/src" && py manifest "$P/src" "$P/m1.json"
	rm "$P/src/big0" "$P/src/big1" "$P/src/big2" "$P/src/big3" "$P/src/big4" "$P/src/big5" "$P/src/big6"
	py rand "$P/src/new1" 3072 201
	py rand "$P/src/new2" 3072 202
	run snapshot "$P/src" && py manifest "$P/src" "$P/m2.json"
	echo changed >"$P/src/small1"
	py rand "$P/src/new3" 3072 203
	run snapshot "$P/src" && py manifest "$P/src" "$P/m3.json"
	echo added >"$P/src/small-added"
	run snapshot "$P/src" && py manifest "$P/src" "$P/m4.json"
	check "prune: 4 snapshots" eq "$(snapshots)" 4
	run ls --json
	keep3=$(sed -n 3p "$TMP/out" | py jget id | cut -c1-8)
	keep4=$(sed -n 4p "$TMP/out" | py jget id | cut -c1-8)
	run forget --keep-last 2
	check "prune: forget --keep-last 2 exits 0" rc_is 0
	check "prune: 2 snapshots left" eq "$(snapshots)" 2
	pdir=$TMP/s3/cairn-test/prune
	before=$(dir_bytes "$pdir")

	# Each run is killed at a point of its own: a rule holds one request
	# of that kind for 1.5 s, and the prune is killed while it waits.  The
	# proxy then carries the request out (a write that reached the store
	# after its writer died), so the next run starts once it has landed.
	# A run that no longer reaches its point (an earlier one did the work)
	# finishes, which is fine too.
	landed=0
	for phase in "at-once" "repacked-pack-put:method=PUT&key=/data/" \
		"index-put:method=PUT&key=/index/" "first-delete:method=POST" \
		"lease-release:method=PUT&key=lease:2"; do
		name=${phase%%:*}
		rule=${phase#*:}
		nth=1
		case $rule in *:2) rule=${rule%:2}; nth=2 ;; esac
		s3_ctl POST /__proxy/reset >/dev/null
		if [ "$name" != at-once ]; then
			[ $nth -eq 2 ] && s3_ctl POST "/__proxy/fault?kind=delay:0&count=1&$rule" >/dev/null
			s3_ctl POST "/__proxy/fault?kind=delay:1500&count=1&$rule" >/dev/null
		fi
		"$cairn" prune >"$P/prune.out" 2>&1 &
		pid=$!
		bg_track $pid
		i=0
		while [ "$name" != at-once ] && [ "$(s3_stat faults)" -lt $nth ] && [ $i -lt 100 ] &&
			kill -0 $pid 2>/dev/null; do
			sleep 0.05
			i=$((i + 1))
		done
		kill -9 $pid 2>/dev/null
		bg_wait $pid
		[ "$name" != at-once ] && sleep 1.6
		s3_ctl POST /__proxy/reset >/dev/null
		if [ "$bg_rc" -eq 137 ]; then
			diag "prune killed: $name"
			landed=$((landed + 1))
		else
			diag "prune finished (status $bg_rc) before: $name"
		fi
		check "prune killed ($name): kept snapshot 3 restores bit for bit" \
			restored "$keep3" "$P/r" "$P/m3.json"
		check "prune killed ($name): kept snapshot 4 restores bit for bit" \
			restored "$keep4" "$P/r" "$P/m4.json"
	done
	check "prune: the kills landed at 4 or more different points" lt 3 "$landed"
	run prune --json
	check "prune: a prune run to completion exits 0" rc_is 0
	diag "prune: $(cat "$TMP/out")"
	check "prune: kept snapshot 3 restores bit for bit" restored "$keep3" "$P/r" "$P/m3.json"
	check "prune: kept snapshot 4 restores bit for bit" restored "$keep4" "$P/r" "$P/m4.json"
	after=$(dir_bytes "$pdir")
	diag "prune: the workspace went from $before to $after bytes"
	check "prune: the forgotten data is gone (7 files of 3 MiB)" lt "$after" $((before - 15 * 1048576))
	check "prune: and what is left is about the live data (4 files of 3 MiB)" lt "$after" $((13 * 1048576))
	run prune --json
	check "prune: a second prune finds nothing to do" \
		eq "$(jget packs_unreferenced)/$(jget blobs_dead)/$(jget packs_deleted)" 0/0/0
	if has_check; then
		run check
		check "prune: cairn check exits 0" rc_is 0
	fi

	# A prune killed while its index write is in flight, and the next prune
	# at once: the dead one's index lands after the live one has deleted
	# the packs that index lists.  A rerun must still finish the job, and
	# check stay clean.
	# one new pack of 1 MiB that stays and 5 MiB that go: a sure repack
	py rand "$P/src/late/stays" 1024 301
	py rand "$P/src/late/goes" 5120 302
	run snapshot "$P/src"
	rm "$P/src/late/goes"
	run snapshot "$P/src" && py manifest "$P/src" "$P/m5.json"
	run forget --keep-last 1
	s3_ctl POST /__proxy/reset >/dev/null
	s3_ctl POST "/__proxy/fault?kind=delay:3000&count=1&method=PUT&key=/index/" >/dev/null
	"$cairn" prune >"$P/prune.out" 2>&1 &
	pid=$!
	bg_track $pid
	i=0
	while [ "$(s3_stat faults)" -lt 1 ] && [ $i -lt 100 ] && kill -0 $pid 2>/dev/null; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -9 $pid 2>/dev/null
	bg_wait $pid
	check "late index: the first prune was killed while its index write was held" test "$bg_rc" -eq 137
	run prune
	check "late index: a second prune at once exits 0" rc_is 0
	sleep 3.2	# the dead prune's index lands
	s3_ctl POST /__proxy/reset >/dev/null
	check "late index: the kept snapshot restores bit for bit" restored latest "$P/r" "$P/m5.json"
	run prune
	check "late index: a third prune exits 0 (no index entry names a deleted pack)" rc_is 0
	if has_check; then
		run check
		check "late index: cairn check exits 0" rc_is 0
	fi
	rm -rf "$P/r" "$P/r.json"
}

# ---- main -------------------------------------------------------------------
# TEST_REPO_PARTS (for working on this test): a subset of "file s3 prune"
parts=${TEST_REPO_PARTS:-file s3 prune}
case " $parts " in *" file "*)
	scenario file "file://$TMP/file-run/store"
	file_only
esac
case " $parts " in *" s3 "* | *" prune "*) s3_start ;; esac
case " $parts " in *" s3 "*)
	scenario s3 s3://cairn-test/ws1
	s3_only
esac
case " $parts " in *" prune "*)
	CAIRN_KEY=file:$TMP/prune-key
	export CAIRN_KEY
	prune_kills
esac

section "done"
finish
