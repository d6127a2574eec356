#!/usr/bin/env python3
"""Writes short piano pieces as standard MIDI files for make_piano.sh.

Each piece is in C major: a right-hand melody that walks the scale in small
steps (mostly seconds and thirds, now and then a leap) in eighth and
quarter notes, over left-hand chords of a common progression (I IV V vi ii
...), one chord a bar, sometimes broken into arpeggios. Tempo and dynamics
vary from piece to piece. Random, but from a seed: the same arguments give
the same bytes. Standard library only.

    python3 make_midi.py --out DIR [--pieces N] [--seconds S] [--seed SEED]
"""
import argparse
import os
import random
import struct

DIVISION = 480  # ticks per quarter note
SCALE = [0, 2, 4, 5, 7, 9, 11]  # C major, semitones above C
# triads as scale degrees (0 = C): I ii iii IV V vi
CHORDS = {"I": 0, "ii": 1, "iii": 2, "IV": 3, "V": 4, "vi": 5}
PROGRESSIONS = [
    ["I", "IV", "V", "I"],
    ["I", "vi", "IV", "V"],
    ["I", "V", "vi", "IV"],
    ["ii", "V", "I", "I"],
    ["I", "iii", "IV", "V"],
]


def degree_to_note(degree, base=60):
    """Scale degree (any integer) to a MIDI note; base 60 is middle C."""
    octave, step = divmod(degree, 7)
    return base + 12 * octave + SCALE[step]


def vlq(n):
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def piece(rng, seconds):
    """Returns (tempo in BPM, [(tick, order, bytes)]) for one piece."""
    bpm = rng.choice([72, 84, 96, 108, 120])
    bars = max(2, round(seconds * bpm / 60 / 4))
    prog = rng.choice(PROGRESSIONS)
    loud = rng.randint(60, 90)
    ev = []

    def note(tick, dur, key, vel):
        vel = max(1, min(127, vel))
        ev.append((tick, 1, bytes([0x90, key, vel])))
        # note-offs sort before note-ons at the same tick (order 0)
        ev.append((tick + dur, 0, bytes([0x80, key, 0])))

    bar = 4 * DIVISION
    degree = rng.randint(0, 6)  # the melody's position, scale degrees above C4
    for b in range(bars):
        root = CHORDS[prog[b % len(prog)]]
        t0 = b * bar
        # left hand: the triad an octave and a half below the melody
        triad = [degree_to_note(root + k, 48) for k in (0, 2, 4)]
        if rng.random() < 0.5:
            for k in triad:
                note(t0, bar - 10, k, loud - 15)
        else:
            for i in range(8):
                note(t0 + i * DIVISION // 2, DIVISION // 2, triad[[0, 1, 2, 1][i % 4]], loud - 18)
        # right hand: steps of 0, 1 or 2 degrees, rarely a leap, kept in range
        t = t0
        while t < t0 + bar:
            dur = rng.choice([DIVISION // 2, DIVISION // 2, DIVISION, DIVISION * 3 // 2])
            dur = min(dur, t0 + bar - t)
            step = rng.choice([-2, -1, -1, 0, 1, 1, 2]) if rng.random() > 0.1 else rng.choice([-4, 4, 5])
            degree = max(-3, min(10, degree + step))
            # on strong beats, lean to the chord's notes
            if (t - t0) % DIVISION == 0 and rng.random() < 0.5:
                chord_tones = [root + k + 7 * o for k in (0, 2, 4) for o in (-1, 0, 1)]
                degree = min(chord_tones, key=lambda d: abs(d - degree))
            note(t, dur - 10, degree_to_note(degree), loud + rng.randint(-8, 8))
            t += dur
    # the last chord rings a bar longer
    root = CHORDS["I"]
    for k in (0, 2, 4):
        note(bars * bar, bar, degree_to_note(root + k, 48), loud - 10)
    note(bars * bar, bar, degree_to_note(7), loud)
    return bpm, ev


def write_smf(path, bpm, ev):
    track = bytearray()
    # tempo, then program 0 (Acoustic Grand Piano) on channel 0
    header = [(0, -2, b"\xff\x51\x03" + struct.pack(">I", 60_000_000 // bpm)[1:]),
              (0, -1, bytes([0xC0, 0]))]
    last = 0
    for tick, _, data in sorted(header + ev):
        track += vlq(tick - last) + data
        last = tick
    track += vlq(0) + b"\xff\x2f\x00"
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, DIVISION))
        f.write(b"MTrk" + struct.pack(">I", len(track)) + track)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--pieces", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for i in range(a.pieces):
        rng = random.Random(a.seed * 1000003 + i)
        bpm, ev = piece(rng, a.seconds)
        write_smf(os.path.join(a.out, "piece_%03d.mid" % i), bpm, ev)


if __name__ == "__main__":
    main()
