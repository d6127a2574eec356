"""Finding and loading the shared library, its function signatures, errors.

The library is looked for, in this order:

1. ``$LIBMAMBA_LIBRARY``: the path of the shared library itself (for example
   ``build/libmamba/libmamba.so`` after ``cmake --build build``); when set,
   nothing else is tried;
2. this package's own folder (``libmamba.so*`` copied beside this file before
   ``pip install``, for a self-contained install);
3. the system's: ``ctypes.util.find_library("mamba")`` (ldconfig's cache,
   ``LD_LIBRARY_PATH``), then ``libmamba.so.0`` in the usual prefixes
   (``cmake --install build`` puts it in ``/usr/local/lib``, which the
   dynamic loader only searches after ``ldconfig``).

A candidate without our symbols (conda's package manager, also called mamba,
ships a C++ libmamba.so) is passed over. When none loads, ImportError says
what was tried and how to point at the library.

Calls go through ctypes.CDLL, which releases the GIL for the duration of
every foreign call: a long forward, training step or load lets the other
Python threads run. mb_error_last() is per thread, and ctypes runs the call
and our check of its result on the same thread, so the message read is that
call's.
"""

import contextlib
import ctypes
import ctypes.util
import os
import sysconfig
import threading
from ctypes import POINTER, c_char_p, c_float, c_int, c_int64, c_size_t, c_uint64, c_void_p
from pathlib import Path

from . import _structs as S
from ._version import __version__ as PACKAGE_VERSION

ENV = "LIBMAMBA_LIBRARY"


class LibmambaError(RuntimeError):
    """A libmamba call failed; the message is mb_error_last()'s line."""


def _system_candidates():
    found = ctypes.util.find_library("mamba")
    if found:
        yield found
    multiarch = sysconfig.get_config_var("MULTIARCH")
    dirs = ["/usr/local/lib", "/usr/local/lib64", "/usr/lib", "/usr/lib64"]
    if multiarch:
        dirs += [f"/usr/local/lib/{multiarch}", f"/usr/lib/{multiarch}"]
    for d in dirs:
        for name in ("libmamba.so.0", "libmamba.so", "libmamba.dylib"):
            if os.path.exists(os.path.join(d, name)):
                yield os.path.join(d, name)


def _candidates():
    env = os.environ.get(ENV)
    if env:
        yield env
        return
    here = Path(__file__).resolve().parent
    yield from (str(p) for p in sorted(here.glob("libmamba.so*")) + sorted(here.glob("libmamba*.dylib")))
    yield from _system_candidates()


def _open():
    tried = []  # (candidate, why it was not taken)
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append((path, str(e)))
            continue
        if not hasattr(lib, "mb_version"):
            tried.append((path, "not this libmamba (no mb_version)"))
            continue
        return lib
    how = (
        f"set {ENV} to the shared library (after `cmake -S . -B build && cmake --build build` "
        f"it is build/libmamba/libmamba.so), install it (`cmake --install build`), "
        f"or copy it into {Path(__file__).resolve().parent}"
    )
    if os.environ.get(ENV):
        raise ImportError(f"libmamba: cannot load {ENV}={os.environ[ENV]!r}: {tried[0][1]}; {how}")
    seen = "; ".join(f"{p}: {why}" for p, why in tried) or "none in this package's folder or the system's"
    raise ImportError(f"libmamba: shared library not found ({seen}); {how}")


lib = _open()

# (restype, argtypes) of every function the package calls. Arrays travel as
# c_void_p: model.py hands over the addresses of C-contiguous numpy arrays of
# the element type each comment gives.
_cfg = POINTER(S.ConfigStruct)
_SIGNATURES = {
    "mb_error_last": (c_char_p, []),
    "mb_version": (c_char_p, []),
    "mb_struct_size": (c_size_t, [c_char_p]),
    "mb_ctx_create": (c_void_p, [c_char_p]),
    "mb_ctx_free": (None, [c_void_p]),
    "mb_ctx_name": (c_char_p, [c_void_p]),
    "mb_ctx_set_threads": (None, [c_void_p, c_int]),
    "mb_ctx_set_tf32": (None, [c_void_p, c_int]),
    "mb_ctx_set_precision": (c_int, [c_void_p, c_int]),
    "mb_config_default": (None, [_cfg]),
    "mb_config_sashimi_default": (None, [_cfg]),
    "mb_config_check": (c_int, [_cfg]),
    "mb_config_vocab_padded": (c_int, [_cfg]),
    "mb_config_d_inner": (c_int, [_cfg]),
    "mb_model_create": (c_void_p, [c_void_p, _cfg, c_uint64]),
    "mb_model_load": (c_void_p, [c_void_p, c_char_p]),
    "mb_model_free": (None, [c_void_p]),
    "mb_model_config": (_cfg, [c_void_p]),
    "mb_model_run_id": (c_uint64, [c_void_p]),
    "mb_model_num_params": (c_size_t, [c_void_p]),
    "mb_model_save": (c_int, [c_void_p, c_char_p]),
    "mb_model_save_hf": (c_int, [c_void_p, c_char_p]),
    # tokens int32 (B, L), targets int32 (B, L) or NULL, logits float32 (B, L, Vp) or NULL
    "mb_model_forward": (c_int, [c_void_p, c_void_p, c_int, c_int, c_void_p, c_void_p, POINTER(S.LossStats)]),
    "mb_model_forward_backward": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, POINTER(S.LossStats)]),
    "mb_state_create": (c_void_p, [c_void_p, c_int]),
    "mb_state_reset": (None, [c_void_p]),
    "mb_state_free": (None, [c_void_p]),
    # tokens int32 (B), logits float32 (B, Vp) or NULL
    "mb_model_step": (c_int, [c_void_p, c_void_p, c_void_p, c_void_p]),
    # tokens int32 (B, L), logits float32 (B, L, Vp) or NULL
    "mb_model_forward_chunk": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_void_p]),
    "mb_model_forward_chunk_ex": (c_int, [c_void_p, c_void_p, c_void_p, c_int, POINTER(S.ChunkOut)]),
    # tokens int32 (B), out int32 (B, n)
    "mb_model_sample": (c_int, [c_void_p, c_void_p, c_void_p, c_int, POINTER(S.Sampler), c_void_p]),
    "mb_model_set_int8": (c_int, [c_void_p, c_int]),
    "mb_model_set_bf16": (c_int, [c_void_p, c_int]),
    "mb_model_set_recompute": (None, [c_void_p, c_int]),
    "mb_model_set_recompute_chunk": (None, [c_void_p, c_int]),
    "mb_model_get_recompute": (c_int, [c_void_p]),
    "mb_optim_config_default": (None, [POINTER(S.OptimConfig)]),
    "mb_optim_create": (c_void_p, [c_void_p, POINTER(S.OptimConfig)]),
    "mb_optim_free": (None, [c_void_p]),
    "mb_optim_step": (c_int, [c_void_p, POINTER(c_float), POINTER(c_float)]),
    "mb_optim_step_count": (c_int64, [c_void_p]),
    "mb_optim_lr_at": (c_float, [POINTER(S.OptimConfig), c_int64]),
    "mb_optim_save": (c_int, [c_void_p, c_char_p]),
    "mb_optim_load": (c_int, [c_void_p, c_char_p]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype, _fn.argtypes = _res, _args

VERSION = lib.mb_version().decode()


def _check_abi():
    """Refuse a library whose structures or release differ from these bindings."""
    for name, mirror in S.MIRRORS.items():
        theirs = lib.mb_struct_size(name.encode())
        if theirs != ctypes.sizeof(mirror):
            raise ImportError(
                f"libmamba {VERSION} at {lib._name}: sizeof({name}) is {theirs}, "
                f"these bindings ({PACKAGE_VERSION}) expect {ctypes.sizeof(mirror)}"
            )
    if VERSION.split(".")[:2] != PACKAGE_VERSION.split(".")[:2]:
        raise ImportError(
            f"libmamba {VERSION} at {lib._name}: these bindings are for release {PACKAGE_VERSION}"
        )


_check_abi()


def error():
    """A LibmambaError with the calling thread's last libmamba failure."""
    return LibmambaError(lib.mb_error_last().decode(errors="replace"))


def check(rc):
    """Raise the library's error for a call that returned -1."""
    if rc != 0:
        raise error()


def check_handle(h):
    """Raise the library's error for a constructor that returned NULL."""
    if not h:
        raise error()
    return h


def release(free, handle, *keep_alive):
    """free(handle), for weakref.finalize: ``keep_alive`` holds the objects
    the handle needs until then (its context, its model)."""
    free(handle)


def gated_release(gate, free, handle, *keep_alive):
    """release() once no call is using the object (Gate.exclusive): a close
    from one thread while another is inside the library freed memory under
    it (a segfault)."""
    with gate.exclusive():
        free(handle)


def path_arg(path):
    """A file name for the library (bytes): a NUL inside it would end the C
    string early and name another file, so it is refused as open() does."""
    b = os.fsencode(path)
    if b"\0" in b:
        raise ValueError("embedded null byte")
    return b


def set_fields(struct, fields, what):
    """Set ctypes structure fields by name, refusing unknown names and numbers
    the field cannot hold (ctypes would wrap 2**32 + 8 to 8 without a word)."""
    names = {f[0] for f in struct._fields_}
    for k, v in fields.items():
        if k not in names:
            raise TypeError(f"{what} has no field {k!r}")
        try:
            setattr(struct, k, v)
        except TypeError as e:
            raise TypeError(f"{what}.{k}: {e}") from None
        got = getattr(struct, k)
        if isinstance(v, int) and not isinstance(v, bool) and got != v:
            raise ValueError(f"{what}.{k} = {v} does not fit its C type (it would be {got})")


def int_arg(name, v, lo, hi):
    """An integer argument in [lo, hi], as ``int(v)`` (a c_int would wrap)."""
    i = int(v)
    if not lo <= i <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {i}")
    return i


INT_MAX = 2**31 - 1


class Gate:
    """The calls into one model from several Python threads (ctypes releases
    the GIL, so they run at once). Shared calls (a state's steps, chunks and
    draws, which use the state's own scratch; saving) run together;
    exclusive ones run alone: the model's own scratch (its forward, a
    training step), changing its weights, freeing it. Exclusive is re-entrant
    for the thread that holds it (close() runs its optimizers' finalizers)."""

    def __init__(self):
        self._c = threading.Condition()
        self._shared = 0
        self._mine = threading.local()  # this thread's shared holds
        self._owner = None
        self._depth = 0

    @contextlib.contextmanager
    def shared(self):
        me = threading.get_ident()
        with self._c:
            while self._owner is not None and self._owner != me:
                self._c.wait()
            self._shared += 1
            self._mine.n = getattr(self._mine, "n", 0) + 1
        try:
            yield
        finally:
            with self._c:
                self._shared -= 1
                self._mine.n -= 1
                self._c.notify_all()

    @contextlib.contextmanager
    def exclusive(self):
        # This thread's own shared holds do not block it: between its calls
        # it runs Python code, where the collector may finalize (and free) an
        # optimizer of this model; waiting for itself would never end
        me = threading.get_ident()
        with self._c:
            if self._owner == me:
                self._depth += 1
            else:
                while self._owner is not None or self._shared - getattr(self._mine, "n", 0):
                    self._c.wait()
                self._owner, self._depth = me, 1
        try:
            yield
        finally:
            with self._c:
                self._depth -= 1
                if not self._depth:
                    self._owner = None
                    self._c.notify_all()
