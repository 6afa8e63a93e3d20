"""Sparse spike input (spiking.inputs): SpikeCounts, the run's ExternalSpikes, and
the kernel's compaction of fired flags."""
import numpy as np
import pytest

import spiking
from netfiles import write
from spiking.errors import SimulationError
from spiking.inputs import ExternalSpikes, SpikeCounts
from spiking.models.kernel import collect


def random_counts(rng, shape, density=0.05):
    dense = np.where(rng.random(shape) < density, rng.integers(1, 256, shape), 0)
    return dense.astype(np.uint8)


def test_spike_counts_round_trip_and_layout():
    rng = np.random.default_rng(0)
    dense = random_counts(rng, (7, 3, 11))
    x = SpikeCounts.from_dense(dense)
    assert x.shape == (7, 3, 11) and x.cell.size == np.count_nonzero(dense)
    np.testing.assert_array_equal(x.to_dense(), dense)
    instance, step, neuron = x.coordinates()      # instance-major: an instance's steps in turn
    np.testing.assert_array_equal(dense[step, instance, neuron], x.count)
    assert np.all(np.diff(instance) >= 0)
    shared = SpikeCounts.from_dense(dense[:, 0])
    assert shared.shape == (7, 1, 11)
    np.testing.assert_array_equal(shared.to_dense()[:, 0], dense[:, 0])
    # one instance per sample, from the samples' (step * n + neuron, count) cells
    cells = []
    for b in range(3):
        flat = np.flatnonzero(dense[:, b])
        cells.append((flat, dense[:, b].reshape(-1)[flat]))
    joined = SpikeCounts.from_samples(cells, 7, 11, n_instances=5)
    assert joined.shape == (7, 5, 11)
    np.testing.assert_array_equal(joined.to_dense()[:, :3], dense)
    assert not joined.to_dense()[:, 3:].any()
    np.testing.assert_array_equal(x.with_instances(5).to_dense(), joined.to_dense())


def test_spike_counts_refuses_bad_cells():
    with pytest.raises(SimulationError, match="ascend"):
        SpikeCounts(np.array([3, 2]), np.array([1, 1]), (2, 1, 4))
    with pytest.raises(SimulationError, match="ascend"):
        SpikeCounts(np.array([1, 8]), np.array([1, 1]), (2, 1, 4))      # 8 cells: 0..7
    with pytest.raises(SimulationError, match="1..255"):
        SpikeCounts(np.array([1, 2]), np.array([1, 0]), (2, 1, 4))
    with pytest.raises(SimulationError, match="one length"):
        SpikeCounts(np.array([1, 2]), np.array([1]), (2, 1, 4))
    with pytest.raises(SimulationError, match="0..255"):
        SpikeCounts.from_dense(np.full((2, 3), 256))
    with pytest.raises(SimulationError, match="shrink"):
        SpikeCounts.from_dense(np.ones((2, 3, 4))).with_instances(2)


def test_external_spikes_pointers_and_dense_cells():
    """combine: a shared part is repeated for every instance when another part is per
    instance; pointers give each (instance, step) its spikes in neuron order."""
    shared = (True, np.array([0, 2]), np.array([5, 5]), np.array([1, 2], np.uint8))
    own = (False, np.array([1, 2 + 3]), np.array([0, 1]), np.array([7, 9], np.uint8))  # rows b*3+s
    ext = ExternalSpikes.combine([shared, own], n_steps=3, n_instances=2, n_total=6)
    assert ext.ptr.shape == (2, 4)
    got = {(b, s): [(int(ext.neuron[e]), int(ext.count[e])) for e in range(ext.ptr[b, s], ext.ptr[b, s + 1])]
           for b in range(2) for s in range(3)}
    assert got == {(0, 0): [(5, 1)], (0, 1): [(0, 7)], (0, 2): [(5, 2)],
                   (1, 0): [(5, 1)], (1, 1): [], (1, 2): [(1, 9), (5, 2)]}
    column = np.array([0, 1, -1, -1, -1, 2])
    flat, count = ext.chunk(1, 2).cells(column, 3)      # steps 1 and 2, as [2, 2, 3]
    dense = np.zeros(2 * 2 * 3, np.uint8)
    dense[flat] = count
    dense = dense.reshape(2, 2, 3)
    np.testing.assert_array_equal(dense[1, 1], [0, 9, 2])
    np.testing.assert_array_equal(dense[0, 0], [7, 0, 0])
    assert ext.max_count() == 9
    alone = ExternalSpikes.combine([shared], n_steps=3, n_instances=2, n_total=6)
    assert alone.ptr.shape == (1, 4)                   # shared only: one input for all instances


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1000, 2313])
def test_collect_finds_every_nonzero_flag(n):
    rng = np.random.default_rng(n)
    for density in (0.0, 0.02, 0.5, 1.0):
        words = np.full(n // 8 + 2, 0xFF, np.uint64)   # beyond n: not read
        flags = words.view(np.uint8)
        flags[:n] = random_counts(rng, n, density)
        spikes = np.zeros(n + 1, np.int32)
        end = collect(words, flags, 100, n, spikes, 1)
        np.testing.assert_array_equal(spikes[1:end], 100 + np.flatnonzero(flags[:n]))


SOURCES = """
dt: 1 ms
duration: 30 ms
populations:
  arr: {size: 2, model: spike_source_array, params: {spike_times: [[2 ms, 2 ms, 9 ms], [4 ms]]}}
  file: {size: 3, model: event_source, params: {file: ev.npz}}
  ev: {size: 4, model: event_source}
  n: {size: 9, model: lif, params: {tau_m: 1e9 ms, v_rest: 0 mV, v_reset: 0 mV, v_thresh: 1000 mV}}
projections:
  a: {pre: arr, post: n, receptor_type: v, connector: {type: all_to_all}, weight: 1 mV, delay: 1 ms}
  f: {pre: file, post: n, receptor_type: v, connector: {type: all_to_all}, weight: 10 mV, delay: 2 ms}
  e: {pre: ev, post: n, receptor_type: v, connector: {type: fixed_probability, p: 0.5}, weight: 0.1 mV, delay: 1 ms}
"""


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_every_source_kind_reaches_its_targets_sparse_or_dense(tmp_path, backend):
    """A spike array (two spikes of one neuron in one step count twice), an event file
    shared by all instances (timed from the reset) and a per-instance input (from the
    run's first step), in one run of three instances: the same counts and voltages
    whether the input is dense or SpikeCounts."""
    rng = np.random.default_rng(3)
    file_events = random_counts(rng, (30, 3), 0.1)
    np.savez(tmp_path / "ev.npz", spikes=file_events)
    path = write(tmp_path, SOURCES)
    events = random_counts(rng, (30, 3, 4), 0.2)
    results = []
    for given in (events, SpikeCounts.from_dense(events)):
        net = spiking.load(str(path), backend=backend, instances=3, device="cpu")
        net.run("10 ms", progress=False)
        res = net.run("15 ms", inputs={"ev": given}, progress=False)     # steps 10..24
        results.append((res.counts("arr"), res.counts("file"), res.counts("ev"),
                        net.get_state("n", "v")))
    for got, want in zip(results[0], results[1]):
        np.testing.assert_array_equal(got, want)
    arr, file, ev, _ = results[0]
    assert not arr.any()                                  # its spikes were before step 10
    np.testing.assert_array_equal(file, np.repeat(file_events[10:25].sum(0)[None], 3, 0))
    np.testing.assert_array_equal(ev, events[:15].sum(0))
    first = spiking.load(str(path), backend=backend, instances=3, device="cpu").run(
        "10 ms", progress=False)
    np.testing.assert_array_equal(first.counts("arr"), [[3, 1]] * 3)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_sparse_input_is_checked(tmp_path, backend):
    np.savez(tmp_path / "ev.npz", spikes=np.zeros((30, 3), np.uint8))
    net = spiking.load(str(write(tmp_path, SOURCES)), backend=backend, instances=3, device="cpu")
    with pytest.raises(SimulationError, match=r"input 'ev': expected \[T, 4\] or \[T, 3, 4\]"):
        net.run(inputs={"ev": SpikeCounts.from_dense(np.ones((5, 2, 4)))}, progress=False)
    with pytest.raises(SimulationError, match="only event_source"):
        net.run(inputs={"n": SpikeCounts.from_dense(np.ones((5, 9)))}, progress=False)
    with pytest.raises(SimulationError, match="input 'ev': counts must lie in 0..255"):
        net.run(inputs={"ev": np.full((5, 4), -1)}, progress=False)
