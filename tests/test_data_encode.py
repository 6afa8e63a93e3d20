"""Encoding events onto the simulator's dt grid, transforms, and rate coding."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import require_data
from spiking.data import (Denoise, EventEncoder, FirstSaccade, TimeWindow, input_layout,
                          make_events, rate_encode, read_events)


def some_events():
    #            x   y   t(us)   p
    rows = [(0, 0, 0, 0), (33, 33, 999, 1), (5, 7, 1000, 1), (5, 7, 1500, 1),
            (5, 7, 1800, 1), (20, 3, 2999, 0), (1, 1, 3000, 0)]
    return make_events(*zip(*rows))


def test_layout_index_and_inverse():
    layout = input_layout()
    assert layout.n_inputs == 2312
    assert layout.index(5, 7, 1) == 34 * 34 + 7 * 34 + 5
    index = np.arange(layout.n_inputs)
    x, y, p = layout.coordinates(index)
    assert np.array_equal(layout.index(x, y, p), index)
    assert input_layout(crop=16, polarity=1).n_inputs == 256
    assert input_layout(downsample=2).n_inputs == 2 * 17 * 17


def test_binary_and_counts_modes():
    events = some_events()
    layout = input_layout()
    counts = EventEncoder(dt_us=1000, window_us=3000, mode="counts")(events)
    binary = EventEncoder(dt_us=1000, window_us=3000, mode="binary")(events)
    assert counts.shape == binary.shape == (3, 2312) and counts.dtype == np.uint8
    assert counts[1, layout.index(5, 7, 1)] == 3       # three events in step 1
    assert binary[1, layout.index(5, 7, 1)] == 1       # at most one in binary mode
    assert counts[0, layout.index(33, 33, 1)] == 1
    assert counts[2, layout.index(20, 3, 0)] == 1
    assert counts.sum() == 6                            # the event at t = 3000 us is outside
    assert np.array_equal(binary, np.minimum(counts, 1))


def test_counts_saturate_at_255():
    events = make_events(np.zeros(300, int), np.zeros(300, int), np.arange(300), np.ones(300, int))
    assert EventEncoder(dt_us=1000, window_us=1000, mode="counts")(events).max() == 255


def test_window_start_and_batch():
    events = some_events()
    shifted = EventEncoder(dt_us=1000, window_us=2000, start_us=1000, mode="counts")
    grid = shifted(events)
    assert grid.sum() == 4 and grid[0, input_layout().index(5, 7, 1)] == 3
    batch = shifted.encode_batch([events, events[:2]])
    assert batch.shape == (2, 2, 2312)
    assert np.array_equal(batch[:, 0], grid) and batch[:, 1].sum() == 0


def test_crop_of_one_polarity_as_in_the_resistive_memory_lsm():
    #                  inside, ON   inside, OFF  outside, ON  corner of the window, ON
    events = make_events([12, 12, 5, 24], [15, 15, 15, 9], [0, 10, 20, 30], [1, 0, 1, 1])
    encoder = EventEncoder(dt_us=1000, window_us=1000, mode="counts", crop=16, polarity=1)
    assert encoder.n_inputs == 256
    grid = encoder(events)
    layout = encoder.layout
    assert grid.sum() == 2
    assert grid[0, layout.index(12 - 9, 15 - 9, 0)] == 1
    assert grid[0, layout.index(24 - 9, 0, 0)] == 1


def test_first_saccade_and_time_window_transforms():
    events = make_events([1, 2, 3], [1, 2, 3], [10, 99_999, 100_000], [0, 1, 1])
    assert FirstSaccade()(events).size == 2
    window = TimeWindow(50, 100_000)(events)
    assert window.size == 1 and window["t"][0] == 99_949


def test_denoise_drops_isolated_events_and_matches_tonic_on_real_data():
    isolated = make_events([5, 20, 21], [5, 20, 20], [20_000, 20_100, 20_200], [1, 1, 1])
    assert np.array_equal(Denoise(10_000)(isolated)["x"], [21])
    path = sorted(require_data("nmnist-small").glob("Train/3/*.bin"))[0]
    events = read_events(path)
    ours = Denoise(10_000)(events)
    assert 0 < ours.size < events.size
    tonic = pytest.importorskip("tonic")
    theirs = tonic.functional.denoise_numpy(events, filter_time=10_000)
    late = 10_000  # tonic lets every event in the first filter_time pass; compare after it
    assert np.array_equal(ours[ours["t"] >= late], theirs[theirs["t"] >= late])


def test_matches_tonic_to_frame_on_real_files():
    tonic = pytest.importorskip("tonic")
    to_frame = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), time_window=1000,
                                        start_time=0, end_time=300_000)
    encoder = EventEncoder(dt_us=1000, window_us=300_000, mode="counts")
    for path in sorted(require_data("nmnist-small").glob("Test/*/*.bin"))[:10]:
        events = read_events(path)
        frames = to_frame(events.copy())
        assert np.array_equal(encoder(events), frames.reshape(frames.shape[0], -1))


def test_rate_encoding_follows_intensity():
    rng = np.random.default_rng(0)
    image = np.zeros((28, 28), np.uint8)
    image[10, 10] = 255
    image[5, 5] = 128
    spikes = rate_encode(image, dt_us=1000, duration_us=2_000_000, max_rate_hz=100, rng=rng)
    assert spikes.shape == (2000, 784) and spikes.max() == 1
    rates = spikes.sum(axis=0) / 2.0  # Hz
    assert abs(rates[10 * 28 + 10] - 100) < 15
    assert abs(rates[5 * 28 + 5] - 50) < 12
    assert rates.sum() == rates[10 * 28 + 10] + rates[5 * 28 + 5]
    batch = rate_encode(np.stack([image, image]), duration_us=10_000, rng=rng)
    assert batch.shape == (10, 2, 784)
    with pytest.raises(ValueError):
        rate_encode(image, dt_us=1000, max_rate_hz=2000)
