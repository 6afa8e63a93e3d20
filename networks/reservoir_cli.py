"""``spiking train`` (and ``spiking run``) for files with a ``task:`` section
(the what/when reservoir).

    spiking train configs/reservoir_what_when.yaml --out runs/what_when
    spiking run configs/reservoir_what_when.yaml [--out DIR] [--json]   # the same; --out optional
    spiking train configs/reservoir_what_when.yaml --out runs/quick --set task.trials=120 --set task.switches=[]

Runs the schedule of the file (three-factor readouts in the simulator, FORCE on
the same spikes), a frozen test, the analysis, and writes into ``--out``:
``metrics.json`` (atomic), ``weights.npz`` (readout weights, FORCE weights),
``log.npz`` and ``probes.npz`` (per-trial outputs of training and probe
trials) and the plots ``switch_traces.png``,
``adaptation.png``, ``probability.png``, ``test_traces.png``.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np

from spiking.errors import SpikingError


def angles(exp) -> Dict[str, Any]:
    """Principal angles (degrees) between the "what" and "when" readout subspaces,
    per instance and method; for reference, the angle between the readouts of
    different identities within "what" and within "when"."""
    from networks.analysis import principal_angles
    from networks.reservoir import WHAT, WHEN

    out = {}
    methods = ["three_factor"] + list(exp.force)
    for m in methods:
        what, when = exp.learned_vectors(WHAT, m), exp.learned_vectors(WHEN, m)   # [B, K, n]
        entry = {"what_when": [], "what_identities": [], "when_identities": []}
        for b in range(exp.B):
            entry["what_when"].append(principal_angles(what[b].T, when[b].T).tolist())
            if exp.K > 1:
                entry["what_identities"].append(principal_angles(what[b, :1].T, what[b, 1:].T).tolist())
                entry["when_identities"].append(principal_angles(when[b, :1].T, when[b, 1:].T).tolist())
        entry["min_what_when"] = float(min(min(a) for a in entry["what_when"]))
        out[m] = entry
    return out


def run_experiment(config, task, backend: Optional[str] = None, device: Optional[str] = None,
                   progress: bool = False, speed: bool = True, speed_seconds: float = 5.0,
                   reservoir_config=None) -> Tuple[Dict[str, Any], Any, Any]:
    """Train on the file's schedule, test frozen, analyse. Returns (metrics,
    experiment, analysis)."""
    from networks.analysis import WhatWhenAnalysis
    from networks.reservoir import WhatWhenExperiment, reservoir_speed

    began = time.perf_counter()
    exp = WhatWhenExperiment(config, task, backend=backend, device=device, progress=progress)
    a = task.analysis
    switches = exp.generator.switch_kinds()
    ends = ([t for t, _ in switches] if task.test_each_phase else []) + [task.trials]
    tests = []
    for end in ends:
        exp.train(end - exp.trial)
        if task.test_trials > 0:
            test_log = exp.test()
            ta = WhatWhenAnalysis(test_log, exp.dt, [], window=a.window, tolerance=a.tolerance,
                                  hold=a.hold, steady=task.test_trials)
            n = task.test_trials
            tests.append({"after_trial": exp.trial, "log": test_log, "analysis": ta, "metrics": {
                m: {"peaks": ta.phase_peaks(m, 0, n), "probability_coding": ta.probability_coding(m, 0, n),
                    "what_accuracy": ta.what_accuracy(m, 0, n)} for m in ta.methods}})
            if not progress:
                pk = tests[-1]["metrics"]["three_factor"]["peaks"]
                print(f"  after trial {exp.trial}: three-factor peaks "
                      f"{', '.join(f'{t:.0f}' for t in pk['peak_ms'])} ms (latency "
                      f"{', '.join(f'{t:.0f}' for t in pk['latency_ms'])} ms), amplitudes "
                      f"{', '.join(f'{x:.2f}' for x in pk['amplitude'])}", flush=True)
    n_train = exp.trial
    log = exp.log.arrays()
    online = WhatWhenAnalysis(log, exp.dt, switches, window=a.window, tolerance=a.tolerance,
                              hold=a.hold, steady=a.steady, code_window=a.code_window, n_trials=n_train)
    if task.probe_every and exp.probe_trials:
        analysis = WhatWhenAnalysis(exp.probe_log.arrays(), exp.dt, switches, window=a.window,
                                    tolerance=a.tolerance, hold=a.hold, steady=a.steady,
                                    code_window=a.code_window, n_trials=n_train,
                                    trial_index=np.array(exp.probe_trials))
        measured = f"probe trials (one after every {task.probe_every} trials, no learning)"
    else:
        analysis, measured = online, "training trials (online, learning on)"
    metrics: Dict[str, Any] = {
        "name": config.name, "instances": exp.B, "identities": exp.K, "trials": n_train,
        "probe_trials": len(exp.probe_trials), "test_trials": task.test_trials,
        "neurons": int(exp.spec.n_total),
        "reservoir_neurons": int(sum(exp.spec.population(p).size for p in task.reservoir)),
        "synapses": int(exp.net.n_synapses), "dt_ms": exp.dt,
        "switches": [{"trial": t, "changed": k} for t, k in switches],
        "measured_on": measured,
        "methods": analysis.summary(),
        "online": online.summary() if analysis is not online else None,
    }
    test_log = tests[-1]["log"] if tests else None
    test_analysis = tests[-1]["analysis"] if tests else None
    if tests:
        metrics["test"] = tests[-1]["metrics"]
        metrics["tests"] = [{"after_trial": t["after_trial"], **t["metrics"]} for t in tests]
    metrics["angles"] = angles(exp)
    sim_s = exp.sim_ms / 1000.0
    metrics["speed"] = {"training": {
        "simulated_s": sim_s, "instances": exp.B,
        "realtime_factor_cpu": sim_s * exp.B / max(exp.timing["sim_cpu_s"], 1e-9),
        "realtime_factor_wall": sim_s * exp.B / max(exp.timing["sim_s"], 1e-9),
        "note": "simulated seconds x instances per second of Network.run, learning on"}}
    metrics["timing"] = dict(exp.timing, total_s=time.perf_counter() - began)
    if speed and reservoir_config is not None:
        metrics["speed"]["reservoir"] = reservoir_speed(reservoir_config, task, speed_seconds, backend)
    metrics["must_show"] = must_show(metrics)
    exp.test_log = test_log
    exp.test_analysis = test_analysis
    return metrics, exp, analysis


def must_show(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """The issue's headline figures, gathered from ``metrics``."""
    out: Dict[str, Any] = {"measured_on": metrics.get("measured_on")}
    tf = metrics["methods"].get("three_factor")
    if tf:
        out["peak_error_per_phase"] = [max(ph["peaks"]["error"]) for ph in tf["phases"]]
        out["probability_r2_per_phase"] = [ph["probability_coding"]["r2"] for ph in tf["phases"]
                                           if len(set(ph["probability_coding"]["probability"])) > 2]
    for t in metrics.get("tests", []):
        test = t.get("three_factor")
        if not test:
            continue
        out.setdefault("peak_error_frozen_tests", []).append(max(test["peaks"]["error"]))
        if len(set(test["probability_coding"]["probability"])) > 2:
            out.setdefault("probability_r2_frozen_tests", []).append(test["probability_coding"]["r2"])
    readapt = {}
    for m, entry in metrics["methods"].items():
        for sw in entry["switches"]:
            for kind, values in sw["trials_to_readapt"].items():
                readapt.setdefault(f"{kind}@{sw['trial']}", {})[m] = values
            if sw.get("code_end"):
                out.setdefault("probability_code_slope_before_end", {}).setdefault(
                    f"probability@{sw['trial']}", {})[m] = [sw["code_before"]["slope"], sw["code_end"]["slope"]]
    out["trials_to_readapt"] = readapt
    if "angles" in metrics and "three_factor" in metrics["angles"]:
        out["what_when_min_angle_deg"] = metrics["angles"]["three_factor"]["min_what_when"]
    sp = metrics.get("speed", {})
    if "reservoir" in sp:
        out["realtime_factor_reservoir_cpu"] = sp["reservoir"]["realtime_factor_cpu"]
    if "training" in sp:
        out["realtime_factor_training_cpu"] = sp["training"]["realtime_factor_cpu"]
    return out


def save_results(out_dir: str, metrics: Dict[str, Any], exp, analysis) -> None:
    """metrics.json (atomic), weights, per-trial log and plots."""
    import io

    from networks.analysis import save_plots
    from networks.reservoir import WHAT, WHEN
    from spiking.results import atomic_write_bytes, atomic_write_json

    os.makedirs(out_dir, exist_ok=True)
    coding = {}
    if exp.test_analysis is not None:
        for m in exp.test_analysis.methods:
            coding[m] = metrics["test"][m]["probability_coding"]
    metrics["plots"] = save_plots(out_dir, analysis.log, exp.test_log, exp.dt, analysis, coding)
    buf = io.BytesIO()
    arrays = {f"{k}_W": exp.weight_matrix(k) for k in (WHAT, WHEN)}
    arrays.update({f"{k}_W0": exp.weight_matrix(k, initial=True) for k in (WHAT, WHEN)})
    for name, rls in exp.force.items():
        arrays[f"{name}_W"] = rls.W
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(os.path.join(out_dir, "weights.npz"), buf.getvalue())
    for name, log, extra in (("log.npz", exp.log.arrays(), {}),
                             ("probes.npz", exp.probe_log.arrays(), {"trial": np.array(exp.probe_trials)})):
        if not len(log["cue"]):
            continue
        flat = {k: v for k, v in log.items() if not isinstance(v, dict)}
        flat.update(extra)
        for key in ("when", "what"):
            for m, v in log[key].items():
                flat[f"{key}_{m}"] = v.astype(np.float16) if key == "when" else v
        buf = io.BytesIO()
        np.savez_compressed(buf, **flat)
        atomic_write_bytes(os.path.join(out_dir, name), buf.getvalue())
    atomic_write_json(os.path.join(out_dir, "metrics.json"), metrics)


def load_log(path: str) -> Tuple[Dict[str, Any], Optional[np.ndarray]]:
    """A ``log.npz`` / ``probes.npz`` written by :func:`save_results` back as a
    log (``TrialLog.arrays()`` layout) and the trial index of probe records."""
    from networks.analysis import METHOD_ORDER

    with np.load(path) as f:
        log: Dict[str, Any] = {k: f[k] for k in ("cue", "identity", "occurred", "latency", "probability")}
        for key in ("when", "what"):
            log[key] = {m: f[f"{key}_{m}"].astype(np.float32) for m in METHOD_ORDER if f"{key}_{m}" in f}
        trial = f["trial"] if "trial" in f else None
    return log, trial


def reanalyse(out_dir: str, config=None, task=None) -> Dict[str, Any]:
    """Recompute the per-phase and per-switch figures of a run folder from its
    saved probe log (``probes.npz``, else ``log.npz``) with the current
    analysis code and the task's analysis settings (default: those of the
    run's config and overrides); returns the updated metrics (not written)."""
    import json

    from networks.analysis import WhatWhenAnalysis
    from networks.reservoir import load_reservoir_config

    with open(os.path.join(out_dir, "metrics.json")) as f:
        metrics = json.load(f)
    if task is None:
        config, task = load_reservoir_config(metrics["config"], metrics.get("overrides") or [])
    probes = os.path.join(out_dir, "probes.npz")
    log, trial = load_log(probes if os.path.exists(probes) else os.path.join(out_dir, "log.npz"))
    a = task.analysis
    switches = [(s["trial"], s["changed"]) for s in metrics["switches"]]
    analysis = WhatWhenAnalysis(log, metrics["dt_ms"], switches, window=a.window, tolerance=a.tolerance,
                                hold=a.hold, steady=a.steady, code_window=a.code_window,
                                n_trials=metrics["trials"], trial_index=trial)
    metrics["methods"] = analysis.summary()
    metrics["must_show"] = must_show(metrics)
    return metrics


def train(args) -> int:
    """``spiking train CONFIG --out DIR`` (or ``spiking run CONFIG [--out DIR]``)
    for a file with a ``task:`` section; without ``--out`` nothing is written."""
    from networks.analysis import table
    from networks.reservoir import load_reservoir_config

    overrides = list(getattr(args, "overrides", None) or [])
    config, task = load_reservoir_config(args.config, overrides)
    reservoir_config, _ = load_reservoir_config(args.config, overrides, readouts=False)
    for flag, name in (("batch_size", "--batch-size"), ("instances", "--instances"), ("duration", "--duration")):
        if getattr(args, flag, None):
            print(f"note: {name} is ignored; the task runs one instance per condition, "
                  f"task.trials trials of task.trial.length")
    backend = getattr(args, "backend", None)
    device = getattr(args, "device", None)
    progress = not getattr(args, "no_progress", False)
    n_res = sum(config.populations[p].size for p in task.reservoir)
    print(f"{config.name or args.config}: reservoir of {n_res} neurons "
          f"({', '.join(f'{p} {config.populations[p].size}' for p in task.reservoir)}), "
          f"{task.identities} identities, {task.trials} trials, "
          f"{task.instances or config.instances} instance(s); backend {backend or config.backend}")
    try:
        metrics, exp, analysis = run_experiment(config, task, backend=backend, device=device,
                                                progress=progress, reservoir_config=reservoir_config)
    except MemoryError as e:
        raise SpikingError(f"out of memory: {e}") from None
    metrics["config"] = os.path.abspath(args.config)
    metrics["overrides"] = overrides
    out = getattr(args, "out", None)
    if out:
        save_results(out, metrics, exp, analysis)
    print(table(metrics))
    if out:
        print(f"results: {out}/metrics.json, weights.npz, log.npz, probes.npz, {', '.join(metrics['plots'])}")
    if getattr(args, "json", False):
        import json
        print(json.dumps(metrics["must_show"], default=float))
    return 0
