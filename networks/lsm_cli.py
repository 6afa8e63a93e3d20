"""``spiking train`` and ``spiking evaluate`` for liquid state machines.

    spiking train configs/nalsm_nmnist.yaml --data ../shared/data/nmnist-small --out runs/nalsm
    spiking evaluate runs/nalsm --data /path/to/N-MNIST --split Test

A run folder (``--out``) holds

- the trained model: ``model.json`` (kind, format, sizes, fingerprints),
  ``config.yaml`` (the resolved LSM file), ``liquid.npz`` (the liquid's weights
  after initialisation, where feature extraction starts) and ``readout.npz``;
- ``metrics.json``, ``accuracy.png`` (readout model selection),
  ``confusion.png`` and ``raster.png`` (one sample);
- ``features/<split>.npz``: spike-count features, so a readout can be retrained
  without simulating again (change ``readout:`` and run the same command);
- ``checkpoints/``: the initialisation (every ``init.checkpoint_every``
  windows) and the features (every batch) as they progress.

Every file is written to a temporary name and moved into place, so an
interrupted run (Ctrl-C, kill, a full disk) keeps its earlier checkpoints;
running the same command again resumes from them and, everything being
seeded, ends with the same result as an uninterrupted run. A folder that holds
a run of another liquid or data set is refused unless ``--restart`` is given;
one that differs only in ``readout:`` reuses the cached features.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

from spiking.errors import ConfigError, DataError, SpikingError

FORMAT = "spiking-lsm/1"
STATE_NAME = "state.json"
# Test hook: raise KeyboardInterrupt after this many feature batches (or init
# checkpoints) in this process, as if the run had been interrupted there.
INTERRUPT_ENV = "SPIKING_LSM_INTERRUPT_AFTER"


# ----------------------------------------------------------------------------- writing
def _write_bytes(path: Path, data: bytes) -> None:
    from spiking.results import atomic_write_bytes

    try:
        atomic_write_bytes(str(path), data)
    except OSError as e:
        raise SpikingError(f"cannot write {path}: {e.strerror or e}; earlier checkpoints and "
                           f"results in {path.parent} are kept") from None


def _write_json(path: Path, obj: Any) -> None:
    from spiking.results import _json_default

    _write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _write_npz(path: Path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _write_bytes(path, buffer.getvalue())


def _write_png(path: Path, draw: Callable[[str], None]) -> None:
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
        os.close(fd)
    except OSError as e:
        raise SpikingError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        draw(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise SpikingError(f"cannot write {path}: {e.strerror or e}; earlier results are kept") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_npz(path: Path) -> Optional[Dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError, EOFError):
        return None


class Interrupter:
    """Counts checkpoints and raises KeyboardInterrupt after $SPIKING_LSM_INTERRUPT_AFTER."""

    def __init__(self):
        value = os.environ.get(INTERRUPT_ENV)
        self.left = int(value) if value else None

    def tick(self) -> None:
        if self.left is None:
            return
        self.left -= 1
        if self.left <= 0:
            raise KeyboardInterrupt(f"{INTERRUPT_ENV} reached")


# ----------------------------------------------------------------------------- run folder
class RunFolder:
    def __init__(self, out: str):
        self.root = Path(out)
        self.checkpoints = self.root / "checkpoints"
        self.features = self.root / "features"

    def prepare(self, fingerprint: str, restart: bool, describe: Dict[str, Any]) -> bool:
        """Create the folders; returns True when resuming an earlier run. Under torchrun
        the main process prepares the folder first and the others then only read it."""
        from spiking import distributed

        ctx = distributed.context()
        if ctx.active and not ctx.is_main:
            distributed.barrier()
            self.checkpoints.mkdir(parents=True, exist_ok=True)   # its own partial features
            return self._check(fingerprint, restart=False)
        try:
            return self._prepare(fingerprint, restart, describe)
        finally:
            if ctx.active:
                distributed.barrier()

    def _check(self, fingerprint: str, restart: bool) -> bool:
        """Whether the folder holds this run (True) or nothing (False); another run is an error."""
        state_path = self.root / STATE_NAME
        if state_path.exists():
            try:
                state = json.loads(state_path.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("fingerprint") == fingerprint and not restart:
                return True
            if not restart:
                raise ConfigError(
                    f"{self.root} holds a run of another liquid config or data set "
                    f"(started from {state.get('config', '?')}); pass --restart to start over "
                    f"there or choose another --out")
        return False

    def _prepare(self, fingerprint: str, restart: bool, describe: Dict[str, Any]) -> bool:
        state_path = self.root / STATE_NAME
        resuming = self._check(fingerprint, restart)
        if restart:
            for folder in (self.checkpoints, self.features):
                shutil.rmtree(folder, ignore_errors=True)
        # temporary files of a write that was killed half-way
        for stale in list(self.root.glob(".tmp-*")) + list(self.checkpoints.glob(".tmp-*")) + \
                list(self.features.glob(".tmp-*")):
            try:
                stale.unlink()
            except OSError:
                pass
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            self.features.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SpikingError(f"cannot create {self.root}: {e.strerror or e}") from None
        _write_json(state_path, dict(describe, fingerprint=fingerprint))
        return resuming


def fingerprint(tree: dict, data_root: str, splits) -> str:
    """What determines the liquid's features: the resolved config (less the
    ``readout:`` section, so a readout can be retrained on the cached features)
    and the data."""
    h = hashlib.sha256()
    liquid = {k: v for k, v in tree.items() if k != "readout"}
    h.update(json.dumps(liquid, sort_keys=True, default=str).encode())
    h.update(str(Path(data_root).resolve()).encode())
    for ds in (splits.train, splits.validation, splits.test):
        if ds is not None:
            h.update(ds.split.encode())
            h.update(np.asarray(ds.labels).tobytes())
            h.update("\n".join(r.location for r in ds.recordings).encode())
    return h.hexdigest()[:20]


# ----------------------------------------------------------------------------- train
def _on_sigterm(signum, frame):
    raise KeyboardInterrupt("terminated")


def train(args) -> int:
    """``spiking train`` for an LSM file; a kill (SIGTERM) ends it like Ctrl-C."""
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:      # not the main thread
        previous = None
    try:
        return _train(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _train(args) -> int:
    from networks.lsm import LiquidStateMachine, load_lsm_config, open_splits
    from networks.readout import train_readout
    from spiking.data import discover

    from spiking import distributed

    began = time.perf_counter()
    main = distributed.context().is_main       # under torchrun only one process reports and writes
    progress = not getattr(args, "no_progress", False) and main
    say = print if main else (lambda *a, **k: None)
    config, tree = load_lsm_config(args.config, getattr(args, "overrides", None) or ())
    machine = LiquidStateMachine(config, backend=getattr(args, "backend", None),
                                 device=getattr(args, "device", None),
                                 batch_size=getattr(args, "batch_size", None), progress=progress)
    lsm = machine.lsm
    data_arg = getattr(args, "data", None)
    if data_arg is None and lsm.data.path:
        data_arg = str((Path(args.config).parent / lsm.data.path).resolve()) \
            if not os.path.isabs(lsm.data.path) else lsm.data.path
    choice = discover(data_arg, progress=progress)
    say(choice.message)
    splits = open_splits(lsm, choice.path, machine.dt, progress=progress)
    run = RunFolder(args.out)
    fp = fingerprint(tree, str(choice.path), splits)
    resuming = run.prepare(fp, getattr(args, "restart", False),
                           {"config": str(args.config), "data": str(choice.path)})
    say(f"{config.name or args.config}: {machine.describe()}")
    say(f"data: {len(splits.train_index)} train"
          + (f" (+ {len(splits.augmented)} translated copies, shifts up to "
             f"{lsm.data.augment.shift} px)" if splits.augmented is not None else "") + ", "
          f"{len(splits.validation) if splits.validation is not None else 0} validation, "
          f"{len(splits.test_index) if splits.test is not None else 0} test samples"
          + ("; resuming from checkpoints in " + str(run.root) if resuming else "")
          + (f"; samples shared by {distributed.context().world_size} processes"
             if distributed.context().active else ""))
    interrupter = Interrupter()
    timing: Dict[str, float] = {}

    # 1. initialisation
    t0 = time.perf_counter()
    weights = _initialise(machine, splits, run, fp, interrupter)
    timing["init_s"] = time.perf_counter() - t0

    # 2. features
    features = {}
    t0 = time.perf_counter()
    jobs = [("train", splits.train, splits.train_index)]
    if splits.augmented is not None:
        jobs.append(("augmented", splits.augmented, None))
    if splits.validation is not None:
        jobs.append(("validation", splits.validation, None))
    if splits.test is not None:
        jobs.append(("test", splits.test, splits.test_index))
    for name, dataset, index in jobs:
        features[name] = _features(machine, name, dataset, index, weights, run, fp, interrupter)
    timing["features_s"] = time.perf_counter() - t0
    if not main:
        return 0

    # 3. readout
    t0 = time.perf_counter()
    empty = np.zeros((0, machine.n_features), np.float32)
    val = features.get("validation")
    learn = features["train"]
    if "augmented" in features:
        learn = learn.append(features["augmented"])
    fit = train_readout(machine.readout, learn.counts, learn.labels,
                        val.counts if val is not None else empty,
                        val.labels if val is not None else np.zeros(0, np.int64), progress)
    timing["readout_s"] = time.perf_counter() - t0
    readout = fit.readout
    accuracy = {name: readout.accuracy(f.counts, f.labels) for name, f in features.items()}
    if "validation" in accuracy:
        # the chosen setting trained on train only (the final readout may have seen validation)
        accuracy["validation"] = fit.validation

    # 4. model, metrics, plots
    metrics = _metrics(machine, splits, features, fit, accuracy, timing, choice, args, began)
    _save_model(run, machine, tree, weights, readout, fp)
    _write_json(run.root / "metrics.json", metrics)
    _plots(run, machine, splits, features, fit, weights)
    metrics["timing"]["total_s"] = time.perf_counter() - began
    _write_json(run.root / "metrics.json", metrics)
    _summary(metrics, run)
    return 0


def _initialise(machine, splits, run: RunFolder, fp: str, interrupter: Interrupter):
    """The weights after the unsupervised initialisation (None without one). Under
    torchrun every process runs it (from the same checkpoint), the main one saves
    the checkpoints, and its weights replace the others' (GPU sums may differ)."""
    from spiking import distributed

    weights = _initialise_here(machine, splits, run, fp, interrupter)
    return None if weights is None else distributed.broadcast(weights)


def _initialise_here(machine, splits, run: RunFolder, fp: str, interrupter: Interrupter):
    from spiking import distributed

    lsm = machine.lsm
    if not (lsm.plastic and lsm.init.enabled and lsm.init.windows > 0):
        return None
    final = run.checkpoints / "init.npz"
    saved = _load_npz(final)
    start, weights = 0, None
    if saved is not None and str(saved.get("fingerprint")) == fp:
        start, weights = int(saved["done"]), saved["weights"]
        if start >= lsm.init.windows:
            return weights
        print(f"initialisation: resuming after window {start} of {lsm.init.windows}")

    def checkpoint(done, w):
        _write_npz(final, weights=w, done=np.int64(done), fingerprint=np.str_(fp))
        if done < lsm.init.windows:
            interrupter.tick()

    return machine.initialise(splits.train, splits.train_index, start=start, weights=weights,
                              checkpoint=checkpoint if distributed.context().is_main else None)


def _features(machine, name, dataset, index, weights, run: RunFolder, fp: str,
              interrupter: Interrupter):
    """Features of ``dataset[index]`` (all of it when None), cached in the run folder
    and resumable. Under torchrun each process extracts a contiguous shard of the
    samples (resuming from its own checkpoint) and every process gets all rows."""
    from networks.lsm import Features
    from spiking import distributed

    ctx = distributed.context()
    done_path = run.features / f"{name}.npz"
    positions = np.arange(len(dataset)) if index is None else np.asarray(index, np.int64)
    n = positions.size
    saved = _load_npz(done_path)
    found = saved is not None and str(saved.get("fingerprint")) == fp and len(saved["labels"]) >= n
    if distributed.all_true(found):
        return Features.from_arrays(saved)
    mine = distributed.shard(n)
    partial_path = run.checkpoints / (f"features-{name}.npz" if not ctx.active else
                                      f"features-{name}-{ctx.rank}of{ctx.world_size}.npz")
    saved = _load_npz(partial_path)
    resume = None
    if saved is not None and str(saved.get("fingerprint")) == fp:
        resume = Features.from_arrays(saved)
        print(f"features {name}: resuming after {len(resume)} of {mine.size} samples")

    def on_batch(so_far: Features):
        if len(so_far) < mine.size:
            _write_npz(partial_path, fingerprint=np.str_(fp), **so_far.arrays())
            interrupter.tick()

    feats = extract_shared(machine, dataset, positions, weights, f"features {name}", resume, on_batch)
    if ctx.is_main:
        _write_npz(done_path, fingerprint=np.str_(fp), **feats.arrays())
    if partial_path.exists():
        try:
            partial_path.unlink()
        except OSError:
            pass
    return feats


def extract_shared(machine, dataset, positions: np.ndarray, weights, desc: str,
                   resume=None, on_batch=None):
    """``machine.extract`` of ``dataset[positions]``, shared out under torchrun: each
    process extracts its contiguous shard (:func:`spiking.distributed.shard`) and
    every process gets all rows, in order; the simulation time is the slowest
    process's. Without torchrun, all of them here."""
    from networks.lsm import Features
    from spiking import distributed

    mine = distributed.shard(positions.size)
    feats = machine.extract(dataset, positions[mine], weights=weights, resume=resume, on_batch=on_batch,
                            desc=desc, position=int(mine[0]) if mine.size else positions.size)
    if not distributed.context().active:
        return feats
    return Features(*(distributed.gather_rows(a, positions.size) for a in
                      (feats.counts, feats.labels, feats.branching, feats.spikes)),
                    seconds=distributed.reduce(feats.seconds, "max"))


def _metrics(machine, splits, features, fit, accuracy, timing, choice, args, began) -> dict:
    lsm = machine.lsm
    spec = machine.spec
    window = lsm.data.window
    n_exc = machine.config.populations["E"].size if "E" in machine.config.populations else 0
    n_inh = machine.config.populations["I"].size if "I" in machine.config.populations else 0
    sim_seconds = sum(f.seconds for f in features.values())
    samples = sum(len(f) for f in features.values())
    liquid = sum(p.n_synapses for p in spec.projections if not p.name.startswith("in"))
    branching = {}
    for name, f in features.items():
        finite = f.branching[np.isfinite(f.branching)]
        branching[name] = float(finite.mean()) if finite.size else None
    return {
        "kind": "lsm",
        "config": str(args.config),
        "model": {"none": "LSM", "stdp": "LSM+STDP", "astrocyte": "NALSM"}[lsm.plasticity.rule],
        "plasticity": lsm.plasticity.rule,
        "plastic_features": bool(lsm.features.plastic and lsm.plastic),
        "data": {"root": str(choice.path), "origin": choice.origin, "synthetic": choice.synthetic,
                 **{name: len(f) for name, f in features.items()}},
        "accuracy": accuracy,
        "readout": {"type": fit.readout.kind, "chosen": fit.chosen, "selection": fit.selection,
                    "refit_on_validation": bool(machine.readout.refit and "validation" in features)},
        "branching_factor": branching,
        "branching_samples": {name: int(np.isfinite(f.branching).sum()) for name, f in features.items()},
        "firing_rate_hz": {name: f.rates_hz(window, n_exc, n_inh) for name, f in features.items()},
        "samples_per_s": {
            "features": samples / sim_seconds if sim_seconds > 0 else None,
            **{name: (len(f) / f.seconds if f.seconds > 0 else None) for name, f in features.items()}},
        "liquid": {"neurons": machine.n_liquid, "excitatory": n_exc, "inhibitory": n_inh,
                   "liquid_synapses": int(liquid),
                   "input_synapses": int(spec.connectivity.nnz - liquid),
                   "backend": machine.backend, "batch_size": machine.batch_size},
        "timing": {**timing, "simulation_s": sim_seconds, "total_s": time.perf_counter() - began},
    }


def _save_model(run: RunFolder, machine, tree, weights, readout, fp) -> None:
    import yaml

    _write_bytes(run.root / "config.yaml", yaml.safe_dump(tree, sort_keys=False).encode())
    _write_npz(run.root / "liquid.npz",
               weights=machine.initial_weights if weights is None else np.asarray(weights, np.float32))
    _write_npz(run.root / "readout.npz", **readout.arrays())
    _write_json(run.root / "model.json", {
        "kind": "lsm", "format": FORMAT, "fingerprint": fp,
        "plasticity": machine.lsm.plasticity.rule,
        "plastic_features": bool(machine.lsm.features.plastic and machine.lsm.plastic),
        "n_liquid": machine.n_liquid, "n_features": machine.n_features,
        "n_inputs": int(machine.config.populations["inp"].size),
        "synapses": int(machine.spec.connectivity.nnz),
        "connectivity": machine.connectivity_hash(),
        "readout": {"type": readout.kind, "setting": readout.setting},
    })


def _plots(run: RunFolder, machine, splits, features, fit, weights) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from networks.readout import confusion

    history = fit.history
    key = next(iter(history))

    def draw_accuracy(path):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(history[key], history["train"], label="train")
        if any(np.isfinite(history["validation"])):
            ax.plot(history[key], history["validation"], label="validation")
        if key != "epoch":
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel("accuracy")
        ax.set_title(f"readout ({fit.readout.kind}); chosen: "
                     + ", ".join(f"{k}={v:g}" for k, v in fit.chosen.items()))
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    _write_png(run.root / "accuracy.png", draw_accuracy)
    name = "test" if "test" in features else ("validation" if "validation" in features else "train")
    f = features[name]
    matrix = confusion(f.labels, fit.readout.predict(f.counts), machine.readout.classes)

    def draw_confusion(path):
        fig, ax = plt.subplots(figsize=(5.5, 5))
        ax.imshow(matrix, cmap="Blues")
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if matrix[i, j] > matrix.max() / 2 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(matrix.shape[1]))
        ax.set_yticks(range(matrix.shape[0]))
        acc = np.trace(matrix) / max(matrix.sum(), 1)
        ax.set_title(f"{name}: accuracy {acc:.3f}")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    _write_png(run.root / "confusion.png", draw_confusion)
    dataset = {"test": splits.test, "validation": splits.validation}.get(name) or splits.train
    index = 0 if name != "train" else int(splits.train_index[0])
    if name == "test" and splits.test_index is not None:
        index = int(splits.test_index[0])
    result = machine.sample_run(dataset, index, weights)
    label = int(dataset.labels[index])
    _write_png(run.root / "raster.png", lambda path: raster(path, result, machine, f"{name} sample {index} "
                                                             f"(digit {label})"))


def raster(path: str, result, machine, title: str, bin_ms: float = 5.0) -> None:
    """Spikes of the liquid (E below, I above) and the population rates of one sample.

    (Drawn here rather than with spiking.results.raster_png, whose rate panel puts
    its bins at duration / 200 ms even when the bins are rounded to whole steps.)"""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dt = machine.dt
    steps = max(1, int(round(bin_ms / dt)))
    fig, (ax, ax_rate) = plt.subplots(2, 1, figsize=(10, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    offset = 0
    for pop, colour in zip(machine.populations, ("tab:blue", "tab:red")):
        spikes = result.spikes[pop]
        keep = spikes["instance"] == 0
        t, i = spikes["t"][keep], spikes["i"][keep]
        ax.scatter(t, i + offset, s=1.0, marker=".", linewidths=0, color=colour, label=pop)
        size = machine.config.populations[pop].size
        counts = np.bincount((np.rint(t / dt).astype(int) // steps),
                             minlength=int(np.ceil(machine.steps / steps)))
        centres = (np.arange(counts.size) + 0.5) * steps * dt
        ax_rate.plot(centres, counts / (size * steps * dt / 1000.0), color=colour, label=pop)
        offset += size
    ax.set_ylabel("liquid neuron")
    ax.set_xlim(0, machine.steps * dt)
    ax.set_title(f"{machine.config.name or 'lsm'}: {title}")
    ax.legend(loc="upper right", markerscale=10, fontsize="small")
    ax_rate.set_xlabel("time (ms)")
    ax_rate.set_ylabel(f"rate (Hz, {steps * dt:g} ms bins)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _summary(metrics: dict, run: RunFolder) -> None:
    acc = metrics["accuracy"]
    bf = metrics["branching_factor"]
    parts = [f"{k} {v * 100:.2f}%" for k, v in acc.items()]
    print(f"{metrics['model']}: accuracy " + ", ".join(parts))
    bf_text = ", ".join(f"{k} {v:.3f}" for k, v in bf.items() if v is not None)
    rates = metrics["firing_rate_hz"].get("train", {})
    print(f"  branching factor {bf_text or 'n/a'}; firing rate E {rates.get('E', float('nan')):.1f} Hz, "
          f"I {rates.get('I', float('nan')):.1f} Hz")
    sps = metrics["samples_per_s"]["features"]
    t = metrics["timing"]
    print(f"  features {sps:.1f} samples/s; init {t['init_s']:.1f} s, features {t['features_s']:.1f} s, "
          f"readout {t['readout_s']:.1f} s, total {t['total_s']:.1f} s" if sps else
          f"  total {t['total_s']:.1f} s")
    print(f"  model and results in {run.root}/ (metrics.json, accuracy.png, confusion.png, raster.png)")


# ----------------------------------------------------------------------------- evaluate
def load_model(model_dir: str, backend=None, device=None, batch_size=None, progress=True):
    """(LiquidStateMachine, liquid weights, Readout, model.json) of a run folder."""
    import yaml

    from networks.lsm import LiquidStateMachine, config_from_tree
    from networks.readout import Readout

    root = Path(model_dir)
    try:
        meta = json.loads((root / "model.json").read_text())
    except (OSError, ValueError) as e:
        raise SpikingError(f"{root} is not a trained model folder (model.json: "
                           f"{getattr(e, 'strerror', None) or e})") from None
    if meta.get("kind") != "lsm" or meta.get("format") != FORMAT:
        raise SpikingError(f"{root}/model.json: format {meta.get('format')!r} of kind "
                           f"{meta.get('kind')!r}; this version reads {FORMAT!r} LSM models")
    try:
        tree = yaml.safe_load((root / "config.yaml").read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SpikingError(f"{root}/config.yaml: cannot read the model's config: {e}") from None
    try:
        config = config_from_tree(tree, str(root / "config.yaml"))
    except ConfigError as e:
        raise SpikingError(f"{root}: the model's config is not valid with this version "
                           f"(incompatible model folder): {e}") from None
    machine = LiquidStateMachine(config, backend=backend, device=device, batch_size=batch_size,
                                 progress=progress)
    problems = []
    if machine.n_features != meta.get("n_features"):
        problems.append(f"its config gives {machine.n_features} features, the readout was "
                        f"trained on {meta.get('n_features')}")
    elif machine.connectivity_hash() != meta.get("connectivity"):
        problems.append("its config builds another liquid (connectivity or initial weights "
                        "differ from the ones the model was trained with)")
    liquid = _load_npz(root / "liquid.npz")
    readout_arrays = _load_npz(root / "readout.npz")
    if liquid is None or readout_arrays is None:
        problems.append("liquid.npz or readout.npz is missing or unreadable")
    else:
        if liquid["weights"].size != machine.spec.connectivity.nnz:
            problems.append(f"liquid.npz has {liquid['weights'].size} weights, the liquid "
                            f"{machine.spec.connectivity.nnz} synapses")
        if readout_arrays["weight"].shape[0] != machine.n_features:
            problems.append(f"the readout takes {readout_arrays['weight'].shape[0]} features, "
                            f"the liquid gives {machine.n_features}")
    if problems:
        raise SpikingError(f"{root}: incompatible model folder: {problems[0]}")
    readout = Readout.from_arrays(meta["readout"]["type"], readout_arrays, meta["readout"].get("setting"))
    return machine, liquid["weights"], readout, meta


def evaluate(args) -> int:
    from networks.lsm import check_classes
    from networks.readout import confusion
    from spiking import distributed
    from spiking.data import NMNIST, discover

    progress = not getattr(args, "no_progress", False) and distributed.context().is_main
    machine, weights, readout, meta = load_model(args.model, getattr(args, "backend", None),
                                                 getattr(args, "device", None),
                                                 getattr(args, "batch_size", None), progress)
    split = str(getattr(args, "split", "Test") or "Test")
    if split.lower() not in ("test", "train"):
        raise ConfigError(f"--split must be Test or Train, not {split!r}")
    choice = discover(getattr(args, "data", None), progress=progress)
    if distributed.context().is_main:
        print(choice.message)
    dataset = NMNIST(choice.path, split.lower(), val_fraction=0.0, encoder=machine.encoder,
                     cache=True, progress=progress)
    if len(dataset) == 0:
        raise DataError(f"{choice.path}: no {split} recordings")
    classes = machine.readout.classes
    if dataset.labels.max() >= classes:
        check_classes(dataset.labels, f"{choice.path}/{split}", classes)
    began = time.perf_counter()
    feats = extract_shared(machine, dataset, np.arange(len(dataset)), weights, f"features {split}")
    if not distributed.context().is_main:
        return 0
    elapsed = time.perf_counter() - began
    predicted = readout.predict(feats.counts)
    correct = int((predicted == feats.labels).sum())
    finite = feats.branching[np.isfinite(feats.branching)]
    result = {
        "model": str(args.model), "data": str(choice.path), "split": split,
        "synthetic": choice.synthetic, "samples": len(feats), "correct": correct,
        "accuracy": correct / len(feats),
        "per_class": {str(c): float((predicted[feats.labels == c] == c).mean())
                      for c in range(classes) if (feats.labels == c).any()},
        "confusion": confusion(feats.labels, predicted, classes).tolist(),
        "branching_factor": float(finite.mean()) if finite.size else None,
        "samples_per_s": len(feats) / feats.seconds if feats.seconds > 0 else None,
        "seconds": elapsed,
    }
    out = Path(getattr(args, "out", None) or Path(args.model) / f"evaluate_{split}.json")
    _write_json(out, result)
    print(f"{split}: accuracy {result['accuracy'] * 100:.2f}% ({correct}/{len(feats)}) "
          f"on {choice.path}; {result['samples_per_s'] or 0:.1f} samples/s; written to {out}")
    print(json.dumps({k: result[k] for k in ("split", "samples", "correct", "accuracy")}))
    return 0
