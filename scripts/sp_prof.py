#!/usr/bin/env python3
"""The split step's timeline from the sp-prof tool (bench/trials/sp-prof.patch).

    MB_SP_PROF=/tmp/p.bin bench_generate --device cuda --shape 130m --batch 1 --weights fp32
    python3 scripts/sp_prof.py /tmp/p.bin

Each block's thread 0 noted the global timer (ns) at its entry (t0), after mb_pdl_wait (t1) and
at its end (t2). Launches are rebuilt per kernel (a kernel's launches never overlap: the next one
of a kind starts after three others that wait on it), then chained in the order they passed their
waits. For each kernel, averaged over the layers in the ring, relative to the kernel before it
ended (its last block's t2):
  step     what the kernel adds to the chain: its last end minus the one before's
  release  its first wait passed, after the one before ended
  run      its last end after its first wait passed
  late     its last block's entry after the one before ended (> 0: blocks that could not start
           early, for want of room beside the kernel before)
  early    the share of its blocks that entered before the one before ended
  sms      SMs its blocks ran on
"""
import struct
import sys
from collections import defaultdict

KINDS = ['in', 'in2', 'x', 'scan', 'out', 'head', 'head2']
REC = struct.Struct('<4H4I')


def load(path):
    data = open(path, 'rb').read()
    (n,) = struct.unpack_from('<I', data, 0)
    recs = []
    for i in range(min(n, (len(data) - 4) // REC.size)):
        kind, block, grid, sm, t0, t1, t2, _ = REC.unpack_from(data, 4 + i * REC.size)
        if grid == 0 or t0 == 0:
            continue
        recs.append([kind, block, grid, sm, t0, t1, t2])
    if not recs:
        sys.exit(f'{path}: no records (did the split step run?)')
    # the low 32 bits of the timer: times relative to the newest entry, as signed
    ref = max(r[4] for r in recs)
    for r in recs:
        for k in (4, 5, 6):
            d = (r[k] - ref) & 0xffffffff
            r[k] = d - (1 << 32) if d >= 1 << 31 else d
    return recs, n


def launches(recs):
    by_kind = defaultdict(list)
    for r in recs:
        by_kind[r[0]].append(r)
    out = []
    for kind, rs in by_kind.items():
        rs.sort(key=lambda r: r[4])
        cur, seen = [], set()
        for r in rs:
            if r[1] in seen or (cur and r[2] != cur[0][2]):
                cur, seen = [], set()  # a partial launch at the ring's start: dropped
            cur.append(r)
            seen.add(r[1])
            if len(cur) == r[2]:
                out.append(cur)
                cur, seen = [], set()
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    recs, n = load(sys.argv[1])
    ts = sorted({t for r in recs for t in (r[4], r[5], r[6])})
    gaps = [b - a for a, b in zip(ts, ts[1:]) if b > a]
    print(f'{n} records written, {len(recs)} read; the timer\'s smallest step seen: {min(gaps)} ns')
    ls = launches(recs)
    # the chain: launches in the order their first wait passed
    ls.sort(key=lambda L: min(r[5] for r in L))
    stats = defaultdict(lambda: defaultdict(list))
    for prev, cur in zip(ls, ls[1:]):
        kind = KINDS[cur[0][0]]
        p_end = max(r[6] for r in prev)
        c_end = max(r[6] for r in cur)
        s = stats[(KINDS[prev[0][0]], kind)]
        s['step'].append(c_end - p_end)
        s['release'].append(min(r[5] for r in cur) - p_end)
        s['run'].append(c_end - min(r[5] for r in cur))
        s['late'].append(max(r[4] for r in cur) - p_end)
        s['early'].append(sum(r[4] < p_end for r in cur) / len(cur))
        s['sms'].append(len({r[3] for r in cur}))
        s['blocks'].append(len(cur))
    print(f'{len(ls)} whole launches; us (mean over the ring), per kernel after the one before it:')
    print('| before -> kernel | n | blocks | sms | step | release | run | late | early |')
    print('|---|---|---|---|---|---|---|---|---|')
    for (a, b), s in sorted(stats.items(), key=lambda kv: -len(kv[1]['step'])):
        m = {k: sum(v) / len(v) for k, v in s.items()}
        print(f"| {a} -> {b} | {len(s['step'])} | {m['blocks']:.0f} | {m['sms']:.0f} | {m['step'] / 1e3:.2f} | "
              f"{m['release'] / 1e3:.2f} | {m['run'] / 1e3:.2f} | {m['late'] / 1e3:.2f} | {100 * m['early']:.0f}% |")


if __name__ == '__main__':
    main()
