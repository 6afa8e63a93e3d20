"""Event-data benchmarks: decode + encode against tonic, synthesiser speed, and synthetic
versus real N-MNIST statistics.

    python benchmarks/bench_data.py [--data ../shared/data] [--repeats 3]

Needs the real data (``nmnist-small`` and ``mnist``) under ``--data`` or ``$SPIKING_DATA``;
tonic is optional (its column is left out without it).
"""
from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from spiking.data import (NMNIST, EventEncoder, SaccadeSynthesizer, read_events, render_digits)
from spiking.data.stats import compare_statistics, event_statistics

DT_US = 1000
WINDOW_US = 300_000


def best_rate(work, count, repeats, clock=time.perf_counter):
    """Highest items/s over ``repeats`` runs of ``work()`` (which should drop its results,
    as a training loop does: keeping 1000 dense grids alive measures page faults)."""
    best = 0.0
    for _ in range(repeats):
        started = clock()
        work()
        best = max(best, count / (clock() - started))
    return best


def decode_encode(files, repeats):
    encoder = EventEncoder(dt_us=DT_US, window_us=WINDOW_US, mode="counts")
    encoder(read_events(files[0]))  # compile
    binary = EventEncoder(dt_us=DT_US, window_us=WINDOW_US, mode="binary")
    rows = {}
    for name, chosen in (("counts", encoder), ("binary", binary)):
        def ours():
            for path in files:
                chosen(read_events(path))

        rows[f"ours: read_events + EventEncoder({name})"] = best_rate(ours, len(files), repeats)
    try:
        import tonic
    except ImportError:
        return rows, None
    to_frame = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), time_window=DT_US,
                                        start_time=0, end_time=WINDOW_US)
    dtype = tonic.datasets.NMNIST.dtype

    def tonic_pass():
        for path in files:
            frames = to_frame(tonic.io.read_mnist_file(str(path), dtype=dtype))
            frames.reshape(frames.shape[0], -1)

    reference = best_rate(tonic_pass, len(files), repeats)
    rows["tonic: read_mnist_file + ToFrame(time_window=1 ms)"] = reference
    return rows, reference


def epochs(root, repeats):
    """Samples/s of a whole Train epoch without and with the cache, for a plain folder and
    for the zip archive with denoising (where the first epoch costs more)."""
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "Train.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted((root / "Train").glob("*/*.bin")):
                zipped.write(path, f"Train/{path.parent.name}/{path.name}")
        setups = (("folder, binary", root, EventEncoder(dt_us=DT_US, window_us=WINDOW_US)),
                  ("Train.zip, binary + denoise", archive,
                   EventEncoder(dt_us=DT_US, window_us=WINDOW_US, denoise_us=10_000)))
        for name, source, encoder in setups:
            plain = NMNIST(source, "train", val_fraction=0, encoder=encoder)
            cached = NMNIST(source, "train", val_fraction=0, encoder=encoder, cache=True,
                            progress=False)
            rates = []
            for dataset in (plain, cached):
                def epoch():
                    for _ in dataset:
                        pass

                rates.append(best_rate(epoch, len(dataset), repeats))
            rows[name] = tuple(rates)
    return rows


def load_mnist(data):
    train = np.load(data / "mnist" / "mnist_train_approx.npz")
    with gzip.open(data / "mnist" / "t10k-images-idx3-ubyte.gz") as handle:
        test_images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return {"Train": train["images"], "Test": test_images}


def synthetic_versus_real(data, synthesizer):
    """Synthesise each real recording's own source image; statistics of both sets."""
    sources = load_mnist(data)
    real, synthetic, labels = [], [], []
    for path in sorted((data / "nmnist-small").glob("*/*/*.bin")):
        split, label, index = path.parts[-3], int(path.parts[-2]), int(path.stem)
        real.append(read_events(path))
        synthetic.append(synthesizer(sources[split][index - 1], np.random.default_rng(index)))
        labels.append(label)
    return event_statistics(real, labels), event_statistics(synthetic, labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("SPIKING_DATA", "../shared/data"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = Path(args.data)
    files = sorted((data / "nmnist-small").glob("*/*/*.bin"))
    if not files:
        raise SystemExit(f"no N-MNIST files under {data / 'nmnist-small'}")

    print(f"Decode + encode, {len(files)} real N-MNIST files, dt {DT_US} us, window "
          f"{WINDOW_US // 1000} ms, one process (best of {args.repeats}):")
    rows, reference = decode_encode(files, args.repeats)
    for name, rate in rows.items():
        ratio = f"  ({rate / reference:.2f}x tonic)" if reference else ""
        print(f"  {name:52s} {rate:8.0f} samples/s{ratio}")
    print("NMNIST epochs over Train (dense uint8 [300, 2312] per sample):")
    for name, (uncached, cached) in epochs(data / "nmnist-small", args.repeats).items():
        print(f"  {name:30s} {uncached:6.0f} samples/s uncached, {cached:6.0f} from the cache "
              f"(cached epoch takes {uncached / cached:.2f} of the time)")

    synthesizer = SaccadeSynthesizer()
    images = render_digits(np.arange(300) % 10, seed=0)
    synthesizer(images[0], np.random.default_rng(0))  # compile
    def synthesise_all():
        for i, image in enumerate(images):
            synthesizer(image, np.random.default_rng(i))

    cpu = best_rate(synthesise_all, len(images), args.repeats, clock=time.process_time)
    wall = best_rate(synthesise_all, len(images), args.repeats)
    render = best_rate(lambda: render_digits(np.arange(300) % 10, seed=1), 300, 1)
    print(f"\nSaccade synthesiser, one core: {cpu:.0f} samples/s (CPU time), {wall:.0f} "
          f"samples/s (wall clock); glyph rendering {render:.0f} images/s")

    print("\nSynthetic versus real, each real recording against a synthesis of its own "
          "MNIST source image (1000 samples):")
    real, synthetic = synthetic_versus_real(data, synthesizer)
    for name, value in compare_statistics(real, synthetic).items():
        print(f"  {name:40s} {value:10.3f}")
    print("  burst shares 0-100/100-200/200+ ms: real "
          + "/".join(f"{s:.2f}" for s in real.burst_shares()) + ", synthetic "
          + "/".join(f"{s:.2f}" for s in synthetic.burst_shares()))
    print("  events per sample (min/median/max): real "
          f"{real.events_per_sample.min()}/{np.median(real.events_per_sample):.0f}/"
          f"{real.events_per_sample.max()}, synthetic {synthetic.events_per_sample.min()}/"
          f"{np.median(synthetic.events_per_sample):.0f}/{synthetic.events_per_sample.max()}")
    print("  time profile, mean events per 10 ms (real | synthetic):")
    real_10 = real.time_profile.reshape(-1, 2).sum(axis=1)
    synthetic_10 = synthetic.time_profile.reshape(-1, 2).sum(axis=1)
    print("    " + " ".join(f"{v:4.0f}" for v in real_10[:32]))
    print("    " + " ".join(f"{v:4.0f}" for v in synthetic_10[:32]))

    glyphs = render_digits(np.arange(1000) % 10, seed=5)
    glyph_events = [synthesizer(im, np.random.default_rng(i)) for i, im in enumerate(glyphs)]
    glyph_stats = event_statistics(glyph_events, np.arange(1000) % 10)
    print("\nOffline default (font-rendered digits) versus real, distributions only:")
    for name, value in compare_statistics(real, glyph_stats).items():
        print(f"  {name:40s} {value:10.3f}")


if __name__ == "__main__":
    main()
