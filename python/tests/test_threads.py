"""Long calls release the GIL (ctypes.CDLL does, around every foreign call):
other Python threads run while the library works. The same call through
ctypes.PyDLL, which keeps the GIL, is the control."""

import ctypes
import threading
import time

import numpy as np
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
