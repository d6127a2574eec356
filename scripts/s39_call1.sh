#!/usr/bin/env bash
# The next session's first device call (written in session 38, whose device time ran out before
# it could run; carry .deps): this tree, the trial scan-tmax (the forward's chunks up to 4096
# steps, its carry up to 512 chunks: the 2^20 rows' chunk counts) and break-split-ddt (the split
# threads' ddt sum dropped by hand), only gpu_test_scan and bench_gpu built (no apps), the three
# at once: lean, for a budget of a few minutes. gpu_test_scan must PASS on this tree and scan-tmax
# and FAIL on break-split-ddt and break-locals-part (added at the run); then bench_gpu --scan twice on this tree and scan-tmax (the 2^20
# rows and the accuracy table printed). With more time, break-locals-part the same way.
set -uo pipefail
export PATH="$PATH:/usr/local/cuda/bin"
source scripts/deps.sh
deps_unpack /opt/deps .deps/*.deb >/dev/null
deps_env /opt/deps
lean_build() { # DIR: configure and build the two targets there
    (cd "$1" && cmake -S . -B build-lean -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DMAMBA_CUDA=ON -DMAMBA_APPS=OFF -DCMAKE_C_FLAGS=-DMB_HAVE_CUDA=1 >"/tmp/lean_$(basename "$1").log" 2>&1 &&
        ninja -C build-lean tests/gpu_test_scan bench/bench_gpu >>"/tmp/lean_$(basename "$1").log" 2>&1) ||
        { echo "$1: build FAILED"; tail -5 "/tmp/lean_$(basename "$1").log"; }
}
dirs=("$PWD")
for t in break-split-ddt break-locals-part scan-tmax; do
    d=/tmp/lean_$t
    rm -rf "$d" && mkdir -p "$d"
    tar -c --exclude='./build*' --exclude=./.deps --exclude=./.git --exclude=./gpu-check-out . | tar -x -C "$d"
    patch -s -d "$d" -p1 <"bench/trials/$t.patch" || echo "$t: patch FAILED"
    dirs+=("$d")
done
s=$(date +%s)
for d in "${dirs[@]}"; do lean_build "$d" & done
wait
echo "== built in $(($(date +%s) - s)) s"
for d in "${dirs[@]}"; do
    (cd "$d/build-lean" && timeout 60 ./tests/gpu_test_scan >"/tmp/scan_test_$(basename "$d").log" 2>&1)
    rc=$?
    echo "== gpu_test_scan $(basename "$d"): rc $rc $(grep -E '^\[  (PASSED|FAILED) ' "/tmp/scan_test_$(basename "$d").log" | tr '\n' ' ')"
    grep -E "rel err [0-9.]+e-0[0-4]|rel err [0-9.]+e\+|rel err -?nan" "/tmp/scan_test_$(basename "$d").log" | head -4
done
for r in 1 2; do
    for d in "$PWD" /tmp/lean_scan-tmax; do
        echo "== bench_gpu --scan $(basename "$d") round $r"
        timeout 40 "$d/build-lean/bench/bench_gpu" --scan | grep -E "1048576|^\| (CPU|GPU)"
    done
done
