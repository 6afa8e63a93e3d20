"""Projections whose weights live on resistive arrays.

A projection with ``hardware: {device: rram, ...}`` is programmed into a
:class:`hardware.Crossbar` once per network instance (its own programming
noise, faults and drift), and the simulator uses the conductance-derived
weights. Every spike then reads one row of the array: the kernels add read
noise to each delivered weight (counter-based, the same on numba and torch)
and, with a quantising ADC, round it to the ADC's step. Energy and latency
follow from the counted row reads (:func:`energy_report`).

Not modelled on this event path: IR drop varies with which rows are active in
an MVM, which a single-row read does not have (the programmed weights include
the static IR attenuation of the array); plastic projections on hardware are
rejected until re-programming on learning is implemented.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from hardware.crossbar import Crossbar
from hardware.energy import Counters

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
        crossbars = []
        for b in range(instances):
            seed = np.random.SeedSequence(spec.seed, spawn_key=(proj.index, b, 0x4857))
            xbar = Crossbar(dense, proj.hardware, seed=int(seed.generate_state(1)[0]))
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


def energy_report(spec, arrays: List[ArrayProjection], spike_counts: np.ndarray) -> Dict[str, dict]:
    """Row reads, synaptic events, energy (pJ) and latency (ns) per hardware
    projection, summed over instances, from spike counts per neuron [B, N]."""
    report = {}
    for a in arrays:
        pre = spec.population(spec.projections[a.index].pre)
        fan_out = np.bincount(a.rows, minlength=pre.size)
        counts = spike_counts[:, pre.offset:pre.stop].astype(np.int64)
        reads = int(counts.sum())
        events = int((counts * fan_out[None, :]).sum())
        xbar = a.crossbars[0]
        counters = Counters(row_reads=reads, synaptic_events=events,
                            dac_conversions=reads * xbar.column_tiles,
                            adc_conversions=reads * xbar.n_out)
        g_row = xbar.devices.g.sum(dim=(0, 2)).cpu().numpy()   # µS per input row
        drive = float((counts.sum(0) * g_row).sum()) * xbar._spike_amplitude ** 2 / xbar.dac_range ** 2
        r = xbar.config.energy.report(counters, drive, xbar.config.adc.bits,
                                      min(xbar.config.tile_cols, xbar.n_out))
        report[a.name] = {"row_reads": reads, "synaptic_events": events,
                          "energy_pj": r["energy_pj"], "latency_ns": r["latency_ns"]}
    return report
