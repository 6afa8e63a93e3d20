#!/usr/bin/env python
"""NALSM1000 feature extraction on the batched torch backend: samples per second
at several batch sizes, with fixed weights (sparse event tables and dense
products) and with astrocyte-modulated STDP, beside norse 1.1 eager on the same
device. On CUDA when present, else the CPU.

    python benchmarks/gpu_lsm.py                                  # small defaults (CPU: ~2-4 min)
    python benchmarks/gpu_lsm.py --batches 256 1024 4096 --samples 8192 --device cuda
    SPIKING_TORCH_COMPILE=0 python benchmarks/gpu_lsm.py          # plain (eager) neuron steps

The liquid is the one of ``benchmarks/bench_lsm.py`` (configs/nalsm_nmnist.yaml,
weights after its initialisation phase, helpers imported from there), fed with
``--samples`` test recordings of 250 ms (``$SPIKING_DATA/nmnist-small``, else
``../shared/data/nmnist-small``; without them the synthetic default set of
``spiking.data.discover`` and the initial weights). The recordings are repeated
to fill the largest batch. Every configuration runs after a warm-up batch;
each batch is reset (the plastic run restores its weights) and run for 250
steps, spike counts out. On the CPU the process runs one thread
(``--threads``) and the ratios use CPU time (``time.process_time``), which
other jobs on a shared machine disturb less than wall time; on CUDA wall time
(synchronised). norse is ``LIFRecurrentCell`` with dense input and recurrent
weights, as in bench_lsm.py.
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
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_lsm  # noqa: E402  (the liquid and its dense weights)


def load_liquid(batch: int, runs: Path, samples: int):
    """(machine, weights, inputs uint8 [T, samples, n_in], where the data came from)."""
    from spiking.data import NMNIST, discover

    runs.mkdir(parents=True, exist_ok=True)
    try:
        data = bench_lsm.data_root()
        machine, weights, origin = bench_lsm._liquid(batch, runs, data, False)
    except SystemExit:
        from networks.lsm import LiquidStateMachine

        data = discover(None, progress=False).path
        machine = LiquidStateMachine.from_file(REPO / "configs/nalsm_nmnist.yaml",
                                               ["lsm.features.branching=0"], batch_size=batch,
                                               progress=False)
        weights, origin = machine.initial_weights, "synthetic data, initial weights"
    ds = NMNIST(data, "test", encoder=machine.encoder, cache=True, progress=False)
    index = np.arange(samples) % len(ds)
    x, _ = ds.batch(index)
    return machine, weights, x, f"{data} ({origin})"


class Timer:
    """CPU time of the process, and wall time (synchronised on CUDA)."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        self._sync()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def _sync(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def ours(machine, weights, x, batch, plastic, propagation, device) -> dict:
    """Samples per second of the torch backend over all of ``x`` in batches."""
    from networks.lsm import spec_variant
    from spiking.engine import Simulator
    from spiking.inputs import SpikeCounts

    spec = spec_variant(machine.spec, plastic and machine.lsm.plastic, True, False, weights)
    sim = Simulator(spec, "torch", batch, str(device), propagation=propagation)
    from spiking.backends.torch_backend import CompiledStep

    path = ("dense" if sim.backend.dense is not None else
            "tables" if sim.backend.events is not None else "csr")
    if any(isinstance(plan.get("step"), CompiledStep) for plan in sim.backend.plans):
        path += ", compiled"
    steps, n = x.shape[0], x.shape[1]
    # the samples as the LSM reads them (nonzero cells), made before the timing
    batches = {start: SpikeCounts.from_dense(x[:, start:start + batch])
               for start in range(0, n - batch + 1, batch)}

    def run(start):
        sim.reset(weights=plastic)
        res = sim.run(steps, inputs={"inp": batches[start]}, progress=False)
        return sum(int(res.counts(p).sum()) for p in machine.populations)

    run(0)   # warm-up (compilation, allocation)
    spikes = 0
    with Timer(device) as clock:
        for start in batches:
            spikes += run(start)
    done = (n // batch) * batch
    return {"samples": done, "wall_s": clock.wall, "cpu_s": clock.cpu, "path": path,
            "rate_hz": spikes / (machine.n_liquid * done * steps / 1000.0)}


def norse(machine, weights, x, batch, device) -> dict:
    """norse LIFRecurrentCell (bench_lsm.worker_norse's setup) on ``device``."""
    import norse.torch as nt
    import torch

    w_in, w_rec, _ = bench_lsm._dense(machine, weights)
    neuron, current = machine.lsm.neuron, machine.lsm.neuron.current or 1.0
    p = nt.LIFParameters(tau_syn_inv=torch.tensor(1000.0 / neuron.tau_syn),
                         tau_mem_inv=torch.tensor(1000.0 / neuron.tau_m),
                         v_leak=torch.tensor(neuron.v_rest), v_th=torch.tensor(neuron.v_thresh),
                         v_reset=torch.tensor(neuron.v_reset))
    cell = nt.LIFRecurrentCell(w_in.shape[1], w_in.shape[0], p=p, autapses=True, dt=0.001).to(device)
    with torch.no_grad():
        cell.input_weights.copy_(torch.tensor(w_in * current, dtype=torch.float32))
        cell.recurrent_weights.copy_(torch.tensor(w_rec * current, dtype=torch.float32))

    def run(start):
        state, total = None, torch.zeros((), device=device)
        with torch.no_grad():
            inputs = torch.from_numpy(x[:, start:start + batch]).to(device).float()
            for t in range(inputs.shape[0]):
                z, state = cell(inputs[t], state)
                total += z.sum()
        return float(total)

    run(0)
    spikes, n = 0.0, x.shape[1]
    with Timer(device) as clock:
        for start in range(0, n - batch + 1, batch):
            spikes += run(start)
    done = (n // batch) * batch
    return {"samples": done, "wall_s": clock.wall, "cpu_s": clock.cpu, "path": "dense",
            "rate_hz": spikes / (machine.n_liquid * done * x.shape[0] / 1000.0)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--samples", type=int, default=256, help="samples per configuration")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch)")
    parser.add_argument("--propagation", nargs="+", default=["sparse", "dense"],
                        choices=["sparse", "dense", "auto"], help="fixed-weight paths to time")
    parser.add_argument("--skip-plastic", action="store_true")
    parser.add_argument("--skip-norse", action="store_true")
    parser.add_argument("--runs", default=str(REPO / "runs" / "bench_lsm"))
    args = parser.parse_args(argv)

    import torch

    from spiking.backends.torch_backend import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    samples = max(args.samples, max(args.batches))
    machine, weights, x, origin = load_liquid(max(args.batches), Path(args.runs), samples)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} thread(s), load {os.getloadavg()[0]:.1f}"
    clock = "wall" if device.type == "cuda" else "CPU"
    print(f"NALSM1000 feature extraction, 250 ms samples, {samples} per configuration; {name}; "
          f"torch {torch.__version__}, SPIKING_TORCH_COMPILE={os.environ.get('SPIKING_TORCH_COMPILE', 'auto')}"
          f"\ndata: {origin}")
    print(f"{'batch':>6} {'implementation':<26} {'path':<17} {'samples/s':>10} {'per CPU-s':>10} "
          f"{'rate Hz':>8} {'vs norse':>9}")
    best = {}   # implementation -> (samples per second, batch)
    for batch in args.batches:
        rows = [(f"ours, fixed ({p})", lambda p=p: ours(machine, weights, x, batch, False, p, device))
                for p in args.propagation]
        if not args.skip_plastic:
            rows.append(("ours, astrocyte STDP", lambda: ours(machine, weights, x, batch, True, "auto", device)))
        if not args.skip_norse:
            rows.insert(0, ("norse eager", lambda: norse(machine, weights, x, batch, device)))
        reference = None
        for label, measure in rows:
            try:
                r = measure()
            except Exception as e:  # a path that cannot run here must not hide the others
                print(f"{batch:>6} {label:<26} failed: {type(e).__name__}: {str(e)[:90]}")
                continue
            per_s = r["samples"] / (r["wall_s"] if device.type == "cuda" else r["cpu_s"])
            reference = per_s if label == "norse eager" else reference
            kind = "norse" if label == "norse eager" else "ours, astrocyte STDP" if "STDP" in label else "ours, fixed"
            best[kind] = max(best.get(kind, (0.0, 0)), (per_s, batch))
            ratio = f"{per_s / reference:8.2f}x" if reference else ""
            print(f"{batch:>6} {label:<26} {r['path']:<17} {r['samples'] / r['wall_s']:>10.1f} "
                  f"{r['samples'] / r['cpu_s']:>10.1f} {r['rate_hz']:>8.1f} {ratio:>9}", flush=True)
    print(f"(vs norse: ratio of samples per {clock}-second)")
    if "norse" in best and "ours, fixed" in best and len(args.batches) > 1:
        (ours_s, ours_b), (norse_s, norse_b) = best["ours, fixed"], best["norse"]
        print(f"best batch of each: ours, fixed {ours_s:.1f} (batch {ours_b}) / norse {norse_s:.1f} "
              f"(batch {norse_b}) = {ours_s / norse_s:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
