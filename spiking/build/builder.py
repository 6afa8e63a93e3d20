"""Config -> NetworkSpec: sample parameters, place neurons, connect, lay out CSR.

Every random draw comes from a generator keyed by the component's name
(:func:`spiking.rng.generator`), so adding a population does not change the
connectivity of another.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

import numpy as np

from spiking.build.connectors import Endpoints, connect
from spiking.build.spec import Connectivity, MonitorSpec, NetworkSpec, PopulationSpec, ProjectionSpec
from spiking.config.values import Constant
from spiking.errors import ConfigError, SimulationError
from spiking.models.base import RECEPTOR_SLOTS, get_model
from spiking.models.sources import ARRAY_ID, EVENT_ID, POISSON_ID, poisson_table
from spiking.rng import generator, stream_key
from spiking.synapses.csr import csr_order

BUILD_BYTES_PER_SYNAPSE = 48   # peak while generating and sorting one synapse
MAX_DELAY_STEPS = np.iinfo(np.int16).max


def build_spec(config, instances: Optional[int] = None) -> NetworkSpec:
    """Sample and lay out the network described by a validated ``NetworkConfig``."""
    check_memory(config, instances or config.instances)
    base_dir = os.path.dirname(os.path.abspath(config.source_file)) if getattr(
        config, "source_file", None) else os.getcwd()
    positions = _place_on_grids(config)
    populations: List[PopulationSpec] = []
    offset = 0
    for name, pcfg in config.populations.items():
        populations.append(_build_population(config, name, pcfg, offset, positions.get(name), base_dir))
        offset += pcfg.size
    by_name = {p.name: p for p in populations}
    projections, connectivity = _build_projections(config, by_name, offset, base_dir)
    monitors = [_build_monitor(m, by_name, config.dt) for m in config.monitors]
    return NetworkSpec(
        name=config.name or "network", dt=float(config.dt),
        n_steps=int(round(config.duration / config.dt)), seed=int(config.seed),
        instances=int(instances or config.instances), backend=config.backend,
        device=config.device, populations=populations, projections=projections,
        connectivity=connectivity, monitors=monitors,
        source_file=getattr(config, "source_file", None),
        sections=dict(getattr(config, "sections", {}) or {}),
        modulators=dict(getattr(config, "modulators", {}) or {}),
    )


# ----------------------------------------------------------------------------- memory
def expected_synapses(config) -> Dict[str, float]:
    """Expected synapse count per projection (an upper bound for ``distance``)."""
    out = {}
    for name, proj in config.projections.items():
        n_pre = config.populations[proj.pre].size
        n_post = config.populations[proj.post].size
        c = proj.connector
        kind = c.type
        if kind == "all_to_all":
            out[name] = n_pre * n_post
        elif kind == "one_to_one":
            out[name] = n_pre
        elif kind == "fixed_probability":
            out[name] = c.p * n_pre * n_post
        elif kind == "fixed_indegree":
            out[name] = c.n * n_post
        elif kind == "fixed_outdegree":
            out[name] = c.n * n_pre
        elif kind == "distance":
            out[name] = c.c * n_pre * n_post
        else:
            pre = getattr(c, "pre", None)
            out[name] = len(pre) if pre is not None else 0
    return out


def available_memory() -> int:
    """Bytes the OS reports as available (MemAvailable), or a large number if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 50


def estimate_bytes(config, instances: int) -> int:
    nnz = sum(expected_synapses(config).values())
    n = sum(p.size for p in config.populations.values())
    per_instance_w = any(getattr(p, "plasticity", None) for p in config.projections.values())
    runtime = nnz * (12 + (4 * instances if per_instance_w else 4)) + instances * n * (3 * 8 * 16 + 64)
    return int(nnz * BUILD_BYTES_PER_SYNAPSE + runtime)


def check_memory(config, instances: int) -> None:
    need, have = estimate_bytes(config, instances), available_memory()
    if need > 0.9 * have:
        raise SimulationError(
            f"network {config.name or ''} needs about {need / 2**30:.1f} GiB to build and run "
            f"({sum(expected_synapses(config).values()):.3g} synapses, {instances} instance(s)), "
            f"but only {have / 2**30:.1f} GiB is available; reduce sizes, connection "
            f"probabilities or instances")


# ----------------------------------------------------------------------------- populations
def _place_on_grids(config) -> Dict[str, np.ndarray]:
    """Give populations that share a grid disjoint random sites (um)."""
    claims: Dict[str, List[str]] = {}
    for name, p in config.populations.items():
        if p.positions is not None:
            claims.setdefault(p.positions.grid, []).append(name)
    placed = {}
    for grid_name, names in claims.items():
        grid = config.grids[grid_name]
        shape = tuple(int(s) for s in grid.shape)
        sites = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
        need = sum(config.populations[n].size for n in names)
        if need > len(sites):
            raise ConfigError(f"populations {', '.join(names)} need {need} sites but grid "
                              f"{grid_name!r} has {len(sites)}", file=config.source_file,
                              path=("grids", grid_name))
        order = generator(config.seed, "grid", grid_name).permutation(len(sites))
        start = 0
        for n in names:
            size = config.populations[n].size
            placed[n] = sites[order[start:start + size]].astype(np.float64) * float(grid.spacing)
            start += size
    return placed


def _sample(spec, n: int, rng, names: dict, where: tuple, config) -> np.ndarray:
    try:
        return np.asarray(spec.sample(n, rng, names), dtype=np.float64)
    except ValueError as e:
        raise ConfigError(str(e), file=getattr(config, "source_file", None), path=where) from None


def _build_population(config, name, pcfg, offset, positions, base_dir) -> PopulationSpec:
    info = get_model(pcfg.model)
    n = int(pcfg.size)
    r = generator(config.seed, "population", name, "r").random(n)
    names = {"r": r, "i": np.arange(n, dtype=np.float64), "n": float(n)}
    if positions is not None:
        names.update(x=positions[:, 0], y=positions[:, 1], z=positions[:, 2])
    params = {}
    for pname, pinfo in info.params.items():
        value = pcfg.params.get(pname)
        if value is None:
            if pinfo.default is None:
                raise ConfigError(f"model {info.name} needs parameter {pname!r}",
                                  file=config.source_file, path=("populations", name, "params"))
            value = Constant(pinfo.default)
        rng = generator(config.seed, "population", name, "param", pname)
        params[pname] = _sample(value, n, rng, names, ("populations", name, "params", pname), config)
        _check_bounds(pinfo, params[pname], ("populations", name, "params", pname), config)
    options = {k: v for k, v in (getattr(pcfg, "options", None) or {}).items()}
    spec = PopulationSpec(name=name, model=info.name, model_id=info.model_id, kind=info.kind,
                          size=n, offset=offset, params=params, options=options,
                          positions=positions)
    spec.stream_key = int(stream_key(config.seed, "population", name))
    if info.kind == "neuron":
        spec.coef = info.prepare(params, options, float(config.dt))
        initial = {}
        state_names = dict(names, **params)
        for sname, value in (pcfg.initial or {}).items():
            rng = generator(config.seed, "population", name, "initial", sname)
            initial[sname] = _sample(value, n, rng, state_names, ("populations", name, "initial", sname), config)
        spec.state0 = info.initial_state(params, initial)
    elif info.model_id == POISSON_ID:
        spec.source_table = poisson_table(params, float(config.dt))
    elif info.model_id == ARRAY_ID:
        spec.spike_steps, spec.spike_index = _spike_array(config, name, pcfg, options, base_dir)
    elif info.model_id == EVENT_ID and options.get("file"):
        spec.events = _event_file(config, name, options["file"], n, base_dir)
    return spec


def _check_bounds(pinfo, values, where, config):
    bad = None
    if pinfo.low is not None:
        bad = values <= pinfo.low if pinfo.low_exclusive else values < pinfo.low
    if pinfo.high is not None:
        over = values > pinfo.high
        bad = over if bad is None else (bad | over)
    if bad is not None and bad.any():
        rel = ">" if pinfo.low_exclusive else ">="
        rule = f"{rel} {pinfo.low}" if pinfo.low is not None else ""
        if pinfo.high is not None:
            rule += f"{' and ' if rule else ''}<= {pinfo.high}"
        raise ConfigError(f"{int(bad.sum())} value(s) out of range (must be {rule}); first: "
                          f"{values[bad][0]:g}", file=config.source_file, path=where)


def _spike_array(config, name, pcfg, options, base_dir):
    """Spike times -> (step, neuron) pairs sorted by step."""
    times = options.get("spike_times")
    where = ("populations", name, "spike_times")
    if isinstance(times, dict) or isinstance(times, str):
        file = times["file"] if isinstance(times, dict) else times
        path = file if os.path.isabs(file) else os.path.join(base_dir, file)
        try:
            with np.load(path) as data:
                idx, t = np.asarray(data["i"], np.int64), np.asarray(data["t"], np.float64)
        except (OSError, KeyError, ValueError) as e:
            raise ConfigError(f"cannot read spike times from {path}: {e}",
                              file=config.source_file, path=where) from None
    else:
        times = times or []
        if len(times) != pcfg.size:
            raise ConfigError(f"spike_times has {len(times)} lists for {pcfg.size} neurons",
                              file=config.source_file, path=where)
        idx = np.concatenate([np.full(len(ts), k, np.int64) for k, ts in enumerate(times)] or [np.zeros(0, np.int64)])
        t = np.concatenate([np.asarray(ts, np.float64) for ts in times] or [np.zeros(0)])
    if idx.size and (idx.min() < 0 or idx.max() >= pcfg.size):
        raise ConfigError("spike_times: neuron index out of range", file=config.source_file, path=where)
    if (t < 0).any():
        raise ConfigError("spike_times: negative time", file=config.source_file, path=where)
    steps = np.rint(t / config.dt).astype(np.int64)
    order = np.argsort(steps, kind="stable")
    return steps[order], idx[order]


def _event_file(config, name, file, n, base_dir):
    path = file if os.path.isabs(file) else os.path.join(base_dir, file)
    try:
        with np.load(path) as data:
            spikes = np.asarray(data["spikes"])
    except (OSError, KeyError, ValueError) as e:
        raise ConfigError(f"cannot read events from {path}: {e}", file=config.source_file,
                          path=("populations", name, "file")) from None
    if spikes.shape[-1] != n or spikes.ndim not in (2, 3):
        raise ConfigError(f"{path}: spikes must be [T, {n}] or [T, B, {n}], got {spikes.shape}",
                          file=config.source_file, path=("populations", name, "file"))
    return spikes.astype(np.uint8)


# ----------------------------------------------------------------------------- projections
def _build_projections(config, pops: Dict[str, PopulationSpec], n_total: int, base_dir):
    projections, parts = [], []
    dt = float(config.dt)
    for index, (name, pcfg) in enumerate(config.projections.items()):
        pre, post = pops[pcfg.pre], pops[pcfg.post]
        where = ("projections", name)
        if post.kind != "neuron":
            raise ConfigError(f"post population {post.name!r} is a {post.model}, which cannot "
                              f"receive synapses", file=config.source_file, path=where + ("post",))
        ends = Endpoints(pre.size, post.size, pre.name == post.name, pre.positions,
                         post.positions, base_dir)
        try:
            syn = connect(pcfg.connector, ends, generator(config.seed, "projection", name, "connect"))
        except ValueError as e:
            raise ConfigError(str(e), file=config.source_file, path=where + ("connector",)) from None
        names = _synapse_names(syn, pre, post)
        weight = syn.weight if syn.weight is not None else _synapse_values(
            pcfg.weight, syn.pre.size, generator(config.seed, "projection", name, "weight"),
            names, where + ("weight",), config)
        delay_ms = syn.delay if syn.delay is not None else _synapse_values(
            pcfg.delay if pcfg.delay is not None else Constant(dt), syn.pre.size,
            generator(config.seed, "projection", name, "delay"), names, where + ("delay",), config)
        delay = _delay_steps(delay_ms, syn.pre.size, dt, config, where + ("delay",))
        slot = RECEPTOR_SLOTS[pcfg.receptor_type]
        parts.append(((syn.pre + pre.offset).astype(np.int32),
                      (slot * n_total + syn.post + post.offset).astype(np.int32),
                      delay, np.asarray(weight, dtype=np.float32), np.full(syn.pre.size, index, np.int16)))
        projections.append(ProjectionSpec(
            name=name, index=index, pre=pre.name, post=post.name, receptor=pcfg.receptor_type,
            n_synapses=int(syn.pre.size), plasticity=getattr(pcfg, "plasticity", None),
            hardware=getattr(pcfg, "hardware", None)))
    return projections, _layout(parts, n_total)


class _Lazy(dict):
    """Expression names computed only when an expression asks for them."""

    def __init__(self, makers):
        super().__init__()
        self.makers = makers

    def __missing__(self, key):
        if key not in self.makers:
            raise KeyError(key)
        self[key] = value = self.makers[key]()
        return value

    def keys(self):
        return self.makers.keys()

    def __contains__(self, key):
        return key in self.makers


def _synapse_names(syn, pre, post):
    makers = {"i": lambda: syn.pre.astype(np.float64), "j": lambda: syn.post.astype(np.float64)}
    if pre.positions is not None and post.positions is not None:
        makers["d"] = lambda: np.linalg.norm(pre.positions[syn.pre] - post.positions[syn.post], axis=1)
    return _Lazy(makers)


def _synapse_values(value, n, rng, names, where, config):
    """Per-synapse values; a constant stays a scalar (broadcast later)."""
    if isinstance(value, Constant):
        return np.float64(value.value)
    return _sample(value, n, rng, names, where, config)


def _delay_steps(delay_ms, n: int, dt: float, config, where) -> np.ndarray:
    delay_ms = np.asarray(delay_ms, dtype=np.float64)
    steps = np.rint(delay_ms / dt)
    if steps.size and steps.min() < 1:
        raise ConfigError(f"delay {delay_ms[steps < 1].min():g} ms is shorter than dt = {dt:g} ms",
                          file=config.source_file, path=where)
    if steps.size and steps.max() > MAX_DELAY_STEPS:
        raise ConfigError(f"delay {delay_ms.max():g} ms is longer than {MAX_DELAY_STEPS} steps",
                          file=config.source_file, path=where)
    return np.broadcast_to(steps.astype(np.int16), (n,))


def _layout(parts, n_total: int) -> Connectivity:
    """Concatenate the projections and group synapses by presynaptic neuron."""
    columns = [np.concatenate([np.broadcast_to(p[k], p[0].shape) for p in parts]) if parts
               else np.zeros(0, dtype) for k, dtype in
               enumerate((np.int32, np.int32, np.int16, np.float32, np.int16))]
    indptr, order = csr_order(columns[0], n_total)
    target, delay, weight, projection = (np.take(c, order) for c in columns[1:])
    return Connectivity(indptr=indptr, target=target, delay=delay, weight=weight,
                        projection=projection)


# ----------------------------------------------------------------------------- monitors
def _build_monitor(mcfg, pops: Dict[str, PopulationSpec], dt: float) -> MonitorSpec:
    if mcfg.type == "weights":
        return MonitorSpec(type="weights", population="", projection=mcfg.projection,
                           every=int(round(mcfg.every / dt)) if mcfg.every else 0, bins=mcfg.bins)
    pop = pops[mcfg.population]
    neurons = getattr(mcfg, "neurons", None)
    if neurons is None:
        local = np.arange(pop.size)
    elif isinstance(neurons, int):
        local = np.arange(min(neurons, pop.size))
    else:
        local = np.asarray(neurons, dtype=np.int64)
        if local.size and (local.min() < 0 or local.max() >= pop.size):
            raise ConfigError(f"monitor neuron index out of range [0, {pop.size})",
                              path=("monitors", mcfg.population))
    spec = MonitorSpec(type=mcfg.type, population=pop.name, neurons=local + pop.offset)
    if mcfg.type == "state":
        info = get_model(pop.model)
        spec.variables = list(mcfg.variables)
        spec.rows = [info.state_rows[v] for v in spec.variables]
        spec.every = max(1, int(round(mcfg.every / dt))) if mcfg.every else 1
    elif mcfg.type == "rate":
        spec.bin = max(1, int(round(mcfg.bin / dt))) if mcfg.bin else 1
    return spec
