"""Neuron models. Importing this package registers the built-in ones."""
from spiking.models.base import MODELS, ModelInfo, Param, StateVar, get_model, register_model  # noqa: F401
from spiking.models import lif, izhikevich, sources  # noqa: F401,E402
