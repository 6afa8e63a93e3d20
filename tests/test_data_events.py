"""The N-MNIST .bin format: decoding real files, writing, and every kind of bad file."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import require_data
from spiking.data import (EVENT_DTYPE, decode_events, encode_events, make_events, read_events,
                          write_events)
from spiking.errors import DataError


def real_files(count=None):
    files = sorted(require_data("nmnist-small").glob("*/*/*.bin"))
    return files if count is None else files[:count]


def test_real_recordings_decode_to_the_documented_statistics():
    files = real_files()
    assert len(files) == 1000
    sizes, on_fractions = [], []
    for path in files:
        events = read_events(path)
        assert events.dtype == EVENT_DTYPE
        assert events["x"].max() <= 33 and events["y"].max() <= 33
        assert np.all(np.diff(events["t"]) >= 0)
        assert 280_000 < events["t"][-1] < 340_000
        assert events.size == path.stat().st_size // 5
        sizes.append(events.size)
        on_fractions.append(events["p"].mean())
    assert min(sizes) == 1069 and max(sizes) == 7152
    assert 4000 < np.median(sizes) < 4300
    assert abs(np.mean(on_fractions) - 0.5) < 0.01


def test_writing_reproduces_the_original_bytes():
    for path in real_files(20):
        assert encode_events(read_events(path)) == path.read_bytes()


def test_matches_tonic_reader_and_dtype():
    tonic = pytest.importorskip("tonic")
    assert EVENT_DTYPE == tonic.datasets.NMNIST.dtype
    for path in real_files(30):
        ours = read_events(path)
        theirs = tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
        assert ours.tobytes() == theirs.tobytes()


def test_round_trip_with_timestamp_overflow(tmp_path):
    t = np.array([0, 5, 8_388_607, 8_388_608, 9_000_000, 20_000_000])
    events = make_events([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1], t, [0, 1, 0, 1, 1, 0])
    path = tmp_path / "long.bin"
    write_events(path, events)
    assert path.stat().st_size > 5 * len(t)  # overflow markers were added
    assert read_events(path).tobytes() == events.tobytes()
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def good_record(x=1, y=2, t=100, p=1):
    return bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])


@pytest.mark.parametrize("payload, message", [
    (b"", "empty file"),
    (good_record() + good_record()[:3], "not a multiple of 5"),
    (good_record() + good_record(x=40), "coordinates out of range"),
    (good_record(t=500) + good_record(t=400), "timestamps go backwards"),
])
def test_bad_files_raise_data_error_naming_the_file(tmp_path, payload, message):
    path = tmp_path / "00001.bin"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=message) as caught:
        read_events(path)
    assert str(path) in str(caught.value)
    with pytest.raises(DataError, match=message):
        decode_events(payload, "inline")


def test_refuses_to_write_what_cannot_be_read_back(tmp_path):
    with pytest.raises(DataError, match="no events"):
        write_events(tmp_path / "a.bin", make_events([], [], [], []))
    with pytest.raises(DataError, match="non-decreasing"):
        write_events(tmp_path / "a.bin", make_events([1, 1], [1, 1], [5, 4], [0, 1]))
    assert not list(tmp_path.iterdir())
