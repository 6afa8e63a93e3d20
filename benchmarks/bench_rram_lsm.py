"""RRAM zero-shot LSM vs the same liquid with ideal weights, on real N-MNIST.

    python benchmarks/bench_rram_lsm.py [--data /work/shared/data/nmnist-small]
        [--config configs/rram_lsm_nmnist.yaml] [--seeds 1]

Prints test accuracy (ideal, RRAM) and liquid rates; the target is |ideal - rram| <= 1 point.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from networks.rram_lsm import RramLiquid, compare, load_config, load_nmnist  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=os.environ.get("SPIKING_DATA_NMNIST",
                                                     "/work/shared/data/nmnist-small"))
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1]
                                            / "configs" / "rram_lsm_nmnist.yaml"))
    ap.add_argument("--seeds", type=int, default=1, help="switching seeds (liquids) to average")
    args = ap.parse_args(argv)
    cfg, _ = load_config(args.config)
    began = time.perf_counter()
    data = load_nmnist(args.data, cfg)
    print(f"data: train {data[0][0].shape[1]}, val {data[1][0].shape[1]}, "
          f"test {data[2][0].shape[1]} samples, {cfg.steps} steps x {cfg.dt} ms")
    gaps = []
    for s in range(args.seeds):
        c = type(cfg)(**{**cfg.__dict__, "seed": cfg.seed + s})
        r = compare(c, data, RramLiquid(c))
        gaps.append(r.rram - r.ideal)
        print(f"liquid seed {c.seed}: ideal {100 * r.ideal:.1f}%  rram {100 * r.rram:.1f}%  "
              f"(gap {100 * (r.rram - r.ideal):+.1f} points)  rates Hz: "
              + ", ".join(f"{k} {v:.1f}" for k, v in r.rates.items()), flush=True)
    print(f"mean gap {100 * sum(gaps) / len(gaps):+.2f} points; {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
