"""Network files: units, schema and loader errors (file, line, key path)."""
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from spiking.config import NetworkConfig, load_config, parse_quantity, register_section
from spiking.config.schema import CONNECTORS, SECTIONS
from spiking.config.values import Constant, Distribution, Expression
from spiking.errors import ConfigError
from spiking.models.base import MODELS, ModelInfo, Param, StateVar

TOY = ModelInfo(
    name="toy", kind="neuron",
    params={
        "tau_m": Param("time", 20.0, low=0.0, low_exclusive=True),
        "tau_refrac": Param("time", 0.1, low=0.0),
        "v_rest": Param("voltage", -65.0),
        "i_offset": Param("current", 0.0),
    },
    state={"v": StateVar("voltage", "v_rest"), "i_syn_E": StateVar("current", 0.0)},
    receptors=("excitatory", "inhibitory", "v"),
    receptor_dimensions={"excitatory": "current", "inhibitory": "current", "v": "voltage"},
    options={"scheme": ("exact", "euler")},
)
TOY_SOURCE = ModelInfo(name="toy_source", kind="source",
                       params={"rate": Param("rate", None, low=0.0)})

NET = """\
name: toy net
dt: 0.1 ms
duration: 200 ms
populations:
  E:
    size: 8
    model: toy
    params: {tau_m: 10 ms, i_offset: 500 pA, scheme: euler}
    initial:
      v: {distribution: uniform, low: -70 mV, high: -50 mV}
  I:
    size: 2
    model: toy
    initial: {v: {expr: "-65 + 5 * r"}}
  P:
    size: 4
    model: toy_source
    params: {rate: 5 Hz}
projections:
  PE:
    pre: P
    post: E
    connector: {type: fixed_probability, p: 0.5}
    weight: 0.2 nA
  IE:
    pre: I
    post: E
    receptor_type: v
    connector: {type: all_to_all}
    weight: -1 mV
    delay: 1 ms
monitors:
  - {type: spikes, population: E, neurons: [0, 7]}
  - {type: state, population: E, variables: [v]}
  - {type: rate, population: P}
"""


@pytest.fixture(autouse=True)
def toy_models():
    MODELS.update({m.name: m for m in (TOY, TOY_SOURCE)})
    yield
    for m in (TOY, TOY_SOURCE):
        MODELS.pop(m.name, None)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line of ``path`` containing ``needle``."""
    hits = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return hits[nth - 1]


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def with_populations(text: str, block: str) -> str:
    """``text`` with more populations (indented lines) after the existing ones."""
    more = textwrap.indent(textwrap.dedent(block), "  ")
    return edit(text, "projections:\n", more + "projections:\n")


def error(path: Path, overrides=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value


# ---------------------------------------------------------------- units

@pytest.mark.parametrize("value, dimension, expected", [
    ("20 ms", "time", 20.0), ("1.5e-3 s", "time", 1.5), ("200 µs", "time", 0.2),
    ("200 us", "time", 0.2), ("-65 mV", "voltage", -65.0), ("0.5nA", "current", 0.5),
    ("500 pA", "current", 0.5), ("5 Hz", "rate", 5.0), ("1 kHz", "rate", 1000.0),
    ("10 nS", "conductance", 0.01), ("1 GOhm", "resistance", 1000.0), ("2 mm", "length", 2000.0),
    (3, "time", 3.0), ("inf", "time", float("inf")), (0.25, "dimensionless", 0.25),
    ("1e-3", "dimensionless", 0.001),
])
def test_parse_quantity_converts_to_base_units(value, dimension, expected):
    assert parse_quantity(value, dimension) == pytest.approx(expected)


@pytest.mark.parametrize("value, dimension, message", [
    ("5 mV", "time", "expected a time (e.g. '20 ms'), got '5 mV' (a voltage)"),
    ("5 mv", "voltage", "unknown unit 'mv' in '5 mv'; did you mean 'mV'?"),
    ("abc", "time", "expected a time (e.g. '20 ms'), got 'abc'"),
    (True, "time", "got True"),
    ("3 ms", "dimensionless", "expected a dimensionless number"),
])
def test_parse_quantity_rejects(value, dimension, message):
    with pytest.raises(ValueError) as info:
        parse_quantity(value, dimension)
    assert message in str(info.value)


# ---------------------------------------------------------------- a good file

def test_good_file_is_converted(tmp_path):
    config = load_config(write(tmp_path, "net.yaml", NET))
    assert isinstance(config, NetworkConfig)
    assert config.source_file == str(tmp_path / "net.yaml")
    assert (config.dt, config.duration, config.backend) == (0.1, 200.0, "numba")
    e = config.populations["E"]
    assert e.params == {"tau_m": Constant(10.0), "i_offset": Constant(0.5)}
    assert e.options == {"scheme": "euler"}
    assert e.initial["v"] == Distribution("uniform", {"low": -70.0, "high": -50.0})
    assert config.populations["I"].initial["v"] == Expression("-65 + 5 * r")
    assert config.populations["P"].params["rate"] == Constant(5.0)
    pe, ie = config.projections["PE"], config.projections["IE"]
    assert pe.connector.p == 0.5 and pe.connector.allow_self_connections
    assert (pe.weight, pe.delay) == (Constant(0.2), Constant(0.1))  # delay defaults to dt
    assert (ie.weight, ie.delay) == (Constant(-1.0), Constant(1.0))
    spikes, state, rate = config.monitors
    assert spikes.neurons == [0, 7] and state.every == 0.1 and rate.bin == 1.0


# ---------------------------------------------------------------- errors: file, line, key path

@pytest.mark.parametrize("old, new, needle, path, message", [
    ("tau_m: 10 ms", "tau_mem: 10 ms", "tau_mem", "populations.E.params.tau_mem",
     "unknown toy parameter 'tau_mem'; did you mean 'tau_m'?"),
    ("duration: 200 ms", "duration: 200 mV", "duration", "duration",
     "expected a time (e.g. '20 ms'), got '200 mV' (a voltage)"),
    ("tau_m: 10 ms", "tau_m: 5 mV", "tau_m", "populations.E.params.tau_m",
     "expected a time"),
    ("size: 8", "size: eight", "size: eight", "populations.E.size",
     "expected an integer, got 'eight'"),
    ("size: 8", "size: -3", "size: -3", "populations.E.size", "must be >= 1, got -3"),
    ("model: toy_source", "model: lif_typo", "lif_typo", "populations.P.model",
     "unknown neuron model 'lif_typo'; registered models:"),
    ("type: fixed_probability", "type: fixed_prob", "fixed_prob", "projections.PE.connector.type",
     "unknown connector type 'fixed_prob'; did you mean 'fixed_probability'?"),
    ("pre: P", "pre: Q", "pre: Q", "projections.PE.pre",
     "unknown population 'Q'; valid: E, I, P"),
    ("delay: 1 ms", "delay: 0.05 ms", "delay", "projections.IE.delay",
     "must be >= dt (0.1 ms), got 0.05 ms"),
    ("delay: 1 ms", "delay: 0.15 ms", "delay", "projections.IE.delay",
     "must be a whole number of steps of dt (0.1 ms)"),
    ('{expr: "-65 + 5 * r"}', '{expr: "__import__(\'os\').system(\'ls\')"}', "__import__",
     "populations.I.initial.v.expr", "only calls to exp"),
    ('{expr: "-65 + 5 * r"}', '{expr: "r.__class__"}', "__class__",
     "populations.I.initial.v.expr", "Attribute is not allowed"),
    ('{expr: "-65 + 5 * r"}', '{expr: "-65 + q"}', "-65 + q",
     "populations.I.initial.v.expr", "unknown name 'q'"),
    ("high: -50 mV", "hi: -50 mV", "hi:", "populations.E.initial.v.hi",
     "unknown argument of uniform 'hi'; did you mean 'high'?"),
    ("post: E\n    connector: {type: fixed", "post: P\n    connector: {type: fixed", "post: P",
     "projections.PE.post", "is a spike source (toy_source) and cannot receive projections"),
    ("receptor_type: v", "receptor_type: gaba", "gaba", "projections.IE.receptor_type",
     "unknown toy receptor 'gaba'"),
    ("weight: -1 mV", "weight: -1 nA", "weight: -1 nA", "projections.IE.weight",
     "expected a voltage"),
    ("params: {rate: 5 Hz}", "params: {}", "params: {}", "populations.P.params.rate",
     "required parameter is missing"),
    ("tau_m: 10 ms", "tau_m: 0 ms", "tau_m", "populations.E.params.tau_m",
     "must be > 0 ms, got 0 ms"),
    ("scheme: euler", "scheme: rk4", "scheme", "populations.E.params.scheme",
     "must be one of exact, euler; got 'rk4'"),
    ("variables: [v]", "variables: [v, w]", "variables", "monitors.1.variables.1",
     "unknown toy state variable 'w'"),
    ("neurons: [0, 7]", "neurons: [0, 8]", "neurons", "monitors.0.neurons", "has only 8 neurons"),
    ("type: rate", "type: rates", "rates", "monitors.2.type",
     "unknown monitor type 'rates'; did you mean 'rate'? (valid: spikes, state, rate, weights)"),
    ("duration: 200 ms", "duration: 200 ms\nwhatever: 3", "whatever", "whatever",
     "unknown key 'whatever'; valid: name, description, dt, duration, seed, backend"),
])
def test_error_names_file_line_and_key(tmp_path, old, new, needle, path, message):
    file = write(tmp_path, "net.yaml", edit(NET, old, new))
    err = error(file)
    assert (err.file, err.line, err.path) == (str(file), line_of(file, needle), path), str(err)
    assert message in err.message
    assert str(err).startswith(f"{file}:{err.line}: {path}: ")


def test_missing_required_key_points_at_its_mapping(tmp_path):
    file = write(tmp_path, "net.yaml", edit(NET, "    size: 2\n", ""))
    err = error(file)
    assert (err.line, err.path, err.message) == (line_of(file, "  I:"), "populations.I.size",
                                                 "required key is missing")


def test_missing_weight_and_populations(tmp_path):
    file = write(tmp_path, "net.yaml", edit(NET, "    weight: 0.2 nA\n", ""))
    err = error(file)
    assert (err.line, err.path) == (line_of(file, "  PE:"), "projections.PE.weight")
    err = error(write(tmp_path, "empty.yaml", "dt: 1 ms\n"))
    assert (err.line, err.path, err.message) == (1, "populations", "required key is missing")


def test_distribution_with_missing_argument(tmp_path):
    file = write(tmp_path, "net.yaml", edit(NET, ", high: -50 mV", ""))
    err = error(file)
    assert (err.line, err.path) == (line_of(file, "distribution"), "populations.E.initial.v")
    assert "distribution 'uniform' takes low, high; missing high" in err.message


def test_unknown_connector_lists_all(tmp_path):
    file = write(tmp_path, "net.yaml", edit(NET, "type: all_to_all", "type: everything"))
    assert error(file).message == ("unknown connector type 'everything'; valid: "
                                   + ", ".join(CONNECTORS))


def test_yaml_syntax_error_and_duplicate_key(tmp_path):
    file = write(tmp_path, "net.yaml", edit(NET, "  I:\n", "  I: [\n"))
    err = error(file)
    assert err.file == str(file) and "invalid YAML" in err.message
    assert line_of(file, "  I: [") <= err.line <= line_of(file, "  P:")
    file = write(tmp_path, "dup.yaml", edit(NET, "model: toy\n", "model: toy\n    size: 3\n"))
    err = error(file)
    assert (err.line, err.path) == (line_of(file, "size: 3"), "populations.E.size")
    assert err.message == f"duplicate key 'size' (first written on line {line_of(file, 'size: 8')})"


def test_not_a_mapping_and_missing_file(tmp_path):
    assert "must be a mapping" in error(write(tmp_path, "list.yaml", "- 1\n- 2\n")).message
    assert "cannot read the file" in error(tmp_path / "nothere.yaml").message


# ---------------------------------------------------------------- base: inheritance

def test_base_merges_overrides_and_deletes(tmp_path):
    write(tmp_path, "base.yaml", NET)
    child = write(tmp_path / "sub", "child.yaml", """\
        base: ../base.yaml
        duration: 50 ms
        populations:
          E: {size: 4}
          I: null
        projections: {IE: null}
        monitors: [{type: rate, population: E}]
        """)
    config = load_config(child)
    assert config.duration == 50.0 and config.name == "toy net"
    assert config.populations["E"].size == 4
    assert config.populations["E"].params["tau_m"] == Constant(10.0)  # kept from base
    assert set(config.populations) == {"E", "P"} and set(config.projections) == {"PE"}
    assert [m.type for m in config.monitors] == ["rate"]


def test_base_errors_point_at_the_file_that_set_the_key(tmp_path):
    base = write(tmp_path, "base.yaml", edit(NET, "tau_m: 10 ms", "tau_m: 10 mV"))
    child = write(tmp_path, "child.yaml", "base: base.yaml\nduration: -1 ms\n")
    err = error(child)
    assert (err.file, err.line, err.path) == (str(child), 2, "duration")
    write(tmp_path, "child.yaml", "base: base.yaml\nseed: 2\n")
    err = error(child)
    assert (err.file, err.line, err.path) == (str(base), line_of(base, "tau_m"),
                                              "populations.E.params.tau_m")


def test_base_cycle_and_missing_base(tmp_path):
    a = write(tmp_path, "a.yaml", "base: b.yaml\n")
    write(tmp_path, "b.yaml", "seed: 1\nbase: a.yaml\n")
    err = error(a)
    assert (err.file, err.line, err.path) == (str(tmp_path / "b.yaml"), 2, "base")
    assert "cycle: a.yaml -> b.yaml -> a.yaml" in err.message
    err = error(write(tmp_path, "c.yaml", "seed: 1\nbase: nothere.yaml\n"))
    assert (err.line, err.path) == (2, "base") and "base file not found" in err.message


# ---------------------------------------------------------------- --set overrides

def test_overrides_are_parsed_as_yaml(tmp_path):
    file = write(tmp_path, "net.yaml", NET)
    config = load_config(file, ["duration=10 s", "populations.E.size=100", "seed=3",
                                "monitors.0.neurons=[1,2]", "projections.IE=null"])
    assert (config.duration, config.populations["E"].size, config.seed) == (10000.0, 100, 3)
    assert config.monitors[0].neurons == [1, 2] and "IE" not in config.projections
    assert load_config(file, {"populations.E.params.tau_m": "5 ms"}).populations["E"].params[
        "tau_m"] == Constant(5.0)


@pytest.mark.parametrize("override, message", [
    ("nokey", "malformed override 'nokey'"),
    ("=3", "malformed override '=3'"),
    ("seed=", "malformed override 'seed='"),
    ("a..b=1", "malformed override key 'a..b'"),
    ("seed=[1,", "invalid YAML value"),
    ("monitors.7.population=E", "monitors is a list of 3; '7' is not an index of it"),
    ("dt.x=1", "dt is 0.1, not a mapping"),
])
def test_malformed_overrides(tmp_path, override, message):
    err = error(write(tmp_path, "net.yaml", NET.replace("dt: 0.1 ms", "dt: 0.1")), [override])
    assert message in str(err)


def test_overridden_keys_are_located_as_set(tmp_path):
    err = error(write(tmp_path, "net.yaml", NET), ["populations.E.size=0"])
    assert str(err) == "--set populations.E.size: populations.E.size: must be >= 1, got 0"
    err = error(write(tmp_path, "net.yaml", NET), ["populations.E.tau_m=3"])
    assert (err.file, err.path) == ("--set populations.E.tau_m", "populations.E.tau_m")
    assert err.message == "unknown key 'tau_m'; valid: size, model, params, initial, positions"


# ---------------------------------------------------------------- grids, files, sections

def test_grid_checks(tmp_path):
    text = edit(NET, "populations:\n", "grids:\n  cube: {shape: [2, 2, 2]}\npopulations:\n")
    on_grid = with_populations(text, "G: {size: 8, model: toy, positions: {grid: cube}}\n")
    assert load_config(write(tmp_path, "net.yaml", on_grid)).grids["cube"].spacing == 1.0
    file = write(tmp_path, "net.yaml", with_populations(
        on_grid, "H: {size: 1, model: toy, positions: {grid: cube}}\n"))
    err = error(file)
    assert (err.path, err.line) == ("grids.cube", line_of(file, "cube: {"))
    assert err.message == "has 8 sites but populations G, H need 9"
    err = error(write(tmp_path, "net.yaml", edit(on_grid, "grid: cube", "grid: cub")))
    assert err.path == "populations.G.positions.grid" and "did you mean 'cube'" in err.message
    err = error(write(tmp_path, "net.yaml", edit(text, "shape: [2, 2, 2]", "shape: [2, 2]")))
    assert err.path == "grids.cube.shape" and "expected 3 positive integers" in err.message


def test_spike_times_and_relative_files(tmp_path):
    text = with_populations(NET, """\
        S: {size: 2, model: spike_source_array, params: {spike_times: [[1 ms, 2], []]}}
        F: {size: 3, model: event_source, params: {file: ev.npz}}
        """)
    write(tmp_path, "net.yaml", text)
    config = load_config(write(tmp_path / "sub", "child.yaml", "base: ../net.yaml\n"))
    assert config.populations["S"].options == {"spike_times": [[1.0, 2.0], []]}
    assert config.populations["F"].options == {"file": str(tmp_path / "ev.npz")}
    err = error(write(tmp_path, "bad.yaml", edit(text, "[[1 ms, 2], []]", "[[1 ms], [-2 ms]]")))
    assert err.path == "populations.S.params.spike_times.1.0" and "must be >= 0 ms" in err.message
    err = error(write(tmp_path, "bad.yaml", edit(text, "[[1 ms, 2], []]", "[[1 ms]]")))
    assert err.message == "has 1 lists of times for 2 neurons"


class ToySection(BaseModel):
    model_config = {"extra": "forbid"}
    gain: float


def test_registered_section(tmp_path):
    register_section("toy_section", ToySection)
    try:
        file = write(tmp_path, "net.yaml", NET + "toy_section:\n  gain: 2\n")
        assert load_config(file).sections["toy_section"].gain == 2.0
        file = write(tmp_path, "net.yaml", NET + "toy_section:\n  gain: 2\n  gian: 3\n")
        err = error(file)
        assert (err.line, err.path) == (line_of(file, "gian"), "toy_section.gian")
        assert err.message == "unknown key 'gian'"
        assert "did you mean 'toy_section'" in str(error(write(tmp_path, "n.yaml",
                                                               NET + "toy_sectoin: {}\n")))
        with pytest.raises(ValueError):
            register_section("populations", ToySection)
    finally:
        SECTIONS.pop("toy_section")
