"""The package itself: version, the mirrored structures, errors, lifetimes,
and how the library is found."""

import ctypes
import ctypes.util
import gc
import os
import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from conftest import ROOT, random_tokens

import libmamba
from libmamba import _ffi, _structs


def test_version_is_the_library_and_the_package():
    header = (ROOT / "libmamba/include/mamba.h").read_text()
    major, minor, patch = (re.search(rf"#define MB_VERSION_{k} (\d+)", header)[1] for k in ("MAJOR", "MINOR", "PATCH"))
    assert libmamba.__version__ == _ffi.lib.mb_version().decode() == f"{major}.{minor}.{patch}"
    assert re.search(r'#define MB_VERSION "([^"]+)"', header)[1] == libmamba.__version__
    project = re.search(r"project\(libmamba VERSION ([\d.]+)", (ROOT / "CMakeLists.txt").read_text())[1]
    assert libmamba._version.__version__ == project == libmamba.__version__
    meta = tomllib.loads((ROOT / "python/pyproject.toml").read_text())
    assert meta["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "libmamba._version.__version__"


def test_structures_match_the_library():
    for name, mirror in _structs.MIRRORS.items():
        assert _ffi.lib.mb_struct_size(name.encode()) == ctypes.sizeof(mirror), name
    assert _ffi.lib.mb_struct_size(b"no_such_struct") == 0


def test_config_defaults_field_by_field():
    # mb_config_default's values (mamba.h), read through the mirror: a field
    # at the wrong offset reads another field's value
    c = libmamba.Config()
    assert (c.d_model, c.n_layer, c.vocab_size, c.d_state, c.d_conv, c.expand, c.dt_rank) == (2560, 64, 50277, 16, 4, 2, 0)
    assert (c.init, c.rms_norm, c.tie_embeddings, c.pad_vocab_size_multiple, c.bias, c.conv_bias) == (0, 1, 1, 8, 0, 1)
    assert np.float32(c.norm_eps) == np.float32(1e-5)
    assert (np.float32(c.dt_min), np.float32(c.dt_max), np.float32(c.dt_init_floor)) == tuple(np.float32([1e-3, 1e-1, 1e-4]))
    assert (c.n_classes, c.arch) == (0, libmamba.ARCH_LM)
    s = libmamba.Config.sashimi()
    assert (s.arch, s.d_model, s.n_layer, s.vocab_size, s.as_dict()["pool"], s.pool_expand, s.mlp) == (
        libmamba.ARCH_SASHIMI, 64, 2, 256, [4, 4], 2, 0)
    assert c.check().dt_rank == 160 and c.vocab_padded == 50280 and c.d_inner == 5120
    with pytest.raises(TypeError, match="no field 'width'"):
        libmamba.Config(width=3)


# every field away from its default, so a save/load that dropped or swapped
# one would show
LM_FIELDS = dict(d_model=24, n_layer=3, vocab_size=13, d_state=6, d_conv=3, expand=3, dt_rank=5, init="complex",
                 rms_norm=0, tie_embeddings=0, pad_vocab_size_multiple=4, bias=1, conv_bias=0, norm_eps=1e-4,
                 dt_min=2e-3, dt_max=0.2, dt_init_floor=2e-4, n_classes=3)
SASHIMI_FIELDS = dict(d_model=16, n_layer=1, vocab_size=10, d_state=4, pool=[2, 3], pool_expand=3, mlp=1,
                      dt_min=2e-3, dt_max=0.2, n_classes=2)


BIDIR_FIELDS = dict(arch=libmamba.ARCH_BIDIR, d_model=16, n_layer=2, vocab_size=6, d_state=4, pad_vocab_size_multiple=4,
                    rc_equivariant=1, rc_complement=[0, 3, 2, 1, 5, 4], tie_embeddings=0)


@pytest.mark.parametrize("make", [lambda: libmamba.Config(**LM_FIELDS), lambda: libmamba.Config.sashimi(**SASHIMI_FIELDS),
                                  lambda: libmamba.Config(**BIDIR_FIELDS)],
                         ids=["lm", "sashimi", "bidir"])
def test_config_round_trips_through_a_checkpoint(make, tmp_path):
    cfg = make()
    with libmamba.create(cfg, seed=2) as m:
        assert m.config == cfg.check()
        m.save(tmp_path / "m.safetensors")
        tokens = random_tokens((2, 12), cfg.vocab_size)
        with libmamba.load(tmp_path / "m.safetensors") as back:
            assert back.config == cfg, (back.config, cfg)
            np.testing.assert_array_equal(back.logits(tokens), m.logits(tokens))


def test_errors_carry_the_library_message(tiny, tmp_path):
    with pytest.raises(libmamba.LibmambaError, match="nothing-here"):
        libmamba.load(tmp_path / "nothing-here.safetensors")
    with pytest.raises(libmamba.LibmambaError, match=r"token 12 at position 3 is outside the vocabulary \[0, 12\)"):
        tiny.logits([1, 2, 3, 12])
    with pytest.raises(libmamba.LibmambaError, match="d_model"):
        libmamba.create(d_model=0, n_layer=1, vocab_size=4)
    with pytest.raises(libmamba.LibmambaError, match="device"):
        libmamba.Context("tpu")
    with pytest.raises(ValueError, match="outside int32"):
        tiny.logits(np.array([1, 2**32 + 1]))
    with pytest.raises(TypeError):
        tiny.logits([0.5, 1.0])
    with pytest.raises(libmamba.LibmambaError, match="top_p"):
        tiny.generate([1], 3, top_p=0)


def test_lifetimes(tiny):
    # a state keeps its model: dropping every other reference frees nothing
    m = libmamba.create(d_model=16, n_layer=1, vocab_size=12, seed=4)
    want = m.logits([1, 2])[1]
    s = m.state()
    del m
    gc.collect()
    s.step([1])
    np.testing.assert_allclose(s.step([2])[0], want, atol=1e-5)
    # closing the model first is safe: the state refuses, then closes
    m = s.model
    opt = m.optimizer()
    m.close()
    with pytest.raises(libmamba.LibmambaError, match="model is closed"):
        s.step([1])
    with pytest.raises(libmamba.LibmambaError, match="optimizer is closed"):
        opt.step_count
    s.close()
    s.close()  # twice is fine
    assert repr(m) == "Model(closed)"
    with tiny.state(2) as st:
        pass
    with pytest.raises(libmamba.LibmambaError, match="state is closed"):
        st.reset()


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_handles_are_freed():
    # 24 models of d_model 256: 6.6 MB of weights each, as much again of
    # gradients and twice that of AdamW moments; models left behind would
    # grow the process by > 600 MiB
    def one(i):
        m = libmamba.create(d_model=256, n_layer=4, vocab_size=12, seed=i)
        s = m.state(2)
        s.feed(random_tokens((2, 16)))
        opt = m.optimizer()
        opt.step(random_tokens((2, 16)))
        if i % 2:  # half by close(), half by the collector
            s.close(), opt.close(), m.close()

    one(0)
    gc.collect()
    before = _rss_mib()
    for i in range(1, 25):
        one(i)
    gc.collect()
    grown = _rss_mib() - before
    print(f"\nRSS after 24 more models: {grown:+.1f} MiB")
    assert grown < 100


def _import_with(env_changes):
    env = {k: v for k, v in os.environ.items() if k != "LIBMAMBA_LIBRARY"}
    env.update(env_changes, PYTHONPATH=str(ROOT / "python"))
    return subprocess.run([sys.executable, "-c", "import libmamba; print(libmamba.__version__)"],
                          env=env, capture_output=True, text=True)


def test_library_not_found_says_how(tmp_path):
    r = _import_with({"LIBMAMBA_LIBRARY": str(tmp_path / "libmamba.so")})
    assert r.returncode != 0
    assert "ImportError: libmamba: cannot load LIBMAMBA_LIBRARY=" in r.stderr
    assert "cmake --build build" in r.stderr and "build/libmamba/libmamba.so" in r.stderr
    # another library of that name (conda's mamba has one) is not taken for ours
    r = _import_with({"LIBMAMBA_LIBRARY": ctypes.util.find_library("z") or "libz.so.1"})
    assert r.returncode != 0 and "not this libmamba (no mb_version)" in r.stderr


def test_library_from_the_package_folder(tmp_path):
    # a copy of the package with the library beside it, nothing in the environment
    pkg = tmp_path / "libmamba"
    pkg.mkdir()
    for f in (ROOT / "python/libmamba").glob("*.py"):
        (pkg / f.name).write_bytes(f.read_bytes())
    (pkg / "libmamba.so.0").write_bytes(open(os.environ["LIBMAMBA_LIBRARY"], "rb").read())
    env = {k: v for k, v in os.environ.items() if k != "LIBMAMBA_LIBRARY"}
    env["PYTHONPATH"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import libmamba; print(libmamba._ffi.lib._name)"],
                       env=env, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == str(pkg / "libmamba.so.0")


def test_bidirectional_model_embeds_and_refuses_next_token_scores(tmp_path):
    cfg = libmamba.Config(**BIDIR_FIELDS)
    with libmamba.create(cfg, seed=3) as m:
        x = random_tokens((2, 17), cfg.vocab_size)
        comp = np.array(BIDIR_FIELDS["rc_complement"])
        rc = comp[x[:, ::-1]]
        # RC-equivariant: x and its reverse complement pool to the same vector
        # (to float rounding: the BLAS may sum a row by its place in a GEMM,
        # as tests/test_bidir.c says)
        ex, erc = m.embed(x), m.embed(rc)
        np.testing.assert_allclose(erc, ex, rtol=0, atol=1e-6 * np.abs(ex).max())
        lg, lrc = m.logits(x), m.logits(rc)
        want = lg[:, ::-1, :][:, :, comp]
        np.testing.assert_allclose(lrc[:, :, : cfg.vocab_size], want, rtol=0, atol=1e-6 * np.abs(want).max())
        with pytest.raises(libmamba.LibmambaError, match="bidirectional"):
            m.log_likelihood(x)


def test_arguments_that_would_wrap_or_cut(tiny, tmp_path):
    """Numbers a C field or argument cannot hold, and file names with a NUL,
    are refused in Python (ctypes wrapped 2**32 + 8 to 8, and the C string
    ended at the NUL, naming another file)."""
    with pytest.raises(ValueError, match="does not fit"):
        libmamba.Config(d_model=2**32 + 8)
    with pytest.raises(ValueError, match="init must be"):
        libmamba.Config(init="foo")
    with pytest.raises(ValueError, match="embedded null byte"):
        tiny.save(str(tmp_path / "a.st") + "\0.bak")
    assert not (tmp_path / "a.st").exists()
    with pytest.raises(ValueError, match="embedded null byte"):
        libmamba.load(str(tmp_path / "a.st") + "\0x")
    with pytest.raises(ValueError, match="n must be"):
        tiny.state(1).sample([1], 2**32 + 3)
    with pytest.raises(ValueError, match="batch must be"):
        tiny.state(2**31)
    with pytest.raises(ValueError, match="seed must be"):
        tiny.state(1).sample([1], 2, seed=-1)
    with pytest.raises(ValueError, match="threads must be"):
        libmamba.Context(threads=-1)
    with pytest.raises(TypeError, match="device must be a string"):
        libmamba.Context(5)
    # optimizer settings the library refuses: not taken, then NaN weights
    for bad in ({"lr": float("inf")}, {"weight_decay": float("nan")}, {"min_lr": -1.0}):
        with pytest.raises(libmamba.LibmambaError, match="bad optimizer settings"):
            tiny.optimizer(**bad)
