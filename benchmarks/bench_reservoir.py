"""What/when reservoir at full size: the issue's "Must show" figures.

    NUMBA_NUM_THREADS=1 python benchmarks/bench_reservoir.py --seeds 1 2 --out runs/bench_reservoir
    python benchmarks/bench_reservoir.py --reanalyse runs/bench_reservoir/seed1 runs/bench_reservoir/seed2
    python benchmarks/bench_reservoir.py --speed-only
    python benchmarks/bench_reservoir.py --set task.trials=300 --set task.switches.0.trial=100 ...

Runs configs/reservoir_what_when.yaml as written, once per seed (``seed`` of
the file: reservoir, noise and task draws): a 1000-neuron Izhikevich reservoir
(800 E / 200 I), four instances with event probability 0.25, 0.5, 0.75 and 1,
600 trials: latency 250 ms, then 350 ms from trial 200, then the
probabilities reversed from trial 400; three-factor readouts in the simulator,
FORCE with and without a reset at the switches on the same spikes; a probe
trial (no learning) after every second trial; a frozen test of 40 trials after
each phase. About 7-15 min per seed on the shared 2-core machine. Then the
speed on one core: the reservoir alone (cue trials, no readouts), with static
readouts, and with the plastic readouts, gates shut (the three-factor rule
loops over every readout synapse, changes nothing) and learning (gates open,
targets at 1: every readout synapse written every step, as in training, where
the gate's baseline is not 0), one instance each.

Figures (printed per seed, then the range over seeds; ``--json``):
- peak time error of the "when" readout against the true latency (probes, each
  phase's last 50 trials; and the frozen tests);
- r² of peak amplitude against probability over p = 0.25, 0.5, 0.75, 1
  (probes: the trial-averaged output over the last 50 trials of a phase,
  learning frozen during each probe; and single frozen snapshots);
- trials to re-adapt after the latency switch (per instance: peak within 10 %)
  and the probability switch (the amplitude ~ p code over the four conditions
  back: r² >= 0.9, slope >= half the old one), for the three-factor rule and
  FORCE with and without reset, and the code's slope before and at the end;
- principal angles between the "what" and "when" weight subspaces;
- real-time factors on one core.

``--reanalyse DIR ...`` recomputes the figures of saved runs (``--out``) with
the current analysis code and the analysis settings of ``--config`` and
``--set`` (e.g. ``--set task.analysis.steady=50``), without simulating.
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


def speed(config_path: str, overrides, seconds: float) -> dict:
    """Real-time factors (one instance, one core) of the reservoir alone, with
    static readouts and with plastic readouts (rule applied, gates shut)."""
    from networks.reservoir import load_reservoir_config, reservoir_speed

    out = {}
    for name, kw, learn in (("reservoir", {"readouts": False}, False),
                            ("static_readouts", {"plastic": False}, False),
                            ("plastic_readouts_gates_shut", {}, False),
                            ("plastic_readouts_learning", {}, True)):
        config, task = load_reservoir_config(config_path, overrides, **kw)
        out[name] = reservoir_speed(config, task, seconds, learn=learn)
    base = out["static_readouts"]["cpu_per_s"]
    for name in ("plastic_readouts_gates_shut", "plastic_readouts_learning"):
        out[f"rule_share_{name[17:]}"] = (out[name]["cpu_per_s"] - base) / out[name]["cpu_per_s"]
    return out


def summarise(runs: dict) -> dict:
    """Range over seeds of each headline figure (three-factor unless named)."""
    def collect(fn):
        vals = {}
        for seed, m in runs.items():
            try:
                vals[seed] = fn(m)
            except (KeyError, IndexError, TypeError):
                vals[seed] = None
        return vals

    ms = lambda m: m["must_show"]
    out = {
        "peak_error_max_probes": collect(lambda m: max(ms(m)["peak_error_per_phase"])),
        "r2_probes_per_phase": collect(lambda m: ms(m)["probability_r2_per_phase"]),
        "r2_frozen_tests": collect(lambda m: ms(m).get("probability_r2_frozen_tests")),
        "trials_to_readapt": collect(lambda m: ms(m)["trials_to_readapt"]),
        "probability_code_slope_before_end": collect(lambda m: ms(m).get("probability_code_slope_before_end")),
        "what_when_min_angle_deg": collect(lambda m: ms(m)["what_when_min_angle_deg"]),
    }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="file seeds to run")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--out", help="write metrics.json, weights, logs and plots to OUT/seedN")
    parser.add_argument("--speed-seconds", type=float, default=20.0,
                        help="simulated seconds for each timing")
    parser.add_argument("--speed-only", action="store_true", help="only the timings")
    parser.add_argument("--no-speed", action="store_true", help="skip the timings")
    parser.add_argument("--reanalyse", nargs="+", metavar="DIR", help="recompute saved runs' figures")
    args = parser.parse_args(argv)

    from networks.analysis import table
    from networks.reservoir import load_reservoir_config
    from networks.reservoir_cli import must_show, reanalyse, run_experiment, save_results

    runs = {}
    if args.reanalyse:
        for d in args.reanalyse:
            with open(os.path.join(d, "metrics.json")) as f:
                saved = json.load(f).get("overrides") or []
            # the analysis settings of --config (default: this repository's file) and --set
            _, task = load_reservoir_config(args.config, saved + args.overrides)
            m = reanalyse(d, task=task)
            runs[d] = m
            print(f"== {d}")
            print(table(m))
    elif not args.speed_only:
        for seed in args.seeds:
            overrides = args.overrides + [f"seed={seed}"]
            config, task = load_reservoir_config(args.config, overrides)
            began = time.perf_counter()
            metrics, exp, analysis = run_experiment(config, task, progress=sys.stderr.isatty(), speed=False)
            metrics["must_show"] = must_show(metrics)
            metrics["bench"] = {"wall_s": time.perf_counter() - began, "seed": seed,
                                "numba_threads": os.environ.get("NUMBA_NUM_THREADS"), "overrides": overrides}
            metrics["config"] = os.path.abspath(args.config)
            metrics["overrides"] = overrides
            if args.out:
                save_results(os.path.join(args.out, f"seed{seed}"), metrics, exp, analysis)
            print(f"== seed {seed} ({metrics['bench']['wall_s']:.0f} s)")
            print(table(metrics))
            print("must show:", json.dumps(metrics["must_show"], default=float))
            runs[seed] = metrics
    result = {"runs": {str(k): v["must_show"] for k, v in runs.items()}}
    if len(runs) > 1:
        result["over_seeds"] = summarise(runs)
        print("over seeds:", json.dumps(result["over_seeds"], indent=1, default=float))
    if (args.speed_only or not args.no_speed) and not args.reanalyse:
        sp = speed(args.config, args.overrides, args.speed_seconds)
        result["speed"] = sp
        for name in ("reservoir", "static_readouts", "plastic_readouts_gates_shut", "plastic_readouts_learning"):
            v = sp[name]
            print(f"speed ({name}): {v['realtime_factor_cpu']:.1f}x real time (CPU), "
                  f"{v['realtime_factor_wall']:.1f}x (wall), {v['neurons']} neurons, {v['synapses']} synapses")
        print(f"three-factor rule (plastic minus static readouts), share of CPU time: gates shut "
              f"{100 * sp['rule_share_gates_shut']:.0f}%, learning {100 * sp['rule_share_learning']:.0f}%")
    if args.json:
        from spiking.results import atomic_write_json
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
