#!/usr/bin/env bash
# data/audio/make_sc09.sh --tiny (the spoken-digit corpus, a small subset):
# every clip is a 16 kHz mono 16-bit WAV of 16000 samples, where the
# manifest says (split and digit folders); the manifest lists every clip
# once and nothing else is written; every digit is in each split; no
# speaker is in two splits; a rebuild (other --jobs) gives the same bytes;
# an existing corpus is refused without --force and left as it was, and
# replaced with it; a bad option exits 2 and writes nothing; an interrupted
# build leaves nothing behind. espeak-ng and sox must be installed (CI
# installs them): without them the test fails.
#   tests/sc09_script.sh REPO_ROOT
set -euo pipefail
ROOT=$1
S="$ROOT/data/audio/make_sc09.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
for tool in espeak-ng sox soxi; do
    command -v "$tool" >/dev/null || fail "$tool not found (Debian: apt-get install espeak-ng sox)"
done
sums() { (cd "$1" && find . -type f | sort | xargs sha256sum); }

# ---- a build ----
bash "$S" --tiny --out "$T/a" 2>"$T/err" || fail "make_sc09.sh --tiny: $(cat "$T/err")"
A="$T/a"
M="$A/manifest.tsv"
[ -f "$M" ] && [ -f "$A/voices.tsv" ] || fail "no manifest.tsv or voices.tsv"
[ ! -e "$A.tmp" ] || fail "$A.tmp left behind"
[ "$(head -1 "$M")" = "$(printf 'file\tdigit\tsplit\tengine\tvoice\tspeaker\ttake\tspeed\tpitch\tvolume\tsqueeze\tlength\toffset\tnoise\tsamples')" ] ||
    fail "manifest header: $(head -1 "$M")"
n=$(($(wc -l <"$M") - 1))
want=60
command -v flite >/dev/null && want=70 # 2 accents x 3 variants, + flite's kal
[ "$n" = "$want" ] || fail "$n clips in the manifest, want $want"
# the manifest's files are exactly the files there, each once
tail -n +2 "$M" | cut -f1 | sort >"$T/listed"
[ -z "$(uniq -d "$T/listed")" ] || fail "listed twice: $(uniq -d "$T/listed" | head -3)"
(cd "$A" && find . -type f ! -name manifest.tsv ! -name voices.tsv | sed 's|^\./||' | sort) >"$T/found"
cmp -s "$T/listed" "$T/found" || fail "manifest and files differ: $(diff "$T/listed" "$T/found" | grep '^[<>]' | head -3 | tr '\n' ' ')"
[ -z "$(find "$A" -mindepth 1 -type d ! -regex "$A/\(train\|valid\|test\)\(/\(zero\|one\|two\|three\|four\|five\|six\|seven\|eight\|nine\)\)?")" ] ||
    fail "other folders: $(find "$A" -mindepth 1 -type d | head -3)"
# each row: the file sits in its split and digit folder, ends in .wav, 16000 samples
awk -F'\t' 'NR > 1 && (index($1, $3 "/" $2 "/") != 1 || $1 !~ /\.wav$/ || $15 != 16000) { print; exit 1 }' "$M" >"$T/bad" ||
    fail "manifest row: $(cat "$T/bad")"
# every clip, as soxi reads it
for q in "t wav" "r 16000" "c 1" "b 16" "s 16000" "e Signed Integer PCM"; do
    got=$( (cd "$A" && xargs -a "$T/listed" soxi -"${q%% *}") | sort | uniq -c | awk '{ $1 = ""; sub(/^ /, ""); print }')
    [ "$got" = "${q#* }" ] || fail "soxi -${q%% *}: $(echo "$got" | tr '\n' ' '), want ${q#* } for every clip"
done
# not silent, not clipped: the peak is the manifest's volume (-3 to -18 dBFS)
f=$(sed -n 2p "$T/listed")
peak=$(sox "$A/$f" -n stat 2>&1 | awk '/^Maximum amplitude/ { x = $3 } /^Minimum amplitude/ { y = -$3 } END { print (x > y ? x : y) }')
awk -v p="$peak" 'BEGIN { exit !(p > 0.1 && p < 0.75) }' || fail "$f: peak $peak"
# every digit in each split, no speaker in two splits
for s in train valid test; do
    for d in zero one two three four five six seven eight nine; do
        awk -F'\t' -v s="$s" -v d="$d" '$3 == s && $2 == d { found = 1 } END { exit !found }' "$M" || fail "no $d in $s"
    done
done
twice=$(awk -F'\t' 'NR > 1 { print $6 "\t" $3 }' "$M" | sort -u | cut -f1 | uniq -d)
[ -z "$twice" ] || fail "speakers in two splits: $twice"
# voices.tsv: each of the manifest's speakers once, in its split
awk -F'\t' 'NR > 1 { print $6 "\t" $3 }' "$M" | sort -u >"$T/spk"
tail -n +2 "$A/voices.tsv" | cut -f1,2 | sort >"$T/spk2"
cmp -s "$T/spk" "$T/spk2" || fail "voices.tsv does not match the manifest's speakers: $(diff "$T/spk" "$T/spk2" | grep '^[<>]' | head -3 | tr '\n' ' ')"

# ---- the same bytes again, with other --jobs ----
sums "$A" >"$T/sums.a"
bash "$S" --tiny --jobs 1 --out "$T/b" 2>"$T/err" || fail "second build: $(cat "$T/err")"
sums "$T/b" >"$T/sums.b"
cmp -s "$T/sums.a" "$T/sums.b" || fail "a rebuild differs: $(diff "$T/sums.a" "$T/sums.b" | grep '^[<>]' | head -2 | tr '\n' ' ')"

# ---- an existing corpus: refused in one line and left as it was; --force replaces it ----
if bash "$S" --tiny --out "$A" 2>"$T/err"; then fail "an existing corpus was overwritten without --force"; fi
[ "$(wc -l <"$T/err")" = 1 ] && grep -q "not empty" "$T/err" || fail "refusal: $(cat "$T/err")"
[ "$(sums "$A")" = "$(cat "$T/sums.a")" ] || fail "the refused corpus changed"
[ ! -e "$A.tmp" ] || fail "$A.tmp left behind by the refusal"
echo stray >"$T/b/stray.txt"
bash "$S" --tiny --jobs 3 --force --out "$T/b" 2>"$T/err" || fail "--force: $(cat "$T/err")"
sums "$T/b" >"$T/sums.b"
cmp -s "$T/sums.a" "$T/sums.b" || fail "the --force rebuild differs (or kept an old file)"

# ---- bad options: exit 2, one line, nothing written ----
for args in "--bogus" "--takes x" "--jobs 0" "--noise loud" "--engines espeak-ng,nosuch" "--takes"; do
    rc=0
    # shellcheck disable=SC2086 # the options are words
    bash "$S" --tiny --out "$T/c" $args 2>"$T/err" || rc=$?
    [ "$rc" = 2 ] || fail "make_sc09.sh $args: exit $rc, want 2"
    [ "$(wc -l <"$T/err")" = 1 ] && grep -q '^make_sc09.sh: ' "$T/err" || fail "make_sc09.sh $args: $(cat "$T/err")"
    [ ! -e "$T/c" ] && [ ! -e "$T/c.tmp" ] || fail "make_sc09.sh $args wrote $T/c"
done

# ---- interrupted: nothing at OUT, no OUT.tmp ----
bash "$S" --tiny --jobs 1 --out "$T/d" 2>/dev/null &
pid=$!
for _ in $(seq 100); do
    [ -z "$(find "$T/d.tmp" -name '*.wav' 2>/dev/null | head -1)" ] || break
    sleep 0.05
done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" != 0 ] || fail "the interrupted build exited 0"
sleep 1
[ ! -e "$T/d" ] && [ ! -e "$T/d.tmp" ] || fail "an interrupted build left $(ls -d "$T"/d* | tr '\n' ' ')"
echo "sc09_script: $n clips checked (format, manifest, splits, a byte-identical rebuild, refusal, bad options, interruption)"
