"""Izhikevich reservoir with "what" and "when" readouts trained by a local,
error-modulated, attention-gated three-factor rule.

After Yamada & Chao (2025), "Joint encoding of 'what' and 'when' predictions
through error-modulated plasticity in reservoir spiking networks". The paper's
equations are not public; the form used here is documented below and in
``benchmarks/README.md``.

A file with a ``task:`` section (``configs/reservoir_what_when.yaml``) writes
the reservoir itself (populations, recurrence, noise) like any network file;
the section adds what the task needs (:func:`expand_config`):

- ``cue``: an event_source with ``cue.neurons`` neurons per identity, each
  group firing a regular burst (``cue.interval`` for ``cue.duration``) when
  its cue is shown, projecting sparsely onto the reservoir populations;
- ``what`` and ``when``: LIF readouts, ``readout.neurons`` per identity (one
  "what" group and one "when" group per identity), reading the reservoir
  population ``readout.source`` through all-to-all plastic projections
  ``<source>_what`` and ``<source>_when``;
- modulators ``err_what``, ``err_when`` (per readout neuron: target − y, y the
  neuron's spike trace) and the attention gates ``gate_what``, ``gate_when``
  (signals, one value per instance);
- spike monitors on the readouts and on the source population.

The task (:class:`TaskGenerator`): in each trial a cue c is shown at
``trial.cue_at``; an event of identity k = mapping[c] follows after the
latency L_k with probability p_k. Identity (the mapping), latency and
probability are separate parameters; each may change at a chosen trial
(``switches``), and per instance (``conditions``), so that several conditions
(e.g. p = 0.25, 0.5, 0.75, 1) run as one batch.

The learning rule (the core's ``error_hebbian_readout`` preset, run inside the
simulator for every readout synapse and step):

    dw_ij = eta · G(t) · (f_i(t) − y_i(t)) · x_j(t)

- x_j: presynaptic trace of reservoir neuron j (tau ``readout.tau_trace``), the
  filtered reservoir spikes the readout reads, and the eligibility;
- y_i: readout neuron i's spike trace (tau ``readout.tau_output``), f_i the
  target of its group; (f − y) is the error modulator, one per readout neuron;
- G: the attention gate, 1 inside the windows below, ``gate.baseline`` outside.

Why this form: it is local (a presynaptic trace, an error at the readout
neuron, a global gate); its fixed point is the conditional mean of the target
given the reservoir state, so with stochastic outcomes the readout's amplitude
comes out proportional to the event probability and its peak at the expected
latency without any explicit estimate of either; and with a constant learning
rate it forgets exponentially, so it follows a change of the task without
being told (RLS with forgetting factor 1 does not: its gain decays like 1/n).
An STDP eligibility (the ``rstdp_izhikevich2007`` preset) would need the
readout to fire at the right time before it could learn that time.

Targets (in trace units: y = 3 is about 150 Hz with tau = 20 ms):

- "when" group k: A_when · exp(−(t − t_ev)² / 2σ²) on trials where an event of
  identity k occurs at t_ev, 0 otherwise. A delta rule drives the output to
  the conditional mean of the target given the reservoir state; the state
  before the event does not know whether it will come, so the learned bump
  peaks at the expected latency with amplitude p·A_when.
- "what" group k: A_what during ``target.what_window`` after the cue on trials
  whose event has identity k, 0 otherwise: an early identity prediction,
  worth P(identity k | cue).

Both targets are the trial's realised outcome, given to the error modulator
as the trial plays (as the teacher signal of FORCE is): the rule is online
and local, the supervision is not causal by the width of the bump.

Attention gate (one signal per readout kind): open (1) over ``gate.cue``
after the cue (for the readouts in ``gate.cue_for``), around the *expected*
event and around the actual event (± ``gate.event``, value
``gate.event_gain``, for ``gate.event_for``), ``gate.baseline`` elsewhere.
The expectation is the network's own: wherever its "when" output after this
cue, averaged over past trials (:class:`Expectation`), exceeds
``gate.min_amplitude`` × A_when; not the task's latency. An omitted event
therefore still opens the gate where it was expected, and the error (0 − y)
depresses; a moved event opens it where it now happens. So the rule
re-adapts to a latency or probability switch without being told.

Probe trials: the rule learns within a trial, and the "when" target starts
3σ before the event, so a learning trial's own output is partly made by that
trial's target. After every ``probe_every`` trials a probe trial (another
cue of the same phase, gates shut, FORCE not updated) records what the
readouts predict; the analysis measures on probes (``metrics.json``:
``measured_on``), and on the online trials for reference.

Consolidation (serves "what"): every ``consolidation.block`` trials, each cue
is replayed offline (no events) ``consolidation.replays`` times with only the
"what" gate open over the cue window, and the "what" target set to the
block's outcome frequencies (the fraction of trials with cue c whose event had
identity k) instead of single outcomes; the same rule runs in the simulator.
Online, "what" sees one 0/1 outcome per trial; the replay averages them.

FORCE (:mod:`networks.force`) reads the same source spikes of the same runs
(readouts do not feed back, so the reservoir is the same), filtered with
``readout.tau_trace``, and learns both readouts by recursive least squares.

Every simulation goes through ``Network.run``; there is no time loop here.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from pydantic import Field, field_validator, model_validator

from spiking.config.schema import (SECTIONS, FieldError, PositiveTime, Quantity, Section,
                                   register_section)
from spiking.errors import ConfigError
from spiking.network import Network

CUE, WHAT, WHEN = "cue", "what", "when"
KINDS = (WHAT, WHEN)
ERR = {WHAT: "err_what", WHEN: "err_when"}
GATE = {WHAT: "gate_what", WHEN: "gate_when"}
Time = Quantity("time")
NonNegTime = Quantity("time", low=0.0)
Current = Quantity("current", low=0.0, low_exclusive=True)
Voltage = Quantity("voltage")
GENERATED_POPULATIONS = (CUE, WHAT, WHEN)
GENERATED_MODULATORS = tuple(ERR.values()) + tuple(GATE.values())


# ----------------------------------------------------------------------------- config
def _times(value: Any) -> Tuple[float, ...]:
    """A time or a list of times (one per identity), in ms."""
    from spiking.config.units import parse_quantity

    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError("expected a time or a list of times, got an empty list")
    out = []
    for k, v in enumerate(items):
        try:
            t = float(parse_quantity(v, "time"))
        except ValueError as e:
            raise FieldError(str(e), k) if isinstance(value, (list, tuple)) else e
        if not t > 0:
            raise ValueError(f"latencies must be > 0 ms, got {t:g} ms")
        out.append(t)
    return tuple(out)


def _probabilities(value: Any) -> Tuple[float, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError("expected a probability or a list of them, got an empty list")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            raise ValueError(f"probabilities are numbers in [0, 1], got {v!r}")
        out.append(float(v))
    return tuple(out)


def _mapping(value: Any) -> Optional[Tuple[int, ...]]:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                      for v in value):
        raise ValueError(f"a mapping is a list of identities, one per cue, got {value!r}")
    return tuple(value)


def _window(value: Any) -> Tuple[float, float]:
    from spiking.config.units import parse_quantity

    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"expected [start, stop] (times after the cue), got {value!r}")
    lo, hi = (float(parse_quantity(v, "time")) for v in value)
    if not 0 <= lo < hi:
        raise ValueError(f"expected 0 <= start < stop, got [{lo:g} ms, {hi:g} ms]")
    return lo, hi


class Phase(Section):
    """Task parameters that may differ per instance (``conditions``) and change at
    a trial (``switches``). Unset keys keep their value."""

    latency: Optional[Tuple[float, ...]] = None       # ms, one value or one per identity
    probability: Optional[Tuple[float, ...]] = None   # one value or one per identity
    mapping: Optional[Tuple[int, ...]] = None         # cue c -> event identity

    _lat = field_validator("latency", mode="before")(classmethod(lambda cls, v: None if v is None else _times(v)))
    _prob = field_validator("probability", mode="before")(
        classmethod(lambda cls, v: None if v is None else _probabilities(v)))
    _map = field_validator("mapping", mode="before")(classmethod(lambda cls, v: _mapping(v)))


class Switch(Phase):
    """From trial ``trial`` on, the values given here apply (to every instance, or
    per instance with ``conditions``)."""

    trial: int = Field(ge=1)
    conditions: Optional[List[Phase]] = None


class CueConfig(Section):
    neurons: int = Field(20, ge=1)                 # per identity
    duration: PositiveTime = 50.0                  # ms of the burst
    interval: PositiveTime = 5.0                   # ms between the spikes of a cue neuron
    connectivity: float = Field(0.1, gt=0, le=1)   # probability of a cue -> reservoir synapse
    weight: Dict[str, float] = {"E": 1.0, "I": 2.0}   # per reservoir population (its receptor's unit)
    delay: PositiveTime = 1.0


class ReadoutNeuron(Section):
    tau_m: PositiveTime = 20.0
    tau_syn: PositiveTime = 5.0
    v_thresh: Voltage = 1.0          # above v_rest = v_reset = 0 mV
    tau_refrac: NonNegTime = 2.0
    cm: Quantity("capacitance", low=0.0, low_exclusive=True) = 1.0


class ReadoutConfig(Section):
    neurons: int = Field(5, ge=1)              # per group (one what and one when group per identity)
    source: str = "E"                          # reservoir population the readouts read
    tau_trace: PositiveTime = 20.0             # presynaptic trace = eligibility (and FORCE's filter)
    tau_output: PositiveTime = 20.0            # readout spike trace y in the error
    eta_what: float = Field(0.002, ge=0)
    eta_when: float = Field(0.002, ge=0)
    w_max: float = Field(1.0, gt=0)            # weights in [-w_max, w_max] (nA)
    w_init: float = Field(0.01, ge=0)          # initial weights uniform in [-w_init, w_init]
    neuron: ReadoutNeuron = ReadoutNeuron()


class TrialConfig(Section):
    length: PositiveTime = 1000.0      # ms per trial
    cue_at: NonNegTime = 300.0         # cue onset within the trial


class TargetConfig(Section):
    when_amplitude: float = Field(2.0, gt=0)
    when_width: PositiveTime = 20.0            # sigma of the bump, ms
    what_amplitude: float = Field(1.5, gt=0)
    what_window: Tuple[float, float] = (50.0, 200.0)   # ms after the cue

    _w = field_validator("what_window", mode="before")(classmethod(lambda cls, v: _window(v)))


class GateConfig(Section):
    cue: Tuple[float, float] = (0.0, 200.0)    # open over this window after the cue
    event: PositiveTime = 60.0                 # half-width around expected and actual events
    event_gain: float = Field(1.0, gt=0)       # gate value in the event windows (the cue window's is 1)
    baseline: float = Field(0.0, ge=0, le=1)   # value outside the windows
    expected: bool = True                      # open around the network's own expected time
    min_amplitude: float = Field(0.3, ge=0)    # an expectation needs a peak of this x when_amplitude
    memory: float = Field(0.2, gt=0, le=1)     # weight of the newest trial in the expectation
    cue_for: List[str] = ["what", "when"]      # readouts whose gate the cue window opens
    event_for: List[str] = ["what", "when"]    # ... and the expected/actual event windows

    @field_validator("cue_for", "event_for")
    @classmethod
    def _readouts(cls, value):
        for k, name in enumerate(value):
            if name not in ("what", "when"):
                raise FieldError(f"readouts are what and when, got {name!r}", k)
        return value

    _w = field_validator("cue", mode="before")(classmethod(lambda cls, v: _window(v)))


class ConsolidationConfig(Section):
    enabled: bool = True
    block: int = Field(20, ge=1)       # trials between consolidation steps
    replays: int = Field(1, ge=1)      # offline replays of each cue per step


class ForceConfig(Section):
    enabled: bool = True
    alpha: float = Field(1.0, gt=0)    # P(0) = I / alpha
    every: PositiveTime = 10.0         # ms between RLS samples
    block: int = Field(40, ge=1)       # samples applied at once (same weights as one at a time)
    bias: bool = True                  # a constant feature


class AnalysisConfig(Section):
    window: int = Field(20, ge=1)       # trials in the moving average of readout traces
    tolerance: float = Field(0.1, gt=0)   # re-adapted: latency within this fraction, amplitude within it x 2
    hold: int = Field(12, ge=1)         # ... for this many consecutive trials
    steady: int = Field(50, ge=1)       # last trials of a phase (and before a switch) that give its figures
    code_window: Optional[int] = Field(None, ge=1)   # ... its amplitude ~ p figures (default: steady)


class TaskSection(Section):
    """The ``task:`` section: the what/when prediction task on a reservoir."""

    identities: int = Field(2, ge=1)
    trials: int = Field(600, ge=1)
    test_trials: int = Field(40, ge=0)   # frozen evaluation (no learning) ...
    test_each_phase: bool = True         # ... at the end of every phase, else only at the end
    probe_every: int = Field(4, ge=0)    # a probe trial (no learning) after every n trials; 0: none
    seed: Optional[int] = Field(None, ge=0)   # default: the file's seed
    reservoir: List[str] = ["E", "I"]   # populations the cues drive
    latency: Tuple[float, ...] = (250.0,)
    probability: Tuple[float, ...] = (1.0,)
    mapping: Optional[Tuple[int, ...]] = None   # default: cue k -> identity k
    cue_order: str = "random"                   # random | alternate
    conditions: Optional[List[Phase]] = None    # one per instance
    switches: List[Switch] = []
    trial: TrialConfig = TrialConfig()
    cue: CueConfig = CueConfig()
    readout: ReadoutConfig = ReadoutConfig()
    target: TargetConfig = TargetConfig()
    gate: GateConfig = GateConfig()
    consolidation: ConsolidationConfig = ConsolidationConfig()
    force: ForceConfig = ForceConfig()
    analysis: AnalysisConfig = AnalysisConfig()

    _lat = field_validator("latency", mode="before")(classmethod(lambda cls, v: _times(v)))
    _prob = field_validator("probability", mode="before")(classmethod(lambda cls, v: _probabilities(v)))
    _map = field_validator("mapping", mode="before")(classmethod(lambda cls, v: _mapping(v)))

    @field_validator("cue_order")
    @classmethod
    def _order(cls, value):
        if value not in ("random", "alternate"):
            raise ValueError(f"must be random or alternate, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self) -> "TaskSection":
        K = self.identities
        phases = [("", self)] + [(f"conditions.{i}.", c) for i, c in enumerate(self.conditions or [])]
        for s, sw in enumerate(self.switches):
            phases.append((f"switches.{s}.", sw))
            phases += [(f"switches.{s}.conditions.{i}.", c) for i, c in enumerate(sw.conditions or [])]
        latencies = []
        for where, ph in phases:
            for key in ("latency", "probability", "mapping"):
                value = getattr(ph, key)
                if value is None:
                    continue
                if key != "mapping" and len(value) not in (1, K):
                    raise FieldError(f"has {len(value)} values; give one, or one per identity ({K})",
                                     *where.split(".")[:-1], key)
                if key == "mapping":
                    if len(value) != K or not all(0 <= v < K for v in value):
                        raise FieldError(f"must list {K} identities in 0..{K - 1} (one per cue), "
                                         f"got {list(value)}", *where.split(".")[:-1], key)
            if ph.latency is not None:
                latencies += list(ph.latency)
        n_inst = len(self.conditions) if self.conditions else None
        trials = [sw.trial for sw in self.switches]
        if trials != sorted(trials) or len(set(trials)) != len(trials):
            raise FieldError("switches must be in increasing order of trial, one per trial", "switches")
        for s, sw in enumerate(self.switches):
            if sw.trial >= self.trials:
                raise FieldError(f"trial {sw.trial} is not before the end ({self.trials} trials)",
                                 "switches", s, "trial")
            if sw.conditions is not None and len(sw.conditions) != (n_inst or len(sw.conditions)):
                raise FieldError(f"has {len(sw.conditions)} conditions; the task has {n_inst} instances",
                                 "switches", s, "conditions")
        end = self.trial.cue_at + max(latencies) + 3 * self.target.when_width
        if end > self.trial.length:
            raise FieldError(f"a trial of {self.trial.length:g} ms cannot hold the cue at "
                             f"{self.trial.cue_at:g} ms, a latency of {max(latencies):g} ms and the "
                             f"event's bump (3 sigma = {3 * self.target.when_width:g} ms): need "
                             f">= {end:g} ms", "trial", "length")
        for name, (lo, hi) in (("target.what_window", self.target.what_window), ("gate.cue", self.gate.cue)):
            if self.trial.cue_at + hi > self.trial.length:
                raise FieldError(f"ends after the trial ({self.trial.cue_at + hi:g} > "
                                 f"{self.trial.length:g} ms)", *name.split("."))
        if self.cue.interval > self.cue.duration:
            raise FieldError("must not exceed cue.duration", "cue", "interval")
        return self

    @property
    def instances(self) -> Optional[int]:
        """Instances fixed by the task (one per condition), else None."""
        if self.conditions:
            return len(self.conditions)
        for sw in self.switches:
            if sw.conditions:
                return len(sw.conditions)
        return None


if "task" not in SECTIONS:
    register_section("task", TaskSection)


# ----------------------------------------------------------------------------- loading
def load_reservoir_config(path, overrides: Sequence[str] = (), readouts: bool = True,
                          plastic: bool = True):
    """Load a reservoir file (``base:`` merged, ``--set`` applied), add the cue,
    readouts, modulators and monitors of its ``task:`` section and validate.
    Returns (NetworkConfig, TaskSection). ``readouts=False`` adds only the cue
    (the reservoir alone, for timing); ``plastic=False`` adds the readouts
    without their learning rule (for timing the rule)."""
    from spiking.config.loader import apply_overrides, load_tree

    data, source = load_tree(path)
    apply_overrides(data, source, overrides or ())
    return expand_config(data, source, str(path), readouts, plastic)


def expand_config(data: dict, source, file: str, readouts: bool = True, plastic: bool = True):
    """Validate ``data`` with its ``task:`` section, add the generated parts and
    validate the result; returns (NetworkConfig, TaskSection)."""
    from spiking.config.loader import validate

    if not isinstance(data, dict) or "task" not in data:
        raise ConfigError("not a reservoir task file: it has no task: section", file=file)
    plain = validate(copy.deepcopy(data), source, file)   # the reservoir and the section alone
    task: TaskSection = plain.sections["task"]
    for key, names in (("populations", GENERATED_POPULATIONS), ("modulators", GENERATED_MODULATORS)):
        for name in names:
            if name in (data.get(key) or {}):
                where, line = source.locate((key, name))
                raise ConfigError(f"{name!r} is generated from the task: section; rename it",
                                  file=where or file, line=line, path=(key, name))
    pops = plain.populations
    for k, name in enumerate(task.reservoir):
        if name not in pops:
            where, line = source.locate(("task", "reservoir"))
            raise ConfigError(f"no population {name!r}; populations: {', '.join(pops)}",
                              file=where or file, line=line, path=("task", "reservoir", k))
    for name in task.cue.weight:
        if name not in task.reservoir:
            where, line = source.locate(("task", "cue", "weight", name))
            raise ConfigError(f"{name!r} is not a reservoir population ({', '.join(task.reservoir)})",
                              file=where or file, line=line, path=("task", "cue", "weight", name))
    if task.readout.source not in pops:
        where, line = source.locate(("task", "readout", "source"))
        raise ConfigError(f"no population {task.readout.source!r}; populations: {', '.join(pops)}",
                          file=where or file, line=line, path=("task", "readout", "source"))
    out = copy.deepcopy(data)
    tree = network_tree(task, readouts, plastic)
    for key, part in tree.items():
        if key == "monitors":
            out["monitors"] = list(out.get("monitors") or []) + part
        else:
            out.setdefault(key, {})
            if out[key] is None:
                out[key] = {}
            out[key].update(part)
    config = validate(out, source, file)
    return config, config.sections["task"]


def network_tree(task: TaskSection, readouts: bool = True, plastic: bool = True) -> dict:
    """The populations, projections, modulators and monitors the task adds
    (only the cue and its projections without ``readouts``; the readout
    projections without their rule, and no modulators, without ``plastic``)."""
    K, r = task.identities, task.readout
    n = r.neurons * K
    nrn = r.neuron
    lif = {"tau_m": nrn.tau_m, "cm": nrn.cm, "v_rest": 0.0, "v_reset": 0.0, "v_thresh": nrn.v_thresh,
           "tau_refrac": nrn.tau_refrac, "tau_syn_E": nrn.tau_syn, "tau_syn_I": nrn.tau_syn}
    populations = {CUE: {"size": task.cue.neurons * K, "model": "event_source"},
                   WHAT: {"size": n, "model": "lif", "params": dict(lif)},
                   WHEN: {"size": n, "model": "lif", "params": dict(lif)}}
    projections = {}
    for pop, w in task.cue.weight.items():
        projections[f"{CUE}_{pop}"] = {
            "pre": CUE, "post": pop, "receptor_type": "excitatory",
            "connector": {"type": "fixed_probability", "p": task.cue.connectivity},
            "weight": w, "delay": task.cue.delay}
    if not readouts:
        return {"populations": {CUE: populations[CUE]}, "projections": projections}
    modulators = {}
    for kind in KINDS:
        modulators[ERR[kind]] = {"type": "error", "population": kind, "tau": r.tau_output}
        modulators[GATE[kind]] = {"type": "signal"}
        projections[f"{r.source}_{kind}"] = {
            "pre": r.source, "post": kind, "receptor_type": "excitatory",
            "connector": {"type": "all_to_all"},
            "weight": {"distribution": "uniform", "low": -r.w_init, "high": r.w_init} if r.w_init > 0 else 0.0,
            "delay": 1.0,
            "plasticity": {"preset": "error_hebbian_readout", "modulator": ERR[kind], "gate": GATE[kind],
                           "eta": r.eta_what if kind == WHAT else r.eta_when,
                           "tau_plus": r.tau_trace, "w_min": -r.w_max, "w_max": r.w_max}}
    if not plastic:
        modulators = {}
        for kind in KINDS:
            del projections[f"{r.source}_{kind}"]["plasticity"]
    monitors = [{"type": "spikes", "population": WHAT}, {"type": "spikes", "population": WHEN},
                {"type": "spikes", "population": r.source}]
    return {"populations": populations, "projections": projections, "modulators": modulators,
            "monitors": monitors}


# ----------------------------------------------------------------------------- task
@dataclass
class PhaseValues:
    latency: np.ndarray       # [K] ms
    probability: np.ndarray   # [K]
    mapping: np.ndarray       # [K] cue -> identity


@dataclass
class Trials:
    """A batch of trials' draws, per instance: [n, B] each."""

    cue: np.ndarray           # int, cue shown
    identity: np.ndarray      # int, identity of the (possible) event = mapping[cue]
    occurred: np.ndarray      # bool
    latency: np.ndarray       # ms, latency of this identity now
    probability: np.ndarray   # probability of this identity's event now


class TaskGenerator:
    """Draws trials: cue c, event identity mapping[c] after latency L with
    probability p, per instance, with the schedule's switches.

    The three random draws use separate streams (the cue sequence, the
    occurrences, nothing else), so changing a probability does not change
    which cues are shown; latency and identity are deterministic functions of
    the schedule."""

    def __init__(self, task: TaskSection, instances: int, seed: int, stream: str = "task"):
        from spiking.rng import generator

        self.task = task
        self.instances = instances
        self.K = task.identities
        if task.instances is not None and task.instances != instances:
            raise ConfigError(f"the task has {task.instances} conditions, one per instance, "
                              f"but {instances} instances were asked for")
        self._cue_rng = [generator(seed, stream, "cue", str(b)) for b in range(instances)]
        self._occ_rng = [generator(seed, stream, "occurrence", str(b)) for b in range(instances)]
        self.next_trial = 0

    def _apply(self, values: PhaseValues, ph: Phase) -> PhaseValues:
        K = self.K
        lat = values.latency if ph.latency is None else np.broadcast_to(np.array(ph.latency, float), (K,))
        prob = values.probability if ph.probability is None else np.broadcast_to(
            np.array(ph.probability, float), (K,))
        mp = values.mapping if ph.mapping is None else np.array(ph.mapping, int)
        return PhaseValues(np.array(lat, float), np.array(prob, float), np.array(mp, int))

    def phase(self, trial: int, b: int) -> PhaseValues:
        """The parameters in force at ``trial`` for instance ``b``."""
        t = self.task
        K = self.K
        values = PhaseValues(np.broadcast_to(np.array(t.latency, float), (K,)).copy(),
                             np.broadcast_to(np.array(t.probability, float), (K,)).copy(),
                             np.array(t.mapping if t.mapping is not None else range(K), int))
        if t.conditions:
            values = self._apply(values, t.conditions[b])
        for sw in t.switches:
            if sw.trial > trial:
                break
            values = self._apply(values, sw)
            if sw.conditions:
                values = self._apply(values, sw.conditions[b])
        return values

    def switch_kinds(self) -> List[Tuple[int, List[str]]]:
        """(trial, [changed parameters]) for each switch that changes something."""
        out = []
        for sw in self.task.switches:
            changed = set()
            for b in range(self.instances):
                before, after = self.phase(sw.trial - 1, b), self.phase(sw.trial, b)
                for key in ("latency", "probability", "mapping"):
                    if not np.array_equal(getattr(before, key), getattr(after, key)):
                        changed.add(key)
            if changed:
                out.append((sw.trial, sorted(changed)))
        return out

    def draw(self, n: int = 1, at: Optional[int] = None) -> Trials:
        """The next ``n`` trials; with ``at``, ``n`` trials with the parameters of
        trial ``at`` (the schedule does not advance)."""
        B, K = self.instances, self.K
        cue = np.zeros((n, B), int)
        occ = np.zeros((n, B), bool)
        ident = np.zeros((n, B), int)
        lat = np.zeros((n, B))
        prob = np.zeros((n, B))
        for i in range(n):
            trial = self.next_trial + i if at is None else at
            for b in range(B):
                if self.task.cue_order == "alternate":
                    c = trial % K
                else:
                    c = int(self._cue_rng[b].integers(K))
                u = self._occ_rng[b].random()
                ph = self.phase(trial, b)
                k = int(ph.mapping[c])
                cue[i, b], ident[i, b] = c, k
                lat[i, b], prob[i, b] = ph.latency[k], ph.probability[k]
                occ[i, b] = u < ph.probability[k]
        if at is None:
            self.next_trial += n
        return Trials(cue, ident, occ, lat, prob)


# ----------------------------------------------------------------------------- helpers
def exp_filter(x: np.ndarray, decay: float, state: Optional[np.ndarray] = None):
    """y[t] = decay * y[t-1] + x[t] along axis 0; returns (y, last row)."""
    from scipy.signal import lfilter

    zi = None if state is None else (decay * state)[None]
    if zi is None:
        y = lfilter([1.0], [1.0, -decay], x, axis=0)
    else:
        y, _ = lfilter([1.0], [1.0, -decay], x, axis=0, zi=zi)
    y = y.astype(np.float32)
    return y, y[-1].copy()


def spike_raster(spikes: dict, T: int, B: int, n: int, t0: int, dt: float) -> np.ndarray:
    """[T, B, n] spike counts of a run that started at step t0."""
    raster = np.zeros((T, B, n), np.float32)
    steps = np.rint(spikes["t"] / dt).astype(np.int64) - t0
    np.add.at(raster, (steps, spikes["instance"], spikes["i"]), 1.0)
    return raster


class Expectation:
    """The network's own expected event time after each cue: the peak of its
    "when" output (largest group), exponentially averaged over trials."""

    def __init__(self, instances: int, cues: int, steps: int, memory: float, min_peak: float,
                 start: int):
        self.trace = np.zeros((instances, cues, steps), np.float32)
        self.seen = np.zeros((instances, cues), bool)
        self.memory, self.min_peak, self.start = memory, min_peak, start

    def update(self, b: int, cue: int, when_window: np.ndarray) -> None:
        """``when_window``: [steps, K] "when" group outputs after the cue."""
        y = when_window.max(axis=1)
        if not self.seen[b, cue]:
            self.trace[b, cue] = y
            self.seen[b, cue] = True
        else:
            self.trace[b, cue] += self.memory * (y - self.trace[b, cue])

    def expected(self, b: int, cue: int) -> np.ndarray:
        """Steps after the cue where the network expects an event: where its
        averaged "when" output exceeds the threshold (empty if nowhere)."""
        if not self.seen[b, cue]:
            return np.zeros(0, np.int64)
        y = self.trace[b, cue]
        above = np.flatnonzero(y[self.start:] >= self.min_peak) + self.start
        return above

    def peak(self, b: int, cue: int) -> Optional[int]:
        """Steps after the cue of the expected event's peak, or None."""
        above = self.expected(b, cue)
        if above.size == 0:
            return None
        return int(above[np.argmax(self.trace[b, cue, above])])


# ----------------------------------------------------------------------------- experiment
METHODS = ("three_factor", "force", "force_reset")


@dataclass
class TrialLog:
    """Per trial and instance: the draws and the readouts' outputs after the cue."""

    cue: List[np.ndarray] = field(default_factory=list)
    identity: List[np.ndarray] = field(default_factory=list)
    occurred: List[np.ndarray] = field(default_factory=list)
    latency: List[np.ndarray] = field(default_factory=list)
    probability: List[np.ndarray] = field(default_factory=list)
    # method -> list of [B, steps] (group of the trial's identity) / [B, K]
    when: Dict[str, list] = field(default_factory=lambda: {m: [] for m in METHODS})
    what_trace: Dict[str, list] = field(default_factory=lambda: {m: [] for m in METHODS})
    what: Dict[str, list] = field(default_factory=lambda: {m: [] for m in METHODS})
    when_other: Dict[str, list] = field(default_factory=lambda: {m: [] for m in METHODS})

    def arrays(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {k: np.array(getattr(self, k)) for k in
                               ("cue", "identity", "occurred", "latency", "probability")}
        for key in ("when", "what_trace", "what", "when_other"):
            out[key] = {m: np.array(v) for m, v in getattr(self, key).items() if v}
        return out


class WhatWhenExperiment:
    """The reservoir, its three-factor readouts and the FORCE baselines on one task."""

    def __init__(self, config, task: TaskSection, backend: Optional[str] = None,
                 device: Optional[str] = None, instances: Optional[int] = None,
                 progress: bool = False, force: Optional[bool] = None):
        self.config = config
        self.task = task
        B = instances or task.instances or config.instances
        self.net = Network(config, backend=backend, instances=B, device=device)
        self.net.build()
        self.spec = self.net.spec
        self.B = B
        self.K = task.identities
        self.dt = self.spec.dt
        self.steps = int(round(task.trial.length / self.dt))
        self.cue_step = int(round(task.trial.cue_at / self.dt))
        self.window = self.steps - self.cue_step
        self.n_ro = task.readout.neurons
        self.src = task.readout.source
        self.n_src = self.spec.population(self.src).size
        seed = task.seed if task.seed is not None else config.seed
        self.generator = TaskGenerator(task, B, seed)
        self.probe_generator = TaskGenerator(task, B, seed, stream="probe")
        self.progress = progress
        self.decay_out = float(np.exp(-self.dt / task.readout.tau_output))
        self.decay_in = float(np.exp(-self.dt / task.readout.tau_trace))
        self._y_state = {k: np.zeros((B, self.K * self.n_ro), np.float32) for k in KINDS}
        self._x_state = np.zeros((B, self.n_src), np.float32)
        g = task.gate
        self.expectation = Expectation(B, self.K, self.window, g.memory,
                                       g.min_amplitude * task.target.when_amplitude,
                                       int(round(g.cue[1] / self.dt)))
        use_force = task.force.enabled if force is None else force
        self.force = {}
        if use_force:
            from networks.force import RLSReadout
            for m, reset in (("force", False), ("force_reset", True)):
                self.force[m] = RLSReadout(self.n_src, 2 * self.K, B, task.force.alpha,
                                           int(round(task.force.every / self.dt)), task.force.bias,
                                           reset_at_switches=reset, block=task.force.block)
        self.initial = {k: self.net.weights(f"{self.src}_{k}").copy() for k in KINDS}
        self.log = TrialLog()
        self.probe_log = TrialLog()
        self.probe_trials: List[int] = []     # the training trial each probe follows
        self.trial = 0
        self.sim_ms = 0.0
        self.timing = {"sim_s": 0.0, "sim_cpu_s": 0.0, "force_s": 0.0, "host_s": 0.0}
        self._switch_trials = {t for t, _ in self.generator.switch_kinds()}
        self._block: List[Trials] = []

    # -- signals --------------------------------------------------------------------------
    def _cue_input(self, cues: np.ndarray) -> np.ndarray:
        c = self.task.cue
        arr = np.zeros((self.steps, self.B, c.neurons * self.K), np.uint8)
        every = max(1, int(round(c.interval / self.dt)))
        burst = np.arange(self.cue_step, self.cue_step + int(round(c.duration / self.dt)), every)
        for b in range(self.B):
            lo = int(cues[b]) * c.neurons
            arr[burst, b, lo:lo + c.neurons] = 1
        return arr

    def targets(self, trials: Trials, i: int = 0) -> Dict[str, np.ndarray]:
        """Group targets [steps, B, K] of trial i of ``trials``."""
        tg = self.task.target
        t = np.arange(self.steps) * self.dt
        cue_t = self.task.trial.cue_at
        what = np.zeros((self.steps, self.B, self.K), np.float32)
        when = np.zeros((self.steps, self.B, self.K), np.float32)
        lo, hi = tg.what_window
        in_what = (t >= cue_t + lo) & (t < cue_t + hi)
        for b in range(self.B):
            if not trials.occurred[i, b]:
                continue
            k = trials.identity[i, b]
            t_ev = cue_t + trials.latency[i, b]
            when[:, b, k] = tg.when_amplitude * np.exp(-0.5 * ((t - t_ev) / tg.when_width) ** 2)
            what[in_what, b, k] = tg.what_amplitude
        return {WHAT: what, WHEN: when}

    def gate(self, trials: Trials, i: int = 0) -> Dict[str, np.ndarray]:
        """Attention gates [steps, B] per readout: open after the cue (for the
        readouts in ``gate.cue_for``), around the expected event (the network's
        own expectation) and around an actual event (for ``gate.event_for``),
        ``gate.baseline`` elsewhere."""
        g = self.task.gate
        dt = self.dt
        lo, hi = (self.cue_step + int(round(x / dt)) for x in g.cue)
        half = int(round(g.event / dt))
        kernel = np.ones(2 * half + 1, bool)
        events = np.zeros((self.steps, self.B), bool)
        for b in range(self.B):
            mask = np.zeros(self.steps, bool)
            if g.expected:
                mask[self.cue_step + self.expectation.expected(b, int(trials.cue[i, b]))] = True
            if trials.occurred[i, b]:
                mask[min(self.steps - 1, self.cue_step + int(round(trials.latency[i, b] / dt)))] = True
            if mask.any():
                events[:, b] = np.convolve(mask, kernel, mode="same") > 0
        out = {}
        for kind in KINDS:
            gate = np.full((self.steps, self.B), g.baseline, np.float32)
            if kind in g.cue_for:
                gate[lo:hi] = 1.0
            if kind in g.event_for:
                gate[events] = g.event_gain
            out[kind] = gate
        return out

    def _expand(self, groups: np.ndarray) -> np.ndarray:
        """[T, B, K] group values -> [T, B, K * n_ro] per readout neuron."""
        return np.repeat(groups, self.n_ro, axis=2)

    # -- running --------------------------------------------------------------------------
    def _run(self, cues: np.ndarray, signals: Dict[str, np.ndarray]):
        t0 = self.net.backend.t
        c0, w0 = time.process_time(), time.perf_counter()
        res = self.net.run(self.steps * self.dt, inputs={CUE: self._cue_input(cues)},
                           signals=signals, progress=False)
        self.timing["sim_s"] += time.perf_counter() - w0
        self.timing["sim_cpu_s"] += time.process_time() - c0
        self.sim_ms += self.steps * self.dt
        return res, t0

    def _outputs(self, res, t0: int) -> Dict[str, np.ndarray]:
        """Readout group outputs [steps, B, K] (mean spike trace of each group)."""
        out = {}
        for kind in KINDS:
            raster = spike_raster(res.spikes[kind], self.steps, self.B, self.K * self.n_ro, t0, self.dt)
            y, self._y_state[kind] = exp_filter(raster, self.decay_out, self._y_state[kind])
            out[kind] = y.reshape(self.steps, self.B, self.K, self.n_ro).mean(axis=3)
        return out

    def _features(self, res, t0: int) -> np.ndarray:
        raster = spike_raster(res.spikes[self.src], self.steps, self.B, self.n_src, t0, self.dt)
        x, self._x_state = exp_filter(raster, self.decay_in, self._x_state)
        return x

    def run_trial(self, learn: bool = True, trials: Optional[Trials] = None,
                  log: Optional[TrialLog] = None) -> None:
        """One trial for every instance: cue, (possible) event, online learning
        (``learn``); the next trial of the schedule unless ``trials`` is given."""
        h0 = time.perf_counter()
        if trials is None:
            trials = self.generator.draw(1)
        tg = self.targets(trials)
        zero = np.zeros((self.steps, self.B), np.float32)
        gate = self.gate(trials) if learn else {k: zero for k in KINDS}
        signals = {ERR[k]: self._expand(tg[k]) for k in KINDS}
        signals.update({GATE[k]: gate[k] for k in KINDS})
        self.timing["host_s"] += time.perf_counter() - h0
        res, t0 = self._run(trials.cue[0], signals)
        h0 = time.perf_counter()
        outputs = {"three_factor": self._outputs(res, t0)}
        if self.force:
            x = self._features(res, t0)
            f0 = time.perf_counter()
            target = np.concatenate([tg[WHAT], tg[WHEN]], axis=2)
            for name, rls in self.force.items():
                if learn and self.trial in self._switch_trials:
                    rls.switch()
                z = rls.run(x, target, learn=learn)
                outputs[name] = {WHAT: z[:, :, :self.K], WHEN: z[:, :, self.K:]}
            self.timing["force_s"] += time.perf_counter() - f0
        self._log(trials, outputs, self.log if log is None else log)
        if learn:
            for b in range(self.B):
                self.expectation.update(b, int(trials.cue[0, b]),
                                        outputs["three_factor"][WHEN][self.cue_step:, b])
        self.timing["host_s"] += time.perf_counter() - h0
        if learn:
            self.trial += 1
            self._block.append(trials)
            c = self.task.consolidation
            if c.enabled and len(self._block) >= c.block:
                self.consolidate()

    def _log(self, trials: Trials, outputs: Dict[str, Dict[str, np.ndarray]], L: TrialLog) -> None:
        s = self.cue_step
        for key in ("cue", "identity", "occurred", "latency", "probability"):
            getattr(L, key).append(getattr(trials, key)[0].copy())
        lo, hi = (int(round(x / self.dt)) for x in self.task.target.what_window)
        bi = np.arange(self.B)
        k = trials.identity[0]
        for m, out in outputs.items():
            when, what = out[WHEN][s:], out[WHAT][s:]                 # [W, B, K]
            L.when[m].append(when[:, bi, k].T.astype(np.float32))     # [B, W]
            L.what_trace[m].append(what[:, bi, k].T.astype(np.float32))
            L.what[m].append(what[lo:hi].mean(axis=0).astype(np.float32))    # [B, K]
            other = when.copy()
            other[:, bi, k] = -np.inf
            L.when_other[m].append(other.max(axis=(0, 2)) if self.K > 1 else np.zeros(self.B, np.float32))

    def consolidate(self) -> None:
        """Offline replay of each cue with the block's outcome frequencies as the
        "what" target; only the "what" gate is open (over the cue window)."""
        block, self._block = self._block, []
        c = self.task.consolidation
        K, B = self.K, self.B
        cue = np.concatenate([t.cue for t in block])          # [n, B]
        ident = np.concatenate([t.identity for t in block])
        occ = np.concatenate([t.occurred for t in block])
        freq = np.zeros((B, K, K), np.float32)                # [b, cue, identity]
        for b in range(B):
            for cc in range(K):
                sel = cue[:, b] == cc
                if sel.any():
                    for k in range(K):
                        freq[b, cc, k] = np.mean(occ[sel, b] & (ident[sel, b] == k))
        tg = self.task.target
        t = np.arange(self.steps) * self.dt
        lo, hi = tg.what_window
        in_what = (t >= self.task.trial.cue_at + lo) & (t < self.task.trial.cue_at + hi)
        g = self.task.gate
        glo, ghi = (self.cue_step + int(round(x / self.dt)) for x in g.cue)
        gate = np.zeros((self.steps, B), np.float32)
        gate[glo:ghi] = 1.0
        zero = np.zeros((self.steps, B), np.float32)
        for _ in range(c.replays):
            for cc in range(K):
                what = np.zeros((self.steps, B, K), np.float32)
                what[in_what] = tg.what_amplitude * freq[:, cc, :][None]
                signals = {ERR[WHAT]: self._expand(what),
                           ERR[WHEN]: self._expand(np.zeros_like(what)),
                           GATE[WHAT]: gate, GATE[WHEN]: zero}
                res, t0 = self._run(np.full(B, cc), signals)
                self._outputs(res, t0)            # keep the output filters in step
                if self.force:
                    self._features(res, t0)

    def train(self, trials: Optional[int] = None, callback=None) -> None:
        """``trials`` more trials of the schedule (default: all of them)."""
        n = self.task.trials - self.trial if trials is None else trials
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=n, unit="trial", desc="what/when", leave=False, dynamic_ncols=True)
        for _ in range(n):
            self.run_trial(learn=True)
            if self.task.probe_every and self.trial % self.task.probe_every == 0:
                self.probe()
            if bar is not None:
                bar.update(1)
            if callback is not None:
                callback(self)
        if bar is not None:
            bar.close()

    def probe(self) -> None:
        """A probe trial: the next cue of the probe stream with the parameters of
        the last trial, no learning (gates shut, FORCE not updated). Probe
        trials measure what the readouts predict, unaffected by the learning
        that the current trial's own target causes within that trial."""
        draws = self.probe_generator.draw(1, at=max(0, self.trial - 1))
        self.run_trial(learn=False, trials=draws, log=self.probe_log)
        self.probe_trials.append(self.trial - 1)

    def test(self, trials: Optional[int] = None) -> Dict[str, Any]:
        """Frozen evaluation with the parameters of the last trial: gates shut,
        FORCE not updated, no consolidation; the schedule's trials and draws are
        not used up. Returns the log arrays of the test trials."""
        n = self.task.test_trials if trials is None else trials
        gen = copy.deepcopy(self.generator)
        draws = gen.draw(n, at=max(0, self.trial - 1))
        log = TrialLog()
        for i in range(n):
            one = Trials(*(getattr(draws, f)[i:i + 1] for f in ("cue", "identity", "occurred", "latency",
                                                                 "probability")))
            self.run_trial(learn=False, trials=one, log=log)
        return log.arrays()

    # -- weights --------------------------------------------------------------------------
    def weight_matrix(self, kind: str, initial: bool = False) -> np.ndarray:
        """[B, K * n_ro, n_src] weights of the "what" or "when" readout."""
        name = f"{self.src}_{kind}"
        w = self.initial[kind] if initial else self.net.weights(name)
        idx = self.net.backend.synapse_index(name)
        conn = self.spec.connectivity
        pre = conn.pre_index()[idx] - self.spec.population(self.src).offset
        post = conn.target[idx].astype(np.int64) % self.spec.n_total - self.spec.population(kind).offset
        out = np.zeros((w.shape[0], self.K * self.n_ro, self.n_src), np.float32)
        out[:, post, pre] = w
        return np.broadcast_to(out, (self.B,) + out.shape[1:]).copy() if out.shape[0] == 1 else out

    def learned_vectors(self, kind: str, method: str = "three_factor") -> np.ndarray:
        """[B, K, n_src] learned readout vector per identity (group mean of W − W0
        for the three-factor rule; FORCE's weights, bias dropped)."""
        if method == "three_factor":
            dw = self.weight_matrix(kind) - self.weight_matrix(kind, initial=True)
            return dw.reshape(self.B, self.K, self.n_ro, self.n_src).mean(axis=2)
        W = self.force[method].W[:, :self.n_src]          # [B, F, 2K]
        cols = slice(0, self.K) if kind == WHAT else slice(self.K, 2 * self.K)
        return np.transpose(W[:, :, cols], (0, 2, 1)).copy()


def reservoir_speed(config, task: TaskSection, seconds: float = 10.0,
                    backend: Optional[str] = None, learn: bool = False) -> Dict[str, float]:
    """Speed of a network of the file (one instance), driven by its noise and
    one cue per trial: wall and CPU seconds per simulated second and the
    real-time factors. ``config`` from ``load_reservoir_config(..., readouts=False)``
    times the reservoir alone; with readouts, it times the whole model, with
    the gates shut (the rule runs over every readout synapse but changes
    nothing), or with ``learn`` the gates held open and the targets at 1, so
    that every readout synapse is written every step (the rule's worst case)."""
    net = Network(config, backend=backend, instances=1)
    net.build()
    if learn:
        for kind in KINDS:
            net.set_signal(GATE[kind], 1.0)
            net.set_signal(ERR[kind], 1.0)
    steps = int(round(task.trial.length / net.spec.dt))
    cue_step = int(round(task.trial.cue_at / net.spec.dt))
    n_cue = task.cue.neurons * task.identities
    burst = np.arange(cue_step, cue_step + int(round(task.cue.duration / net.spec.dt)),
                      max(1, int(round(task.cue.interval / net.spec.dt))))
    net.run(net.spec.dt, progress=False)       # load the kernels
    trials = max(1, int(round(seconds * 1000.0 / task.trial.length)))
    wall = cpu = 0.0
    spikes = 0
    for n in range(trials):
        block = np.zeros((steps, 1, n_cue), np.uint8)
        c = n % task.identities
        block[burst, 0, c * task.cue.neurons:(c + 1) * task.cue.neurons] = 1
        w0, c0 = time.perf_counter(), time.process_time()
        res = net.run(steps * net.spec.dt, inputs={CUE: block}, progress=False)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        spikes += int(res.pop_counts.sum())
    simulated = trials * steps * net.spec.dt / 1000.0
    rates = {name: s["rate_hz"] for name, s in res.population_summary().items()}
    return {"simulated_s": simulated, "wall_per_s": wall / simulated, "cpu_per_s": cpu / simulated,
            "realtime_factor_wall": simulated / wall, "realtime_factor_cpu": simulated / cpu,
            "neurons": int(net.spec.n_total), "synapses": int(net.n_synapses),
            "spikes": spikes, "rates_hz_last_trial": rates}
