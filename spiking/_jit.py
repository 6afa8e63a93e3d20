"""Where compiled numba kernels are cached.

numba invalidates a cached kernel only when the file of the decorated function
changes, not when a function it calls (a model's step, a learning rule) does.
So the cache folder is keyed by a hash of every source file of the package:
any change to the code starts a fresh cache. It lives under the user cache
(``SPIKING_CACHE`` or ~/.cache/spiking), so read-only installs work too. A
``NUMBA_CACHE_DIR`` set by the user wins.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def kernel_cache_dir() -> str:
    package = Path(__file__).resolve().parent
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    root = os.environ.get("SPIKING_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spiking")
    return os.path.join(root, "numba", digest.hexdigest()[:16])


def configure() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    os.environ["NUMBA_CACHE_DIR"] = kernel_cache_dir()
    import sys

    if "numba" in sys.modules:  # numba read its config already: update it
        import numba

        numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
