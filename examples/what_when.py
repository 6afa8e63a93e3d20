"""What/when predictions in an Izhikevich reservoir: three-factor readouts against FORCE.

    python examples/what_when.py                       # the full schedule of the config (minutes)
    python examples/what_when.py --quick               # a small, short version (about a minute)
    python examples/what_when.py --set task.trials=300 --out runs/what_when

Trains the "what" and "when" readouts of configs/reservoir_what_when.yaml
online with the error-modulated, attention-gated three-factor rule (inside the
simulator), runs FORCE (RLS, with and without a reset at the switches) on the
same reservoir spikes, tests the readouts frozen, and prints the analysis
table: readout peak time against the true latency, peak amplitude against the
event probability (r²), trials to re-adapt after each switch, principal angles
between the what and when weight subspaces, and the speed.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "reservoir_what_when.yaml")

# A 300-neuron reservoir (in-degrees kept), short trials, 60 trials per phase.
QUICK = [
    "populations.E.size=240", "populations.I.size=60",
    "projections.EE.connector.p=0.333", "projections.EI.connector.p=0.333",
    "projections.IE.connector.p=0.333", "projections.II.connector.p=0.333",
    "task.trials=180", "task.test_trials=20", "task.switches.0.trial=60", "task.switches.1.trial=120",
    "task.analysis.steady=30", "task.analysis.code_window=30",
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quick", action="store_true", help="small reservoir, short schedule")
    parser.add_argument("--out", help="also write metrics.json, weights and plots here")
    parser.add_argument("--backend", choices=["numba", "torch"])
    args = parser.parse_args(argv)

    from networks.analysis import table
    from networks.reservoir import load_reservoir_config
    from networks.reservoir_cli import run_experiment, save_results

    overrides = (QUICK if args.quick else []) + args.overrides
    config, task = load_reservoir_config(args.config, overrides)
    reservoir, _ = load_reservoir_config(args.config, overrides, readouts=False)
    metrics, exp, analysis = run_experiment(config, task, backend=args.backend, progress=True,
                                            reservoir_config=reservoir)
    if args.out:
        save_results(args.out, metrics, exp, analysis)
    print(table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
