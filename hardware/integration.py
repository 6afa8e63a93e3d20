"""Projections whose weights live on resistive arrays.

A projection with ``hardware: {device: rram, ...}`` is programmed into a
:class:`hardware.Crossbar` once per network instance (its own programming
noise, faults and drift), and the simulator uses the conductance-derived
weights. Every spike then reads one row of the array: the kernels add read
noise to each delivered weight (counter-based, the same on numba and torch)
and, with a quantising ADC, round it to the ADC's step. Energy and latency
follow from the counted row reads (:func:`energy_report`).

Plastic projections re-program their devices: every weight change of a learning
rule is written into the synapse's differential pair with programming noise and
level rounding, write counts and endurance (:mod:`spiking.synapses.array_write`;
initial state from :func:`write_state`). Their arrays map the rule's whole weight
range [w_min, w_max] onto the window unless ``w_max`` is given.

Not modelled on this event path: IR drop varies with which rows are active in
an MVM, which a single-row read does not have (the programmed weights include
the static IR attenuation of the array). Writes during learning see neither drift
nor IR drop nor the device-to-device window variation (they clip at G_max); the
first programming sees all three. The energy report's cell reads use the
conductances of the first programming.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from hardware.crossbar import Crossbar
from hardware.devices import quantise_conductance
from hardware.energy import Counters
from spiking.synapses import array_write as aw

# columns of the per-projection table the kernels read
READ_SIGMA, ADC_STEP, ADC_RANGE = range(3)
N_HW = 3


@dataclass
class ArrayProjection:
    """One projection programmed into arrays, instance by instance."""

    name: str
    index: int
    synapses: np.ndarray      # CSR positions of its synapses
    rows: np.ndarray          # local pre index per synapse
    cols: np.ndarray          # local post index per synapse
    crossbars: List[Crossbar]  # one per instance
    table: np.ndarray         # float32 [N_HW]


def program(spec, weight: np.ndarray, instances: int) -> List[ArrayProjection]:
    """Program every hardware projection; writes the programmed weights into
    ``weight`` ([instances, nnz], float32) in place and returns the arrays."""
    conn = spec.connectivity
    pre_of = conn.pre_index()
    out = []
    for proj in spec.projections:
        if proj.hardware is None:
            continue
        pre, post = spec.population(proj.pre), spec.population(proj.post)
        idx = np.flatnonzero(conn.projection == proj.index)
        rows = pre_of[idx] - pre.offset
        cols = conn.target[idx].astype(np.int64) % spec.n_total - post.offset
        dense = np.zeros((pre.size, post.size), np.float32)
        dense[rows, cols] = conn.weight[idx]
        config = proj.hardware
        if proj.plasticity is not None and config.w_max is None:
            bounds = (float(np.abs(dense).max(initial=0.0)), abs(proj.plasticity.w_min),
                      abs(proj.plasticity.w_max))
            config = dataclasses.replace(config, w_max=max(bounds) or 1.0)
        crossbars = []
        for b in range(instances):
            seed = np.random.SeedSequence(spec.seed, spawn_key=(proj.index, b, 0x4857))
            xbar = Crossbar(dense, config, seed=int(seed.generate_state(1)[0]))
            programmed = xbar.effective_weights(read_noise=False) * xbar._spike_amplitude
            weight[b, idx] = programmed[rows, cols]
            crossbars.append(xbar)
        out.append(ArrayProjection(proj.name, proj.index, idx, rows, cols, crossbars,
                                   _read_table(crossbars[0])))
    return out


def _read_table(xbar: Crossbar) -> np.ndarray:
    """Read noise (weight units) and the ADC's step and full scale for one row read."""
    table = np.zeros(N_HW, np.float32)
    table[READ_SIGMA] = xbar.noise_std * xbar._spike_amplitude
    adc = xbar.config.adc
    if adc.bits is not None:
        xbar.read_rows([0])          # calibrates an auto-ranged ADC
        xbar.reset_counters()
        table[ADC_STEP] = adc.step(xbar.adc_range)
        table[ADC_RANGE] = xbar.adc_range
    return table


def read_table(spec, arrays: List[ArrayProjection]) -> np.ndarray:
    """float32 [n_projections, N_HW]: zeros for projections not on hardware."""
    table = np.zeros((max(len(spec.projections), 1), N_HW), np.float32)
    for a in arrays:
        table[a.index] = a.table
    return table


def plastic_arrays(spec, arrays: List[ArrayProjection]) -> List[ArrayProjection]:
    """The hardware projections a learning rule changes."""
    return [a for a in arrays if spec.projections[a.index].plasticity is not None]


def write_state(spec, arrays: List[ArrayProjection], instances: int
                ) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """What the kernels need to re-program plastic projections (see
    :mod:`spiking.synapses.array_write`): the float64 table [n_projections, N_WRITE] and
    the devices' state right after programming, ``g``, ``level``, ``writes``, ``frozen``
    ([B, nnz, 2]; [1, 1, 2] zeros when no hardware projection is plastic)."""
    table = np.zeros((max(len(spec.projections), 1), aw.N_WRITE), np.float64)
    plastic = plastic_arrays(spec, arrays)
    shape = (instances, spec.connectivity.nnz, 2) if plastic else (1, 1, 2)
    state = {"g": np.zeros(shape), "level": np.zeros(shape),
             "writes": np.zeros(shape, np.int32), "frozen": np.zeros(shape, np.uint8)}
    for a in plastic:
        xbar = a.crossbars[0]
        device = xbar.config.device
        coefficients = device.programming.coefficients
        if len(coefficients) > aw.N_COEF:
            raise ValueError(f"{a.name}: at most {aw.N_COEF} programming-noise coefficients "
                             f"on a plastic projection, got {len(coefficients)}")
        row = table[a.index]
        row[[aw.ON, aw.G_MIN, aw.G_MAX]] = 1.0, device.g_min, device.g_max
        row[aw.SCALE] = xbar.scale / xbar._spike_amplitude
        row[aw.LEVELS] = device.levels or 0
        row[aw.ENDURANCE] = device.faults.endurance or np.inf
        row[aw.PROG_GAIN] = device.programming.scale * device.g_max
        row[aw.COEF:aw.COEF + len(coefficients)] = coefficients
        for b, xbar in enumerate(a.crossbars):
            levels = quantise_conductance(device, xbar._targets(xbar.target_weights))
            for name, values in (("g", xbar.devices.g), ("level", levels),
                                 ("writes", xbar.devices.writes), ("frozen", xbar.devices.frozen)):
                state[name][b][a.synapses] = values[:, a.rows, a.cols].T.cpu().numpy()
    return table, state


def energy_report(spec, arrays: List[ArrayProjection], spike_counts: np.ndarray,
                  writes: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> Dict[str, dict]:
    """Row reads, synaptic events, device writes, energy (pJ) and latency (ns) per hardware
    projection, summed over instances, from spike counts per neuron [B, N] and, for
    plastic projections, each device's writes (``(since the last reset, since
    manufacture)``, int [B, n_synapses, 2]): ``writes`` (costed), ``max_device_writes``
    and ``worn_out`` (devices at their endurance)."""
    report = {}
    for a in arrays:
        pre = spec.population(spec.projections[a.index].pre)
        fan_out = np.bincount(a.rows, minlength=pre.size)
        counts = spike_counts[:, pre.offset:pre.stop].astype(np.int64)
        reads = int(counts.sum())
        events = int((counts * fan_out[None, :]).sum())
        xbar = a.crossbars[0]
        written, total = writes.get(a.name, (None, None))
        counters = Counters(row_reads=reads, synaptic_events=events,
                            dac_conversions=reads * xbar.column_tiles,
                            adc_conversions=reads * xbar.n_out,
                            writes=0 if written is None else int(written.sum()))
        g_row = xbar.devices.g.sum(dim=(0, 2)).cpu().numpy()   # µS per input row
        drive = float((counts.sum(0) * g_row).sum()) * xbar._spike_amplitude ** 2 / xbar.dac_range ** 2
        r = xbar.config.energy.report(counters, drive, xbar.config.adc.bits,
                                      min(xbar.config.tile_cols, xbar.n_out))
        report[a.name] = {"row_reads": reads, "synaptic_events": events,
                          "energy_pj": r["energy_pj"], "latency_ns": r["latency_ns"]}
        if written is not None:
            endurance = xbar.config.device.faults.endurance
            report[a.name].update(
                writes=counters.writes, max_device_writes=int(total.max(initial=0)),
                worn_out=0 if endurance is None else int((total >= endurance).sum()))
    return report
