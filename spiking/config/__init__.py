"""Network files: units, schema, loading (see docs/yaml.md)."""
from spiking.config.loader import load_config
from spiking.config.schema import NetworkConfig, register_section
from spiking.config.units import parse_quantity

__all__ = ["load_config", "NetworkConfig", "register_section", "parse_quantity"]
