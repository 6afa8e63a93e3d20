"""Cost of a noisy crossbar MVM against a plain torch matmul of the same size, on the CPU.

The array is programmed once before timing; the timed loop runs the DAC, the tiled
analogue product with fresh read noise, the per-tile ADC and the drift compensation.
Both are timed interleaved (matmul, MVM, matmul, ...) so that load from other processes
hits both alike; the median of the repeats is reported. Target: ratio <= 3.

    python benchmarks/bench_crossbar.py [--repeats 30] [--threads N]

With ``--learning``: the cost of learning on arrays instead. CUBA with STDP on E->E (the
rule of bench_plasticity.py) for ``--duration`` ms, its E->E projection in software, on
ideal devices and on RRAM (every weight change a device write); CPU seconds of the run
(numba, fastest of ``--repeats``), device writes and their energy.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from hardware import Crossbar

SIZES = [(64, 512, 512), (64, 1024, 1024), (64, 2312, 1000)]
CONFIG = {"device": "rram", "tile": 256, "dac": {"bits": 8, "range": 1.0}, "adc": 8}
TARGET = 3.0


def interleaved_medians(first, second, repeats: int):
    times = ([], [])
    for _ in range(3):  # warm-up
        first(), second()
    for _ in range(repeats):
        for function, bucket in zip((first, second), times):
            start = time.perf_counter()
            function()
            bucket.append(time.perf_counter() - start)
    return tuple(statistics.median(bucket) * 1e3 for bucket in times)


def learning(duration_ms: float, repeats: int) -> None:
    """CPU time and writes of STDP on E->E in software, on ideal devices and on RRAM."""
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    from bench_plasticity import RULE, timed_cuba

    print(f"CUBA, STDP on E->E, {duration_ms:g} ms, numba")
    print(f"{'E->E on':>10} {'run cpu s':>10} {'w mean':>8} {'writes':>9} {'write nJ':>9}")
    for name, hardware in (("software", None), ("ideal", {"device": "ideal"}),
                           ("rram", {"device": "rram", "endurance": 1000000})):
        overrides = {"duration": f"{duration_ms} ms", "projections.EE.plasticity": RULE}
        if hardware:
            overrides["projections.EE.hardware"] = hardware
        net, _, cpu = timed_cuba(overrides, repeats)
        report = net.hardware_report().get("EE", {})
        writes, energy = report.get("writes", 0), report.get("energy_pj", {}).get("writes", 0)
        print(f"{name:>10} {cpu:10.2f} {float(net.weights('EE').mean()):8.4f} "
              f"{writes:9d} {energy / 1e3:9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--learning", action="store_true", help="cost of learning on arrays")
    parser.add_argument("--duration", type=float, default=1000.0, help="ms (--learning)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.learning:
        learning(args.duration, min(args.repeats, 3))
        return
    generator = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; crossbar: {CONFIG}")
    print(f"{'B x n_in x n_out':>18} {'matmul ms':>10} {'crossbar ms':>12} {'ratio':>6}  target")
    worst = 0.0
    for batch, n_in, n_out in SIZES:
        weights = torch.randn(n_in, n_out, generator=generator)
        x = torch.rand(batch, n_in, generator=generator)
        array = Crossbar(weights, CONFIG, seed=1)
        with torch.inference_mode():
            array.mvm(x)  # first read: computes and caches the effective weights
            plain, noisy = interleaved_medians(lambda: x @ weights, lambda: array.mvm(x),
                                               args.repeats)
        ratio = noisy / plain
        worst = max(worst, ratio)
        print(f"{f'{batch} x {n_in} x {n_out}':>18} {plain:10.3f} {noisy:12.3f} {ratio:6.2f}  "
              f"{'ok' if ratio <= TARGET else 'MISSED'}")
    print(f"worst ratio {worst:.2f} (target <= {TARGET:g})")


if __name__ == "__main__":
    main()
