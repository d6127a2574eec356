#!/usr/bin/env python3
# Which kernels of two PTX files are the same, entry by entry (`.loc`, `.file` and comment lines
# aside): how a merge that re-arranges a trial's code is checked against the tree a GPU ran,
# when no GPU is at hand (sessions 49 and 50: "every kernel is one of the GPU-run trees' PTX").
#   nvcc -ptx -arch=sm_90 -std=c++17 -O3 -DNDEBUG -DMB_HAVE_CUDA=1 -Ilibmamba/include -Ilibmamba/src \
#        libmamba/src/ops/stack_step.cu -o /tmp/a.ptx        (and the other tree into /tmp/b.ptx)
#   python3 scripts/ptx_same.py /tmp/a.ptx /tmp/b.ptx [--diff]
# prints SAME or DIFF for each entry of the first file (ONLY for one the second lacks), and a count.
# Branch labels and local depots are compared without their function number ($L__BB<f>_<n>,
# __local_depot<f>), which shifts when kernels are added before an entry.
import hashlib
import re
import sys


def entries(path):
    out, cur, buf = {}, None, []
    for line in open(path):
        st = line.strip()
        if st.startswith(('.loc', '.file', '//')):
            continue
        m = re.match(r'\s*(?:\.visible\s+|\.weak\s+)?\.entry\s+(\S+?)\(', line)
        if m:
            if cur:
                out[cur] = hashlib.md5(''.join(buf).encode()).hexdigest()
            cur, buf = m.group(1), []
        if cur:
            buf.append(re.sub(r"__local_depot\d+", "__local_depot", re.sub(r"\$L__BB\d+_", "$L__BB_", line)))
    if cur:
        out[cur] = hashlib.md5(''.join(buf).encode()).hexdigest()
    return out


if len(sys.argv) < 3:
    sys.exit(__doc__ or 'usage: ptx_same.py A.ptx B.ptx [--diff]')
a, b = entries(sys.argv[1]), entries(sys.argv[2])
only_diff = '--diff' in sys.argv
n = {'SAME': 0, 'DIFF': 0, 'ONLY': 0}
for k in sorted(a):
    v = 'ONLY' if k not in b else 'SAME' if a[k] == b[k] else 'DIFF'
    n[v] += 1
    if not only_diff or v != 'SAME':
        print(v, k)
print(f"{n['SAME']} same, {n['DIFF']} different, {n['ONLY']} only in {sys.argv[1]}")
