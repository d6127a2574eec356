#!/usr/bin/env python3
"""transformers' own Mamba checkpoints, for the interop test (tests/test_hf.c).

    python3 scripts/hf_fixture.py            # writes tests/fixtures/hf/*
    python3 scripts/hf_fixture.py check BUILD  # exports each fixture with
        BUILD's mamba-dna export --format hf, loads the export with
        transformers' from_pretrained and compares its log-likelihoods with
        those transformers computed for the original

Needs torch and transformers (not CI: their outputs are committed). Each
fixture is a folder that MambaForCausalLM.save_pretrained wrote (tiny, random
weights moved off their initialization), with expected.json beside it: the
token rows it was scored on and, per row, the natural-log sum of
log p(x_t | x_<t) over t >= 1 (what mamba-dna score reports per record), and
a few logits, computed by transformers in float64 from the saved float32
weights.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import MambaConfig, MambaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "hf")

# name: MambaConfig keyword arguments, save_pretrained arguments
CASES = {
    # the DNA shape: a vocabulary of 16 (our tokenizer's 12 ids padded)
    "tied": (dict(vocab_size=16, hidden_size=16, num_hidden_layers=2, state_size=4), {}),
    # projection biases on, conv bias off, untied head, an odd vocabulary,
    # explicit rank and epsilon
    "options": (dict(vocab_size=13, hidden_size=16, num_hidden_layers=2, state_size=4, use_bias=True,
                     use_conv_bias=False, tie_word_embeddings=False, time_step_rank=3,
                     layer_norm_epsilon=1e-4), {}),
    # shards with their index
    "sharded": (dict(vocab_size=16, hidden_size=16, num_hidden_layers=3, state_size=4),
                dict(max_shard_size="20KB")),
}
ROWS, LEN = 3, 29


def make(name, kw, save_kw):
    torch.manual_seed(sum(map(ord, name)))
    cfg = MambaConfig(**kw)
    model = MambaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("dt_proj.bias"):
                p.uniform_(-1.0, 0.0)  # delta of 0.3..0.7: A_log and dt matter
            else:
                p.add_(0.1 * torch.randn_like(p))
    path = os.path.join(OUT, name)
    os.makedirs(path, exist_ok=True)
    for f in os.listdir(path):
        os.remove(os.path.join(path, f))
    model.save_pretrained(path, safe_serialization=True, **save_kw)
    # score the saved weights, in float64
    back = MambaForCausalLM.from_pretrained(path).double().eval()
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, min(kw["vocab_size"], 12), (ROWS, LEN), generator=g)
    with torch.no_grad():
        logits = back(tokens).logits
    logp = torch.log_softmax(logits, -1)
    ll = logp[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0].sum(-1)
    exp = {"tokens": tokens.tolist(), "log_likelihood": ll.tolist(),
           "logits_row0": logits[0, 0, :4].tolist(), "transformers": __import__("transformers").__version__}
    with open(os.path.join(path, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
    print(name, "ll", [round(x, 6) for x in ll.tolist()], "files", sorted(os.listdir(path)))


def check(build):
    tool = os.path.join(build, "apps", "genomics", "mamba-dna")
    worst = 0.0
    for name in CASES:
        src = os.path.join(OUT, name)
        exp = json.load(open(os.path.join(src, "expected.json")))
        with tempfile.TemporaryDirectory() as tmp:
            dst = os.path.join(tmp, "export")
            subprocess.run([tool, "export", "--model", src, "--format", "hf", "--out", dst], check=True)
            model = MambaForCausalLM.from_pretrained(dst).double().eval()
            tokens = torch.tensor(exp["tokens"])
            with torch.no_grad():
                logp = torch.log_softmax(model(tokens).logits, -1)
            ll = logp[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0].sum(-1).tolist()
        err = max(abs(a - b) / abs(b) for a, b in zip(ll, exp["log_likelihood"]))
        worst = max(worst, err)
        print(f"{name}: transformers on our export vs on its own save: worst rel err {err:.2e}")
    # a DNA model of ours (vocab 12 padded to 16), trained a little by the
    # tool: transformers on its export against mamba-dna score
    ids = {"A": 7, "C": 8, "G": 9, "T": 10}
    g = torch.Generator().manual_seed(3)
    seqs = ["".join("ACGT"[i] for i in torch.randint(0, 4, (n,), generator=g).tolist()) for n in (57, 131)]
    with tempfile.TemporaryDirectory() as tmp:
        fa = os.path.join(tmp, "r.fa")
        with open(fa, "w") as f:
            for i, q in enumerate(seqs):
                f.write(f">r{i}\n{q}\n")
        model = os.path.join(tmp, "m.safetensors")
        subprocess.run([tool, "pretrain", "--d-model", "32", "--n-layer", "2", "--seq-len", "64", "--steps", "20",
                        "--force", "--out", model, os.path.join(ROOT, "data", "dna", "train.fa.gz")],
                       check=True, capture_output=True)
        rows = subprocess.run([tool, "score", "--model", model, "--fasta", fa], check=True, capture_output=True,
                              text=True).stdout.strip().split("\n")[1:]
        ours = [float(r.split("\t")[2]) for r in rows]
        dst = os.path.join(tmp, "hf")
        subprocess.run([tool, "export", "--model", model, "--format", "hf", "--out", dst], check=True)
        hfm = MambaForCausalLM.from_pretrained(dst).double().eval()
        for q, o in zip(seqs, ours):
            t = torch.tensor([[ids[c] for c in q]])
            with torch.no_grad():
                lp = torch.log_softmax(hfm(t).logits, -1)
            ll = lp[0, :-1].gather(-1, t[0, 1:, None])[:, 0].sum().item()
            err = abs(ll - o) / abs(o)
            worst = max(worst, err)
            print(f"dna model, {len(q)} bases: mamba-dna score {o:.6f}, transformers on the export {ll:.6f}, "
                  f"rel err {err:.2e}")
    if worst > 1e-6:
        sys.exit("export check FAILED")
    print("export check passed")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "check":
        check(sys.argv[2])
    else:
        for n, (kw, save_kw) in CASES.items():
            make(n, kw, save_kw)
