"""Results folders, written atomically: metrics.json, spikes.npz, raster.png.

A results folder is assembled in a temporary sibling folder and moved into
place with ``os.replace``, so a reader never sees half a folder and an
interrupted write leaves the previous results intact.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Dict, Iterator

import numpy as np

from spiking.errors import SpikingError


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write a file so that it is either complete or absent/unchanged."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


@contextlib.contextmanager
def atomic_folder(out_dir: str) -> Iterator[str]:
    """Yield a temporary folder; on success it replaces ``out_dir`` in one rename."""
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.tmp-")
    except OSError as e:
        raise SpikingError(f"cannot write results to {out_dir}: {e.strerror or e}") from None
    try:
        yield tmp
        old = None
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.old-")
            os.rmdir(old)
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SpikingError(f"cannot write results to {out_dir}: {e.strerror or e}; "
                           f"earlier results there are kept") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_metrics(network, result, extra: Dict[str, Any] | None = None) -> Dict[str, Any]:
    spec = network.spec
    metrics = {
        "name": spec.name,
        "config": spec.source_file,
        "backend": network.backend_name,
        "device": getattr(network.backend, "device", None) or "cpu",
        "seed": spec.seed,
        "instances": result.instances,
        "dt_ms": spec.dt,
        "duration_ms": result.duration_ms,
        "steps": result.n_steps,
        "neurons": spec.n_total,
        "synapses": spec.connectivity.nnz,
        "timing": {"build_s": result.timing.get("build_s", 0.0), "run_s": result.timing.get("run_s", 0.0)},
        "populations": result.population_summary(),
    }
    hardware = network.hardware_report()
    if hardware:
        metrics["hardware"] = hardware
    if result.weights:
        clips = network.backend.clip_counts()
        metrics["weights"] = {name: {"mean_start": float(w["mean"][0].mean()),
                                     "mean_end": float(w["mean"][-1].mean()),
                                     "clips": clips.get(name, 0)}
                              for name, w in result.weights.items()}
    metrics.update(extra or {})
    return metrics


def write_run(out_dir: str, network, result, extra: Dict[str, Any] | None = None) -> Dict[str, Any]:
    """Write metrics.json, spikes.npz and raster.png for a run; returns the metrics."""
    metrics = run_metrics(network, result, extra)
    with atomic_folder(out_dir) as tmp:
        arrays = {}
        for pop, rec in result.spikes.items():
            for key, values in rec.items():
                arrays[f"{pop}/{key}"] = values
        np.savez_compressed(os.path.join(tmp, "spikes.npz"), **arrays)
        with open(os.path.join(tmp, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
        if result.spikes:
            raster_png(os.path.join(tmp, "raster.png"), result)
        if result.weights:
            np.savez_compressed(os.path.join(tmp, "weights.npz"), **{
                f"{name}/{key}": values for name, w in result.weights.items()
                for key, values in w.items()})
            weights_png(os.path.join(tmp, "weights.png"), result)
    return metrics


def weights_png(path: str, result, instance: int = 0) -> None:
    """Per monitored plastic projection: mean weight over time, and the weight
    histogram at the start and the end of the run (one instance)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.weights)
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 2.8 * len(names)), squeeze=False)
    for row, name in zip(axes, names):
        w = result.weights[name]
        b = min(instance, w["mean"].shape[1] - 1)
        row[0].plot(w["t"], w["mean"][:, b])
        row[0].set(xlabel="time (ms)", ylabel="mean weight", title=f"{name}: mean weight")
        centres = 0.5 * (w["edges"][1:] + w["edges"][:-1])
        width = w["edges"][1] - w["edges"][0]
        for s, label in ((0, "start"), (-1, "end")):
            row[1].bar(centres, w["hist"][s, b], width=width, alpha=0.5, label=label)
        row[1].set(xlabel="weight", ylabel="synapses", title=f"{name}: histogram")
        row[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def raster_png(path: str, result, instance: int = 0, max_points: int = 200_000) -> None:
    """Spike raster of one instance, populations stacked, with the population rate below."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = result.spec
    fig, (ax, ax_rate) = plt.subplots(2, 1, figsize=(10, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    offset = 0
    for pop, rec in result.spikes.items():
        keep = rec["instance"] == instance
        t, i = rec["t"][keep], rec["i"][keep]
        if t.size > max_points:
            pick = np.random.default_rng(0).choice(t.size, max_points, replace=False)
            t, i = t[pick], i[pick]
        ax.scatter(t, i + offset, s=0.5, marker=".", linewidths=0, label=pop)
        size = spec.population(pop).size
        offset += size
        bin_ms = max(spec.dt, result.duration_ms / 200)
        rate = result.rate(pop, bin_ms)[instance]
        ax_rate.plot(result.t_start * spec.dt + (np.arange(rate.size) + 0.5) * bin_ms, rate, label=pop)
    ax.set_ylabel("neuron")
    ax.set_title(f"{spec.name}: spikes (instance {instance})")
    ax.legend(loc="upper right", markerscale=10, fontsize="small")
    ax_rate.set_xlabel("time (ms)")
    ax_rate.set_ylabel("rate (Hz)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
