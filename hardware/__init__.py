"""Resistive in-memory hardware emulation: device models, crossbar arrays, energy.

Typical use::

    from hardware import Crossbar
    xbar = Crossbar(W, {"device": "rram", "adc": 8, "dac": 8}, seed=1)
    y = xbar.mvm(x)               # [B, n_in] -> [B, n_out], numpy or torch
    row = xbar.read_rows([3])     # what a spike on input 3 delivers
    xbar.energy(), xbar.latency() # pJ, ns
"""
from spiking._lazy import lazy_exports

_EXPORTS = {
    "Converter": "hardware.crossbar",
    "Crossbar": "hardware.crossbar",
    "CrossbarConfig": "hardware.crossbar",
    "get_crossbar_config": "hardware.crossbar",
    "ir_drop_attenuation": "hardware.crossbar",
    "ALIASES": "hardware.devices",
    "PRESETS": "hardware.devices",
    "DeviceArray": "hardware.devices",
    "DeviceConfig": "hardware.devices",
    "Drift": "hardware.devices",
    "Faults": "hardware.devices",
    "ProgrammingNoise": "hardware.devices",
    "ReadNoise": "hardware.devices",
    "Switching": "hardware.devices",
    "Variation": "hardware.devices",
    "device_keys": "hardware.devices",
    "get_device": "hardware.devices",
    "numpy_generator": "hardware.devices",
    "quantise_conductance": "hardware.devices",
    "torch_generator": "hardware.devices",
    "Counters": "hardware.energy",
    "EnergyModel": "hardware.energy",
}


__getattr__ = lazy_exports("hardware", _EXPORTS, globals())


__all__ = [
    "ALIASES", "PRESETS", "Converter", "Counters", "Crossbar", "CrossbarConfig", "DeviceArray",
    "DeviceConfig", "Drift", "EnergyModel", "Faults", "ProgrammingNoise", "ReadNoise",
    "Switching", "Variation", "device_keys", "get_crossbar_config", "get_device",
    "ir_drop_attenuation", "numpy_generator", "quantise_conductance", "torch_generator",
]
