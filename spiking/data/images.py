"""Static digit images: MNIST idx files, ``.npz`` arrays and PNG files."""
from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from spiking.data.events import PathLike
from spiking.errors import DataError

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801

Images = Tuple[np.ndarray, Optional[np.ndarray]]


def _read_maybe_gzip(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read: {error}") from error


def read_idx(path: PathLike) -> np.ndarray:
    """Read an MNIST idx file (optionally gzipped): uint8 images [N, H, W] or labels [N]."""
    path = Path(path)
    payload = _read_maybe_gzip(path)
    if len(payload) < 8:
        raise DataError(f"{path}: truncated idx file")
    magic = int.from_bytes(payload[:4], "big")
    if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
        raise DataError(f"{path}: not an MNIST idx file (magic number {magic:#010x})")
    dims = magic & 0xFF
    shape = tuple(int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    start = 4 + 4 * dims
    if len(payload) - start != int(np.prod(shape)):
        raise DataError(f"{path}: truncated idx file: {len(payload) - start} bytes of data for "
                        f"shape {shape}")
    return np.frombuffer(payload, dtype=np.uint8, offset=start).reshape(shape)


def _to_uint8_gray(image: np.ndarray, source: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[..., :3]
        image = image.mean(axis=2)
    if image.ndim != 2:
        raise DataError(f"{source}: expected a grayscale or RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        scale = 255.0 if image.max(initial=0) <= 1.0 else 1.0
        image = np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)
    return image


def read_png(path: PathLike) -> np.ndarray:
    """One PNG as a uint8 grayscale image."""
    import matplotlib.image

    try:
        return _to_uint8_gray(matplotlib.image.imread(path), str(path))
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: cannot read PNG: {error}") from error


def load_images(path: PathLike) -> Images:
    """Grayscale digit images and their labels (None when the source has none).

    path: an MNIST idx images file (``*-images-idx3-ubyte[.gz]``; labels come from the
    matching ``*-labels-idx1-ubyte[.gz]`` beside it, if present); an ``.npz`` with
    ``images`` (and ``labels``); a ``.png``; or a folder of PNGs, either in digit
    subfolders ``<digit>/*.png`` (labelled) or flat (unlabelled).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return _load_png_folder(path)
    name = path.name
    if name.endswith(".npz"):
        with np.load(path) as archive:
            keys = [k for k in ("images", "x", "x_train", "x_test") if k in archive.files]
            if not keys:
                raise DataError(f"{path}: no 'images' array (found {archive.files})")
            images = archive[keys[0]]
            label_key = next((k for k in ("labels", "y", "y_train", "y_test")
                              if k in archive.files), None)
            labels = archive[label_key].astype(np.int64) if label_key else None
        return np.stack([_to_uint8_gray(im, str(path)) for im in images]), labels
    if name.endswith(".png"):
        return read_png(path)[None], None
    if "idx3" in name:
        images = read_idx(path)
        label_path = path.with_name(name.replace("images-idx3", "labels-idx1"))
        if not label_path.exists() and label_path.suffix == ".gz":
            label_path = label_path.with_suffix("")
        labels = read_idx(label_path).astype(np.int64) if label_path.exists() else None
        if labels is not None and labels.size != len(images):
            raise DataError(f"{label_path}: {labels.size} labels for {len(images)} images")
        return images, labels
    raise DataError(f"{path}: unknown image format (expected MNIST idx, .npz, .png or a folder)")


def _load_png_folder(folder: Path) -> Images:
    digit_folders = sorted(p for p in folder.iterdir()
                           if p.is_dir() and re.fullmatch(r"[0-9]", p.name))
    if digit_folders:
        files = [(f, int(d.name)) for d in digit_folders for f in sorted(d.glob("*.png"))]
    else:
        files = [(f, -1) for f in sorted(folder.glob("*.png"))]
    if not files:
        raise DataError(f"{folder}: no PNG images (expected <digit>/*.png or *.png)")
    images = [read_png(f) for f, _ in files]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise DataError(f"{folder}: images of different sizes {sorted(shapes)}")
    labels = np.array([label for _, label in files], dtype=np.int64)
    return np.stack(images), (labels if digit_folders else None)
