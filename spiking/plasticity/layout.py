"""Flat tables that the backends' kernels read to run learning rules and modulators.

Built once from a NetworkSpec; both backends use the same tables, so learning
is identical on numba and torch. Units: weights in the receptor's unit,
times folded into per-step decay factors.

Rule tables (one row per plastic projection k):
- ``rule_f`` float32 [K, NF]: amplitudes, trace decays, bounds, eta, decays
- ``rule_i`` int64 [K, NI]: kind, options, neuron ranges and their populations'
  indices, trace offsets, modulator indices, range in the plastic-synapse list,
  receptor offset of its targets, offset of a deferred rule's sums
Trace table (one row per distinct STDP trace, which rules with the same population,
decay, increment and pairing share): ``trace_i`` int64 [T, TI], ``trace_inc``
float32 [T]; each spike bumps each of its traces once.
A ``deferred`` rule (``schedule: deferred``) settles its potentiations at
least every ``deferred_span`` steps: the span over which its weighting factor
exp(steps · dt / tau_plus) stays below exp(DEFERRED_RANGE) (see stdp.py, "Deferred").
Synapse tables: ``syn_rule`` int16 [nnz] (-1: static), ``csc_ptr``/``csc_syn``
/``csc_pre``/``csc_rule`` (incoming plastic synapses per post neuron, their pre neuron and
rule), ``plastic_syn``/``plastic_pre``/
``plastic_post`` (plastic synapses grouped by rule), ``row_run``/``run_lo``
(each CSR row cut into runs of one rule: row j's runs are r in
[row_run[j], row_run[j+1]), run r the synapses [run_lo[r], run_lo[r+1]) of rule
run_rule[r]).
Modulator tables (one row per modulator m): ``mod_i`` int64 [M, MI],
``mod_f`` float32 [M, MF], ``astro_sign`` int8 [M, N].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from spiking.errors import ConfigError
from spiking.rng import generator

# rule_f columns
A_PLUS, A_MINUS, X_DECAY, Y_DECAY, INC, W_MIN, W_MAX, E_DECAY, ETA, LR_DECAY, AP_SCALE, AM_SCALE = range(12)
NF = 12
# rule_i columns
KIND, MULT, NEAREST, ELIG, PRE_LO, PRE_HI, POST_LO, POST_HI, X_OFF, Y_OFF, AP_MOD, AM_MOD, MOD, GATE, SYN_LO, SYN_HI, DEFER, PRE_POP, POST_POP, TARGET_OFF, P_OFF = range(21)
NI = 21
# trace_i columns (one row per distinct STDP trace)
T_POP, T_BASE, T_NEAREST = range(3)
TI = 3
STDP, THREE_FACTOR = 0, 1
ELIG_STDP, ELIG_HEBBIAN, ELIG_PRE = 0, 1, 2
# mod_i columns
M_KIND, M_COL, M_SIZE, M_POP_LO, M_TRACE_OFF, M_SIGNAL_COL = range(6)
MI = 6
REWARD, SIGNAL, ERROR, ASTROCYTE = 0, 1, 2, 3
MOD_KINDS = {"reward": REWARD, "signal": SIGNAL, "error": ERROR, "astrocyte": ASTROCYTE}
# mod_f columns
M_DECAY, M_RATE, M_WEIGHT, M_BIAS, M_INITIAL, M_LR_DECAY, M_TRACE_DECAY, M_BASELINE = range(8)
MF = 8
# a deferred rule's weighting factor grows by exp(dt / tau_plus) per step; settling
# before it passes exp(DEFERRED_RANGE) keeps its float64 sums to ~1e-8 relative
DEFERRED_RANGE = 16.0


@dataclass
class PlasticityLayout:
    n_rules: int
    rule_f: np.ndarray
    rule_i: np.ndarray
    syn_rule: np.ndarray
    csc_ptr: np.ndarray
    csc_syn: np.ndarray
    csc_pre: np.ndarray
    csc_rule: np.ndarray
    plastic_syn: np.ndarray
    plastic_pre: np.ndarray
    plastic_post: np.ndarray
    n_traces: int
    trace_i: np.ndarray             # int64 [T, TI]: population, base (trace = base + neuron), nearest
    trace_inc: np.ndarray           # float32 [T]: increment per spike
    n_psum: int                     # entries of the deferred rules' sums P
    needs_eligibility: bool
    mod_names: List[str]
    mod_i: np.ndarray
    mod_f: np.ndarray
    astro_sign: np.ndarray
    n_mod_cols: int
    n_signal_cols: int
    signal_cols: Dict[str, tuple]   # modulator name -> (first column, size) in the signal input
    row_run: np.ndarray = None      # int64 [n + 1]
    run_lo: np.ndarray = None       # int64 [runs + 1]
    run_rule: np.ndarray = None     # int64 [runs]
    deferred_span: int = 0          # steps between settlements of deferred rules (0: none)

    @property
    def active(self) -> bool:
        return self.n_rules > 0 or len(self.mod_names) > 0


def _decay(tau_ms: float, dt: float) -> float:
    return float(np.exp(-dt / tau_ms))


def build_layout(spec) -> PlasticityLayout:
    dt = spec.dt
    n = spec.n_total
    conn = spec.connectivity
    modulators = dict(spec.modulators)
    mod_names = list(modulators)
    mod_index = {name: k for k, name in enumerate(mod_names)}
    n_traces = 0
    # ---- modulators
    M = len(mod_names)
    mod_i = np.zeros((M, MI), np.int64)
    mod_f = np.zeros((M, MF), np.float32)
    astro_sign = np.zeros((M, n), np.int8)
    col = 0
    signal_col = 0
    signal_cols = {}
    for m, name in enumerate(mod_names):
        cfg = modulators[name]
        kind = MOD_KINDS[cfg.type]
        size = 1
        mod_i[m, M_KIND] = kind
        mod_i[m, M_SIGNAL_COL] = -1
        mod_i[m, M_TRACE_OFF] = -1
        mod_f[m, M_INITIAL] = cfg.initial
        if kind == REWARD:
            mod_f[m, M_DECAY] = _decay(cfg.tau, dt)
            mod_f[m, M_BASELINE] = cfg.baseline
        elif kind in (SIGNAL, ERROR):
            if getattr(cfg, "population", None):
                pop = spec.population(cfg.population)
                size = pop.size
                mod_i[m, M_POP_LO] = pop.offset
            mod_i[m, M_SIGNAL_COL] = signal_col
            signal_cols[name] = (signal_col, size)
            signal_col += size
            if kind == ERROR:
                mod_i[m, M_TRACE_OFF] = n_traces
                mod_f[m, M_TRACE_DECAY] = _decay(cfg.tau, dt)
                n_traces += size
        else:  # astrocyte
            mod_f[m, M_RATE] = dt / cfg.tau
            mod_f[m, M_WEIGHT] = cfg.weight
            mod_f[m, M_BIAS] = cfg.bias
            mod_f[m, M_LR_DECAY] = cfg.lr_decay ** dt
            rng = generator(spec.seed, "modulator", name, "fraction")
            for names, sign in ((cfg.liquid, 1), (cfg.input, -1)):
                for pname in names:
                    pop = spec.population(pname)
                    seen = rng.random(pop.size) < cfg.fraction if cfg.fraction < 1 else np.ones(pop.size, bool)
                    astro_sign[m, pop.offset: pop.stop][seen] = sign
        mod_i[m, M_COL] = col
        mod_i[m, M_SIZE] = size
        col += size
    # ---- rules
    plastic = [p for p in spec.projections if p.plasticity is not None]
    K = len(plastic)
    rule_f = np.zeros((K, NF), np.float32)
    rule_i = np.zeros((K, NI), np.int64)
    syn_rule = np.full(conn.nnz, -1, np.int16)
    groups = []
    # STDP traces, one per population, decay, increment and pairing: rules that agree
    # on all four (a liquid's E -> E and E -> I pre traces, say) share one
    trace_at, trace_rows, trace_inc = {}, [], []
    n_psum = 0
    for k, proj in enumerate(plastic):
        cfg = proj.plasticity
        pre, post = spec.population(proj.pre), spec.population(proj.post)
        idx = np.flatnonzero(conn.projection == proj.index)
        syn_rule[idx] = k
        groups.append(idx)
        # a projection has one receptor slot: its targets are slot * n + post neuron
        rule_i[k, TARGET_OFF] = int(conn.target[idx[0]]) // n * n if idx.size else 0
        rule_i[k, KIND] = THREE_FACTOR if cfg.rule == "three_factor" else STDP
        rule_i[k, MULT] = cfg.update == "multiplicative"
        rule_i[k, NEAREST] = cfg.pairing == "nearest"
        rule_i[k, DEFER] = cfg.schedule == "deferred"
        rule_i[k, ELIG] = {"stdp": ELIG_STDP, "hebbian": ELIG_HEBBIAN, "pre": ELIG_PRE}[cfg.eligibility]
        rule_i[k, PRE_LO], rule_i[k, PRE_HI] = pre.offset, pre.stop
        rule_i[k, POST_LO], rule_i[k, POST_HI] = post.offset, post.stop
        rule_i[k, PRE_POP] = spec.populations.index(pre)
        rule_i[k, POST_POP] = spec.populations.index(post)
        for off_col, pop, tau in ((X_OFF, pre, cfg.tau_plus), (Y_OFF, post, cfg.tau_minus)):
            key = (pop.name, np.float32(_decay(tau, dt)), np.float32(cfg.trace_increment),
                   cfg.pairing == "nearest")
            if key not in trace_at:
                trace_at[key] = n_traces
                trace_rows.append((spec.populations.index(pop), n_traces - pop.offset, key[3]))
                trace_inc.append(key[2])
                n_traces += pop.size
            rule_i[k, off_col] = trace_at[key]
        if cfg.schedule == "deferred":   # its own sums P (stdp.py, "Deferred")
            rule_i[k, P_OFF] = n_psum
            n_psum += post.size
        for amp_col, mod_col, scale_col, amp in ((A_PLUS, AP_MOD, AP_SCALE, cfg.a_plus),
                                                  (A_MINUS, AM_MOD, AM_SCALE, cfg.a_minus)):
            if isinstance(amp, (int, float)):
                rule_f[k, amp_col] = amp
                rule_i[k, mod_col] = -1
            else:
                rule_i[k, mod_col] = mod_index[amp.modulator]
                rule_f[k, scale_col] = amp.scale
        rule_i[k, MOD] = mod_index[cfg.modulator] if cfg.modulator else -1
        if cfg.modulator and mod_i[mod_index[cfg.modulator], M_SIZE] > 1 and \
                mod_i[mod_index[cfg.modulator], M_POP_LO] != post.offset:
            raise ConfigError(f"modulator {cfg.modulator!r} is per neuron of another population than "
                              f"{post.name!r}, the post population of {proj.name!r}",
                              file=spec.source_file, path=("projections", proj.name, "plasticity", "modulator"))
        rule_i[k, GATE] = mod_index[cfg.gate] if cfg.gate else -1
        rule_f[k, X_DECAY] = _decay(cfg.tau_plus, dt)
        rule_f[k, Y_DECAY] = _decay(cfg.tau_minus, dt)
        rule_f[k, INC] = cfg.trace_increment
        rule_f[k, W_MIN] = cfg.w_min
        rule_f[k, W_MAX] = cfg.w_max
        if cfg.schedule == "deferred":
            w = conn.weight[idx]
            outside = int(np.count_nonzero((w < rule_f[k, W_MIN]) | (w > rule_f[k, W_MAX])))
            if outside:
                raise ConfigError(
                    f"schedule: deferred needs the initial weights of {proj.name!r} within the "
                    f"rule's bounds [{cfg.w_min}, {cfg.w_max}]; {outside} of {w.size} are outside "
                    f"(use schedule: eager, or bounds that hold them)", file=spec.source_file,
                    path=("projections", proj.name, "plasticity", "schedule"))
        rule_f[k, E_DECAY] = _decay(cfg.tau_eligibility, dt)
        rule_f[k, ETA] = cfg.eta
        rule_f[k, LR_DECAY] = cfg.lr_decay ** dt
    plastic_syn = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    start = 0
    for k, g in enumerate(groups):
        rule_i[k, SYN_LO], rule_i[k, SYN_HI] = start, start + g.size
        start += g.size
    pre_of = conn.pre_index()
    post_of = conn.target.astype(np.int64) % max(n, 1)
    plastic_pre = pre_of[plastic_syn]
    plastic_post = post_of[plastic_syn]
    # incoming plastic synapses per post neuron, in synapse order
    order = np.argsort(plastic_post, kind="stable")
    csc_syn = plastic_syn[order]
    csc_ptr = np.zeros(n + 1, np.int64)
    np.add.at(csc_ptr, plastic_post + 1, 1)
    csc_ptr = np.cumsum(csc_ptr)
    spans = [max(1, int(DEFERRED_RANGE * cfg.tau_plus / dt))
             for cfg in (p.plasticity for p in plastic) if cfg.schedule == "deferred"]
    needs_e = any(rule_i[k, KIND] == THREE_FACTOR and rule_i[k, ELIG] != ELIG_PRE for k in range(K))
    return PlasticityLayout(
        n_rules=K, rule_f=rule_f, rule_i=rule_i, syn_rule=syn_rule, csc_ptr=csc_ptr,
        csc_syn=csc_syn.astype(np.int64), csc_pre=plastic_pre[order].astype(np.int64),
        csc_rule=syn_rule[csc_syn], plastic_syn=plastic_syn.astype(np.int64),
        plastic_pre=plastic_pre.astype(np.int64), plastic_post=plastic_post.astype(np.int64),
        n_traces=n_traces, trace_i=np.array(trace_rows, np.int64).reshape(-1, TI),
        trace_inc=np.array(trace_inc, np.float32), n_psum=n_psum, needs_eligibility=needs_e, mod_names=mod_names, mod_i=mod_i,
        mod_f=mod_f, astro_sign=astro_sign, n_mod_cols=col, n_signal_cols=signal_col,
        signal_cols=signal_cols, deferred_span=min(spans, default=0),
        **rule_runs(conn.indptr, syn_rule))


def rule_runs(indptr: np.ndarray, syn_rule: np.ndarray) -> dict:
    """``row_run`` and ``run_lo``: the CSR rows cut into runs of synapses of one rule;
    ``run_rule``: each run's rule (-1: static), read once per run beside run_lo."""
    indptr = np.asarray(indptr, np.int64)
    nnz = int(indptr[-1])
    cuts = np.flatnonzero(np.diff(syn_rule.astype(np.int64)) != 0) + 1
    run_lo = np.unique(np.concatenate([indptr[:-1][np.diff(indptr) > 0], cuts]).astype(np.int64))
    run_lo = np.append(run_lo, nnz)
    return {"row_run": np.searchsorted(run_lo, indptr).astype(np.int64), "run_lo": run_lo,
            "run_rule": syn_rule[run_lo[:-1]].astype(np.int64)}
