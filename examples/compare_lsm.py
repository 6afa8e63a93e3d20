"""Compare a fixed-weight LSM, LSM+STDP and NALSM on the real N-MNIST subset.

    python examples/compare_lsm.py                       # all 900 + 100 recordings (~30 min on 2 cores)
    python examples/compare_lsm.py --max-train 200       # a quicker look

Each model: build the liquid from its config, run the unsupervised
initialisation (plastic models), extract spike-count features for the train,
validation and test splits, fit the readout on train (setting chosen on
validation) and score it on test. Prints one table. The same runs are
available from the command line as ``spiking train configs/<model>.yaml``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from networks.lsm import LiquidStateMachine, open_splits  # noqa: E402
from networks.readout import train_readout  # noqa: E402

MODELS = [("LSM (fixed)", "lsm_nmnist.yaml"), ("LSM+STDP", "lsm_stdp_nmnist.yaml"),
          ("NALSM", "nalsm_nmnist.yaml")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(os.environ.get("SPIKING_DATA", REPO.parent / "shared" / "data")) / "nmnist-small"
    parser.add_argument("--data", default=str(default))
    parser.add_argument("--max-train", type=int, help="use at most this many training samples")
    parser.add_argument("--max-test", type=int)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--augment", type=int, metavar="PX",
                        help="moved copies of the training recordings (lsm.data.augment.shift)")
    args = parser.parse_args()
    overrides = [] if args.augment is None else [f"lsm.data.augment.shift={args.augment}"]
    if args.max_train:
        overrides.append(f"lsm.data.max_train={args.max_train}")
    if args.max_test:
        overrides.append(f"lsm.data.max_test={args.max_test}")
    rows = []
    for name, config in MODELS:
        began = time.perf_counter()
        lsm = LiquidStateMachine.from_file(REPO / "configs" / config, overrides, progress=not args.quiet)
        print(f"{name}: {lsm.describe()}", flush=True)
        splits = open_splits(lsm.lsm, args.data, lsm.dt, progress=not args.quiet)
        weights = lsm.initialise(splits.train, splits.train_index)
        train = lsm.extract(splits.train, splits.train_index, weights, desc="train")
        if splits.augmented is not None:   # lsm.data.augment: moved copies of train
            train = train.append(lsm.extract(splits.augmented, None, weights, desc="moved copies"))
        val = lsm.extract(splits.validation, None, weights, desc="validation")
        test = lsm.extract(splits.test, splits.test_index, weights, desc="test")
        fit = train_readout(lsm.readout, train.counts, train.labels, val.counts, val.labels)
        seconds = train.seconds + val.seconds + test.seconds
        rows.append((name, fit.validation, fit.readout.accuracy(test.counts, test.labels),
                     np.nanmean(test.branching),
                     test.rates_hz(lsm.lsm.data.window, lsm.config.populations["E"].size,
                                   lsm.config.populations["I"].size)["E"],
                     (len(train) + len(val) + len(test)) / seconds, time.perf_counter() - began))
    print(f"\n{'model':<14}{'val %':>8}{'test %':>8}{'BF':>8}{'E Hz':>7}{'samples/s':>11}{'total s':>9}")
    for name, val, test, bf, rate, sps, total in rows:
        print(f"{name:<14}{val * 100:>8.1f}{test * 100:>8.1f}{bf:>8.3f}{rate:>7.1f}{sps:>11.1f}{total:>9.0f}")


if __name__ == "__main__":
    main()
