"""Long calls release the GIL (ctypes.CDLL does, around every foreign call):
other Python threads run while the library works. The same call through
ctypes.PyDLL, which keeps the GIL, is the control."""

import ctypes
import threading
import time

import numpy as np
import pytest
from conftest import random_tokens

import libmamba
from libmamba import _ffi


def ticks_during(call):
    """Runs call() on a thread while this one ticks; (ticks inside the call,
    longest gap between ticks inside it, the call's duration)."""
    done, span = threading.Event(), {}

    def work():
        span["start"] = time.perf_counter()
        call()
        span["end"] = time.perf_counter()
        done.set()

    worker = threading.Thread(target=work)
    ticks = []
    worker.start()
    while not done.is_set():  # Python bytecode on this thread, meanwhile
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    worker.join()
    inside = [x for x in ticks if span["start"] <= x <= span["end"]]
    gaps = np.diff([span["start"]] + inside + [span["end"]])
    return len(inside), gaps.max(), span["end"] - span["start"]


def test_long_calls_let_other_threads_run():
    with libmamba.create(d_model=64, n_layer=2, vocab_size=12, seed=1) as m:
        # long enough to tell (a quarter of a second or more) on any machine
        L = 1024
        while True:
            tokens = random_tokens((2, L))
            t0 = time.perf_counter()
            m.log_likelihood(tokens)
            if time.perf_counter() - t0 > 0.25 or L >= 1 << 20:
                break
            L *= 2
        n, gap, took = ticks_during(lambda: m.log_likelihood(tokens))
        print(f"\nCDLL: a {took:.3f} s call, {n} ticks of this thread during it, longest gap {gap * 1e3:.1f} ms")
        assert n >= 10 and gap < 0.5 * took

        # the control: the forward through PyDLL, which holds the GIL
        held = ctypes.PyDLL(_ffi.lib._name).mb_model_forward
        held.restype, held.argtypes = ctypes.c_int, _ffi.lib.mb_model_forward.argtypes
        t = np.ascontiguousarray(tokens)
        out = np.empty(t.shape + (m.vocab_padded,), np.float32)
        n, gap, took = ticks_during(lambda: held(m.handle, t.ctypes.data, *t.shape, None, out.ctypes.data, None))
        print(f"PyDLL: a {took:.3f} s call, {n} ticks during it, longest gap {gap * 1e3:.1f} ms")
        assert gap > 0.5 * took


def _long_logits_tokens(m, at_least=0.3):
    """Tokens whose logits take at least ``at_least`` s on this machine."""
    L = 4096
    while True:
        t = random_tokens((2, L))
        t0 = time.perf_counter()
        m.logits(t)
        if time.perf_counter() - t0 > at_least or L >= 1 << 20:
            return t
        L *= 2


def test_close_waits_for_a_call_in_flight():
    """close() from one thread while another is inside the library: it waits
    for the call (freeing under it was a segfault), and the model is closed
    after; the same for a state closed while it samples, and an optimizer's
    model closed during a step."""
    m = libmamba.create(d_model=16, n_layer=2, vocab_size=12, seed=1)
    tokens = _long_logits_tokens(m)
    got = {}

    def call(name, fn):
        try:
            got[name] = fn()
        except Exception as e:  # noqa: BLE001 - what a call in flight may raise is the test
            got[name] = e

    w = threading.Thread(target=call, args=("logits", lambda: m.logits(tokens)))
    w.start()
    time.sleep(0.05)
    m.close()
    w.join()
    assert isinstance(got["logits"], np.ndarray) and np.isfinite(got["logits"]).all()
    with pytest.raises(libmamba.LibmambaError, match="closed"):
        m.logits(tokens[:, :4])

    m = libmamba.create(d_model=16, n_layer=2, vocab_size=12, seed=1)
    s = m.state(4)
    w = threading.Thread(target=call, args=("sample", lambda: s.sample([1, 2, 3, 4], 20000)))
    w.start()
    time.sleep(0.05)
    s.close()
    w.join()
    assert isinstance(got["sample"], np.ndarray) and got["sample"].shape == (4, 20000)

    opt = m.optimizer(lr=1e-3)
    big = random_tokens((2, 8192))
    w = threading.Thread(target=call, args=("step", lambda: opt.step(big)))
    w.start()
    time.sleep(0.05)
    m.close()
    w.join()
    assert np.isfinite(got["step"].loss)
    with pytest.raises(libmamba.LibmambaError, match="closed"):
        opt.step(big[:, :8])


def test_one_model_from_two_threads():
    """Two threads' logits on one model: each gets its own input's logits
    (they shared the model's scratch and mixed their results)."""
    with libmamba.create(d_model=16, n_layer=2, vocab_size=12, seed=1) as m:
        inputs = [random_tokens((2, 3000)) for _ in range(4)]
        want = [m.logits(t) for t in inputs]
        got = [None] * len(inputs)

        def work(i):
            for _ in range(3):
                got[i] = m.logits(inputs[i])

        ts = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for g, w in zip(got, want):
            assert np.array_equal(g, w)


def test_gate_rules():
    """_ffi.Gate: another thread's shared call holds an exclusive one off;
    the same thread's does not (a finalizer the collector runs between its
    calls would wait for itself); exclusive is re-entrant."""
    g = _ffi.Gate()
    with g.shared():
        with g.exclusive():
            with g.exclusive():
                pass
    held = threading.Event()

    def hold():
        with g.shared():
            held.set()
            time.sleep(0.3)

    w = threading.Thread(target=hold)
    w.start()
    held.wait()
    t0 = time.perf_counter()
    with g.exclusive():
        waited = time.perf_counter() - t0
    w.join()
    assert waited > 0.2
