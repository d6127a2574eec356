"""ctypes mirrors of the structures in mamba.h, field for field and in order.

Every layout here is checked against the library's own sizeof at import
(mb_struct_size, in _ffi), so a mamba.h that changed under these bindings
fails loudly at ``import libmamba`` instead of corrupting memory later; the
tests also round-trip every mb_config field through a checkpoint, which a
reordering of two fields of the same size would not survive."""

import ctypes
from ctypes import c_double, c_float, c_int, c_int64, c_uint64, c_void_p

MAX_POOL = 4  # MB_MAX_POOL
RC_MAX_VOCAB = 64  # MB_RC_MAX_VOCAB

# enum values: a C enum is an int on every ABI we build for
INIT_S4D_REAL, INIT_S4D_LIN = 0, 1  # mb_ssm_init
ARCH_LM, ARCH_SASHIMI, ARCH_BIDIR = 0, 1, 2  # mb_arch


class ConfigStruct(ctypes.Structure):
    """mb_config: libmamba.Config adds the Python conveniences."""

    _fields_ = [
        ("d_model", c_int),
        ("n_layer", c_int),
        ("vocab_size", c_int),
        ("d_state", c_int),
        ("d_conv", c_int),
        ("expand", c_int),
        ("dt_rank", c_int),
        ("init", c_int),
        ("rms_norm", c_int),
        ("tie_embeddings", c_int),
        ("pad_vocab_size_multiple", c_int),
        ("bias", c_int),
        ("conv_bias", c_int),
        ("norm_eps", c_float),
        ("dt_min", c_float),
        ("dt_max", c_float),
        ("dt_init_floor", c_float),
        ("n_classes", c_int),
        ("arch", c_int),
        ("n_pool", c_int),
        ("pool", c_int * MAX_POOL),
        ("pool_expand", c_int),
        ("mlp", c_int),
        ("rc_equivariant", c_int),
        ("rc_complement", c_int * RC_MAX_VOCAB),
    ]


class OptimConfig(ctypes.Structure):
    """mb_optim_config: AdamW, warmup and cosine decay, clipping."""

    _fields_ = [
        ("lr", c_float),
        ("min_lr", c_float),
        ("beta1", c_float),
        ("beta2", c_float),
        ("eps", c_float),
        ("weight_decay", c_float),
        ("grad_clip", c_float),
        ("warmup_steps", c_int64),
        ("total_steps", c_int64),
    ]


class LossStats(ctypes.Structure):
    """mb_loss_stats: summed natural-log cross-entropy, counted targets, hits."""

    _fields_ = [("loss_sum", c_double), ("count", c_int64), ("correct", c_int64)]


class Sampler(ctypes.Structure):
    """mb_sampler: temperature, nucleus and the seed of the draws."""

    _fields_ = [("temperature", c_float), ("top_p", c_float), ("seed", c_uint64), ("top_k", c_int)]


class ChunkOut(ctypes.Structure):
    """mb_chunk_out: host buffers (NULL = not wanted) of a scoring chunk."""

    _fields_ = [
        ("targets", c_void_p),  # const int32_t * (B, L)
        ("logprob", c_void_p),  # double * (B, L)
        ("stats", ctypes.POINTER(LossStats)),
        ("logits", c_void_p),  # float * (B, L, vocab padded)
        ("hsum", c_void_p),  # float * (B, d_model), added to
    ]


# the names mb_struct_size knows, and our mirror of each
MIRRORS = {
    "mb_config": ConfigStruct,
    "mb_optim_config": OptimConfig,
    "mb_loss_stats": LossStats,
    "mb_sampler": Sampler,
    "mb_chunk_out": ChunkOut,
}
