"""Which N-MNIST data to use, decided in one place.

Order: an explicit path (``--data``), then ``$SPIKING_DATA``, then the user cache
(``cache_root()/nmnist``, where ``spiking data download nmnist`` puts it), then a synthetic
default made on demand from font-rendered digits and cached.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from spiking.data.events import PathLike
from spiking.data.glyphs import render_digits
from spiking.data.nmnist import find_sources
from spiking.data.paths import DATA_ENV, cache_root, download_dir
from spiking.data.synth import synthesize_dataset
from spiking.errors import DataError

SYNTHETIC_MARKER = "SYNTHETIC.txt"
SYNTHETIC_VERSION = 1
NMNIST_SUBFOLDERS = ("nmnist", "nmnist-small", "N-MNIST", "NMNIST")


@dataclass(frozen=True)
class DataChoice:
    """The N-MNIST root chosen, where the choice came from, and a sentence for the user."""

    path: Path
    origin: str  # "explicit", "environment", "cache" or "synthetic"
    message: str

    @property
    def synthetic(self) -> bool:
        return self.origin == "synthetic" or (self.path / SYNTHETIC_MARKER).exists()


def nmnist_root(path: PathLike) -> Optional[Path]:
    """The N-MNIST folder at ``path`` or in one of its usual subfolders (``nmnist``,
    ``nmnist-small``, ...), or None."""
    path = Path(path).expanduser()
    for candidate in (path, *(path / name for name in NMNIST_SUBFOLDERS)):
        if candidate.exists() and find_sources(candidate):
            return candidate
    return None


def synthetic_default_path(train_per_class: int = 100, test_per_class: int = 20,
                           seed: int = 0) -> Path:
    """Where the synthetic default of this size lives in the cache."""
    return cache_root() / (f"nmnist-synthetic-v{SYNTHETIC_VERSION}-"
                           f"{train_per_class}x{test_per_class}-seed{seed}")


def make_synthetic_nmnist(out_dir: PathLike, train_per_class: int = 100,
                          test_per_class: int = 20, seed: int = 0,
                          progress: bool = True) -> Path:
    """Write an N-MNIST-like data set made from font-rendered, randomly distorted digits
    passed through the saccade synthesiser: ``out_dir/Train`` and ``out_dir/Test`` plus a
    ``SYNTHETIC.txt`` that says so. Built beside ``out_dir`` and renamed when complete."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        for split, per_class, stream in (("Train", train_per_class, 0),
                                         ("Test", test_per_class, 1)):
            labels = np.tile(np.arange(10), per_class)
            images = render_digits(labels, seed=2 * seed + stream)
            synthesize_dataset(images, labels, staging, split=split, seed=2 * seed + stream,
                               progress=progress)
        (staging / SYNTHETIC_MARKER).write_text(
            "Synthetic N-MNIST-like data, not recordings.\n"
            f"Digits 0-9 rendered from matplotlib's bundled fonts with random affine and "
            f"elastic distortions, converted to events by spiking.data.synth.\n"
            f"{train_per_class} train and {test_per_class} test samples per digit, seed {seed}.\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def discover(explicit: Optional[PathLike] = None, *, synthetic_train_per_class: int = 100,
             synthetic_test_per_class: int = 20, seed: int = 0,
             progress: bool = True) -> DataChoice:
    """Choose the N-MNIST data: ``explicit``, ``$SPIKING_DATA``, the user cache, or the
    synthetic default (made now if missing). An explicit path without N-MNIST data is an
    error; a ``$SPIKING_DATA`` without it is reported in the message and skipped."""
    if explicit is not None:
        root = nmnist_root(explicit)
        if root is None:
            raise DataError(f"{explicit}: no N-MNIST data here (expected Train/ and Test/ "
                            f"folders or Train.zip/Test.zip, possibly in nmnist/)")
        return DataChoice(root, "explicit", f"Using N-MNIST from {root} (given with --data).")
    note = ""
    environment = os.environ.get(DATA_ENV)
    if environment:
        root = nmnist_root(environment)
        if root is not None:
            return DataChoice(root, "environment",
                              f"Using N-MNIST from {root} ({DATA_ENV}={environment}).")
        note = f"{DATA_ENV}={environment} holds no N-MNIST data. "
    cached = download_dir()
    root = nmnist_root(cached)
    if root is not None:
        return DataChoice(root, "cache", note + f"Using N-MNIST from the user cache {root}.")
    path = synthetic_default_path(synthetic_train_per_class, synthetic_test_per_class, seed)
    made = ""
    if not (path / SYNTHETIC_MARKER).exists():
        make_synthetic_nmnist(path, synthetic_train_per_class, synthetic_test_per_class, seed,
                              progress)
        made = "made now and "
    return DataChoice(path, "synthetic", note + (
        f"No N-MNIST data found (no --data, no {DATA_ENV}, nothing in {cached}): using "
        f"SYNTHETIC N-MNIST-like data ({made}cached in {path}; "
        f"{synthetic_train_per_class} train and {synthetic_test_per_class} test samples per "
        f"digit, font-rendered digits through the saccade synthesiser). Results on it are not "
        f"N-MNIST results: run 'spiking data download nmnist' or pass --data for real data."))
