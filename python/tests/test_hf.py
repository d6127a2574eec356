"""transformers' own Mamba checkpoints (tests/fixtures/hf: folders that
save_pretrained wrote, one file or two shards) loaded by folder and scored
against the log-likelihoods transformers computed in float64."""

import json

import numpy as np
import pytest
from conftest import ROOT

import libmamba

FOLDERS = sorted(p for p in (ROOT / "tests/fixtures/hf").iterdir() if (p / "expected.json").exists())


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_transformers_folder(folder, tmp_path):
    expected = json.loads((folder / "expected.json").read_text())
    tokens = np.array(expected["tokens"])
    with libmamba.load(folder) as m:
        ll = m.log_likelihood(tokens)
        rel = np.max(np.abs(ll - expected["log_likelihood"]) / np.abs(expected["log_likelihood"]))
        logits = m.logits(tokens[0])[0, :4]
        err = np.max(np.abs(logits - expected["logits_row0"]))
        print(f"\n{folder.name}: log-likelihoods {ll.round(4)} against transformers': rel {rel:.1e}, logits {err:.1e}")
        assert rel < 2e-6 and err < 1e-5
        # one row at a time gives what the batch gives
        rows = np.array([m.log_likelihood(t) for t in tokens])
        np.testing.assert_allclose(rows, ll, rtol=1e-7)
        # exported for transformers and read back: the same numbers
        m.save_hf(tmp_path / "out")
        with libmamba.load(tmp_path / "out") as back:
            assert back.config == m.config
            np.testing.assert_array_equal(back.log_likelihood(tokens), ll)
