"""Backend parity: the same spec on numba and torch (CPU) gives identical spikes.

One test per neuron model; the networks mix every receptor, heterogeneous
parameters and delays, Poisson and spike-array sources and, for Izhikevich,
the noise current, so inputs, integration, propagation and RNG are all covered.
"""
import numpy as np
import pytest

import spiking
from netfiles import IZH_NET, LIF_NET, write


def run_both(path, instances=1, duration=None):
    out = {}
    for backend in ("numba", "torch"):
        net = spiking.load(str(path), backend=backend, instances=instances, device="cpu")
        out[backend] = (net, net.run(duration, progress=False))
    return out


def assert_same(a, b):
    assert a.spikes.keys() == b.spikes.keys()
    for pop in a.spikes:
        for key in ("instance", "t", "i"):
            np.testing.assert_array_equal(a.spikes[pop][key], b.spikes[pop][key], err_msg=f"{pop}.{key}")
    np.testing.assert_array_equal(a.pop_counts, b.pop_counts)
    np.testing.assert_array_equal(a.spike_counts, b.spike_counts)
    for pop, rec in a.states.items():
        for var, values in rec.items():
            np.testing.assert_array_equal(values, b.states[pop][var], err_msg=f"{pop}.{var}")


def test_lif_parity(tmp_path):
    res = run_both(write(tmp_path, LIF_NET))
    a, b = res["numba"][1], res["torch"][1]
    assert a.spikes["E"]["t"].size > 100, "the test network must be active"
    assert a.spikes["I"]["t"].size > 10
    assert_same(a, b)
    for backend, (net, _) in res.items():
        assert net.get_state("E", "v").dtype == np.float32
    np.testing.assert_array_equal(res["numba"][0].get_state("E", "v"), res["torch"][0].get_state("E", "v"))


@pytest.mark.parametrize("scheme", ["izhikevich2003", "euler"])
def test_izhikevich_parity(tmp_path, scheme):
    res = run_both(write(tmp_path, IZH_NET, SCHEME=scheme))
    a, b = res["numba"][1], res["torch"][1]
    assert a.spikes["E"]["t"].size > 50
    assert_same(a, b)


def test_instances_parity_and_independence(tmp_path):
    """B instances: same on both backends; Poisson inputs differ between instances."""
    res = run_both(write(tmp_path, LIF_NET), instances=3, duration="100 ms")
    a, b = res["numba"][1], res["torch"][1]
    assert_same(a, b)
    drive = a.counts("drive")
    assert not np.array_equal(drive[0], drive[1])
    # instance 0 of a batch equals a single-instance run
    single = spiking.load(str(write(tmp_path, LIF_NET)), instances=1).run("100 ms", progress=False)
    np.testing.assert_array_equal(single.counts("E")[0], a.counts("E")[0])


def test_dense_propagation_matches_when_sums_are_exact(tmp_path):
    """The dense (matmul) path: identical spikes when every weight sum is exact
    in float32 (dyadic weights), and close statistics otherwise."""
    dyadic = (LIF_NET.replace("weight: 0.6 nA", "weight: 0.5 nA")
              .replace("{distribution: normal_clipped, mean: 0.3, std: 0.1, low: 0, high: 1}", "0.25 nA")
              .replace("weight: 0.8 nA", "weight: 0.75 nA").replace("weight: -0.8 nA", "weight: -0.75 nA"))
    path = write(tmp_path, dyadic)
    ref = spiking.load(str(path)).run(progress=False)
    net = spiking.network.Network(spiking.load(str(path)).config, backend="torch", device="cpu",
                                  propagation="dense")
    dense = net.run(progress=False)
    assert net.backend.dense is not None
    assert_same(ref, dense)
    general = spiking.network.Network(spiking.load(str(write(tmp_path, LIF_NET, name="g.yaml"))).config,
                                      backend="torch", device="cpu", propagation="dense", instances=4)
    counts = general.run(progress=False).counts("E").sum(axis=1)
    exact = spiking.load(str(write(tmp_path, LIF_NET, name="g.yaml")), instances=4).run(progress=False)
    np.testing.assert_allclose(counts, exact.counts("E").sum(axis=1), rtol=0.1)


UNIFORM_NET = """
name: uniform_net
dt: 1 ms
duration: 150 ms
seed: 11
populations:
  low: {size: 30, model: poisson_source, params: {rate: 2000 Hz}}      # 2 spikes per step
  high: {size: 10, model: poisson_source, params: {rate: 45000 Hz}}    # beyond the CDF table
  izh: {size: 40, model: izhikevich, params: {i_noise: 3}}
  lif: {size: 25, model: lif, params: {tau_m: 12 ms, v_thresh: -55 mV}}
projections:
  li: {pre: low, post: izh, receptor_type: excitatory, connector: {type: fixed_probability, p: 0.2}, weight: 1.5, delay: 2 ms}
  hl: {pre: high, post: lif, receptor_type: excitatory, connector: {type: fixed_probability, p: 0.3}, weight: 0.02 nA}
  il: {pre: izh, post: lif, receptor_type: v, connector: {type: all_to_all}, weight: 0.5 mV, delay: 3 ms}
monitors:
  - {type: spikes, population: izh}
  - {type: spikes, population: lif}
  - {type: spikes, population: high}
"""


def test_uniform_population_fast_paths(tmp_path):
    """Populations whose neurons share their parameters take the kernels' fast
    paths (scalar coefficients, the Poisson CDF table and its fallback, rows with
    one delay and one weight); they must agree with torch's general code."""
    res = run_both(write(tmp_path, UNIFORM_NET), instances=2)
    a, b = res["numba"][1], res["torch"][1]
    assert a.spikes["izh"]["t"].size > 20 and a.spikes["lif"]["t"].size > 20
    per_step = a.counts("high").sum() / (2 * 10 * 150)
    assert per_step > 32, "the high-rate source must draw past the 32-entry CDF table"
    assert_same(a, b)
