#!/usr/bin/env python
"""Speed of the simulation core against Brian2, side by side on this machine.

    python benchmarks/bench_core.py                         # all three networks, 1 s each
    python benchmarks/bench_core.py --duration-brunel 200   # shorter Brunel (ms)
    python benchmarks/bench_core.py --networks cuba --skip-runtime

Networks (configs/*.yaml and their Brian2 equivalents below):
- cuba: Vogels & Abbott (2005) / Brian2's CUBA example, 4000 LIF, dt 0.1 ms;
- izhikevich2003: Izhikevich (2003), 1000 neurons all-to-all, dt 1 ms, the
  paper's half-step scheme, thalamic noise;
- brunel2000: Brunel (2000) model A, regime C, 12,500 LIF, 15.6 M synapses,
  delay 1.5 ms, external Poisson drive.

Each measurement runs in its own subprocess (one after the other, so the load
of the machine affects all of them alike). On a shared machine wall times swing
with the load (printed at the end), so run-phase ratios are taken on CPU time;
all simulators run single-threaded, so CPU time is what a quiet core would take.
- ours: numba backend, one instance, NUMBA_NUM_THREADS=1. A short run in a
  separate process first warms numba's on-disk cache. "build" is config +
  sampling + connectivity + backend arrays (Network.build); a one-step run then
  loads the kernel ("kernel load") and the network is reset, so each timed run
  is the run phase alone (Network.run; wall and CPU time; fastest of --repeats).
- Brian2 cpp_standalone, single thread (openmp_threads = 0), fresh build
  directory: "compile" is device.build(compile=True, run=False), i.e. code
  generation + make; the run phase is Brian2's own figure, Network::run's
  std::clock time written to results/last_run_info.txt (device._last_run_time;
  CPU time of the single-threaded loop; fastest of --repeats runs of the
  binary). We also time the whole run() call in main.cpp with clock_gettime
  (wall; it includes the before_run spike-queue set-up), and the binary's peak
  memory with /usr/bin/time.
- Brian2 runtime mode (codegen target "cython" by default, which is Brian2's
  own default "auto" choice when Cython is installed; "numpy" with
  --runtime-target numpy): a one-step warm-up run generates and compiles the
  code, then a run (shorter for Brunel) is timed: Brian2's own loop time
  (device._last_run_time, wall) and the CPU time of the run() call, given per
  simulated second.
- `python -m spiking run` on a small network, three times with a fresh
  NUMBA_CACHE_DIR (the first compiles the kernels): wall and CPU time of the
  whole command.

Semantics (see tests/test_brian2_reference.py): our minimum delay is one step,
so Brian2 delay = ours - dt; threshold v >= v_thresh; LIF currents in nA into
cm = 1 nF are Brian2's mV drive ge = i * tau_m / cm. Brunel's external drive is
Brian2's PoissonInput(N=1000, rate=20 Hz, weight=0.1 mV) per neuron; ours is
one poisson_source per neuron at 20 kHz (one_to_one, weight 0.1 mV): per step
Binomial(1000, 0.002) against Poisson(2) inputs of 0.1 mV, the same drive. The Izhikevich network is written in Brian2 with
run_regularly code doing exactly the paper's scheme (two half steps for v,
then u with the new v), synaptic input as a current that lasts one step.
Delta (receptor "v") inputs that arrive while a LIF neuron is clamped are
dropped, in ours (since commit 98ec0ab) as in Brian2 ("unless refractory");
before that fix ours kept them and Brunel's rates were ~3 % higher.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("cuba", "izhikevich2003", "brunel2000")
POPS = {"cuba": ("E", 3200, "I", 800), "izhikevich2003": ("E", 800, "I", 200),
        "brunel2000": ("E", 10000, "I", 2500)}
RUNTIME_DEFAULT_MS = {"cuba": 1000.0, "izhikevich2003": 1000.0, "brunel2000": 200.0}
RESULT = "BENCH-RESULT "
WALL_START = ("struct timespec _bench_t0, _bench_t1; "
              "clock_gettime(CLOCK_MONOTONIC, &_bench_t0);")
WALL_STOP = ("clock_gettime(CLOCK_MONOTONIC, &_bench_t1); "
             "{ std::ofstream _f(brian::results_dir + \"bench_wall.txt\"); "
             "_f << ((_bench_t1.tv_sec - _bench_t0.tv_sec) + "
             "1e-9 * (_bench_t1.tv_nsec - _bench_t0.tv_nsec)) << std::endl; }")


# ============================================================================ ours
def worker_ours(network: str, duration_ms: float, repeats: int = 1) -> dict:
    sys.path.insert(0, str(ROOT))
    import spiking
    net = spiking.load(str(ROOT / "configs" / f"{network}.yaml"),
                       overrides=[f"duration={duration_ms} ms"], backend="numba", instances=1)
    net.build()
    t0 = time.perf_counter()
    net.run(net.spec.dt, progress=False)        # loads (or compiles) the kernel
    kernel_s = time.perf_counter() - t0
    walls, cpus, summary = [], [], None
    for _ in range(max(1, repeats)):
        net.reset()
        cpu0 = time.process_time()
        res = net.run(progress=False)
        cpus.append(time.process_time() - cpu0)
        walls.append(res.timing["run_s"])
        summary = summary or res.population_summary()
    e, _, i, _ = POPS[network]
    return {"build_s": net.timing["build_s"], "kernel_s": kernel_s,
            "run_s": min(walls), "run_cpu_s": min(cpus), "run_walls": walls, "run_cpus": cpus,
            "duration_ms": res.duration_ms,
            "rate_E": summary[e]["rate_hz"], "rate_I": summary[i]["rate_hz"],
            "n_synapses": int(net.n_synapses),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def cli_startup(repeats: int = 3) -> list:
    """(wall, CPU) seconds of ``python -m spiking run`` on a small network (CUBA
    shrunk to 500 LIF, 100 ms), with a fresh numba cache: the first run compiles
    the kernels, later ones load them. CPU = user + sys of the command."""
    cache = tempfile.mkdtemp(prefix="bench-numba-cache-")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "spiking", "run", str(ROOT / "configs" / "cuba.yaml"),
           "--set", "populations.E.size=400", "--set", "populations.I.size=100",
           "--duration", "100 ms", "--no-progress"]
    times = []
    try:
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - began
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            times.append((wall, cpu))
            if out.returncode:
                raise RuntimeError(f"spiking run failed:\n{out.stderr}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return times


# ============================================================================ Brian2 models
def brian2_model(network: str, seed: int = 1):
    """Build the Brian2 equivalent of configs/<network>.yaml in the current
    device/scope; returns {"E": (monitor kind, object), "I": ...}."""
    import numpy as np
    import brian2 as b2
    from brian2 import Hz, mV, ms

    b2.seed(seed)
    if network == "cuba":
        b2.defaultclock.dt = 0.1 * ms
        eqs = """dv/dt = (ge + gi - (v - El)) / taum : volt (unless refractory)
                 dge/dt = -ge / taue : volt
                 dgi/dt = -gi / taui : volt"""
        ns = dict(taum=20 * ms, taue=5 * ms, taui=10 * ms, El=-49 * mV, Vt=-50 * mV, Vr=-60 * mV)
        P = b2.NeuronGroup(4000, eqs, threshold="v >= Vt", reset="v = Vr", refractory=5 * ms,
                           method="exact", namespace=ns, name="cuba")
        P.v = "Vr + rand() * (Vt - Vr)"
        # we = 1.62 mV, wi = -9 mV (ours: 0.081 nA, -0.45 nA into 1 nF, tau_m 20 ms);
        # Brian2 delay 0 = ours 0.1 ms (one step)
        Ce = b2.Synapses(P, P, on_pre="ge += 1.62 * mV", name="Ce")
        Ce.connect("i < 3200", p=0.02)
        Ci = b2.Synapses(P, P, on_pre="gi += -9 * mV", name="Ci")
        Ci.connect("i >= 3200", p=0.02)
        S = b2.SpikeMonitor(P)
        return {"objects": [P, Ce, Ci, S], "spikes": S, "split": 3200}
    if network == "izhikevich2003":
        b2.defaultclock.dt = 1 * ms
        N, Ne = 1000, 800
        eqs = """v : 1
                 u : 1
                 Isyn : 1
                 a : 1 (constant)
                 b : 1 (constant)
                 c : 1 (constant)
                 d : 1 (constant)
                 noise : 1 (constant)"""
        G = b2.NeuronGroup(N, eqs, threshold="v >= 30", reset="v = c; u += d", name="izh")
        # the paper's scheme with dt = 1 ms: v in two half steps, then u with the new v;
        # the synaptic current of this step is used once, then cleared
        G.run_regularly("""I_tot = noise * randn() + Isyn
                           v += 0.5 * (0.04 * v**2 + 5 * v + 140 - u + I_tot)
                           v += 0.5 * (0.04 * v**2 + 5 * v + 140 - u + I_tot)
                           u += a * (b * v - u)
                           Isyn = 0""", when="groups")
        E, I = G[:Ne], G[Ne:]
        # one r ~ U[0, 1) per neuron, shared by that neuron's parameters (as in the paper)
        rng = np.random.default_rng(seed)
        r_e, r_i = rng.random(Ne), rng.random(N - Ne)
        E.a, E.b, E.noise = 0.02, 0.2, 5
        E.c = -65 + 15 * r_e ** 2
        E.d = 8 - 6 * r_e ** 2
        I.a = 0.02 + 0.08 * r_i
        I.b = 0.25 - 0.05 * r_i
        I.c, I.d, I.noise = -65, 2, 2
        G.v = -65
        G.u = "b * v"
        # all-to-all (self connections included), delay 0 = ours 1 ms (one step)
        S = b2.Synapses(G, G, "w : 1", on_pre="Isyn_post += w", name="S")
        S.connect()
        S.w["i < 800"] = "0.5 * rand()"
        S.w["i >= 800"] = "-rand()"
        M = b2.SpikeMonitor(G)
        return {"objects": [G, S, M], "spikes": M, "split": Ne}
    if network == "brunel2000":
        b2.defaultclock.dt = 0.1 * ms
        NE, NI, CE, CI = 10000, 2500, 1000, 250
        N = NE + NI
        rng = np.random.default_rng(seed)

        def fixed_indegree(n_pre, k, offset):
            pre = np.empty((N, k), dtype=np.int32)
            for j in range(N):
                pre[j] = rng.choice(n_pre, k, replace=False)
            return (pre + offset).ravel(), np.repeat(np.arange(N, dtype=np.int32), k)

        G = b2.NeuronGroup(N, "dv/dt = -v / (20 * ms) : volt (unless refractory)",
                           threshold="v >= 20 * mV", reset="v = 10 * mV", refractory=2 * ms,
                           method="exact", name="brunel")
        G.v = "rand() * 20 * mV"
        # delay 1.5 ms in ours = 1.4 ms in Brian2
        Se = b2.Synapses(G, G, on_pre="v_post += 0.1 * mV", delay=1.4 * ms, name="Se")
        pre, post = fixed_indegree(NE, CE, 0)
        Se.connect(i=pre, j=post)
        Si = b2.Synapses(G, G, on_pre="v_post += -0.5 * mV", delay=1.4 * ms, name="Si")
        pre, post = fixed_indegree(NI, CI, NE)
        Si.connect(i=pre, j=post)
        del pre, post
        # C_E = 1000 independent inputs at nu_ext = 20 Hz, J = 0.1 mV
        P = b2.PoissonInput(G, "v", N=CE, rate=20 * Hz, weight=0.1 * mV)
        SE, SI = b2.SpikeMonitor(G[:500]), b2.SpikeMonitor(G[NE:NE + 500])
        RE, RI = b2.PopulationRateMonitor(G[:NE]), b2.PopulationRateMonitor(G[NE:])
        return {"objects": [G, Se, Si, P, SE, SI, RE, RI], "rates": (RE, RI)}
    raise ValueError(network)


def _brian2_rates(model, duration_ms):
    import numpy as np
    if "rates" in model:
        return tuple(float(np.mean(np.asarray(r.rate))) for r in model["rates"])
    i = np.asarray(model["spikes"].i)
    split = model["split"]
    n = model["objects"][0].N
    sec = duration_ms / 1000.0
    return (float((i < split).sum()) / (split * sec), float((i >= split).sum()) / ((n - split) * sec))


def worker_brian2_standalone(network: str, duration_ms: float, directory: str,
                             repeats: int = 1) -> dict:
    import brian2 as b2
    from brian2 import ms

    b2.set_device("cpp_standalone", directory=directory, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = 0
    b2.prefs.devices.cpp_standalone.run_cmd_unix = [
        "/usr/bin/time", "-f", "%e %M", "-o", "binary_time.txt", "./main"]
    began = time.perf_counter()
    model = brian2_model(network)
    net = b2.Network(*model["objects"])
    b2.device.insert_code("main", WALL_START)
    net.run(duration_ms * ms)
    b2.device.insert_code("main", WALL_STOP)
    setup_s = time.perf_counter() - began
    t0 = time.perf_counter()
    b2.device.build(directory=directory, compile=True, run=False)
    compile_s = time.perf_counter() - t0
    make_s = b2.device.timers["compile"]["make"]
    loops, walls, binaries, peak = [], [], [], 0.0
    for _ in range(max(1, repeats)):
        b2.device.run(directory=directory)
        binary_s, peak_kb = open(os.path.join(directory, "binary_time.txt")).read().split()[-2:]
        loops.append(float(b2.device._last_run_time))
        walls.append(float(open(os.path.join(directory, "results", "bench_wall.txt")).read()))
        binaries.append(float(binary_s))
        peak = max(peak, float(peak_kb) / 1024.0)
    rate_e, rate_i = _brian2_rates(model, duration_ms)
    return {"setup_s": setup_s, "compile_s": compile_s, "make_s": make_s,
            "loop_s": min(loops), "run_wall_s": min(walls), "binary_s": min(binaries),
            "loops": loops, "run_walls": walls, "peak_mb": peak,
            "rate_E": rate_e, "rate_I": rate_i, "duration_ms": duration_ms}


def worker_brian2_runtime(network: str, duration_ms: float, target: str) -> dict:
    import brian2 as b2
    from brian2 import ms

    b2.prefs.codegen.target = target
    began = time.perf_counter()
    model = brian2_model(network)
    net = b2.Network(*model["objects"])
    setup_s = time.perf_counter() - began
    t0 = time.perf_counter()
    net.run(b2.defaultclock.dt)                  # code generation (and compilation)
    warm_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), time.process_time()
    net.run(duration_ms * ms)
    run_s, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rate_e, rate_i = _brian2_rates(model, duration_ms + b2.defaultclock.dt / ms)
    return {"setup_s": setup_s, "warm_s": warm_s, "run_s": run_s, "run_cpu_s": cpu,
            "loop_s": float(b2.device._last_run_time),
            "duration_ms": duration_ms, "rate_E": rate_e, "rate_I": rate_i,
            "target": target,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


# ============================================================================ driver
def spawn(kind: str, network: str, duration_ms: float, extra=(), env=None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--network", network,
           "--duration", str(duration_ms), *extra]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, **(env or {})))
    for line in out.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
    raise RuntimeError(f"{kind} {network} failed (exit {out.returncode}):\n{tail}")


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    for n in NETWORKS:
        p.add_argument(f"--duration-{n.rstrip('0123456789')}", type=float, default=1000.0,
                       help=f"simulated ms for {n} (ours and Brian2 standalone; default 1000)")
    p.add_argument("--runtime-duration", type=float, nargs=3, metavar=("CUBA", "IZH", "BRUNEL"),
                   default=[RUNTIME_DEFAULT_MS[n] for n in NETWORKS],
                   help="simulated ms for Brian2 runtime mode (default 1000 1000 200)")
    p.add_argument("--runtime-target", default="cython", choices=("cython", "numpy"))
    p.add_argument("--repeats", type=int, default=3,
                   help="timed runs of ours and of the standalone binary; the fastest counts (default 3)")
    p.add_argument("--skip-runtime", action="store_true", help="no Brian2 runtime mode")
    p.add_argument("--skip-standalone", action="store_true", help="no Brian2 cpp_standalone")
    p.add_argument("--skip-cli", action="store_true", help="no CLI start-up measurement")
    p.add_argument("--workdir", help="where Brian2 standalone projects are built (default: a temp dir)")
    p.add_argument("--json", help="also write all figures to this JSON file")
    # worker mode (internal)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--network", help=argparse.SUPPRESS)
    p.add_argument("--duration", type=float, help=argparse.SUPPRESS)
    p.add_argument("--directory", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        if args.worker == "ours":
            out = worker_ours(args.network, args.duration, args.repeats)
        elif args.worker == "standalone":
            out = worker_brian2_standalone(args.network, args.duration, args.directory, args.repeats)
        else:
            out = worker_brian2_runtime(args.network, args.duration, args.runtime_target)
        print(RESULT + json.dumps(out), flush=True)
        return 0

    durations = {n: getattr(args, f"duration_{n.rstrip('0123456789')}") for n in NETWORKS}
    rt_durations = dict(zip(NETWORKS, args.runtime_duration))
    work = args.workdir or tempfile.mkdtemp(prefix="bench-core-brian2-")
    results = {}
    load_before = os.getloadavg()
    began = time.perf_counter()
    for n in args.networks:
        r = results[n] = {}
        print(f"[{time.perf_counter() - began:6.0f} s] {n}: ours ({durations[n]:g} ms)", flush=True)
        # a short run first, so that numba's on-disk cache is warm for the timed one
        spawn("ours", n, 1.0, ["--repeats", "1"], env={"NUMBA_NUM_THREADS": "1"})
        r["ours"] = spawn("ours", n, durations[n], ["--repeats", str(args.repeats)],
                          env={"NUMBA_NUM_THREADS": "1"})
        if not args.skip_standalone:
            print(f"[{time.perf_counter() - began:6.0f} s] {n}: Brian2 cpp_standalone "
                  f"({durations[n]:g} ms; compiling)", flush=True)
            d = os.path.join(work, n)
            shutil.rmtree(d, ignore_errors=True)
            try:
                r["standalone"] = spawn("standalone", n, durations[n],
                                        ["--directory", d, "--repeats", str(args.repeats)])
            finally:
                shutil.rmtree(d, ignore_errors=True)
        if not args.skip_runtime:
            print(f"[{time.perf_counter() - began:6.0f} s] {n}: Brian2 runtime/{args.runtime_target} "
                  f"({rt_durations[n]:g} ms)", flush=True)
            r["runtime"] = spawn("runtime", n, rt_durations[n],
                                 ["--runtime-target", args.runtime_target])
    cli = None
    if not args.skip_cli:
        print(f"[{time.perf_counter() - began:6.0f} s] CLI start-up", flush=True)
        cli = cli_startup(3)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)

    load_after = os.getloadavg()
    print(f"\n{os.cpu_count()} CPUs; load average (1, 5, 15 min) before "
          f"{', '.join(f'{x:.1f}' for x in load_before)}, after "
          f"{', '.join(f'{x:.1f}' for x in load_after)}; total {time.perf_counter() - began:.0f} s")
    report(results, cli, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "cli": cli,
                                               "load": [load_before, load_after]}, indent=1))
    return 0


def report(results: dict, cli, args) -> None:
    def per_s(x, key):
        return None if x is None else x[key] / (x["duration_ms"] / 1000.0)

    print()
    print(f"Run phase, s per simulated second (fastest of {args.repeats} for ours and B2 SA). ours: numba, "
          f"1 instance, 1 thread; B2 SA: Brian2 cpp_standalone, 1 thread; B2 RT: Brian2 runtime/"
          f"{args.runtime_target}")
    head = (f"{'network':<15}{'sim s':>6}{'ours wall':>10}{'ours cpu':>9}{'SA loop':>9}{'SA run()':>9}"
            f"{'RT loop':>9}{'RT cpu':>8}{'ours/SA':>8}{'(wall)':>7}{'ours/RT':>8}{'(wall)':>7}")
    print(head)
    print("-" * len(head))
    for n, r in results.items():
        o, sa, rt = r["ours"], r.get("standalone"), r.get("runtime")
        ow, oc = per_s(o, "run_s"), per_s(o, "run_cpu_s")
        sl, sw = per_s(sa, "loop_s"), per_s(sa, "run_wall_s")
        rw, rc = per_s(rt, "loop_s"), per_s(rt, "run_cpu_s")
        print(f"{n:<15}{o['duration_ms'] / 1000:>6g}{ow:>10.3f}{oc:>9.3f}{fmt(sl):>9}{fmt(sw):>9}"
              f"{fmt(rw):>9}{fmt(rc):>8}{fmt(ratio(oc, sl), '.2f'):>8}{fmt(ratio(ow, sw), '.2f'):>7}"
              f"{fmt(ratio(oc, rc), '.3f'):>8}{fmt(ratio(ow, rw), '.3f'):>7}")
    print("  ours/SA = ours cpu / SA loop: our run's CPU time against Brian2's own run time, Network::run")
    print("  measured by std::clock (CPU time) in results/last_run_info.txt; (wall) = ours wall / SA run():")
    print("  wall time of the whole run() call in main.cpp, which also sets up the spike queues.")
    print("  RT loop = Brian2's own run time (device._last_run_time: wall time of the loop, after")
    print("  before_run); RT cpu = CPU time of the whole run() call. ours/RT = ours cpu / RT cpu,")
    print("  (wall) = ours wall / RT loop; RT timed over " + ", ".join(
        f"{n} {r['runtime']['duration_ms']:g} ms" for n, r in results.items() if r.get("runtime"))
        + " after a one-step warm-up run (code generation and compilation excluded).")
    print()
    head = (f"{'network':<15}{'synapses':>10}{'ours build':>11}{'kernel load':>12}{'B2 codegen+make':>16}"
            f"{'(make)':>8}{'ours peak MB':>13}{'B2 SA peak MB':>14}")
    print("Build, compile (s) and peak memory (max resident set of our worker process / of Brian2's binary)")
    print(head)
    print("-" * len(head))
    for n, r in results.items():
        o, sa = r["ours"], r.get("standalone")
        print(f"{n:<15}{o['n_synapses']:>10}{o['build_s']:>11.2f}{o['kernel_s']:>12.2f}"
              f"{fmt(sa and sa['compile_s'], '.1f'):>16}{fmt(sa and sa['make_s'], '.1f'):>8}"
              f"{o['peak_mb']:>13.0f}{fmt(sa and sa['peak_mb'], '.0f'):>14}")
    print("  kernel load: first one-step run, which loads the kernels from numba's cache (or compiles")
    print("  them when a source file changed since they were cached)")
    print()
    print("Mean rates, Hz (E / I) -- same statistics, different random draws")
    head = f"{'network':<15}{'ours':>16}{'B2 standalone':>16}{'B2 runtime':>16}"
    print(head)
    print("-" * len(head))
    for n, r in results.items():
        cells = []
        for key in ("ours", "standalone", "runtime"):
            x = r.get(key)
            cells.append("-" if x is None else f"{x['rate_E']:.2f} / {x['rate_I']:.2f}")
        print(f"{n:<15}{cells[0]:>16}{cells[1]:>16}{cells[2]:>16}")
    if cli:
        print()
        print("`python -m spiking run` (CUBA shrunk to 500 LIF, 100 ms), fresh numba cache, wall (CPU) s: "
              + ", ".join(f"{w:.2f} ({c:.2f})" for w, c in cli) + "  [first compiles the kernels]")
    print()
    print("Targets (run-phase ratios on CPU time)")
    checks = []
    for n in NETWORKS:
        r = results.get(n)
        if r and r.get("standalone"):
            x = ratio(r["ours"]["run_cpu_s"] / r["ours"]["duration_ms"],
                      r["standalone"]["loop_s"] / r["standalone"]["duration_ms"])
            checks.append((f"{n} run phase <= 1.0x Brian2 standalone", x <= 1.0, f"{x:.2f}x"))
        if r and r.get("runtime"):
            x = ratio(r["runtime"]["run_cpu_s"] / r["runtime"]["duration_ms"],
                      r["ours"]["run_cpu_s"] / r["ours"]["duration_ms"])
            checks.append((f"{n} >= 5x faster than Brian2 runtime", x >= 5, f"{x:.1f}x faster"))
    r = results.get("brunel2000")
    if r:
        if r.get("standalone"):
            checks.append(("brunel2000 builds faster than Brian2 compiles",
                           r["ours"]["build_s"] < r["standalone"]["compile_s"],
                           f"{r['ours']['build_s']:.1f} s vs {r['standalone']['compile_s']:.1f} s"))
        checks.append(("brunel2000 peak memory < 2 GB", r["ours"]["peak_mb"] < 2048,
                       f"{r['ours']['peak_mb']:.0f} MB"))
    if cli and len(cli) > 1:
        best = min(w for w, _ in cli[1:])
        checks.append(("second `spiking run` < 2 s (wall)", best < 2.0, f"{best:.2f} s"))
    for what, ok, value in checks:
        print(f"  [{'met' if ok else 'MISSED'}] {what}: {value}")


if __name__ == "__main__":
    sys.exit(main())
