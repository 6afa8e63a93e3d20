"""Spiking diffusion models: a spiking U-Net DDPM (Cao et al., IEEE TAI 2024;
SDDPM, WACV 2024) with TSM and threshold guidance, and its ReLU twin.

Entry points: :func:`networks.diffusion.cli.train`, :func:`networks.diffusion.cli.sample`
(``spiking train`` / ``spiking sample``); configs in ``configs/sdm_mnist*.yaml``.
"""
from .config import SDMConfig, load_config
from .ddpm import GaussianDiffusion
from .unet import UNet

__all__ = ["SDMConfig", "load_config", "GaussianDiffusion", "UNet"]
