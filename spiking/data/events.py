"""Event arrays and the N-MNIST ``.bin`` file format.

An event array is a structured numpy array with fields ``x``, ``y`` (pixels), ``t``
(microseconds) and ``p`` (polarity, 1 = ON), with the same dtype as
``tonic.datasets.NMNIST.dtype`` so that tonic transforms accept it unchanged.

The ``.bin`` format stores 5 bytes per event: x, y, then a big-endian 24-bit word whose
top bit is the polarity and whose low 23 bits are the timestamp in microseconds. A
record with y == 240 is a timestamp-overflow marker: it adds 2**13 us to every later
timestamp (as in Orchard's reader and tonic's ``read_mnist_file``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np

from spiking.errors import DataError

# Identical to tonic 1.7's ``tonic.datasets.NMNIST.dtype`` (all fields int64).
EVENT_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
SENSOR_WIDTH = 34
SENSOR_HEIGHT = 34
SENSOR_SIZE = (SENSOR_WIDTH, SENSOR_HEIGHT, 2)  # tonic order: (x, y, p)

BYTES_PER_EVENT = 5
OVERFLOW_MARKER_Y = 240
OVERFLOW_INCREMENT_US = 2 ** 13
MAX_TIMESTAMP_US = 2 ** 23 - 1

PathLike = Union[str, os.PathLike]


def make_events(x, y, t, p) -> np.ndarray:
    """Build an event array from four equally long sequences (t in microseconds)."""
    x = np.asarray(x)
    events = np.empty(len(x), dtype=EVENT_DTYPE)
    events["x"] = x
    events["y"] = y
    events["t"] = t
    events["p"] = p
    return events


def decode_events(buffer, source: str, width: int = SENSOR_WIDTH,
                  height: int = SENSOR_HEIGHT) -> np.ndarray:
    """Decode the bytes of one ``.bin`` recording into an event array.

    ``source`` names the file in error messages. Raises DataError for an empty or
    truncated file, coordinates outside ``width`` x ``height`` and timestamps that go
    backwards.
    """
    raw = np.frombuffer(buffer, dtype=np.uint8)
    if raw.size == 0:
        raise DataError(f"{source}: empty file (no events)")
    if raw.size % BYTES_PER_EVENT:
        raise DataError(
            f"{source}: truncated file: {raw.size} bytes is not a multiple of "
            f"{BYTES_PER_EVENT} bytes per event")
    records = raw.reshape(-1, BYTES_PER_EVENT)
    x = records[:, 0]
    y = records[:, 1]
    word = records[:, 2]
    t = ((word & 0x7F).astype(np.int64) << 16) | (records[:, 3].astype(np.int64) << 8) \
        | records[:, 4]
    overflow = y == OVERFLOW_MARKER_Y
    if overflow.any():
        t += OVERFLOW_INCREMENT_US * np.cumsum(overflow)
        keep = ~overflow
        x, y, t, word = x[keep], y[keep], t[keep], word[keep]
        if x.size == 0:
            raise DataError(f"{source}: empty file (only timestamp-overflow markers)")
    bad = (x >= width) | (y >= height)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: coordinates out of range at event {i}: "
                        f"x={int(x[i])}, y={int(y[i])} (sensor is {width}x{height})")
    backwards = t[1:] < t[:-1]
    if backwards.any():
        i = int(np.argmax(backwards)) + 1
        raise DataError(f"{source}: timestamps go backwards at event {i}: "
                        f"t={int(t[i])} us after t={int(t[i - 1])} us")
    events = np.empty(x.size, dtype=EVENT_DTYPE)
    events["x"] = x
    events["y"] = y
    events["t"] = t
    events["p"] = word >> 7
    return events


def read_events(path: PathLike, width: int = SENSOR_WIDTH,
                height: int = SENSOR_HEIGHT) -> np.ndarray:
    """Read one N-MNIST ``.bin`` file into an event array (see ``decode_events``)."""
    try:
        with open(path, "rb") as handle:
            buffer = handle.read()
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from error
    return decode_events(buffer, str(path), width, height)


def encode_events(events: np.ndarray, source: str = "events") -> bytes:
    """Encode an event array in the ``.bin`` format.

    Timestamps past 2**23 - 1 us are written with overflow markers. Raises DataError when
    coordinates do not fit a byte (or hit the marker value 240), polarities are not 0/1,
    or timestamps are negative or go backwards.
    """
    x = np.asarray(events["x"], dtype=np.int64)
    y = np.asarray(events["y"], dtype=np.int64)
    t = np.asarray(events["t"], dtype=np.int64)
    p = np.asarray(events["p"], dtype=np.int64)
    if x.size == 0:
        raise DataError(f"{source}: no events to write (an empty file is not a valid recording)")
    if x.min() < 0 or y.min() < 0 or x.max() > 255 or y.max() >= OVERFLOW_MARKER_Y:
        raise DataError(f"{source}: coordinates out of range for the .bin format")
    if not np.isin(p, (0, 1)).all():
        raise DataError(f"{source}: polarities must be 0 or 1")
    if t[0] < 0 or (t[1:] < t[:-1]).any():
        raise DataError(f"{source}: timestamps must be non-negative and non-decreasing")
    overflow_count = t // OVERFLOW_INCREMENT_US - (MAX_TIMESTAMP_US // OVERFLOW_INCREMENT_US)
    overflow_count = np.maximum(overflow_count, 0)
    markers_before = np.diff(overflow_count, prepend=0)
    rows = x.size + int(markers_before.sum())
    records = np.zeros((rows, BYTES_PER_EVENT), dtype=np.uint8)
    event_rows = np.arange(x.size) + np.cumsum(markers_before)
    if rows > x.size:
        is_event = np.zeros(rows, dtype=bool)
        is_event[event_rows] = True
        records[~is_event, 1] = OVERFLOW_MARKER_Y
    local_t = t - overflow_count * OVERFLOW_INCREMENT_US
    records[event_rows, 0] = x
    records[event_rows, 1] = y
    records[event_rows, 2] = (p << 7) | (local_t >> 16)
    records[event_rows, 3] = (local_t >> 8) & 0xFF
    records[event_rows, 4] = local_t & 0xFF
    return records.tobytes()


def write_atomic(path: PathLike, payload: bytes) -> None:
    """Write bytes to ``path`` via a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_events(path: PathLike, events: np.ndarray) -> None:
    """Write an event array as an N-MNIST ``.bin`` file (atomically)."""
    write_atomic(path, encode_events(events, source=str(path)))
