"""The saccade synthesiser against the real recordings, its speed, and the glyph renderer."""
from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import require_data
from spiking.data import (SaccadeSynthesizer, load_images, read_events, render_digits)
from spiking.data.stats import compare_statistics, event_statistics


@pytest.fixture(scope="module")
def paired_statistics():
    """Every third real Train recording, and a synthesis of its own MNIST source image."""
    real_root = require_data("nmnist-small")
    images, labels = load_images(require_data("mnist") / "mnist_train_approx.npz")
    synthesizer = SaccadeSynthesizer()
    real, synthetic, digits = [], [], []
    for path in sorted(real_root.glob("Train/*/*.bin"))[::3]:
        index, digit = int(path.stem), int(path.parent.name)
        assert labels[index - 1] == digit  # NNNNN is the 1-based MNIST training index
        real.append(read_events(path))
        synthetic.append(synthesizer(images[index - 1], np.random.default_rng(index)))
        digits.append(digit)
    return event_statistics(real, digits), event_statistics(synthetic, digits)


def test_events_per_sample_match_the_real_recordings(paired_statistics):
    real, synthetic = paired_statistics
    figures = compare_statistics(real, synthetic)
    assert abs(figures["median events synthetic"] / figures["median events real"] - 1) < 0.10
    assert 0.75 < figures["p10 events ratio"] < 1.25
    assert 0.85 < figures["p90 events ratio"] < 1.15
    # the synthesiser tracks how many events each particular digit makes
    assert figures["per-sample events correlation"] > 0.8


def test_on_off_balance(paired_statistics):
    real, synthetic = paired_statistics
    assert abs(synthetic.on_fraction.mean() - real.on_fraction.mean()) < 0.02
    assert synthetic.on_fraction.std() < 0.03


def test_three_burst_time_profile(paired_statistics):
    real, synthetic = paired_statistics
    figures = compare_statistics(real, synthetic)
    assert figures["time profile correlation"] > 0.9
    assert figures["largest burst share difference"] < 0.05
    profile = synthetic.time_profile  # 5 ms bins
    peaks = [profile[lo // 5:hi // 5].max() for lo, hi in ((20, 80), (120, 180), (230, 290))]
    assert min(peaks) > 4 * profile[330 // 5:].max()  # quiet after the third saccade
    assert synthetic.time_profile[:-4].nonzero()[0].max() * 5 < 320


def test_spatial_footprint_per_digit(paired_statistics):
    real, synthetic = paired_statistics
    figures = compare_statistics(real, synthetic)
    assert figures["worst digit footprint correlation"] > 0.85
    assert figures["mean digit footprint correlation"] > 0.9
    assert figures["largest digit centroid shift px"] < 1.0


def test_synthesiser_makes_200_samples_per_second_on_one_core():
    images = render_digits(np.arange(60) % 10, seed=1)
    synthesizer = SaccadeSynthesizer()
    synthesizer(images[0], np.random.default_rng(0))  # compile or load the cached kernel
    best = 0.0
    for attempt in range(3):  # CPU time of this process: robust to other load on the machine
        started = time.process_time()
        for i, image in enumerate(images):
            synthesizer(image, np.random.default_rng([attempt, i]))
        best = max(best, len(images) / (time.process_time() - started))
    assert best >= 200, f"{best:.0f} samples/s"


def test_same_seed_same_events_and_sorted_output():
    image = render_digits([4], seed=2)[0]
    synthesizer = SaccadeSynthesizer()
    first = synthesizer(image, np.random.default_rng(7))
    assert first.tobytes() == synthesizer(image, np.random.default_rng(7)).tobytes()
    assert first.tobytes() != synthesizer(image, np.random.default_rng(8)).tobytes()
    assert np.all(np.diff(first["t"]) >= 0)
    assert first["x"].max() < 34 and first["y"].max() < 34 and first["x"].min() >= 0
    blank = synthesizer(np.zeros((28, 28), np.uint8), np.random.default_rng(0))
    assert blank.size < 200  # background noise only


def test_rendered_glyphs_look_like_mnist():
    images, labels = load_images(require_data("mnist") / "mnist_train_approx.npz")
    images, labels = images[:2000], labels[:2000]
    glyphs = render_digits(np.arange(200) % 10, seed=3)
    assert glyphs.shape == (200, 28, 28) and glyphs.dtype == np.uint8
    ink_real = (images / 255).sum(axis=(1, 2)).mean()
    ink_glyphs = (glyphs / 255).sum(axis=(1, 2))
    assert abs(ink_glyphs.mean() / ink_real - 1) < 0.25
    assert ink_glyphs.std() > 0.1 * ink_glyphs.mean()  # strokes vary in width
    rows, cols = np.indices((28, 28))
    weights = glyphs / glyphs.sum(axis=(1, 2), keepdims=True)
    assert np.allclose((weights * rows).sum(axis=(1, 2)), 14, atol=0.6)
    assert np.allclose((weights * cols).sum(axis=(1, 2)), 14, atol=0.6)
    assert not np.array_equal(glyphs[0], glyphs[10])  # same digit, different distortion
    mean_real = {d: images[labels == d].mean(axis=0) for d in range(10)}
    # a glyph is closer to the mean MNIST image of its own digit than to most others
    hits = 0
    for image, digit in zip(glyphs, np.arange(200) % 10):
        distances = [np.abs(image - mean_real[d]).sum() for d in range(10)]
        hits += np.argmin(distances) == digit
    assert hits / 200 > 0.5
