"""The ``spiking data`` command: synth, download, info, make-default, which.

``add_parser(subparsers)`` hooks it into the main CLI; ``python -m spiking.data.cli`` runs
it on its own. Every handler returns an exit code; DataError becomes a one-line message.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from spiking.errors import DataError


def _synth(args) -> int:
    from spiking.data.images import load_images
    from spiking.data.synth import synthesize_dataset

    images, labels = load_images(args.images)
    if labels is None:
        if args.label is None:
            raise DataError(f"{args.images}: these images have no labels; give --label DIGIT "
                            f"(the N-MNIST layout files each sample under its digit)")
        labels = np.full(len(images), args.label, dtype=np.int64)
    bad = (labels < 0) | (labels > 9)
    if bad.any():
        raise DataError(f"{args.images}: label {int(labels[bad][0])} is not a digit 0-9")
    count = len(images) if args.n is None else min(args.n, len(images))
    started = time.perf_counter()
    synthesize_dataset(images[:count], labels[:count], args.out, split=args.split,
                       first_index=args.first_index, seed=args.seed)
    elapsed = time.perf_counter() - started
    print(f"wrote {count} synthetic recordings to {Path(args.out) / args.split} "
          f"({count / max(elapsed, 1e-9):.0f} samples/s)")
    return 0


def _download(args) -> int:
    from spiking.data.download import download_nmnist
    from spiking.data.paths import download_dir

    target = Path(args.to) if args.to else download_dir()
    download_nmnist(target, timeout_s=args.timeout, keep_archives=args.keep_archives)
    print(f"N-MNIST is ready in {target}")
    return 0


def _info(args) -> int:
    from spiking.data.info import inspect_dataset

    info = inspect_dataset(args.dir)
    print(info.format())
    if info.problems and args.skip_bad:
        print(f"skipped {len(info.problems)} bad files (--skip-bad)")
        return 0
    return 2 if info.problems else 0


def _make_default(args) -> int:
    from spiking.data.discover import make_synthetic_nmnist, synthetic_default_path

    out = Path(args.out) if args.out else synthetic_default_path(
        args.train_per_class, args.test_per_class, args.seed)
    started = time.perf_counter()
    make_synthetic_nmnist(out, args.train_per_class, args.test_per_class, args.seed)
    print(f"wrote synthetic N-MNIST-like data to {out} in {time.perf_counter() - started:.1f} s")
    return 0


def _which(args) -> int:
    from spiking.data.discover import discover

    print(discover(args.data).message)
    return 0


def add_parser(subparsers) -> None:
    """Add the ``data`` command and its subcommands to an argparse subparsers object."""
    data = subparsers.add_parser("data", help="event data: synthesise, download, inspect")
    commands = data.add_subparsers(dest="data_command", required=True)

    synth = commands.add_parser("synth", help="images -> N-MNIST-like .bin recordings")
    synth.add_argument("--images", required=True,
                       help="MNIST idx file, .npz, .png, or folder of PNGs (<digit>/*.png)")
    synth.add_argument("--out", required=True,
                       help="output folder (gets <split>/<digit>/NNNNN.bin)")
    synth.add_argument("--n", type=int, help="only the first N images")
    synth.add_argument("--split", default="Train", choices=("Train", "Test"))
    synth.add_argument("--label", type=int, help="label for unlabelled images")
    synth.add_argument("--first-index", type=int, default=1,
                       help="file number of the first image (1-based, like N-MNIST)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_synth)

    download = commands.add_parser("download", help="fetch and unpack a data set (checked)")
    download.add_argument("dataset", choices=("nmnist",))
    download.add_argument("--to", help="target folder (default: the user cache's nmnist/)")
    download.add_argument("--timeout", type=float, default=10.0,
                          help="seconds to wait for a connection or data")
    download.add_argument("--keep-archives", action="store_true")
    download.set_defaults(func=_download)

    info = commands.add_parser("info", help="counts, event statistics and problems of a folder")
    info.add_argument("dir")
    info.add_argument("--skip-bad", action="store_true",
                      help="exit 0 even when bad files are found (they are still listed)")
    info.set_defaults(func=_info)

    default = commands.add_parser("make-default", help="make the synthetic default data set")
    default.add_argument("--out", help="target folder (default: in the cache)")
    default.add_argument("--train-per-class", type=int, default=100)
    default.add_argument("--test-per-class", type=int, default=20)
    default.add_argument("--seed", type=int, default=0)
    default.set_defaults(func=_make_default)

    which = commands.add_parser("which", help="say which data the main job would use")
    which.add_argument("--data", help="explicit data folder")
    which.set_defaults(func=_which)


def run(args) -> int:
    """Dispatch parsed arguments; DataError -> message on stderr and its exit code."""
    try:
        return args.func(args)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="spiking")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
