"""Saccade synthesiser: grayscale images -> N-MNIST-like events.

It follows the N-MNIST recording protocol (Orchard et al. 2015, Front. Neurosci. 9:437): the
image on a monitor is seen by an ATIS sensor (34 x 34 pixels used) that makes three
saccades of about 100 ms tracing a triangle. Each pixel is a DVS/ATIS change detector: it
emits an ON (OFF) event when its log intensity has risen (fallen) by its contrast threshold
since its last event, thresholds vary from pixel to pixel (mismatch), a pixel is blind for a
refractory period after each event, and background noise adds random events.

The defaults are fitted to the real recordings in ``nmnist-small`` (see
``tests/test_data_synth.py`` for the statistics and tolerances).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numba
import numpy as np
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from spiking.data.events import EVENT_DTYPE, PathLike, SENSOR_HEIGHT, SENSOR_WIDTH, write_events

Point = Tuple[float, float]
MIN_THRESHOLD = 0.02  # per-pixel thresholds are clipped here (log-intensity units)


@dataclass(frozen=True)
class SaccadeParams:
    """Recording protocol and pixel model. Positions in sensor pixels, times in ms.

    The image's top-left corner sits at ``origin`` plus the current point of the
    triangle ``(0, 0) -> vertices[0] -> vertices[1] -> (0, 0)``. Saccade i starts at
    ``saccade_starts_ms[i]`` and lasts ``saccade_durations_ms[i]``; its progress follows a
    minimum-jerk profile of warped time ``fraction ** saccade_skews[i]`` (skew < 1: fast
    start and slow settling; > 1: slow start).
    """

    sensor_width: int = SENSOR_WIDTH
    sensor_height: int = SENSOR_HEIGHT
    image_scale: float = 1.0               # sensor pixels per image pixel
    origin: Point = (0.51, 1.41)
    vertices: Tuple[Point, Point] = ((1.41, 5.92), (5.62, 0.0))
    saccade_starts_ms: Tuple[float, float, float] = (6.8, 71.2, 221.0)
    saccade_durations_ms: Tuple[float, float, float] = (84.9, 138.4, 103.7)
    saccade_skews: Tuple[float, float, float] = (1.0, 1.2, 0.62)
    recording_ms: float = 310.0
    timing_jitter_ms: float = 3.0          # s.d. of each saccade's start
    amplitude_jitter: float = 0.05         # relative s.d. of the triangle's size
    blur_sigma_px: float = 1.13            # optics and pixel area, sensor pixels
    black_level: float = 0.22              # monitor black relative to white
    threshold: float = 0.19                # log-intensity change per event
    threshold_mismatch: float = 0.02       # s.d. of the per-pixel thresholds
    refractory_us: float = 690.0
    noise_rate_hz: float = 0.15            # background events per pixel and second
    time_step_us: float = 2000.0           # simulation step (crossings are interpolated)


DEFAULT_PARAMS = SaccadeParams()


def minimum_jerk(fraction: np.ndarray) -> np.ndarray:
    """Position along a saccade (0..1) at time fraction 0..1."""
    f = np.clip(fraction, 0.0, 1.0)
    return f ** 3 * (10 - 15 * f + 6 * f ** 2)


def trajectory(params: SaccadeParams, times_us: np.ndarray,
               rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Image displacement (x, y) in sensor pixels at ``times_us``, with per-sample jitter."""
    vertices = np.vstack([np.zeros(2), np.asarray(params.vertices, dtype=np.float64)])
    starts = np.asarray(params.saccade_starts_ms, dtype=np.float64) * 1000
    if rng is not None:
        vertices = vertices * (1 + params.amplitude_jitter * rng.standard_normal())
        starts = starts + params.timing_jitter_ms * 1000 * rng.standard_normal(3)
    position = np.zeros((times_us.size, 2))
    for leg in range(3):
        step = vertices[(leg + 1) % 3] - vertices[leg]
        duration_us = params.saccade_durations_ms[leg] * 1000
        fraction = np.clip((times_us - starts[leg]) / duration_us, 0, 1)
        position += minimum_jerk(fraction ** params.saccade_skews[leg])[:, None] * step
    return position[:, 0] + params.origin[0], position[:, 1] + params.origin[1]


@numba.njit(cache=True)
def _dvs_events(log_image, supersample, scale, shift_x, shift_y, times_us, threshold_on,
                threshold_off, refractory_us, rows, cols, out_x, out_y, out_t, out_p):
    """Run the change detector of each pixel in ``rows`` x ``cols`` (ranges) along the
    trajectory; returns the event count (or -1 if the output arrays are too small)."""
    image_h, image_w = log_image.shape
    background = log_image[0, 0]
    smallest_threshold = min(threshold_on.min(), threshold_off.min())
    steps = times_us.size
    count = 0
    capacity = out_x.size
    levels = np.empty(steps)
    stride = supersample / scale  # fine image pixels per sensor pixel
    u_offset = (0.5 - shift_x) * stride - 0.5  # fine coordinate of column 0, per step
    v_offset = (0.5 - shift_y) * stride - 0.5
    for row in range(rows[0], rows[1]):
        for col in range(cols[0], cols[1]):
            lowest = background
            highest = background
            for k in range(steps):
                u = col * stride + u_offset[k]
                v = row * stride + v_offset[k]
                if u < 0.0 or v < 0.0 or u >= image_w - 1 or v >= image_h - 1:
                    levels[k] = background
                    continue
                iu = int(u)
                iv = int(v)
                fu = u - iu
                fv = v - iv
                top_left = log_image[iv, iu]
                bottom_left = log_image[iv + 1, iu]
                top = top_left + fu * (log_image[iv, iu + 1] - top_left)
                bottom = bottom_left + fu * (log_image[iv + 1, iu + 1] - bottom_left)
                levels[k] = top + fv * (bottom - top)
                lowest = min(lowest, levels[k])
                highest = max(highest, levels[k])
            if highest - lowest < smallest_threshold:
                continue
            on = threshold_on[row, col]
            off = threshold_off[row, col]
            reference = levels[0]
            blind_until = -1e18
            for k in range(1, steps):
                l0 = levels[k - 1]
                l1 = levels[k]
                t0 = times_us[k - 1]
                t1 = times_us[k]
                while True:
                    if l1 - reference >= on:
                        target = reference + on
                        polarity = 1
                    elif reference - l1 >= off:
                        target = reference - off
                        polarity = 0
                    else:
                        break
                    if l1 != l0:
                        crossing = t0 + (target - l0) / (l1 - l0) * (t1 - t0)
                    else:
                        crossing = t0
                    crossing = min(max(crossing, t0), t1)
                    if crossing < blind_until:
                        crossing = blind_until
                    if crossing > t1:
                        break
                    if count >= capacity:
                        return -1
                    out_x[count] = col
                    out_y[count] = row
                    out_t[count] = int(crossing)
                    out_p[count] = polarity
                    count += 1
                    blind_until = crossing + refractory_us
                    # reset to the level at the moment of the event
                    if t1 > t0:
                        reference = l0 + (l1 - l0) * (crossing - t0) / (t1 - t0)
                    else:
                        reference = l1
                    if polarity == 1 and reference < target:
                        reference = target
                    if polarity == 0 and reference > target:
                        reference = target
    return count


class SaccadeSynthesizer:
    """Turns grayscale images into N-MNIST-like event arrays (see module docstring)."""

    SUPERSAMPLE = 4

    def __init__(self, params: SaccadeParams = DEFAULT_PARAMS):
        self.params = params
        self._capacity = 20_000

    def log_image(self, image: np.ndarray) -> Tuple[np.ndarray, int]:
        """Blurred log intensity of the monitor showing ``image`` (uint8, or float in [0, 1]),
        sampled ``SUPERSAMPLE`` times per image pixel, and the padding (image pixels of
        black level) added around it."""
        p = self.params
        image = np.asarray(image)
        intensity = image / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
        s = self.SUPERSAMPLE
        pad = int(np.ceil(3 * p.blur_sigma_px / p.image_scale)) + 1
        fine = np.kron(np.pad(intensity, pad), np.ones((s, s)))
        sigma = p.blur_sigma_px / p.image_scale * s
        fine = gaussian_filter(fine, sigma) if sigma > 0 else fine
        return np.log(p.black_level + (1 - p.black_level) * np.clip(fine, 0, 1)), pad

    def __call__(self, image: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """Events (EVENT_DTYPE, sorted by time) for one image; ``rng`` draws the pixel
        mismatch, the saccade jitter and the noise."""
        p = self.params
        rng = np.random.default_rng() if rng is None else rng
        log_image, pad = self.log_image(image)
        times = np.arange(0.0, p.recording_ms * 1000 + 1, p.time_step_us)
        shift_x, shift_y = trajectory(p, times, rng)
        shift_x = shift_x - pad * p.image_scale
        shift_y = shift_y - pad * p.image_scale
        shape = (p.sensor_height, p.sensor_width)
        threshold_on, threshold_off = np.maximum(
            p.threshold + p.threshold_mismatch * rng.standard_normal((2, *shape)), MIN_THRESHOLD)
        rows, cols = self._reachable_pixels(log_image, shift_x, shift_y)
        while True:
            x = np.empty(self._capacity, np.int64)
            y = np.empty(self._capacity, np.int64)
            t = np.empty(self._capacity, np.int64)
            polarity = np.empty(self._capacity, np.int64)
            count = _dvs_events(log_image, float(self.SUPERSAMPLE), p.image_scale, shift_x,
                                shift_y, times, threshold_on, threshold_off, p.refractory_us,
                                rows, cols, x, y, t, polarity)
            if count >= 0:
                break
            self._capacity *= 2
        noise = self._noise(rng)
        events = np.empty(count + noise.size, dtype=EVENT_DTYPE)
        events[:count]["x"] = x[:count]
        events[:count]["y"] = y[:count]
        events[:count]["t"] = t[:count]
        events[:count]["p"] = polarity[:count]
        events[count:] = noise
        return events[np.argsort(events["t"], kind="stable")]

    def _reachable_pixels(self, log_image, shift_x, shift_y):
        """Sensor (row, column) ranges that the non-black part of the image ever covers."""
        p = self.params
        step = p.image_scale / self.SUPERSAMPLE  # sensor pixels per fine pixel
        lit = log_image > log_image[0, 0] + 1e-9
        ranges = []
        for axis, shift, size in ((1, shift_y, p.sensor_height), (0, shift_x, p.sensor_width)):
            index = np.flatnonzero(lit.any(axis=axis))
            if index.size == 0:
                return np.zeros(2, np.int64), np.zeros(2, np.int64)
            low = int(np.floor(index[0] * step + shift.min())) - 1
            high = int(np.ceil((index[-1] + 1) * step + shift.max())) + 1
            ranges.append(np.array([max(low, 0), min(high, size)], np.int64))
        return ranges[0], ranges[1]

    def _noise(self, rng: np.random.Generator) -> np.ndarray:
        p = self.params
        pixels = p.sensor_width * p.sensor_height
        count = rng.poisson(p.noise_rate_hz * pixels * p.recording_ms / 1000)
        noise = np.empty(count, dtype=EVENT_DTYPE)
        noise["x"] = rng.integers(0, p.sensor_width, count)
        noise["y"] = rng.integers(0, p.sensor_height, count)
        noise["t"] = rng.integers(0, int(p.recording_ms * 1000), count)
        noise["p"] = rng.integers(0, 2, count)
        return noise

    def with_params(self, **changes) -> "SaccadeSynthesizer":
        return SaccadeSynthesizer(replace(self.params, **changes))


def synthesize_dataset(images: np.ndarray, labels: Sequence[int], out_dir: PathLike,
                       split: str = "Train", first_index: int = 1, seed: int = 0,
                       params: SaccadeParams = DEFAULT_PARAMS, progress: bool = True) -> int:
    """Write ``out_dir/<split>/<label>/NNNNN.bin`` for each image (NNNNN = ``first_index``
    + position, 1-based like N-MNIST). Sample i uses a generator seeded with (seed, index),
    so the output does not depend on how the work is split. Returns the number written."""
    synthesizer = SaccadeSynthesizer(params)
    out_dir = Path(out_dir)
    for position in tqdm(range(len(images)), desc=f"synthesising {split}", unit="sample",
                         disable=not progress):
        index = first_index + position
        rng = np.random.default_rng([seed, index])
        events = synthesizer(images[position], rng)
        write_events(out_dir / split / str(int(labels[position])) / f"{index:05d}.bin", events)
    return len(images)
