"""Commands of the diffusion family: ``train``, ``sample`` and ``evaluate``.

    python -m networks.diffusion.cli train configs/sdm_mnist.yaml --out runs/sdm
    python -m networks.diffusion.cli sample runs/sdm --n 64 --sampler ddim --out grid.png
    python -m networks.diffusion.cli evaluate runs/sdm            # 10,000 samples: FID, ...

(``spiking train`` / ``sample`` / ``evaluate`` call the ``*_command`` adapters.)
``train`` continues from ``OUT/checkpoint.pt`` when it exists. ``sample`` uses
the EMA weights; with several ``--delta`` values (or ``--tune-delta``: the
config's grid) it picks the threshold-guidance delta with the lowest MNIST FID
and remembers it for the run. ``evaluate`` scores ``metrics.n_samples`` samples
(FID, confident fraction, class entropy, spike rates, energy) into
``RUN/metrics.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Optional, Sequence

from spiking.errors import SpikingError

from .checkpoint import atomic_write, read_metrics, update_metrics
from .config import load_config
from .data import DataRoot
from .metrics import load_metric, save_grid
from .sampling import TrainedRun, evaluate, generate, load_run, select_delta
from .train import Trainer

GRID_MAX = 256  # images shown in a grid


def train(config_path: str, out: str, overrides: Sequence[str] = (), resume: bool = True,
          progress: bool = True, data: DataRoot = None, device: Optional[str] = None) -> int:
    """Train (or continue training) the model of ``config_path`` into run folder ``out``."""
    overrides = list(overrides) + ([f"diffusion.train.device={device}"] if device else [])
    config = load_config(config_path, overrides)
    summary = Trainer(config, out, resume=resume, progress=progress, data=data).run()
    print(f"{config.name}: {summary['steps']} steps, loss {summary['loss_first']:.4f} -> "
          f"{summary['loss_last']:.4f}, {summary['seconds_per_step']:.3f} s/step; run in {out}")
    return 0


def _choose_delta(run: TrainedRun, delta: Optional[List[float]], tune_delta: bool, sampler: str, seed: int,
                  steps: Optional[int], selection_samples: Optional[int], progress: bool,
                  data: DataRoot) -> float:
    """The given delta; the best of several (by FID, remembered in metrics.json);
    or the one remembered for the run, else 0."""
    if delta:
        deltas = list(delta)
    elif tune_delta:
        deltas = list(run.config.diffusion.sample.threshold_deltas)
    else:
        return read_metrics(run.run_dir).get("threshold_guidance", {}).get("best_delta", 0.0)
    if len(deltas) == 1:
        return deltas[0]
    per_delta = selection_samples or run.config.diffusion.metrics.selection_samples
    print(f"threshold guidance: scoring {len(deltas)} deltas on {per_delta} samples each")
    selection = select_delta(run, load_metric(progress, data), deltas, per_delta, sampler, seed, steps,
                             progress)
    update_metrics(run.run_dir, {"threshold_guidance": selection})
    print(f"best delta: {selection['best_delta']:g}")
    return selection["best_delta"]


def sample(run_dir: str, n: int = 64, sampler: str = "ddim", out: str = "grid.png",
           delta: Optional[List[float]] = None, seed: int = 0, steps: Optional[int] = None,
           tune_delta: bool = False, selection_samples: Optional[int] = None, device: str = "auto",
           progress: bool = True, data: DataRoot = None) -> int:
    """Draw ``n`` samples from a run into a PNG grid (the first 256).

    delta: threshold-guidance value(s); several -> the one with the lowest FID.
    tune_delta: pick from the config's ``sample.threshold_deltas`` instead.
    Neither: the delta picked earlier for this run (``metrics.json``), else 0.
    """
    run = load_run(run_dir, device)
    chosen = _choose_delta(run, delta, tune_delta, sampler, seed, steps, selection_samples, progress, data)
    images = generate(run, n, sampler, seed, chosen, steps, progress=progress)
    print(f"{len(images)} samples ({sampler}, delta={chosen:g}) -> {save_grid(images[:GRID_MAX], out)}")
    return 0


def evaluate_run(run_dir: str, n: Optional[int] = None, sampler: str = "ddim", seed: int = 0,
                 delta: Optional[List[float]] = None, tune_delta: bool = False, steps: Optional[int] = None,
                 device: str = "auto", progress: bool = True, data: DataRoot = None,
                 out: Optional[str] = None) -> Dict:
    """Score ``n`` (default ``metrics.n_samples``) samples of a run; the result
    goes into ``run_dir/metrics.json`` (and ``out`` as JSON), a grid of the first
    64 samples into ``run_dir/samples/evaluation.png``."""
    run = load_run(run_dir, device)
    n = n or run.config.diffusion.metrics.n_samples
    chosen = _choose_delta(run, delta, tune_delta, sampler, seed, steps, None, progress, data)
    result, images = evaluate(run, load_metric(progress, data), n, sampler, seed, chosen, steps, progress)
    key = f"{sampler}|steps={run.sampling_steps(sampler, steps)}|delta={chosen:g}|n={n}|seed={seed}"
    update_metrics(run.run_dir, {"evaluation": {key: result}})
    if out:
        atomic_write(out, lambda temporary: temporary.write_text(json.dumps(result, indent=2) + "\n"))
    save_grid(images[:64], run.run_dir / "samples" / "evaluation.png")
    operations = result["operations"]
    print(f"{key}: FID {result['fid']:.2f}, confident {result['confident_fraction']:.1%}, class entropy "
          f"{result['class_entropy']:.3f} nats; {operations['macs'] / 1e6:.2f} M MAC + "
          f"{operations['acs'] / 1e6:.2f} M AC = {operations['energy_pj'] / 1e6:.3f} uJ per network evaluation")
    return result


# ------------------------------------------------- adapters for ``spiking`` (spiking/cli.py)

def train_command(args: argparse.Namespace) -> int:
    """``spiking train CONFIG --out RUN [--set k=v] [--data D] [--device X] [--restart]``."""
    return train(args.config, args.out, args.overrides, resume=not getattr(args, "restart", False),
                 progress=not getattr(args, "no_progress", False), data=getattr(args, "data", None),
                 device=getattr(args, "device", None))


def sample_command(args: argparse.Namespace) -> int:
    """``spiking sample RUN --n N --sampler ddim --out grid.png [--delta D ...] [--seed S]``."""
    return sample(args.model, args.n, args.sampler, args.out, args.delta, args.seed, getattr(args, "steps", None),
                  device=getattr(args, "device", None) or "auto")


def evaluate_command(args: argparse.Namespace) -> int:
    """``spiking evaluate RUN [--out result.json] [--data D] [--device X]``."""
    evaluate_run(args.model, device=getattr(args, "device", None) or "auto",
                 progress=not getattr(args, "no_progress", False), data=getattr(args, "data", None),
                 out=getattr(args, "out", None))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m networks.diffusion.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train a diffusion config")
    train_parser.add_argument("config")
    train_parser.add_argument("--out", required=True, help="run folder (checkpoint, grids, metrics.json)")
    train_parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                              help="override a config key, e.g. diffusion.train.steps=100")
    train_parser.add_argument("--restart", action="store_true", help="start again even if OUT has a checkpoint")
    for name in ("sample", "evaluate"):
        command = commands.add_parser(name, help=f"{name} a trained run")
        command.add_argument("run_dir")
        command.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim")
        command.add_argument("--delta", type=float, nargs="+",
                             help="threshold-guidance delta(s); several: the best by FID")
        command.add_argument("--tune-delta", action="store_true",
                             help="pick delta from the config's sample.threshold_deltas by FID")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--steps", "--ddim-steps", dest="steps", type=int,
                             help="sampling steps (default: sample.ddim_steps for ddim, sample.ddpm_steps "
                                  "or all T for ddpm; fewer ddpm steps respace the schedule)")
        command.add_argument("--device", default="auto")
    commands.choices["sample"].add_argument("--n", type=int, default=64)
    commands.choices["sample"].add_argument("--out", default="grid.png")
    commands.choices["sample"].add_argument("--selection-samples", type=int, help="samples per delta when tuning")
    commands.choices["evaluate"].add_argument("--n", type=int, help="samples (default: metrics.n_samples)")
    commands.choices["evaluate"].add_argument("--out", help="also write the result here (JSON)")
    for command in commands.choices.values():
        command.add_argument("--data", help="folder holding mnist/ (default: $SPIKING_DATA)")
        command.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return train(args.config, args.out, args.overrides, not args.restart, args.progress, args.data)
        if args.command == "sample":
            return sample(args.run_dir, args.n, args.sampler, args.out, args.delta, args.seed, args.steps,
                          args.tune_delta, args.selection_samples, args.device, args.progress, args.data)
        evaluate_run(args.run_dir, args.n, args.sampler, args.seed, args.delta, args.tune_delta, args.steps,
                     args.device, args.progress, args.data, args.out)
        return 0
    except SpikingError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
