"""Where data and caches live."""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "SPIKING_DATA"
CACHE_ENV = "SPIKING_CACHE"


def cache_root() -> Path:
    """The cache folder: ``$SPIKING_CACHE``, else ``$XDG_CACHE_HOME/spiking``, else
    ``~/.cache/spiking``. Never beside the data, which may be read-only."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "spiking"
    return Path.home() / ".cache" / "spiking"


def download_dir() -> Path:
    """Where ``spiking data download nmnist`` puts N-MNIST by default (and discovery looks)."""
    return cache_root() / "nmnist"


def sample_cache_dir() -> Path:
    """Where data sets keep their packed, processed samples (``NMNIST(cache=True)``)."""
    return cache_root() / "samples"
