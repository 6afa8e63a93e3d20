"""Resistive in-memory hardware emulation: device models, crossbar arrays, energy.

Typical use::

    from hardware import Crossbar
    xbar = Crossbar(W, {"device": "rram", "adc": 8, "dac": 8}, seed=1)
    y = xbar.mvm(x)               # [B, n_in] -> [B, n_out], numpy or torch
    row = xbar.read_rows([3])     # what a spike on input 3 delivers
    xbar.energy(), xbar.latency() # pJ, ns
"""
from hardware.crossbar import (Converter, Crossbar, CrossbarConfig, get_crossbar_config,
                               ir_drop_attenuation)
from hardware.devices import (ALIASES, PRESETS, DeviceArray, DeviceConfig, Drift, Faults,
                              ProgrammingNoise, ReadNoise, Switching, Variation, device_keys,
                              get_device, numpy_generator, quantise_conductance, torch_generator)
from hardware.energy import Counters, EnergyModel

__all__ = [
    "ALIASES", "PRESETS", "Converter", "Counters", "Crossbar", "CrossbarConfig", "DeviceArray",
    "DeviceConfig", "Drift", "EnergyModel", "Faults", "ProgrammingNoise", "ReadNoise",
    "Switching", "Variation", "device_keys", "get_crossbar_config", "get_device",
    "ir_drop_attenuation", "numpy_generator", "quantise_conductance", "torch_generator",
]
