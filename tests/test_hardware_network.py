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


def test_bad_hardware_block(tmp_path):
    with pytest.raises(ConfigError, match=r"projections\.EE\.hardware"):
        load(tmp_path, {"device": "rram", "g_min": 50, "g_max": 10})
    with pytest.raises(ConfigError, match="did you mean"):
        load(tmp_path, {"device": "rram", "read_nosie": 0.1})
