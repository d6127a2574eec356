"""Training: AdamW steps over a model's parameters."""

import ctypes
import weakref
from typing import NamedTuple

from . import _structs as S
from ._ffi import LibmambaError, check, check_handle, gated_release, lib, path_arg, set_fields
from .model import _ptr, as_tokens, next_token_targets


class StepResult(NamedTuple):
    """What one training step reports."""

    loss: float  # mean natural-log cross-entropy over the counted targets
    count: int  # targets counted (not IGNORE_INDEX)
    correct: int  # counted targets where the argmax was right
    grad_norm: float  # global L2 norm of the gradient before clipping
    lr: float  # the learning rate the step used


def optim_config(**settings):
    """mb_optim_config_default (AdamW (0.9, 0.95), wd 0.1, clip 1.0), then
    ``settings`` by field name: lr, min_lr, beta1, beta2, eps, weight_decay,
    grad_clip, warmup_steps, total_steps."""
    oc = S.OptimConfig()
    lib.mb_optim_config_default(ctypes.byref(oc))
    set_fields(oc, settings, "mb_optim_config")
    return oc


class AdamW:
    """AdamW with linear warmup, cosine decay and gradient clipping
    (mb_optim) over ``model``'s parameters; ``settings`` as optim_config.

    Keeps its model alive; ``model.close()`` closes it first. Freed by
    ``close()``, at the end of a ``with`` block, or when collected.
    """

    def __init__(self, model, **settings):
        self.model = model
        self.settings = optim_config(**settings)
        with model._gate.exclusive():
            self._h = check_handle(lib.mb_optim_create(model.handle, ctypes.byref(self.settings)))
        # mb_optim_free reads the model: the finalizer holds it, and the
        # model runs this finalizer before its own on close(); both wait for
        # a step in flight (the model's gate)
        self._free = weakref.finalize(self, gated_release, model._gate, lib.mb_optim_free, self._h, model)
        model._dependents = [f for f in model._dependents if f.alive] + [self._free]

    @property
    def handle(self):
        if not self._free.alive:
            raise LibmambaError("optimizer is closed")
        return self._h

    def close(self):
        """Free the optimizer's state now."""
        self._free()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def step(self, tokens, targets=None):
        """One training step on tokens (B, L) (or (L,)): forward, mean
        cross-entropy over the counted targets, backward
        (mb_model_forward_backward), then clip, update and zero the gradients
        (mb_optim_step). ``targets`` default to the next tokens (the last
        position ignored); IGNORE_INDEX marks targets not to count."""
        t, _ = as_tokens(tokens)
        tgt = next_token_targets(t) if targets is None else as_tokens(targets, "targets")[0]
        if tgt.shape != t.shape:
            raise ValueError(f"targets of shape {tgt.shape} for tokens of shape {t.shape}")
        st = S.LossStats()
        B, L = t.shape
        norm, lr = ctypes.c_float(), ctypes.c_float()
        # the model's scratch and weights: alone
        with self.model._gate.exclusive():
            check(lib.mb_model_forward_backward(self.model.handle, _ptr(t), _ptr(tgt), B, L, ctypes.byref(st)))
            check(lib.mb_optim_step(self.handle, ctypes.byref(norm), ctypes.byref(lr)))
        loss = st.loss_sum / st.count if st.count else float("nan")
        return StepResult(loss, st.count, st.correct, norm.value, lr.value)

    @property
    def step_count(self):
        """Steps taken (restored by load)."""
        return lib.mb_optim_step_count(self.handle)

    def lr_at(self, step):
        """The scheduled learning rate at ``step``."""
        return lib.mb_optim_lr_at(ctypes.byref(self.settings), int(step))

    def save(self, path):
        """mb_optim_save: moments and step, tied to the model's saved weights."""
        path = path_arg(path)
        with self.model._gate.shared():
            check(lib.mb_optim_save(self.handle, path))

    def load(self, path):
        """mb_optim_load: refuses another run's state or another save's."""
        path = path_arg(path)
        with self.model._gate.exclusive():
            check(lib.mb_optim_load(self.handle, path))
