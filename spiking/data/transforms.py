"""Small event transforms in the tonic style: frozen dataclasses called on an event array.

Their ``repr`` is stable, so a chain of them can key an on-disk cache. Transforms that
change the sensor geometry (crop, downsample, polarity selection) also map a sensor
size with ``sensor_after((width, height, polarities))``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numba
import numpy as np

from spiking.data.events import SENSOR_SIZE

SensorSize = Tuple[int, int, int]

FIRST_SACCADE_END_US = 100_000  # tonic's NMNIST(first_saccade_only=True) keeps t < 1e5 us


@dataclass(frozen=True)
class TimeWindow:
    """Keep events with ``start_us <= t < end_us``; timestamps are shifted by ``-start_us``."""

    start_us: int = 0
    end_us: Optional[int] = None

    def __call__(self, events: np.ndarray) -> np.ndarray:
        t = events["t"]
        keep = t >= self.start_us
        if self.end_us is not None:
            keep &= t < self.end_us
        kept = events[keep]
        if self.start_us:
            kept["t"] -= self.start_us
        return kept


@dataclass(frozen=True)
class FirstSaccade:
    """Keep only the first of the three N-MNIST saccades (t < ``end_us``)."""

    end_us: int = FIRST_SACCADE_END_US

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return events[events["t"] < self.end_us]


@numba.njit(cache=True)
def _background_activity_mask(x, y, t, width, height, filter_time_us):
    last_time = np.full((height, width), np.iinfo(np.int64).min // 2, dtype=np.int64)
    keep = np.zeros(x.size, dtype=np.bool_)
    for i in range(x.size):
        xi, yi, ti = x[i], y[i], t[i]
        last_time[yi, xi] = ti
        horizon = ti - filter_time_us
        if ((xi > 0 and last_time[yi, xi - 1] > horizon)
                or (xi < width - 1 and last_time[yi, xi + 1] > horizon)
                or (yi > 0 and last_time[yi - 1, xi] > horizon)
                or (yi < height - 1 and last_time[yi + 1, xi] > horizon)):
            keep[i] = True
    return keep


@dataclass(frozen=True)
class Denoise:
    """Background-activity filter: keep an event only if one of its four neighbours fired
    less than ``filter_time_us`` before it (tonic's ``Denoise`` rule, without its start-up
    grace period: nothing counts as having fired before the recording starts)."""

    filter_time_us: int = 10_000
    sensor_size: SensorSize = SENSOR_SIZE

    def __call__(self, events: np.ndarray) -> np.ndarray:
        if events.size == 0:
            return events
        keep = _background_activity_mask(
            np.ascontiguousarray(events["x"]), np.ascontiguousarray(events["y"]),
            np.ascontiguousarray(events["t"]), self.sensor_size[0], self.sensor_size[1],
            self.filter_time_us)
        return events[keep]


@dataclass(frozen=True)
class CenterCrop:
    """Keep a centred ``size`` x ``size`` window; coordinates restart at 0."""

    size: int
    sensor_size: SensorSize = SENSOR_SIZE

    @property
    def offset(self) -> Tuple[int, int]:
        """(x0, y0) of the window on the input sensor, pixels."""
        return ((self.sensor_size[0] - self.size) // 2, (self.sensor_size[1] - self.size) // 2)

    def __call__(self, events: np.ndarray) -> np.ndarray:
        x0, y0 = self.offset   # the window's corner moves to (0, 0); the rest falls off
        return Translate(-x0, -y0, self.sensor_after(self.sensor_size))(events)

    def sensor_after(self, sensor: SensorSize) -> SensorSize:
        return (self.size, self.size, sensor[2])


@dataclass(frozen=True)
class Translate:
    """Move every event by (``dx``, ``dy``) pixels; events that leave the sensor (of
    ``sensor_size`` after the move) are dropped. A data augmentation (the digit seen a
    little elsewhere), and the step of :class:`CenterCrop`."""

    dx: int
    dy: int
    sensor_size: SensorSize = SENSOR_SIZE

    def __call__(self, events: np.ndarray) -> np.ndarray:
        x = events["x"] + self.dx
        y = events["y"] + self.dy
        inside = (x >= 0) & (x < self.sensor_size[0]) & (y >= 0) & (y < self.sensor_size[1])
        kept = events[inside]
        kept["x"] = x[inside]
        kept["y"] = y[inside]
        return kept


def translations(shift: int) -> List[Translate]:
    """Every ``Translate`` with |dx|, |dy| <= ``shift`` pixels but (0, 0):
    (2 shift + 1)^2 - 1 of them, in a fixed order."""
    return [Translate(dx, dy) for dy in range(-shift, shift + 1)
            for dx in range(-shift, shift + 1) if (dx, dy) != (0, 0)]


@dataclass(frozen=True)
class Downsample:
    """Merge ``factor`` x ``factor`` pixel blocks (x -> x // factor)."""

    factor: int

    def __call__(self, events: np.ndarray) -> np.ndarray:
        out = events.copy()
        out["x"] //= self.factor
        out["y"] //= self.factor
        return out

    def sensor_after(self, sensor: SensorSize) -> SensorSize:
        return (-(-sensor[0] // self.factor), -(-sensor[1] // self.factor), sensor[2])


@dataclass(frozen=True)
class SelectPolarity:
    """Keep events of the given polarity (1 = ON, 0 = OFF); ``p`` becomes 0."""

    polarity: int

    def __call__(self, events: np.ndarray) -> np.ndarray:
        kept = events[events["p"] == self.polarity]
        kept["p"] = 0
        return kept

    def sensor_after(self, sensor: SensorSize) -> SensorSize:
        return (sensor[0], sensor[1], 1)


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order."""

    transforms: Tuple[Callable, ...]

    def __init__(self, transforms: Sequence[Callable]):
        object.__setattr__(self, "transforms", tuple(transforms))

    def __call__(self, events: np.ndarray) -> np.ndarray:
        for transform in self.transforms:
            events = transform(events)
        return events

    def sensor_after(self, sensor: SensorSize) -> SensorSize:
        for transform in self.transforms:
            sensor = sensor_after(transform, sensor)
        return sensor


def sensor_after(transform: Optional[Callable], sensor: SensorSize = SENSOR_SIZE) -> SensorSize:
    """Sensor size (width, height, polarities) after ``transform`` (unchanged if it has no
    ``sensor_after``)."""
    if transform is None or not hasattr(transform, "sensor_after"):
        return tuple(sensor)
    return tuple(transform.sensor_after(sensor))
