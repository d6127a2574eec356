#!/usr/bin/env bash
# GPU validation and benchmark run, for a lent CUDA machine (H100) that has
# nvcc, CMake, ninja, cuBLAS and compute-sanitizer but no cmocka/cJSON and no
# network. Run from anywhere inside the repository, with .deps/ carried:
#
#   bash scripts/gpu_check.sh          full: build, GPU + CPU suites, sanitizers, benchmark
#   bash scripts/gpu_check.sh quick    no sanitizers, bench_gpu --quick
#   bash scripts/gpu_check.sh bench    no sanitizers, full benchmark
#   bash scripts/gpu_check.sh build    env, configure, build and the GPU suites only
#
# Stages (each has a time cap; a failing stage is recorded and the run goes on):
#   env        unpack .deps/*.deb (dpkg -x) into $DEPS_PREFIX (default /opt/deps),
#              print the GPU, toolchain and where OpenBLAS lives
#   configure  cmake -G Ninja, Release, sm_90, MAMBA_CUDA=ON, MAMBA_APPS=ON  (60 s)
#   build      all targets, all cores, keep going past errors            (240 s)
#   test_gpu   ctest -L gpu                                              (120 s)
#   test_cpu   ctest -L cpu -LE mpi -E test_learn (the data-parallel suites
#              run in gpu_dist.sh)                                       (180 s)
#   memcheck   each tests/gpu_test_* under compute-sanitizer memcheck    (120 s)
#   racecheck  each tests/gpu_test_* under compute-sanitizer racecheck   (300 s)
#   bench      build-gpu/bench/bench_gpu [--quick]                       (150 s)
#   dna        scripts/gpu_dna.sh: mamba-dna pretrain (1M context), score,
#              classify on the genome set, when data/genomes/out is here (330 s)
#   audio      scripts/gpu_audio.sh: bench_audio on the GPU, mamba-audio
#              train / generate / eval on the bundled digits             (200 s)
# A whole run stays inside $GPU_CHECK_BUDGET seconds (default 540): a stage
# gets at most what is left, less what the benchmark needs, and is SKIPPED
# when too little is left.
#
# Under the sanitizers the GPU suites run with MB_GPU_TEST_SMALL=1 in their
# environment: a suite may read it and shrink its problem sizes (the
# sanitizers slow kernels 10-100x). Exit code 77 from a suite means "no GPU".
# A suite too long for one call (racecheck of gpu_test_model takes several
# minutes) runs in parts by MB_TEST_FILTER, e.g. 'test_bidir*', 'test_step*',
# 'test_sashimi*', 'test_c*', 'test_lm*', 'test_recurrent' (cmocka's * and ?;
# tests/testutil.h).
#
# GPU_CMAKE_ARGS adds to the configure line (e.g. -DCMAKE_CUDA_FLAGS=-lineinfo
# for Nsight Compute's source view).
#
# Output: everything goes to stdout and $OUT/gpu_check.log; each stage also
# to its own log (1_env.log .. 8_audio.log; at the end 1-5 are packed into
# stage_logs.tar.gz), gpu_dna.sh's metrics to dna_metrics.jsonl, and the
# closing table to $OUT/summary.txt. The last lines printed are the summary
# table (stage, status, seconds). Exit 0 when no stage failed or timed out.
set -uo pipefail

MODE=${1:-full}
case "$MODE" in
full | quick | bench | build) ;;
*)
    echo "usage: $0 [quick|bench|build]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
DEPS_PREFIX=${DEPS_PREFIX:-/opt/deps}
BUILD=${BUILD_DIR:-build-gpu}
BUDGET=${GPU_CHECK_BUDGET:-540}
BENCH_CAP=150
# what the stages before the benchmark leave it; build mode runs none
RES=$BENCH_CAP
[ "$MODE" = build ] && RES=0
NPROC=$(nproc 2>/dev/null || echo 4)
export PATH="$PATH:/usr/local/cuda/bin"
BLAS_LIST=$(mktemp /tmp/gpu_check_blas.XXXXXX)
trap 'rm -f "$BLAS_LIST" "$BLAS_LIST.bench"' EXIT

# now, elapsed, record, stage and stages_summary: scripts/stages.sh
source scripts/stages.sh

# Every tests/gpu_test_* binary under one compute-sanitizer tool, each with
# what is left before STAGE_DEADLINE. 0: all clean; 77: nothing ran (none
# built, or every suite said "no GPU").
sanitize_all() {
    local tool=$1 san bins=() fails=0 skips=0
    san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
        /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
    if [ -z "$san" ]; then
        echo "compute-sanitizer not found"
        return 1
    fi
    for b in "$BUILD"/tests/gpu_test_*; do
        [ -x "$b" ] && [ -f "$b" ] && bins+=("$b")
    done
    if [ ${#bins[@]} -eq 0 ]; then
        echo "no $BUILD/tests/gpu_test_* binaries"
        return 77
    fi
    for b in "${bins[@]}"; do
        local left=$((STAGE_DEADLINE - $(date +%s)))
        if ((left < 5)); then
            echo "--- $tool $(basename "$b"): NOT RUN (stage time used up)"
            fails=$((fails + 1))
            continue
        fi
        echo "--- $tool $(basename "$b") (timeout ${left}s, MB_GPU_TEST_SMALL=1)"
        local t0=$SECONDS rc
        (cd "$BUILD/tests" && MB_GPU_TEST_SMALL=1 timeout -k 5 "$left" \
            "$san" --tool "$tool" --error-exitcode 1 --print-limit 30 "./$(basename "$b")")
        rc=$?
        case $rc in
        0) echo "--- $tool $(basename "$b"): clean ($((SECONDS - t0))s)" ;;
        77) echo "--- $tool $(basename "$b"): skipped (no GPU)" && skips=$((skips + 1)) ;;
        124 | 137) echo "--- $tool $(basename "$b"): TIMEOUT" && fails=$((fails + 1)) ;;
        *) echo "--- $tool $(basename "$b"): FAILED rc=$rc" && fails=$((fails + 1)) ;;
        esac
    done
    echo "--- $tool: ${#bins[@]} binaries, $fails failed or not run, $skips skipped"
    [ $fails -eq 0 ] || return 1
    [ $skips -lt ${#bins[@]} ] || return 77
}
export -f sanitize_all
export BUILD

env_stage() {
    echo "gpu_check: mode $MODE, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host $(hostname), $NPROC cores"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo 'unknown (no .git)') (on a lent machine the copy's .git may be older than its files); sources $(src_fingerprint)"
    local rc=0
    # cmocka and cJSON for the build: unpacked, never installed into /
    deps_unpack "$DEPS_PREFIX" .deps/*.deb || rc=1
    command -v pkg-config >/dev/null || echo "pkg-config: from .deps ($DEPS_PREFIX/usr/bin)"
    [ "$DEPS_UNPACKED" -gt 0 ] || {
        echo "no .deps/*.deb: was .deps carried?"
        rc=1
    }
    ls "$DEPS_PREFIX/usr/include/cmocka.h" "$DEPS_PREFIX/usr/include/cjson/cJSON.h" \
        "$DEPS_PREFIX"/usr/lib/x86_64-linux-gnu/lib{cmocka,cjson}.so 2>&1 || rc=1

    echo "--- nvidia-smi"
    nvidia-smi 2>&1 || rc=1
    nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,clocks.mem,temperature.gpu,power.draw \
        --format=csv 2>&1
    echo "--- nvcc"
    nvcc --version 2>&1 || rc=1
    echo "--- cmake, ninja, cc"
    cmake --version 2>&1 | head -1 || rc=1
    echo "ninja $(ninja --version 2>&1)"
    cc --version 2>&1 | head -1
    echo "--- compute-sanitizer"
    (command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null ||
        echo "not found") 2>&1
    echo "--- OpenBLAS"
    ldconfig -p 2>/dev/null | grep -i -E 'openblas|libcblas' || echo "ldconfig: no OpenBLAS"
    # the usual places, not Python's packages (their OpenBLAS builds rename the symbols)
    timeout 30 find /usr/include /usr/local/include /usr/lib /usr/lib64 /usr/local/lib /opt -xdev \
        \( -name site-packages -o -name dist-packages -o -path '/usr/local/cuda*' -o \
        -path "$DEPS_PREFIX" \) -prune -o \( -name cblas.h -o -name 'libopenblas*.so*' \) -print \
        2>/dev/null >"$BLAS_LIST"
    head -20 "$BLAS_LIST"
    return $rc
}

# OpenBLAS for the CPU GEMMs, when the image has its cblas.h and library
# somewhere CMake would not look; otherwise CMake searches as usual and falls
# back to the built-in GEMMs.
openblas_args() {
    local h l
    h=$(grep '/cblas\.h$' "$BLAS_LIST" 2>/dev/null | while read -r f; do
        grep -q openblas_get_parallel "$f" && echo "$f"
    done | head -1)
    l=$(ldconfig -p 2>/dev/null | awk '/libopenblas\.so( |\.0 )/ { print $NF }' | head -1)
    [ -z "$l" ] && l=$(grep -E '/libopenblas\.so(\.0)?$' "$BLAS_LIST" 2>/dev/null | head -1)
    if [ -n "$h" ] && [ -n "$l" ]; then
        echo "-DMB_CBLAS_INCLUDE=$(dirname "$h") -DMB_OPENBLAS_LIB=$l"
    fi
}

main() {
    stage_func env 1_env.log env_stage

    deps_env "$DEPS_PREFIX"
    local blas
    blas=$(openblas_args)
    echo "OpenBLAS for cmake: ${blas:-left to the CMake search}" | tee -a "$OUT/2_build.log"
    if ! ls libmamba/src/*/*.cu >/dev/null 2>&1; then
        echo "WARNING: no libmamba/src/*/*.cu in this tree: the build is CPU-only, no GPU suite" |
            tee -a "$OUT/2_build.log"
    fi

    local cfg="cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90"
    cfg+=" -DMAMBA_CUDA=ON -DMAMBA_APPS=ON $blas ${GPU_CMAKE_ARGS:-}"
    # MB_HAVE_CUDA is a compile definition of the library's object files;
    # when it does not reach bench/ and tests/ (nothing links mamba_obj),
    # bench_gpu and the GPU suites would build as their no-CUDA stubs:
    # detect that and add it for every C file.
    local fix='if ninja -C '$BUILD' -t commands bench/bench_gpu 2>/dev/null | grep -q "\.cu\.o"; then
        if ! ninja -C '$BUILD' -t commands bench/bench_gpu | grep "bench_gpu\.c" | grep -q MB_HAVE_CUDA; then
            echo "WARNING: MB_HAVE_CUDA does not reach bench/ and tests/ (libmamba/CMakeLists.txt sets it on mamba_obj only); reconfiguring with CMAKE_C_FLAGS=-DMB_HAVE_CUDA=1"
            '"$cfg"' -DCMAKE_C_FLAGS=-DMB_HAVE_CUDA=1 >/dev/null || exit 1
        fi
    fi'
    stage configure 60 $((RES + 60)) 2_build.log "$cfg && $fix"
    stage build 240 $((RES + 30)) 2_build.log \
        "cmake --build $BUILD -j $NPROC -- -k 0 && { ls -l $BUILD/bench/bench_gpu $BUILD/tests/gpu_test_* 2>&1 || true; }"
    stage test_gpu 120 "$RES" 3_test_gpu.log \
        "ctest --test-dir $BUILD -L gpu --output-on-failure --no-tests=error --stop-time \"\$(date -d @\$((STAGE_DEADLINE - 3)) +%H:%M:%S)\""
    if [ "$MODE" = build ]; then
        record test_cpu "SKIP(build)" 0 "$(elapsed)"
    else
        stage test_cpu 180 "$RES" 4_test_cpu.log \
            "ctest --test-dir $BUILD -L cpu -LE mpi -E test_learn --output-on-failure --no-tests=error --stop-time \"\$(date -d @\$((STAGE_DEADLINE - 3)) +%H:%M:%S)\""
    fi
    # a bench_gpu built without CUDA prints so and exits 0: count that as a failure
    local bench qarg=""
    [ "$MODE" = quick ] && qarg=--quick
    bench="set -o pipefail; $BUILD/bench/bench_gpu $qarg"
    bench+=" | tee $BLAS_LIST.bench && ! grep -q 'built without CUDA' $BLAS_LIST.bench"
    if [ "$MODE" != full ]; then
        record memcheck "SKIP($MODE)" 0 "$(elapsed)"
        record racecheck "SKIP($MODE)" 0 "$(elapsed)"
    else
        stage memcheck 120 "$RES" 5_sanitizer.log "sanitize_all memcheck"
        stage racecheck 300 "$RES" 5_sanitizer.log "sanitize_all racecheck"
    fi
    [ "$MODE" = build ] || stage bench "$BENCH_CAP" 0 6_bench.log "$bench"
    # the tools on the GPU, when the genome set was carried along
    if [ -f data/genomes/out/manifest.tsv ] && [ "$MODE" != quick ] && [ "$MODE" != build ]; then
        stage dna 330 0 7_dna.log "bash scripts/gpu_dna.sh $BUILD"
    else
        record dna "SKIP(no genomes)" 0 "$(elapsed)"
    fi
    if [ "$MODE" != quick ] && [ "$MODE" != build ]; then
        stage audio 200 0 8_audio.log "bash scripts/gpu_audio.sh $BUILD"
    fi

    # keep the stage logs under the 16 MiB limit of a returned file (gpu_check.log
    # is still open here; what goes into it is bounded: sanitizers print 30 errors)
    for f in "$OUT"/[0-9]_*.log; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt $((15 << 20)) ] && truncate -s 15M "$f"
    done
    # a lent machine returns few files: the early stages' logs (all of it is
    # in gpu_check.log too) go into one archive; bench and dna stay readable
    (cd "$OUT" && set -- [1-5]_*.log && [ -f "$1" ] && tar czf stage_logs.tar.gz "$@" && rm -f "$@")

    stages_summary "gpu_check summary: mode $MODE" gpu_check
}

main 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
