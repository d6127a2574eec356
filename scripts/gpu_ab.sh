#!/usr/bin/env bash
# Same machine, same benchmark, several source trees: whether a change made
# a kernel faster or the lent machine is another one (their speed differs
# run to run by several percent). On a lent GPU, with .deps carried:
#
#   [BENCH=bench_generate] bash scripts/gpu_ab.sh "BENCH ARGS" DIR...
#
# builds $BENCH (default bench_gpu) from this tree and from each DIR (a
# source tree: `git archive OLD CMakeLists.txt libmamba bench apps | tar -x -C DIR`),
# then runs `$BENCH BENCH ARGS` for every tree, twice in alternation, into
# $OUT/ab_<n>_<round>.txt, and prints the table rows of each run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ARGS=${1:?usage: $0 \"BENCH ARGS\" DIR...}
shift
BENCH=${BENCH:-bench_gpu}
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_unpack /opt/deps .deps/*.deb >/dev/null 2>&1
deps_env /opt/deps
trees=("$PWD" "$@")
for i in "${!trees[@]}"; do
    t=${trees[$i]}
    b=/tmp/ab_build_$i
    cmake -S "$t" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DMAMBA_CUDA=ON \
        -DMAMBA_APPS=OFF -DMAMBA_TESTS=OFF -DMAMBA_MPI=OFF -DCMAKE_C_FLAGS=-DMB_HAVE_CUDA=1 >"$OUT/ab_cfg_$i.log" 2>&1 &&
        cmake --build "$b" --target "$BENCH" -j "$(nproc)" >>"$OUT/ab_cfg_$i.log" 2>&1 ||
        { echo "tree $i ($t): build failed (see ab_cfg_$i.log)"; tail -5 "$OUT/ab_cfg_$i.log"; }
done
for round in 1 2; do
    for i in "${!trees[@]}"; do
        [ -x "/tmp/ab_build_$i/bench/$BENCH" ] || continue
        # shellcheck disable=SC2086
        "/tmp/ab_build_$i/bench/$BENCH" $ARGS >"$OUT/ab_${i}_$round.txt" 2>&1
        echo "== tree $i (${trees[$i]}), round $round"
        grep -E "^\| +[0-9]|^\| (dna|small|130m|2\.8b|bidir)|bandwidth" "$OUT/ab_${i}_$round.txt"
    done
done
