# Debian packages carried to a lent GPU machine, which has no network: .deps/
# (cmocka, cJSON, htslib, libsndfile, pkg-config, ...; scripts/gpu_check.sh)
# and .deps/mpi/ (Open MPI, for scripts/gpu_dist.sh where the machine has no
# mpirun). They are unpacked with dpkg -x into a prefix, never into /.
# Sourced, not run:
#
#   source scripts/deps.sh
#   deps_unpack PREFIX DEB...   unpack; 1 when a package failed; sets DEPS_UNPACKED
#                               (DEPS_KEEP: a regex of library names always kept)
#   deps_env PREFIX             compilers, CMake, pkg-config and the loader look there
#   deps_mpi PREFIX             Open MPI from PREFIX (after deps_unpack of .deps/mpi)
#   deps_runtime                the loader looks in $DEPS_PREFIX (/opt/deps) where
#                               gpu_check.sh unpacked there; nothing elsewhere
#   src_fingerprint             12 hex digits naming the sources of the tree here
#   trial_bin WHO NAME          bench/NAME as gpu_trial.sh built it: WHO base (this tree)
#                               or a trial's name (/tmp/trial_src_WHO)

deps_unpack() {
    local prefix=$1 rc=0 n=0 deb
    shift
    mkdir -p "$prefix"
    for deb in "$@"; do
        [ -f "$deb" ] || continue
        if dpkg -x "$deb" "$prefix"; then n=$((n + 1)); else
            echo "dpkg -x $deb failed"
            rc=1
        fi
    done
    echo "unpacked $n packages into $prefix"
    DEPS_UNPACKED=$n
    # Shared libraries the machine already has stay the machine's: only the
    # missing ones come from the packages, so nothing of the system's is
    # shadowed. DEPS_KEEP names those that must stay together (Open MPI's
    # libraries with its mpirun, whatever else the machine holds).
    local so kept=0 pruned=0
    for so in "$prefix"/usr/lib/x86_64-linux-gnu/lib*.so.* "$prefix"/lib/x86_64-linux-gnu/lib*.so.*; do
        [ -e "$so" ] || continue
        if [ -n "${DEPS_KEEP:-}" ] && [[ $(basename "$so") =~ $DEPS_KEEP ]]; then
            kept=$((kept + 1))
        elif ldconfig -p 2>/dev/null | grep -qE "^[[:space:]]+$(basename "$so") "; then
            rm -f "$so"
            pruned=$((pruned + 1))
        else kept=$((kept + 1)); fi
    done
    echo "shared libraries from the packages: $kept used, $pruned left to the system's copies"
    # pkg-config files name /usr: point them at the prefix (once: the
    # rewritten ones no longer match)
    find "$prefix" -name '*.pc' -path '*pkgconfig*' -exec sed -i "s|=/usr|=$prefix/usr|" {} +
    return $rc
}

deps_env() {
    local p=$1
    export CMAKE_PREFIX_PATH="$p/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    export CPATH="$p/usr/include${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$p/usr/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$p/usr/lib/x86_64-linux-gnu:$p/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PKG_CONFIG_PATH="$p/usr/lib/x86_64-linux-gnu/pkgconfig:$p/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    command -v pkg-config >/dev/null || export PATH="$PATH:$p/usr/bin"
}

# Where the TTS packages of .deps-tts (fetch_deps.sh tts) keep the engines'
# libraries once unpacked into a prefix: libpulse0's libpulsecommon in a
# subfolder (found through a RUNPATH naming /usr), bookworm's libdbus,
# libsystemd, zlib, ... under /lib. fetch_deps.sh checks the engines'
# libraries are found there; gpu_sc09.sh puts them on the loader path.
DEPS_TTS_LIBDIRS="usr/lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu/pulseaudio lib/x86_64-linux-gnu"

# For the scripts that run the tools gpu_check.sh built on a lent machine:
# their libraries (htslib, libsndfile, ...) are in its prefix, not the system
deps_runtime() {
    local p=${DEPS_PREFIX:-/opt/deps}
    [ -d "$p/usr/lib/x86_64-linux-gnu" ] && deps_env "$p"
    return 0
}

# Debian's packages reach mpirun and mpicc through update-alternatives links
# that dpkg -x does not make: the .openmpi names are used. Open MPI finds its
# components and help files under OPAL_PREFIX; PMIx (a separate library)
# its plugins through the component path. Sets MPIRUN and MPI_CMAKE (the
# cmake flags that name this MPI).
deps_mpi() {
    local p=$1 l=$1/usr/lib/x86_64-linux-gnu
    export OPAL_PREFIX="$p/usr"
    export PATH="$p/usr/bin:$PATH"
    export LD_LIBRARY_PATH="$l:$l/openmpi/lib:$l/pmix2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PMIX_MCA_mca_base_component_path="$l/pmix2/lib/pmix"
    MPIRUN="$p/usr/bin/mpirun.openmpi"
    MPI_CMAKE="-DMPI_C_COMPILER=$p/usr/bin/mpicc.openmpi -DMPIEXEC_EXECUTABLE=$MPIRUN"
}

# A fingerprint of the sources a build compiles (C, CUDA, headers, CMake
# lists): the device machine's copy of the tree keeps an older .git, so its
# `git rev-parse HEAD` names the checkout's first commit, not what was built.
# Compare with the same function run here.
src_fingerprint() {
    find CMakeLists.txt libmamba apps tests bench -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' \
        -o -name '*.cuh' -o -name CMakeLists.txt \) -print0 2>/dev/null | sort -z | xargs -0 sha1sum | sha1sum | cut -c1-12
}

trial_bin() {
    if [ "$1" = base ]; then echo "build-gpu/bench/$2"; else echo "/tmp/trial_src_$1/build-gpu/bench/$2"; fi
}
