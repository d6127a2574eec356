"""The package against the command-line tool on the same model and tokens:
m.log_likelihood against `mamba-dna score`'s log_likelihood column, and
m.embed against `mamba-dna embed --format npy`."""

import csv
import subprocess

import numpy as np
from conftest import ROOT, dna_tokens, read_fasta

CHUNK = 4096  # several chunks per long record: the carried state is compared too


def write_fasta(path):
    """A FASTA of records of 1, 2, 700 and 50,000 bases (with soft-masked,
    N and IUPAC letters in one), and their token arrays."""
    val = read_fasta(ROOT / "data/dna/val.fa.gz")
    odd = bytearray(val[1][1][:700])
    odd[10:30] = odd[10:30].lower()
    odd[100:120] = b"N" * 20
    odd[300] = ord("R")  # [UNK]
    records = [("one", b"A"), ("two", b"GT"), ("odd", bytes(odd)), (val[0][0], val[0][1])]
    with open(path, "wb") as f:
        for name, seq in records:
            f.write(b">" + name.encode() + b"\n")
            for i in range(0, len(seq), 60):
                f.write(seq[i : i + 60] + b"\n")
    return [(name, dna_tokens(seq)) for name, seq in records]


def test_log_likelihood_is_mamba_dna_score(dna_model, dna_tool, tmp_path):
    m, path = dna_model
    fasta = tmp_path / "r.fa"
    records = write_fasta(fasta)
    run = subprocess.run([dna_tool, "score", "--model", str(path), "--fasta", str(fasta), "--chunk", str(CHUNK)],
                         capture_output=True, text=True, check=True)
    rows = list(csv.DictReader(run.stdout.splitlines(), delimiter="\t"))
    assert [r["name"] for r in rows] == [name for name, _ in records]
    worst = 0.0
    for (name, tok), row in zip(records, rows):
        assert int(row["length"]) == tok.size
        ll = m.log_likelihood(tok, chunk=CHUNK)
        if tok.size < 2:  # nothing to predict: the tool prints 0
            assert ll == 0.0 and row["log_likelihood"] == "0"
            continue
        # the same chunks summed in the same order: the same double, so the
        # same printed digits
        assert f"{ll:.6f}" == row["log_likelihood"], name
        # one chunk for all of it: the same within float32 rounding
        whole = m.log_likelihood(tok)
        worst = max(worst, abs(whole - ll) / max(abs(ll), 1.0))
    assert worst < 1e-6
    # trained: far from the uniform -ln 16 per base, towards ~1.9 bits
    name, tok = records[-1]
    assert -ll / (tok.size - 1) < 0.95 * np.log(16)
    print(f"\n{len(rows)} records match mamba-dna score digit for digit; "
          f"{name}: ll {ll:.6f} ({-ll / np.log(2) / (tok.size - 1):.4f} bits/base); "
          f"one chunk against {CHUNK}: rel {worst:.2e}")


def test_embed_is_mamba_dna_embed(dna_model, dna_tool, tmp_path):
    m, path = dna_model
    fasta = tmp_path / "r.fa"
    records = write_fasta(fasta)
    out = tmp_path / "e.npy"
    subprocess.run([dna_tool, "embed", "--model", str(path), "--fasta", str(fasta), "--chunk", str(CHUNK),
                    "--format", "npy", "--out", str(out)], capture_output=True, check=True)
    cli = np.load(out)
    ours = np.stack([m.embed(tok, chunk=CHUNK) for _, tok in records])
    assert cli.dtype == ours.dtype == np.float32 and cli.shape == ours.shape == (len(records), m.d_model)
    np.testing.assert_array_equal(ours, cli)
