"""Devices and models: load, save, logits, log-likelihoods, embeddings."""

import ctypes
import weakref

import numpy as np

from . import _structs as S
from ._ffi import Gate, LibmambaError, check, check_handle, gated_release, int_arg, lib, path_arg, release
from .config import Config

IGNORE_INDEX = -100  # MB_IGNORE_INDEX: a target that adds nothing
CHUNK = 65536  # tokens per row and pass when scoring, as `mamba-dna score`


def _ptr(a):
    """The address of a numpy array for a c_void_p argument (None: NULL)."""
    return None if a is None else a.ctypes.data


def as_tokens(tokens, name="tokens"):
    """tokens as a C-contiguous int32 array (B, L), and whether it was 1-D.

    Any integer array or sequence; values that do not fit in int32 are refused
    here (a cast would wrap them into the vocabulary), the rest by the library.
    """
    a = np.asarray(tokens)
    if a.dtype.kind not in "iu" and not (a.size == 0 and a.dtype.kind == "f"):
        raise TypeError(f"{name} must be integers, not {a.dtype}")
    single = a.ndim == 1
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be (L,) or (B, L), not of shape {a.shape}")
    t = np.ascontiguousarray(a.reshape(1, -1) if single else a, dtype=np.int32)
    if t.size and not np.array_equal(t, a.reshape(t.shape)):
        raise ValueError(f"{name}: values outside int32")
    return t, single


def next_token_targets(t):
    """The targets of scoring tokens t (B, L): t shifted left, the last ignored."""
    tgt = np.full_like(t, IGNORE_INDEX)
    tgt[:, :-1] = t[:, 1:]
    return tgt


class Context:
    """A device: "cpu", "cuda" or "cuda:N" (mb_ctx).

    Models keep their context alive; one context can serve several models.
    ``threads`` sets the CPU threads (0 = all cores); ``tf32`` lets a GPU run
    fp32 GEMMs on TF32 tensor cores; ``precision`` "fp32", "tf32" (as
    ``tf32``) or "bf16" (mb_ctx_set_precision: bf16 as mamba_ssm's autocast
    rounds: training, forward and chunks of every model; not sampling).
    """

    def __init__(self, device="cpu", threads=0, tf32=False, precision="fp32"):
        if precision not in ("fp32", "tf32", "bf16"):
            raise ValueError(f"precision must be 'fp32', 'tf32' or 'bf16', not {precision!r}")
        if not isinstance(device, str):
            raise TypeError(f"device must be a string ('cpu', 'cuda', 'cuda:N'), not {type(device).__name__}")
        threads = int_arg("threads", threads, 0, 4096)
        self._h = check_handle(lib.mb_ctx_create(path_arg(device)))
        self._free = weakref.finalize(self, release, lib.mb_ctx_free, self._h)
        if threads:
            lib.mb_ctx_set_threads(self._h, threads)
        if tf32 or precision == "tf32":
            lib.mb_ctx_set_tf32(self._h, 1)
        if precision == "bf16":
            check(lib.mb_ctx_set_precision(self._h, 1))

    @property
    def name(self):
        """The device's name, as the library reports it."""
        return lib.mb_ctx_name(self._h).decode()

    def __repr__(self):
        return f"Context({self.name!r})"


def _context(device):
    return device if isinstance(device, Context) else Context(device)


class Model:
    """A libmamba model (mb_model): the residual LM or the SaShiMi U-Net.

    Made by :func:`load` or :func:`create`. Freed by ``close()``, at the end
    of a ``with`` block, or when collected; states and optimizers made from it
    keep it alive. Token arrays are (L,) for one sequence or (B, L); results
    have the same leading shape.
    """

    def __init__(self, handle, ctx):
        self._h = handle
        self.context = ctx
        # calls from several threads (Gate says which run together)
        self._gate = Gate()
        # the optimizer's free reads the model: optimizers are closed first
        self._dependents = []
        self._free = weakref.finalize(self, gated_release, self._gate, lib.mb_model_free, handle, ctx)

    @classmethod
    def load(cls, path, device="cpu"):
        """mb_model_load: one of our checkpoints, or a folder that transformers'
        save_pretrained or mamba_ssm wrote."""
        ctx = _context(device)
        return cls(check_handle(lib.mb_model_load(ctx._h, path_arg(path))), ctx)

    @classmethod
    def create(cls, config=None, seed=0, device="cpu", **fields):
        """A new model of ``config`` (a Config; or Config(**fields)), weights
        drawn as mamba_ssm initializes them from ``seed``."""
        cfg = Config(**fields) if config is None else Config.from_buffer_copy(config).update(**fields)
        ctx = _context(device)
        return cls(check_handle(lib.mb_model_create(ctx._h, ctypes.byref(cfg), int(seed))), ctx)

    # ---- handle -------------------------------------------------------------
    @property
    def handle(self):
        """The mb_model pointer (raises once the model is closed)."""
        if not self._free.alive:
            raise LibmambaError("model is closed")
        return self._h

    def close(self):
        """Free the model now (its optimizers first; states may outlive it),
        once the calls other threads are making into it have returned."""
        with self._gate.exclusive():
            for f in self._dependents:
                f()
            self._free()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- description ----------------------------------------------------------
    @property
    def config(self):
        """A copy of the model's configuration."""
        return Config._copy_of(lib.mb_model_config(self.handle))

    @property
    def vocab_size(self):
        return self.config.vocab_size

    @property
    def vocab_padded(self):
        """Columns of the logits: vocab_size padded as the embedding is."""
        return self.config.vocab_padded

    @property
    def d_model(self):
        return self.config.d_model

    @property
    def num_params(self):
        return lib.mb_model_num_params(self.handle)

    @property
    def run_id(self):
        """The training run these weights belong to (saved with them)."""
        return lib.mb_model_run_id(self.handle)

    def __repr__(self):
        if not self._free.alive:
            return "Model(closed)"
        c = self.config
        return f"Model(d_model={c.d_model}, n_layer={c.n_layer}, vocab_size={c.vocab_size}, device={self.context.name!r})"

    # ---- files ------------------------------------------------------------------
    def save(self, path):
        """mb_model_save: a safetensors checkpoint, written whole or not at all."""
        path = path_arg(path)
        with self._gate.shared():
            check(lib.mb_model_save(self.handle, path))

    def save_hf(self, folder):
        """mb_model_save_hf: a folder transformers' MambaForCausalLM loads."""
        folder = path_arg(folder)
        with self._gate.shared():
            check(lib.mb_model_save_hf(self.handle, folder))

    # ---- whole sequences -----------------------------------------------------------
    def logits(self, tokens):
        """mb_model_forward: float32 logits (..., L, vocab_padded) of every position."""
        t, single = as_tokens(tokens)
        B, L = t.shape
        out = np.empty((B, L, self.vocab_padded), np.float32)
        # the model's own scratch: one forward at a time
        with self._gate.exclusive():
            check(lib.mb_model_forward(self.handle, _ptr(t), B, L, None, _ptr(out), None))
        return out[0] if single else out

    def _chunks(self, t, chunk, **want):
        """Runs t (B, L) through a fresh state in chunks of ``chunk`` columns,
        yielding (start, n, ChunkOut) after each; ``want`` names what to compute
        (targets=..., logprob=True, hsum=True)."""
        B, L = t.shape
        if chunk < 1:
            raise ValueError("chunk must be >= 1")
        with self.state(B) as s:
            for p in range(0, L, chunk):
                n = min(chunk, L - p)
                tok = np.ascontiguousarray(t[:, p : p + n])
                bufs = {}
                if "targets" in want:
                    bufs["targets"] = np.ascontiguousarray(want["targets"][:, p : p + n])
                if want.get("logprob"):
                    bufs["logprob"] = np.empty((B, n), np.float64)
                if want.get("hsum"):
                    bufs["hsum"] = np.zeros((B, self.d_model), np.float32)
                out = S.ChunkOut(**{k: _ptr(v) for k, v in bufs.items()})
                with self._gate.shared(), s._gate.exclusive():
                    check(lib.mb_model_forward_chunk_ex(self.handle, s.handle, _ptr(tok), n, ctypes.byref(out)))
                yield p, n, bufs

    def log_probs(self, tokens, chunk=CHUNK):
        """log p(x[t+1] | x[..t]) at every position t, float64 (..., L); the
        last position has no next token and gives 0. Natural log, softmax over
        the padded vocabulary (as training and ``mamba-dna score`` take it).
        Causal models only: a bidirectional one sees the next token."""
        self._need_causal("log_probs")
        t, single = as_tokens(tokens)
        out = np.zeros(t.shape, np.float64)
        if t.shape[1]:
            for p, n, b in self._chunks(t, chunk, targets=next_token_targets(t), logprob=True):
                out[:, p : p + n] = b["logprob"]
        return out[0] if single else out

    def log_likelihood(self, tokens, chunk=CHUNK):
        """Natural-log sum over t >= 1 of log p(x[t] | x[..t-1]) per sequence:
        a float for (L,) tokens, float64 (B,) for (B, L).

        Computed as ``mamba-dna score`` computes its log_likelihood column:
        chunks of ``chunk`` tokens with the state carried, each chunk's
        per-token values summed left to right in double, the chunks' sums
        added; for the same tokens and chunk it gives the same number.
        Causal models only: a bidirectional one sees the next token."""
        self._need_causal("log_likelihood")
        t, single = as_tokens(tokens)
        ll = np.zeros(t.shape[0], np.float64)
        if t.shape[1]:
            for _, _, b in self._chunks(t, chunk, targets=next_token_targets(t), logprob=True):
                ll += np.cumsum(b["logprob"], axis=1)[:, -1]  # cumsum: left to right, as the C loop
        return float(ll[0]) if single else ll

    def _need_causal(self, what):
        if self.config.arch == S.ARCH_BIDIR:
            raise LibmambaError(f"{what}: a bidirectional model (mamba-bidir) has no next-token likelihood: it "
                                "sees the next token (its chunks are windows read whole)")

    def embed(self, tokens, chunk=CHUNK):
        """Mean over positions of the final normed hidden state (the LM head's
        input, the classification head's pooled vector): float32 (..., d_model),
        summed per chunk (mb_model_forward_chunk_ex's hsum) into double, as
        ``mamba-dna embed``. An empty sequence gives nan."""
        t, single = as_tokens(tokens)
        acc = np.zeros((t.shape[0], self.d_model), np.float64)
        for _, _, b in self._chunks(t, chunk, hsum=True):
            acc += b["hsum"]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (acc / t.shape[1]).astype(np.float32)
        return mean[0] if single else mean

    # ---- recurrent inference ---------------------------------------------------------
    def state(self, batch=1):
        """A recurrent state for ``batch`` sequences (libmamba.State)."""
        from .state import State

        return State(self, batch)

    def set_int8(self, on=True):
        """CPU inference with int8 weights (mb_model_set_int8): steps,
        sampling and chunks of at most 8 rows read int8 copies of the
        projections and the head, a quarter of the bytes; the fp32 weights
        stay for training and saving. An optimizer step drops the copies."""
        with self._gate.exclusive():
            check(lib.mb_model_set_int8(self.handle, 1 if on else 0))
        return self

    def set_bf16(self, on=True):
        """GPU inference with bf16 weights (mb_model_set_bf16): the steps'
        matrices read as bf16, half the bytes; fp32 arithmetic and state."""
        with self._gate.exclusive():
            check(lib.mb_model_set_bf16(self.handle, 1 if on else 0))
        return self

    _RECOMPUTE = {None: 0, "off": 0, "layers": 1, "stack": 2, "inner": 3, "auto": 4}
    _RECOMPUTE_NAME = {0: "off", 1: "layers", 2: "stack", 3: "inner"}

    def set_recompute(self, mode="layers", chunk=None):
        """What training keeps for the backward (mb_model_set_recompute):
        None or "off", every layer's activations (the fastest); "layers",
        each layer's input, the layer recomputed in backward over chunks of
        ``chunk`` tokens of a sequence (default 131072); "stack", for
        sequences longer than ``chunk`` (default 65536) only the states
        between chunks, the whole stack recomputed a chunk at a time (memory
        follows the chunk, not the length; about 15% slower); "inner", as
        "layers" keeping each layer's in_proj output too (2 d_inner floats a
        token a layer), so the recompute skips in_proj, its largest product;
        "auto", at each new training shape "inner" where the device has room
        for it (and a sixteenth of its memory besides), else "layers" where
        that has room, else "stack" (on the CPU always "layers"; ``recompute``
        says which it took). The gradients are the same (to rounding for
        "stack"). ``chunk`` 0: whole sequences."""
        if mode not in self._RECOMPUTE:
            raise ValueError(
                f"recompute mode {mode!r}: expected None, 'off', 'layers', 'stack', 'inner' or 'auto'")
        if chunk is not None and (not isinstance(chunk, int) or chunk < 0):
            raise ValueError(f"recompute chunk {chunk!r}: expected a token count >= 0")
        with self._gate.exclusive():
            lib.mb_model_set_recompute(self.handle, self._RECOMPUTE[mode])
            if chunk is not None:
                lib.mb_model_set_recompute_chunk(self.handle, chunk)
        return self

    @property
    def recompute(self):
        """The recompute mode training uses ("off", "layers", "stack" or
        "inner"): as set, but for "auto" the one it took for the last
        training shape ("layers" before the first)."""
        with self._gate.shared():
            return self._RECOMPUTE_NAME[lib.mb_model_get_recompute(self.handle)]

    def generate(self, prompt, n, temperature=1.0, top_p=1.0, seed=0, top_k=0):
        """Continue ``prompt`` (L >= 1 tokens, or (B, L)) by ``n`` drawn tokens:
        int32 (n,) or (B, n). The prompt but its last token goes through the
        parallel forward; then mb_model_sample draws from the last onwards."""
        t, single = as_tokens(prompt, "prompt")
        if t.shape[1] < 1:
            raise ValueError("prompt: at least one token")
        with self.state(t.shape[0]) as s:
            if t.shape[1] > 1:
                s.feed(t[:, :-1])
            out = s.sample(t[:, -1], n, temperature=temperature, top_p=top_p, seed=seed, top_k=top_k)
        return out[0] if single else out

    # ---- training -----------------------------------------------------------------------
    def optimizer(self, **settings):
        """An AdamW optimizer over this model's parameters (libmamba.AdamW)."""
        from .train import AdamW

        return AdamW(self, **settings)


def load(path, device="cpu"):
    """Load a model: a libmamba checkpoint, or a transformers / mamba_ssm folder."""
    return Model.load(path, device)


def create(config=None, seed=0, device="cpu", **fields):
    """A new model from a Config or from Config's fields by keyword."""
    return Model.create(config, seed, device, **fields)
