#!/usr/bin/env bash
# Data-parallel training on a lent machine with several GPUs (kinds
# nvidia-h100-x2 .. nvidia-h200-x8), which has no network: carry .deps
# (cmocka, cJSON, htslib, ... and, in .deps/mpi, Open MPI for a machine
# without mpirun). From anywhere inside the repository:
#
#   bash scripts/gpu_dist.sh [N]
#
# N: the GPUs to use, 2 or more [every GPU nvidia-smi lists]. The rank
# counts measured are 1, 2, 4, 8, ... up to N, and N itself.
#
# Stages (each has a time cap; a failing stage is recorded and the run goes on;
# the whole run stays inside $GPU_DIST_BUDGET seconds, default 560):
#   env        unpack .deps/*.deb into $DEPS_PREFIX (/opt/deps), and .deps/mpi/*.deb
#              when the machine has no mpirun; NCCL from Python's nvidia-nccl-cu13
#              wheel; print the GPUs and their links, MPI, NCCL
#   configure  cmake -G Ninja, Release, sm_90, MB_NCCL_ROOT = the wheel's prefix
#              (fails unless the status line says NCCL between GPUs)         (60 s)
#   build      into build-dist                                              (300 s)
#   nccl       tests/test_dist on 2 and on N GPUs under mpirun (NCCL all-reduce):
#              a global batch of 8 split over the ranks against one process
#              with all 8                                                   (90 s)
#   bench      bench_dist on each rank count: the DNA model (d_model 256, 8
#              layers) at L = 2^17 and 2^20, batch 1 a GPU, and mamba-audio's
#              U-Net at its training defaults (4 windows of 8192 a GPU);
#              scaling efficiency = tokens/s on P / (P x tokens/s on 1)      (300 s)
#   dna        mamba-dna pretrain --device cuda on data/dna, one process and
#              mpirun -np N with the same flags (the same global batch): the
#              losses, the validation and the tokens/s of the two          (150 s)
#   test_mpi   ctest -L mpi: the data-parallel suites with CPU ranks        (90 s)
#   test_gpu   ctest -L gpu                                                 (120 s)
# NVLink multicast stays off (NCCL_NVLS_ENABLE=0, exported here and inherited
# by every rank): on these shared hosts it can put the GPUs out of service.
#
# Output: everything to stdout and $OUT/gpu_dist.log; the bench rows and the
# efficiency lines to $OUT/bench_dist.txt; the tools' JSON-lines logs to
# $OUT/dna_{one,many}.jsonl; the closing table to $OUT/summary.txt. Exit 0
# when no stage failed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-dist-out}
mkdir -p "$OUT"
DEPS_PREFIX=${DEPS_PREFIX:-/opt/deps}
BUILD=${BUILD_DIR:-build-dist}
BUDGET=${GPU_DIST_BUDGET:-560}
NPROC=$(nproc 2>/dev/null || echo 4)
NGPU=${1:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')}
case $NGPU in
'' | *[!0-9]*) echo "gpu_dist: N must be a number of GPUs, not '$NGPU'" >&2; exit 2 ;;
esac
if ((NGPU < 2)); then
    echo "gpu_dist: needs 2 GPUs or more (N = $NGPU; nvidia-smi -L lists $(nvidia-smi -L 2>/dev/null | grep -c '^GPU '))" >&2
    exit 2
fi
# 1, 2, 4, ... below N, then N
RANKS=""
for ((p = 1; p < NGPU; p *= 2)); do RANKS+="$p "; done
RANKS+=$NGPU
export PATH="$PATH:/usr/local/cuda/bin"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
# shellcheck source=scripts/stages.sh
source scripts/stages.sh

export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
# Open MPI as root (the lent machines run us as root); no ssh needed for one
# node; its shared-memory transport without the kernel's cross-process copy
# (containers often forbid it; MPI carries only a few bytes a step here)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
command -v ssh >/dev/null || export OMPI_MCA_plm=isolated
# one rank a GPU, free to use every core (mpirun binds each to one otherwise)
NP_FLAGS="--bind-to none"

# MPI: the machine's when it has one, else .deps/mpi unpacked
MPIRUN=mpirun
MPI_CMAKE=""
if ! mpirun --version >/dev/null 2>&1 || ! mpicc --version >/dev/null 2>&1; then
    USE_DEPS_MPI=1
    deps_mpi "$DEPS_PREFIX" # sets MPIRUN, MPI_CMAKE and the environment; unpacked by env_stage
fi
# NCCL: Python's wheel (a namespace package: no __file__, a __path__)
NCCL_DIR=$(python3 -c 'import nvidia.nccl as n; print(list(n.__path__)[0])' 2>/dev/null)
export MB_NCCL_ROOT=$NCCL_DIR

env_stage() {
    echo "gpu_dist: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host $(hostname), $NPROC cores, $NGPU GPUs (ranks $RANKS)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo 'unknown (no .git)')"
    local rc=0
    deps_unpack "$DEPS_PREFIX" .deps/*.deb || rc=1
    [ "$DEPS_UNPACKED" -gt 0 ] || {
        echo "no .deps/*.deb: was .deps carried?"
        rc=1
    }
    if [ -n "${USE_DEPS_MPI:-}" ]; then
        echo "--- no mpirun on the machine: Open MPI from .deps/mpi"
        DEPS_KEEP='^lib(mpi|open-rte|open-pal|pmix|mca_|ompitrace|oshmem)' deps_unpack "$DEPS_PREFIX" \
            .deps/mpi/*.deb || rc=1
        [ "$DEPS_UNPACKED" -gt 0 ] || {
            echo "no .deps/mpi/*.deb: was .deps carried?"
            rc=1
        }
    fi
    echo "--- MPI: $MPIRUN"
    "$MPIRUN" --version 2>&1 | head -2 || rc=1
    echo "--- MPI smoke test: $NGPU ranks"
    timeout 60 "$MPIRUN" -np "$NGPU" $NP_FLAGS hostname 2>&1 || rc=1
    echo "--- NCCL: ${NCCL_DIR:-not found (python3 -c 'import nvidia.nccl')}"
    ls -l "$NCCL_DIR"/lib/libnccl* "$NCCL_DIR"/include/nccl.h 2>&1 || rc=1
    grep -E '^#define NCCL_(MAJOR|MINOR|PATCH) ' "$NCCL_DIR/include/nccl.h" 2>/dev/null | tr '\n' ' '; echo
    echo "--- GPUs"
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv 2>&1 || rc=1
    nvidia-smi topo -m 2>&1 | head -8
    echo "NCCL_NVLS_ENABLE=$NCCL_NVLS_ENABLE"
    return $rc
}

main() {
    stage_func env 1_env.log env_stage
    deps_env "$DEPS_PREFIX"

    local cfg="cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
    cfg+=" -DMAMBA_CUDA=ON -DMAMBA_APPS=ON -DMB_NCCL_ROOT=$NCCL_DIR $MPI_CMAKE"
    stage configure 60 350 2_build.log \
        "set -o pipefail; $cfg | tee $OUT/.cfg && grep -q 'NCCL between GPUs' $OUT/.cfg"
    stage build 300 300 2_build.log "cmake --build $BUILD -j $NPROC"
    local B=$BUILD
    [[ $B == /* ]] || B=$ROOT/$BUILD
    local nccl="$MPIRUN -np 2 $NP_FLAGS $B/tests/test_dist --ranks 2 --device cuda"
    ((NGPU > 2)) && nccl+=" && $MPIRUN -np $NGPU $NP_FLAGS $B/tests/test_dist --ranks $NGPU --device cuda"
    stage nccl 90 400 3_nccl.log "$nccl"

    # the bench: one row per (model, L, ranks), then the efficiency of each
    # rank count against one
    local bench='set -o pipefail; : >'"$OUT"'/bench_dist.txt; bad=0
    for run in "dna 131072" "dna 1048576" "unet 8192"; do
        set -- $run
        for np in '"$RANKS"'; do
            '"$MPIRUN"' -np $np '"$NP_FLAGS $B"'/bench/bench_dist --model $1 --seq-len $2 --device cuda \
                --steps 5 | tee -a '"$OUT"'/bench_dist.txt || bad=1
        done
    done
    echo
    awk '"'"'/^bench_dist: model=/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
             k = v["model"] " " v["seq_len"]; t[k, v["ranks"]] = v["tok_s"]; r[k, v["ranks"]] = v["reduce_ms"]
             s[k, v["ranks"]] = v["step_ms"] }
         END { for (q in t) { split(q, a, SUBSEP); if (a[2] > 1 && ((a[1], 1) in t))
                 printf "scaling efficiency 1 -> %d GPUs, %s: %.1f%% (%.0f -> %.0f tokens/s; step %.1f ms, all-reduce %.2f ms)\n",
                        a[2], a[1], 100 * t[q] / (a[2] * t[a[1], 1]), t[a[1], 1], t[q], s[q], r[q] } }'"'"' \
        '"$OUT"'/bench_dist.txt | sort -k7,7 -k8,8n -k5,5n | tee -a '"$OUT"'/bench_dist.txt
    exit $bad'
    stage bench 300 100 4_bench.log "$bench"

    # the tool: one process and N ranks, the same flags; windows of 64 Ki
    # bases, a global batch of at least 4 that splits over the N ranks, both
    # runs with recompute
    local dna="$B/apps/genomics/mamba-dna" w gb=$((NGPU * ((4 + NGPU - 1) / NGPU)))
    w=$(mktemp -d)
    local flags="pretrain --device cuda --d-model 256 --n-layer 8 --seq-len 65536 --batch $gb --steps 16"
    flags+=" --val-every 8 --val-tokens 200000 --lr 1e-3 --seed 1 --val data/dna/val.fa.gz data/dna/train.fa.gz"
    # the last values of each log side by side; the validation must agree
    # within 1e-3 bits/base (fp32 on both, sums over other batch shapes)
    local cmp='bad=0; for k in train_bpb val_bpb tokens_per_s; do
        paste <(grep -o "\"$k\": [0-9.]*" '"$OUT"'/dna_one.jsonl | tail -1 | cut -d" " -f2) \
              <(grep -o "\"$k\": [0-9.]*" '"$OUT"'/dna_many.jsonl | tail -1 | cut -d" " -f2) |
            awk -v k=$k -v n='"$NGPU"' '"'"'{ d = $2 - $1; printf "%-13s 1 GPU %-12s %d GPUs %-12s difference %.2g\n", k, $1, n, $2, d
                              exit (k == "val_bpb" && (d > 1e-3 || d < -1e-3)) }'"'"' || bad=1
    done; exit $bad'
    stage dna 150 0 5_dna.log "rm -f $OUT/dna_one.jsonl $OUT/dna_many.jsonl;
        $dna $flags --out $w/one.st --log $OUT/dna_one.jsonl &&
        $MPIRUN -np $NGPU $NP_FLAGS $dna $flags --out $w/many.st --log $OUT/dna_many.jsonl && ls -l $w && { $cmp; }"
    rm -rf "$w"

    stage test_mpi 90 0 6_tests.log \
        "ctest --test-dir $BUILD -L mpi --output-on-failure --no-tests=error"
    stage test_gpu 120 0 6_tests.log \
        "ctest --test-dir $BUILD -L gpu --output-on-failure --no-tests=error"
    rm -f "$OUT/.cfg"
    stages_summary "gpu_dist summary" gpu_dist
}

main 2>&1 | tee "$OUT/gpu_dist.log"
exit "${PIPESTATUS[0]}"
