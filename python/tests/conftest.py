"""Shared fixtures: the library, the repository's data, a small DNA model.

ctest (python/CMakeLists.txt) sets LIBMAMBA_LIBRARY to the shared library it
built, PYTHONPATH to python/ and MAMBA_DNA to the mamba-dna tool; run by
hand from the repository (``python3 -m pytest python/tests``), the defaults
are build/'s."""

import gzip
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("LIBMAMBA_LIBRARY", str(ROOT / "build/libmamba/libmamba.so"))

import libmamba  # noqa: E402

# apps/genomics/dna_tok.h: A C G T N are 7..11 (either case), any other byte [UNK] 6
DNA_VOCAB, DNA_PADDED = 12, 16
_TOK = np.full(256, 6, np.int32)
for _i, _b in enumerate(b"ACGTN"):
    _TOK[_b] = _TOK[_b + 32] = 7 + _i


def dna_tokens(seq):
    """The mamba-dna tokenizer's ids of a str or bytes sequence."""
    raw = seq.encode() if isinstance(seq, str) else seq
    return _TOK[np.frombuffer(raw, np.uint8)]


def read_fasta(path):
    """[(name, sequence bytes)] of a plain or gzip FASTA."""
    opener = gzip.open if str(path).endswith(".gz") else open
    records, name, parts = [], None, []
    with opener(path, "rb") as f:
        for line in f:
            line = line.strip()
            if line.startswith(b">"):
                if name is not None:
                    records.append((name, b"".join(parts)))
                name, parts = line[1:].split()[0].decode(), []
            elif line:
                parts.append(line)
    if name is not None:
        records.append((name, b"".join(parts)))
    return records


@pytest.fixture(scope="session")
def dna_tool():
    """The mamba-dna executable (skips where the tools were not built)."""
    tool = os.environ.get("MAMBA_DNA", str(ROOT / "build/apps/genomics/mamba-dna"))
    if not os.access(tool, os.X_OK):
        pytest.skip("mamba-dna not built (MAMBA_APPS off, or htslib missing)")
    return tool


@pytest.fixture(scope="session")
def dna_model(tmp_path_factory):
    """(model, path): a small DNA model with 40 AdamW steps on the bundled
    training genomes (so its predictions are far from uniform), saved."""
    m = libmamba.create(d_model=32, n_layer=2, d_state=8, vocab_size=DNA_VOCAB,
                        pad_vocab_size_multiple=DNA_PADDED, seed=11)
    genome = np.concatenate([dna_tokens(s) for _, s in read_fasta(ROOT / "data/dna/train.fa.gz")])
    rng = np.random.default_rng(0)
    with m.optimizer(lr=3e-3, warmup_steps=5, total_steps=40) as opt:
        for _ in range(40):
            starts = rng.integers(0, genome.size - 256, size=4)
            opt.step(np.stack([genome[s : s + 256] for s in starts]))
    path = tmp_path_factory.mktemp("dna") / "dna.safetensors"
    m.save(path)
    return m, path


@pytest.fixture
def tiny():
    """A fresh tiny LM over 12 tokens (vocab padded to 16)."""
    with libmamba.create(d_model=16, n_layer=2, d_state=4, vocab_size=12, pad_vocab_size_multiple=16, seed=3) as m:
        yield m


def random_tokens(shape, vocab=12, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, size=shape, dtype=np.int32)
