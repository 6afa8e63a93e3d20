"""Liquid state machines on event data: LSM, LSM+STDP and NALSM.

A file with an ``lsm:`` section describes a liquid (docs: configs/nalsm_nmnist.yaml);
the defaults reproduce NALSM1000 (Ivanov & Michmizos, "Increasing liquid state
machine performance with edge-of-chaos dynamics organized by astrocyte-modulated
plasticity", NeurIPS 2021):

- a 10x10x10 grid, 80 % excitatory (E) and 20 % inhibitory (I) neurons
  scattered at random over its sites;
- liquid synapses drawn with P = C_pair * exp(-(d / lambda)^2), lambda = 3,
  C = 0.2 / 0.1 / 0.3 / 0.05 for EE / EI / IE / II (key XY: X presynaptic);
- one input neuron per event cell (2 x 34 x 34 for N-MNIST), each connected to
  every liquid neuron with probability 0.15 (the input density);
- initial weights |w| = 3; the sign comes from the presynaptic type (E +, I -)
  and is random for input synapses; bounds [0, 3] (E), [-3, 0] (I), [-3, 3] (input);
- LIF neurons with tau_v = 64 ms, threshold 20, reset 0, 2 ms refractory period
  during which the membrane keeps integrating (``refractory: free``) and
  exponential synaptic currents with tau = 1 ms; dt = 1 ms; 250 ms per sample.

Units. NALSM integrates tau_v dv/dt = -v + I with a spike through weight w
injecting the current ``current * w`` (``current`` = 100 per event) that decays
with the synaptic time constant. In the core's PyNN-style LIF (v in mV, I in nA,
dv/dt = ... + I / cm) that is ``cm = tau_v / current`` nF (0.64 nF) with w in
nA: a spike through |w| = 3 moves v by about 3 * 100 / 64 = 4.7 mV, so about
four coincident input spikes reach threshold. The input current applies to
liquid spikes as well as input events (with it applied to input events only,
liquid synapses would move v by 0.05 mV and the liquid would not be recurrent).

Plasticity is one of ``none`` (fixed LSM), ``stdp`` (LSM+STDP, fixed learning
rates) or ``astrocyte`` (NALSM: the depression rate is the astrocyte's state A,
which grows with liquid spikes minus input spikes). NALSM's rule
(NALSM_STDP.py, ``STDP_w_astro_depression``) keeps one trace per neuron,
x <- d (x + 0.1 S) with d^10 = 1/e, and changes w by
LR1 x_pre S_post + LR2 x_post S_pre with (LR1, LR2) = (eta, -A) for excitatory
and input presynaptic neurons and (-A, eta) for inhibitory ones. In the core's
trace STDP (dw = a_plus x_pre S_post - a_minus y_post S_pre, traces decayed by
d each step and raised by ``trace_increment`` after a spike) that is
tau_plus = tau_minus = 10 ms, trace_increment = 0.1 d, a_plus = eta and
a_minus = A (excitatory, input), a_plus = -A and a_minus = -eta (inhibitory).
One difference: the core does not pair spikes of the same step.
``plasticity.schedule: deferred`` (the default) applies the potentiations at
the next presynaptic spike rather than at each post spike: the same weights up
to float rounding, about 2.8x faster for NALSM1000 (docs/plasticity.md).

Protocol (each phase switchable in ``lsm.init`` and ``lsm.features``):

1. initialisation: with plasticity on, one liquid sees ``windows`` random
   20 ms windows of training samples in sequence (state reset before each,
   weights carried over);
2. features: samples run in batches of B instances; with plasticity on, every
   instance starts from the initialised weights (restored before each batch)
   and learns during its sample with learning rates decaying by 0.99 per ms;
   features are spike counts per liquid neuron, optionally in time bins;
3. with ``data.augment.shift: s``, the readout also learns from copies of the
   training recordings moved by every (dx, dy) with |dx|, |dy| <= s pixels
   ((2s + 1)^2 - 1 copies; validation and test are never moved).

Every simulation goes through ``Network.run`` (the core's time loop).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
from pydantic import Field, field_validator

from spiking.config.schema import (SECTIONS, SYNAPSE_NAMES, FieldError, Fraction, PositiveTime,
                                   Quantity, Section, register_section, value_spec)
from spiking.errors import ConfigError, DataError, SpikingError
from spiking.inputs import SpikeCounts
from spiking.network import Network

from networks.readout import ReadoutSection

INPUT, EXC, INH = "inp", "E", "I"
LIQUID = (EXC, INH)
PAIRS = ("EE", "EI", "IE", "II")
Voltage = Quantity("voltage")


# ----------------------------------------------------------------------------- config
def _weight_value(value: Any) -> Any:
    """A weight magnitude: a number or a distribution mapping (checked, kept as written)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number or {{distribution: ...}}, got {value!r}")
    value_spec(value, "current", SYNAPSE_NAMES)
    return value


class PairValues(Section):
    """One value per synapse type; key XY means X presynaptic, Y postsynaptic."""

    EE: Any
    EI: Any
    IE: Any
    II: Any

    def get(self, pair: str) -> Any:
        return getattr(self, pair)


class PairFractions(PairValues):
    EE: Fraction = 0.2
    EI: Fraction = 0.1
    IE: Fraction = 0.3
    II: Fraction = 0.05


class PairWeights(PairValues):
    EE: Any = 3.0
    EI: Any = 3.0
    IE: Any = 3.0
    II: Any = 3.0

    @field_validator("EE", "EI", "IE", "II")
    @classmethod
    def _check(cls, value):
        return _weight_value(value)


def _bounds(value: Any) -> Any:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"expected [low, high], got {value!r}")
    if value[0] > value[1]:
        raise ValueError(f"low must be <= high, got {list(value)}")
    return (float(value[0]), float(value[1]))


class LiquidBounds(Section):
    """Weight bounds of plastic synapses by presynaptic type (signed weights)."""

    E: Tuple[float, float] = (0.0, 3.0)
    I: Tuple[float, float] = (-3.0, 0.0)

    @field_validator("E", "I", mode="before")
    @classmethod
    def _check(cls, value):
        return _bounds(value)


def _three(value: Any) -> Any:
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and
            all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ValueError(f"expected 3 positive integers [x, y, z], got {value!r}")
    return tuple(value)


class LiquidConfig(Section):
    shape: Tuple[int, int, int] = (10, 10, 10)
    excitatory_fraction: Fraction = 0.8
    lam: float = Field(3.0, alias="lambda", gt=0)   # grid units (sites are 1 um apart)
    connectivity: PairFractions = PairFractions()
    weight: PairWeights = PairWeights()
    scale: float = Field(1.0, gt=0)     # multiplies every liquid weight and bound
    bounds: LiquidBounds = LiquidBounds()
    delay: PositiveTime = 1.0           # ms

    @field_validator("shape", mode="before")
    @classmethod
    def _shape(cls, value):
        return _three(value)

    @property
    def sites(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_exc(self) -> int:
        return int(round(self.excitatory_fraction * self.sites))

    @property
    def n_inh(self) -> int:
        return self.sites - self.n_exc


class InputConfig(Section):
    density: Fraction = 0.15          # probability of an input -> liquid synapse
    weight: Any = 3.0                 # |w|
    sign: Literal["random", "positive"] = "random"
    bounds: Tuple[float, float] = (-3.0, 3.0)

    @field_validator("weight")
    @classmethod
    def _weight(cls, value):
        return _weight_value(value)

    @field_validator("bounds", mode="before")
    @classmethod
    def _check(cls, value):
        return _bounds(value)


class NeuronConfig(Section):
    tau_m: PositiveTime = 64.0
    v_rest: Voltage = 0.0
    v_reset: Voltage = 0.0
    v_thresh: Voltage = 20.0
    tau_refrac: Quantity("time", low=0.0) = 2.0
    tau_syn: PositiveTime = 1.0
    refractory: Literal["free", "clamp"] = "free"
    current: Optional[float] = Field(100.0, gt=0)   # per event; sets cm = tau_m / current


class AstrocyteConfig(Section):
    tau: PositiveTime = 100.0
    weight: float = Field(0.015, ge=0)
    bias: float = 0.15
    initial: float = 0.15
    fraction: Fraction = 1.0


class PlasticityConfig(Section):
    rule: Literal["none", "stdp", "astrocyte"] = "astrocyte"
    eta: float = Field(0.15, ge=0)        # potentiation learning rate (LR1 of E/input synapses)
    depression: Optional[float] = Field(None, ge=0)   # stdp: fixed depression rate (default eta)
    tau: PositiveTime = 10.0              # trace time constant, ms (d^10 = 1/e at dt = 1 ms)
    trace: float = Field(0.1, gt=0)       # NALSM trace increment before the decay
    lr_decay: float = Field(0.99, gt=0, le=1)    # per ms, feature phase
    projections: List[str] = ["inE", "inI", "EE", "EI", "IE", "II"]
    schedule: Literal["eager", "deferred"] = "deferred"   # STDP schedule (docs/plasticity.md)
    astrocyte: AstrocyteConfig = AstrocyteConfig()

    @field_validator("projections")
    @classmethod
    def _names(cls, value):
        valid = ["inE", "inI", *PAIRS]
        for k, name in enumerate(value):
            if name not in valid:
                from spiking.config.schema import unknown
                raise FieldError(unknown("projection", name, valid, always_list=True), k)
        return value


class InitConfig(Section):
    enabled: bool = True
    windows: int = Field(1000, ge=0)
    window: PositiveTime = 20.0           # ms
    lr_decay: bool = False                # decay learning rates within each window too
    checkpoint_every: int = Field(100, ge=1)


class FeatureConfig(Section):
    plastic: bool = True                  # plasticity on during feature extraction
    bins: int = Field(1, ge=1)            # time bins per sample
    batch_size: int = Field(32, ge=1)
    branching: int = Field(256, ge=0)     # samples per split recorded for the branching factor


class EncoderConfig(Section):
    mode: Literal["binary", "counts"] = "binary"
    crop: Optional[int] = Field(None, ge=1)
    downsample: int = Field(1, ge=1)
    polarity: Optional[Literal[0, 1]] = None


class AugmentConfig(Section):
    shift: int = Field(0, ge=0)           # pixels: training copies moved by |dx|, |dy| <= shift


class DataConfig(Section):
    path: Optional[str] = None            # default data folder (--data wins)
    window: PositiveTime = 250.0          # ms of each sample
    val_fraction: float = Field(0.1, ge=0, lt=1)
    split_seed: int = 0
    max_train: Optional[int] = Field(None, ge=1)
    max_test: Optional[int] = Field(None, ge=1)
    encoder: EncoderConfig = EncoderConfig()
    augment: AugmentConfig = AugmentConfig()


class LsmSection(Section):
    """The ``lsm:`` section (docs in the module docstring)."""

    liquid: LiquidConfig = LiquidConfig()
    input: InputConfig = InputConfig()
    neuron: NeuronConfig = NeuronConfig()
    plasticity: PlasticityConfig = PlasticityConfig()
    init: InitConfig = InitConfig()
    features: FeatureConfig = FeatureConfig()
    data: DataConfig = DataConfig()

    @property
    def plastic(self) -> bool:
        return self.plasticity.rule != "none"


if "lsm" not in SECTIONS:
    register_section("lsm", LsmSection)
if "readout" not in SECTIONS:
    register_section("readout", ReadoutSection)


# ----------------------------------------------------------------------------- loading
GENERATED = ("grids", "populations", "projections", "modulators", "monitors")


def load_lsm_config(path, overrides: Sequence[str] = ()):
    """Load an LSM file (``base:`` merged, ``--set`` applied), expand its ``lsm:``
    section into the liquid network and validate it. Returns (NetworkConfig, tree)
    where ``tree`` is the file's content before expansion (what a model folder stores)."""
    import copy

    from spiking.config.loader import apply_overrides, load_tree

    data, source = load_tree(path)
    apply_overrides(data, source, overrides or ())
    tree = copy.deepcopy(data)
    return expand_config(data, source, str(path)), tree


def config_from_tree(tree: dict, file: str = "config.yaml"):
    """Validate a stored LSM tree (as :func:`load_lsm_config` returned it)."""
    import copy

    from spiking.config.loader import SourceMap

    return expand_config(copy.deepcopy(tree), SourceMap(), file)


def _section(model, raw, data, source, file, name):
    from pydantic import ValidationError

    from spiking.config.loader import _first_error

    try:
        return model.model_validate(raw if raw is not None else {}, context={})
    except ValidationError as e:
        path, message = _first_error(e, data, (name,))
        where, line = source.locate(path)
        raise ConfigError(message, file=where or file, line=line, path=path) from None


def expand_tree(data: dict, source=None, file: str = "<lsm>") -> LsmSection:
    """Add the liquid (grids, populations, projections, modulators, monitors) that
    the ``lsm:`` section of a loaded file describes to ``data``, in place, and
    return the validated section. ``source`` (the loader's SourceMap) locates
    errors. A loader hook for section providers can call this before validation."""
    from spiking.config.loader import SourceMap

    source = source if source is not None else SourceMap()
    if not isinstance(data, dict) or "lsm" not in data:
        raise ConfigError("not an LSM file: it has no lsm: section", file=file)
    lsm = _section(LsmSection, data.get("lsm"), data, source, file, "lsm")
    _section(ReadoutSection, data.get("readout"), data, source, file, "readout")
    for key in GENERATED:
        if key in data:
            where, line = source.locate((key,))
            raise ConfigError(f"an LSM file describes its network in lsm: (liquid, input, "
                              f"neuron, plasticity); remove {key}:", file=where or file,
                              line=line, path=key)
    if data.get("lsm") is None:
        data["lsm"] = {}
    data.setdefault("dt", 1.0)
    data.setdefault("duration", lsm.data.window)
    data.setdefault("name", "lsm")
    try:
        from spiking.config.units import parse_quantity
        dt = float(parse_quantity(data["dt"], "time"))
    except (ValueError, TypeError):
        dt = 1.0  # validation reports the bad dt
    data.update(network_tree(lsm, n_inputs(lsm), dt if dt > 0 else 1.0))
    return lsm


def expand_config(data: dict, source, file: str):
    """:func:`expand_tree`, then validate the whole network (errors name file and line)."""
    from spiking.config.loader import validate

    expand_tree(data, source, file)
    return validate(data, source, file)


def n_inputs(lsm: LsmSection) -> int:
    from spiking.data import input_layout

    e = lsm.data.encoder
    return input_layout(e.crop, e.downsample, e.polarity).n_inputs


def network_tree(lsm: LsmSection, inputs: int, dt: float = 1.0) -> dict:
    """The grids, populations, projections, modulators and monitors of the liquid,
    as a network-file mapping. Weights here are magnitudes; :func:`sign_weights`
    gives them their signs once the network is built."""
    L, N, P = lsm.liquid, lsm.neuron, lsm.plasticity
    lif = {"tau_m": N.tau_m, "v_rest": N.v_rest, "v_reset": N.v_reset, "v_thresh": N.v_thresh,
           "tau_refrac": N.tau_refrac, "tau_syn_E": N.tau_syn, "tau_syn_I": N.tau_syn,
           "refractory": N.refractory}
    if N.current:
        lif["cm"] = N.tau_m / N.current
    sizes = {EXC: L.n_exc, INH: L.n_inh}
    present = [p for p in LIQUID if sizes[p] > 0]
    populations = {INPUT: {"size": inputs, "model": "event_source"}}
    for p in present:
        populations[p] = {"size": sizes[p], "model": "lif", "params": dict(lif),
                          "initial": {"v": N.v_rest}, "positions": {"grid": "liquid"}}
    modulators = {}
    if P.rule == "astrocyte":
        A = P.astrocyte
        modulators["astro"] = {"type": "astrocyte", "tau": A.tau, "weight": A.weight,
                               "bias": A.bias, "initial": A.initial, "liquid": list(present),
                               "input": [INPUT], "fraction": A.fraction, "lr_decay": P.lr_decay}
    # NALSM trace x <- d (x + trace S) is the core's trace raised by trace * d after the decay
    increment = P.trace * math.exp(-dt / P.tau)
    depression = P.eta if P.depression is None else P.depression

    def plasticity(name: str, pre: str) -> Optional[dict]:
        if not lsm.plastic or name not in P.projections:
            return None
        if pre == INPUT:
            low, high = lsm.input.bounds
        else:
            low, high = (b * L.scale for b in (L.bounds.E if pre == EXC else L.bounds.I))
        rule = {"rule": "stdp", "tau_plus": P.tau, "tau_minus": P.tau,
                "trace_increment": increment, "w_min": low, "w_max": high,
                "lr_decay": P.lr_decay, "update": "additive", "pairing": "all_to_all",
                "schedule": P.schedule}
        astro = P.rule == "astrocyte"
        if pre == INH:   # (LR1, LR2) = (-A, eta)
            rule["a_plus"] = {"modulator": "astro", "scale": -1.0} if astro else -depression
            rule["a_minus"] = -P.eta
        else:            # (LR1, LR2) = (eta, -A)
            rule["a_plus"] = P.eta
            rule["a_minus"] = {"modulator": "astro", "scale": 1.0} if astro else depression
        return rule

    projections = {}
    if lsm.input.density > 0:
        for post in present:
            name = f"in{post}"
            projections[name] = {
                "pre": INPUT, "post": post, "receptor_type": "excitatory",
                "connector": {"type": "fixed_probability", "p": lsm.input.density},
                "weight": lsm.input.weight, "delay": L.delay}
            rule = plasticity(name, INPUT)
            if rule:
                projections[name]["plasticity"] = rule
    for pair in PAIRS:
        pre, post = pair[0], pair[1]
        c = L.connectivity.get(pair)
        if c <= 0 or pre not in present or post not in present:
            continue
        projections[pair] = {
            "pre": pre, "post": post,
            "receptor_type": "excitatory" if pre == EXC else "inhibitory",
            "connector": {"type": "distance", "c": c, "lambda": L.lam},
            "weight": L.weight.get(pair), "delay": L.delay}
        rule = plasticity(pair, pre)
        if rule:
            projections[pair]["plasticity"] = rule
    tree = {"grids": {"liquid": {"shape": list(L.shape), "spacing": 1.0}},
            "populations": populations, "projections": projections,
            "monitors": [{"type": "spikes", "population": p} for p in present]}
    if modulators:
        tree["modulators"] = modulators
    return tree


# ----------------------------------------------------------------------------- network
def sign_weights(spec, lsm: LsmSection) -> None:
    """Turn the built weight magnitudes into signed weights, in place: + for E,
    - for I presynaptic neurons (times ``liquid.scale``); input synapses get a
    random sign (seeded) or +."""
    from spiking.rng import generator

    conn = spec.connectivity
    w = np.abs(conn.weight.astype(np.float64))
    for proj in spec.projections:
        idx = np.flatnonzero(conn.projection == proj.index)
        if proj.pre == INPUT:
            if lsm.input.sign == "random":
                draw = generator(spec.seed, "lsm", "input sign", proj.name).random(idx.size)
                w[idx] *= np.where(draw < 0.5, -1.0, 1.0)
        elif proj.pre in LIQUID:
            w[idx] *= (1.0 if proj.pre == EXC else -1.0) * lsm.liquid.scale
    spec.connectivity = dataclasses.replace(conn, weight=w.astype(np.float32))


def spec_variant(spec, plastic: bool, lr_decay: bool = True, monitors: bool = False,
                 weights: Optional[np.ndarray] = None):
    """A copy of ``spec`` with plasticity on or off (and learning-rate decay on or off),
    with or without spike monitors, and optionally other initial weights [nnz]."""
    projections, modulators = spec.projections, spec.modulators
    if not plastic:
        projections = [dataclasses.replace(p, plasticity=None) for p in projections]
        modulators = {}
    elif not lr_decay:
        projections = [dataclasses.replace(p, plasticity=p.plasticity.model_copy(update={"lr_decay": 1.0}))
                       if p.plasticity is not None else p for p in projections]
        modulators = {k: (m.model_copy(update={"lr_decay": 1.0}) if m.type == "astrocyte" else m)
                      for k, m in modulators.items()}
    conn = spec.connectivity
    if weights is not None:
        weights = np.asarray(weights, np.float32).reshape(-1)
        if weights.shape != conn.weight.shape:
            raise SpikingError(f"liquid weights have {weights.size} synapses, the network "
                               f"{conn.weight.size}")
        conn = dataclasses.replace(conn, weight=weights.copy())
    return dataclasses.replace(spec, projections=projections, modulators=modulators,
                               monitors=list(spec.monitors) if monitors else [],
                               connectivity=conn)


class LiquidNetwork(Network):
    """A :class:`spiking.network.Network` over a prepared spec (signed weights, a
    plasticity variant, the initialised weights)."""

    def __init__(self, config, spec, instances: int, backend: Optional[str] = None,
                 device: Optional[str] = None):
        super().__init__(config, backend, instances, device)
        self._prepared = spec

    def build(self) -> "LiquidNetwork":
        if self.sim is None:
            from spiking.engine import Simulator

            began = time.perf_counter()
            self.spec = self._prepared
            self.sim = Simulator(self.spec, self.backend_name, self.instances, self.device,
                                 self.per_instance_weights)
            self.timing["build_s"] = time.perf_counter() - began
        return self

    def all_weights(self) -> np.ndarray:
        """[Bw, nnz] float32 copy of every weight, in CSR order."""
        backend = self.build().backend
        return np.array(backend.to_numpy(backend.weight), dtype=np.float32)


# ----------------------------------------------------------------------------- data
def make_encoder(lsm: LsmSection, dt: float):
    from spiking.data import EventEncoder

    e = lsm.data.encoder
    dt_us = int(round(dt * 1000))
    window_us = int(round(lsm.data.window / dt)) * dt_us
    return EventEncoder(dt_us=dt_us, window_us=window_us, mode=e.mode, crop=e.crop,
                        downsample=e.downsample, polarity=e.polarity)


def check_classes(labels: np.ndarray, where: str, classes: int = 10) -> None:
    counts = np.bincount(np.asarray(labels, np.int64), minlength=classes)
    if counts.size > classes:
        raise DataError(f"{where}: labels go up to {counts.size - 1}; expected digits 0-{classes - 1}")
    missing = [str(c) for c in range(classes) if counts[c] == 0]
    if missing:
        raise DataError(f"{where}: no samples of class(es) {', '.join(missing)}; every class "
                        f"0-{classes - 1} is needed (digit folders {where}/<digit>/)")


@dataclass
class Splits:
    """The data sets of a run: train (Train minus validation), validation, test, and
    the translated copies of train[train_index] the readout also learns from
    (``augmented``, a :class:`spiking.data.Copies`; None without ``data.augment``)."""

    root: str
    train: Any
    train_index: np.ndarray
    validation: Any = None
    test: Any = None
    test_index: Optional[np.ndarray] = None
    augmented: Any = None


def open_splits(lsm: LsmSection, root, dt: float, progress: bool = True,
                require_all_classes: bool = True) -> Splits:
    """Open Train (less ``val_fraction`` for validation) and Test, if present, at ``root``."""
    from spiking.data import NMNIST
    from spiking.data.nmnist import find_sources

    encoder = make_encoder(lsm, dt)
    D = lsm.data
    sources = find_sources(root)
    if "Train" not in sources and "archive" not in sources:
        raise DataError(f"{root}: wrong folder layout: no Train/ folder (or Train.zip); expected "
                        f"Train/<digit>/<name>.bin and Test/<digit>/<name>.bin")
    common = dict(encoder=encoder, cache=True, progress=progress, seed=D.split_seed)
    train = NMNIST(root, "train", val_fraction=D.val_fraction, **common)
    validation = NMNIST(root, "val", val_fraction=D.val_fraction, **common) \
        if D.val_fraction > 0 else None
    test = None
    try:
        test = NMNIST(root, "test", **common)
    except DataError as e:
        if "no Test recordings" not in str(e):
            raise
    if require_all_classes:
        check_classes(train.labels, f"{root}/Train")
        if test is not None:
            check_classes(test.labels, f"{root}/Test")
    train_index = _limit(train.labels, D.max_train, D.split_seed)
    test_index = _limit(test.labels, D.max_test, D.split_seed) if test is not None else None
    augmented = None
    if D.augment.shift:
        from spiking.data import Copies, translations
        augmented = Copies([NMNIST(root, "train", val_fraction=D.val_fraction, transform=move,
                                   **common) for move in translations(D.augment.shift)],
                           train_index)
    return Splits(str(root), train, train_index, validation, test, test_index, augmented)


def _limit(labels: np.ndarray, limit: Optional[int], seed: int) -> np.ndarray:
    """Indices of at most ``limit`` samples, stratified by label (seeded), sorted."""
    n = len(labels)
    if limit is None or limit >= n:
        return np.arange(n)
    from spiking.rng import generator
    perm = generator(seed, "lsm", "limit").permutation(n)
    lab = np.asarray(labels)[perm]
    rank = np.zeros(n)
    counts = np.bincount(lab)
    seen = np.zeros_like(counts)
    for k, c in enumerate(lab):
        rank[k] = (seen[c] + 0.5) / counts[c]
        seen[c] += 1
    return np.sort(perm[np.argsort(rank, kind="stable")[:limit]])


# ----------------------------------------------------------------------------- features
@dataclass
class Features:
    """Per-sample features: spike counts per liquid neuron (bin-major when binned)."""

    counts: np.ndarray      # uint16 [n, bins * n_liquid]
    labels: np.ndarray      # int64 [n]
    branching: np.ndarray   # float64 [n] (NaN when not recorded)
    spikes: np.ndarray      # int64 [n, 2] liquid spikes of E and I
    seconds: float = 0.0    # simulation wall time

    @classmethod
    def empty(cls, width: int) -> "Features":
        return cls(np.zeros((0, width), np.uint16), np.zeros(0, np.int64), np.zeros(0),
                   np.zeros((0, 2), np.int64))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def append(self, other: "Features") -> "Features":
        return Features(np.concatenate([self.counts, other.counts]),
                        np.concatenate([self.labels, other.labels]),
                        np.concatenate([self.branching, other.branching]),
                        np.concatenate([self.spikes, other.spikes]), self.seconds + other.seconds)

    def arrays(self) -> Dict[str, np.ndarray]:
        return {"counts": self.counts, "labels": self.labels, "branching": self.branching,
                "spikes": self.spikes, "seconds": np.float64(self.seconds)}

    @classmethod
    def from_arrays(cls, a) -> "Features":
        return cls(np.asarray(a["counts"]), np.asarray(a["labels"]), np.asarray(a["branching"]),
                   np.asarray(a["spikes"]), float(a["seconds"]))

    def rates_hz(self, window_ms: float, n_exc: int, n_inh: int) -> Dict[str, float]:
        if not len(self):
            return {"E": float("nan"), "I": float("nan")}
        s = window_ms / 1000.0
        return {"E": float(self.spikes[:, 0].mean() / max(n_exc, 1) / s),
                "I": float(self.spikes[:, 1].mean() / max(n_inh, 1) / s)}


class LiquidStateMachine:
    """A liquid built from an LSM config: initialisation and feature extraction."""

    def __init__(self, config, backend: Optional[str] = None, device: Optional[str] = None,
                 batch_size: Optional[int] = None, progress: bool = True):
        self.config = config
        self.lsm: LsmSection = config.sections["lsm"]
        self.readout: ReadoutSection = config.sections.get("readout") or ReadoutSection()
        self.backend = backend or config.backend
        self.device = device or config.device
        self.batch_size = int(batch_size or self.lsm.features.batch_size)
        self.progress = progress
        self._spec = None
        self._pairs = None

    @classmethod
    def from_file(cls, path, overrides: Sequence[str] = (), **kwargs) -> "LiquidStateMachine":
        config, _ = load_lsm_config(path, overrides)
        return cls(config, **kwargs)

    # -- the liquid ------------------------------------------------------------------
    @property
    def spec(self):
        """The built network (signed initial weights, plasticity and monitors on)."""
        if self._spec is None:
            from spiking.build.builder import build_spec

            spec = build_spec(self.config, self.batch_size)
            sign_weights(spec, self.lsm)
            self._spec = spec
        return self._spec

    @property
    def dt(self) -> float:
        return float(self.config.dt)

    @property
    def steps(self) -> int:
        return int(round(self.lsm.data.window / self.dt))

    @property
    def encoder(self):
        return make_encoder(self.lsm, self.dt)

    @property
    def populations(self) -> List[str]:
        return [p for p in LIQUID if p in self.config.populations]

    @property
    def n_liquid(self) -> int:
        return sum(self.config.populations[p].size for p in self.populations)

    @property
    def n_features(self) -> int:
        return self.n_liquid * self.lsm.features.bins

    @property
    def initial_weights(self) -> np.ndarray:
        return self.spec.connectivity.weight.copy()

    def liquid_synapses(self) -> Tuple[np.ndarray, np.ndarray]:
        from spiking.metrics import liquid_synapses

        if self._pairs is None:
            self._pairs = liquid_synapses(self.spec, self.populations)
        return self._pairs

    def connectivity_hash(self) -> str:
        """Fingerprint of the synapses (pre, target, delay, projection) and signed initial weights."""
        import hashlib

        c = self.spec.connectivity
        h = hashlib.sha256()
        for a in (c.indptr, c.target, c.delay, c.projection, c.weight):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    def network(self, instances: int, plastic: bool, lr_decay: bool = True,
                monitors: bool = False, weights: Optional[np.ndarray] = None) -> LiquidNetwork:
        spec = spec_variant(self.spec, plastic and self.lsm.plastic, lr_decay, monitors, weights)
        return LiquidNetwork(self.config, spec, instances, self.backend, self.device).build()

    def describe(self) -> str:
        spec = self.spec
        counts = {p.name: p.n_synapses for p in spec.projections}
        liquid = sum(v for k, v in counts.items() if not k.startswith("in"))
        rule = {"none": "fixed weights (LSM)", "stdp": "STDP (LSM+STDP)",
                "astrocyte": "astrocyte-modulated STDP (NALSM)"}[self.lsm.plasticity.rule]
        return (f"liquid {'x'.join(map(str, self.lsm.liquid.shape))}: "
                f"{self.config.populations[EXC].size if EXC in self.config.populations else 0} E + "
                f"{self.config.populations[INH].size if INH in self.config.populations else 0} I "
                f"neurons, {liquid} liquid and {spec.connectivity.nnz - liquid} input synapses; "
                f"{rule}; backend {self.backend}")

    # -- initialisation ----------------------------------------------------------------
    def init_windows(self, train_index: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(sample, first step) of each initialisation window, seeded."""
        from spiking.rng import generator

        cfg = self.lsm.init
        rng = generator(self.config.seed, "lsm", "init windows")
        width = int(round(cfg.window / self.dt))
        if width > self.steps:
            raise ConfigError(f"lsm.init.window ({cfg.window:g} ms) is longer than a sample "
                              f"({self.lsm.data.window:g} ms)")
        samples = rng.choice(np.asarray(train_index), size=cfg.windows)
        starts = rng.integers(0, self.steps - width + 1, size=cfg.windows)
        return samples, starts

    def initialise(self, dataset, train_index: np.ndarray, start: int = 0,
                   weights: Optional[np.ndarray] = None,
                   checkpoint: Optional[Callable[[int, np.ndarray], None]] = None) -> np.ndarray:
        """Run the unsupervised initialisation (plasticity on, one liquid, random
        windows of training samples); returns the weights [nnz] after it. Resumes
        after window ``start`` from ``weights``; calls ``checkpoint(done, weights)``
        every ``init.checkpoint_every`` windows."""
        cfg = self.lsm.init
        if not (self.lsm.plastic and cfg.enabled and cfg.windows > 0):
            return self.initial_weights if weights is None else weights
        samples, starts = self.init_windows(train_index)
        width = int(round(cfg.window / self.dt))
        net = self.network(1, plastic=True, lr_decay=cfg.lr_decay, weights=weights)
        bar = _bar(cfg.windows, self.progress, "initialising liquid", "window", start)
        chunk = 64
        k = start
        while k < cfg.windows:
            stop = min(cfg.windows, k + chunk)
            x, _ = dataset.batch(samples[k:stop])
            for j in range(stop - k):
                window = x[starts[k + j]:starts[k + j] + width, j:j + 1]
                net.reset(weights=False)
                net.run(width * self.dt, inputs={INPUT: window}, progress=False)
                done = k + j + 1
                if bar is not None:
                    bar.update(1)
                if checkpoint is not None and (done % cfg.checkpoint_every == 0 or done == cfg.windows):
                    checkpoint(done, net.all_weights()[0])
            k = stop
        if bar is not None:
            bar.close()
        return net.all_weights()[0]

    # -- features ------------------------------------------------------------------------
    def extract(self, dataset, indices: Optional[Sequence[int]] = None,
                weights: Optional[np.ndarray] = None, plastic: Optional[bool] = None,
                resume: Optional[Features] = None,
                on_batch: Optional[Callable[[Features], None]] = None,
                desc: str = "features", position: int = 0) -> Features:
        """Spike-count features of ``dataset[indices]`` (all by default), in batches of
        ``batch_size`` instances starting from ``weights`` (default: the initial
        weights). With ``plastic`` (default ``features.plastic``), weights are
        restored before each batch and learn during it. Continues after the samples
        ``resume`` already holds; calls ``on_batch(features so far)`` after each batch.
        The branching factor is measured on the samples whose place in the whole
        list (``position``: that of ``indices[0]``, for a shard of it) is below
        ``features.branching``."""
        F = self.lsm.features
        plastic = F.plastic if plastic is None else plastic
        plastic = plastic and self.lsm.plastic
        indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, np.int64)
        B = self.batch_size
        out = resume if resume is not None else Features.empty(self.n_features)
        done = len(out)
        if done >= len(indices):
            return out
        nets = {}
        pre, post = self.liquid_synapses()
        bar = _bar(len(indices), self.progress, desc, "sample", done)
        while done < len(indices):
            monitored = position + done < F.branching
            if monitored not in nets:
                nets[monitored] = self.network(B, plastic=plastic, monitors=monitored, weights=weights)
            net = nets[monitored]
            idx = indices[done:done + B]
            x, labels = dataset.batch(idx, sparse=True)
            x = x.with_instances(B)   # a last, smaller batch: silent instances after it
            began = time.perf_counter()
            batch = self._run_batch(net, x, plastic, pre, post)
            seconds = time.perf_counter() - began
            n = len(idx)
            branching = np.where(position + done + np.arange(n) < F.branching, batch[1][:n], np.nan)
            part = Features(batch[0][:n], np.asarray(labels, np.int64), branching, batch[2][:n], seconds)
            out = out.append(part)
            done += n
            if bar is not None:
                bar.update(n)
                bar.set_postfix(samples_s=f"{n / max(seconds, 1e-9):.0f}")
            if on_batch is not None:
                on_batch(out)
        if bar is not None:
            bar.close()
        return out

    def _run_batch(self, net: LiquidNetwork, x: SpikeCounts, plastic: bool, pre, post):
        """Run one batch; returns (counts uint16 [B, F], branching [B], spikes [B, 2])."""
        from spiking.metrics import branching_factor

        bins = self.lsm.features.bins
        net.reset(weights=plastic)
        res = net.run(self.steps * self.dt, inputs={INPUT: x}, progress=False, count_bins=bins)
        B = x.shape[1]
        # [B, bins, n_liquid] -> per bin, the liquid's neurons in population order
        features = np.concatenate([res.counts(p, binned=True) for p in self.populations],
                                  axis=2).reshape(B, -1)
        spikes = np.zeros((B, 2), np.int64)
        for p in self.populations:
            spikes[:, LIQUID.index(p)] = res.counts(p).sum(1)
        branching = np.full(B, np.nan)
        if res.spikes:
            inst, step, neuron = self._liquid_spikes(res)
            branching = branching_factor(inst, step, neuron, pre, post, self.n_liquid, self.steps,
                                         n_instances=B, per_instance=True)
        return np.minimum(features, 65535).astype(np.uint16), branching, spikes

    def _liquid_spikes(self, res):
        inst, step, neuron = [], [], []
        offset = 0
        for p in self.populations:
            s = res.spikes[p]
            inst.append(s["instance"])
            step.append(np.rint(s["t"] / self.dt).astype(np.int64))
            neuron.append(s["i"].astype(np.int64) + offset)
            offset += self.config.populations[p].size
        return np.concatenate(inst), np.concatenate(step), np.concatenate(neuron)

    def sample_run(self, dataset, index: int, weights: Optional[np.ndarray] = None,
                   plastic: Optional[bool] = None):
        """One sample with spikes recorded (for a raster): the RunResult."""
        F = self.lsm.features
        plastic = (F.plastic if plastic is None else plastic) and self.lsm.plastic
        net = self.network(1, plastic=plastic, monitors=True, weights=weights)
        x, _ = dataset.batch([index], sparse=True)
        return net.run(self.steps * self.dt, inputs={INPUT: x}, progress=False)


def _bar(total: int, progress: bool, desc: str, unit: str, initial: int = 0):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
