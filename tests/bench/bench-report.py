#!/usr/bin/env python3
"""bench-report.py - the table of tests/bench/snapshot-bench.sh.

Reads the per-run JSON lines the script wrote, prints medians as a Markdown
table, and (with --docs FILE) puts the same section, with the machine, the
versions and the command, between the markers
    <!-- bench:SIZE:begin --> ... <!-- bench:SIZE:end -->
of FILE (SIZE-cold for --cold runs; appended when they are missing).  Standard library only.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

MB = 1e6


def machine():
    cpu = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemTotal:'):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    try:
        with open('/etc/debian_version') as f:
            distro = 'Debian ' + f.read().strip()
    except OSError:
        distro = 'unknown distribution'
    return '%d CPUs (nproc), %s, %.1f GiB RAM, %s, Linux %s, load average %s at the end' % (
        ncpu, cpu, mem / 2 ** 30, distro, os.uname().release, ' '.join('%.2f' % x for x in os.getloadavg()))


def med(runs, *path):
    vals = []
    for r in runs:
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def fmt(v, spec='%.1f'):
    return '–' if v is None else spec % v


def table(results, nbytes, nfiles):
    tools = [t for t in ('restic', 'cairn') if any(r['tool'] == t for r in results)]
    rows = []
    head = ('| tool | runs | full snapshot | full MB/s | full CPU s | full max RSS | incremental | restore | restore MB/s '
            '| stored | objects | requests full / incr / restore | uploaded full / incr | restore ok |')
    rows.append(head)
    rows.append('|' + ' --- |' * (head.count('|') - 1))
    figures = {}
    for t in tools:
        rs = [r for r in results if r['tool'] == t]
        full = med(rs, 'full', 'wall')
        incr = med(rs, 'incremental', 'wall')
        rest = med(rs, 'restore', 'wall')
        cpu = [r['full']['user'] + r['full']['sys'] for r in rs if r['full'].get('user') is not None]
        rss = med(rs, 'full', 'rss_kb')
        stored = med(rs, 'stored')
        figures[t] = dict(full=full, incr=incr, restore=rest, stored=stored)
        ok = sum(1 for r in rs if r['verify'] == 'ok')
        mt = sum(1 for r in rs if r.get('mtimes') == 'same')
        rows.append('| %s | %d | %s s | %s | %s | %s MB | %s s | %s s | %s | %s MB | %s | %s / %s / %s | %s / %s MB | %d/%d (mtimes %d/%d) |' % (
            t, len(rs), fmt(full, '%.2f'), fmt(nbytes / full / MB if full else None),
            fmt(statistics.median(cpu) if cpu else None), fmt(rss / 1024 if rss else None, '%.0f'),
            fmt(incr, '%.2f'), fmt(rest, '%.2f'), fmt(nbytes / rest / MB if rest else None),
            fmt(stored / MB if stored is not None else None), fmt(med(rs, 'objects'), '%d'),
            fmt(med(rs, 'full', 'server', 'requests'), '%d'), fmt(med(rs, 'incremental', 'server', 'requests'), '%d'),
            fmt(med(rs, 'restore', 'server', 'requests'), '%d'),
            fmt(med(rs, 'full', 'server', 'bytes_in') / MB if med(rs, 'full', 'server', 'bytes_in') is not None else None),
            fmt(med(rs, 'incremental', 'server', 'bytes_in') / MB if med(rs, 'incremental', 'server', 'bytes_in') is not None else None, '%.2f'),
            ok, len(rs), mt, len(rs)))
    lines = ['\n'.join(rows), '']
    per_run = []
    for r in results:
        per_run.append('%s #%d: full %.2f s, incremental %.2f s, restore %.2f s, stored %.1f MB in %d objects' % (
            r['tool'], r['run'], r['full']['wall'], r['incremental']['wall'], r['restore']['wall'],
            r['stored'] / MB, r['objects']))
    lines.append('Every run: ' + '; '.join(per_run) + '.')
    if 'restic' in figures and 'cairn' in figures:
        a, b = figures['restic'], figures['cairn']
        lines.append('')
        lines.append('cairn against the targets of issue 3: full snapshot %.2fx restic\'s speed (target >= 1), '
                     'incremental %.1fx faster (target >= 5), stored bytes %.2f of restic\'s (target <= 1), restore %.2fx restic\'s speed.' % (
                         a['full'] / b['full'], a['incr'] / b['incr'], b['stored'] / a['stored'], a['restore'] / b['restore']))
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--results', required=True)
    ap.add_argument('--size', required=True)
    ap.add_argument('--seed', type=int, required=True)
    ap.add_argument('--runs', type=int, required=True)
    ap.add_argument('--mutate', type=int, required=True)
    ap.add_argument('--cache-state', default='warm')
    ap.add_argument('--files', type=int, required=True)
    ap.add_argument('--bytes', type=int, required=True)
    ap.add_argument('--versions', required=True)
    ap.add_argument('--command', required=True)
    ap.add_argument('--docs')
    a = ap.parse_args()
    with open(a.results) as f:
        results = [json.loads(l) for l in f if l.strip()]
    if not results:
        print('bench-report: no results', file=sys.stderr)
        return 1
    changed = max(r.get('changed', 0) for r in results)
    body = table(results, a.bytes, a.files)
    section = '\n'.join([
        '### %s workspace (`--size %s --seed %d`): %s files, %.1f MB%s' % (
            a.size, a.size, a.seed, format(a.files, ','), a.bytes / MB, ', cold page cache' if a.cache_state == 'cold' else ''),
        '',
        'Measured %s with `%s`.' % (time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), a.command),
        '',
        '- machine: %s' % machine(),
        '- versions: %s' % a.versions,
        '- incremental: after `gen-workspace --mutate %d` (%d files changed); page cache %s; medians of the runs; '
        'MB = 10^6 bytes; "stored" is the sum of the object sizes in s3rver\'s directory after both snapshots' % (
            a.mutate, changed, 'dropped before each step (--cold)' if a.cache_state == 'cold' else 'warm'),
        '',
        body,
    ])
    print()
    print(section)
    if a.docs:
        key = a.size + ('-cold' if a.cache_state == 'cold' else '')
        begin, end = '<!-- bench:%s:begin -->' % key, '<!-- bench:%s:end -->' % key
        text = ''
        if os.path.exists(a.docs):
            with open(a.docs) as f:
                text = f.read()
        else:
            text = '# Benchmarks\n'
        block = '%s\n%s\n%s' % (begin, section, end)
        if begin in text and end in text:
            text = re.sub(re.escape(begin) + '.*?' + re.escape(end), lambda m: block, text, flags=re.S)
        else:
            text = text.rstrip('\n') + '\n\n' + block + '\n'
        tmp = a.docs + '.tmp'
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, a.docs)
        print('\n(written to %s)' % a.docs, file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
