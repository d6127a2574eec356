#!/usr/bin/env bash
# Profile on a lent GPU (carry .deps):
#   bash scripts/gpu_profile.sh [scan]  the quick validation run, then Nsight
#       Compute on the first launches of each scan kernel (the (8, 1536, 2048)
#       real shape of bench_gpu), into $OUT/ncu.txt
#   bash scripts/gpu_profile.sh scanpipes  Nsight Compute's counters (instructions,
#       issue and pipe use, stalls) for the four scan kernels of d_state 16 in
#       fp32 and bf16, real and complex, at bench_gpu's (8, 1536, 2048) shape,
#       into $OUT/ncu_scanpipes.txt
#   bash scripts/gpu_profile.sh step [B]  the U-Net's generation step (sampled,
#       at batch B, default 1):
#       every kernel of ~40 steps after the warm-up, timed one by one by Nsight
#       Compute with warm caches and free clocks (as in the real loop), summed
#       per kernel and grid: what a step spends in kernels, launch gaps aside;
#       into $OUT/ncu_step.csv; reuses build-gpu when it is there
#   bash scripts/gpu_profile.sh gen SHAPE B [COUNT [WEIGHTS]]  the LM's generation
#       (bench_generate --shape SHAPE --batch B, only WEIGHTS' rows when given:
#       fp32|bf16, e.g. gen 2.8b 1 600 bf16): the first COUNT kernels of
#       the timed loop (after the warm-up, mb_dev_profile) timed the same way, summed per kernel, into $OUT/ncu_gen_SHAPE_B.csv;
#       and where Nsight Systems is installed, the same run's kernel summary
#       as they overlap in the real loop (graphs, PDL) into $OUT/nsys_gen_SHAPE_B.txt
#   bash scripts/gpu_profile.sh train L PREC  one training step of the DNA model
#       (bench_gpu --train L PREC, PREC fp32|tf32|bf16): every kernel of the
#       first timed step timed alone, summed per kernel, into $OUT/ncu_train_L_PREC.csv
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
WHAT=${1:-scan}
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
# shellcheck source=deps.sh
source scripts/deps.sh
deps_runtime
# the per-kernel sums of an ncu --csv --page raw run of gpu__time_duration
ncu_sum() {
    python3 - "$1" <<'PY'
import csv, sys, collections
rows = list(csv.reader(open(sys.argv[1])))
i0 = next(i for i, r in enumerate(rows) if r and r[0] == "ID")  # the program's output comes first
head = rows[i0]
ki, ti, gi, bi = (head.index(k) for k in ("Kernel Name", "gpu__time_duration.sum", "Grid Size", "Block Size"))
unit = rows[i0 + 1][ti]
tot, cnt = collections.Counter(), collections.Counter()
for r in rows[i0 + 2:]:
    try: t = float(r[ti].replace(",", ""))
    except (ValueError, IndexError): continue
    k = r[ki].split("(")[0][:48] + " " + r[gi] + "x" + r[bi]
    tot[k] += t; cnt[k] += 1
scale = {"ns": 1e-3, "us": 1.0, "usecond": 1.0, "nsecond": 1e-3}.get(unit, 1e-3)
print(f"{sum(cnt.values())} kernels, {sum(tot.values()) * scale:.1f} us in kernels (unit {unit})")
print("| kernel grid x block | launches | total us | mean us |")
for k, t in tot.most_common():
    print(f"| {k} | {cnt[k]} | {t * scale:.1f} | {t * scale / cnt[k]:.2f} |")
PY
}

case "$WHAT" in
scan)
    bash scripts/gpu_check.sh quick
    timeout 240 "$NCU" --kernel-name regex:'scan_(fwd_local|fwd_out|bwd_local|bwd_chunk)' --launch-count 4 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
        --section MemoryWorkloadAnalysis build-gpu/bench/bench_gpu --quick >"$OUT/ncu.txt" 2>&1
    echo "ncu rc=$?"
    grep -E "scan_|Duration|Achieved Occupancy|Theoretical Occupancy|Registers Per|Memory Throughput|Compute \(SM\) Throughput|Stall|Warp Cycles Per Issued|Block Limit" "$OUT/ncu.txt" | head -80
    ;;
scanpipes)
    # what bounds each scan kernel, per variant: fp32 and bf16 activations,
    # real and complex A, d_state 16, the (8, 1536, 2048) shape (the first of
    # bench_gpu's table; its warm-up launches): instructions, issue and pipe
    # use, stalls, DRAM
    [ -f build-gpu/build.ninja ] || bash scripts/gpu_check.sh build >/dev/null 2>&1
    cmake --build build-gpu --target bench_gpu >/dev/null || exit 1
    : >"$OUT/ncu_scanpipes.txt"
    # ncu's demangled names read "scan_fwd_out<(int)16, (bool)0, float>"
    for v in "0, float" "0, __nv_bfloat16" "1, float" "1, __nv_bfloat16"; do
        echo "=== <16, $v>" >>"$OUT/ncu_scanpipes.txt"
        timeout 120 "$NCU" --kernel-name-base demangled \
            --kernel-name "regex:scan_(fwd_local|fwd_out|bwd_locals|bwd_chunk)<\\(int\\)16, \\(bool\\)$v>" \
            --launch-count 4 --section WarpStateStats --metrics gpu__time_duration.sum,smsp__inst_executed.sum,\
smsp__issue_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,\
sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active,sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active,\
sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,sm__warps_active.avg.pct_of_peak_sustained_active,\
dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed_op_global_ld.sum,smsp__inst_executed_op_shared_ld.sum \
            build-gpu/bench/bench_gpu --scan --quick >>"$OUT/ncu_scanpipes.txt" 2>&1
        echo "ncu <16, $v> rc=$?"
    done
    grep -E "^===|  void scan_|duration|inst_executed|issue_active|pipe_|warps_active|dram__|Warp Cycles Per Issued|No kernels" "$OUT/ncu_scanpipes.txt" | head -150
    # the kernels' SASS beside it, to count a step's instructions
    CUOBJ=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump 2>/dev/null | head -1)
    obj=$(find build-gpu -name 'scan.cu.o' | head -1)
    [ -n "$CUOBJ" ] && [ -n "$obj" ] && "$CUOBJ" -sass "$obj" | gzip >"$OUT/scan_sass.txt.gz"
    ;;
step)
    [ -x build-gpu/bench/bench_audio ] || bash scripts/gpu_check.sh build >/dev/null 2>&1
    cmake --build build-gpu --target bench_audio >/dev/null || exit 1
    SB=${2:-1}
    build-gpu/bench/bench_audio --device cuda --step-only --batch "$SB"
    # warm-up (64 steps) and the first steps of the timed loop skipped
    timeout 300 "$NCU" --launch-skip 1500 --launch-count 600 --metrics gpu__time_duration.sum \
        --cache-control none --clock-control none --csv --page raw build-gpu/bench/bench_audio --device cuda --step-only --batch "$SB" --quick \
        >"$OUT/ncu_step.csv" 2>"$OUT/ncu_step.err"
    echo "ncu rc=$?"
    ncu_sum "$OUT/ncu_step.csv"
    ;;
gen)
    SH=${2:-130m} GB=${3:-1} CNT=${4:-600} GW=${5:-}
    WA=()
    [ -n "$GW" ] && WA=(--weights "$GW")
    mkdir -p build-gpu
    [ -f build-gpu/build.ninja ] || bash scripts/gpu_check.sh build >/dev/null 2>&1
    cmake --build build-gpu --target bench_generate >/dev/null || exit 1
    build-gpu/bench/bench_generate --device cuda --shape "$SH" --batch "$GB" "${WA[@]}" --tokens 128
    timeout 240 "$NCU" --profile-from-start off --launch-count "$CNT" --metrics gpu__time_duration.sum \
        --cache-control none --clock-control none --csv --page raw \
        build-gpu/bench/bench_generate --device cuda --shape "$SH" --batch "$GB" "${WA[@]}" --tokens 64 \
        >"$OUT/ncu_gen_${SH}_$GB$GW.csv" 2>"$OUT/ncu_gen_${SH}_$GB$GW.err"
    echo "ncu rc=$?"
    ncu_sum "$OUT/ncu_gen_${SH}_$GB$GW.csv"
    NSYS=$(command -v nsys || ls /opt/nvidia/nsight-systems/*/bin/nsys /usr/local/cuda/bin/nsys 2>/dev/null | head -1)
    if [ -n "$NSYS" ]; then
        timeout 120 "$NSYS" profile -o "/tmp/nsys_gen" --force-overwrite true --cuda-graph-trace node -t cuda --capture-range cudaProfilerApi \
            build-gpu/bench/bench_generate --device cuda --shape "$SH" --batch "$GB" "${WA[@]}" --tokens 256 >/dev/null 2>&1
        timeout 60 "$NSYS" stats -r cuda_gpu_kern_sum -f csv /tmp/nsys_gen.nsys-rep >"$OUT/nsys_gen_${SH}_$GB$GW.txt" 2>&1
        echo "nsys rc=$?"
        head -25 "$OUT/nsys_gen_${SH}_$GB$GW.txt"
    else
        echo "no nsys here"
    fi
    ;;
train)
    TL=${2:-131072} TP=${3:-fp32}
    mkdir -p build-gpu
    [ -f build-gpu/build.ninja ] || bash scripts/gpu_check.sh build >/dev/null 2>&1
    cmake --build build-gpu --target bench_gpu >/dev/null || exit 1
    timeout 300 "$NCU" --profile-from-start off --metrics gpu__time_duration.sum \
        --cache-control none --clock-control none --csv --page raw \
        build-gpu/bench/bench_gpu --train "$TL" "$TP" >"$OUT/ncu_train_${TL}_$TP.csv" 2>"$OUT/ncu_train_${TL}_$TP.err"
    echo "ncu rc=$?"
    ncu_sum "$OUT/ncu_train_${TL}_$TP.csv" | head -40
    ;;
*)
    echo "usage: $0 [scan|step|gen SHAPE B [COUNT]|train L PREC]" >&2
    exit 2
    ;;
esac
