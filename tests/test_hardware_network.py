"""Projections on resistive arrays inside the simulator."""
import numpy as np
import pytest

import spiking
from netfiles import LIF_NET, write
from spiking.errors import ConfigError


def load(tmp_path, hardware, backend="numba", instances=1):
    overrides = {} if hardware is None else {"projections.EE.hardware": hardware}
    return spiking.load(str(write(tmp_path, LIF_NET)), overrides, backend=backend,
                        instances=instances, device="cpu")


def test_ideal_array_reproduces_software_bit_for_bit(tmp_path):
    soft = load(tmp_path, None).run(progress=False)
    net = load(tmp_path, {"device": "ideal"})
    ideal = net.run(progress=False)
    np.testing.assert_array_equal(soft.spikes["E"]["t"], ideal.spikes["E"]["t"])
    np.testing.assert_array_equal(soft.spikes["E"]["i"], ideal.spikes["E"]["i"])
    report = net.hardware_report()["EE"]
    fan_out = np.bincount(net.spec.connectivity.pre_index()[
        net.spec.connectivity.projection == net.spec.projection("EE").index] - net.spec.population("E").offset,
        minlength=60)
    assert report["row_reads"] == ideal.counts("E").sum()
    assert report["synaptic_events"] == int((ideal.counts("E")[0] * fan_out).sum())
    assert report["energy_pj"]["total"] > 0


RRAM = {"device": "rram", "read_noise": 0.05, "adc": 6}


def test_noisy_array_parity_and_per_instance_programming(tmp_path):
    a = load(tmp_path, RRAM, "numba", instances=2)
    b = load(tmp_path, RRAM, "torch", instances=2)
    ra, rb = a.run(progress=False), b.run(progress=False)
    np.testing.assert_array_equal(a.weights("EE"), b.weights("EE"))
    np.testing.assert_array_equal(ra.counts("E"), rb.counts("E"))
    w = a.weights("EE")
    assert not np.array_equal(w[0], w[1]), "each instance has its own programming noise"
    soft = load(tmp_path, None, instances=2).run(progress=False)
    assert not np.array_equal(soft.counts("E"), ra.counts("E"))


def test_read_noise_follows_the_noise_epoch(tmp_path):
    net = load(tmp_path, dict(RRAM, read_noise=0.3))
    first = net.run(progress=False).spikes["E"]
    net.reset()                     # epoch 1: fresh read noise (inputs and weights unchanged)
    second = net.run(progress=False).spikes["E"]
    net.reset(epoch=0)              # the first run again, bit for bit
    again = net.run(progress=False).spikes["E"]
    assert not np.array_equal(first["t"], second["t"])
    np.testing.assert_array_equal(first["t"], again["t"])
    np.testing.assert_array_equal(first["i"], again["i"])


def test_bad_hardware_block(tmp_path):
    with pytest.raises(ConfigError, match=r"projections\.EE\.hardware"):
        load(tmp_path, {"device": "rram", "g_min": 50, "g_max": 10})
    with pytest.raises(ConfigError, match="did you mean"):
        load(tmp_path, {"device": "rram", "read_nosie": 0.1})


# ---------------------------------------------------------------- plastic projections on arrays
from test_plasticity import PAIR_NET, STDP_RULE  # noqa: E402
from test_three_factor import ERROR_RULE, READOUT_NET  # noqa: E402

# pre spikes at 20, 60, 100, 140 ms and post spikes 10 ms after each: seven weight
# changes (the first pre spike meets no post trace): + - + - + - +
PAIRS = [20, 60, 100, 140]


def pair_net(tmp_path, hardware, backend="numba", stop=200):
    path = write(tmp_path, PAIR_NET, UPDATE="additive", PAIRING="all_to_all")
    overrides = {} if hardware is None else {"projections.plastic.hardware": hardware}
    net = spiking.load(str(path), overrides, backend=backend, device="cpu")
    events = np.zeros((200, 1, 2), np.uint8)
    for t in PAIRS:
        if t < stop:
            events[t, 0, 0] = 1
            events[t + 9, 0, 1] = 1
    net.run(inputs={"ev": events}, progress=False)
    return net


def test_each_weight_change_is_one_device_write(tmp_path):
    soft = pair_net(tmp_path, None)
    net = pair_net(tmp_path, {"device": "ideal"})
    assert net.weights("plastic")[0, 0] == soft.weights("plastic")[0, 0] != 0.5
    # G+ written at programming and at each of the 7 changes; G- (target G_min) only once
    np.testing.assert_array_equal(net.backend.device_writes("plastic"), [[[8, 1]]])
    report = net.hardware_report()["plastic"]
    assert report["writes"] == 7 and report["max_device_writes"] == 8
    assert report["energy_pj"]["writes"] == 7 * 10.0     # EnergyModel.write_energy
    assert report["worn_out"] == 0


def test_worn_out_device_keeps_its_last_conductance(tmp_path):
    net = pair_net(tmp_path, {"device": "ideal", "endurance": 4})
    after_three = pair_net(tmp_path, None, stop=80).weights("plastic")   # + - +
    assert net.weights("plastic")[0, 0] == after_three[0, 0]
    np.testing.assert_array_equal(net.backend.device_writes("plastic"), [[[4, 1]]])
    report = net.hardware_report()["plastic"]
    assert report["writes"] == 3 and report["worn_out"] == 1


def test_updates_below_half_a_level_write_nothing(tmp_path):
    # 16 levels over [0, 1]: 0.5 lands on level 8 (ties to even); each STDP change is
    # < 0.005, far below half a level (1/30)
    net = pair_net(tmp_path, {"device": "ideal", "levels": 16})
    assert net.weights("plastic")[0, 0] == np.float32(8 / 15)
    assert net.hardware_report()["plastic"]["writes"] == 0


def test_ideal_plastic_arrays_learn_like_software(tmp_path):
    for text, projection, population, overrides, signals in (
            (LIF_NET, "EE", "E", STDP_RULE, None),
            (READOUT_NET.replace("RULE", ERROR_RULE), "readout", "out", {}, "err")):
        nets = []
        for hardware in (None, {"device": "ideal"}):
            extra = {} if hardware is None else {f"projections.{projection}.hardware": hardware}
            net = spiking.load(str(write(tmp_path, text)), {**overrides, **extra}, device="cpu")
            kwargs = {}
            if signals:
                target = np.zeros((200, 1, 1), np.float32)
                target[100:120] = 3.0
                kwargs["signals"] = {signals: target}
            result = net.run(progress=False, **kwargs)
            nets.append((net.weights(projection), result.counts(population)))
        np.testing.assert_array_equal(nets[0][0], nets[1][0])
        np.testing.assert_array_equal(nets[0][1], nets[1][1])


NOISY_PLASTIC = {"device": "rram", "read_noise": 0.02, "endurance": 6}


def test_plastic_arrays_numba_torch_parity(tmp_path, monkeypatch):
    from spiking.backends import numba_backend
    monkeypatch.setattr(numba_backend, "PARALLEL_WORK", 0)   # the prange kernel, too
    runs = {}
    for backend in ("numba", "torch"):
        net = spiking.load(str(write(tmp_path, LIF_NET)),
                           {**STDP_RULE, "projections.EE.hardware": NOISY_PLASTIC},
                           backend=backend, instances=2, device="cpu")
        result = net.run(progress=False)
        runs[backend] = (net.weights("EE"), result.counts("E"), net.backend.device_writes("EE"),
                         net.hardware_report()["EE"])
    for a, b in zip(runs["numba"][:3], runs["torch"][:3]):
        np.testing.assert_array_equal(a, b)
    assert runs["numba"][3] == runs["torch"][3]
    assert runs["numba"][3]["writes"] > 0 and runs["numba"][3]["worn_out"] > 0
    # signed weights (differential pair both ways), three-factor rule
    weights = []
    for backend in ("numba", "torch"):
        net = spiking.load(str(write(tmp_path, READOUT_NET.replace("RULE", ERROR_RULE))),
                           {"projections.readout.hardware": {"device": "pcm"}}, backend=backend,
                           device="cpu")
        target = np.zeros((200, 1, 1), np.float32)
        target[100:120] = 3.0
        for _ in range(3):
            net.reset()
            net.run(signals={"err": target}, progress=False)
        weights.append((net.weights("readout"), net.backend.device_writes("readout")))
    np.testing.assert_array_equal(weights[0][0], weights[1][0])
    np.testing.assert_array_equal(weights[0][1], weights[1][1])
    assert (weights[0][0] < 0).any() and (weights[0][1][..., 1] > 1).any(), "G- devices learn too"


def test_set_weights_writes_the_devices(tmp_path):
    values = {}
    for backend in ("numba", "torch"):
        for device in ("ideal", "rram"):
            path = write(tmp_path, PAIR_NET, UPDATE="additive", PAIRING="all_to_all")
            net = spiking.load(str(path), {"projections.plastic.hardware": {"device": device}},
                               backend=backend, instances=2, device="cpu")
            net.set_weights("plastic", [[0.25], [-0.5]])
            values[backend, device] = (net.weights("plastic"), net.backend.device_writes("plastic"))
    np.testing.assert_array_equal(values["numba", "ideal"][0], [[0.25], [-0.5]])
    # instance 0: G+ rewritten; instance 1: G+ to G_min and G- up
    np.testing.assert_array_equal(values["numba", "ideal"][1], [[[2, 1]], [[2, 2]]])
    for device in ("ideal", "rram"):
        for a, b in zip(values["numba", device], values["torch", device]):
            np.testing.assert_array_equal(a, b)
    # rram: half a level (1/30) plus write noise (σ ≈ 0.05 mid-window)
    assert np.abs(values["numba", "rram"][0] - [[0.25], [-0.5]]).max() < 0.15
