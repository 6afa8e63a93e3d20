"""MNIST-like digit images rendered from the fonts that ship with matplotlib.

Each digit glyph is rasterised once per font at 4x resolution, then every sample gets
a random stroke width, a random affine map (rotation, scale, shear, shift) and a smooth
elastic distortion (Simard et al. 2003), is box-filtered down to 28 x 28 and centred on
its centre of mass like MNIST (20 x 20 box, centre of mass at (14, 14)).
"""
from __future__ import annotations

from functools import lru_cache
import pathlib
from typing import List, Sequence, Tuple

import numpy as np
from scipy import ndimage, special

IMAGE_SIZE = 28
DIGIT_BOX = 20  # MNIST fits each digit into a 20 x 20 box
SUPERSAMPLE = 4
STROKE_SIGMA = 0.75 * SUPERSAMPLE  # blur used to thicken or thin strokes, fine pixels
PEN_BLUR_PX = 0.5  # soft stroke edges like MNIST's anti-aliasing, image pixels
# DejaVu and STIX fonts are part of matplotlib's own data files.
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
              "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
              "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf",
              "STIXGeneralItalic.ttf")


def font_paths() -> List[pathlib.Path]:
    """The bundled font files that exist in this matplotlib installation."""
    import matplotlib

    folder = pathlib.Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    found = [folder / name for name in FONT_FILES if (folder / name).exists()]
    if not found:
        raise RuntimeError(f"no bundled fonts found in {folder}")
    return found


@lru_cache(maxsize=None)
def glyph_mask(font: str, digit: int) -> np.ndarray:
    """Anti-aliased coverage (float, 0..1) of one digit, its larger side scaled to
    ``DIGIT_BOX * SUPERSAMPLE`` pixels and centred in a ``IMAGE_SIZE * SUPERSAMPLE`` canvas."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path
    from matplotlib.textpath import TextPath

    path = TextPath((0, 0), str(digit), size=100, prop=FontProperties(fname=font))
    vertices = path.vertices
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    canvas = IMAGE_SIZE * SUPERSAMPLE
    scale = DIGIT_BOX * SUPERSAMPLE / max(high - low)
    centre = (low + high) / 2
    # rasterise at 4x the canvas resolution, then box-filter for anti-aliasing
    fine = 2
    coords = (np.arange(canvas * fine) + 0.5) / fine - canvas / 2
    grid_x, grid_y = np.meshgrid(coords, -coords)  # image rows go down, glyph y goes up
    points = np.column_stack([grid_x.ravel(), grid_y.ravel()]) / scale + centre
    inside = np.zeros(len(points), dtype=bool)
    for polygon in path.to_polygons(closed_only=True):  # even-odd rule: holes are cut out
        inside ^= Path(polygon).contains_points(points)
    inside = inside.reshape(canvas * fine, canvas * fine)
    return inside.reshape(canvas, fine, canvas, fine).mean(axis=(1, 3))


@lru_cache(maxsize=None)
def blurred_glyph(font: str, digit: int) -> np.ndarray:
    """``glyph_mask`` blurred by ``STROKE_SIGMA`` (fine pixels), for stroke-width changes."""
    return ndimage.gaussian_filter(glyph_mask(font, digit), STROKE_SIGMA)


def _smooth_field(rng: np.random.Generator, amplitude_px: float,
                  smoothness_px: float) -> np.ndarray:
    field = rng.uniform(-1, 1, (IMAGE_SIZE, IMAGE_SIZE))
    field = ndimage.gaussian_filter(field, smoothness_px)
    field /= max(np.abs(field).max(), 1e-9)
    return ndimage.zoom(field * amplitude_px * SUPERSAMPLE, SUPERSAMPLE, order=1)


def render_digit(digit: int, rng: np.random.Generator, fonts: Sequence[pathlib.Path] = None,
                 max_rotation_deg: float = 12.0, scale_range: Tuple[float, float] = (0.85, 1.05),
                 max_shear: float = 0.25, elastic_px: float = 1.5,
                 elastic_smoothness_px: float = 3.0,
                 stroke_range: Tuple[float, float] = (-0.3, 0.6)) -> np.ndarray:
    """One distorted digit, uint8 [28, 28] (white on black, like MNIST).

    stroke_range: change of stroke half-width in image pixels (negative = thinner).
    elastic_px: largest displacement of the elastic distortion, image pixels.
    """
    fonts = font_paths() if fonts is None else fonts
    # stroke width: threshold a blurred copy of the glyph; for a straight edge the level
    # ndtr(-w / sigma) moves the edge outwards by w
    blurred = blurred_glyph(str(fonts[rng.integers(len(fonts))]), int(digit))
    widen = rng.uniform(*stroke_range) * SUPERSAMPLE
    ink = (blurred > special.ndtr(-widen / STROKE_SIGMA)).astype(np.float64)
    # affine map from output to input coordinates around the canvas centre
    angle = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg))
    scale = rng.uniform(*scale_range)
    shear = rng.uniform(-max_shear, max_shear)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
    inverse = np.linalg.inv(forward)
    size = IMAGE_SIZE * SUPERSAMPLE
    centre = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    rows += _smooth_field(rng, elastic_px, elastic_smoothness_px)
    cols += _smooth_field(rng, elastic_px, elastic_smoothness_px)
    source = inverse @ np.stack([rows.ravel() - centre, cols.ravel() - centre]) + centre
    warped = ndimage.map_coordinates(ink, source, order=1, cval=0.0).reshape(size, size)
    image = warped.reshape(IMAGE_SIZE, SUPERSAMPLE, IMAGE_SIZE, SUPERSAMPLE).mean(axis=(1, 3))
    return _centre_like_mnist(ndimage.gaussian_filter(image, PEN_BLUR_PX))


def _centre_like_mnist(image: np.ndarray) -> np.ndarray:
    """Fit the ink into the 20 x 20 box if it grew past it, then move its centre of mass
    to (14, 14)."""
    rows = np.flatnonzero(image.max(axis=1) > 0.05)
    cols = np.flatnonzero(image.max(axis=0) > 0.05)
    extent = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 if rows.size else 0
    if extent > DIGIT_BOX:
        factor = DIGIT_BOX / extent
        image = ndimage.affine_transform(image, np.eye(2) / factor,
                                         offset=(1 - 1 / factor) * (IMAGE_SIZE - 1) / 2, order=1)
    if image.sum() > 0:
        centre_of_mass = np.array(ndimage.center_of_mass(image))
        image = ndimage.shift(image, np.array([14.0, 14.0]) - centre_of_mass, order=1)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def render_digits(labels: Sequence[int], seed: int = 0) -> np.ndarray:
    """Distorted digits for ``labels``: uint8 [N, 28, 28]. Image i depends only on
    (seed, i)."""
    fonts = font_paths()
    return np.stack([render_digit(label, np.random.default_rng([seed, i]), fonts)
                     for i, label in enumerate(labels)]) if len(labels) else \
        np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
