"""Pydantic models of a network file; they mirror docs/yaml.md one to one.

Every physical value is converted to base units (ms, mV, nA, ...) here, and
every per-neuron or per-synapse value to a :data:`ValueSpec`. Checks that need
other sections (a projection's populations, a delay against ``dt``) read what
:class:`NetworkConfig` validated before them from the validation context, so
sections are validated in the order they are declared. A problem at a known
key raises :class:`FieldError` with the path below the object being validated;
the loader turns it into a ConfigError with file and line.
"""
import difflib
import math
import re
from contextlib import contextmanager
from typing import (Annotated, Any, Callable, ClassVar, Dict, Iterable, Iterator, List, Literal,
                    NamedTuple, Optional, Sequence, Tuple, Type, Union, get_args)

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StrictBool,
                      StrictInt, StrictStr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from spiking.config.units import format_quantity, parse_quantity
from spiking.config.values import DISTRIBUTIONS, Constant, Distribution, Expression, ValueSpec
from spiking.models.base import ModelInfo, Param, get_model

# Names an expression may read (besides numpy functions), see docs/yaml.md.
NEURON_NAMES = ("r", "i", "n")
POSITION_NAMES = ("x", "y", "z")
SYNAPSE_NAMES = ("d", "i", "j")
# Keys holding file names, as dotted patterns; the loader makes them relative
# to the folder of the file that writes them.
PATH_KEYS = ("populations.*.params.file", "populations.*.params.spike_times.file",
             "projections.*.connector.file")
STEP_TOLERANCE = 1e-6  # relative: how far from a whole number of steps a time may be


class FieldError(ValueError):
    """A problem at ``path`` (keys and list indices) below the object being validated.

    When it wraps the ValidationError of a nested model, that error is its
    ``__cause__``.
    """

    def __init__(self, message: str, *path: Union[str, int]):
        super().__init__(message)
        self.path = path


@contextmanager
def at(*path: Union[str, int]) -> Iterator[None]:
    """Re-raise a ValueError from the block as a FieldError located at ``path``."""
    try:
        yield
    except FieldError as e:
        raise FieldError(str(e), *path, *e.path) from e.__cause__
    except ValueError as e:
        raise FieldError(str(e), *path) from None


def unknown(what: str, name: object, valid: Iterable[str], always_list: bool = False) -> str:
    """``"unknown key 'tau_mem'; did you mean 'tau_m'?"``; lists ``valid`` when nothing
    is close (or always, with ``always_list``)."""
    valid = list(valid)
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.6)
    listing = f"valid: {', '.join(valid) or 'none'}"
    if not close:
        return f"unknown {what} {name!r}; {listing}"
    return f"unknown {what} {name!r}; did you mean {close[0]!r}?" + (
        f" ({listing})" if always_list else "")


def check_keys(data: dict, valid: Sequence[str], what: str = "key") -> None:
    for key in data:
        if key not in valid:
            raise FieldError(unknown(what, key, valid), key)


def check_tag(item: Any, names: Sequence[str], what: str) -> None:
    """Check the ``type`` of a connector or monitor mapping; the error lists ``names``."""
    if not isinstance(item, dict):
        return
    if "type" not in item:
        raise FieldError(f"required key is missing; {what} types: {', '.join(names)}", "type")
    if item["type"] not in names:
        raise FieldError(unknown(f"{what} type", item["type"], names, always_list=True), "type")


def check_bounds(value: float, dimension: str, low: Optional[float] = None,
                 high: Optional[float] = None, low_exclusive: bool = False) -> None:
    """ValueError unless low <= value <= high (low < value when ``low_exclusive``)."""
    too_low = low is not None and (value <= low if low_exclusive else value < low)
    if too_low:
        sign = ">" if low_exclusive else ">="
        raise ValueError(f"must be {sign} {format_quantity(low, dimension)}, "
                         f"got {format_quantity(value, dimension)}")
    if high is not None and value > high:
        raise ValueError(f"must be <= {format_quantity(high, dimension)}, "
                         f"got {format_quantity(value, dimension)}")


def check_steps(value: float, dt: Optional[float]) -> None:
    """ValueError unless the time ``value`` (ms) is a whole number >= 1 of steps ``dt``."""
    if dt is None:
        return
    steps = value / dt
    if steps < 1 - STEP_TOLERANCE:
        raise ValueError(f"must be >= dt ({format_quantity(dt, 'time')}), "
                         f"got {format_quantity(value, 'time')}")
    if abs(steps - round(steps)) > STEP_TOLERANCE * steps:
        raise ValueError(f"must be a whole number of steps of dt ({format_quantity(dt, 'time')}), "
                         f"got {format_quantity(value, 'time')}")


def quantity_at(path: Tuple[Union[str, int], ...], value: Any, dimension: str,
                low: Optional[float] = None) -> float:
    """``value`` in base units, >= ``low``; errors are located at ``path``."""
    with at(*path):
        number = parse_quantity(value, dimension)
        check_bounds(number, dimension, low)
        return number


def Quantity(dimension: str, low: Optional[float] = None, high: Optional[float] = None,
             low_exclusive: bool = False) -> Any:
    """Type of a float written with a unit of ``dimension``, converted to its base unit."""
    def convert(value: object) -> float:
        number = parse_quantity(value, dimension)
        check_bounds(number, dimension, low, high, low_exclusive)
        return number
    return Annotated[float, BeforeValidator(convert)]


Time = Quantity("time")
PositiveTime = Quantity("time", low=0.0, low_exclusive=True)
Fraction = Quantity("dimensionless", low=0.0, high=1.0)
NonNegInt = Annotated[StrictInt, Field(ge=0)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]


# ---------------------------------------------------------------- values

def _is_spec(value: Any) -> ValueSpec:
    if isinstance(value, (Constant, Distribution, Expression)):
        return value
    raise ValueError("cannot convert this value outside of a network file")


Spec = Annotated[ValueSpec, PlainValidator(_is_spec)]
"""A ValueSpec field; values are converted by the owning model's ``prepare``."""


def value_spec(value: Any, dimension: str, names: Sequence[str]) -> ValueSpec:
    """Convert a written value (constant, ``{distribution: ...}`` or ``{expr: ...}``).

    Numbers end up in the base unit of ``dimension``; ``names`` are the
    variables an expression may read.
    """
    if not isinstance(value, dict):
        return Constant(parse_quantity(value, dimension))
    if "distribution" in value:
        return _distribution(value, dimension)
    if "expr" in value:
        return _expression(value, names)
    raise ValueError("a mapping here must be {distribution: ...} or {expr: ...}")


def _distribution(value: dict, dimension: str) -> Distribution:
    name = value["distribution"]
    if not isinstance(name, str) or name not in DISTRIBUTIONS:
        raise FieldError(unknown("distribution", name, DISTRIBUTIONS, always_list=True),
                         "distribution")
    args = {k: v for k, v in value.items() if k != "distribution"}
    check_keys(args, DISTRIBUTIONS[name], what=f"argument of {name}")
    arg_dimension = "dimensionless" if name == "lognormal" else dimension
    return Distribution(name, {key: quantity_at((key,), arg, arg_dimension)
                               for key, arg in args.items()})


def _expression(value: dict, names: Sequence[str]) -> Expression:
    check_keys(value, ("expr",))
    text = value["expr"]
    if not isinstance(text, str):
        raise FieldError(f"expected an expression string, got {text!r}", "expr")
    with at("expr"):
        expr = Expression(text)
        unknown_names = sorted(expr.names() - set(names))
        if unknown_names:
            raise ValueError(f"expression {text!r} reads unknown name {unknown_names[0]!r}; "
                             f"available: {', '.join(names)}")
    return expr


# ---------------------------------------------------------------- base class

class Section(BaseModel):
    """Base of every config model: unknown keys get a suggestion, then ``prepare`` runs."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    internal_fields: ClassVar[Tuple[str, ...]] = ()  # fields the file may not set

    @classmethod
    def keys(cls) -> List[str]:
        """The keys a file may write."""
        return [f.alias or name for name, f in cls.model_fields.items()
                if name not in cls.internal_fields]

    @model_validator(mode="before")
    @classmethod
    def _check_and_prepare(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        check_keys(data, cls.keys())
        return cls.prepare(dict(data), info.context if info.context is not None else {})

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        """Convert raw ``data`` before field validation; ``context`` holds what the
        network validated so far (``dt``, ``grids``, ``populations``)."""
        return data


def model_info(name: str) -> ModelInfo:
    """The registered model ``name``, as a ValueError listing the registered ones."""
    try:
        return get_model(name)
    except KeyError as e:
        raise ValueError(e.args[0]) from None


def population(context: dict, data: dict, key: str) -> Optional["PopulationConfig"]:
    """The validated population that ``data[key]`` names, or None if populations are
    not validated (their own error is reported first) or the name is not a string."""
    populations = context.get("populations")
    name = data.get(key)
    if populations is None or not isinstance(name, str):
        return None
    if name not in populations:
        raise FieldError(unknown("population", name, populations, always_list=True), key)
    return populations[name]


# ---------------------------------------------------------------- grids and populations

def _three_sizes(value: Any) -> Any:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"expected 3 positive integers [x, y, z], got {value!r}")
    return value


class GridConfig(Section):
    """A 3-D grid of sites that populations are placed on."""

    shape: Annotated[Tuple[PositiveInt, PositiveInt, PositiveInt], BeforeValidator(_three_sizes)]
    spacing: Quantity("length", low=0.0, low_exclusive=True) = 1.0  # um

    @property
    def sites(self) -> int:
        return math.prod(self.shape)


class PositionsConfig(Section):
    grid: StrictStr

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        grids = context.get("grids")
        if grids is not None and isinstance(data.get("grid"), str) and data["grid"] not in grids:
            raise FieldError(unknown("grid", data["grid"], grids, always_list=True), "grid")
        return data


class DataParam(NamedTuple):
    """A non-numeric model input kept in ``PopulationConfig.options``."""

    parse: Callable[[Any, Any], Any]  # (value, population size) -> stored value
    required: bool


def _file_name(value: Any, size: Any = None) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a file name, got {value!r}")
    return value


def _spike_times(value: Any, size: Any) -> Union[List[List[float]], Dict[str, str]]:
    """One list of times (ms, >= 0) per neuron, or ``{file: name.npz}``."""
    if isinstance(value, dict):
        check_keys(value, ("file",))
        with at("file"):
            return {"file": _file_name(value.get("file"))}
    if not isinstance(value, list) or not all(isinstance(times, list) for times in value):
        raise ValueError("expected one list of times per neuron ([[1 ms, 5 ms], []]) "
                         "or {file: spikes.npz}")
    if isinstance(size, int) and len(value) != size:
        raise ValueError(f"has {len(value)} lists of times for {size} neurons")
    return [[quantity_at((i, k), t, "time", low=0.0) for k, t in enumerate(times)]
            for i, times in enumerate(value)]


# model name -> its non-numeric parameters (written under ``params``).
DATA_PARAMS: Dict[str, Dict[str, DataParam]] = {
    "spike_source_array": {"spike_times": DataParam(_spike_times, required=True)},
    "event_source": {"file": DataParam(_file_name, required=False)},
}


def _param_value(value: Any, param: Param, names: Sequence[str]) -> ValueSpec:
    spec = value_spec(value, param.dimension, names)
    if isinstance(spec, Constant):
        check_bounds(spec.value, param.dimension, param.low, param.high, param.low_exclusive)
    return spec


def _option(value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}; got {value!r}")
    return value


class PopulationConfig(Section):
    """A group of neurons (or spike sources) of one model.

    ``params`` holds the numeric parameters the file sets (the model's defaults
    apply to the others); ``options`` the non-numeric ones: choices such as
    ``scheme`` (a string) and inputs such as ``spike_times`` (lists of ms, or
    ``{file: path}``) and ``file``. The file writes both under ``params``.
    """

    size: PositiveInt
    model: StrictStr
    params: Dict[str, Spec] = {}
    initial: Dict[str, Spec] = {}
    positions: Optional[PositionsConfig] = None
    options: Dict[str, Any] = {}
    internal_fields = ("options",)

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        if not isinstance(data.get("model"), str):
            return data
        with at("model"):
            info = model_info(data["model"])
        names = NEURON_NAMES + (POSITION_NAMES if data.get("positions") else ())
        if isinstance(data.get("params", {}), dict):
            with at("params"):
                data["params"], data["options"] = _split_params(
                    info, data.get("params", {}), names, data.get("size"))
        if isinstance(data.get("initial"), dict):
            with at("initial"):
                check_keys(data["initial"], list(info.state), what=f"{info.name} state variable")
                data["initial"] = {key: _state_value(value, info.state[key].dimension, key, names)
                                   for key, value in data["initial"].items()}
        return data


def _state_value(value: Any, dimension: str, key: str, names: Sequence[str]) -> ValueSpec:
    with at(key):
        return value_spec(value, dimension, names)


def _split_params(info: ModelInfo, raw: dict, names: Sequence[str],
                  size: Any) -> Tuple[Dict[str, ValueSpec], Dict[str, Any]]:
    """Split a population's ``params`` into numeric values and options."""
    data_params = DATA_PARAMS.get(info.name, {})
    check_keys(raw, [*info.params, *info.options, *data_params], what=f"{info.name} parameter")
    required = [k for k, p in info.params.items() if p.default is None]
    required += [k for k, d in data_params.items() if d.required]
    for key in required:
        if key not in raw:
            raise FieldError("required parameter is missing", key)
    values, options = {}, {}
    for key, value in raw.items():
        with at(key):
            if key in info.options:
                options[key] = _option(value, info.options[key])
            elif key in data_params:
                options[key] = data_params[key].parse(value, size)
            else:
                values[key] = _param_value(value, info.params[key], names)
    return values, options


# ---------------------------------------------------------------- projections

class AllToAll(Section):
    type: Literal["all_to_all"]
    allow_self_connections: StrictBool = True


class OneToOne(Section):
    type: Literal["one_to_one"]


class FixedProbability(Section):
    type: Literal["fixed_probability"]
    p: Fraction
    allow_self_connections: StrictBool = True


class FixedIndegree(Section):
    """Each post neuron receives exactly ``n`` connections (pre drawn without replacement)."""

    type: Literal["fixed_indegree"]
    n: NonNegInt
    allow_self_connections: StrictBool = True


class FixedOutdegree(FixedIndegree):
    """Each pre neuron makes exactly ``n`` connections."""

    type: Literal["fixed_outdegree"]


class DistanceConnector(Section):
    """P = c * exp(-(d / lambda)^2), d the distance between grid positions (um)."""

    type: Literal["distance"]
    c: Fraction
    lam: Quantity("length", low=0.0, low_exclusive=True) = Field(alias="lambda")
    allow_self_connections: StrictBool = False


class FromList(Section):
    """Explicit connections: lists ``pre``/``post`` (with optional ``weight``/``delay``
    in the receptor's unit / ms), or a ``file`` (.npz) holding those arrays."""

    type: Literal["from_list"]
    pre: Optional[List[NonNegInt]] = None
    post: Optional[List[NonNegInt]] = None
    weight: Optional[List[float]] = None
    delay: Optional[List[Time]] = None
    file: Optional[StrictStr] = None

    @model_validator(mode="after")
    def _lists_or_file(self) -> "FromList":
        lists = {k: getattr(self, k) for k in ("pre", "post", "weight", "delay")
                 if getattr(self, k) is not None}
        if self.file is not None:
            if lists:
                raise FieldError("give either a file or lists, not both", next(iter(lists)))
            return self
        for key in ("pre", "post"):
            if key not in lists:
                raise FieldError("required key is missing (or give a file)", key)
        for key, values in lists.items():
            if len(values) != len(self.pre):
                raise FieldError(f"has {len(values)} entries, pre has {len(self.pre)}", key)
        return self


_CONNECTOR_TYPES = (AllToAll, OneToOne, FixedProbability, FixedIndegree, FixedOutdegree,
                    DistanceConnector, FromList)
CONNECTORS: Tuple[str, ...] = tuple(get_args(c.model_fields["type"].annotation)[0]
                                    for c in _CONNECTOR_TYPES)
Connector = Annotated[Union[_CONNECTOR_TYPES], Field(discriminator="type")]


# ---------------------------------------------------------------- plasticity

class Reward(Section):
    """A per-instance scalar (dopamine) that relaxes to ``baseline`` with ``tau``;
    Python adds to it with ``net.modulate(name, amount)``."""

    type: Literal["reward"]
    tau: PositiveTime = 200.0  # ms
    initial: float = 0.0
    baseline: float = 0.0   # tonic level it relaxes to


class Signal(Section):
    """Values given from Python each step (``net.run(signals={name: [T, B]})``)
    or held with ``net.set_signal(name, value)``; per instance, or per neuron of
    ``population`` when one is named."""

    type: Literal["signal"]
    population: Optional[StrictStr] = None
    initial: float = 0.0

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        population(context, data, "population")
        return data


class ErrorSignal(Section):
    """Per-neuron error M_j = target_j - y_j of ``population``: the target is given
    from Python like a signal, y_j is the neuron's spike trace (time constant
    ``tau``, +1 per spike), so a rule reads (target - output)."""

    type: Literal["error"]
    population: StrictStr
    tau: PositiveTime = 20.0  # ms
    initial: float = 0.0

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        population(context, data, "population")
        return data


class Astrocyte(Section):
    """NALSM astrocyte (Ivanov & Michmizos, NeurIPS 2021; NALSM_ASTRO.py):
    tau dA/dt = -A + weight * (liquid spikes - input spikes) + bias, per instance."""

    type: Literal["astrocyte"]
    tau: PositiveTime = 100.0  # ms
    weight: Annotated[float, Field(ge=0)] = 0.015
    bias: float = 0.15
    initial: float = 0.15
    liquid: Annotated[List[StrictStr], Field(min_length=1)]
    input: List[StrictStr] = []
    fraction: Fraction = 1.0  # share of liquid and input neurons the astrocyte sees
    lr_decay: Annotated[float, Field(gt=0, le=1)] = 1.0  # factor per ms on A, weight and bias

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        for key in ("liquid", "input"):
            for k, name in enumerate(data.get(key) or []):
                with at(key):
                    population(context, {k: name}, k)
        return data


MODULATORS = ("reward", "signal", "error", "astrocyte")
Modulator = Annotated[Union[Reward, Signal, ErrorSignal, Astrocyte], Field(discriminator="type")]


class ModulatedAmplitude(Section):
    """A learning amplitude read from a modulator (e.g. the NALSM astrocyte), times ``scale``."""

    modulator: StrictStr
    scale: float = 1.0


Amplitude = Union[float, ModulatedAmplitude]


class PlasticityConfig(Section):
    """A learning rule on a projection (see docs/plasticity.md).

    stdp: dw = a_plus(w) x_pre on a post spike, -a_minus(w) y_post on a pre spike.
    three_factor: the same pairing (or a Hebbian/pre-only term) feeds an
    eligibility trace e with time constant ``tau_eligibility``, and
    dw/dt = eta * gate * modulator * e.
    schedule (stdp, additive): ``eager`` applies each potentiation at the post
    spike; ``deferred`` sums a synapse's potentiations and applies them at its
    next presynaptic spike (or the end of a run): the same weights up to
    rounding, at a cost that follows presynaptic spikes (docs/plasticity.md).
    """

    rule: Literal["stdp", "three_factor"]
    preset: Optional[StrictStr] = None
    tau_plus: PositiveTime = 20.0       # ms, presynaptic trace
    tau_minus: PositiveTime = 20.0      # ms, postsynaptic trace
    trace_increment: Annotated[float, Field(gt=0)] = 1.0
    a_plus: Amplitude = 0.01            # weight units per pairing
    a_minus: Amplitude = 0.012
    update: Literal["additive", "multiplicative"] = "additive"
    pairing: Literal["all_to_all", "nearest"] = "all_to_all"
    schedule: Literal["eager", "deferred"] = "eager"
    w_min: Optional[float] = None
    w_max: Optional[float] = None
    lr_decay: Annotated[float, Field(gt=0, le=1)] = 1.0   # factor per ms on the learning rates
    eligibility: Literal["stdp", "hebbian", "pre"] = "stdp"
    tau_eligibility: PositiveTime = 1000.0   # ms
    modulator: Optional[StrictStr] = None
    gate: Optional[StrictStr] = None
    eta: float = 1.0

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        from spiking.plasticity.presets import apply_preset
        with at("preset"):
            return apply_preset(data)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> "PlasticityConfig":
        modulators = (info.context or {}).get("modulators")
        if self.w_min is None or self.w_max is None:
            raise FieldError("needs w_min and w_max (weight bounds in the receptor's unit)",
                             "w_max" if self.w_min is not None else "w_min")
        if not self.w_min <= self.w_max:
            raise FieldError(f"w_min ({self.w_min:g}) must be <= w_max ({self.w_max:g})", "w_min")
        if self.update == "multiplicative" and self.w_min == self.w_max:
            raise FieldError("multiplicative updates need w_min < w_max", "update")
        if self.schedule == "deferred" and (self.rule != "stdp" or self.update != "additive"):
            raise FieldError("schedule: deferred is for additive stdp rules (a multiplicative or "
                             "three_factor rule needs the weight at every pairing)", "schedule")
        names = []
        for key in ("a_plus", "a_minus"):
            amp = getattr(self, key)
            if isinstance(amp, ModulatedAmplitude):
                names.append((key, amp.modulator, ("astrocyte", "reward", "signal")))
        if self.rule == "three_factor":
            if self.modulator is None:
                raise FieldError("a three_factor rule needs a modulator", "modulator")
            names.append(("modulator", self.modulator, ("reward", "signal", "error", "astrocyte")))
        elif self.modulator is not None:
            raise FieldError("only three_factor rules take a modulator; for NALSM use "
                             "a_minus: {modulator: NAME}", "modulator")
        if self.gate is not None:
            names.append(("gate", self.gate, ("reward", "signal")))
        for key, name, kinds in names:
            if modulators is None:
                continue
            if name not in modulators:
                raise FieldError(unknown("modulator", name, modulators, always_list=True), key)
            if modulators[name].type not in kinds:
                raise FieldError(f"modulator {name!r} is a {modulators[name].type}; "
                                 f"{key} takes {', '.join(kinds)}", key)
        return self


class ProjectionConfig(Section):
    """Synapses from ``pre`` to ``post`` onto one receptor of the post model.

    ``weight`` is in the receptor's unit (nA for LIF currents, mV for ``v``),
    ``delay`` in ms (default: dt). ``weight`` may be left out when a
    ``from_list`` connector gives the weights.
    """

    pre: StrictStr
    post: StrictStr
    receptor_type: StrictStr = "excitatory"
    connector: Connector
    weight: Optional[Spec] = None
    delay: Optional[Spec] = None
    plasticity: Optional[PlasticityConfig] = None
    hardware: Optional[Any] = None   # a hardware.CrossbarConfig after validation

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        with at("connector"):
            check_tag(data.get("connector"), CONNECTORS, "connector")
        if data.get("hardware") is not None:
            data["hardware"] = _crossbar_config(data["hardware"])
        population(context, data, "pre")
        post = population(context, data, "post")
        if post is None:
            return data
        info = get_model(post.model)
        if info.kind == "source":
            raise FieldError(f"population {data['post']!r} is a spike source ({info.name}) "
                             "and cannot receive projections", "post")
        receptor = data.get("receptor_type", "excitatory")
        if receptor not in info.receptors:
            raise FieldError(unknown(f"{info.name} receptor", receptor, info.receptors,
                                     always_list=True), "receptor_type")
        _convert_synapse_values(data, info.receptor_dimensions[receptor], context.get("dt"))
        return data

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> "ProjectionConfig":
        context = info.context or {}
        dt = context.get("dt")
        if isinstance(self.delay, Constant):
            with at("delay"):
                check_steps(self.delay.value, dt)
        if isinstance(self.connector, FromList):
            for k, delay in enumerate(self.connector.delay or ()):
                with at("connector", "delay", k):
                    check_steps(delay, dt)
        populations = context.get("populations")
        if populations is not None:
            with at("connector"):
                _check_sizes(self.connector, populations[self.pre].size,
                             populations[self.post].size)
        if self.hardware is not None and self.plasticity is not None and \
                self.plasticity.schedule == "deferred":
            with at("plasticity"):
                raise FieldError("schedule: deferred cannot run on a hardware projection (every "
                                 "weight change is a device write); use eager", "schedule")
        return self


def _crossbar_config(value: Any) -> Any:
    """Validate a projection's ``hardware:`` block (see hardware.get_crossbar_config)."""
    from hardware.crossbar import get_crossbar_config
    from spiking.errors import ConfigError

    try:
        return get_crossbar_config(value, path="hardware")
    except ConfigError as e:
        parts = (e.path or "hardware").split(".")
        raise FieldError(e.message, *parts) from None


def _convert_synapse_values(data: dict, weight_dimension: str, dt: Optional[float]) -> None:
    """Convert weight and delay in place, on the projection and in a from_list connector.

    A from_list ``file`` may hold weights and delays; the projection's values
    apply to connections the file gives none for.
    """
    connector = data.get("connector")
    is_list = isinstance(connector, dict) and connector.get("type") == "from_list"
    listed = connector if is_list else {}
    for key, dimension in (("weight", weight_dimension), ("delay", "time")):
        if key in data and listed.get(key) is not None:
            raise FieldError(f"the from_list connector already lists the {key}s", key)
        if key in data:
            with at(key):
                data[key] = value_spec(data[key], dimension, SYNAPSE_NAMES)
    if isinstance(listed.get("weight"), list):
        data["connector"] = {**listed, "weight": [
            quantity_at(("connector", "weight", k), w, weight_dimension)
            for k, w in enumerate(listed["weight"])]}
    elif "weight" not in data and "file" not in listed:
        raise FieldError("required key is missing", "weight")
    if "delay" not in data and listed.get("delay") is None and dt is not None:
        data["delay"] = Constant(dt)


def _check_sizes(connector: BaseModel, n_pre: int, n_post: int) -> None:
    """Connector arguments that must fit the population sizes."""
    if isinstance(connector, OneToOne) and n_pre != n_post:
        raise ValueError(f"one_to_one needs pre and post of equal size, got {n_pre} and {n_post}")
    if type(connector) is FixedIndegree and connector.n > n_pre:
        raise FieldError(f"must be <= the pre population size ({n_pre}), got {connector.n}", "n")
    if isinstance(connector, FromList):
        for key, size in (("pre", n_pre), ("post", n_post)):
            too_big = [i for i in getattr(connector, key) or () if i >= size]
            if too_big:
                raise FieldError(f"index {too_big[0]} is out of range for {size} neurons", key)


# ---------------------------------------------------------------- monitors

def _neurons(value: Any) -> Any:
    """None (all), a count n (the first n), or a list of neuron indices."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ints = isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool)
                                           for i in value)
    if value is None or (is_int and value >= 1) or (ints and min(value, default=0) >= 0):
        return value
    raise ValueError("expected a count n >= 1 (the first n neurons) or a list of "
                     f"neuron indices, got {value!r}")


Neurons = Annotated[Union[None, int, List[int]], BeforeValidator(_neurons)]


class _Monitor(Section):
    population: StrictStr

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        population(context, data, "population")
        return data


class _NeuronMonitor(_Monitor):
    neurons: Neurons = None

    @model_validator(mode="after")
    def _neurons_exist(self, info: ValidationInfo) -> "_NeuronMonitor":
        populations = (info.context or {}).get("populations")
        if populations is None or self.neurons is None:
            return self
        size = populations[self.population].size
        listed = self.neurons if isinstance(self.neurons, list) else [self.neurons - 1]
        largest = max(listed, default=-1) + 1
        if largest > size:
            raise FieldError(f"population {self.population!r} has only {size} neurons", "neurons")
        return self


class SpikeMonitor(_NeuronMonitor):
    type: Literal["spikes"]


class StateMonitor(_NeuronMonitor):
    """Records ``variables`` every ``every`` ms (default: every step)."""

    type: Literal["state"]
    variables: Annotated[List[StrictStr], Field(min_length=1)]
    every: Optional[PositiveTime] = None

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        pop = population(context, data, "population")
        if pop is not None and isinstance(data.get("variables"), list):
            info = get_model(pop.model)
            with at("variables"):
                for k, name in enumerate(data["variables"]):
                    if name not in info.state:
                        raise FieldError(unknown(f"{info.name} state variable", name, info.state,
                                                 always_list=True), k)
        data.setdefault("every", context.get("dt"))
        return data

    @model_validator(mode="after")
    def _on_step_grid(self, info: ValidationInfo) -> "StateMonitor":
        with at("every"):
            check_steps(self.every, (info.context or {}).get("dt"))
        return self


class RateMonitor(_Monitor):
    """Population rate (Hz) in bins of ``bin`` ms."""

    type: Literal["rate"]
    bin: PositiveTime = 1.0

    @model_validator(mode="after")
    def _on_step_grid(self, info: ValidationInfo) -> "RateMonitor":
        with at("bin"):
            check_steps(self.bin, (info.context or {}).get("dt"))
        return self


class WeightMonitor(Section):
    """Mean weight and a weight histogram of a plastic projection every ``every`` ms."""

    type: Literal["weights"]
    projection: StrictStr
    every: Optional[PositiveTime] = None   # default: 1/20 of each run
    bins: Annotated[int, Field(ge=2, le=1000)] = 50

    @model_validator(mode="after")
    def _on_step_grid(self, info: ValidationInfo) -> "WeightMonitor":
        if self.every is not None:
            with at("every"):
                check_steps(self.every, (info.context or {}).get("dt"))
        return self


_MONITOR_TYPES = (SpikeMonitor, StateMonitor, RateMonitor, WeightMonitor)
MONITORS: Tuple[str, ...] = tuple(get_args(m.model_fields["type"].annotation)[0]
                                  for m in _MONITOR_TYPES)
Monitor = Annotated[Union[_MONITOR_TYPES], Field(discriminator="type")]


# ---------------------------------------------------------------- network

SECTIONS: Dict[str, Type[BaseModel]] = {}


def register_section(name: str, model_cls: Type[BaseModel]) -> Type[BaseModel]:
    """Accept a top-level section ``name`` in network files, validated by ``model_cls``.

    Its validators see the network's ``dt``, ``grids`` and ``populations`` in
    the validation context; the result is ``NetworkConfig.sections[name]``.
    """
    if not (isinstance(model_cls, type) and issubclass(model_cls, BaseModel)):
        raise TypeError(f"section {name!r}: {model_cls!r} is not a pydantic model")
    if name in SECTIONS or name in NetworkConfig.model_fields or name == "base":
        raise ValueError(f"top-level section {name!r} is already taken")
    SECTIONS[name] = model_cls
    return model_cls


_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class NetworkConfig(Section):
    """A whole network file (after ``base:`` merging and ``--set`` overrides)."""

    name: Optional[StrictStr] = None
    description: Optional[StrictStr] = None
    dt: PositiveTime = Field(0.1, validate_default=True)  # ms
    duration: PositiveTime = 1000.0  # ms
    seed: NonNegInt = 0
    backend: Literal["numba", "torch"] = "numba"
    instances: PositiveInt = 1
    device: StrictStr = "auto"
    grids: Dict[str, GridConfig] = Field(default={}, validate_default=True)
    populations: Annotated[Dict[str, PopulationConfig], Field(min_length=1)]
    modulators: Dict[str, Modulator] = Field(default={}, validate_default=True)
    projections: Dict[str, ProjectionConfig] = {}
    monitors: List[Monitor] = []
    sections: Dict[str, Any] = {}
    source_file: Optional[str] = None
    internal_fields = ("sections", "source_file")

    def __init__(self, **data: Any) -> None:
        self.__pydantic_validator__.validate_python(data, self_instance=self, context={})

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> "NetworkConfig":
        """As pydantic's, with a fresh validation context unless one is given."""
        if kwargs.get("context") is None:
            kwargs["context"] = {}
        return super().model_validate(obj, **kwargs)

    @classmethod
    def keys(cls) -> List[str]:
        return super().keys() + list(SECTIONS)

    @classmethod
    def prepare(cls, data: dict, context: dict) -> dict:
        data["sections"] = {key: data.pop(key) for key in list(data) if key in SECTIONS}
        return data

    @field_validator("dt", "grids", "populations", "modulators")
    @classmethod
    def _share(cls, value: Any, info: ValidationInfo) -> Any:
        """Make a validated section visible to the sections after it."""
        if info.context is not None:
            info.context[info.field_name] = value
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"must be auto, cpu, cuda or cuda:N; got {value!r}")
        return value

    @field_validator("modulators", mode="before")
    @classmethod
    def _modulator_types(cls, value: Any) -> Any:
        for name, item in (value.items() if isinstance(value, dict) else ()):
            with at(name):
                check_tag(item, MODULATORS, "modulator")
        return value

    @field_validator("monitors", mode="before")
    @classmethod
    def _monitor_types(cls, value: Any) -> Any:
        for k, item in enumerate(value if isinstance(value, list) else ()):
            with at(k):
                check_tag(item, MONITORS, "monitor")
        return value

    @field_validator("sections")
    @classmethod
    def _sections(cls, value: Dict[str, Any], info: ValidationInfo) -> Dict[str, Any]:
        out = {}
        for name, raw in value.items():
            try:
                out[name] = SECTIONS[name].model_validate(raw, context=info.context)
            except ValidationError as e:
                raise FieldError("invalid section", name) from e
        return out

    @model_validator(mode="after")
    def _weight_monitors_on_plastic_projections(self) -> "NetworkConfig":
        for k, m in enumerate(self.monitors):
            if m.type != "weights":
                continue
            proj = self.projections.get(m.projection)
            if proj is None:
                raise FieldError(unknown("projection", m.projection, self.projections,
                                         always_list=True), "monitors", k, "projection")
            if proj.plasticity is None:
                raise FieldError(f"projection {m.projection!r} has no plasticity: its weights "
                                 "do not change", "monitors", k, "projection")
        return self

    @model_validator(mode="after")
    def _grids_large_enough(self) -> "NetworkConfig":
        for name, grid in self.grids.items():
            users = {p: pop.size for p, pop in self.populations.items()
                     if pop.positions is not None and pop.positions.grid == name}
            if sum(users.values()) > grid.sites:
                raise FieldError(f"has {grid.sites} sites but populations "
                                 f"{', '.join(users)} need {sum(users.values())}", "grids", name)
        return self
