"""Noise sweeps: ``spiking hardware sweep CONFIG --vary read_noise=0,0.02,0.05 --vary prog_noise=0,1,2``.

Trains once, then evaluates every setting over repeated programmings:

1. the liquid of CONFIG (an ``rram_lsm:`` file, :mod:`networks.rram_lsm`) runs the
   training and validation samples on arrays programmed with the file's own
   ``hardware:`` block; a readout is fitted on those features, once;
2. for every combination of the ``--vary`` values (their cartesian product) and
   every programming seed (``--seeds``), the test samples run on freshly programmed
   arrays with the ``hardware:`` block updated by that combination, and the fixed
   readout scores them;
3. the table (setting, mean, min, max test accuracy over seeds) is written to
   ``OUT/sweep.csv`` and ``OUT/sweep.md`` and plotted in ``OUT/sweep.png``
   (accuracy against the first varied key, one line per value of the others,
   bars from min to max).

Keys are any ``hardware:`` key (``read_noise``, ``programming_scale``, ``levels``,
``stuck_at_max``, ...); ``prog_noise`` is short for ``programming_scale`` (the
multiplier of the preset's write-verify noise: 0 none, 1 the preset).
Each network instance is programmed on its own, so a batch of B samples is B
programmings of one seed; the seed sets them all.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

KEY_ALIASES = {"prog_noise": "programming_scale"}


def parse_vary(items: Sequence[str]) -> List[Tuple[str, List[float]]]:
    """``["read_noise=0,0.02", ...]`` -> ``[("read_noise", [0.0, 0.02]), ...]``."""
    from spiking.errors import ConfigError

    out = []
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--vary {item!r}: expected KEY=V1,V2,...")
        key, values = item.split("=", 1)
        try:
            vals = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--vary {item!r}: values must be numbers") from None
        if not vals:
            raise ConfigError(f"--vary {item!r}: no values")
        out.append((key.strip(), [int(v) if key.strip() == "levels" else v for v in vals]))
    return out


def hardware_setting(base: dict, setting: Dict[str, float]) -> dict:
    """The ``hardware:`` mapping of one sweep point (checked by :func:`hardware.get_device`)."""
    from hardware import get_crossbar_config

    hw = dict(base)
    for key, value in setting.items():
        hw[KEY_ALIASES.get(key, key)] = value
    get_crossbar_config(hw)   # raises ConfigError on an unknown key or bad value
    return hw


def _limit(x: np.ndarray, y: np.ndarray, n: Optional[int]):
    if n is None or n >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng(0).permutation(len(y))[:n])
    return x[:, idx], y[idx]


def sweep(cfg, data, vary: List[Tuple[str, List[float]]], seeds: int = 3,
          progress=print) -> List[dict]:
    """Rows {setting..., mean, min, max, accuracies} for every combination of ``vary``."""
    from networks.rram_lsm import RramLiquid, fit_readout

    liquid = RramLiquid(cfg)
    (xtr, ytr), (xva, yva), (xte, yte) = data
    train = liquid.features(xtr, cfg.hardware, cfg.program_seed)
    val = liquid.features(xva, cfg.hardware, cfg.program_seed)
    readout = fit_readout(cfg, (train, ytr), (val, yva))
    if progress:
        progress(f"readout trained once on {len(ytr)} samples ({cfg.hardware})")
    keys = [k for k, _ in vary]
    rows = []
    for values in itertools.product(*[v for _, v in vary]) if vary else [()]:
        setting = dict(zip(keys, values))
        hw = hardware_setting(cfg.hardware, setting)
        accs = []
        for s in range(seeds):
            feats = liquid.features(xte, hw, seed=1000 + s)
            accs.append(readout.accuracy(feats, yte))
        row = dict(setting, mean=float(np.mean(accs)), min=float(np.min(accs)),
                   max=float(np.max(accs)), accuracies=accs)
        rows.append(row)
        if progress:
            progress("  " + ", ".join(f"{k}={v:g}" for k, v in setting.items())
                     + f": mean {100 * row['mean']:.1f}%  min {100 * row['min']:.1f}%  "
                       f"max {100 * row['max']:.1f}%")
    return rows


def write_outputs(rows: List[dict], keys: List[str], out: Path) -> Dict[str, Path]:
    """sweep.csv, sweep.md and sweep.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "sweep.csv", "md": out / "sweep.md", "png": out / "sweep.png"}
    cols = keys + ["mean", "min", "max"]
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols + ["n_seeds"])
        for r in rows:
            w.writerow([r[c] for c in cols] + [len(r["accuracies"])])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join([f"{r[k]:g}" for k in keys]
                                       + [f"{100 * r[c]:.1f}%" for c in ("mean", "min", "max")]) + " |")
    paths["md"].write_text("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    x_key = keys[0] if keys else None
    groups: Dict[tuple, list] = {}
    for r in rows:
        groups.setdefault(tuple((k, r[k]) for k in keys[1:]), []).append(r)
    for label, rs in groups.items():
        xs = [r[x_key] for r in rs] if x_key else [0]
        mean = np.array([100 * r["mean"] for r in rs])
        err = np.array([[100 * (r["mean"] - r["min"]) for r in rs],
                        [100 * (r["max"] - r["mean"]) for r in rs]])
        name = ", ".join(f"{k}={v:g}" for k, v in label) or "accuracy"
        ax.errorbar(xs, mean, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xlabel(x_key or "setting")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("RRAM LSM: accuracy vs noise (mean, min-max over programmings)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths


def run(args) -> int:
    """The ``sweep`` command (``args`` from the parser :func:`add_parser` makes)."""
    import yaml

    from networks.rram_lsm import load_config, load_nmnist

    began = time.perf_counter()
    cfg, data_file = load_config(args.config)
    if args.batch_size:
        cfg.batch_size = args.batch_size
    vary = parse_vary(args.vary)
    for key, values in vary:                     # fail before any simulation
        hardware_setting(cfg.hardware, {key: values[0]})
    seeds = args.seeds or int((data_file.get("sweep") or {}).get("seeds", 3))
    root = args.data
    if root is None:
        from spiking.data import discover
        root = discover(None).path
    data = load_nmnist(root, cfg)
    data = tuple(_limit(x, y, n) for (x, y), n in
                 zip(data, (args.max_train, args.max_train and max(args.max_train // 5, 10),
                            args.max_test)))
    rows = sweep(cfg, data, vary, seeds)
    paths = write_outputs(rows, [k for k, _ in vary], Path(args.out))
    print(paths["md"].read_text(), end="")
    print(f"wrote {paths['csv']}, {paths['md']}, {paths['png']} "
          f"({time.perf_counter() - began:.0f} s)")
    return 0


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("config", help="an rram_lsm file (configs/rram_lsm_nmnist.yaml)")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a hardware key and its values (repeatable: the grid is their product); "
                        "prog_noise = programming_scale")
    p.add_argument("--seeds", type=int, default=None,
                   help="programmings per setting (default: sweep.seeds in the file, else 3)")
    p.add_argument("--data", default=None, help="N-MNIST folder (default: discovered)")
    p.add_argument("--out", default="sweep_out", help="folder for sweep.csv/.md/.png")
    p.add_argument("--max-train", type=int, default=None, help="limit training samples")
    p.add_argument("--max-test", type=int, default=None, help="limit test samples")
    p.add_argument("--batch-size", type=int, default=None, help="instances per run")
    p.set_defaults(func=run)
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``sweep`` to the ``spiking hardware`` subcommands; the parsed args carry
    ``func`` (call ``args.func(args)``, returns the exit code)."""
    return configure_parser(subparsers.add_parser(
        "sweep", help="accuracy of the RRAM LSM against device noise",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))


def main(argv=None) -> int:
    """``python -m hardware.sweep CONFIG --vary ...`` (the same command, standalone)."""
    parser = argparse.ArgumentParser(prog="spiking hardware sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    args = configure_parser(parser).parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
