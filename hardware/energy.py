"""Energy and latency of in-memory arrays, from operation counts.

Energies are in pJ, times in ns. Each constant names its source; "assumed" marks an
order-of-magnitude choice without a single published figure behind it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

from hardware.devices import check_number, reject


@dataclass
class Counters:
    """Operation counts of one array since construction (or :meth:`reset`).

    mvms: input vectors multiplied (a batch of B counts B).
    row_reads: single-row reads (one presynaptic spike each).
    synaptic_events: (active input, output) pairs delivered, by MVMs or row reads.
    writes: device writes (programming pulses sequences), two devices per weight.
    dac_conversions: row drives (one per active input row per column tile).
    adc_conversions: column conversions (one per output column per row tile per read).
    """
    mvms: int = 0
    row_reads: int = 0
    synaptic_events: int = 0
    writes: int = 0
    dac_conversions: int = 0
    adc_conversions: int = 0

    def reset(self) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, 0)


@dataclass(frozen=True)
class EnergyModel:
    """Per-operation constants.

    read_voltage: full-scale read voltage on a row, V. Assumed 0.2 V, a typical RRAM read
        bias below the switching threshold.
    read_pulse: duration of one analogue read, ns. Assumed 10 ns.
        A cell read costs ``(x/x_fs · read_voltage)² · G · read_pulse`` (Joule heating in
        the cell), summed over the actual inputs and conductances.
    dac_energy: energy of one row drive (DAC conversion and line charging), pJ. Assumed
        0.01 pJ: charging a 256-cell line (~50 fF) to 0.2 V costs 2 fJ, times 5 for the
        driver.
    adc_energy_8bit: energy of one 8-bit conversion, pJ: 12.5 pJ, the 8-bit 1.28 GS/s ADC
        (16 mW) of ISAAC (Shafiee et al., ISCA 2016). Other resolutions scale as 2^bits
        (Walden figure of merit, Murmann's ADC survey); an unquantised (ideal) ADC is
        costed as 8-bit.
    adc_time: time of one conversion, ns: 1/1.28 GS/s (ISAAC).
    columns_per_adc: columns sharing one ADC, converted one after the other: 128 (ISAAC:
        one ADC per 128-column crossbar).
    write_energy: energy of one device write, pJ, charged for programming and for every
        write of a plastic projection. Assumed 10 pJ: about ten write-verify iterations of
        a ~1 pJ pulse (1 V, 100 µA, 10 ns); the iteration count depends strongly on the
        algorithm and level spacing (Pérez et al., IEEE Trans. Electron Devices 2021,
        "Variability and energy consumption tradeoffs in multilevel programming of RRAM
        arrays").
    write_time: time of one device write, ns. Assumed 1 µs (ten iterations of pulse plus
        verify read); writes are costed one device after the other (conservative).
    """
    read_voltage: float = 0.2
    read_pulse: float = 10.0
    dac_energy: float = 0.01
    adc_energy_8bit: float = 12.5
    adc_time: float = 1e3 / 1280
    columns_per_adc: int = 128
    write_energy: float = 10.0
    write_time: float = 1000.0

    def __post_init__(self):
        for name in ("read_voltage", "read_pulse", "dac_energy", "adc_energy_8bit",
                     "adc_time", "write_energy", "write_time"):
            check_number(self, name, minimum=0.0)
        if isinstance(self.columns_per_adc, bool) or not isinstance(self.columns_per_adc, int) \
                or self.columns_per_adc < 1:
            reject(f"must be a positive integer, got {self.columns_per_adc!r}", "columns_per_adc")

    def adc_energy(self, bits: Optional[int]) -> float:
        """pJ per conversion at ``bits`` resolution."""
        return self.adc_energy_8bit * 2.0 ** ((8 if bits is None else bits) - 8)

    def cell_energy(self, drive_times_conductance: float) -> float:
        """pJ for ``Σ (x/x_fs)² · G`` in µS summed over cell reads."""
        volts_squared_siemens = self.read_voltage ** 2 * drive_times_conductance * 1e-6
        return volts_squared_siemens * self.read_pulse * 1e3  # W·ns = 1e-9 J = 1e3 pJ

    def read_latency(self, columns_per_tile: int) -> float:
        """ns for one analogue read of a tile and the conversion of its columns (tiles work
        in parallel; a tile's ADCs convert their columns in turn)."""
        return self.read_pulse + self.adc_time * math.ceil(columns_per_tile / self.columns_per_adc)

    def report(self, counters: Counters, drive_times_conductance: float,
               adc_bits: Optional[int], columns_per_tile: int) -> Dict[str, Dict[str, float]]:
        """Energy (pJ) and latency (ns) per component and in total."""
        energy = {
            "dac": counters.dac_conversions * self.dac_energy,
            "adc": counters.adc_conversions * self.adc_energy(adc_bits),
            "cells": self.cell_energy(drive_times_conductance),
            "writes": counters.writes * self.write_energy,
        }
        energy["total"] = sum(energy.values())
        per_read = self.read_latency(columns_per_tile)
        latency = {
            "mvms": counters.mvms * per_read,
            "row_reads": counters.row_reads * per_read,
            "writes": counters.writes * self.write_time,
        }
        latency["total"] = sum(latency.values())
        return {"energy_pj": energy, "latency_ns": latency}
