# shellcheck shell=bash
# Helpers for a lent GPU's session scripts (source it from the repository root; carry .deps):
#   lean_env                   CUDA on PATH, the .deps packages unpacked into /opt/deps and used
#   lean_copy DIR              a copy of this tree in DIR (no builds, .deps or .git)
#   lean_build DIR TARGET...   configure DIR/build-lean (CUDA, sm_90, no apps) and build only
#                              TARGET...: a trial's suites or benchmark in well under a minute on
#                              16 cores, where scripts/gpu_check.sh builds everything
#   lean_start TARGET...       lean_env, lean_build of this tree with its time, then the
#                              runtime's library path: a one-tree session script's start
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

lean_start() {
    local s
    lean_env
    s=$(date +%s)
    lean_build "$PWD" "$@"
    echo "== built in $(($(date +%s) - s)) s"
    deps_runtime
}
