#!/usr/bin/env bash
# Fills .deps/ with the Debian packages a lent GPU machine lacks (it has no
# network; scripts/deps.sh unpacks them into a prefix there, never into /):
# the build's libraries (cmocka, cJSON, htslib, libsndfile, libsamplerate),
# what their shared libraries load that such a machine may not have, and
# pkg-config. Run here, on a Debian machine with apt, before the first
# `bash scripts/gpu_check.sh` of a session; the packages total ~12 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
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
