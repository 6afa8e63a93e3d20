"""Liquid state machines on N-MNIST: accuracy of LSM, LSM+STDP and NALSM, and the
speed of NALSM1000 feature extraction against the same liquid in norse and Brian2.

    python benchmarks/bench_lsm.py                      # accuracy and speed
    python benchmarks/bench_lsm.py --only accuracy      # or speed
    python benchmarks/bench_lsm.py --sweep-scale        # choose the fixed LSM's weight scale
    python benchmarks/bench_lsm.py --sweep-scale NALSM  # the same for NALSM
    python benchmarks/bench_lsm.py --synthetic 20000    # + synthetic saccades of MNIST Train
    python benchmarks/bench_lsm.py --seeds 5            # LSM, LSM+STDP, NALSM on 5 liquids
    python benchmarks/bench_lsm.py --seeds 5 --augment 0  # the same without moved copies

The configs' readouts also learn from copies of the training recordings moved
by one pixel (``lsm.data.augment.shift: 1``); ``--augment PX`` sets that shift
for every model (0: none, the paper's protocol; ``--synthetic`` uses none unless
given). Runs with copies are named '... aug PX', so both kinds coexist in ``--runs``.

Accuracy: each model is trained with ``spiking train`` on the real subset
(``$SPIKING_DATA/nmnist-small``, else ``../shared/data/nmnist-small``: 900 Train
and 100 Test recordings), with NALSM's features (total spike counts per neuron)
and with the configs' (counts in 3 time bins); runs go to ``--runs`` (default
``runs/bench_lsm``), so a second call reuses their features. Baselines: a
logistic regression on the raw per-pixel event counts (the reference of the
data set's README) and the liquid with its recurrent weights scaled to ~0 (a
random input projection). Model selection uses the validation split carved out
of Train; besides the 100 test recordings, the table gives a 10-fold
cross-validated accuracy over the 900 Train recordings (ridge readout), the
steadier figure for comparing liquids.

Synthetic data (``--synthetic N``, the issue's stretch goal): LSM and NALSM trained
on the real Train recordings plus N synthetic saccade recordings
(:mod:`spiking.data.synth`) of MNIST training images 901 onwards
(``$SPIKING_DATA/mnist/mnist_train_approx.npz``; the real Train recordings are
of images 1-900), scored on the real Test recordings. The mixed folder is
built once in the cache folder (links to the real files) and reused.

Speed: samples per second of feature extraction (250 ms per sample, batches of
``--batch`` samples, liquid spike counts out) on the same ``--samples`` test
recordings, for the NALSM1000 liquid after its initialisation phase (the same
connectivity and weights, exported from our network, in every implementation):
- ours, numba backend, fixed weights and with NALSM's astrocyte-modulated STDP;
- norse 1.1 ``LIFRecurrentCell`` (dense input and recurrent weights, batched,
  CPU), NALSM's formulation tau dv/dt = -v + I with a current jump of 100 * w
  per spike lasting one step (no refractory period in that cell);
- Brian2 2.9 ``cpp_standalone``: the same LIF equations (exact integration,
  2 ms refractory period with the membrane integrating) and synapses, the
  samples one after another in one run with the state reset at each sample's
  start; compile time reported apart. Its time is Brian2's own figure for the
  simulation loop (``device._last_run_time``) where that is shorter than the
  CPU time of the whole binary (which also loads the synapses).
Each measurement runs in its own process with 1 thread and with all cores
(``NUMBA_NUM_THREADS``, torch threads, Brian2 OpenMP threads), and times
``--repeats`` passes over the samples (Brian2: runs of its binary), of which the
fastest counts, for every implementation alike. On a shared machine wall times
swing with the load, so the ratios use samples per CPU-second of the 1-thread
runs; wall-clock figures on all cores are printed beside them. Figures go to stdout and ``--runs/bench.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Optional
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COUNTS = ["lsm.features.bins=1"]   # NALSM's features: total spike counts
MODELS = [  # (name, config, overrides); the configs' features: counts in 3 time bins
    ("input only", "configs/lsm_nmnist.yaml", ["lsm.liquid.scale=0.0001"]),
    ("LSM", "configs/lsm_nmnist.yaml", []),
    ("LSM+STDP", "configs/lsm_stdp_nmnist.yaml", []),
    ("NALSM", "configs/nalsm_nmnist.yaml", []),
]
LIQUIDS = ("LSM", "LSM+STDP", "NALSM")   # the three models of the issue


def data_root() -> Path:
    root = Path(os.environ.get("SPIKING_DATA") or REPO.parent / "shared" / "data")
    path = root / "nmnist-small" if (root / "nmnist-small").exists() else root
    if not (path / "Train").exists():
        sys.exit(f"bench_lsm: no N-MNIST subset at {path} (set SPIKING_DATA)")
    return path


def run_dir(runs: Path, name: str) -> Path:
    return runs / name.replace("+", "_").replace(" ", "_").replace(".", "_").lower()


def train_model(name: str, config: str, overrides, runs: Path, data: Path, progress: bool,
                cv: bool = True, augment: Optional[int] = None) -> dict:
    """``spiking train`` of one model into ``runs``. ``augment`` (pixels; None: the
    config's ``lsm.data.augment.shift``) sets the moved copies of the training
    recordings its readout also learns from; runs with copies are named '... aug N'."""
    from networks import lsm_cli

    overrides = list(overrides) + ([] if augment is None else [f"lsm.data.augment.shift={augment}"])
    shift = augment_shift(config, overrides)
    name = f"{name} aug {shift}" if shift else name
    out = run_dir(runs, name)
    args = argparse.Namespace(config=str(REPO / config), overrides=list(overrides), out=str(out),
                              data=str(data), backend=None, device=None, batch_size=None,
                              restart=False, no_progress=not progress)
    print(f"\n== {name}: spiking train {config} {' '.join('--set ' + o for o in overrides)} "
          f"--out {out}", flush=True)
    lsm_cli.train(args)
    metrics = json.loads((out / "metrics.json").read_text())
    if cv:
        metrics["accuracy"]["cv_ridge"] = _cv_of_run(out)
    return metrics


def augment_shift(config: str, overrides=()) -> int:
    """The ``lsm.data.augment.shift`` (pixels) of a config with overrides."""
    from networks.lsm import load_lsm_config

    return load_lsm_config(REPO / config, list(overrides))[0].sections["lsm"].data.augment.shift


def moved_copies(augment: Optional[int]) -> str:
    """What the tables' readouts learn from besides Train, for their titles."""
    shift = augment_shift(MODELS[-1][1]) if augment is None else augment
    return f"readouts also learn from copies of Train moved by up to {shift} px" if shift else \
        "no moved copies of Train"


def raw_count_baseline(data: Path, progress: bool) -> dict:
    """Logistic regression on per-pixel event counts over the 250 ms window."""
    from networks.lsm import LsmSection, open_splits
    from networks.readout import ReadoutSection, train_readout

    lsm = LsmSection()
    splits = open_splits(lsm, data, 1.0, progress=progress)

    def counts(ds, index=None):
        index = np.arange(len(ds)) if index is None else index
        out = []
        for start in range(0, len(index), 64):
            x, _ = ds.batch(index[start:start + 64])
            out.append(x.sum(0, dtype=np.int64))
        return np.concatenate(out).astype(np.float32), ds.labels[index]

    xt, yt = counts(splits.train, splits.train_index)
    xv, yv = counts(splits.validation)
    xs, ys = counts(splits.test)
    fit = train_readout(ReadoutSection(type="logistic"), xt, yt, xv, yv, progress)
    return {"accuracy": {"train": fit.readout.accuracy(xt, yt), "validation": fit.validation,
                         "test": fit.readout.accuracy(xs, ys),
                         "cv_ridge": cross_validated(np.concatenate([xt, xv]).astype(np.float64),
                                                     np.concatenate([yt, yv]))},
            "chosen": fit.chosen}


def cross_validated(x: np.ndarray, y: np.ndarray, folds: int = 10, seed: int = 0,
                    copies: Optional[np.ndarray] = None, copy_of: Optional[np.ndarray] = None) -> float:
    """Mean accuracy of a ridge readout (standardised features) over stratified folds
    of the 900 Train recordings, for the best of a few penalties: a steadier figure
    than 100 test recordings (one of them is 1 %) for comparing liquids. ``copies``
    (translated copies, row r a copy of sample ``copy_of[r]``) join the training folds
    of their sample, and are never held out."""
    from networks.readout import Normaliser, _ridge

    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), int)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = np.arange(members.size) % folds
    if copies is None:
        copies, copy_of = np.zeros((0, x.shape[1])), np.zeros(0, int)
    best = 0.0
    for alpha in (1.0, 10.0, 100.0, 1000.0):
        correct = 0
        for k in range(folds):
            train, held = fold != k, fold == k
            xt = np.concatenate([x[train], copies[fold[copy_of] != k]])
            yt = np.concatenate([y[train], y[copy_of][fold[copy_of] != k]])
            norm = Normaliser.fit(xt, "standard")
            w, b = _ridge(norm(xt), yt, alpha, 10)
            correct += int(((norm(x[held]) @ w + b).argmax(1) == y[held]).sum())
        best = max(best, correct / len(y))
    return best


def _cv_of_run(out: Path) -> float:
    parts = [np.load(out / "features" / f"{split}.npz") for split in ("train", "validation")]
    x = np.concatenate([p["counts"] for p in parts]).astype(np.float64)
    y = np.concatenate([p["labels"] for p in parts])
    copies, copy_of = None, None
    if (out / "features" / "augmented.npz").exists():   # copies of train, one block per move
        with np.load(out / "features" / "augmented.npz") as f:
            copies = f["counts"].astype(np.float64)
        n_train = len(parts[0]["labels"])
        copy_of = np.tile(np.arange(n_train), len(copies) // n_train)
    return cross_validated(x, y, copies=copies, copy_of=copy_of)


def accuracy(args, data: Path) -> dict:
    runs = Path(args.runs)
    results = {}
    results["raw counts + logistic"] = raw_count_baseline(data, args.progress)
    for name, config, overrides in MODELS:
        results[f"{name}, counts"] = train_model(f"{name} counts", config, overrides + COUNTS, runs,
                                                 data, args.progress, augment=args.augment)
        results[f"{name}, 3 bins"] = train_model(name, config, overrides, runs, data, args.progress,
                                                 augment=args.augment)
    print("\nAccuracy on nmnist-small (readout chosen on validation; test = 100 real recordings;"
          "\nCV = ridge readout, 10-fold cross-validation over the 900 Train recordings;"
          f"\n{moved_copies(args.augment)}, except the raw-count baseline)")
    header = (f"{'model':<28}{'val %':>7}{'test %':>8}{'CV %':>7}{'BF test':>9}{'E Hz':>7}{'I Hz':>7}"
              f"{'samples/s':>11}")
    print(header)
    print("-" * len(header))
    for name, m in results.items():
        acc = m["accuracy"]
        bf = m.get("branching_factor", {}).get("test")
        rate = m.get("firing_rate_hz", {}).get("test", {})
        sps = m.get("samples_per_s", {}).get("features")
        print(f"{name:<28}{acc.get('validation', float('nan')) * 100:>7.1f}{acc['test'] * 100:>8.1f}"
              f"{acc.get('cv_ridge', float('nan')) * 100:>7.1f}"
              f"{bf if bf is not None else float('nan'):>9.3f}{rate.get('E', float('nan')):>7.1f}"
              f"{rate.get('I', float('nan')):>7.1f}{sps if sps else float('nan'):>11.1f}")
    return {k: {key: v.get(key) for key in ("accuracy", "branching_factor", "firing_rate_hz",
                                             "samples_per_s", "timing", "readout", "chosen")}
            for k, v in results.items()}


def _synthesise(images_path: str, out: str, lo: int, hi: int, seed: int) -> None:
    from spiking.data.synth import synthesize_dataset

    with np.load(images_path) as f:
        images, labels = f["images"][lo:hi], f["labels"][lo:hi]
    synthesize_dataset(images, labels, out, split="Train", first_index=lo + 1, seed=seed,
                       progress=False)


def synthetic_mix(data: Path, n: int, seed: int = 0) -> Path:
    """A folder in the N-MNIST layout with the real recordings of ``data`` (links) and
    ``n`` synthetic recordings of MNIST training images 901.. (file numbers as in
    N-MNIST, so none clashes with a real one), built once in the cache folder."""
    from multiprocessing import Pool

    from spiking.data.paths import cache_root

    out = cache_root() / "bench_lsm" / f"{data.name}+{n}-synthetic-seed{seed}"
    if (out / "complete").exists():
        return out
    images = data.parent / "mnist" / "mnist_train_approx.npz"
    if not images.exists():
        sys.exit(f"bench_lsm: --synthetic needs the MNIST training images at {images}")
    first = 900   # the real Train recordings are of MNIST images 1-900
    chunks = [(first + k, first + min(k + 1000, n)) for k in range(0, n, 1000)]
    print(f"synthesising {n} recordings into {out}", flush=True)
    with Pool(os.cpu_count()) as pool:
        pool.starmap(_synthesise, [(str(images), str(out), lo, hi, seed) for lo, hi in chunks])
    for split in ("Train", "Test"):
        for f in sorted((data / split).glob("*/*.bin")):
            link = out / split / f.parent.name / f.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(f.resolve())
    (out / "complete").write_text(f"{n} synthetic recordings, seed {seed}\n")
    return out


def synthetic(args, data: Path) -> dict:
    """LSM and NALSM (3 bins) trained on the real Train recordings plus synthetic ones."""
    mixed = synthetic_mix(data, args.synthetic)
    results = {}
    for name, config, overrides in [m for m in MODELS if m[0] in ("LSM", "NALSM")]:
        results[name] = train_model(f"{name} synthetic {args.synthetic}", config, overrides,
                                    Path(args.runs), mixed, args.progress, cv=False,
                                    augment=args.augment or 0)   # no moved copies of N synthetic
    print(f"\nTrained on {data.name} Train + {args.synthetic} synthetic recordings; "
          f"test = the real Test recordings")
    print(f"{'model':<10}{'val %':>7}{'test %':>8}{'BF test':>9}{'samples/s':>11}")
    for name, m in results.items():
        print(f"{name:<10}{m['accuracy']['validation'] * 100:>7.1f}{m['accuracy']['test'] * 100:>8.1f}"
              f"{m['branching_factor']['test']:>9.3f}{m['samples_per_s']['features']:>11.1f}")
    return {name: {key: m.get(key) for key in ("accuracy", "branching_factor", "samples_per_s",
                                                "timing", "chosen")}
            for name, m in results.items()}


def seeds(args, data: Path) -> dict:
    """LSM, LSM+STDP and NALSM (3 bins; ``--models`` picks some) on ``--seeds`` liquids
    (config seeds 1..N; 1 is the accuracy run's): mean and spread of validation, test
    and CV accuracy, and per seed whether the paper's order NALSM >= LSM > LSM+STDP
    holds. A seed fixes the liquid's connectivity for all three (the fixed LSM scales
    its weights), so the per-seed differences are paired."""
    runs = Path(args.runs)
    names = [n for n in LIQUIDS if n in args.models]
    table = {name: [] for name in names}
    for seed in range(1, args.seeds + 1):
        for name, config, overrides in [m for m in MODELS if m[0] in names]:
            run = name if seed == 1 else f"{name} seed {seed}"
            m = train_model(run, config, overrides + [f"seed={seed}"], runs, data, args.progress,
                            augment=args.augment)
            table[name].append({"seed": seed, "test": m["accuracy"]["test"], "cv": m["accuracy"]["cv_ridge"],
                                "validation": m["accuracy"]["validation"],
                                "branching_factor": m["branching_factor"]["test"]})
    keys = ("validation", "test", "cv")
    percent = {n: {key: np.array([r[key] for r in table[n]]) * 100 for key in keys} for n in names}
    holds = {key: (percent["NALSM"][key] >= percent["LSM"][key]) & (percent["LSM"][key] > percent["LSM+STDP"][key])
             for key in ("test", "cv")} if len(names) == len(LIQUIDS) else None
    print(f"\nLiquids of {args.seeds} seeds, counts in 3 time bins (test = 100 real recordings; CV = ridge, "
          "10-fold over the 900 Train recordings)"
          + f"; {moved_copies(args.augment)}")
    print(f"{'seed':>5}" + "".join(f"{n + ' test/CV %':>22}" for n in names)
          + (f"{'order (test / CV)':>20}" if holds else ""))
    for i in range(args.seeds):
        print(f"{i + 1:>5}" + "".join(f"{percent[n]['test'][i]:>15.1f} /{percent[n]['cv'][i]:>5.1f}" for n in names)
              + (f"{'yes' if holds['test'][i] else 'no':>14} / {'yes' if holds['cv'][i] else 'no'}"
                 if holds else ""))
    summary = {}
    for n in names:
        summary[n] = {}
        for key in keys:
            summary[n][f"{key}_mean"] = percent[n][key].mean()
            summary[n][f"{key}_sd"] = percent[n][key].std(ddof=1) if args.seeds > 1 else float("nan")
        print(f"{n:<10}" + "   ".join(f"{key} {summary[n][key + '_mean']:5.1f} +- {summary[n][key + '_sd']:4.1f}"
                                      for key in keys))
    if "NALSM" in names and "LSM" in names:
        for key in keys:
            diff = percent["NALSM"][key] - percent["LSM"][key]
            print(f"NALSM - LSM ({key}): {diff.mean():+.1f} +- {diff.std(ddof=1) / np.sqrt(len(diff)):.1f} "
                  "(mean +- standard error over seeds)"
                  + (f"; NALSM >= LSM > LSM+STDP on {int(holds[key].sum())} of {args.seeds} seeds"
                     if holds and key in holds else ""))
            summary[f"nalsm_minus_lsm_{key}"] = diff.mean()
            if holds and key in holds:
                summary[f"order_holds_{key}"] = int(holds[key].sum())
    return {"per_seed": table, "summary": summary}


def sweep_scale(args, data: Path) -> dict:
    """Validation accuracy of one model (``--sweep-scale MODEL``, default the fixed LSM)
    against the liquid weight scale, with total counts as features."""
    runs = Path(args.runs)
    name, config, overrides = next(m for m in MODELS if m[0] == args.sweep_scale)
    out = {}
    for scale in args.scales:
        m = train_model(f"{name.lower()} scale {scale:g}", config,
                        overrides + [f"lsm.liquid.scale={scale}"] + COUNTS, runs, data, args.progress,
                        augment=args.augment)
        out[scale] = m
    print(f"\n{name}, total counts: liquid weight scale (chosen on validation)")
    print(f"{'scale':>7}{'val %':>8}{'test %':>8}{'CV %':>7}{'BF':>8}{'E Hz':>7}")
    for scale, m in out.items():
        print(f"{scale:>7g}{m['accuracy']['validation'] * 100:>8.1f}{m['accuracy']['test'] * 100:>8.1f}"
              f"{m['accuracy']['cv_ridge'] * 100:>7.1f}"
              f"{m['branching_factor']['validation'] or float('nan'):>8.3f}"
              f"{m['firing_rate_hz']['validation']['E']:>7.1f}")
    best = max(out, key=lambda s: out[s]["accuracy"]["validation"])
    print(f"best on validation: scale {best:g}")
    return {str(k): {"accuracy": v["accuracy"], "branching_factor": v["branching_factor"]}
            for k, v in out.items()}


# ----------------------------------------------------------------------------- speed
def _liquid(batch: int, runs: Path, data: Path, progress: bool):
    """The NALSM1000 liquid and its weights after the initialisation phase: from the
    accuracy run when there is one, else from a (shorter) initialisation, saved in
    ``runs/speed_liquid.npz`` for the workers."""
    from networks.lsm import LiquidStateMachine, open_splits

    machine = LiquidStateMachine.from_file(REPO / "configs/nalsm_nmnist.yaml",
                                           ["lsm.features.branching=0", "lsm.init.windows=200",
                                            "lsm.data.augment.shift=0"],
                                           batch_size=batch, progress=progress)
    accuracy_runs = [run_dir(runs, name) / "liquid.npz"   # its initialisation, with or without copies
                     for name in ("NALSM", f"NALSM aug {augment_shift('configs/nalsm_nmnist.yaml')}")]
    for saved, origin in ([(path, "the NALSM accuracy run") for path in accuracy_runs]
                          + [(runs / "speed_liquid.npz", "a 200-window initialisation")]):
        if saved.exists():
            with np.load(saved) as f:
                if f["weights"].size == machine.spec.connectivity.nnz:
                    return machine, f["weights"], f"weights after initialisation ({origin})"
    splits = open_splits(machine.lsm, data, machine.dt, progress=progress)
    weights = machine.initialise(splits.train, splits.train_index)
    np.savez(runs / "speed_liquid.npz", weights=weights)
    return machine, weights, "weights after initialisation (a 200-window initialisation)"


def _dense(machine, weights):
    """Synapse lists and dense input [n_liquid, n_in] / recurrent [n_liquid, n_liquid]
    weights, in NALSM units (|w| <= 3)."""
    spec = machine.spec
    conn = spec.connectivity
    inp = spec.population("inp")
    local = np.full(spec.n_total, -1)
    start = 0
    for name in machine.populations:
        p = spec.population(name)
        local[p.offset:p.stop] = np.arange(start, start + p.size)
        start += p.size
    pre = conn.pre_index()
    post = local[conn.target.astype(np.int64) % spec.n_total]
    values = np.asarray(weights, np.float64)
    from_input = (pre >= inp.offset) & (pre < inp.stop)
    w_in = np.zeros((start, inp.size))
    np.add.at(w_in, (post[from_input], pre[from_input] - inp.offset), values[from_input])
    rec = ~from_input
    w_rec = np.zeros((start, start))
    np.add.at(w_rec, (post[rec], local[pre[rec]]), values[rec])
    return w_in, w_rec, (pre, post, values, from_input, local)


class Clock:
    """Wall and CPU time (this process and its children) of a block."""

    def __enter__(self):
        import resource

        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        self.child = resource.getrusage(resource.RUSAGE_CHILDREN)
        return self

    def __exit__(self, *exc):
        import resource

        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu + (child.ru_utime - self.child.ru_utime) + \
            (child.ru_stime - self.child.ru_stime)


def fastest(passes: list) -> dict:
    """The pass with the least CPU time: on a shared machine noise only slows a pass."""
    return dict(min(passes, key=lambda p: p["cpu_s"]), passes=len(passes))


def timed_passes(one_pass, repeats: int, neuron_seconds: float) -> dict:
    """Times ``repeats`` calls of ``one_pass`` (which returns its spike count); the
    fastest, with the liquid's mean rate (Hz) over ``neuron_seconds``."""
    passes = []
    for _ in range(repeats):
        with Clock() as clock:
            spikes = one_pass()
        passes.append({"wall_s": clock.wall, "cpu_s": clock.cpu, "rate_hz": spikes / neuron_seconds})
    return fastest(passes)


def worker_ours(machine, weights, batches, plastic: bool, repeats: int) -> dict:
    """``batches``: the samples as SpikeCounts, one per batch (as the LSM reads them)."""
    n = sum(x.n_instances for x in batches)
    net = machine.network(batches[0].n_instances, plastic=plastic, weights=weights)
    net.reset(weights=plastic)
    net.run(250.0, inputs={"inp": batches[0]}, progress=False)   # warm-up (kernel load)

    def one_pass():
        spikes = 0
        for x in batches:
            net.reset(weights=plastic)
            res = net.run(250.0, inputs={"inp": x}, progress=False)
            spikes += np.concatenate([res.counts(p) for p in machine.populations], axis=1).sum()
        return spikes

    return timed_passes(one_pass, repeats, machine.n_liquid * n * 0.25)


def worker_norse(machine, weights, x_all, batch: int, current: float, repeats: int) -> dict:
    """NALSM's formulation in norse: tau dv/dt = -v + i, the input current jumps by
    current * w per spike and (tau_syn = dt, Euler) lasts one step."""
    import norse.torch as norse
    import torch

    w_in, w_rec, _ = _dense(machine, weights)
    neuron = machine.lsm.neuron
    p = norse.LIFParameters(tau_syn_inv=torch.tensor(1000.0 / neuron.tau_syn),
                            tau_mem_inv=torch.tensor(1000.0 / neuron.tau_m),
                            v_leak=torch.tensor(neuron.v_rest), v_th=torch.tensor(neuron.v_thresh),
                            v_reset=torch.tensor(neuron.v_reset))
    cell = norse.LIFRecurrentCell(w_in.shape[1], w_in.shape[0], p=p, autapses=True, dt=0.001)
    with torch.no_grad():
        cell.input_weights.copy_(torch.tensor(w_in * current, dtype=torch.float32))
        cell.recurrent_weights.copy_(torch.tensor(w_rec * current, dtype=torch.float32))

    def one(x):
        state = None
        counts = torch.zeros(x.shape[1], w_in.shape[0])
        with torch.no_grad():
            inputs = torch.from_numpy(x).float()
            for t in range(inputs.shape[0]):
                z, state = cell(inputs[t], state)
                counts += z
        return counts

    n = x_all.shape[1]
    one(x_all[:, :batch])   # warm-up

    def one_pass():
        return sum(float(one(x_all[:, start:start + batch]).sum()) for start in range(0, n, batch))

    return timed_passes(one_pass, repeats, machine.n_liquid * n * 0.25)


def worker_brian2(machine, weights, x_all, current: float, threads: int, repeats: int) -> dict:
    """The same liquid in Brian2 cpp_standalone; samples one after another in one run,
    state reset at each sample's start; compile time reported apart."""
    import brian2 as b2

    n_samples, T = x_all.shape[1], x_all.shape[0]
    _, _, (pre, post, values, from_input, local) = _dense(machine, weights)
    neuron = machine.lsm.neuron
    inp = machine.spec.population("inp")
    directory = tempfile.mkdtemp(prefix="brian2_lsm_")
    b2.set_device("cpp_standalone", directory=directory, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = threads if threads > 1 else 0
    b2.defaultclock.dt = 1 * b2.ms
    t_idx, s_idx, i_idx = np.nonzero(x_all)
    gen = b2.SpikeGeneratorGroup(inp.size, i_idx, (s_idx * T + t_idx) * b2.ms)
    eqs = """dv/dt = (-v + I) / tau : 1
             dI/dt = -I / tau_s : 1"""
    G = b2.NeuronGroup(machine.n_liquid, eqs, threshold=f"v >= {neuron.v_thresh}",
                       reset=f"v = {neuron.v_reset}", refractory=neuron.tau_refrac * b2.ms,
                       method="exact", namespace={"tau": neuron.tau_m * b2.ms,
                                                  "tau_s": neuron.tau_syn * b2.ms})
    G.run_regularly("v = 0\nI = 0", dt=T * b2.ms, when="start")
    # v moves by the integral of I / tau: a jump J decaying with tau_s gives J tau_s / tau, and
    # NALSM's spike gives current * w * (1 ms) / tau, so J = current * w * (1 ms / tau_s)
    scale = current / neuron.tau_syn
    S_in = b2.Synapses(gen, G, "w : 1", on_pre="I_post += w")
    S_in.connect(i=(pre[from_input] - inp.offset).astype(int), j=post[from_input].astype(int))
    S_in.w = values[from_input] * scale
    rec = ~from_input
    S_rec = b2.Synapses(G, G, "w : 1", on_pre="I_post += w")
    S_rec.connect(i=local[pre[rec]].astype(int), j=post[rec].astype(int))
    S_rec.w = values[rec] * scale
    spikes = b2.SpikeMonitor(G, record=False)
    b2.run(n_samples * T * b2.ms)
    began = time.perf_counter()
    b2.device.build(directory=directory, compile=True, run=False)
    compile_s = time.perf_counter() - began
    passes = []
    for _ in range(repeats):   # the same binary, run again
        with Clock() as clock:
            b2.device.run(directory=directory, with_output=False)
        # Brian2's own figure for its simulation loop (std::clock, without loading the
        # binary's arrays): the fairer time for a one-thread run
        loop_s = float(b2.device._last_run_time)
        passes.append({"wall_s": clock.wall,
                       "cpu_s": min(clock.cpu, loop_s) if threads <= 1 else clock.cpu,
                       "binary_cpu_s": clock.cpu, "loop_s": loop_s})
    rate = float(spikes.num_spikes) / (machine.n_liquid * n_samples * T / 1000.0)
    return dict(fastest(passes), compile_s=compile_s, rate_hz=rate)


def speed_worker(args, data: Path) -> dict:
    """One measurement, in its own process (threads fixed before numba/torch start)."""
    import torch

    from spiking.data import NMNIST

    torch.set_num_threads(args.threads)
    machine, weights, origin = _liquid(args.batch, Path(args.runs), data, False)
    ds = NMNIST(data, "test", encoder=machine.encoder, cache=True, progress=False)
    n = min(args.samples, len(ds))
    current = machine.lsm.neuron.current or 1.0
    kind = args.worker
    if kind in ("ours-fixed", "ours-plastic"):
        batches = [ds.batch(np.arange(start, min(n, start + args.batch)), sparse=True)[0]
                   for start in range(0, n, args.batch)]
        result = worker_ours(machine, weights, batches, kind == "ours-plastic", args.repeats)
    else:   # the peers read dense samples
        x_all = ds.batch(np.arange(n))[0]
        if kind == "norse":
            result = worker_norse(machine, weights, x_all, args.batch, current, args.repeats)
        else:
            result = worker_brian2(machine, weights, x_all, current, args.threads, args.repeats)
    result.update(samples=n, threads=args.threads, origin=origin,
                  samples_per_s=n / result["wall_s"], samples_per_cpu_s=n / result["cpu_s"])
    return result


def speed(args, data: Path) -> dict:
    import subprocess

    # make the liquid (and compile the kernels) once before timing anything
    _liquid(args.batch, Path(args.runs), data, args.progress)
    cores = os.cpu_count() or 1
    plan = []
    for threads in sorted({1, cores}):
        plan += [("ours-fixed", threads), ("ours-plastic", threads)]
        if not args.skip_norse:
            plan.append(("norse", threads))
        if not args.skip_brian2:
            plan.append(("brian2", threads))
    labels = {"ours-fixed": "ours (numba), fixed weights", "ours-plastic": "ours (numba), NALSM STDP",
              "norse": "norse LIFRecurrentCell", "brian2": "Brian2 cpp_standalone"}
    print(f"\nSpeed: NALSM1000 feature extraction, {args.samples} test samples of 250 ms, "
          f"batch {args.batch}; each run a separate process, the fastest of {args.repeats} passes",
          flush=True)
    out = {}
    for kind, threads in plan:
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads))
        cmd = [sys.executable, __file__, "--worker", kind, "--threads", str(threads),
               "--samples", str(args.samples), "--batch", str(args.batch), "--runs", args.runs,
               "--repeats", str(args.repeats)]
        load = os.getloadavg()[0]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"  {kind} x{threads}: failed\n{done.stderr[-2000:]}", flush=True)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["load_before"] = load
        out[f"{kind} x{threads}"] = result
        extra = f", compile {result['compile_s']:.0f} s" if "compile_s" in result else ""
        print(f"  {labels[kind]}, {threads} thread(s): {result['samples_per_s']:.1f} samples/s wall, "
              f"{result['samples_per_cpu_s']:.1f} per CPU-second, liquid {result['rate_hz']:.1f} Hz"
              f" (load {load:.1f}{extra})", flush=True)
    print(f"\n{'implementation':<32}{'threads':>8}{'samples/s':>11}{'per CPU-s':>11}{'rate Hz':>9}")
    for key, r in out.items():
        kind = key.split(" x")[0]
        print(f"{labels[kind]:<32}{r['threads']:>8}{r['samples_per_s']:>11.1f}"
              f"{r['samples_per_cpu_s']:>11.1f}{r['rate_hz']:>9.1f}")

    def ratio(a, b, field):
        return out[a][field] / out[b][field] if a in out and b in out else float("nan")

    print("\nratios (per CPU-second, one thread each; wall time on all cores in brackets):")
    for peer, target in (("norse", 10), ("brian2", 2)):
        print(f"  ours fixed / {labels[peer]}: {ratio('ours-fixed x1', peer + ' x1', 'samples_per_cpu_s'):.2f}x "
              f"[{ratio(f'ours-fixed x{cores}', f'{peer} x{cores}', 'samples_per_s'):.2f}x] "
              f"(target >= {target}x); NALSM STDP: "
              f"{ratio('ours-plastic x1', peer + ' x1', 'samples_per_cpu_s'):.2f}x")
    print(f"  NALSM STDP slowdown vs fixed: "
          f"{ratio('ours-fixed x1', 'ours-plastic x1', 'samples_per_cpu_s'):.1f}x "
          f"[{ratio(f'ours-fixed x{cores}', f'ours-plastic x{cores}', 'samples_per_s'):.1f}x] (target <= 3x)")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["accuracy", "speed"])
    parser.add_argument("--sweep-scale", nargs="?", const="LSM", choices=LIQUIDS,
                        help="validation accuracy of a model (default LSM) against liquid.scale")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.6, 1.0])
    parser.add_argument("--runs", default=str(REPO / "runs" / "bench_lsm"))
    parser.add_argument("--synthetic", type=int, metavar="N",
                        help="train LSM and NALSM on Train + N synthetic saccade recordings")
    parser.add_argument("--augment", type=int, metavar="PX",
                        help="readouts also learn from translated copies of the training "
                             "recordings, shifts up to PX pixels (lsm.data.augment.shift; "
                             "default: the configs', 1; 0: none, the paper's protocol)")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="LSM, LSM+STDP and NALSM on the liquids of seeds 1..N (accuracy spread, model order)")
    parser.add_argument("--models", nargs="+", choices=LIQUIDS, default=list(LIQUIDS),
                        help="the liquids --seeds trains (default all three)")
    parser.add_argument("--samples", type=int, default=64, help="samples timed for speed")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed passes over the samples per implementation; the fastest counts")
    parser.add_argument("--skip-norse", action="store_true")
    parser.add_argument("--skip-brian2", action="store_true")
    parser.add_argument("--worker", choices=["ours-fixed", "ours-plastic", "norse", "brian2"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    data = data_root()
    if args.worker:
        print(json.dumps(speed_worker(args, data), default=float))
        return 0
    Path(args.runs).mkdir(parents=True, exist_ok=True)
    report = {}
    augmented = "" if args.augment is None else f"_aug{args.augment}"
    if args.sweep_scale:
        report["scale_sweep" + ("" if args.sweep_scale == "LSM" else f"_{args.sweep_scale}")] = sweep_scale(args, data)
    elif args.synthetic:
        report[f"synthetic_{args.synthetic}"] = synthetic(args, data)
    elif args.seeds:
        report[f"seeds_{args.seeds}{augmented}"] = seeds(args, data)
    else:
        if args.only in (None, "accuracy"):
            report[f"accuracy{augmented}"] = accuracy(args, data)
        if args.only in (None, "speed"):
            report["speed"] = speed(args, data)
    path = Path(args.runs) / "bench.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(report)
    path.write_text(json.dumps(old, indent=2, default=float) + "\n")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
