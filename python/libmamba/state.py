"""Recurrent inference: a state carried across steps, chunks and draws."""

import ctypes
import weakref

import numpy as np

from . import _structs as S
from ._ffi import INT_MAX, Gate, LibmambaError, check, check_handle, gated_release, int_arg, lib
from .model import _ptr, as_tokens


class State:
    """The recurrent state of ``batch`` sequences (mb_state): per layer the
    last d_conv-1 conv inputs and the SSM state.

    It keeps its model alive (the library also lets a model be freed before
    its states, so ``model.close()`` with states still open is safe; the
    states then refuse further calls). Freed by ``close()``, at the end of a
    ``with`` block, or when collected.
    """

    def __init__(self, model, batch=1):
        self.model = model
        self.batch = int_arg("batch", batch, 1, INT_MAX)
        with model._gate.shared():
            self._h = check_handle(lib.mb_state_create(model.handle, self.batch))
        # one call at a time on a state (its own scratch), none while it is
        # freed; calls on several states of a model run together
        self._gate = Gate()
        # the context outlives the state: mb_state_free frees device memory
        self._free = weakref.finalize(self, gated_release, self._gate, lib.mb_state_free, self._h, model.context)

    @property
    def handle(self):
        if not self._free.alive:
            raise LibmambaError("state is closed")
        return self._h

    def close(self):
        """Free the state now (once a call another thread makes on it returns)."""
        self._free()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, fn, *args):
        """fn(model handle, state handle, *args) with the model shared and
        this state held; raises the library's error."""
        with self.model._gate.shared(), self._gate.exclusive():
            check(fn(self.model.handle, self.handle, *args))

    def reset(self):
        """Back to the start of a sequence (and of the sampler's draw count)."""
        with self._gate.exclusive():
            lib.mb_state_reset(self.handle)

    def _row_tokens(self, tokens):
        t = np.ascontiguousarray(as_tokens(np.reshape(tokens, -1))[0][0])
        if t.shape[0] != self.batch:
            raise ValueError(f"{self.batch} tokens expected (one per sequence), got {t.shape[0]}")
        return t

    def step(self, tokens):
        """mb_model_step: one token per sequence in; float32 logits
        (batch, vocab_padded) of the next out."""
        t = self._row_tokens(tokens)
        logits = np.empty((self.batch, self.model.vocab_padded), np.float32)
        self._call(lib.mb_model_step, _ptr(t), _ptr(logits))
        return logits

    def feed(self, tokens, logits=False):
        """mb_model_forward_chunk: L tokens per sequence ((batch, L), or (L,)
        with batch 1) through the parallel forward from the state, which is
        left at their end. Returns the logits (batch, L, vocab_padded) when
        asked for, else None (the LM head is then skipped)."""
        t, _ = as_tokens(tokens)
        if t.shape[0] != self.batch:
            raise ValueError(f"tokens for {self.batch} sequences expected, got {t.shape[0]}")
        out = np.empty(t.shape + (self.model.vocab_padded,), np.float32) if logits else None
        self._call(lib.mb_model_forward_chunk, _ptr(t), t.shape[1], _ptr(out))
        return out

    def sample(self, tokens, n, temperature=1.0, top_p=1.0, seed=0, top_k=0):
        """mb_model_sample: ``n`` steps, each fed the token drawn at the step
        before, from ``tokens`` (one per sequence): int32 (batch, n).

        The draw is softmax(logits / temperature) over the vocabulary, cut to
        the ``top_k`` most likely classes (0: no cut), then to the nucleus of
        ``top_p``, with a random number that depends only on
        (seed, row, draws since the state was created or reset): a run split
        over calls draws what one call would."""
        t = self._row_tokens(tokens)
        n = int_arg("n", n, 0, INT_MAX)
        out = np.empty((self.batch, n), np.int32)
        sp = S.Sampler(temperature=temperature, top_p=top_p, seed=int_arg("seed", seed, 0, 2**64 - 1), top_k=top_k)
        self._call(lib.mb_model_sample, _ptr(t), n, ctypes.byref(sp), _ptr(out))
        return out
