"""Encoding events (and static images) onto the simulator's time grid.

The simulator takes a dense ``uint8`` array ``[T, n_inputs]`` per sample, ``T = window / dt``.
Input neuron ``p * height * width + y * width + x`` stands for pixel (x, y) of polarity
slot ``p`` (the layout of tonic's ``ToFrame`` frames ``[T, P, H, W]``, flattened).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

import numba
import numpy as np

from spiking.data.events import SENSOR_HEIGHT, SENSOR_WIDTH
from spiking.data.transforms import (CenterCrop, Compose, Denoise, Downsample, FirstSaccade,
                                     SelectPolarity, TimeWindow)

ENCODING_MODES = ("binary", "counts")


@dataclass(frozen=True)
class InputLayout:
    """Mapping between pixels and input neurons: ``index = p * height * width + y * width + x``."""

    width: int = SENSOR_WIDTH
    height: int = SENSOR_HEIGHT
    polarities: int = 2

    @property
    def n_inputs(self) -> int:
        return self.polarities * self.height * self.width

    def index(self, x, y, p):
        """Input-neuron index of pixel (x, y) in polarity slot p (arrays broadcast)."""
        return (np.asarray(p) * self.height + np.asarray(y)) * self.width + np.asarray(x)

    def coordinates(self, index) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inverse of ``index``: (x, y, p) of input neurons."""
        index = np.asarray(index)
        pixel = index % (self.height * self.width)
        return pixel % self.width, pixel // self.width, index // (self.height * self.width)


def input_layout(crop: Optional[int] = None, downsample: int = 1,
                 polarity: Optional[int] = None, width: int = SENSOR_WIDTH,
                 height: int = SENSOR_HEIGHT) -> InputLayout:
    """Layout of the inputs after an optional centre crop (pixels), a downsampling factor
    and the choice of one polarity (1 = ON, 0 = OFF; None keeps both).

    The default, ``input_layout()``, has 2 x 34 x 34 = 2312 inputs; ``input_layout(crop=16,
    polarity=1)`` has 256.
    """
    if crop is not None:
        width = height = crop
    width, height = -(-width // downsample), -(-height // downsample)
    return InputLayout(width, height, 1 if polarity is not None else 2)


@numba.njit(cache=True)
def _fill_grid(grid, x, y, t, p, start_us, dt_us, width, height, saturate_at_one):
    steps, n_inputs = grid.shape
    plane = width * height
    for i in range(x.size):
        step = (t[i] - start_us) // dt_us
        if step < 0 or step >= steps:
            continue
        neuron = p[i] * plane + y[i] * width + x[i]
        if saturate_at_one:
            grid[step, neuron] = 1
        elif grid[step, neuron] < 255:
            grid[step, neuron] += 1


@dataclass(frozen=True)
class EventEncoder:
    """Events -> dense ``uint8 [T, n_inputs]`` on a ``dt_us`` grid over
    ``[start_us, start_us + window_us)``.

    mode: "binary" (at most one event per input and step, as NALSM does) or "counts"
    (events per input and step, saturating at 255). Optional preprocessing, in order:
    ``denoise_us`` (background-activity filter), ``first_saccade_only``, ``crop`` (centre,
    pixels), ``downsample`` (factor), ``polarity`` (keep 1 = ON or 0 = OFF).
    """

    dt_us: int = 1000
    window_us: int = 300_000
    start_us: int = 0
    mode: str = "binary"
    crop: Optional[int] = None
    downsample: int = 1
    polarity: Optional[int] = None
    first_saccade_only: bool = False
    denoise_us: Optional[int] = None
    sensor_width: int = SENSOR_WIDTH
    sensor_height: int = SENSOR_HEIGHT
    preprocess: Compose = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.mode not in ENCODING_MODES:
            raise ValueError(f"mode must be one of {ENCODING_MODES}, not {self.mode!r}")
        if self.dt_us <= 0 or self.window_us <= 0:
            raise ValueError("dt_us and window_us must be positive")
        if self.window_us % self.dt_us:
            raise ValueError(f"window_us={self.window_us} is not a multiple of dt_us={self.dt_us}")
        sensor = (self.sensor_width, self.sensor_height, 2)
        steps = []
        if self.denoise_us:
            steps.append(Denoise(self.denoise_us, sensor))
        if self.first_saccade_only:
            steps.append(FirstSaccade())
        if self.crop is not None:
            steps.append(CenterCrop(self.crop, sensor))
        if self.downsample > 1:
            steps.append(Downsample(self.downsample))
        if self.polarity is not None:
            steps.append(SelectPolarity(self.polarity))
        object.__setattr__(self, "preprocess", Compose(steps))

    @property
    def steps(self) -> int:
        """T, the number of time steps."""
        return self.window_us // self.dt_us

    @property
    def layout(self) -> InputLayout:
        return input_layout(self.crop, self.downsample, self.polarity,
                            self.sensor_width, self.sensor_height)

    @property
    def n_inputs(self) -> int:
        return self.layout.n_inputs

    def __call__(self, events: np.ndarray) -> np.ndarray:
        grid = np.zeros((self.steps, self.n_inputs), dtype=np.uint8)
        self.fill(grid, events)
        return grid

    def fill(self, grid: np.ndarray, events: np.ndarray) -> None:
        """Add ``events`` into ``grid`` (uint8 [T, n_inputs], e.g. one column of a batch)."""
        events = self.preprocess(events)
        layout = self.layout
        _fill_grid(grid, np.ascontiguousarray(events["x"]), np.ascontiguousarray(events["y"]),
                   np.ascontiguousarray(events["t"]), np.ascontiguousarray(events["p"]),
                   self.start_us, self.dt_us, layout.width, layout.height, self.mode == "binary")

    def encode_batch(self, samples: Sequence[np.ndarray]) -> np.ndarray:
        """Several event arrays -> ``uint8 [T, B, n_inputs]``."""
        batch = np.zeros((self.steps, len(samples), self.n_inputs), dtype=np.uint8)
        for column, events in enumerate(samples):
            self.fill(batch[:, column, :], events)
        return batch

    def time_window(self) -> TimeWindow:
        """The window this encoder keeps, as a transform."""
        return TimeWindow(self.start_us, self.start_us + self.window_us)


def rate_encode(images: np.ndarray, dt_us: int = 1000, duration_us: int = 100_000,
                max_rate_hz: float = 100.0,
                rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Poisson (Bernoulli per step) encoding of static images.

    ``images``: ``[H, W]`` or ``[B, H, W]``, uint8 (0..255) or float in [0, 1]. A pixel of
    full intensity fires at ``max_rate_hz``. Returns uint8 ``[T, H*W]`` or ``[T, B, H*W]``
    with T = duration_us / dt_us.
    """
    images = np.asarray(images)
    intensity = images / 255.0 if images.dtype == np.uint8 else images.astype(np.float64)
    if intensity.min() < 0 or intensity.max() > 1:
        raise ValueError("image intensities must lie in [0, 1] (or be uint8)")
    probability = intensity.reshape(*images.shape[:-2], -1) * (max_rate_hz * dt_us * 1e-6)
    if probability.max(initial=0.0) > 1:
        raise ValueError(f"max_rate_hz={max_rate_hz} is above one spike per step of {dt_us} us")
    rng = np.random.default_rng() if rng is None else rng
    steps = duration_us // dt_us
    return (rng.random((steps, *probability.shape)) < probability).astype(np.uint8)
