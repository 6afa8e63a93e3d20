"""Analysis of the what/when task: readout peaks, probability coding,
re-adaptation after switches, what/when weight subspaces, plots.

Works on the per-trial log of :class:`networks.reservoir.WhatWhenExperiment`
(``log.arrays()``): per trial and instance, the "when" and "what" outputs of
the group of the trial's identity after the cue (``when[method]``: [N, B, W]),
the "what" groups' mean output in the what window (``what[method]``: [N, B, K])
and the trial's draws (cue, identity, occurred, latency, probability: [N, B]).

Definitions (all in ``metrics.json``):

- peak of a readout: argmax (time after the cue, ms) and maximum of the
  trial-averaged output, smoothed with a ``smooth_ms`` moving average;
- latency error: |peak − L| / L;
- probability coding: peak amplitude against p over instances (conditions),
  least-squares line and r², from the output averaged over the last
  ``code_window`` trials of a phase (default ``steady``; the amplitude of a
  few dozen probe trials is noisier than their peak time);
- trials to re-adapt after a switch: the first trial n after the switch from
  which the estimate, a moving average over the last ``window`` trials of
  the new phase (never mixing trials from before the switch), meets the
  criterion for ``hold`` consecutive trials; n counts the trials since the
  switch, so it includes the averaging window's lag. Criteria: latency (per
  instance) within ``tolerance`` of the new latency; probability, with three
  or more conditions (instances): the probability code is back, i.e. the
  instances' moving amplitudes against their new probabilities fit a line
  with r² ≥ 0.9 and at least half the slope of the code before the switch
  (one count per switch: the readout's gain may drift, its code may not
  invert or flatten); with fewer conditions, per instance, the amplitude
  within 2 × ``tolerance`` of a_ref · p_new / p_old (a_ref over the
  ``steady`` trials before the switch); identity: "what" picks the right
  identity in ≥ 90 % of the window. ``None`` when it never happens within
  the phase.
- principal angles between the "what" and "when" readout subspaces: spans of
  the learned readout vectors (three-factor: group mean of W − W0 per
  identity; FORCE: its weights), via ``scipy.linalg.subspace_angles``.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

SMOOTH_MS = 10.0
R2_CODE = 0.9          # a probability code: amplitude ~ p with r2 >= this
METHOD_ORDER = ("three_factor", "force", "force_reset")


# ----------------------------------------------------------------------------- basics
def smooth(trace: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along the last axis (same length; edges average
    over the part inside)."""
    trace = np.asarray(trace, float)
    if width <= 1:
        return trace
    kernel = np.ones(width)
    num = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), -1, trace)
    den = np.convolve(np.ones(trace.shape[-1]), kernel, mode="same")
    return num / den


def peak(trace: np.ndarray, dt: float = 1.0, smooth_ms: float = SMOOTH_MS,
         start_ms: float = 0.0) -> Tuple[float, float]:
    """(time in ms, amplitude) of the maximum of a [W] trace sampled every
    ``dt`` ms from the cue, ignoring the first ``start_ms``."""
    s = smooth(trace, max(1, int(round(smooth_ms / dt))))
    first = int(round(start_ms / dt))
    k = first + int(np.argmax(s[first:]))
    return k * dt, float(s[k])


def linear_fit(x: Sequence[float], y: Sequence[float]) -> Dict[str, float]:
    """Least-squares line y = slope · x + intercept and its r²."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    A = np.stack([x, np.ones_like(x)], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - (slope * x + intercept)
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid ** 2).sum()) / ss if ss > 0 else float("nan")
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2}


def principal_angles(U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Principal angles in degrees (ascending) between span(U) and span(V);
    U, V: [n, k] column vectors."""
    from scipy.linalg import subspace_angles

    return np.sort(np.degrees(subspace_angles(np.asarray(U, float), np.asarray(V, float))))


def moving_estimates(traces: np.ndarray, start: int, stop: int, window: int,
                     fn: Callable[[np.ndarray], float]) -> np.ndarray:
    """fn(mean of traces[max(start, n − window + 1): n + 1]) for n in [start, stop)."""
    out = np.empty(stop - start)
    for n in range(start, stop):
        lo = max(start, n - window + 1)
        out[n - start] = fn(traces[lo:n + 1].mean(axis=0))
    return out


def first_sustained(ok: np.ndarray, hold: int) -> Optional[int]:
    """First index from which ``ok`` holds for ``hold`` consecutive entries
    (or to the end of the series, if that is sooner), or None."""
    ok = np.asarray(ok, bool)
    for n in range(len(ok)):
        if ok[n:n + hold].all():
            return n
    return None


def _right_identity(what: np.ndarray, identity: np.ndarray) -> np.ndarray:
    """[n] bool: what[i, identity[i]] is larger than every other entry of row i."""
    n = what.shape[0]
    own = what[np.arange(n), identity]
    others = what.astype(float).copy()
    others[np.arange(n), identity] = -np.inf
    return own > others.max(axis=1)


# ----------------------------------------------------------------------------- task analysis
class WhatWhenAnalysis:
    """Figures of a run from its log (``log.arrays()``), the switches and the
    analysis settings."""

    def __init__(self, log: Dict[str, Any], dt: float, switches: List[Tuple[int, List[str]]],
                 window: int = 10, tolerance: float = 0.1, hold: int = 5, steady: int = 50,
                 code_window: Optional[int] = None,
                 smooth_ms: float = SMOOTH_MS, start_ms: float = 0.0, n_trials: Optional[int] = None,
                 trial_index: Optional[np.ndarray] = None):
        """``trial_index`` [records]: the training trial each record of ``log``
        follows (probe trials); default: record n is trial n (the online log).
        Trial ranges, ``steady``, ``window`` and ``hold`` are in trials; the
        moving averages and holds run over the records inside them."""
        n_rec = len(log["cue"])
        self.trial_index = np.arange(n_rec) if trial_index is None else np.asarray(trial_index)
        self.log = log
        self.dt = dt
        self.switches = switches
        spacing = max(1, int(round(np.median(np.diff(self.trial_index))))) if n_rec > 1 else 1
        self.spacing = spacing
        self.window = max(1, int(round(window / spacing)))
        self.hold = max(1, int(round(hold / spacing)))
        self.tolerance, self.steady = tolerance, steady
        self.code_window = steady if code_window is None else code_window
        self.smooth_ms, self.start_ms = smooth_ms, start_ms
        self.N = n_trials if n_trials is not None else (int(self.trial_index[-1]) + 1 if n_rec else 0)
        self.methods = [m for m in log["when"] if len(log["when"][m])]

    # -- phases ---------------------------------------------------------------------------
    def phase_bounds(self) -> List[Tuple[int, int]]:
        """[lo, hi) in trials."""
        edges = [0] + [t for t, _ in self.switches] + [self.N]
        return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]

    def records(self, lo: int, hi: int) -> Tuple[int, int]:
        """Record range of the trials [lo, hi)."""
        return (int(np.searchsorted(self.trial_index, lo, "left")),
                int(np.searchsorted(self.trial_index, hi, "left")))

    def _peak(self, trace: np.ndarray) -> Tuple[float, float]:
        return peak(trace, self.dt, self.smooth_ms, self.start_ms)

    def phase_peaks(self, method: str, lo: int, hi: int, occurred_only: bool = False) -> Dict[str, Any]:
        """Peak time and amplitude of the "when" output averaged over the records
        of trials [lo, hi), per instance, with the true latency and probability."""
        lo, hi = self.records(lo, hi)
        when = self.log["when"][method][lo:hi]            # [n, B, W]
        B = when.shape[1]
        out = {"peak_ms": [], "amplitude": [], "latency_ms": [], "probability": [], "error": []}
        for b in range(B):
            sel = np.ones(hi - lo, bool)
            if occurred_only:
                sel &= self.log["occurred"][lo:hi, b]
            t, a = self._peak(when[sel, b].mean(axis=0))
            L = float(np.median(self.log["latency"][lo:hi, b]))
            out["peak_ms"].append(t)
            out["amplitude"].append(a)
            out["latency_ms"].append(L)
            out["probability"].append(float(np.median(self.log["probability"][lo:hi, b])))
            out["error"].append(abs(t - L) / L)
        return out

    def probability_coding(self, method: str, lo: int, hi: int) -> Dict[str, Any]:
        pk = self.phase_peaks(method, lo, hi)
        fit = linear_fit(pk["probability"], pk["amplitude"])
        return {"probability": pk["probability"], "amplitude": pk["amplitude"], **fit}

    # -- re-adaptation ----------------------------------------------------------------------
    def adaptation(self, method: str, switch: int, kinds: Sequence[str], end: int) -> Dict[str, Any]:
        """Trials to re-adapt after the switch at trial ``switch`` (phase ending at
        trial ``end``), per instance: the number of trials of the new phase run
        before the first record from which the criterion holds; None if never."""
        when = self.log["when"][method]
        out: Dict[str, Any] = {}
        B = when.shape[1]
        s0, e0 = self.records(switch, end)
        r0, _ = self.records(max(0, switch - self.steady), switch)

        def count(ok):
            n = first_sustained(ok, self.hold)
            return None if n is None else int(self.trial_index[s0 + n] - switch + 1)

        if "latency" in kinds:
            trials = []
            for b in range(B):
                L = float(np.median(self.log["latency"][s0:e0, b]))
                times = moving_estimates(when[:, b], s0, e0, self.window, lambda m: self._peak(m)[0])
                trials.append(count(np.abs(times - L) <= self.tolerance * L))
            out["latency"] = trials
        if "probability" in kinds:
            prob = self.log["probability"]
            p_new = [float(np.median(prob[s0:e0, b])) for b in range(B)]
            if len(set(p_new)) >= 3:
                # the probability code across conditions: re-established when the
                # moving amplitudes of all instances, against their new
                # probabilities, fit a line with r2 >= 0.9 and at least half the
                # slope the code had before the switch
                before = self.probability_coding(method, max(0, switch - self.code_window), switch)
                amps = np.stack([moving_estimates(when[:, b], s0, e0, self.window, lambda m: self._peak(m)[1])
                                 for b in range(B)], axis=1)
                fits = [linear_fit(p_new, row) for row in amps]
                ok = np.array([f["r2"] >= R2_CODE and f["slope"] >= 0.5 * before["slope"] for f in fits])
                n = count(ok) if before["slope"] > 0 else None
                out["probability"] = [n]
            else:
                trials = []
                for b in range(B):
                    p_old = float(np.median(prob[r0:s0, b]))
                    if p_old <= 0 or p_old == p_new[b]:
                        trials.append(None if p_old <= 0 else 0)
                        continue
                    expected = self._peak(when[r0:s0, b].mean(axis=0))[1] * p_new[b] / p_old
                    amps = moving_estimates(when[:, b], s0, e0, self.window, lambda m: self._peak(m)[1])
                    trials.append(count(np.abs(amps - expected) <= 2 * self.tolerance * max(expected, 1e-9)))
                out["probability"] = trials
        if "mapping" in kinds and method in self.log["what"]:
            what = self.log["what"][method]                # [N, B, K]
            trials = []
            for b in range(B):
                right = _right_identity(what[s0:e0, b], self.log["identity"][s0:e0, b])
                acc = np.array([right[max(0, n - self.window + 1): n + 1].mean() for n in range(e0 - s0)])
                trials.append(count(acc >= 0.9))
            out["mapping"] = trials
        return out

    def curves(self, method: str) -> Dict[str, np.ndarray]:
        """Per record: moving-average peak time and amplitude (window restarted
        at every switch), [records, B] each, and the trial of each record."""
        when = self.log["when"][method]
        R, B = when.shape[:2]
        times, amps = np.zeros((R, B)), np.zeros((R, B))
        for lo, hi in self.phase_bounds():
            lo, hi = self.records(lo, hi)
            for b in range(B):
                pk = [self._peak(m) for m in
                      (when[max(lo, n - self.window + 1): n + 1, b].mean(axis=0) for n in range(lo, hi))]
                times[lo:hi, b] = [p[0] for p in pk]
                amps[lo:hi, b] = [p[1] for p in pk]
        return {"peak_ms": times, "amplitude": amps, "trial": self.trial_index}

    def what_accuracy(self, method: str, lo: int, hi: int) -> List[float]:
        """Fraction of records whose "what" output is largest, strictly, for the
        group of the trial's identity (ties, e.g. all silent, count as wrong)."""
        lo, hi = self.records(lo, hi)
        what = self.log["what"][method][lo:hi]
        return [float(_right_identity(what[:, b], self.log["identity"][lo:hi, b]).mean())
                for b in range(what.shape[1])]

    def summary(self) -> Dict[str, Any]:
        """Everything per method: per phase (its last ``steady`` trials) the peaks,
        probability coding and "what" accuracy; per switch the trials to re-adapt."""
        out: Dict[str, Any] = {}
        phases = self.phase_bounds()
        for m in self.methods:
            entry: Dict[str, Any] = {"phases": [], "switches": []}
            for lo, hi in phases:
                a = max(lo, hi - self.steady)
                c = max(lo, hi - self.code_window)
                r = self.records(a, hi)
                ph = {"trials": [lo, hi], "measured_on": [a, hi], "records": r[1] - r[0],
                      "peaks": self.phase_peaks(m, a, hi),
                      "code_measured_on": [c, hi],
                      "probability_coding": self.probability_coding(m, c, hi),
                      "what_accuracy": self.what_accuracy(m, a, hi)}
                entry["phases"].append(ph)
            for (t, kinds), (lo, hi) in zip(self.switches, phases[1:]):
                sw = {"trial": t, "changed": kinds, "phase_length": hi - t,
                      "trials_to_readapt": self.adaptation(m, t, kinds, hi)}
                if "probability" in kinds:
                    # the probability code before the switch and at the end of the new phase
                    pre = self.probability_coding(m, max(0, t - self.code_window), t)
                    end = self.probability_coding(m, max(t, hi - self.code_window), hi)
                    sw["code_before"] = {k: pre[k] for k in ("slope", "intercept", "r2")}
                    sw["code_end"] = {k: end[k] for k in ("slope", "intercept", "r2")}
                entry["switches"].append(sw)
            out[m] = entry
        return out


# ----------------------------------------------------------------------------- tables
def _fmt_trials(values: Sequence[Optional[int]], limit: int) -> str:
    return ", ".join(f">{limit}" if v is None else str(v) for v in values)


def table(metrics: Dict[str, Any]) -> str:
    """A text table of the headline figures of ``metrics`` (as written by
    :func:`networks.reservoir_cli.run_experiment`)."""
    lines = []
    methods = metrics.get("methods", {})
    test = metrics.get("test", {})
    names = {"three_factor": "three-factor", "force": "FORCE (no reset)", "force_reset": "FORCE (reset)"}
    tests = metrics.get("tests") or ([dict(test, after_trial=metrics.get("trials"))] if test else [])
    for t in tests:
        lines.append(f"Frozen test after trial {t['after_trial']} (no learning), per instance:")
        lines.append(f"  {'method':<18} {'p':>6} {'latency':>8} {'peak':>8} {'error':>7} {'amplitude':>9} {'what ok':>7}")
        for m in METHOD_ORDER:
            if m not in t:
                continue
            pk = t[m]["peaks"]
            for b in range(len(pk["peak_ms"])):
                lines.append(f"  {names.get(m, m):<18} {pk['probability'][b]:>6.2f} {pk['latency_ms'][b]:>6.0f}ms "
                             f"{pk['peak_ms'][b]:>6.0f}ms {100 * pk['error'][b]:>6.1f}% {pk['amplitude'][b]:>9.3f} "
                             f"{t[m]['what_accuracy'][b]:>7.2f}")
            pc = t[m]["probability_coding"]
            if len(set(pc["probability"])) > 2:
                lines.append(f"  {'':<18} amplitude vs p: slope {pc['slope']:.3f}, intercept "
                             f"{pc['intercept']:.3f}, r2 {pc['r2']:.3f}")
    if metrics.get("measured_on"):
        lines.append(f"Per phase (its last trials) and per switch, measured on {metrics['measured_on']}:")
    for m, entry in methods.items():
        lines.append(f"{names.get(m, m)}:")
        for ph in entry["phases"]:
            pk = ph["peaks"]
            err = max(pk["error"]) if pk["error"] else float("nan")
            pc = ph["probability_coding"]
            cw = ph.get("code_measured_on", ph["measured_on"])
            over = f" (trials {cw[0]}-{cw[1]})" if cw != ph["measured_on"] else ""
            r2 = (f", amplitude~p{over} slope {pc['slope']:.2f} r2 {pc['r2']:.3f}"
                  if len(pc["probability"]) > 2 else "")
            lines.append(f"  trials {ph['measured_on'][0]}-{ph['measured_on'][1]}: peak "
                         f"{', '.join(f'{t:.0f}' for t in pk['peak_ms'])} ms (latency "
                         f"{', '.join(f'{t:.0f}' for t in pk['latency_ms'])} ms; max error {100 * err:.1f}%)"
                         f"{r2}; what accuracy {', '.join(f'{x:.2f}' for x in ph['what_accuracy'])}")
        for sw in entry["switches"]:
            for kind, values in sw["trials_to_readapt"].items():
                lines.append(f"  switch at trial {sw['trial']} ({kind}): trials to re-adapt "
                             f"{_fmt_trials(values, sw.get('phase_length', 0) or 0)}")
            if sw.get("code_end"):
                b, e = sw["code_before"], sw["code_end"]
                lines.append(f"  switch at trial {sw['trial']}: amplitude ~ p slope {b['slope']:.2f} (r2 {b['r2']:.2f}) "
                             f"before, {e['slope']:.2f} (r2 {e['r2']:.2f}) at the end of the new phase")
    if "angles" in metrics:
        for m, a in metrics["angles"].items():
            lines.append(f"{names.get(m, m)}: principal angles what/when (deg, per instance): "
                         + "; ".join(", ".join(f"{x:.1f}" for x in inst) for inst in a["what_when"])
                         + f"  [what/what across identities: {a.get('what_identities', 'n/a')}]")
    if "speed" in metrics:
        s = metrics["speed"]
        for key, v in s.items():
            if isinstance(v, dict) and "realtime_factor_cpu" in v:
                size = f", {v['neurons']} neurons with sources" if "neurons" in v else \
                    f", {v.get('instances', 1)} instances, learning on"
                lines.append(f"speed ({key}): {v['realtime_factor_cpu']:.1f}x real time (CPU), "
                             f"{v['realtime_factor_wall']:.1f}x (wall){size}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_switch_traces(analysis: "WhatWhenAnalysis", path: str, n: int = 20, instance: int = 0) -> None:
    """Mean "when" output over the ``n`` trials before each switch, the first
    ``n`` after it and the last ``n`` of the new phase, for each method."""
    plt = _plt()
    log, dt, switches = analysis.log, analysis.dt, analysis.switches
    methods = analysis.methods
    if not switches or not methods:
        return
    edges = [t for t, _ in switches] + [analysis.N]
    fig, axes = plt.subplots(len(switches), len(methods), figsize=(4.2 * len(methods), 3.0 * len(switches)),
                             squeeze=False)
    for i, (t, kinds) in enumerate(switches):
        for j, m in enumerate(methods):
            ax = axes[i, j]
            w = log["when"][m][:, instance]
            x = np.arange(w.shape[1]) * dt
            for lo, hi, label, style in ((t - n, t, "before", "-"), (t, t + n, "just after", "--"),
                                         (edges[i + 1] - n, edges[i + 1], "end of phase", ":")):
                lo = max(0, lo)
                r0, r1 = analysis.records(lo, hi)
                if r1 > r0:
                    ax.plot(x, w[r0:r1].mean(axis=0), style, label=f"{label} (trials {lo}-{hi})")
            for trial, c in ((t - 1, "C0"), (t, "C1")):
                r = min(analysis.records(trial, trial + 1)[0], len(log["latency"]) - 1)
                ax.axvline(float(log["latency"][r, instance]), color=c, lw=0.8, alpha=0.6)
            ax.set_title(f"{m}: switch at {t} ({', '.join(kinds)})", fontsize=9)
            ax.set_xlabel("time after cue (ms)")
            if j == 0:
                ax.set_ylabel(f"when output (instance {instance})")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_adaptation(analysis: WhatWhenAnalysis, path: str, instance: int = 0) -> None:
    """Moving-average peak time and amplitude per trial, each method."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for m in analysis.methods:
        c = analysis.curves(m)
        axes[0].plot(c["trial"], c["peak_ms"][:, instance], label=m, lw=1)
        axes[1].plot(c["trial"], c["amplitude"][:, instance], label=m, lw=1)
    axes[0].plot(analysis.trial_index, analysis.log["latency"][:, instance], "k--", lw=0.8, label="true latency")
    for t, kinds in analysis.switches:
        for ax in axes:
            ax.axvline(t, color="gray", lw=0.8)
    axes[0].set_ylabel("peak time (ms)")
    axes[1].set_ylabel("peak amplitude")
    axes[1].set_xlabel("trial")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"instance {instance}: moving average over {analysis.window} records "
                      f"(one every {analysis.spacing} trials)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_probability(coding: Dict[str, Dict[str, Any]], path: str) -> None:
    """Peak amplitude against event probability, per method, with the fitted line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for m, c in coding.items():
        p = np.asarray(c["probability"])
        ax.plot(p, c["amplitude"], "o", label=f"{m} (r2 {c['r2']:.3f})")
        xs = np.linspace(0, 1, 10)
        ax.plot(xs, c["slope"] * xs + c["intercept"], "-", lw=0.8)
    ax.set_xlabel("event probability")
    ax.set_ylabel("peak amplitude")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_test_traces(test_log: Dict[str, Any], dt: float, path: str) -> None:
    """Mean "when" and "what" outputs of the frozen test per instance (one panel per method)."""
    plt = _plt()
    methods = [m for m in test_log["when"] if len(test_log["when"][m])]
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.2), squeeze=False)
    for j, m in enumerate(methods):
        ax = axes[0, j]
        w = test_log["when"][m]
        x = np.arange(w.shape[2]) * dt
        for b in range(w.shape[1]):
            p = float(np.median(test_log["probability"][:, b]))
            ax.plot(x, w[:, b].mean(axis=0), label=f"when, p={p:.2f}")
        wt = test_log["what_trace"][m]
        ax.plot(x, wt[:, -1].mean(axis=0), "k:", label="what (last instance)")
        L = float(np.median(test_log["latency"]))
        ax.axvline(L, color="gray", lw=0.8)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("time after cue (ms)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_plots(out_dir: str, log: Dict[str, Any], test_log: Optional[Dict[str, Any]], dt: float,
               analysis: WhatWhenAnalysis, coding: Dict[str, Dict[str, Any]]) -> List[str]:
    written = []
    os.makedirs(out_dir, exist_ok=True)
    for name, fn in (("switch_traces.png", lambda p: plot_switch_traces(analysis, p, n=min(20, analysis.steady))),
                     ("adaptation.png", lambda p: plot_adaptation(analysis, p)),
                     ("probability.png", lambda p: plot_probability(coding, p)),
                     ("test_traces.png", lambda p: plot_test_traces(test_log, dt, p) if test_log else None)):
        path = os.path.join(out_dir, name)
        fn(path)
        if os.path.exists(path):
            written.append(name)
    return written
