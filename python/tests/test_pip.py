"""`pip install ./python` gives an importable package of the library's
version (installed into a temporary folder: offline, no build isolation, so
it needs only pip and setuptools)."""

import os
import shutil
import subprocess
import sys

from conftest import ROOT

import libmamba


def test_pip_install(tmp_path):
    # from a copy: setuptools writes build/ and *.egg-info beside the sources
    src = tmp_path / "python"
    shutil.copytree(ROOT / "python", src, ignore=shutil.ignore_patterns("tests", "__pycache__", "build", "*.egg-info"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(src)],
                   check=True, capture_output=True, env={**os.environ, "PIP_NO_CACHE_DIR": "1"},
                   cwd=tmp_path)
    code = ("import importlib.metadata as md, libmamba; "
            "print(libmamba.__file__, libmamba.__version__, md.version('libmamba'))")
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(target)},
                       capture_output=True, text=True, check=True, cwd=tmp_path)
    where, version, dist_version = r.stdout.split()
    assert where.startswith(str(target))
    assert version == dist_version == libmamba.__version__
