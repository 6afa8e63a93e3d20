"""Engine, builder, connectors, outputs and the CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import spiking
from netfiles import LIF_NET, write
from spiking.build.builder import build_spec
from spiking.config import load_config
from spiking.errors import SimulationError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_same_seed_same_spikes_other_seed_differs(tmp_path):
    path = str(write(tmp_path, LIF_NET))
    a = spiking.load(path).run(progress=False)
    b = spiking.load(path).run(progress=False)
    for key in ("t", "i"):
        np.testing.assert_array_equal(a.spikes["E"][key], b.spikes["E"][key])
    c = spiking.load(path, overrides=["seed=8"]).run(progress=False)
    assert not np.array_equal(a.counts("E"), c.counts("E"))


def test_components_draw_independently(tmp_path):
    """Adding a population does not change another projection's synapses."""
    path = str(write(tmp_path, LIF_NET))
    base = load_config(path)
    extra = load_config(path, overrides={
        "populations.Z": {"size": 30, "model": "lif"},
        "projections.X": {"pre": "Z", "post": "E", "connector": {"type": "fixed_probability", "p": 0.5},
                          "weight": "0.1 nA"}})
    a, b = build_spec(base), build_spec(extra)
    for name in ("EE", "EI"):
        pa, pb = a.projection(name).index, b.projection(name).index
        ta = a.connectivity.target[a.connectivity.projection == pa]
        tb = b.connectivity.target[b.connectivity.projection == pb]
        np.testing.assert_array_equal(ta, tb)


def test_delay_arrives_exactly(tmp_path):
    """A spike at step s through a delay of d steps moves v in step s + d."""
    path = write(tmp_path, """
dt: 0.1 ms
duration: 10 ms
populations:
  src: {size: 1, model: spike_source_array, params: {spike_times: [[1 ms]]}}
  n: {size: 1, model: lif, params: {tau_m: 1e9 ms, v_rest: 0 mV, v_reset: 0 mV, v_thresh: 100 mV}}
projections:
  p: {pre: src, post: n, receptor_type: v, connector: {type: one_to_one}, weight: 2 mV, delay: 2.5 ms}
monitors:
  - {type: state, population: n, variables: [v]}
""")
    res = spiking.load(str(path)).run(progress=False)
    v = res.states["n"]["v"][:, 0, 0]
    first = int(np.flatnonzero(v > 1)[0])
    assert first == 10 + 25
    assert v[first] == pytest.approx(2.0, rel=1e-6)


def test_refractory_holds_v(tmp_path):
    path = write(tmp_path, """
dt: 0.1 ms
duration: 30 ms
populations:
  n: {size: 1, model: lif, params: {i_offset: 2 nA, tau_refrac: 5 ms, v_reset: -70 mV}}
monitors:
  - {type: state, population: n, variables: [v]}
  - {type: spikes, population: n}
""")
    res = spiking.load(str(path)).run(progress=False)
    v = res.states["n"]["v"][:, 0, 0]
    spike_steps = np.rint(res.spikes["n"]["t"] / 0.1).astype(int)
    assert spike_steps.size >= 2
    s = spike_steps[0]
    # held at reset for steps s .. s + 49, integrating again at s + 50
    assert np.all(v[s: s + 50] == np.float32(-70.0))
    assert v[s + 50] > -70.0
    assert np.all(np.diff(spike_steps) >= 50)


def test_nan_stops_with_population_and_step(tmp_path):
    path = write(tmp_path, """
dt: 0.1 ms
duration: 20 ms
populations:
  src: {size: 2, model: spike_source_array, params: {spike_times: [[2 ms], [2 ms]]}}
  A: {size: 3, model: lif}
  boom: {size: 2, model: lif}
projections:
  # two spikes of 3e38 nA overflow float32 to +inf and -inf: inf - inf is NaN
  pe: {pre: src, post: boom, receptor_type: excitatory, connector: {type: all_to_all}, weight: 3e38 nA}
  pi: {pre: src, post: boom, receptor_type: inhibitory, connector: {type: all_to_all}, weight: -3e38 nA}
""")
    for backend in ("numba", "torch"):
        with pytest.raises(SimulationError, match=r"population 'boom' at step 2[01]"):
            spiking.load(str(path), backend=backend).run(progress=False)


def test_event_source_inputs(tmp_path):
    path = write(tmp_path, """
dt: 1 ms
duration: 20 ms
populations:
  ev: {size: 4, model: event_source}
  n: {size: 4, model: lif, params: {tau_m: 1e9 ms, v_rest: 0 mV, v_reset: 0 mV, v_thresh: 100 mV}}
projections:
  p: {pre: ev, post: n, receptor_type: v, connector: {type: one_to_one}, weight: 1 mV, delay: 1 ms}
""")
    net = spiking.load(str(path), instances=2)
    events = np.zeros((20, 2, 4), np.uint8)
    events[3, 0, 1] = 2      # two events in one step count twice
    events[5, 1, 3] = 1
    res = net.run(inputs={"ev": events}, progress=False)
    np.testing.assert_array_equal(res.counts("ev"), [[0, 2, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_allclose(net.get_state("n", "v"), [[0, 2, 0, 0], [0, 0, 0, 1]])
    with pytest.raises(SimulationError, match="expected"):
        net.run(inputs={"ev": np.zeros((5, 3))}, progress=False)


def test_inputs_and_signals_are_indexed_from_the_start_of_the_run(tmp_path):
    """Row 0 of a run's inputs and signals is the run's first step, also when
    the run does not start at step 0 (no reset between runs)."""
    path = write(tmp_path, """
dt: 1 ms
duration: 20 ms
modulators:
  att: {type: signal}
populations:
  ev: {size: 3, model: event_source}
  n: {size: 3, model: lif, params: {tau_m: 1e9 ms, v_rest: 0 mV, v_reset: 0 mV, v_thresh: 100 mV}}
projections:
  p: {pre: ev, post: n, receptor_type: v, connector: {type: one_to_one}, weight: 1 mV, delay: 1 ms}
monitors:
  - {type: spikes, population: ev}
""")
    net = spiking.load(str(path))
    net.run("7 ms", progress=False)                      # steps 0..6, no input
    events = np.zeros((30, 3), np.uint8)                  # longer than the run: rows 10.. unused
    events[0, 1] = 1
    events[3, 2] = 1
    events[12, 0] = 1
    res = net.run("10 ms", inputs={"ev": events}, signals={"att": [1.0, 2.0, 3.0, 4.0, 5.0]},
                  progress=False)
    np.testing.assert_array_equal(res.spikes["ev"]["t"], [7.0, 10.0])    # rows 0 and 3
    np.testing.assert_array_equal(res.spikes["ev"]["i"], [1, 2])
    held = net.backend.signal_held                         # what the next steps will read
    assert held.shape[0] == 1 and float(held[0, 0]) == 5.0  # the signal's last row, then held
    res = net.run("5 ms", inputs={"ev": events}, progress=False)          # again from row 0
    np.testing.assert_array_equal(res.spikes["ev"]["t"], [17.0, 20.0])
    np.testing.assert_allclose(net.get_state("n", "v")[0], [0, 2, 2])


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_binned_counts_equal_one_run_per_bin(tmp_path, backend):
    """run(count_bins=k) counts each neuron's spikes in k time bins of one run
    (edges round(n * i / k)); they equal k runs over the bins' steps, and they sum
    to the run's counts, which keep adding up since the reset."""
    from netfiles import LIF_NET
    from spiking.engine import count_bin_edges

    path = write(tmp_path, LIF_NET)
    net = spiking.load(str(path), backend=backend, instances=2, device="cpu")
    res = net.run("100 ms", progress=False, count_bins=3)
    binned = res.counts("E", binned=True)
    assert binned.shape == (2, 3, res.counts("E").shape[1]) and binned.sum() > 100
    np.testing.assert_array_equal(binned.sum(axis=1), res.counts("E"))
    np.testing.assert_array_equal(count_bin_edges(100, 3), [0, 33, 67, 100])
    edges = count_bin_edges(res.n_steps, 3)
    again = spiking.load(str(path), backend=backend, instances=2, device="cpu")
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        part = again.run((hi - lo) * net.spec.dt, progress=False)
        np.testing.assert_array_equal(part.counts("E"), binned[:, k], err_msg=f"bin {k}")
        np.testing.assert_array_equal(part.counts("drive"), res.counts("drive", binned=True)[:, k])
    np.testing.assert_array_equal(net.backend.get_spike_counts(), again.backend.get_spike_counts())
    assert res.counts("E", binned=False).ndim == 2
    assert net.run("5 ms", progress=False).counts("I", binned=True).shape[1] == 1   # no bins: one
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(SimulationError, match="count_bins"):
            net.run("5 ms", progress=False, count_bins=bad)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_recorded_spikes_are_in_instance_step_neuron_order(tmp_path, backend):
    """A run of several chunks (MAX_CHUNK steps each) with several instances records
    chunk by chunk; the result is still ordered by (instance, t, i), as one chunk is."""
    from spiking.backends.base import MAX_CHUNK

    net = spiking.load(str(write(tmp_path, LIF_NET)), backend=backend, instances=2, device="cpu")
    res = net.run("250 ms", progress=False)          # dt 0.1 ms: 2500 steps
    rec = res.spikes["E"]
    assert res.n_steps > MAX_CHUNK and rec["t"].max() > MAX_CHUNK * res.spec.dt
    assert set(rec["instance"]) == {0, 1}
    order = np.lexsort((rec["i"], rec["t"], rec["instance"]))
    np.testing.assert_array_equal(order, np.arange(order.size))
    short = spiking.load(str(write(tmp_path, LIF_NET)), backend=backend, instances=2,
                         device="cpu").run("50 ms", progress=False).spikes["E"]
    first = rec["t"] < 50
    for key in ("instance", "t", "i"):     # one chunk: the same records as the long run's
        np.testing.assert_array_equal(short[key], rec[key][first])


@pytest.mark.parametrize("network", ["izhikevich", "lif"])
def test_reset_draws_fresh_noise_reproducibly(tmp_path, network):
    """Each reset starts a new noise epoch: noise currents (Izhikevich) and
    Poisson sources (LIF) differ between the trials after successive resets;
    the same calls give the same spikes again, on numba and torch alike, and
    ``epoch=0`` replays the first trial."""
    from netfiles import IZH_NET

    text = IZH_NET.replace("SCHEME", "izhikevich2003") if network == "izhikevich" else LIF_NET
    path = str(write(tmp_path, text))
    pop = "E"

    def trials(backend):
        net = spiking.load(path, backend=backend, device="cpu", instances=2)
        out = [net.run("60 ms", progress=False).spikes[pop]]
        for epoch in (None, None, 0):
            net.reset(epoch=epoch)
            out.append(net.run("60 ms", progress=False).spikes[pop])
        return [np.stack([s["instance"], np.rint(s["t"] * 1000).astype(np.int64), s["i"]]) for s in out]

    numba = trials("numba")
    assert numba[0].shape[1] > 50, "the test network must be active"
    same = lambda a, b: a.shape == b.shape and np.array_equal(a, b)
    assert not same(numba[0], numba[1]) and not same(numba[1], numba[2]), "reset replayed the noise"
    assert same(numba[3], numba[0]), "epoch 0 must replay the first trial"
    again = trials("numba")
    assert all(same(a, b) for a, b in zip(numba, again)), "same seed and calls: same spikes"
    torch = trials("torch")
    assert all(same(a, b) for a, b in zip(numba, torch)), "numba and torch must agree after resets"


def test_connectors(tmp_path):
    path = write(tmp_path, """
grids:
  cube: {shape: [6, 6, 6], spacing: 1 um}
populations:
  A: {size: 150, model: lif, positions: {grid: cube}}
  B: {size: 50, model: lif, positions: {grid: cube}}
projections:
  indeg: {pre: A, post: A, connector: {type: fixed_indegree, n: 7, allow_self_connections: false}, weight: 0.1 nA}
  outdeg: {pre: A, post: B, connector: {type: fixed_outdegree, n: 5}, weight: 0.1 nA}
  prob: {pre: A, post: B, connector: {type: fixed_probability, p: 0.25}, weight: 0.1 nA}
  dist: {pre: A, post: A, connector: {type: distance, c: 0.9, lambda: 1.5 um}, weight: 0.1 nA}
  lst: {pre: B, post: A, connector: {type: from_list, pre: [0, 1, 1], post: [5, 6, 7], weight: [0.1, 0.2, 0.3]}}
""")
    spec = build_spec(load_config(str(path)))
    conn = spec.connectivity
    pre = conn.pre_index()
    A, B = spec.population("A"), spec.population("B")
    n_total = spec.n_total

    def syn(name):
        k = conn.projection == spec.projection(name).index
        return pre[k], conn.target[k] % n_total, conn.weight[k]

    p, q, _ = syn("indeg")
    assert np.all(np.bincount(q, minlength=A.size) == 7) and not np.any(p == q)
    p, q, _ = syn("outdeg")
    assert np.all(np.bincount(p, minlength=A.size) == 5)
    p, q, _ = syn("prob")
    assert abs(p.size / (150 * 50) - 0.25) < 0.03
    p, q, _ = syn("dist")
    d = np.linalg.norm(A.positions[p - A.offset] - A.positions[q - A.offset], axis=1)
    assert not np.any(p == q) and d.max() < 6 and np.mean(d) < 2.5
    p, q, w = syn("lst")
    np.testing.assert_array_equal(p - B.offset, [0, 1, 1])
    np.testing.assert_array_equal(q - A.offset, [5, 6, 7])
    np.testing.assert_allclose(w, [0.1, 0.2, 0.3], rtol=1e-6)
    # E and I share the grid without overlapping sites
    sites = {tuple(x) for x in np.vstack([A.positions, B.positions])}
    assert len(sites) == 200


def test_memory_refused_before_build(tmp_path):
    path = write(tmp_path, """
populations:
  A: {size: 2000000, model: lif}
projections:
  p: {pre: A, post: A, connector: {type: fixed_probability, p: 0.5}, weight: 0.1 nA}
""")
    with pytest.raises(SimulationError, match="GiB"):
        spiking.load(str(path)).build()


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "spiking", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=600)


def test_cli_run_writes_results(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", os.path.join(ROOT, "configs", "cuba.yaml"), "--set", "duration=200 ms",
                   "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "E:" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("backend", "seed", "synapses"):
        assert key in metrics
    assert metrics["timing"]["run_s"] > 0 and metrics["timing"]["build_s"] > 0
    assert metrics["populations"]["E"]["size"] == 3200
    assert metrics["populations"]["E"]["spikes"] > 0 and metrics["populations"]["I"]["rate_hz"] > 0
    with np.load(out / "spikes.npz") as spikes:
        assert spikes["E/t"].size == metrics["populations"]["E"]["spikes"]
    assert (out / "raster.png").stat().st_size > 1000
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "temporary folders left behind"


def test_cli_bad_input_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("populations:\n  E: {size: 10, model: lif, params: {tau_mem: 20 ms}}\n")
    proc = run_cli("validate", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "bad.yaml:2" in proc.stderr and "tau_m" in proc.stderr
    proc = run_cli("run", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    good = run_cli("validate", os.path.join(ROOT, "configs", "brunel2000.yaml"))
    assert good.returncode == 0 and "valid" in good.stdout


def test_results_folder_replaced_atomically(tmp_path):
    from spiking.results import atomic_folder

    out = tmp_path / "res"
    with atomic_folder(str(out)) as tmp:
        open(os.path.join(tmp, "a.txt"), "w").write("first")
    with pytest.raises(RuntimeError):
        with atomic_folder(str(out)) as tmp:
            open(os.path.join(tmp, "a.txt"), "w").write("second")
            raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "first"
    assert os.listdir(tmp_path) == ["res"]


def test_torch_batch_planning(tmp_path):
    from spiking.backends.torch_backend import plan_instances

    spec = build_spec(load_config(str(write(tmp_path, LIF_NET))))
    fits = plan_instances(spec, "cpu")
    assert fits > 100
    assert plan_instances(spec, "cpu", requested=4) == 4
    with pytest.raises(SimulationError, match="at most"):
        plan_instances(spec, "cpu", requested=fits * 10)
    with pytest.raises(SimulationError, match="CUDA is not available"):
        spiking.load(str(write(tmp_path, LIF_NET)), backend="torch", device="cuda").build()
