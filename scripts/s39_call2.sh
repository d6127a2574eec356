#!/usr/bin/env bash
# Session 39, call 2 (carry .deps): where a generation step's time goes in the chain. A lean build
# (bench_generate only) of this tree and of bench/trials/split-ko (an experiment, never merged:
# MB_SP_KO skips the split step's launches, bits 1 x, 2 scan, 4 out, 8 in; MB_LAYER_KO skips a
# layer-path generation step's ops, bits 1 conv, 2 x_proj, 4 dt_proj, 8 scan). The time a
# skipped kernel saves is what it costs in the chain (programmatic dependent launch, graphs),
# which Nsight Compute's one-kernel-at-a-time figures do not give.
set -uo pipefail
export PATH="$PATH:/usr/local/cuda/bin"
source scripts/deps.sh
deps_unpack /opt/deps .deps/*.deb >/dev/null
deps_env /opt/deps
lean_build() { # DIR
    (cd "$1" && cmake -S . -B build-lean -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DMAMBA_CUDA=ON -DMAMBA_APPS=OFF -DCMAKE_C_FLAGS=-DMB_HAVE_CUDA=1 >"/tmp/lean_$(basename "$1").log" 2>&1 &&
        ninja -C build-lean bench/bench_generate >>"/tmp/lean_$(basename "$1").log" 2>&1) ||
        { echo "$1: build FAILED"; tail -5 "/tmp/lean_$(basename "$1").log"; }
}
d=/tmp/lean_ko
rm -rf "$d" && mkdir -p "$d"
tar -c --exclude='./build*' --exclude=./.deps --exclude=./.git --exclude=./gpu-check-out . | tar -x -C "$d"
patch -s -d "$d" -p1 <bench/trials/split-ko.patch || echo "split-ko: patch FAILED"
s=$(date +%s)
lean_build "$PWD" & lean_build "$d" & wait
echo "== built in $(($(date +%s) - s)) s"
B0=$PWD/build-lean/bench/bench_generate B1=$d/build-lean/bench/bench_generate
rows() { grep -E "^\| (130m|2.8b)" | grep -v prefill | cut -c1-100; }
for r in 1 2; do
    echo "== round $r: 130m, 1 row, fp32 and bf16 copies; main, then MB_SP_KO 0 1 2 4 8 15"
    for w in fp32 bf16; do
        echo "-- main $w"; timeout 60 "$B0" --device cuda --shape 130m --batch 1 --weights $w --tokens 256 | rows
        for k in 0 1 2 4 8 15; do
            echo "-- ko $k $w"; MB_SP_KO=$k timeout 60 "$B1" --device cuda --shape 130m --batch 1 --weights $w --tokens 256 | rows
        done
    done
    echo "== round $r: 130m, 64 rows, TF32; main, then MB_LAYER_KO 0 1 2 4 8 15"
    echo "-- main"; timeout 60 "$B0" --device cuda --shape 130m --batch 64 --weights tf32 | rows
    for k in 0 1 2 4 8 15; do
        echo "-- layer ko $k"; MB_LAYER_KO=$k timeout 60 "$B1" --device cuda --shape 130m --batch 64 --weights tf32 | rows
    done
done
echo "== 2.8b, 1 row, bf16 copies: main, MB_SP_KO 0 1 2"
timeout 90 "$B0" --device cuda --shape 2.8b --batch 1 --weights bf16 --tokens 256 | rows
for k in 0 1 2; do
    echo "-- ko $k"; MB_SP_KO=$k timeout 90 "$B1" --device cuda --shape 2.8b --batch 1 --weights bf16 --tokens 256 | rows
done
