# shellcheck shell=bash
# Helpers for a lent GPU's session scripts (source it from the repository root; carry .deps):
#   lean_env                   CUDA on PATH, the .deps packages unpacked into /opt/deps and used
#   lean_copy DIR              a copy of this tree in DIR (no builds, .deps or .git)
#   lean_build DIR TARGET...   configure DIR/build-lean (CUDA, sm_90, no apps) and build only
#                              TARGET...: a trial's suites or benchmark in well under a minute on
#                              16 cores, where scripts/gpu_check.sh builds everything
#   lean_ready                 after lean_build(s) in the background: waits for them, says
#                              when, names the GPU and sets the runtime's library path
#   lean_start TARGET...       lean_env, lean_build of this tree, lean_ready: a one-tree
#                              session script's start
# and for a session script's steps (the clock starts when this file is sourced):
#   el                         seconds since then; lean_before S: whether el is under S
#   lean_patched DIR PATCH [-R]  lean_copy DIR with PATCH applied (-R: reversed, the tree before
#                              a merged trial)
#   lean_broken DIR FILE EXPR [PATCH]  lean_copy DIR (PATCH applied first) with sed EXPR on FILE,
#                              a break by hand whose suite must fail; says how many lines it
#                              changed (0: the break did not take)
#   lean_suite DIR TEST [FILTER [MORE]]  DIR's lean TEST (MB_TEST_FILTER=FILTER): its summary
#                              lines and those matching MORE (the last LEAN_TAIL of them, 8)
#   lean_racecheck DIR TEST [FILTER]  the same under compute-sanitizer racecheck, small shapes
#   lean_rounds END TIMEOUT TREES BIN ARG...  LEAN_ROUNDS (2) rounds of DIR/build-lean/bench/BIN
#                              ARG for each ARG and each DIR of TREES (alternated), while el is
#                              under END - TIMEOUT: the table rows
#   lean_on_h200               whether the GPU is an H200
#   lean_cluster_suites DIR    the cluster step's tests in DIR: gpu_test_ops test_stack_step, and
#                              gpu_test_model's *cluster* where DIR built that suite
#   lean_stk_prof DIR ROWS...  DIR's bench_generate (built with bench/trials/stk-prof.patch) on the
#                              cluster step at each ROWS of the DNA model: its last cycles line, its row
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

lean_env() {
    export PATH="$PATH:/usr/local/cuda/bin"
    deps_unpack /opt/deps .deps/*.deb >/dev/null
    deps_env /opt/deps
}

lean_copy() {
    rm -rf "$1" && mkdir -p "$1"
    tar -c --exclude='./build*' --exclude=./.deps --exclude=./.git --exclude=./gpu-check-out . | tar -x -C "$1"
}

lean_build() {
    local d=$1 log
    shift
    log=/tmp/lean_$(basename "$d").log
    (cd "$d" && cmake -S . -B build-lean -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DMAMBA_CUDA=ON -DMAMBA_APPS=OFF -DCMAKE_C_FLAGS=-DMB_HAVE_CUDA=1 >"$log" 2>&1 &&
        ninja -C build-lean "$@" >>"$log" 2>&1) ||
        { echo "$d: build FAILED"; grep -E "error" "$log" | head; tail -5 "$log"; }
}

lean_ready() {
    wait
    echo "== built at $(el) s"
    nvidia-smi --query-gpu=name --format=csv,noheader
    deps_runtime
}

lean_start() {
    lean_env
    lean_build "$PWD" "$@"
    lean_ready
}

lean_t0=$(date +%s)
el() { echo $(($(date +%s) - lean_t0)); }
lean_before() { [ "$(el)" -lt "$1" ]; }

lean_patched() {
    lean_copy "$1" && patch -s ${3:-} -d "$1" -p1 <"$2" || echo "$1: patch ${3:-} $2 FAILED"
}

lean_broken() {
    local d=$1 f=$2 e=$3
    if [ -n "${4:-}" ]; then lean_patched "$d" "$4"; else lean_copy "$d"; fi
    cp "$d/$f" /tmp/lean_broken_was && sed -i "$e" "$d/$f"
    echo "== $d: the break changed $(diff /tmp/lean_broken_was "$d/$f" | grep -c '^>') line(s) of $f"
}

lean_suite() {
    echo "== $(basename "$1"): $2${3:+ ($3)} ($(el) s)"
    MB_TEST_FILTER=${3:-} timeout "${LEAN_TIMEOUT:-150}" "$1/build-lean/tests/$2" 2>&1 |
        grep -E "^\[  (PASSED|FAILED)|FAILED  \]${4:+|$4}" | tail -"${LEAN_TAIL:-8}"
}

lean_racecheck() {
    echo "== $(basename "$1"): racecheck $2${3:+ ($3)}, small shapes ($(el) s)"
    MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=${3:-} timeout 90 compute-sanitizer --tool racecheck \
        "$1/build-lean/tests/$2" 2>&1 | grep -E "RACECHECK SUMMARY|^\[  (PASSED|FAILED)" | tail -3
}

lean_memcheck() {
    echo "== $(basename "$1"): memcheck $2${3:+ ($3)}, small shapes ($(el) s)"
    MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=${3:-} timeout 60 compute-sanitizer --tool memcheck \
        "$1/build-lean/tests/$2" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
}

lean_rounds() {
    local end=$1 to=$2 trees=$3 bin=$4 r a t
    shift 4
    for r in $(seq "${LEAN_ROUNDS:-2}"); do
        for a in "$@"; do
            for t in $trees; do
                lean_before $((end - to)) || return 0
                echo "== round $r, $(basename "$t"): $bin $a ($(el) s)"
                # shellcheck disable=SC2086 # ARG is the benchmark's words
                timeout "$to" "$t/build-lean/bench/$bin" $a | grep -E "^\| *[0-9(]|^\| dna|sample|prefill"
            done
        done
    done
}

lean_on_h200() { nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; }

lean_cluster_suites() {
    lean_suite "$1" gpu_test_ops test_stack_step "stack_step"
    [ -x "$1/build-lean/tests/gpu_test_model" ] && lean_suite "$1" gpu_test_model '*cluster*'
    return 0
}

lean_stk_prof() {
    local d=$1 r
    shift
    echo "== $(basename "$d") (stk-prof): cycles a layer ($(el) s)"
    for r in "$@"; do
        MB_CUDA_STEP=cluster timeout 40 "$d/build-lean/bench/bench_generate" --device cuda --shape dna --batch "$r" \
            --tokens 1024 >/tmp/lean_stk_prof.txt
        grep stk_prof /tmp/lean_stk_prof.txt | tail -1
        grep -E "^\| dna" /tmp/lean_stk_prof.txt | head -1
    done
}
