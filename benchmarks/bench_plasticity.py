#!/usr/bin/env python
"""Cost of learning: CUBA with STDP on the E->E synapses, ours against Brian2
cpp_standalone with the same rule, side by side on this machine.

    python benchmarks/bench_plasticity.py              # 1 s of CUBA, 3 repeats
    python benchmarks/bench_plasticity.py --duration 500 --repeats 1

Prints, per simulator, the run phase of the static and the plastic network
(CPU seconds, single thread, fastest of --repeats), the plastic/static slowdown
and the plastic run-phase ratio ours/Brian2. The rule in both: pair-based STDP
in trace form, all-to-all pairing, additive, tau+ = tau- = 20 ms,
a+ = 0.01·w_max, a- = 0.0105·w_max, weights clipped to [0, w_max], w_max = 2·we
(ours: configs/cuba.yaml plus a `plasticity:` block; Brian2: event-driven
traces on the Ce synapses restricted to E->E). Brian2's figure is its own loop
time (``results/last_run_info.txt``); compile time is excluded.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULT = "BENCH-RESULT "
W_E = 0.081                      # nA (ours); 1.62 mV in Brian2
W_MAX = 2 * W_E
A_PLUS, A_MINUS = 0.01 * W_MAX, 0.0105 * W_MAX
RULE = {"rule": "stdp", "tau_plus": "20 ms", "tau_minus": "20 ms", "a_plus": A_PLUS,
        "a_minus": A_MINUS, "w_min": 0.0, "w_max": W_MAX}


def timed_cuba(overrides: dict, repeats: int):
    """configs/cuba.yaml with ``overrides`` on numba: (network, last result, fastest
    run-phase CPU s over ``repeats`` runs from the initial weights)."""
    import spiking

    net = spiking.load(str(ROOT / "configs" / "cuba.yaml"), overrides, backend="numba")
    net.build()
    net.run(net.spec.dt, progress=False)           # load the kernels
    cpus = []
    for _ in range(repeats):
        net.reset(weights=True)
        began = time.process_time()
        res = net.run(progress=False)
        cpus.append(time.process_time() - began)
    return net, res, min(cpus)


def worker_ours(plastic: bool, duration_ms: float, repeats: int) -> dict:
    overrides = {"duration": f"{duration_ms} ms"}
    if plastic:
        overrides["projections.EE.plasticity"] = RULE
    net, res, cpu = timed_cuba(overrides, repeats)
    summary = res.population_summary()
    out = {"cpu_s": cpu, "rate_E": summary["E"]["rate_hz"], "rate_I": summary["I"]["rate_hz"]}
    if plastic:
        w = net.weights("EE")
        out["w_mean_start"], out["w_mean_end"] = W_E, float(w.mean())
    return out


def worker_brian2(plastic: bool, duration_ms: float, repeats: int, directory: str) -> dict:
    import brian2 as b2
    from brian2 import mV, ms

    b2.set_device("cpp_standalone", directory=directory, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = 0
    b2.seed(1)
    b2.defaultclock.dt = 0.1 * ms
    eqs = """dv/dt = (ge + gi - (v - El)) / taum : volt (unless refractory)
             dge/dt = -ge / taue : volt
             dgi/dt = -gi / taui : volt"""
    ns = dict(taum=20 * ms, taue=5 * ms, taui=10 * ms, El=-49 * mV, Vt=-50 * mV, Vr=-60 * mV,
              wmax=W_MAX * 20 * mV, ap=A_PLUS * 20 * mV, am=A_MINUS * 20 * mV, tau=20 * ms)
    P = b2.NeuronGroup(4000, eqs, threshold="v >= Vt", reset="v = Vr", refractory=5 * ms,
                       method="exact", namespace=ns)
    P.v = "Vr + rand() * (Vt - Vr)"
    E, I = P[:3200], P[3200:]
    if plastic:
        EE = b2.Synapses(E, E, """w : volt
                                  dx/dt = -x / tau : 1 (event-driven)
                                  dy/dt = -y / tau : 1 (event-driven)""",
                         on_pre="ge_post += w\nw = clip(w - am * y, 0 * mV, wmax)\nx += 1",
                         on_post="w = clip(w + ap * x, 0 * mV, wmax)\ny += 1", namespace=ns)
        EE.connect(p=0.02)
        EE.w = 1.62 * mV
        EI = b2.Synapses(E, I, on_pre="ge += 1.62 * mV")
        EI.connect(p=0.02)
        exc = [EE, EI]
    else:
        Ce = b2.Synapses(E, P, on_pre="ge += 1.62 * mV")
        Ce.connect(p=0.02)
        exc = [Ce]
    Ci = b2.Synapses(I, P, on_pre="gi += -9 * mV")
    Ci.connect(p=0.02)
    S = b2.SpikeMonitor(P)
    net = b2.Network(P, *exc, Ci, S)
    net.run(duration_ms * ms)
    b2.device.build(directory=directory, compile=True, run=False)
    loops = []
    for _ in range(repeats):
        b2.device.run(directory=directory)
        loops.append(float(b2.device._last_run_time))
    i = S.i[:]
    sec = duration_ms / 1000
    return {"cpu_s": min(loops), "rate_E": float((i < 3200).sum()) / 3200 / sec,
            "rate_I": float((i >= 3200).sum()) / 800 / sec}


def spawn(kind: str, plastic: bool, duration: float, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--duration", str(duration),
           "--repeats", str(repeats)] + (["--plastic"] if plastic else [])
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    raise RuntimeError(f"{kind} failed:\n" + "\n".join((out.stdout + out.stderr).splitlines()[-20:]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=1000.0, help="simulated ms (default 1000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--plastic", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker == "ours":
        print(RESULT + json.dumps(worker_ours(args.plastic, args.duration, args.repeats)))
        return 0
    if args.worker == "brian2":
        with tempfile.TemporaryDirectory(prefix="bench-stdp-") as d:
            print(RESULT + json.dumps(worker_brian2(args.plastic, args.duration, args.repeats, d)))
        return 0
    began = time.perf_counter()
    load = os.getloadavg()
    rows = {}
    for kind in ("ours", "brian2"):
        for plastic in (False, True):
            print(f"[{time.perf_counter() - began:5.0f} s] {kind} {'plastic' if plastic else 'static'}",
                  flush=True)
            rows[kind, plastic] = spawn(kind, plastic, args.duration, args.repeats)
    print(f"\nCUBA {args.duration:g} ms, STDP on E->E; CPU s of the run phase, 1 thread; "
          f"load before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    print(f"{'simulator':<10} {'static s':>9} {'plastic s':>10} {'slowdown':>9} {'rate E static/plastic':>24}")
    for kind in ("ours", "brian2"):
        s, q = rows[kind, False], rows[kind, True]
        print(f"{kind:<10} {s['cpu_s']:9.3f} {q['cpu_s']:10.3f} {q['cpu_s'] / s['cpu_s']:9.2f}x "
              f"{s['rate_E']:11.2f} / {q['rate_E']:.2f} Hz")
    ratio = rows["ours", True]["cpu_s"] / rows["brian2", True]["cpu_s"]
    slow = rows["ours", True]["cpu_s"] / rows["ours", False]["cpu_s"]
    print(f"\nplastic run phase ours / Brian2 standalone: {ratio:.2f}x (target <= 1.0x)")
    print(f"our plastic / static slowdown: {slow:.2f}x (target <= 3x)")
    if "w_mean_end" in rows["ours", True]:
        print(f"our E->E mean weight {W_E:.4f} -> {rows['ours', True]['w_mean_end']:.4f} nA")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
