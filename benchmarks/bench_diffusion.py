"""Benchmark of the spiking diffusion model against its ANN twin (MNIST, CPU config).

    nice -n 19 python benchmarks/bench_diffusion.py --out runs/bench_diffusion
    python benchmarks/bench_diffusion.py --steps 300 --tsm-steps 50 --n-eval 500 --n-compare 200 \
        --n-select 100 --out runs/bench_diffusion_quick                              # a quick look

1. trains ``configs/sdm_mnist.yaml`` (SNN) and ``configs/sdm_mnist_ann.yaml``
   (ReLU twin) for the same number of steps (``--steps``, default: the config's);
2. TSM gain: fine-tunes the SNN for ``--tsm-steps`` more steps with TSM on, and
   as a control with TSM off (same steps, so the gain is not just more training),
   at a learning rate annealed from ``--tsm-lr`` to 0 over those steps;
3. threshold-guidance gain: picks delta on ``--n-select`` samples per delta from
   the config's grid and compares the best delta with delta = 0;
4. scores SNN and ANN on ``--n-eval`` samples (10,000 as in the issue; ``--sampler``:
   DDIM by default, or ancestral DDPM, respaced with ``--sampling-steps``),
   the TSM / control / guided models on ``--n-compare`` (their gains are
   differences at equal sample counts): FID on the metric classifier's features,
   fraction with confidence > 0.9, class entropy; real training digits give the
   floor; energy per network evaluation from spike rates (``energy.py``);
5. prints a table, writes ``results.json`` and one sample grid per model.

Every training and every score is resumable (scores are cached in OUT/scores/):
run the same command again to continue. ``--only STAGE ...`` trains and scores
some models only, so that stages can run in parallel processes.
Acceptance (issue): >= 80% of SNN samples confident, class entropy >= 2.1 nats.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from networks.diffusion import cli  # noqa: E402
from networks.diffusion.checkpoint import atomic_write, read_metrics  # noqa: E402
from networks.diffusion.data import mnist_train, to_digit_images, to_model_images  # noqa: E402
from networks.diffusion.energy import ENERGY_AC_PJ, ENERGY_MAC_PJ  # noqa: E402
from networks.diffusion.metrics import load_metric, save_grid  # noqa: E402
from networks.diffusion.sampling import delta_row, evaluate, load_run, select_delta  # noqa: E402

SNN_CONFIG = REPO / "configs" / "sdm_mnist.yaml"
ANN_CONFIG = REPO / "configs" / "sdm_mnist_ann.yaml"
CONFIDENT_MIN, ENTROPY_MIN = 0.80, 2.1


def train(config: Path, out: Path, overrides: list) -> None:
    started, cpu = time.perf_counter(), time.process_time()
    cli.train(str(config), str(out), overrides)
    print(f"  ({time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU)")


def cached(path: Path, key: dict, compute) -> dict:
    """``compute()``, stored in ``path`` with ``key``; reused while the key matches
    (so that an interrupted benchmark resumes, and stages can run in parallel)."""
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["value"]
    started, cpu = time.perf_counter(), time.process_time()
    value = compute()
    value["wall_seconds"] = round(time.perf_counter() - started, 1)
    value["cpu_seconds"] = round(time.process_time() - cpu, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps({"key": key, "value": value}, indent=2)))
    return value


def score_key(run_dir: Path, run, n: int, delta: float, sampling: dict, seed: int = 0) -> dict:
    """What a cached score depends on."""
    return {"run": str(run_dir), "step": run.step, "n": n, "delta": delta, **sampling, "seed": seed}


def score(name: str, run_dir: Path, metric, n: int, out: Path, sampling: dict, delta: float = 0.0) -> dict:
    """Quality, spike rates and energy of ``n`` samples of a run (``sampling``:
    sampler and steps), cached in OUT/scores/."""
    run = load_run(run_dir)
    key = score_key(run_dir, run, n, delta, sampling)

    def compute() -> dict:
        result, images = evaluate(run, metric, n, sampling["sampler"], delta=delta, steps=sampling["steps"])
        save_grid(images[:64], out / f"grid_{name}.png")
        return result

    result = cached(out / "scores" / f"{name}.json", key, compute)
    result["train"] = read_metrics(run_dir)["train"]
    result["sampling_steps"] = run.sampling_steps(sampling["sampler"], sampling["steps"])
    print(f"  {name}: FID {result['fid']:.2f}, confident {result['confident_fraction']:.1%}, "
          f"entropy {result['class_entropy']:.3f} ({result['wall_seconds']:.0f} s wall to sample and score)")
    return result


def select(run_dir: Path, metric, deltas: list, n: int, out: Path, sampling: dict) -> dict:
    """``sampling.select_delta`` with each delta's row cached in OUT/scores/."""
    run = load_run(run_dir)

    def cached_row(run, metric, delta, n, sampler, seed, steps, progress) -> dict:
        return cached(out / "scores" / f"select_{run_dir.name}_{delta:+g}.json",
                      score_key(run_dir, run, n, delta, sampling, seed),
                      lambda: delta_row(run, metric, delta, n, sampler, seed, steps, progress))

    return select_delta(run, metric, deltas, n, sampling["sampler"], 0, sampling["steps"], row=cached_row)


STAGES = ("snn", "ann", "snn_tsm", "snn_finetuned", "guidance")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench_diffusion")
    parser.add_argument("--steps", type=int, help="training steps of SNN and ANN (default: the config's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value of the SNN and ANN trainings (repeatable), "
                             "e.g. diffusion.train.decay_steps=4000")
    parser.add_argument("--tsm-steps", type=int, default=500, help="fine-tuning steps with / without TSM")
    parser.add_argument("--tsm-lr", type=float, default=3e-4,
                        help="peak learning rate of the fine-tunes (annealed to 0 over --tsm-steps)")
    parser.add_argument("--n-eval", type=int, default=10000, help="generated images for SNN and ANN")
    parser.add_argument("--n-compare", type=int, default=2000,
                        help="generated images for the TSM, control and guided models")
    parser.add_argument("--n-select", type=int, default=500, help="generated images per delta")
    parser.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim", help="sampler when scoring")
    parser.add_argument("--sampling-steps", type=int, help="sampling steps when scoring (default: the config's: "
                                                 "50 for ddim, all T for ddpm; fewer ddpm steps respace)")
    parser.add_argument("--deltas", type=float, nargs="+",
                        help="threshold-guidance deltas to try (default: the config's sample.threshold_deltas)")
    parser.add_argument("--only", choices=STAGES, nargs="+",
                        help="train (if needed) and score only these, then stop; scores are cached in OUT/scores/, "
                             "so stages can run in parallel processes before the full run assembles the table")
    args = parser.parse_args()
    out = args.out
    training = ([f"diffusion.train.steps={args.steps}"] if args.steps else []) + args.overrides
    only = set(args.only or STAGES)
    sampling = {"sampler": args.sampler, "steps": args.sampling_steps}
    started, cpu = time.perf_counter(), time.process_time()

    print("== training the SNN and its ANN twin (equal steps)")
    for name, config in (("snn", SNN_CONFIG), ("ann", ANN_CONFIG)):
        if name in only:
            train(config, out / name, training)
    print(f"== fine-tuning {args.tsm_steps} steps with TSM and without (control)")
    for name, tsm in (("snn_tsm", "true"), ("snn_finetuned", "false")):
        if name in only or "guidance" in only:
            train(SNN_CONFIG, out / name, [f"diffusion.train.steps={args.tsm_steps}", f"diffusion.model.tsm={tsm}",
                                           f"diffusion.train.init_from={out / 'snn'}",
                                           "diffusion.train.warmup_steps=0", f"diffusion.train.lr={args.tsm_lr}",
                                           f"diffusion.train.decay_steps={args.tsm_steps}"])

    metric = load_metric()
    print(f"== scoring {args.sampler} samples: {args.n_eval} for SNN and ANN, {args.n_compare} for the others")
    pixels, _ = mnist_train()
    real = metric(to_digit_images(to_model_images(torch.from_numpy(pixels[:args.n_eval]), 28)))
    print(f"  real training digits: FID {real['fid']:.2f}, confident {real['confident_fraction']:.1%}")
    results = {"real_train_digits": real}
    for name in ("snn", "ann"):
        if name in only:
            results[name] = score(name, out / name, metric, args.n_eval, out, sampling)
    for name in ("snn_tsm", "snn_finetuned"):
        if name in only or "guidance" in only:
            results[name] = score(name, out / name, metric, args.n_compare, out, sampling)
    if args.only and "guidance" not in only:
        print(f"scored {', '.join(sorted(only))} ({time.perf_counter() - started:.0f} s wall); "
              "run without --only for the table")
        return 0

    tsm_better = results["snn_tsm"]["fid"] < results["snn_finetuned"]["fid"]
    guided_name = "snn_tsm" if tsm_better else "snn_finetuned"
    guided_run = load_run(out / guided_name)
    deltas = args.deltas or guided_run.config.diffusion.sample.threshold_deltas
    print(f"== threshold guidance on {guided_name}: deltas {deltas}, {args.n_select} samples each")
    selection = select(out / guided_name, metric, deltas, args.n_select, out, sampling)
    results["threshold_guidance"] = selection
    best = selection["best_delta"]
    results["snn_guided"] = (score("snn_guided", out / guided_name, metric, args.n_compare, out, sampling, best)
                             if best != 0.0 else results[guided_name])
    if args.only:
        print(f"scored {', '.join(sorted(only))}; run without --only for the table")
        return 0

    snn, ann = results["snn"], results["ann"]
    summary = {
        "steps": snn["train"]["steps"],
        "n_eval": args.n_eval,
        "n_compare": args.n_compare,
        "n_select": args.n_select,
        "tsm_steps": args.tsm_steps,
        "tsm_lr": args.tsm_lr,
        "sampler": args.sampler,
        "sampling_steps": snn["sampling_steps"],
        "fid_snn": snn["fid"], "fid_ann": ann["fid"],
        "tsm_fid_gain": results["snn_finetuned"]["fid"] - results["snn_tsm"]["fid"],
        "threshold_guidance_delta": best,
        "threshold_guidance_fid_gain": results[guided_name]["fid"] - results["snn_guided"]["fid"],
        "energy_snn_uj": snn["operations"]["energy_pj"] / 1e6,
        "energy_ann_uj": ann["operations"]["energy_pj"] / 1e6,
        "energy_ratio_ann_over_snn": ann["operations"]["energy_pj"] / snn["operations"]["energy_pj"],
        "energy_constants_pj": {"mac": ENERGY_MAC_PJ, "ac": ENERGY_AC_PJ},
        "snn_mean_spike_rate": snn.get("mean_spike_rate"),
        "accepted": snn["confident_fraction"] >= CONFIDENT_MIN and snn["class_entropy"] >= ENTROPY_MIN,
    }
    results["summary"] = summary
    atomic_write(out / "results.json", lambda path: path.write_text(json.dumps(results, indent=2) + "\n"))

    print("\nSNN spike rate per layer (spikes per neuron per SNN step):")
    print("  " + ", ".join(f"{layer} {rate:.3f}" for layer, rate in snn["spike_rates"].items()))
    print("\nmodel           steps      n   FID     conf>0.9  entropy  s/step  energy/eval (uJ)  sampling s (wall/CPU)")
    for name in ("snn", "ann", "snn_finetuned", "snn_tsm", "snn_guided"):
        row = results[name]
        print(f"{name:15s} {row['train']['steps']:6d} {row['n']:6d} {row['fid']:7.2f}  {row['confident_fraction']:7.1%}  "
              f"{row['class_entropy']:7.3f}  {row['train']['seconds_per_step']:6.3f}  "
              f"{row['operations']['energy_pj'] / 1e6:8.3f}          {row['wall_seconds']:.0f}/{row['cpu_seconds']:.0f}")
    print(f"{'real digits':15s} {'':6s} {real['n']:6d} {real['fid']:7.2f}  {real['confident_fraction']:7.1%}  "
          f"{real['class_entropy']:7.3f}")
    print(f"\nTSM gain (FID, vs fine-tuning without TSM): {summary['tsm_fid_gain']:+.2f}")
    print(f"threshold guidance: delta {best:+g}, FID gain {summary['threshold_guidance_fid_gain']:+.2f}")
    print(f"energy ANN / SNN: {summary['energy_ratio_ann_over_snn']:.2f}x "
          f"(MAC {ENERGY_MAC_PJ} pJ, AC {ENERGY_AC_PJ} pJ)")
    print(f"acceptance (SNN >= {CONFIDENT_MIN:.0%} confident, entropy >= {ENTROPY_MIN}): "
          f"{'PASS' if summary['accepted'] else 'FAIL'}; results in {out / 'results.json'} "
          f"(this pass: {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU)")
    return 0 if summary["accepted"] else 1


if __name__ == "__main__":
    sys.exit(main())
