"""spiking: an event-driven spiking-network simulator (numba and batched torch backends)."""
from spiking import _jit

_jit.configure()
from spiking.errors import ConfigError, DataError, SimulationError, SpikingError  # noqa: F401,E402

__version__ = "0.1.0"


def load(path, overrides=None, backend=None, instances=None, device=None):
    """Load and validate a network file and return a :class:`spiking.network.Network`."""
    from spiking.network import load as _load
    return _load(path, overrides, backend, instances, device)
