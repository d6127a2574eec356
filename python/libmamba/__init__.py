"""libmamba: Mamba (selective state-space) models from Python.

The bindings call the C library (libmamba.so) through ctypes; arrays go in
and come out as numpy arrays. ``__version__`` is the loaded library's
version (mb_version), the same release as this package's.

    import libmamba
    m = libmamba.load("dna.safetensors")          # or a transformers folder
    ll = m.log_likelihood(tokens)                 # natural log, as mamba-dna score
    emb = m.embed(tokens)                         # mean final hidden state
    logits = m.logits(tokens)                     # (L, vocab_padded)
    more = m.generate(tokens, 100, top_p=0.95, seed=1)

See :class:`Model`, :class:`State`, :class:`AdamW` and :class:`Config`.
"""

from ._ffi import VERSION as __version__
from ._ffi import LibmambaError
from ._structs import ARCH_BIDIR, ARCH_LM, ARCH_SASHIMI, INIT_S4D_LIN, INIT_S4D_REAL
from .config import Config
from .model import IGNORE_INDEX, Context, Model, create, load
from .state import State
from .train import AdamW, StepResult

__all__ = [
    "__version__",
    "LibmambaError",
    "Config",
    "Context",
    "Model",
    "State",
    "AdamW",
    "StepResult",
    "load",
    "create",
    "IGNORE_INDEX",
    "ARCH_BIDIR",
    "ARCH_LM",
    "ARCH_SASHIMI",
    "INIT_S4D_REAL",
    "INIT_S4D_LIN",
]
