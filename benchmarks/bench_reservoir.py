"""What/when reservoir at full size: the issue's "Must show" figures.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_reservoir.py                  # ~15-25 min on 2 cores
    python benchmarks/bench_reservoir.py --json figures.json --out runs/bench_reservoir
    python benchmarks/bench_reservoir.py --set task.trials=300 --set task.switches.0.trial=100 ...

Runs configs/reservoir_what_when.yaml as written: a 1000-neuron Izhikevich
reservoir (800 E / 200 I), four instances with event probability 0.25, 0.5,
0.75 and 1, 600 trials: latency 250 ms, then 350 ms from trial 200, then the
probabilities reversed from trial 400; three-factor readouts in the simulator,
FORCE with and without a reset at the switches on the same spikes; a frozen
test of 40 trials at the end. Then the reservoir alone (cue trials, no
readouts) is timed on one core.

Figures (printed, and in --json):
- peak time error of the "when" readout against the true latency (frozen test,
  and each phase's last 50 trials online);
- r² of peak amplitude against probability over p = 0.25, 0.5, 0.75, 1;
- trials to re-adapt after the latency and the probability switch, for the
  three-factor rule and FORCE with and without reset;
- principal angles between the "what" and "when" weight subspaces;
- real-time factor of the 1000-neuron reservoir on one core (CPU time of
  Network.run per simulated second), and of the whole training loop.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "reservoir_what_when.yaml")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--out", help="also write metrics.json, weights, log and plots here")
    parser.add_argument("--speed-seconds", type=float, default=20.0,
                        help="simulated seconds for the reservoir timing")
    args = parser.parse_args(argv)

    from networks.analysis import table
    from networks.reservoir import load_reservoir_config, reservoir_speed
    from networks.reservoir_cli import run_experiment, save_results

    config, task = load_reservoir_config(args.config, args.overrides)
    reservoir, _ = load_reservoir_config(args.config, args.overrides, readouts=False)
    began = time.perf_counter()
    metrics, exp, analysis = run_experiment(config, task, progress=sys.stderr.isatty(), speed=False)
    metrics["speed"]["reservoir"] = reservoir_speed(reservoir, task, args.speed_seconds)
    from networks.reservoir_cli import must_show
    metrics["must_show"] = must_show(metrics)
    metrics["bench"] = {"wall_s": time.perf_counter() - began,
                        "numba_threads": os.environ.get("NUMBA_NUM_THREADS"),
                        "overrides": args.overrides}
    if args.out:
        save_results(args.out, metrics, exp, analysis)
    print(table(metrics))
    print("must show:", json.dumps(metrics["must_show"], indent=1, default=float))
    if args.json:
        from spiking.results import atomic_write_json
        atomic_write_json(args.json, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
