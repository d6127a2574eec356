"""Training through the package: AdamW steps, their loss against scoring,
the schedule, and a resumed optimizer."""

import numpy as np
import pytest
from conftest import random_tokens

import libmamba


def pattern(B=4, L=48):
    """Rows of a repeating 5-token motif at random phases: easy to learn."""
    motif = np.array([3, 1, 4, 1, 5])
    phase = np.random.default_rng(0).integers(0, 5, size=B)
    return motif[(np.arange(L)[None, :] + phase[:, None]) % 5].astype(np.int32)


def test_loss_falls_and_agrees_with_scoring():
    t = pattern()
    with libmamba.create(d_model=32, n_layer=2, vocab_size=8, seed=1) as m:
        # the loss of a step is the mean -log p over its targets, taken
        # before the update: what log_likelihood gives for the same tokens
        ll = m.log_likelihood(t).sum()
        opt = m.optimizer(lr=1e-2, warmup_steps=0, weight_decay=0.0)
        first = opt.step(t)
        assert first.count == t.shape[0] * (t.shape[1] - 1)
        assert first.loss == pytest.approx(-ll / first.count, rel=1e-5)
        for _ in range(60):
            last = opt.step(t)
        print(f"\nloss {first.loss:.3f} -> {last.loss:.3f} nats (uniform {np.log(8):.3f}), "
              f"accuracy {last.correct / last.count:.2f}")
        assert last.loss < 0.25 * first.loss and last.correct / last.count > 0.9
        assert opt.step_count == 61


def test_targets_and_schedule(tiny):
    t = random_tokens((2, 20))
    tgt = np.full_like(t, libmamba.IGNORE_INDEX)
    tgt[:, 5] = t[:, 6]  # two targets counted
    with tiny.optimizer(lr=1e-3, min_lr=1e-4, warmup_steps=4, total_steps=10) as opt:
        r = opt.step(t, tgt)
        assert r.count == 2 and np.isfinite(r.grad_norm) and r.grad_norm > 0
        lrs = [r.lr] + [opt.step(t).lr for _ in range(9)]
        np.testing.assert_allclose(lrs, [opt.lr_at(i) for i in range(10)], rtol=1e-6)
        assert lrs[0] < lrs[3] and lrs[9] < lrs[4]
        with pytest.raises(ValueError, match="targets of shape"):
            opt.step(t, tgt[:, :5])
        with pytest.raises(TypeError, match="no field 'momentum'"):
            tiny.optimizer(momentum=0.9)


def test_resume_takes_the_same_steps(tmp_path):
    t = pattern(L=24)
    # one thread: the CPU scan's backward sums its per-thread partial
    # gradients in the order its threads finish, so with several threads two
    # runs of the same steps differ in the last bits (~1e-10 in the loss)
    one = libmamba.Context("cpu", threads=1)
    with libmamba.create(d_model=16, n_layer=1, vocab_size=8, seed=2, device=one) as m:
        opt = m.optimizer(lr=5e-3)
        for _ in range(3):
            opt.step(t)
        m.save(tmp_path / "m.safetensors")
        opt.save(tmp_path / "m.optim.safetensors")
        want = [opt.step(t).loss for _ in range(3)]
    with libmamba.load(tmp_path / "m.safetensors", device=one) as m:
        opt = m.optimizer(lr=5e-3)
        opt.load(tmp_path / "m.optim.safetensors")
        assert opt.step_count == 3
        assert [opt.step(t).loss for _ in range(3)] == want
    # another run's optimizer state is refused, with the library's reason
    with libmamba.create(d_model=16, n_layer=1, vocab_size=8, seed=2) as other:
        with pytest.raises(libmamba.LibmambaError, match="run"):
            other.optimizer().load(tmp_path / "m.optim.safetensors")


def test_recompute_modes_take_the_same_steps():
    # the same steps whatever training keeps for the backward: every layer's
    # activations, each layer's input (over chunks of 7 tokens), that and
    # in_proj's output, or only the states between chunks of 7, the stack
    # recomputed a chunk at a time
    t = pattern(B=2, L=40)
    one = libmamba.Context("cpu", threads=1)
    runs = {}
    for mode in (None, "layers", "inner", "stack", "auto"):
        with libmamba.create(d_model=16, n_layer=3, vocab_size=8, seed=5, device=one) as m:
            m.set_recompute(mode, chunk=7)
            opt = m.optimizer(lr=5e-3, warmup_steps=0)
            steps = [opt.step(t) for _ in range(3)]
            runs[mode] = ([s.loss for s in steps], [s.grad_norm for s in steps], m.log_likelihood(t))
            # "auto" never keeps in_proj's output on the CPU
            assert m.recompute == {None: "off", "auto": "layers"}.get(mode, mode)
    for mode in ("layers", "inner", "stack", "auto"):
        np.testing.assert_allclose(runs[mode][0], runs[None][0], rtol=1e-6)
        np.testing.assert_allclose(runs[mode][1], runs[None][1], rtol=1e-5)
        np.testing.assert_allclose(runs[mode][2], runs[None][2], rtol=1e-5, atol=1e-6)
    with libmamba.create(d_model=16, n_layer=1, vocab_size=8, seed=5) as m:
        with pytest.raises(ValueError, match="recompute mode 'fast'"):
            m.set_recompute("fast")
        with pytest.raises(ValueError, match="recompute chunk -1"):
            m.set_recompute("stack", chunk=-1)
