"""MNIST for the diffusion models, read from the data root (read-only).

The root is the folder given (``--data``), else ``$SPIKING_DATA`` (the folder
holding ``mnist/``), else ``<repo>/../shared/data`` when it exists. Training images come from
``mnist/mnist_train_approx.npz``; the test set from the idx files.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from spiking.errors import DataError

from .config import MNIST_SIZE, DataConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


DataRoot = Optional[str | Path]


def data_root(root: DataRoot = None) -> Path:
    """The folder that holds ``mnist/`` (``root`` may also name ``mnist/`` itself)."""
    if root is not None:
        root = Path(root)
        root = root.parent if root.name == "mnist" and not (root / "mnist").is_dir() else root
        how = f"--data {root}"
    elif os.environ.get("SPIKING_DATA"):
        root = Path(os.environ["SPIKING_DATA"])
        how = f"SPIKING_DATA={root}"
    else:
        root = REPO_ROOT.parent / "shared" / "data"
        how = f"the default {root}"
    if not (root / "mnist").is_dir():
        raise DataError(f"MNIST not found: {how} has no mnist/ folder; set SPIKING_DATA to the "
                        "folder that holds mnist/ (see shared/data/README.md)")
    return root


def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte idx file")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: {data.size} bytes of data, header says {shape}")
    return data.reshape(shape)


def mnist_train(root: DataRoot = None) -> Tuple[np.ndarray, np.ndarray]:
    """Training images uint8 [60000, 28, 28] and labels uint8 [60000]."""
    path = data_root(root) / "mnist" / "mnist_train_approx.npz"
    try:
        with np.load(path) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{path}: cannot read images/labels ({error})") from None
    if images.shape[1:] != (MNIST_SIZE, MNIST_SIZE) or len(images) != len(labels):
        raise DataError(f"{path}: expected images [N, 28, 28] and N labels, got {images.shape}, {labels.shape}")
    return images, labels


def mnist_test(root: DataRoot = None) -> Tuple[np.ndarray, np.ndarray]:
    """Test images uint8 [10000, 28, 28] and labels uint8 [10000]."""
    folder = data_root(root) / "mnist"
    images = _read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = _read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{folder}: {images.shape[0]} test images but {labels.shape[0]} labels")
    return images, labels


def to_model_images(pixels: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 [N, h, w] -> float [N, 1, size, size] in [-1, 1], padded evenly with -1 (black)."""
    images = (pixels.float() / 127.5 - 1.0)[:, None]
    pad = (image_size - images.shape[-1]) // 2
    return torch.nn.functional.pad(images, (pad, pad, pad, pad), value=-1.0)


def to_digit_images(images: torch.Tensor) -> torch.Tensor:
    """Model images [N, 1, size, size] in [-1, 1] -> [N, 1, 28, 28] in [0, 1] (centre crop)."""
    crop = (images.shape[-1] - MNIST_SIZE) // 2
    if crop:
        images = images[..., crop:crop + MNIST_SIZE, crop:crop + MNIST_SIZE]
    return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def training_images(config: DataConfig, root: DataRoot = None) -> torch.Tensor:
    """The training set as uint8 [N, 28, 28] (the trainer converts each batch)."""
    images, _ = mnist_train(root)
    if config.train_subset is not None:
        images = images[: config.train_subset]
    return torch.from_numpy(np.ascontiguousarray(images))
