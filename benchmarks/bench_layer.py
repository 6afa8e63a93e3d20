#!/usr/bin/env python
"""The library-standard layer benchmark: Linear(n, n) + LIF, batch 16, 500 steps,
forward + backward, side by side with norse (eager and torch.compile) and
snnTorch, on the CPU here or on a GPU.

    python benchmarks/bench_layer.py                    # n = 4096, 8192, 16384 on the best device
    python benchmarks/bench_layer.py --sizes 4096 --device cpu --repeats 3

Each library runs the same work: a [500, 16, n] input sequence through a
bias-free Linear(n, n) layer, then n LIF neurons over the 500 steps, and the
sum of the spikes back-propagated (surrogate gradients). Ours is
``spiking.surrogate`` (a multi-step LIF with a hand-written backward pass
through time); the Linear layer is applied to the whole sequence at once
(its input does not depend on the neurons), as the norse and snnTorch
benchmark code does too. Times are the median of ``--repeats`` after a warm-up,
in milliseconds, with the ratio to ours: wall time (synchronised) on CUDA, CPU
time of the process on the CPU (steadier on a shared machine; run it with
``OMP_NUM_THREADS=1`` for one-thread figures). Peers that are not installed are
skipped (``bash benchmarks/install_peers.sh``).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

STEPS, BATCH = 500, 16


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours(n, device):
    from spiking.surrogate import NeuronParameters, neuron_multistep

    linear = torch.nn.Linear(n, n, bias=False).to(device)
    params = NeuronParameters(tau=2.0)

    def run(x):
        return neuron_multistep(linear(x), params).sum()
    return run, linear


def norse_lif(n, device, compiled):
    import norse.torch as norse

    linear = torch.nn.Linear(n, n, bias=False).to(device)
    lif = norse.LIF().to(device)   # multi-step over the leading (time) dimension

    def run(x):
        spikes, _ = lif(linear(x))
        return spikes.sum()
    return (torch.compile(run) if compiled else run), linear


def snntorch_leaky(n, device):
    import snntorch as snn

    linear = torch.nn.Linear(n, n, bias=False).to(device)
    leaky = snn.Leaky(beta=0.5).to(device)

    def run(x):
        current = linear(x)
        mem = leaky.init_leaky()
        total = 0.0
        for step in range(current.shape[0]):
            spk, mem = leaky(current[step], mem)
            total = total + spk.sum()
        return total
    return run, linear


def time_it(make, n, device, repeats):
    try:
        run, module = make()
    except ImportError as e:
        return None, f"not installed ({e.name})"
    x = torch.rand(STEPS, BATCH, n, device=device)

    def once():
        module.zero_grad(set_to_none=True)
        loss = run(x)
        loss.backward()
        _sync(device)

    clock = time.perf_counter if device.type == "cuda" else time.process_time
    try:
        once()  # warm-up (and compilation)
        times = []
        for _ in range(repeats):
            began = clock()
            once()
            times.append(clock() - began)
    except Exception as e:  # a peer failing must not hide the others
        return None, f"failed: {type(e).__name__}: {str(e)[:80]}"
    return statistics.median(times) * 1000, ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 16384])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip norse + torch.compile")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"layer benchmark: Linear(n, n) + LIF, batch {BATCH}, {STEPS} steps, forward + backward; "
          f"{name}; torch {torch.__version__}; {'wall' if device.type == 'cuda' else 'CPU'} time")
    print(f"{'n':>6} {'library':<22} {'ms':>10} {'vs ours':>8}")
    for n in args.sizes:
        peers = [("spiking (ours)", lambda: ours(n, device)),
                 ("norse eager", lambda: norse_lif(n, device, False))]
        if not args.no_compile:
            peers.append(("norse + torch.compile", lambda: norse_lif(n, device, True)))
        peers.append(("snnTorch", lambda: snntorch_leaky(n, device)))
        reference = None
        for label, make in peers:
            ms, note = time_it(make, n, device, args.repeats)
            if label.startswith("spiking"):
                reference = ms
            rel = f"{ms / reference:8.2f}" if ms and reference else " " * 8
            print(f"{n:>6} {label:<22} {ms if ms is not None else float('nan'):>10.1f} {rel} {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
