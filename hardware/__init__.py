"""Resistive in-memory hardware emulation: device models, crossbar arrays, energy.

Typical use::

    from hardware import Crossbar
    xbar = Crossbar(W, {"device": "rram", "adc": 8, "dac": 8}, seed=1)
    y = xbar.mvm(x)               # [B, n_in] -> [B, n_out], numpy or torch
    row = xbar.read_rows([3])     # what a spike on input 3 delivers
    xbar.energy(), xbar.latency() # pJ, ns
"""
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


def __getattr__(name):
    """Import on first use, so that ``spiking`` commands start without torch."""
    import importlib

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hardware' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ALIASES", "PRESETS", "Converter", "Counters", "Crossbar", "CrossbarConfig", "DeviceArray",
    "DeviceConfig", "Drift", "EnergyModel", "Faults", "ProgrammingNoise", "ReadNoise",
    "Switching", "Variation", "device_keys", "get_crossbar_config", "get_device",
    "ir_drop_attenuation", "numpy_generator", "quantise_conductance", "torch_generator",
]
