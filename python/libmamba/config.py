"""Model configuration: mamba.h's mb_config with keyword construction."""

import ctypes

from . import _structs as S
from ._ffi import check, lib, set_fields


class Config(S.ConfigStruct):
    """mamba_ssm's MambaConfig, as libmamba's mb_config.

    ``Config(d_model=64, n_layer=2, vocab_size=12)`` starts from the library's
    defaults (mb_config_default: mamba_ssm's, d_model 2560, n_layer 64, vocab
    50277, d_state 16, d_conv 4, expand 2, RMSNorm, tied, padded to 8) and sets
    the fields given; ``Config.sashimi(...)`` starts from the SaShiMi U-Net's.
    ``pool`` takes a list of pooling factors and sets ``n_pool`` with it;
    ``rc_complement`` a list of each token's complement (arch ARCH_BIDIR with
    ``rc_equivariant=1``);
    ``init`` takes "real" or "complex" as well as INIT_S4D_REAL/INIT_S4D_LIN.
    """

    def __init__(self, **fields):
        super().__init__()
        lib.mb_config_default(ctypes.byref(self))
        self.update(**fields)

    @classmethod
    def sashimi(cls, **fields):
        """The small SaShiMi U-Net of mb_config_sashimi_default, then ``fields``."""
        c = cls()
        lib.mb_config_sashimi_default(ctypes.byref(c))
        return c.update(**fields)

    def update(self, **fields):
        """Set fields by name (unknown names are a TypeError); returns self."""
        names = {f[0] for f in self._fields_}
        for k, v in fields.items():
            if k not in names:
                raise TypeError(f"mb_config has no field {k!r}")
            if k == "pool":
                v = list(v)
                if not 1 <= len(v) <= S.MAX_POOL:
                    raise ValueError(f"pool: 1 to {S.MAX_POOL} factors")
                self.n_pool = len(v)
                v = v + [0] * (S.MAX_POOL - len(v))
                self.pool = (ctypes.c_int * S.MAX_POOL)(*v)
                continue
            if k == "rc_complement":
                # one id per token; the rest of the array (padding) maps to itself
                v = list(v)
                if len(v) > S.RC_MAX_VOCAB:
                    raise ValueError(f"rc_complement: at most {S.RC_MAX_VOCAB} tokens")
                v = v + list(range(len(v), S.RC_MAX_VOCAB))
                self.rc_complement = (ctypes.c_int * S.RC_MAX_VOCAB)(*v)
                continue
            if k == "init" and isinstance(v, str):
                if v not in ("real", "complex"):
                    raise ValueError(f"init must be 'real' or 'complex' (or INIT_S4D_REAL, INIT_S4D_LIN), not {v!r}")
                v = {"real": S.INIT_S4D_REAL, "complex": S.INIT_S4D_LIN}[v]
            set_fields(self, {k: v}, "mb_config")
        return self

    def as_dict(self):
        """Every field by name (``pool`` as the n_pool factors in use)."""
        d = {f[0]: getattr(self, f[0]) for f in self._fields_}
        d["pool"] = list(self.pool)[: self.n_pool]
        d["rc_complement"] = list(self.rc_complement)[: self.vocab_size] if self.rc_equivariant else []
        return d

    def __eq__(self, other):
        return isinstance(other, S.ConfigStruct) and bytes(self) == bytes(other)

    def __repr__(self):
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"

    def check(self):
        """mb_config_check: resolves dt_rank 0 ("auto") and checks the ranges."""
        check(lib.mb_config_check(ctypes.byref(self)))
        return self

    @property
    def vocab_padded(self):
        """Rows of the embedding and columns of the logits (vocab_size padded)."""
        return lib.mb_config_vocab_padded(ctypes.byref(self))

    @property
    def d_inner(self):
        """expand * d_model."""
        return lib.mb_config_d_inner(ctypes.byref(self))

    @classmethod
    def _copy_of(cls, ptr):
        """A Config holding a copy of the mb_config at ``ptr``."""
        return cls.from_buffer_copy(ptr.contents)
