"""Each way of running a model against the others: the training forward's
logits, scoring chunks, recurrent steps, draws and pooled embeddings."""

import json

import numpy as np
import pytest

import libmamba
from conftest import random_tokens


def log_softmax(x):
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_log_probs_are_the_logits_softmax(tiny):
    t = random_tokens((3, 40))
    logits = tiny.logits(t)
    assert logits.shape == (3, 40, 16) and logits.dtype == np.float32
    lp = tiny.log_probs(t)
    want = np.take_along_axis(log_softmax(logits)[:, :-1], t[:, 1:, None], -1)[..., 0]
    np.testing.assert_allclose(lp[:, :-1], want, atol=2e-6)
    assert np.all(lp[:, -1] == 0)
    np.testing.assert_allclose(tiny.log_likelihood(t), lp.sum(1), rtol=1e-12)


def test_shapes_rows_and_chunks(tiny):
    t = random_tokens((3, 50), seed=1)
    ll = tiny.log_likelihood(t)
    assert ll.shape == (3,) and ll.dtype == np.float64
    # a row alone, as a list, in chunks of 7 with the state carried
    assert isinstance(tiny.log_likelihood(list(t[1])), float)
    np.testing.assert_allclose([tiny.log_likelihood(r) for r in t], ll, rtol=1e-6)
    np.testing.assert_allclose(tiny.log_likelihood(t, chunk=7), ll, rtol=1e-6)
    assert tiny.logits(t[0]).shape == (50, 16)
    assert tiny.log_likelihood([5]) == 0.0 and tiny.log_likelihood(np.zeros(0, np.int64)) == 0.0


def test_state_steps_and_chunks_give_the_forward(tiny):
    t = random_tokens((2, 30), seed=2)
    whole = tiny.logits(t)
    with tiny.state(2) as s:
        steps = np.stack([s.step(t[:, i]) for i in range(30)], 1)
        np.testing.assert_allclose(steps, whole, atol=1e-5)
        s.reset()
        a = s.feed(t[:, :11], logits=True)
        assert s.feed(t[:, 11:20]) is None
        b = s.feed(t[:, 20:], logits=True)
        np.testing.assert_allclose(a, whole[:, :11], atol=1e-5)
        np.testing.assert_allclose(b, whole[:, 20:], atol=1e-5)


def test_sampling(tiny):
    prompt = random_tokens((2, 8), seed=3)
    a = tiny.generate(prompt, 20, temperature=0.9, top_p=0.9, seed=5)
    assert a.shape == (2, 20) and a.dtype == np.int32 and a.min() >= 0 and a.max() < 12
    np.testing.assert_array_equal(tiny.generate(prompt, 20, temperature=0.9, top_p=0.9, seed=5), a)
    assert not np.array_equal(tiny.generate(prompt, 20, temperature=0.9, top_p=0.9, seed=6), a)
    # a run cut in two draws what one call draws
    with tiny.state(2) as s:
        s.feed(prompt[:, :-1])
        first = s.sample(prompt[:, -1], 8, temperature=0.9, top_p=0.9, seed=5)
        rest = s.sample(first[:, -1], 12, temperature=0.9, top_p=0.9, seed=5)
    np.testing.assert_array_equal(np.concatenate([first, rest], 1), a)
    # a nucleus that holds only the likeliest class: greedy decoding
    greedy = tiny.generate(prompt[0], 10, top_p=1e-6)
    seq = list(prompt[0])
    for _ in range(10):
        seq.append(int(np.argmax(tiny.logits(seq)[-1, :12])))
    np.testing.assert_array_equal(greedy, seq[8:])
    # top-k of one class, whatever the temperature and seed: greedy too
    np.testing.assert_array_equal(tiny.generate(prompt[0], 10, temperature=3.0, top_k=1, seed=9), greedy)


def read_tensor(path, name):
    """One float32 tensor of a safetensors file (8-byte header size, JSON
    header, raw data)."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    info = json.loads(raw[8 : 8 + n])[name]
    assert info["dtype"] == "F32"
    begin, end = info["data_offsets"]
    return np.frombuffer(raw[8 + n + begin : 8 + n + end], np.float32).reshape(info["shape"])


def test_embeddings_are_the_mean_final_hidden_state(tiny, tmp_path):
    t = random_tokens((2, 33), seed=4)
    e = tiny.embed(t)
    assert e.shape == (2, 16) and e.dtype == np.float32
    np.testing.assert_allclose(tiny.embed(t, chunk=5), e, atol=1e-6)
    np.testing.assert_allclose(tiny.embed(t[1]), e[1], atol=1e-6)
    # the head's input: with the tied head, logits = embedding @ hidden, so
    # the mean logits are the embedding matrix times the mean hidden state
    tiny.save(tmp_path / "m.safetensors")
    w = read_tensor(tmp_path / "m.safetensors", "backbone.embedding.weight")
    assert w.shape == (16, 16)
    np.testing.assert_allclose(tiny.logits(t).mean(1), e @ w.T, atol=1e-5)


def test_int8_weights_step_near_fp32(tiny):
    """set_int8: the state's steps read int8 copies (logits near fp32's, not
    equal); set_int8(False) gives fp32's logits back exactly."""
    t = random_tokens((1, 20), seed=4)
    with tiny.state(1) as s:
        ref = np.stack([s.step(t[:, i])[0] for i in range(20)])
    tiny.set_int8()
    with tiny.state(1) as s:
        q = np.stack([s.step(t[:, i])[0] for i in range(20)])
    err = np.abs(q - ref).max() / np.abs(ref).max()
    assert 1e-6 < err < 5e-2
    with pytest.raises(libmamba.LibmambaError, match="GPU"):
        tiny.set_bf16()
    tiny.set_int8(False)
    with tiny.state(1) as s:
        back = np.stack([s.step(t[:, i])[0] for i in range(20)])
    np.testing.assert_array_equal(back, ref)


def assert_same_draws(m, first, n, vocab):
    """Two states of m from the tokens first draw n classes each, seed 7:
    the same classes, each below vocab."""
    draws = []
    for _ in range(2):
        with m.state(len(first)) as s:
            draws.append(s.sample(first, n, seed=7))
    assert draws[0].shape == (len(first), n) and draws[0].min() >= 0 and draws[0].max() < vocab
    np.testing.assert_array_equal(draws[0], draws[1])


def test_bf16_precision_rounds_logits():
    """Context(precision="bf16"): the forward's logits are bf16 values near
    fp32's (mamba_ssm's autocast rounding), steps give the same logits,
    sampling draws (the same classes again from the same seed); an unknown
    precision is a ValueError."""
    t = random_tokens((2, 24), seed=5)
    fields = dict(d_model=16, n_layer=2, d_state=4, vocab_size=12, pad_vocab_size_multiple=16, seed=3)
    with libmamba.create(**fields) as m:
        ref = m.logits(t)
    with libmamba.create(device=libmamba.Context(precision="bf16"), **fields) as m:
        got = m.logits(t)
        bits = got.view(np.uint32)
        assert np.all(bits & 0xFFFF == 0)
        err = np.abs(got - ref).max() / np.abs(ref).max()
        assert 1e-5 < err < 3e-2
        with m.state(2) as s:
            steps = np.stack([s.step(t[:, i]) for i in range(24)], 1)
        np.testing.assert_array_equal(steps, got)
        assert_same_draws(m, t[:, 0], 16, 12)
    with pytest.raises(ValueError):
        libmamba.Context(precision="fp16")


def test_bf16_precision_unet_steps_and_samples():
    """The U-Net in bf16 precision steps and samples too: step logits are
    bf16 values near the forward's (equal where no value falls on a bf16
    rounding boundary: tests/test_golden.c checks that on its fixture), and
    the same seed draws the same classes."""
    cfg = libmamba.Config.sashimi(d_model=16, n_layer=1, vocab_size=10, d_state=4, pool=[2, 3], pool_expand=3)
    t = random_tokens((2, 18), seed=6) % 10
    with libmamba.create(cfg, device=libmamba.Context(precision="bf16"), seed=4) as m:
        ref = m.logits(t)[:, :, :10]
        with m.state(2) as s:
            steps = np.stack([s.step(t[:, i]) for i in range(18)], 1)[:, :, :10]
        assert np.all(steps.view(np.uint32) & 0xFFFF == 0)
        assert np.abs(steps - ref).max() <= 1e-2 * np.abs(ref).max()
        assert_same_draws(m, t[:, 0], 12, 10)
