"""CPU backend: one compiled kernel runs a chunk of steps for all instances.

Instances are independent, so large batches run in parallel (``prange``);
each instance walks the time loop of :mod:`spiking.engine` in the order of
``docs/architecture.md``: deliver + integrate + detect (per population), then
propagate spikes through the CSR into the ring buffer, then record. Kernels are
compiled once and cached on disk (numba ``cache=True``), so they serve every
network without recompiling.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from spiking.backends.base import ArrayBackend, row_weights
from spiking.models import izhikevich, lif
from spiking.models.kernel import UNIFORM, ring_slot
from spiking.models.sources import EXP_MINUS_LAM, LAM, POISSON_ID, START_STEP, STOP_STEP
from spiking.plasticity import modulators, stdp, three_factor
from spiking.plasticity.layout import (A_MINUS, A_PLUS, AM_MOD, AM_SCALE, AP_MOD, AP_SCALE,
                                       DEFER, LR_DECAY, M_COL)
from spiking.rng import poisson_from_uniform, uniform_at
from spiking.synapses import array_read

LIF_ID, IZH_ID = lif.INFO.model_id, izhikevich.INFO.model_id
# Below this much work per chunk (instance-steps x (neurons + synapses / 10)),
# starting threads costs more than it saves.
PARALLEL_WORK = 2_000_000
POISSON_TABLE = 32   # entries of the per-step Poisson CDF table of a uniform-rate source


@njit(cache=True, nogil=True)
def _sources(model, lo, hi, b, bx, t, tt, mode, src, stream_keys, ext_ptr, ext_neuron,
             ext_count, spikes, counts, n_spikes, drawn):
    """Emit the spikes of source neurons [lo, hi) for step t; a Poisson source draws
    from its random-stream keys ``stream_keys[2 lo:2 hi]``; drawn: uint8 scratch."""
    if model != POISSON_ID:
        return _external(lo, hi, ext_ptr[bx, tt], ext_ptr[bx, tt + 1], ext_neuron, ext_count,
                         spikes, counts, n_spikes)
    keys = stream_keys[2 * lo:2 * hi]
    if mode & UNIFORM:
        if not (src[START_STEP, lo] <= t < src[STOP_STEP, lo] and src[LAM, lo] > 0):
            return n_spikes
        return _poisson_uniform(lo, hi, b, t, src[LAM, lo], src[EXP_MINUS_LAM, lo], keys,
                                drawn, spikes, counts, n_spikes)
    for j in range(lo, hi):
        if src[START_STEP, j] <= t < src[STOP_STEP, j] and src[LAM, j] > 0:
            c = poisson_from_uniform(uniform_at(keys[j - lo], t, b), src[EXP_MINUS_LAM, j],
                                     src[LAM, j])
            if c > 0:
                spikes[n_spikes] = j
                counts[n_spikes] = c
                n_spikes += 1
    return n_spikes


@njit(cache=True, nogil=True)
def _poisson_uniform(lo, hi, b, t, lam, exp_minus_lam, keys, drawn, spikes, counts, n_spikes):
    """Poisson sources [lo, hi) with one rate: pass 1 (vectorised) counts the
    entries of the CDF table below each uniform, pass 2 emits the nonzero
    counts; a uniform beyond the table goes through the sampler itself."""
    cdf = _poisson_cdf(lam, exp_minus_lam)
    n = hi - lo
    for j in range(n):
        u = uniform_at(keys[j], t, b)
        c = 0
        for k in range(POISSON_TABLE):  # cdf ascends: the entries below u are a prefix
            c += u > cdf[k]
        drawn[j] = c
    for j in range(n):
        c = np.int32(drawn[j])
        if c > 0:
            if c == POISSON_TABLE:
                c = poisson_from_uniform(uniform_at(keys[j], t, b), exp_minus_lam, lam)
            spikes[n_spikes] = lo + j
            counts[n_spikes] = c
            n_spikes += 1
    return n_spikes


@njit(cache=True, nogil=True)
def _poisson_cdf(lam, exp_minus_lam):
    """The partial sums that :func:`spiking.rng.poisson_from_uniform` compares u
    with, by the same operations (so the counts are the same): P(X <= k), k < 32."""
    cdf = np.empty(POISSON_TABLE)
    p = exp_minus_lam
    s = p
    cdf[0] = s
    for k in range(1, POISSON_TABLE):
        p = p * lam / k
        s += p
        cdf[k] = s
    return cdf


@njit(cache=True, nogil=True)
def _external(lo, hi, first, stop, ext_neuron, ext_count, spikes, counts, n_spikes):
    """Spikes of the event/array source [lo, hi) among this step's external spikes
    ``first:stop`` (global neuron indices, ascending)."""
    for e in range(np.uint64(first), np.uint64(stop)):
        j = ext_neuron[e]
        if j >= hi:
            break
        if j >= lo:
            spikes[n_spikes] = j
            counts[n_spikes] = ext_count[e]
            n_spikes += 1
    return n_spikes


@njit(cache=True, nogil=True)
def _amplitudes(b, rule_f, rule_i, mod_state, mod_i, lr, amp):
    """This step's STDP amplitudes per rule: a constant times the learning-rate
    decay, or a modulator's value (the NALSM astrocyte) times a scale."""
    for k in range(rule_i.shape[0]):
        for which, amp_col, mod_col, scale_col in ((0, A_PLUS, AP_MOD, AP_SCALE),
                                                   (1, A_MINUS, AM_MOD, AM_SCALE)):
            mod = rule_i[k, mod_col]
            if mod >= 0:
                amp[b, k, which] = rule_f[k, scale_col] * mod_state[b, mod_i[mod, M_COL]]
            else:
                amp[b, k, which] = rule_f[k, amp_col] * lr[b, k]


@njit(cache=True, nogil=True)
def run_instance(b, t0, n_steps, pop_model, pop_lo, pop_hi, pop_mode,
              state, coef, src, stream_keys, ext_ptr, ext_neuron, ext_count, ring, indptr,
              target, delay, row_delay, row_weight, weight, initial_weight, restore,
              record_flag, rec_t, rec_i, rec_n, run_counts, count_bin, pop_counts,
              mon_neuron, mon_row, mon_every, mon_out, error, scratch_idx, scratch_cnt,
              learn, rule_f, rule_i, run_rule, row_run, run_lo, csc_ptr, csc_syn, csc_pre,
              csc_rule, plastic_syn, plastic_pre, plastic_post, traces, trace_decay, trace_i,
              trace_inc, elig, lr,
              clips, amp, mod_state, mod_aux, mod_i, mod_f, astro_sign, astro_drive, signal_in,
              defer_span, defer_sum, defer_snap, defer_age,
              syn_proj, hw_table, hw_key, hw_any, hw_learn, hw_wtable, hw_wkey, hw_g, hw_level,
              hw_writes, hw_frozen):
    """Advance instance b by ``n_steps`` steps starting at step ``t0``.

    error[b] = (step, population) of the first NaN/Inf, else (-1, -1).
    Spikes of step t0 + tt are counted in ``run_counts[b, count_bin[tt]]``.
    With ``restore``, the instance's weights start from ``initial_weight``.
    With ``learn``, plasticity and modulators run too (see spiking.plasticity);
    deferred STDP rules settle every ``defer_span`` steps (0: no deferred rule), and
    what is pending at the chunk's end stays so (``defer_age[b]`` steps of it) until
    the next chunk or :func:`settle_pending`.
    """
    n_total = state.shape[2]
    depth = ring.shape[0]
    n_pop = pop_model.shape[0]
    per_instance_weights = weight.shape[0] > 1
    per_instance_input = ext_ptr.shape[0] > 1
    per_instance_signal = signal_in.shape[1] > 1
    wb = np.int64(b) if per_instance_weights else np.int64(0)
    if restore:   # reset to the initial weights (learning: one row per instance); a loop,
        # since numba's slice assignment copies element by element with index checks
        first = wb if initial_weight.shape[0] > 1 else 0
        for s in range(np.uint64(weight.shape[1])):
            weight[wb, s] = initial_weight[first, s]
    bx = np.int64(b) if per_instance_input else np.int64(0)
    sb = np.int64(b) if per_instance_signal else np.int64(0)
    spikes = scratch_idx[b]
    counts = scratch_cnt[b]
    fired_words = np.zeros(n_total // 8 + 1, np.uint64)   # a neuron step's fired flags,
    fired = fired_words.view(np.uint8)                    # read 8 at a time by collect
    drive = astro_drive[b]
    hw = (hw_learn, syn_proj, hw_wtable, hw_wkey, hw_g, hw_level, hw_writes, hw_frozen)
    deferred = learn and defer_span > 0
    eager = False   # whether some rule is not deferred (acts in pre_spikes and post_spikes)
    for k in range(rule_i.shape[0]):
        eager |= rule_i[k, DEFER] == 0
    amp_plus, amp_minus = amp[b, :, 0], amp[b, :, 1]   # views: amp changes in place
    spiked = np.zeros(ring.shape[2] if deferred else 0, np.uint8)   # step's spikes (deferred)
    first = np.zeros(n_pop + 1, np.int64)   # population p's spikes: spikes[first[p]:first[p+1]]
    h = np.ones(rule_i.shape[0])
    inv_h = np.ones(rule_i.shape[0])
    age = defer_age[b]   # steps since deferred sums were last settled
    for tt in range(n_steps):
        t = t0 + tt
        slot = t % depth
        if deferred:
            if age == defer_span:
                stdp.settle(weight, wb, b, row_run, run_lo, target, run_rule, rule_f,
                            rule_i, traces, defer_sum, defer_snap, inv_h, clips)
                age = 0
            age += 1
            stdp.deferred_factors(rule_f, rule_i, age, h, inv_h)
        if learn:
            stdp.decay_traces(traces, trace_decay, b)
            modulators.begin_step(b, sb, tt, mod_state, mod_i, signal_in, traces)
            _amplitudes(b, rule_f, rule_i, mod_state, mod_i, lr, amp)
        n_spikes = 0
        for p in range(n_pop):
            start = n_spikes
            first[p] = start
            model = pop_model[p]
            lo, hi = pop_lo[p], pop_hi[p]
            if model == LIF_ID:
                n_spikes = lif.step_numba(state, coef, ring, slot, b, lo, hi, n_total, spikes,
                                          n_spikes, t, stream_keys, pop_mode[p], fired,
                                          fired_words)
            elif model == IZH_ID:
                n_spikes = izhikevich.step_numba(state, coef, ring, slot, b, lo, hi, n_total,
                                                 spikes, n_spikes, t, stream_keys, pop_mode[p],
                                                 fired, fired_words)
            else:
                n_spikes = _sources(model, lo, hi, b, bx, t, tt, pop_mode[p], src, stream_keys,
                                    ext_ptr, ext_neuron, ext_count, spikes, counts, n_spikes,
                                    fired)
            if n_spikes < 0:
                error[b, 0] = t
                error[b, 1] = p
                return
            if model == LIF_ID or model == IZH_ID:
                for s in range(start, n_spikes):
                    counts[s] = 1
            total = 0
            for s in range(start, n_spikes):
                total += counts[s]
            pop_counts[tt, b, p] = total
        first[n_pop] = n_spikes
        # propagate: each spike walks its CSR row into the ring buffer (a row
        # on a resistive array is read through it); plastic synapses of the
        # row then see the presynaptic spike (deferred rules in the same pass)
        count_at = count_bin[tt]
        for s in range(n_spikes):
            j = spikes[s]
            c = counts[s]
            run_counts[b, count_at, j] += c
            if record_flag[j]:
                n = rec_n[b]
                rec_t[b, n] = t
                rec_i[b, n] = j
                rec_n[b] = n + 1
            if deferred:
                continue   # propagated below
            lo, hi = indptr[j], indptr[j + 1]
            if row_delay[j] >= 0 and not hw_any:
                arrive = ring_slot(slot, row_delay[j], depth)   # one delay for the row
                # (indexed in place: an array view per spike would cost numba's
                # reference counting)
                value = row_weight[j] * c
                if value == value:  # one weight for the row (not NaN): no weight reads
                    for k in range(np.uint64(lo), np.uint64(hi)):
                        ring[arrive, b, np.uint64(target[k])] += value
                else:
                    for k in range(np.uint64(lo), np.uint64(hi)):
                        ring[arrive, b, np.uint64(target[k])] += weight[wb, k] * c
            else:
                for k in range(lo, hi):
                    arrive = ring_slot(slot, delay[k], depth)
                    w = weight[wb, k]
                    if hw_any:
                        w = array_read.read(w, hw_table, syn_proj[k], hw_key, t, b, k)
                    ring[arrive, b, target[k]] += w * c
        if deferred:   # (deferred rules never run on resistive arrays)
            stdp.propagate_deferred(weight, wb, b, spikes, counts, n_spikes, row_delay, delay,
                                    slot, ring, row_run, run_lo, target, run_rule,
                                    rule_f, rule_i, traces, defer_sum, defer_snap, h, inv_h,
                                    amp_minus, amp_plus, spiked, clips)
        if learn:
            if eager:
                # rows are disjoint, so a spike's depression may follow every propagation
                stdp.pre_spikes(weight, wb, elig, b, spikes, n_spikes, row_run, run_lo, target,
                                run_rule, rule_f, rule_i, traces, amp_minus, clips, hw)
                stdp.post_spikes(weight, wb, elig, b, spikes, n_spikes, csc_ptr, csc_syn, csc_pre,
                                 csc_rule, rule_f, rule_i, traces, amp_plus, clips, hw)
            stdp.bump_traces(traces, b, first, spikes, trace_i, trace_inc, rule_i, amp_plus,
                              defer_sum, h)
            modulators.on_spikes(b, spikes, counts, n_spikes, mod_i, astro_sign, drive, traces)
            three_factor.apply(weight, wb, elig, b, rule_f, rule_i, plastic_syn, plastic_pre,
                               plastic_post, traces, mod_state, mod_i, lr, clips, hw_learn,
                               syn_proj, hw_wtable, hw_wkey, hw_g, hw_level, hw_writes, hw_frozen)
            modulators.end_step(b, mod_state, mod_aux, mod_i, mod_f, drive)
            for k in range(rule_i.shape[0]):
                lr[b, k] = lr[b, k] * rule_f[k, LR_DECAY]
        # record sub-sampled state
        for m in range(mon_neuron.shape[0]):
            if t % mon_every[m] == 0:
                mon_out[tt, b, m] = state[mon_row[m], b, mon_neuron[m]]
    if deferred:
        defer_age[b] = age


@njit(cache=True, nogil=True)
def settle_pending(weight, row_run, run_lo, target, run_rule, rule_f, rule_i, traces,
                   defer_sum, defer_snap, defer_age, clips):
    """Settle what run_instance left pending in each instance (stdp.settle)."""
    h = np.ones(rule_i.shape[0])
    inv_h = np.ones(rule_i.shape[0])
    for b in range(defer_age.shape[0]):
        if defer_age[b] > 0:
            stdp.deferred_factors(rule_f, rule_i, defer_age[b], h, inv_h)
            wb = np.int64(b) if weight.shape[0] > 1 else np.int64(0)
            stdp.settle(weight, wb, b, row_run, run_lo, target, run_rule, rule_f, rule_i,
                        traces, defer_sum, defer_snap, inv_h, clips)
            defer_age[b] = 0


@njit(cache=True, parallel=True, nogil=True)
def run_parallel(n_instances, args):
    """Instances in parallel over the cores (``prange``); args as for run_instance."""
    for b in prange(n_instances):
        run_instance(b, *args)


@njit(cache=True, nogil=True)
def run_serial(n_instances, args):
    """Instances one after the other: cheaper for small batches and short chunks."""
    for b in range(n_instances):
        run_instance(b, *args)


class NumbaBackend(ArrayBackend):
    """Runs on the CPU with numpy arrays; the default backend."""

    name = "numba"
    _row_weight_key = False   # the weight array _row_weight was computed for
    _restore = False          # whether the next chunk starts from the initial weights

    def _array(self, x, dtype=None):
        return np.ascontiguousarray(x if dtype is None else np.asarray(x, dtype=dtype))

    def _zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def to_numpy(self, x):
        return x

    def _row_weights(self) -> np.ndarray:
        """Per presynaptic neuron, the weight all its synapses share (float64), else NaN;
        all NaN when weights change during runs (learning, per-instance weights,
        resistive arrays). Cached for the current weight array, which reset and
        set_weights replace rather than modify."""
        shared = not (self.learns or self.arrays or self._weight.shape[0] > 1)
        key = self._weight if shared else None
        if self._row_weight_key is not key:
            self._row_weight = (row_weights(self.indptr, self._weight[0]) if shared
                                else np.full(self.spec.n_total, np.nan))
            self._row_weight_key = key
        return self._row_weight

    def _restore_initial_weights(self) -> None:
        """Deferred to the next chunk, where each instance copies its own weights just
        before it runs (into its cache, not through memory for all instances at once),
        or to the next read of the weights."""
        self._restore = True

    def _settle_pending(self, discard: bool = False) -> None:
        """Deferred STDP leaves potentiations pending at the end of a run (a reset with
        weights drops them unread); they are settled when weights are read. A restore
        of the initial weights that is still to come is done first."""
        if self._restore:
            self._weight[...] = self.initial_weight
            self._restore = False
        P = getattr(self, "learning", None)
        if P is None or not P["defer_age"].any():
            return
        if not discard:
            L = self.layout
            settle_pending(self._weight, L.row_run, L.run_lo, self.target, L.run_rule, L.rule_f,
                           L.rule_i, P["traces"], P["defer_sum"], self._deferred_snap(),
                           P["defer_age"], P["clips"])
        P["defer_age"][:] = 0

    def _deferred_snap(self) -> np.ndarray:
        """float64 [B, nnz] per-synapse sums of the deferred rules (stdp.py, "Deferred");
        kept across resets: an entry is only read after its pre neuron spiked in the run."""
        shape = (self.instances, self.spec.connectivity.nnz) if self.layout.deferred_span else (1, 1)
        self._snap = self._cleared(getattr(self, "_snap", None), shape, np.float64, zero=False)
        return self._snap

    def _run_chunk(self, t0, n_steps, ext, signals, count_bin, rec):
        L, P = self.layout, self.learning
        work = n_steps * self.instances * (self.spec.n_total + self.spec.connectivity.nnz // 10)
        parallel = self.instances > 1 and work > PARALLEL_WORK
        args = (t0, n_steps, self.pop_model, self.pop_lo, self.pop_hi,
                self.pop_mode, self.state, self.coef, self.src, self.stream_keys, ext.ptr,
                ext.neuron, ext.count, self.ring,
                self.indptr, self.target, self.delay, self.row_delay, self._row_weights(),
                self._weight, self.initial_weight, self._restore,   # pending changes stay so
                self.record_flag, rec.spike_t, rec.spike_i, rec.spike_n, self.run_counts, count_bin,
                rec.pop_counts, self.mon_neuron, self.mon_row, self.mon_every, rec.state,
                rec.error, self.scratch_idx, self.scratch_cnt,
                self.learns, L.rule_f, L.rule_i, L.run_rule, L.row_run, L.run_lo, L.csc_ptr,
                L.csc_syn, L.csc_pre, L.csc_rule, L.plastic_syn, L.plastic_pre, L.plastic_post,
                P["traces"], P["trace_decay"], L.trace_i, L.trace_inc, P["elig"], P["lr"],
                P["clips"], P["amp"],
                P["mod_state"],
                P["mod_aux"], L.mod_i, L.mod_f, L.astro_sign, P["astro_drive"], signals,
                L.deferred_span, P["defer_sum"], self._deferred_snap(), P["defer_age"],
                self.syn_projection,
                self.hw_table, self.hw_key, bool(self.arrays),
                *self.hardware_writes())
        (run_parallel if parallel else run_serial)(self.instances, args)
        self._restore = False
