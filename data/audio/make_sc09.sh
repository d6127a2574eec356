#!/usr/bin/env bash
# A spoken-digit corpus like SC09 ("zero" to "nine", 1 s clips, split by
# speaker), synthesized from Debian's TTS packages, since SC09 itself cannot
# be fetched here. Every clip is a 1.000 s, 16 kHz, mono, 16-bit WAV of
# exactly 16000 samples.
#
#   bash data/audio/make_sc09.sh [--out DIR] [--takes N] [--engines LIST]
#        [--noise DB] [--jobs N] [--tiny] [--force]
#
#   --out DIR      where the corpus goes (default data/audio/out/sc09,
#                  git-ignored); an existing non-empty DIR is refused
#                  without --force. The build goes to DIR.tmp, renamed to
#                  DIR at the end, so a failed or interrupted build never
#                  leaves a half corpus at DIR (nor touches an old one).
#   --takes N      takes of each (voice, digit), each with its own speed,
#                  pitch, volume and placement (default 2: 16320 clips)
#   --engines LIST all (default), or a comma list of espeak-ng, flite,
#                  festival. With all, a missing engine is an error.
#   --noise DB     mix pink noise (high-passed at 50 Hz) into every clip,
#                  its RMS DB dB below the word's peak (e.g. 30; within
#                  about 1.5 dB, since the mix is normalized as a whole),
#                  before the clip's volume is set; a different stretch of
#                  one fixed 60 s noise file per clip. Off by default.
#   --jobs N       clips made in parallel (default: nproc); the output is
#                  the same for any N
#   --force        replace an existing DIR (only once the new corpus is
#                  complete)
#   --tiny         a small set for CI: espeak-ng in 2 accents x 3 variants
#                  (one speaker per split) and flite's kal when flite is
#                  installed, 1 take: 70 clips
#
# Voices (fixed lists below; the script checks at start that each one is
# installed and fails in one line if not):
#   espeak-ng (package espeak-ng): 8 English accents (en-us, en-gb,
#     en-gb-scotland, en-gb-x-gbclan, en-gb-x-gbcwmd, en-gb-x-rp, en-029,
#     en-us-nyc) x its 101 voice variants (-v ACCENT+VARIANT): 808 voices.
#   flite (package flite): kal, kal16, awb, rms, slt (not awb_time, a
#     limited-domain voice that only says times).
#   festival (packages festival festvox-kallpc16k festvox-kdlpc16k
#     festvox-us-slt-hts): kal_diphone, ked_diphone, cmu_us_slt_arctic_hts.
#   MBROLA voices (espeak-ng's mb-* entries) and SVOX pico are not in
#   Debian main and are not used.
#
# Speakers and the split (no speaker in two splits): an espeak-ng variant
# changes the voice, the accent only the pronunciation, so a speaker is a
# set of variants, held out in every accent. Variants with the same formant
# table (the vocal tract; they differ in pitch, voicing, echo or synthesizer,
# e.g. iven..iven4, klatt..klatt6) are one speaker, and so are Andy and
# AnxiousAndy: 63 speakers. Splitting by variant count, 15 variants
# (14 speakers) are test, 10 (8 speakers) valid, 76 (41 speakers) train,
# chosen once by the md5 of the speaker name (groups larger than 3
# variants kept in train) and written out below. flite and festival voices
# of one speaker are one speaker: kal (kal, kal16, kal_diphone), slt (slt,
# cmu_us_slt_arctic_hts), awb train; ked valid; rms test.
#
# Each clip: the engine's output with its peak at -6 dBFS, then for flite
# and festival sox tempo (0.80-1.25) and pitch (-300..+300 cents), resampled
# to 16 kHz, silence trimmed at both ends (as make_digits.sh, but below 0.1%
# of full scale for espeak-ng, whose silence is digital zero, and 0.25% for
# flite and festival, whose recorded voices have a noise floor up to 0.12%:
# make_digits.sh's 0.5% cuts weak fricatives, e.g. the f of "four"),
# squeezed with sox tempo to 0.95 s if longer, padded with silence to 16000
# samples with the word at a per-clip offset, (noise mixed in,) and the peak
# set to the clip's volume, -3 to -18 dBFS. espeak-ng speaks at 100-200
# words/min and pitch 15-85 (its -s, -p); its amplitude -a is 100, lowered
# to 40 then 15 when the variant clips (some do even at -a 40), since the
# level is set afterwards anyway. Speed, pitch, volume, placement and the
# noise stretch come from the md5 of the clip id, not $RANDOM; sox runs
# with -R -D: the same options give byte-identical files on every rebuild.
#
# OUT/{train,valid,test}/<digit>/<clip id>.wav (digit: zero..nine), plus
# OUT/manifest.tsv: file (relative to OUT), digit, split, engine, voice,
# speaker, take, speed (espeak-ng: words/min; else sox tempo factor), pitch
# (espeak-ng: 0-99; else cents), volume (peak, dBFS), squeeze (tempo factor
# applied to fit 0.95 s, 1 if none), length (the word's samples), offset
# (samples of silence before the word), noise (offset in the noise file,
# - without --noise), samples; and OUT/voices.tsv: speaker, split, engine,
# voices.
set -euo pipefail
export LC_ALL=C
me=make_sc09.sh

die() { echo "$me: $*" >&2; exit 1; }
usage_error() { echo "$me: $*" >&2; exit 2; }

# ---- the voices (fixed; see the header) ----
ACCENTS=(en-us en-gb en-gb-scotland en-gb-x-gbclan en-gb-x-gbcwmd en-gb-x-rp en-029 en-us-nyc)
# speaker, split, its variants ('_' stands for a space in a file name)
ESPEAK_SPEAKERS="
default train adam caleb croak fast john klatt klatt2 klatt3 klatt4 klatt5 klatt6 m6 whisper
Alex train Alex
Alicia train Alicia
anika train anika anikaRobot
announcer train announcer
antonio train antonio
aunty train aunty
benjamin train benjamin
boris train boris
Denis train Denis
Diogo train Diogo Henrique Hugo michel miguel
ed train ed
edward train edward edward2
f1 train f1
f4 train f4
Gene train Gene Gene2
grandma train grandma
gustave train gustave
iven train iven iven2 iven3 iven4
Jacky train Jacky
kaukovalta train kaukovalta
Lee train Lee
linda train linda
m1 train m1
m2 train m2
m3 train m3
m4 train m4
m5 train m5
m8 train m8 robosoft robosoft2 robosoft3 robosoft4 robosoft5 robosoft6
marcelo train marcelo
max train max RicishayMax RicishayMax2 RicishayMax3 robosoft7 robosoft8
pablo train pablo
paul train paul
pedro train pedro
quincy train quincy
rob train rob
robert train robert
steph train steph steph2 steph3
Storm train Storm
travis train travis
victor train victor
Andrea valid Andrea
belinda valid belinda
Demonic valid Demonic
f2 valid f2 f5 whisperf
Michael valid Michael
Nguyen valid Nguyen
norbert valid norbert
sandro valid sandro
Andy test Andy AnxiousAndy
Annie test Annie
david test david
f3 test f3
grandpa test grandpa
m7 test m7
Marco test Marco
Mario test Mario
Mike test Mike
Mr_serious test Mr_serious
shelby test shelby
Tweaky test Tweaky
UniRobot test UniRobot
zac test zac
"
# engine, voice, speaker, split
OTHER_VOICES="
flite kal kal train
flite kal16 kal train
flite awb awb train
flite rms rms test
flite slt slt train
festival kal_diphone kal train
festival ked_diphone ked valid
festival cmu_us_slt_arctic_hts slt train
"
TINY_ACCENTS=(en-us en-gb)
TINY_VARIANTS=(m3 f2 Mike) # train, valid, test
TINY_OTHER="kal ked_diphone"
WORDS=(zero one two three four five six seven eight nine)
SPLITS=(train valid test)
NOISE_SECONDS=60

# ---- options ----
out=""
takes=""
engines=all
noise=""
jobs=""
tiny=0
force=0
need_arg() { [ "$2" -ge 2 ] || usage_error "$1 needs a value"; }
while [ $# -gt 0 ]; do
    case "$1" in
    --out) need_arg "$1" $#; out="$2"; shift 2 ;;
    --takes) need_arg "$1" $#; takes="$2"; shift 2 ;;
    --engines) need_arg "$1" $#; engines="$2"; shift 2 ;;
    --noise) need_arg "$1" $#; noise="$2"; shift 2 ;;
    --jobs) need_arg "$1" $#; jobs="$2"; shift 2 ;;
    --tiny) tiny=1; shift ;;
    --force) force=1; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) usage_error "unknown argument $1 (see --help)" ;;
    esac
done
is_count() { case "$1" in '' | *[!0-9]* | 0*) return 1 ;; esac; }
[ -z "$takes" ] || is_count "$takes" || usage_error "--takes expects a positive whole number, not '$takes'"
[ -z "$jobs" ] || is_count "$jobs" || usage_error "--jobs expects a positive whole number, not '$jobs'"
if [ -n "$noise" ]; then
    [[ "$noise" =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v d="$noise" 'BEGIN { exit !(d > 0 && d <= 120) }' ||
        usage_error "--noise expects a level in dB below the peak, above 0 and at most 120, not '$noise'"
fi
[ -n "$takes" ] || { [ "$tiny" = 1 ] && takes=1 || takes=2; }
[ -n "$jobs" ] || jobs=$(nproc)
[ -n "$out" ] || out="$(dirname "$0")/out/sc09"
out=${out%/}
[ -n "$out" ] || usage_error "--out / is not a corpus folder"

# ---- tools and engines ----
command -v sox >/dev/null && command -v soxi >/dev/null || die "sox not found (Debian: apt-get install sox)"
for tool in md5sum xargs nproc; do command -v "$tool" >/dev/null || die "$tool not found"; done
have() { command -v "$1" >/dev/null; }
use_espeak=0 use_flite=0 use_festival=0
if [ "$engines" = all ]; then
    if [ "$tiny" = 1 ]; then
        use_espeak=1
        have flite && use_flite=1
    else
        use_espeak=1 use_flite=1 use_festival=1
    fi
else
    IFS=, read -r -a list <<<"$engines"
    [ ${#list[@]} -gt 0 ] || usage_error "--engines is all or a comma list of espeak-ng, flite, festival"
    for e in "${list[@]}"; do
        case "$e" in
        espeak-ng) use_espeak=1 ;;
        flite) use_flite=1 ;;
        festival) use_festival=1 ;;
        *) usage_error "unknown engine '$e' in --engines (all, or a comma list of espeak-ng, flite, festival)" ;;
        esac
    done
fi
hint="; --engines picks a subset"
[ "$engines" = all ] || hint=""
if [ $use_espeak = 1 ]; then
    have espeak-ng || die "espeak-ng not found (Debian: apt-get install espeak-ng)$hint"
    data=$(espeak-ng --version | sed -n 's/.*Data at: *//p')
    [ -d "$data/voices/!v" ] || die "espeak-ng's voice variants not found (no $data/voices/!v)"
    installed=" $(espeak-ng --voices=en | awk 'NR > 1 { printf "%s ", $2 }')"
    for a in "${ACCENTS[@]}"; do
        [[ "$installed" == *" $a "* ]] || die "espeak-ng has no English accent $a (espeak-ng --voices=en)"
    done
    while read -r spk split vs; do
        [ -n "$spk" ] || continue
        for v in $vs; do
            [ -f "$data/voices/!v/${v//_/ }" ] || die "espeak-ng has no voice variant '${v//_/ }' (espeak-ng --voices=variant)"
        done
    done <<<"$ESPEAK_SPEAKERS"
fi
if [ $use_flite = 1 ]; then
    have flite || die "flite not found (Debian: apt-get install flite)$hint"
    installed=" $(flite -lv | sed 's/^[^:]*://') "
    while read -r eng v spk split; do
        [ "$eng" = flite ] || continue
        [[ "$installed" == *" $v "* ]] || die "flite has no voice $v (flite -lv)"
    done <<<"$OTHER_VOICES"
fi
if [ $use_festival = 1 ]; then
    have festival && have text2wave || die "festival not found (Debian: apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)$hint"
    installed=" $(echo '(print (voice.list))' | festival --pipe 2>/dev/null | tr -d '()') "
    for pair in kal_diphone:festvox-kallpc16k ked_diphone:festvox-kdlpc16k cmu_us_slt_arctic_hts:festvox-us-slt-hts; do
        [[ "$installed" == *" ${pair%%:*} "* ]] || die "festival has no voice ${pair%%:*} (Debian: apt-get install ${pair#*:})"
    done
fi

# ---- the output folder ----
if [ -e "$out" ] && ! [ -d "$out" ]; then die "$out exists and is not a folder"; fi
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ $force = 0 ]; then
    die "$out exists and is not empty (--force replaces it)"
fi
tmpout="$out.tmp"
work="$tmpout/.work"
monitor=""
xpid=""
cleanup() {
    local rc=$?
    [ -z "$monitor" ] || kill "$monitor" 2>/dev/null || true
    if [ -n "$xpid" ]; then
        # the batches xargs started, then xargs; a clip being made when its
        # folder goes fails, and nothing makes the folder again
        pkill -TERM -P "$xpid" 2>/dev/null || true
        kill "$xpid" 2>/dev/null || true
    fi
    if [ -e "$tmpout" ]; then
        # out of the way first, so that no clip still being written lands in it
        mv "$tmpout" "$tmpout.$$" 2>/dev/null && rm -rf "$tmpout.$$" || rm -rf "$tmpout"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
rm -rf "$tmpout" # what an interrupted earlier build left
mkdir -p "$work/rows" "$work/clips"
for s in "${SPLITS[@]}"; do for w in "${WORDS[@]}"; do mkdir -p "$tmpout/$s/$w"; done; done

# ---- the plan: one job line per clip, in the manifest's order ----
# index, clip id, engine, voice, speaker, split, digit, take (tab-separated)
plan="$work/plan"
voices="$work/voices"
: >"$plan"
printf 'speaker\tsplit\tengine\tvoices\n' >"$voices"
add_voice() { # engine voice speaker split
    local w t
    for w in "${WORDS[@]}"; do
        for ((t = 1; t <= takes; t++)); do
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$w" "$t" >>"$plan"
        done
    done
}
if [ $use_espeak = 1 ]; then
    accents=("${ACCENTS[@]}")
    [ $tiny = 0 ] || accents=("${TINY_ACCENTS[@]}")
    while read -r spk split vs; do
        [ -n "$spk" ] || continue
        used=""
        for v in $vs; do
            if [ $tiny = 1 ] && [[ " ${TINY_VARIANTS[*]} " != *" $v "* ]]; then continue; fi
            used="$used${used:+,}$v"
            for a in "${accents[@]}"; do add_voice espeak-ng "$a+$v" "espeak-ng:$spk" "$split"; done
        done
        [ -z "$used" ] || printf 'espeak-ng:%s\t%s\tespeak-ng\t%s\n' "$spk" "$split" "$used" >>"$voices"
    done <<<"$ESPEAK_SPEAKERS"
fi
# flite and festival speakers, one voices.tsv row each
declare -A spk_split=() spk_engines=() spk_voices=()
spk_order=()
while read -r eng v spk split; do
    [ -n "$eng" ] || continue
    [ "$eng" = flite ] && [ $use_flite = 0 ] && continue
    [ "$eng" = festival ] && [ $use_festival = 0 ] && continue
    if [ $tiny = 1 ] && [[ " $TINY_OTHER " != *" $v "* ]]; then continue; fi
    add_voice "$eng" "$v" "$spk" "$split"
    if [ -z "${spk_split[$spk]:-}" ]; then
        spk_order+=("$spk")
        spk_split[$spk]=$split
        spk_engines[$spk]=$eng
        spk_voices[$spk]=$v
    else
        [[ ",${spk_engines[$spk]}," == *",$eng,"* ]] || spk_engines[$spk]+=",$eng"
        spk_voices[$spk]+=",$v"
    fi
done <<<"$OTHER_VOICES"
for spk in "${spk_order[@]}"; do
    printf '%s\t%s\t%s\t%s\n' "$spk" "${spk_split[$spk]}" "${spk_engines[$spk]}" "${spk_voices[$spk]}" >>"$voices"
done
total=$(wc -l <"$plan")
[ "$total" -gt 0 ] || die "no clips to make"
# number the jobs and name the clips: ENGINE_VOICE_DIGIT_TAKE ('+' joins
# accent and variant, '_' stands for a space)
awk -F'\t' -v OFS='\t' '{ v = $2; gsub(/ /, "_", v); printf "%06d\t%s_%s_%s_%s\t%s\n", NR, $1, v, $5, $6, $0 }' "$plan" >"$plan.n"
mv "$plan.n" "$plan"

# ---- one long noise file, its RMS $noise dB below full scale ----
export NOISE_FILE="" NOISE_LEN=0
if [ -n "$noise" ]; then
    NOISE_FILE="$work/noise.wav"
    sox -R -D -n -r 16000 -c 1 -e floating-point -b 32 "$work/pink.wav" synth "$NOISE_SECONDS" pinknoise highpass 50 2>/dev/null ||
        die "sox could not make pink noise"
    rms=$(sox "$work/pink.wav" -n stat 2>&1 | awk '/RMS +amplitude/ { print $3 }')
    g=$(awk -v r="$rms" -v d="$noise" 'BEGIN { printf "%.4f", -d - 20 * log(r) / log(10) }')
    sox -R -D "$work/pink.wav" "$NOISE_FILE" gain "$g"
    rm -f "$work/pink.wav"
    NOISE_LEN=$((NOISE_SECONDS * 16000))
fi

# ---- one clip (run by xargs in parallel) ----
# Writes TMPOUT/SPLIT/DIGIT/ID.wav and WORK/rows/INDEX (its manifest row);
# on failure one line in WORK/failed and status 1.
make_clip() {
    local idx id eng voice spk split word take
    IFS=$'\t' read -r idx id eng voice spk split word take <<<"$1"
    local t="$WORK/clips/$idx" dst="$TMPOUT/$split/$word/$id.wav"
    local err="$t/err"
    fail() {
        printf '%s: %s%s\n' "$id" "$1" "$( [ -s "$err" ] && printf ': %s' "$(grep -v '^$' "$err" | tail -1)")" >>"$WORK/failed"
        rm -rf "$t"
        return 1
    }
    mkdir "$t" || { echo "$id: cannot make $t" >>"$WORK/failed"; return 1; }
    # five numbers from the md5 of the clip id
    local h
    h=$(printf '%s' "$id" | md5sum) || { fail "md5sum failed"; return 1; }
    local h1=$((16#${h:0:6})) h2=$((16#${h:6:6})) h3=$((16#${h:12:6})) h4=$((16#${h:18:6})) h5=$((16#${h:24:8}))
    local speed pitch volume=$((-3 - h3 % 16)) fx=() quiet=0.25%
    case "$eng" in
    espeak-ng)
        quiet=0.1% # espeak-ng's silence is digital zero
        speed=$((100 + h1 % 101))
        pitch=$((15 + h2 % 71))
        local a clipped=1
        for a in 100 40 15; do
            espeak-ng -v "${voice//_/ }" -s "$speed" -p "$pitch" -a "$a" -w "$t/raw.wav" "$word" 2>"$err" || { fail "espeak-ng failed"; return 1; }
            # espeak-ng saturates (clips) some variants: then more quietly
            if sox "$t/raw.wav" -n stat 2>&1 | awk '/^Maximum amplitude/ { x = $3 } /^Minimum amplitude/ { y = -$3 }
                END { exit !(x < 0.99 && y < 0.99) }'; then
                clipped=0
                break
            fi
        done
        [ $clipped = 0 ] || { fail "espeak-ng clips even at -a 15"; return 1; }
        ;;
    flite | festival)
        local tempo=$((80 + h1 % 46)) cents=$((h2 % 601 - 300))
        speed=$(printf '%d.%02d' $((tempo / 100)) $((tempo % 100)))
        pitch=$cents
        fx=(tempo -s "$speed" pitch "$cents")
        if [ "$eng" = flite ]; then
            flite -voice "$voice" -t "$word" -o "$t/raw.wav" 2>"$err" || { fail "flite failed"; return 1; }
        else
            # text2wave exits 0 even when the voice is unknown: look at the file
            printf '%s\n' "$word" | text2wave -eval "(voice_$voice)" -o "$t/raw.wav" 2>"$err" || { fail "text2wave failed"; return 1; }
        fi
        ;;
    esac
    [ -s "$t/raw.wav" ] || { fail "$eng wrote nothing"; return 1; }
    # normalize (6 dB of headroom for tempo and pitch), change tempo and
    # pitch, resample, normalize, trim the silence at both ends
    sox -R -D "$t/raw.wav" -e floating-point -b 32 "$t/a.wav" channels 1 gain -n -6 "${fx[@]}" rate 16000 gain -n -6 \
        silence 1 0.01 "$quiet" reverse silence 1 0.01 "$quiet" reverse 2>"$err" || { fail "sox failed"; return 1; }
    local n m squeeze=1
    n=$(soxi -s "$t/a.wav" 2>"$err") || { fail "soxi failed"; return 1; }
    [ "$n" -gt 0 ] || { fail "nothing left after trimming the silence"; return 1; }
    if [ "$n" -gt 15200 ]; then
        # squeeze to 0.95 s: the factor rounded up to 4 decimals
        local f=$(((n * 10000 + 15199) / 15200))
        squeeze=$(printf '%d.%04d' $((f / 10000)) $((f % 10000)))
        sox -R -D "$t/a.wav" "$t/b.wav" tempo -s "$squeeze" trim 0 15200s 2>"$err" || { fail "sox tempo failed"; return 1; }
        mv "$t/b.wav" "$t/a.wav"
    fi
    m=$(soxi -s "$t/a.wav" 2>"$err") || { fail "soxi failed"; return 1; }
    [ "$m" -gt 0 ] && [ "$m" -le 15200 ] || { fail "$m samples after squeezing"; return 1; }
    local left=$((h4 % (16000 - m + 1)))
    local right=$((16000 - m - left)) nat=-
    if [ -n "$NOISE_FILE" ]; then
        nat=$((h5 % (NOISE_LEN - 16000 + 1)))
        # the word's peak at full scale, the noise's RMS --noise dB below it;
        # mixed at half level each (no clipping), then the peak set
        sox -R -D "$t/a.wav" "$t/b.wav" pad "${left}s" "${right}s" gain -n 2>"$err" &&
            sox -R -D "$NOISE_FILE" "$t/n.wav" trim "${nat}s" 16000s 2>"$err" &&
            sox -R -D -m -v 0.5 "$t/b.wav" -v 0.5 "$t/n.wav" -b 16 -e signed-integer "$dst" gain -n "$volume" 2>"$err" ||
            { fail "sox (noise) failed"; return 1; }
    else
        sox -R -D "$t/a.wav" -b 16 -e signed-integer "$dst" pad "${left}s" "${right}s" gain -n "$volume" 2>"$err" ||
            { fail "sox failed"; return 1; }
    fi
    # the clip's format, as soxi reads it
    local info rate='' chans='' bits='' samples=''
    info=$(soxi "$dst" 2>"$err") || { fail "soxi failed"; return 1; }
    [[ "$info" =~ Sample\ Rate\ *:\ *([0-9]+) ]] && rate=${BASH_REMATCH[1]}
    [[ "$info" =~ Channels\ *:\ *([0-9]+) ]] && chans=${BASH_REMATCH[1]}
    [[ "$info" =~ Precision\ *:\ *([0-9]+)-bit ]] && bits=${BASH_REMATCH[1]}
    [[ "$info" =~ =\ ([0-9]+)\ samples ]] && samples=${BASH_REMATCH[1]}
    [ "$rate $chans $bits $samples" = "16000 1 16 16000" ] ||
        { fail "soxi: rate $rate, channels $chans, bits $bits, samples $samples; not 16000 1 16 16000"; return 1; }
    printf '%s/%s/%s.wav\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t16000\n' "$split" "$word" "$id" \
        "$word" "$split" "$eng" "$voice" "$spk" "$take" "$speed" "$pitch" "$volume" "$squeeze" "$m" "$left" "$nat" >"$WORK/rows/$idx"
    rm -rf "$t"
}
export -f make_clip
export WORK="$work" TMPOUT="$tmpout"

# ---- make the clips ----
start=$SECONDS
echo "$me: $total clips into $out, $jobs jobs" >&2
if [ $tiny = 0 ]; then
    (
        while sleep 15; do
            echo "$me: $(find "$work/rows" -type f | wc -l)/$total clips, $((SECONDS - start)) s" >&2
        done
    ) &
    monitor=$!
fi
# a batch of clips per bash; the first failure stops the batches not yet started
xargs -d '\n' -n 16 -P "$jobs" bash -c 'for j; do make_clip "$j" || exit 255; done' make_clip <"$plan" 2>"$work/xargs.err" &
xpid=$!
rc=0
wait "$xpid" || rc=$?
xpid=""
if [ -s "$work/failed" ]; then
    die "clip $(head -1 "$work/failed") ($(wc -l <"$work/failed") failed)"
fi
[ $rc = 0 ] || die "xargs failed (status $rc): $(tail -1 "$work/xargs.err")"
done_rows=$(find "$work/rows" -type f | wc -l)
[ "$done_rows" = "$total" ] || die "$done_rows of $total clips made"
wavs=$(find "$tmpout" -path "$work" -prune -o -type f -name '*.wav' -print | wc -l)
[ "$wavs" = "$total" ] || die "$wavs WAV files for $total clips"

# ---- manifest, voices, summary ----
{
    printf 'file\tdigit\tsplit\tengine\tvoice\tspeaker\ttake\tspeed\tpitch\tvolume\tsqueeze\tlength\toffset\tnoise\tsamples\n'
    find "$work/rows" -type f | sort | xargs cat
} >"$tmpout/manifest.tsv"
mv "$voices" "$tmpout/voices.tsv"
summary=$(awk -F'\t' 'NR > 1 { n[$3]++; if (!(($3, $6) in seen)) { seen[$3, $6] = 1; s[$3]++ } }
    END { printf "train %d (%d speakers), valid %d (%d), test %d (%d)", n["train"], s["train"], n["valid"], s["valid"], n["test"], s["test"] }' "$tmpout/manifest.tsv")
[ $tiny = 1 ] || kill "$monitor" 2>/dev/null || true
monitor=""
rm -rf "$work"
if [ -d "$out" ]; then
    # the old corpus goes only once the new one is in its place
    old="$out.old.$$"
    mv "$out" "$old"
    mv "$tmpout" "$out" || { mv "$old" "$out"; die "cannot rename $tmpout to $out"; }
    rm -rf "$old"
else
    mv "$tmpout" "$out"
fi
echo "$me: $total clips in $out: $summary; $((SECONDS - start)) s" >&2
