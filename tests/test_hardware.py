"""Resistive-memory hardware emulation: device statistics, quantisation, exactness of the
ideal path, IR drop, reproducibility and bad input."""
import numpy as np
import pytest
import torch

from hardware import (PRESETS, Converter, Crossbar, DeviceArray, get_crossbar_config,
                      get_device, ir_drop_attenuation, quantise_conductance)
from hardware.crossbar import cpu_read_noise
from spiking.errors import ConfigError

N_DEVICES = 100_000


def relative_error(value, expected):
    return abs(value - expected) / abs(expected)


# --------------------------------------------------------------------------- device statistics

@pytest.mark.parametrize("preset, targets", [
    ("rram", [4, 8, 12]),      # level indices
    ("pcm", [5.0, 12.5, 20.0]),  # µS
])
def test_programmed_conductance_matches_model(preset, targets):
    config = get_device(preset)
    for target in targets:
        g_target = float(config.level_values()[target]) if config.levels else target
        devices = DeviceArray(config, N_DEVICES, rng=1)
        g = devices.program(torch.full((N_DEVICES,), g_target), rng=2)
        sigma = float(config.programming.std(torch.tensor(g_target), config.g_max))
        assert relative_error(float(g.mean()), g_target) < 0.05
        assert relative_error(float(g.std()), sigma) < 0.05


def test_read_noise_matches_model():
    config = get_device({"device": "rram", "read_noise": 0.02, "programming_scale": 0,
                         "drift_scale": 0})
    devices = DeviceArray(config, N_DEVICES, rng=1)
    devices.program(torch.full((N_DEVICES,), 20.0), rng=2)
    reads = devices.read(rng=3) - devices.g
    assert relative_error(float(reads.std()), 0.02 * config.g_max) < 0.05
    assert abs(float(reads.mean())) < 0.05 * 0.02 * config.g_max

    # PCM 1/f noise at t = 1 h, relative to each device's own σ_1f(G0, t)
    pcm = get_device({"device": "pcm", "drift_scale": 0})
    devices = DeviceArray(pcm, N_DEVICES, rng=1)
    g0 = devices.program(torch.linspace(2.0, 24.0, N_DEVICES), rng=2)
    t = 3600.0
    z = (devices.conductance(rng=3, t=t) - g0) / (
        g0 * pcm.read.flicker_std(g0, pcm.g_max, torch.full_like(g0, t)))
    assert relative_error(float(z.std()), 1.0) < 0.05


@pytest.mark.parametrize("spec, nu_mean, nu_std", [
    ({"device": "rram", "drift": {"nu_mean": 0.05, "nu_std": 0.01}, "read_noise": 0.002,
      "levels": None}, 0.05, 0.01),
    # aihwkit PCM at G = G_max/2: μ_ν = max(0.0244 − 0.0155 ln 0.5, 0.049) = 0.049, σ_ν = 0.008
    ({"device": "pcm", "read_scale": 0}, 0.049, 0.008),
])
def test_drift_exponent_recovered(spec, nu_mean, nu_std):
    config = get_device(spec)
    devices = DeviceArray(config, N_DEVICES, rng=1)
    devices.program(torch.full((N_DEVICES,), config.g_max / 2), rng=2)
    times = config.drift.t0 * 10.0 ** np.arange(5)
    log_t = torch.tensor(np.log(times / config.drift.t0))
    log_g = torch.stack([devices.read(rng=10 + k, t=t).log() for k, t in enumerate(times)], 1)
    centred = log_t - log_t.mean()
    slopes = ((log_g - log_g.mean(1, keepdim=True)) * centred).sum(1) / (centred ** 2).sum()
    assert relative_error(float(-slopes.mean()), nu_mean) < 0.05
    assert relative_error(float(slopes.std()), nu_std) < 0.05


def test_global_drift_compensation_restores_scale():
    weights = torch.rand(64, 32)
    plain = Crossbar(weights, {"device": "pcm", "drift_compensation": False}, seed=1)
    compensated = Crossbar(weights, "pcm", seed=1)
    for array in (plain, compensated):
        array.set_time(30 * 24 * 3600.0)
    scale_plain = float(plain.effective_weights(read_noise=False).sum() / weights.sum())
    scale_compensated = float(compensated.effective_weights(read_noise=False).sum() / weights.sum())
    assert scale_plain < 0.75
    assert abs(scale_compensated - 1) < 0.02


def test_fault_rates_recovered():
    config = get_device({"device": "rram", "stuck_at_min": 0.02, "stuck_at_max": 0.05})
    n = 1_000_000
    devices = DeviceArray(config, n, rng=1)
    g = devices.program(torch.full((n,), 20.0), rng=2)
    assert relative_error(float(((g == config.g_min) & devices.frozen).float().mean()), 0.02) < 0.05
    assert relative_error(float(((g == config.g_max) & devices.frozen).float().mean()), 0.05) < 0.05
    assert relative_error(float(devices.frozen.float().mean()), 0.07) < 0.05


def test_endurance_freezes_devices_after_their_last_write():
    config = get_device({"device": "ideal", "endurance": 3})
    devices = DeviceArray(config, 10, rng=1)
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        devices.program(torch.full((10,), value), rng=2)
    assert devices.total_writes == 30
    assert torch.equal(devices.g, torch.full((10,), 3.0, dtype=torch.float64))
    assert bool(devices.frozen.all())


def test_stochastic_switching_statistics():
    config = get_device("rram")
    s = config.switching
    devices = DeviceArray(config, N_DEVICES, rng=1)
    g = devices.stochastic_switch(rng=2) / config.g_max
    is_set = g > (s.set_mean + s.reset_mean) / 2
    assert relative_error(float(is_set.float().mean()), s.set_probability) < 0.05
    assert relative_error(float(g[is_set].mean()), s.set_mean) < 0.05
    assert relative_error(float(g[is_set].std()), s.set_std) < 0.05


# --------------------------------------------------------------------------- quantisation

@pytest.mark.parametrize("kind", [np.array, torch.tensor])
def test_converter_quantisation_exact_at_level_boundaries(kind):
    adc = Converter(bits=4, range=1.5)
    levels = adc.levels(dtype=np.float32)  # k · step, k = -7..7
    assert len(levels) == 15 and levels[7] == 0
    as_array = lambda v: kind(np.asarray(v, dtype=np.float32))  # noqa: E731
    to_numpy = lambda a: np.asarray(a)  # noqa: E731
    exact = as_array(levels)
    assert np.array_equal(to_numpy(adc.quantise(exact)), to_numpy(exact))
    # beyond the range: the end levels, exactly
    assert np.array_equal(to_numpy(adc.quantise(as_array([-9.0, 9.0]))),
                          to_numpy(exact)[[0, -1]])
    # just either side of the decision boundary between two levels
    middle = np.float32((levels[8] + levels[9]) / 2)
    below, above = np.nextafter(middle, -np.inf), np.nextafter(middle, np.inf)
    out = to_numpy(adc.quantise(as_array([below, above])))
    assert np.array_equal(out, to_numpy(exact)[[8, 9]])
    # exactly on a boundary (representable when the step is a power of two): half to even
    binary = Converter(bits=4, range=7 / 8)  # step 1/8
    ties = to_numpy(binary.quantise(as_array([1 / 16, 3 / 16, -3 / 16])))
    assert np.array_equal(ties, np.array([0.0, 0.25, -0.25], dtype=np.float32))
    # a 1-bit unsigned DAC is exact on spikes
    dac = Converter(bits=1, range=1.0, signed=False)
    spikes = as_array([0.0, 1.0, 1.0, 0.0])
    assert np.array_equal(to_numpy(dac.quantise(spikes)), to_numpy(spikes))


def test_device_levels_exact_at_boundaries():
    config = get_device({"device": "ideal", "g_min": 0.3, "g_max": 41.7, "levels": 7})
    levels = config.level_values()
    assert levels[0] == 0.3 and levels[-1] == 41.7
    assert torch.equal(quantise_conductance(config, levels), levels)
    middle = float(levels[2] + levels[3]) / 2
    nudged = torch.tensor([middle - 1e-9, middle + 1e-9], dtype=torch.float64)
    assert torch.equal(quantise_conductance(config, nudged), levels[[2, 3]])
    outside = torch.tensor([-5.0, 99.0], dtype=torch.float64)
    assert torch.equal(quantise_conductance(config, outside), levels[[0, -1]])
    # programming a noiseless device to a level lands on it exactly
    devices = DeviceArray(config, 7, rng=1)
    assert torch.equal(devices.program(levels, rng=2), levels)


# --------------------------------------------------------------------------- ideal path

def random_problem(seed, n_in=300, n_out=200, batch=7):
    rng = np.random.default_rng(seed)
    # weights spread over 12 decades, including exact zeros
    weights = (rng.standard_normal((n_in, n_out)) * 10.0 ** rng.uniform(-8, 4, (n_in, n_out)))
    weights[rng.random((n_in, n_out)) < 0.1] = 0
    x = rng.standard_normal((batch, n_in))
    return weights.astype(np.float32), x.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1])
def test_ideal_device_is_bit_exact(seed):
    weights, x = random_problem(seed)
    config = {"device": "ideal", "tile": 64}
    array = Crossbar(weights, config, seed=3)
    assert np.array_equal(array.mvm(x), x @ weights)
    assert np.array_equal(array.mvm(x[0]), x[0] @ weights)
    assert np.array_equal(array.effective_weights(), weights)
    assert np.array_equal(array.read_rows([5, 0, 5]), weights[[5, 0, 5]])
    spikes = x > 0.5
    assert np.array_equal(array.mvm(spikes), spikes.astype(np.float32) @ weights)

    w_t, x_t = torch.from_numpy(weights), torch.from_numpy(x)
    array = Crossbar(w_t, config, seed=3)
    assert torch.equal(array.mvm(x_t), x_t @ w_t)
    assert torch.equal(array.read_rows(torch.tensor([3])), w_t[[3]])


# --------------------------------------------------------------------------- IR drop

def exact_tile_currents(g, wire_resistance, volts=1.0):
    """Nodal analysis of one physical tile (µS, Ω): every row driven at ``volts`` from the
    left, columns sensed at virtual ground below the last row. Returns the cell currents."""
    rows, cols = g.shape
    n = rows * cols
    wire = 1.0 / wire_resistance
    cell = g * 1e-6
    a = np.zeros((2 * n, 2 * n))
    b = np.zeros(2 * n)
    row_node = lambda i, p: i * cols + p  # noqa: E731
    col_node = lambda i, p: n + i * cols + p  # noqa: E731

    def connect(u, v, conductance):
        a[u, u] += conductance
        a[v, v] += conductance
        a[u, v] -= conductance
        a[v, u] -= conductance

    for i in range(rows):
        for p in range(cols):
            connect(row_node(i, p), col_node(i, p), cell[i, p])
            if p + 1 < cols:
                connect(row_node(i, p), row_node(i, p + 1), wire)
            if i + 1 < rows:
                connect(col_node(i, p), col_node(i + 1, p), wire)
        a[row_node(i, 0), row_node(i, 0)] += wire  # driver
        b[row_node(i, 0)] += wire * volts
    for p in range(cols):
        a[col_node(rows - 1, p), col_node(rows - 1, p)] += wire  # sense amplifier
    v = np.linalg.solve(a, b)
    return cell * (v[:n] - v[n:]).reshape(rows, cols)


def test_ir_drop_first_order_matches_circuit():
    g = np.random.default_rng(0).uniform(0, 40, (8, 12))
    errors = []
    for r in (0.5, 1.0, 2.0):
        exact = exact_tile_currents(g, r) / (g * 1e-6)
        model = ir_drop_attenuation(torch.from_numpy(g), r).numpy()
        drop = 1 - exact
        assert np.all(drop > 0)
        assert np.abs(model - exact).max() < 0.05 * drop.max()  # right to first order
        errors.append(np.abs(model - exact).max())
    assert 3.0 < errors[1] / errors[0] < 5.0 and 3.0 < errors[2] / errors[1] < 5.0  # O(r²) error


def test_ir_drop_lowers_outputs_in_the_expected_direction_and_order():
    weights = torch.full((64, 16), 0.5)
    x = torch.ones(3, 64)
    ideal = Crossbar(weights, "ideal").mvm(x)
    ratios = {}
    for r in (0.25, 0.5):
        array = Crossbar(weights, {"device": "ideal", "wire_resistance": r, "w_max": 1.0})
        assert bool((array.mvm(x) < ideal).all())
        ratios[r] = array.effective_weights() / weights
    ratio = ratios[0.5]
    # farther from the row drivers (higher column) and from the sense amplifiers (lower row)
    assert bool((ratio[:, 1:] < ratio[:, :-1]).all()) and bool((ratio[1:] > ratio[:-1]).all())
    # first order: the drop is proportional to the wire resistance ...
    torch.testing.assert_close(1 - ratios[0.5], 2 * (1 - ratios[0.25]))
    # ... and grows as length² along a line of equal cells
    row = torch.full((1, 1, 256), 20.0, dtype=torch.float64)
    short, long = (1 - ir_drop_attenuation(row[..., :n], 1.0)[..., -1].item() for n in (128, 256))
    assert 3.9 < long / short < 4.1
    with pytest.warns(UserWarning, match="first-order model is inaccurate"):
        Crossbar(weights, {"device": "ideal", "wire_resistance": 2.0}).mvm(x)


# --------------------------------------------------------------------------- crossbar behaviour

def test_tiled_adc_quantises_each_tile():
    weights, x = random_problem(0, n_in=200, n_out=30)
    weights = np.clip(weights, -1, 1)
    x = np.clip(x, -1, 1)
    exact = x.astype(np.float64) @ weights
    fine = Crossbar(weights, {"device": "ideal", "tile": 64, "adc": {"bits": 20, "range": 64.0}})
    np.testing.assert_allclose(fine.mvm(x), exact, atol=1e-3, rtol=1e-4)
    coarse = Crossbar(weights, {"device": "ideal", "tile": 64, "adc": {"bits": 7, "range": 32.0}})
    step = 32.0 / 63
    error = np.abs(coarse.mvm(x) - exact)
    assert error.max() <= 4 * step / 2 + 1e-5  # 4 tiles, each off by at most half a step
    assert error.max() > step / 10


def test_noisy_mvm_matches_device_level_noise():
    """Output-referred read noise has the variance of independent device reads."""
    weights = torch.zeros(128, 64)
    array = Crossbar(weights, {"device": "ideal", "read_noise": 0.01, "w_max": 1.0}, seed=1)
    x = torch.rand(2000, 128)
    y = array.mvm(x)
    expected = np.sqrt(2) * 0.01 * (x ** 2).sum(1, keepdim=True).sqrt()
    assert relative_error(float((y / expected).std()), 1.0) < 0.05
    rows = array.read_rows(torch.zeros(2000, dtype=torch.long))
    assert relative_error(float(rows.std()), np.sqrt(2) * 0.01) < 0.05


def test_reprogram_writes_only_changed_devices():
    weights = torch.zeros(8, 4)
    array = Crossbar(weights, {"device": "ideal", "w_max": 1.0}, seed=1)
    assert array.counters.writes == 64
    writes = array.reprogram((torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2])),
                             torch.tensor([0.5, -0.25, 0.0]))
    assert writes == 2  # G⁺ of (0,0), G⁻ of (1,1); (2,2) is unchanged
    expected = weights.clone()
    expected[0, 0], expected[1, 1] = 0.5, -0.25
    assert torch.equal(array.effective_weights(), expected)
    mask = torch.zeros(8, 4, dtype=torch.bool)
    mask[0, 0] = True
    assert array.reprogram(mask, torch.full((8, 4), -0.5)) == 2
    assert float(array.effective_weights()[0, 0]) == -0.5


def test_counters_energy_and_latency():
    array = Crossbar(torch.ones(300, 20), {"device": "ideal", "tile": [128, 8], "adc": 8})
    array.reset_counters()
    x = torch.zeros(4, 300)
    x[:, :10] = 1.0
    array.mvm(x)
    array.read_rows([0, 1])
    c = array.counters
    assert (c.mvms, c.row_reads, c.writes) == (4, 2, 0)
    assert c.synaptic_events == (40 + 2) * 20
    assert c.dac_conversions == (40 + 2) * 3  # active rows × column tiles
    assert c.adc_conversions == 4 * 3 * 20 + 2 * 20  # vectors × row tiles × columns + rows
    energy, model = array.energy(), array.config.energy
    cells = (42 * 20 * 40.0) * model.read_voltage ** 2 * 1e-6 * model.read_pulse * 1e-9 * 1e12
    assert energy["cells"] == pytest.approx(cells)
    assert energy["adc"] == pytest.approx(c.adc_conversions * 12.5)
    assert energy["total"] == pytest.approx(sum(v for k, v in energy.items() if k != "total"))
    assert array.latency()["mvms"] == pytest.approx(4 * (model.read_pulse + model.adc_time))


def test_random_array_from_stochastic_switching():
    array = Crossbar.random(200, 100, {"device": "rram"}, seed=1)
    weights = array.effective_weights(read_noise=False)
    assert abs(float(weights.mean())) < 0.02
    assert 0.4 < float(weights.std()) < 0.8
    assert array.counters.writes == 2 * 200 * 100


def test_yaml_mapping_builds_configs():
    config = get_crossbar_config({"device": "pcm", "read_noise": 0.02, "g_max": 30,
                                  "drift": {"t0": 10}, "adc": {"bits": 8, "range": 4.0},
                                  "dac": 6, "tile": [128, 64], "energy": {"write_energy": 5}})
    assert config.device.name == "pcm" and config.device.read.std == 0.02
    assert config.device.g_max == 30.0 and config.device.drift.t0 == 10.0
    assert config.device.drift.nu_mean == PRESETS["pcm"].drift.nu_mean
    assert (config.adc.bits, config.adc.range, config.dac.bits) == (8, 4.0, 6)
    assert (config.tile_rows, config.tile_cols) == (128, 64)
    assert config.energy.write_energy == 5.0


# --------------------------------------------------------------------------- reproducibility

@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_seed_makes_everything_reproducible(kind):
    weights, x = random_problem(0, n_in=100, n_out=40)
    if kind == "torch":
        weights, x = torch.from_numpy(weights), torch.from_numpy(x)
    spec = {"device": "pcm", "adc": 8, "tile": 32, "wire_resistance": 0.5, "read_noise": 0.01,
            "stuck_at_max": 0.01}

    def run(seed):
        array = Crossbar(weights, spec, seed=seed)
        first = array.mvm(x)
        array.set_time(1000.0)
        return [first, array.mvm(x), array.read_rows(np.array([1, 2])),
                array.effective_weights()]

    same, again, other = run(1), run(1), run(2)
    as_numpy = lambda a: np.asarray(a)  # noqa: E731
    for a, b, c in zip(same, again, other):
        assert np.array_equal(as_numpy(a), as_numpy(b))
        assert not np.array_equal(as_numpy(a), as_numpy(c))
    # an explicit generator gives the same stream whatever its kind of origin
    array = Crossbar(weights, spec, seed=1)
    assert np.array_equal(as_numpy(array.mvm(x, rng=7)), as_numpy(array.mvm(x, rng=7)))
    assert np.array_equal(
        as_numpy(array.mvm(x, rng=torch.Generator().manual_seed(5))),
        as_numpy(array.mvm(x, rng=torch.Generator().manual_seed(5))))


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("spec, path, words", [
    ({"device": "rram", "g_min": 50}, "hardware.g_min", "below g_max"),
    ({"device": "rram", "g_max": 0.0}, "hardware.g_min", "below g_max"),
    ({"device": "rram", "read_noise": -0.01}, "hardware.read.std", ">= 0"),
    ({"device": "rram", "programming": {"coefficients": [-0.1, 0.05]}},
     "hardware.programming.coefficients", "negative"),
    ({"device": "rram", "drift": {"nu_std": -0.01}}, "hardware.drift.nu_std", "negative"),
    ({"device": "rram", "stuck_at_min": 1.5}, "hardware.faults.stuck_at_min", "<= 1"),
    ({"device": "rram", "levels": 1}, "hardware.levels", "integer >= 2"),
    ({"device": "rram", "levels": 64, "adc": 6, "strict": True}, "hardware.adc.bits",
     "strict"),
    ({"device": "pcm", "adc": 8, "strict": True}, "hardware.adc.bits", "continuous"),
    ({"device": "rram", "read_nosie": 0.01}, "hardware.read_nosie", "did you mean 'read_noise'"),
    ({"device": "rrm"}, "hardware.device", "did you mean 'rram'"),
    ({"device": "rram", "adc": {"bitz": 8}}, "hardware.adc.bitz", "did you mean 'bits'"),
    ({"device": "rram", "dac": {"bits": 8, "range": None}}, "hardware.dac.range", "range"),
])
def test_impossible_parameters_raise_config_error(spec, path, words):
    with pytest.raises(ConfigError) as error:
        get_crossbar_config(spec)
    assert error.value.path == path
    assert words in str(error.value)


def test_strict_mode_accepts_resolvable_levels():
    assert get_crossbar_config({"device": "rram", "adc": 6, "strict": True}).adc.bits == 6
    assert get_crossbar_config({"device": "rram", "levels": 64, "adc": 6}).adc.bits == 6


def test_weight_scale_that_saturates_every_device():
    weights = np.array([[0.0, 0.5], [-0.8, 2.0]])
    with pytest.raises(ConfigError, match="every device would saturate") as error:
        Crossbar(weights, {"device": "rram", "w_max": 0.1})
    assert error.value.path == "w_max"
    Crossbar(weights, {"device": "rram", "w_max": 1.0})  # some weights clip: allowed


def test_cpu_read_noise_is_standard_normal_and_varies_per_read():
    reads = [cpu_read_noise((64, 1000), torch.float32, np.random.default_rng(k))
             for k in range(2)]
    for noise in reads:
        assert abs(float(noise.mean())) < 0.01 and abs(float(noise.std()) - 1) < 0.01
    assert abs(float(torch.corrcoef(torch.stack([r.reshape(-1) for r in reads]))[0, 1])) < 0.01
    assert cpu_read_noise((2, 3_000_000), torch.float32, 1).shape == (2, 3_000_000)  # fresh


def test_crossbar_leaves_the_callers_weights_alone():
    weights = np.zeros((4, 3))
    array = Crossbar(weights, {"device": "ideal", "w_max": 1.0})
    array.reprogram((np.array([0]), np.array([0])), [0.5])
    assert weights[0, 0] == 0


# --------------------------------------------------------------------------- GPU

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_arrays():
    weights, x = random_problem(0)
    w_t, x_t = torch.from_numpy(weights).cuda(), torch.from_numpy(x).cuda()
    array = Crossbar(w_t, {"device": "ideal", "tile": 64})
    assert array.devices.g.is_cuda
    assert torch.equal(array.mvm(x_t), x_t @ w_t)
    noisy = Crossbar(w_t, {"device": "rram", "adc": 8, "dac": {"bits": 8, "range": 4.0}}, seed=1)
    y = noisy.mvm(x_t)
    assert y.is_cuda and torch.isfinite(y).all()
    assert torch.equal(y, Crossbar(w_t, {"device": "rram", "adc": 8,
                                         "dac": {"bits": 8, "range": 4.0}}, seed=1).mvm(x_t))
