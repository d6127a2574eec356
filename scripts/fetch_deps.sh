#!/usr/bin/env bash
# Fills .deps/ with the Debian packages a lent GPU machine lacks (it has no
# network; scripts/deps.sh unpacks them into a prefix there, never into /):
# the build's libraries (cmocka, cJSON, htslib, libsndfile, libsamplerate),
# what their shared libraries load that such a machine may not have, and
# pkg-config. Run here, on a Debian machine with apt, before the first
# `bash scripts/gpu_check.sh` of a session; the packages total ~12 MB.
#
#   bash scripts/fetch_deps.sh tts   the TTS engines and sox that
#                                    data/audio/make_sc09.sh runs, into
#                                    .deps-tts/ (~33 MB; scripts/gpu_sc09.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = tts ]; then
    mkdir -p .deps-tts
    cd .deps-tts
    # the engines and everything they load (libpulse0's closure too: a
    # lent machine's image had none of it); deps.sh keeps only the
    # libraries the machine has not
    apt-get download espeak-ng espeak-ng-data libespeak-ng1 libpcaudio0 libsonic0 libpulse0 libasyncns0 \
        libx11-xcb1 libasound2 libasound2-data flite libflite1 sox libsox3 libsox-fmt-base libgsm1 libltdl7 \
        libmagic1 libmagic-mgc libpng16-16 libgomp1 libncursesw6 libvorbisfile3 libwavpack1 libopencore-amrnb0 \
        libopencore-amrwb0 festival festlex-cmu festlex-poslex festvox-kallpc16k festvox-kdlpc16k \
        festvox-us-slt-hts libestools2.5 \
        libsystemd0 libcap2 libgcrypt20 libgpg-error0 liblz4-1 libzstd1 liblzma5 libdbus-1-3 libx11-6 \
        libx11-data libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 libbz2-1.0 libtinfo6 zlib1g libsndfile1 \
        libflac12 libmp3lame0 libmpg123-0 libogg0 libopus0 libvorbis0a libvorbisenc2 >/dev/null
    ls *.deb | wc -l | xargs echo ".deps-tts: packages"
    du -sh . | cut -f1 | xargs echo ".deps-tts: size"
    # every library the engines load, followed through DT_NEEDED, must be in
    # these packages or be glibc / libstdc++ (all a lent machine is sure to
    # have): a gap here is an engine that cannot start there
    # shellcheck source=deps.sh
    source ../scripts/deps.sh
    t=$(mktemp -d)
    trap 'rm -rf "$t"' EXIT
    for d in *.deb; do dpkg -x "$d" "$t"; done
    queue=("$t/usr/bin/espeak-ng" "$t/usr/bin/flite" "$t/usr/bin/festival" "$t/usr/bin/sox")
    seen=" " missing=""
    while [ ${#queue[@]} -gt 0 ]; do
        f=${queue[0]}
        queue=("${queue[@]:1}")
        for so in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            case "$so" in libc.so.* | libm.so.* | libstdc++.so.* | libgcc_s.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux*) continue ;; esac
            case "$seen" in *" $so "*) continue ;; esac
            seen="$seen$so "
            hit=""
            for dir in $DEPS_TTS_LIBDIRS; do
                [ -e "$t/$dir/$so" ] && hit="$t/$dir/$so" && break
            done
            if [ -n "$hit" ]; then queue+=("$hit"); else missing="$missing $so"; fi
        done
    done
    if [ -n "$missing" ]; then
        echo "fetch_deps.sh: the engines load libraries no package here has:$missing" >&2
        exit 1
    fi
    echo ".deps-tts: the engines' $(echo $seen | wc -w) libraries all in the packages"
    exit 0
fi
mkdir -p .deps
cd .deps
PKGS=(
    libcmocka0 libcmocka-dev libcjson1 libcjson-dev
    libhts3 libhts-dev libhtscodecs2 libdeflate0 libcurl3-gnutls
    libsndfile1 libsndfile1-dev libflac12 libmp3lame0 libmpg123-0 libogg0 libopus0 libvorbis0a libvorbisenc2
    libsamplerate0 libsamplerate0-dev
    pkg-config pkgconf pkgconf-bin libpkgconf3
    # the .pc files htslib's and sndfile's name under Requires.private:
    # pkg-config refuses a package whose requirements it cannot find
    liblzma-dev zlib1g-dev libflac-dev libogg-dev libvorbis-dev libopus-dev libmpg123-dev
)
apt-get download "${PKGS[@]}" >/dev/null
ls *.deb | wc -l | xargs echo ".deps: packages"
du -sh . | cut -f1 | xargs echo ".deps: size"
