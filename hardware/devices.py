"""Resistive-memory device models: configuration records, presets and device populations.

Units used throughout the hardware package:

* conductance in µS (``g_min``, ``g_max``, every returned conductance);
* noise as a fraction of ``g_max`` unless a field says otherwise (so a preset keeps its
  shape when ``g_max`` is overridden);
* drift and read-noise times in seconds, counted from the end of programming.

Behaviour is configured by frozen records, as in IBM's aihwkit: one record per physical
effect (:class:`ProgrammingNoise`, :class:`ReadNoise`, :class:`Drift`, :class:`Faults`,
:class:`Variation`, :class:`Switching`) grouped in a :class:`DeviceConfig`. Presets live in
:data:`PRESETS`; :func:`get_device` turns a preset name plus overrides (the YAML
``hardware: {device: rram, read_noise: 0.02}`` form) into a validated config.

:class:`DeviceArray` holds a population of devices with the state that persists between
operations (conductance, stuck devices, drift exponents, write counts) and implements
``program``, ``read`` and ``stochastic_switch``. All array code is torch; numpy inputs
are converted at the boundary. Randomness comes from an explicit ``np.random.Generator``,
``torch.Generator`` or integer seed.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from spiking.errors import ConfigError

Rng = Union[np.random.Generator, torch.Generator, int]
Bounds = Tuple[Optional[float], Optional[float]]

_SMALLEST_RELATIVE_G = 1e-7  # floor of G/G_max inside logarithms and powers (as aihwkit)


# --------------------------------------------------------------------------- randomness

def numpy_generator(rng: Rng) -> np.random.Generator:
    """An ``np.random.Generator`` for ``rng``; a torch generator seeds a new one from its stream."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=rng,
                                                       device=rng.device)))
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy Generator, a torch Generator or an int seed, "
                    f"not {type(rng).__name__}")


def torch_generator(rng: Rng, device: Union[str, torch.device] = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` for ``rng``.

    A torch generator already on ``device`` is used as is (its stream advances); any other
    source seeds a new generator from its own stream, so results stay reproducible.
    """
    device = torch.device(device)
    if isinstance(rng, torch.Generator) and rng.device.type == device.type:
        return rng
    if isinstance(rng, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device))
    else:
        seed = int(numpy_generator(rng).integers(2**62))
    return torch.Generator(device=device).manual_seed(seed)


# --------------------------------------------------------------------------- validation

def reject(message: str, path: str) -> None:
    raise ConfigError(message, path=path)


def check_number(record: Any, name: str, minimum: Optional[float] = None,
          maximum: Optional[float] = None, optional: bool = False) -> None:
    """Check that ``record.name`` is a real number in [minimum, maximum] (stored as float)."""
    value = getattr(record, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        reject(f"must be a finite number, got {value!r}", name)
    if minimum is not None and value < minimum:
        reject(f"must be >= {minimum}, got {value}", name)
    if maximum is not None and value > maximum:
        reject(f"must be <= {maximum}, got {value}", name)
    object.__setattr__(record, name, float(value))


def _bounds(record: Any, name: str, minimum: Optional[float] = None) -> None:
    value = getattr(record, name)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        reject(f"must be a pair [low, high] (null for open), got {value!r}", name)
    low, high = value
    for bound in value:
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
            reject(f"bounds must be numbers or null, got {value!r}", name)
    if low is not None and high is not None and low > high:
        reject(f"low bound {low} is above high bound {high}", name)
    if minimum is not None and low is not None and low < minimum:
        reject(f"low bound must be >= {minimum}, got {low}", name)
    object.__setattr__(record, name, (low, high))


def _clamp(value: float, bounds: Bounds) -> float:
    low, high = bounds
    return min(max(value, -math.inf if low is None else low), math.inf if high is None else high)


def _clamp_tensor(values: torch.Tensor, bounds: Bounds) -> torch.Tensor:
    return values if bounds == (None, None) else values.clamp(*bounds)


# --------------------------------------------------------------------------- records

@dataclass(frozen=True)
class ProgrammingNoise:
    """Gaussian error left after (write-verify) programming, state dependent.

    ``σ_prog(G) = scale · G_max · max(0, Σ_i coefficients[i] · (G/G_max)^i)``  [µS],
    the polynomial form of aihwkit's ``PCMLikeNoiseModel``. An empty tuple means no noise.

    coefficients: polynomial in G/G_max, in units of G_max.
    scale: multiplier for noise sweeps (dimensionless).
    """
    coefficients: Tuple[float, ...] = ()
    scale: float = 1.0

    def __post_init__(self):
        if not isinstance(self.coefficients, (tuple, list)) or not all(
                isinstance(c, (int, float)) and not isinstance(c, bool) for c in self.coefficients):
            reject(f"must be a list of numbers, got {self.coefficients!r}", "coefficients")
        object.__setattr__(self, "coefficients", tuple(float(c) for c in self.coefficients))
        check_number(self, "scale", minimum=0.0)
        relative_g = np.linspace(0.0, 1.0, 101)
        sigma = np.polyval(self.coefficients[::-1], relative_g) if self.coefficients else 0.0
        if np.any(np.asarray(sigma) < 0):
            worst = relative_g[int(np.argmin(sigma))]
            reject(f"the polynomial gives a negative noise at G/G_max = {worst:.2f}",
                  "coefficients")

    def std(self, g: torch.Tensor, g_max: float) -> Union[torch.Tensor, float]:
        """σ_prog in µS for conductances ``g`` (µS)."""
        if not self.coefficients or self.scale == 0:
            return 0.0
        relative = g / g_max
        sigma = torch.zeros_like(g)
        for c in reversed(self.coefficients):  # Horner
            sigma = sigma * relative + c
        return sigma.clamp_(min=0.0) * (self.scale * g_max)


@dataclass(frozen=True)
class ReadNoise:
    """Noise of a conductance read.

    White part, drawn at every read: ``σ_white = scale · std · G_max``  [µS].
    1/f part (aihwkit PCM model, Nandakumar et al. 2019), relative to the drifted conductance,
    drawn once per time point because 1/f noise is correlated over the duration of a read
    burst:

    ``σ_1f(G, t)/G = scale · min(flicker / max((G/G_max)^flicker_exponent, 1e-3), flicker_max)
    · sqrt(ln((t + t_read) / (2 t_read)))``, with ``t >= Drift.t0``.

    std: white read noise, fraction of G_max.
    flicker: 1/f amplitude Q_s (dimensionless); 0 disables the 1/f part.
    flicker_exponent, flicker_max, t_read: state dependence of Q_s, its upper clip
        (dimensionless) and the read duration of the fit (s); defaults are aihwkit's PCM
        values (0.65, 0.2, 250 ns).
    scale: multiplier for noise sweeps (dimensionless).
    """
    std: float = 0.0
    flicker: float = 0.0
    flicker_exponent: float = 0.65
    flicker_max: float = 0.2
    t_read: float = 250e-9
    scale: float = 1.0

    def __post_init__(self):
        for name in ("std", "flicker", "flicker_exponent", "flicker_max", "scale"):
            check_number(self, name, minimum=0.0)
        check_number(self, "t_read", minimum=1e-15)

    def white_std(self, g_max: float) -> float:
        """σ_white in µS."""
        return self.scale * self.std * g_max

    def flicker_std(self, g: torch.Tensor, g_max: float, t: torch.Tensor
                    ) -> Union[torch.Tensor, float]:
        """Relative 1/f σ for programmed conductances ``g`` (µS) at times ``t`` (s, >= t0)."""
        if self.flicker == 0 or self.scale == 0:
            return 0.0
        power = (g.abs() / g_max).pow(self.flicker_exponent).clamp_(min=1e-3)
        q = (self.flicker / power).clamp_(max=self.flicker_max)
        return self.scale * q * torch.log((t + self.t_read) / (2 * self.t_read)).sqrt()


@dataclass(frozen=True)
class Drift:
    """Power-law conductance drift ``G(t) = G(t0) · (t/t0)^(−ν)`` for ``t > t0``.

    Each device draws its own exponent when it is written (device-to-device ν):
    ``ν ~ scale · N(μ_ν(G), σ_ν(G))``, folded to ``|ν|`` when ``folded``, where
    ``μ_ν(G) = clip(nu_mean + nu_mean_log_slope · ln(G/G_max), *nu_mean_bounds)`` and
    ``σ_ν(G) = clip(nu_std + nu_std_log_slope · ln(G/G_max), *nu_std_bounds)`` (aihwkit's
    PCM form; slopes 0 give a state-independent ν).

    nu_mean, nu_mean_log_slope: mean exponent and its slope per unit ln(G/G_max).
    nu_mean_bounds: [low, high] clip of the mean (null = open).
    nu_std, nu_std_log_slope, nu_std_bounds: the same for the device-to-device spread.
    folded: draw |ν| (PCM only drifts downwards).
    t0: time of the reference read after programming, s (default 1 s, a convention).
    compensation: global drift compensation — the crossbar rescales its outputs by the
        ratio of the mean absolute weight read right after programming to the one read now
        (aihwkit ``GlobalDriftCompensation``).
    scale: multiplier of ν for sweeps (dimensionless).
    """
    nu_mean: float = 0.0
    nu_mean_log_slope: float = 0.0
    nu_mean_bounds: Bounds = (None, None)
    nu_std: float = 0.0
    nu_std_log_slope: float = 0.0
    nu_std_bounds: Bounds = (0.0, None)
    folded: bool = False
    t0: float = 1.0
    compensation: bool = False
    scale: float = 1.0

    def __post_init__(self):
        for name in ("nu_mean", "nu_mean_log_slope", "nu_std", "nu_std_log_slope"):
            check_number(self, name)
        _bounds(self, "nu_mean_bounds")
        _bounds(self, "nu_std_bounds")
        check_number(self, "t0", minimum=1e-15)
        check_number(self, "scale", minimum=0.0)
        for name in ("folded", "compensation"):
            if not isinstance(getattr(self, name), bool):
                reject(f"must be true or false, got {getattr(self, name)!r}", name)
        # σ_ν is monotone in ln(G/G_max) on [ln 1e-7, 0]: check both ends. A negative
        # intercept is fine when the slope and the clip make σ_ν >= 0 (aihwkit PCM).
        ends = [self.nu_std + self.nu_std_log_slope * log_g
                for log_g in (0.0, math.log(_SMALLEST_RELATIVE_G))]
        if max(ends) < 0 or min(_clamp(end, self.nu_std_bounds) for end in ends) < 0:
            reject("the drift-exponent spread is negative; raise nu_std (or give it a slope "
                   "and nu_std_bounds: [0, null])", "nu_std")

    @property
    def enabled(self) -> bool:
        """Whether any device can draw a non-zero exponent (μ_ν and σ_ν are monotone in
        ln(G/G_max), so zero at both ends of the range means zero everywhere)."""
        ends = (0.0, math.log(_SMALLEST_RELATIVE_G))
        return self.scale > 0 and any(
            _clamp(self.nu_mean + self.nu_mean_log_slope * end, self.nu_mean_bounds) != 0
            or _clamp(self.nu_std + self.nu_std_log_slope * end, self.nu_std_bounds) != 0
            for end in ends)

    def exponents(self, g: torch.Tensor, g_max: float, gen: torch.Generator) -> torch.Tensor:
        """One drift exponent per device for conductance targets ``g`` (µS)."""
        if not self.enabled:
            return torch.zeros_like(g, dtype=torch.float32)
        if self.nu_mean_log_slope or self.nu_std_log_slope:
            log_g = torch.log((g.abs() / g_max).clamp(min=_SMALLEST_RELATIVE_G))
            mean = _clamp_tensor(self.nu_mean + self.nu_mean_log_slope * log_g,
                                 self.nu_mean_bounds)
            std = _clamp_tensor(self.nu_std + self.nu_std_log_slope * log_g, self.nu_std_bounds)
        else:
            mean = _clamp(self.nu_mean, self.nu_mean_bounds)
            std = _clamp(self.nu_std, self.nu_std_bounds)
        nu = mean + std * torch.randn(g.shape, generator=gen, dtype=g.dtype, device=g.device)
        if self.folded:
            nu = nu.abs()
        return (self.scale * nu).to(torch.float32)


@dataclass(frozen=True)
class Faults:
    """Permanent device failures.

    stuck_at_min: fraction of devices stuck at G_min from manufacture (open / HRS).
    stuck_at_max: fraction of devices stuck at G_max from manufacture (short / LRS).
    endurance: writes a device survives, the first programming included; it then keeps
        its last conductance for good and ignores writes (null = unlimited).
    """
    stuck_at_min: float = 0.0
    stuck_at_max: float = 0.0
    endurance: Optional[int] = None

    def __post_init__(self):
        check_number(self, "stuck_at_min", minimum=0.0, maximum=1.0)
        check_number(self, "stuck_at_max", minimum=0.0, maximum=1.0)
        if self.stuck_at_min + self.stuck_at_max > 1:
            reject("stuck_at_min + stuck_at_max exceeds 1", "stuck_at_max")
        value = self.endurance
        if isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value):
            value = int(value)   # 1.0e+6 in YAML
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, (int, np.integer)) or value < 1):
            reject(f"must be a positive integer or null, got {self.endurance!r}", "endurance")
        object.__setattr__(self, "endurance", None if value is None else int(value))


@dataclass(frozen=True)
class Variation:
    """Device-to-device variation of the conductance window.

    window_std: relative σ of each device's own maximum conductance,
        ``G_max,i = G_max · (1 + window_std · N(0, 1))`` (floored at G_min); a device
        cannot be programmed above it.
    """
    window_std: float = 0.0

    def __post_init__(self):
        check_number(self, "window_std", minimum=0.0)


@dataclass(frozen=True)
class Switching:
    """Stochastic switching used to draw random conductances (random-weight arrays).

    A pulse near the switching threshold SETs a device with probability ``set_probability``;
    the device then lands on ``N(set_mean, set_std)``, otherwise (RESET) on
    ``N(reset_mean, reset_std)``, clipped to the device's window. Means and spreads are
    fractions of G_max. The defaults are a fair coin between G_max and G_min.
    """
    set_probability: float = 0.5
    set_mean: float = 1.0
    set_std: float = 0.0
    reset_mean: float = 0.0
    reset_std: float = 0.0

    def __post_init__(self):
        check_number(self, "set_probability", minimum=0.0, maximum=1.0)
        for name in ("set_mean", "set_std", "reset_mean", "reset_std"):
            check_number(self, name, minimum=0.0)


_RECORDS = {"programming": ProgrammingNoise, "read": ReadNoise, "drift": Drift,
            "faults": Faults, "variation": Variation, "switching": Switching}


@dataclass(frozen=True)
class DeviceConfig:
    """One memory technology.

    name: label (preset name or ``custom``).
    g_min, g_max: conductance window, µS.
    levels: number of programmable conductance levels, evenly spaced over
        [g_min, g_max] (multi-level cell); null = continuous.
    """
    name: str = "custom"
    g_min: float = 0.0
    g_max: float = 40.0
    levels: Optional[int] = None
    programming: ProgrammingNoise = field(default_factory=ProgrammingNoise)
    read: ReadNoise = field(default_factory=ReadNoise)
    drift: Drift = field(default_factory=Drift)
    faults: Faults = field(default_factory=Faults)
    variation: Variation = field(default_factory=Variation)
    switching: Switching = field(default_factory=Switching)

    def __post_init__(self):
        check_number(self, "g_min", minimum=0.0)
        check_number(self, "g_max")
        if not self.g_min < self.g_max:
            reject(f"g_min ({self.g_min} µS) must be below g_max ({self.g_max} µS)", "g_min")
        if self.levels is not None and (isinstance(self.levels, bool) or not isinstance(
                self.levels, (int, np.integer)) or self.levels < 2):
            reject(f"must be an integer >= 2 or null (continuous), got {self.levels!r}", "levels")
        for name, record in _RECORDS.items():
            if not isinstance(getattr(self, name), record):
                reject(f"must be a {record.__name__}", name)

    def level_values(self) -> torch.Tensor:
        """The programmable levels (µS, float64); exact at both ends of the window."""
        if self.levels is None:
            raise ValueError(f"device {self.name!r} has continuous levels")
        return quantise_conductance(self, torch.linspace(self.g_min, self.g_max, self.levels,
                                                         dtype=torch.float64))


def quantise_conductance(config: DeviceConfig, g: torch.Tensor) -> torch.Tensor:
    """Clip ``g`` (µS) to the window and round it to the nearest level.

    Level k is ``G_min·(1 − k/(L−1)) + G_max·k/(L−1)``, which is exactly G_min and G_max at
    the ends; a value equal to a level is returned unchanged. Ties round half to even.
    """
    g = g.clamp(config.g_min, config.g_max)
    if config.levels is None:
        return g
    steps = config.levels - 1
    fraction = torch.round((g - config.g_min) * (steps / (config.g_max - config.g_min))) / steps
    return config.g_min * (1 - fraction) + config.g_max * fraction


# --------------------------------------------------------------------------- presets

def _rram() -> DeviceConfig:
    """HfOx/TaOx 1T1R multi-level cells, write-verify programmed.

    * Window 0–40 µS and programming noise: the polynomial aihwkit fits
      (``ReRamWan2022NoiseModel``, 1 s after programming, G_max reference 40 µS) to the
      write-verify statistics of Wan et al., "A compute-in-memory chip based on resistive
      random-access memory", Nature 608, 504 (2022); σ_prog ≈ 0.35 µS at G_min, ≈ 2 µS
      mid-window, ≈ 1.1 µS at G_max. It already contains device-to-device spread at every
      target, so ``variation.window_std`` is 0.
    * 16 levels (4-bit cells): assumed, a common multi-level choice; Rao et al., Nature 615,
      823 (2023) show far more levels are possible with slower tuning.
    * Read noise 1 % of G_max per read: the short-term read noise aihwkit recommends adding
      to this model (its docstring: "about 1 %").
    * Drift: ν ~ N(0, 0.015), t0 = 1 s. RRAM relaxation broadens the distribution without a
      systematic decay (Zhao et al., IEDM 2017); σ_ν = 0.015 reproduces the growth of σ at
      G = G_max/2 from 1 s to 1 day in the Wan et al. fits (2.0 → 3.9 µS). No compensation.
    * Faults: none by default. The standard published case, 1.75 % stuck at G_min (SA0) and
      9.04 % stuck at G_max (SA1) measured on a first-cut 4-Mb HfO2 chip (Chen et al., IEEE
      Trans. Comput. 64, 180 (2015)), makes a ~1.2 relative weight error on its own, far
      worse than the write-verified arrays above; set ``stuck_at_min``/``stuck_at_max``
      to study it.
    * Endurance: unlimited unless set (not part of the published statistics above). Binary
      TaOx cells switch 10^12 times (Lee et al., Nat. Mater. 10, 625 (2011)), beyond any
      simulated run; multi-level HfOx cells wear sooner, 10^6 cycles being demonstrated for
      4 levels (Huang et al., IEDM 2013). Plastic projections count every device write
      against it (``endurance: 1000000`` to study wear; :mod:`spiking.synapses.array_write`).
    * Switching: SET lands on N(0.8, 0.1)·G_max, RESET on N(0.05, 0.03)·G_max, p = 0.5;
      assumed, a bimodal LRS/HRS distribution as used for random-weight arrays.
    """
    return DeviceConfig(
        name="rram", g_min=0.0, g_max=40.0, levels=16,
        programming=ProgrammingNoise(coefficients=tuple(
            c / 40.0 for c in (0.348, 16.030, -43.853, 45.393, -16.815))),
        read=ReadNoise(std=0.01),
        drift=Drift(nu_std=0.015, t0=1.0),
        switching=Switching(set_probability=0.5, set_mean=0.8, set_std=0.1,
                            reset_mean=0.05, reset_std=0.03),
    )


def _pcm() -> DeviceConfig:
    """Phase-change memory, aihwkit ``PCMLikeNoiseModel`` (Nandakumar et al., ICECS 2019;
    Joshi et al., Nat. Commun. 11, 2473 (2020)), measured on 1 M IBM PCM devices.

    * Window 0–25 µS, continuous levels (aihwkit's default g_max).
    * Programming: σ_prog = 0.26348 + 1.9650 g − 1.1731 g² µS at G_max = 25 µS, g = G/G_max.
    * Drift: μ_ν = clip(−0.0155 ln g + 0.0244, 0.049, 0.1),
      σ_ν = clip(−0.0125 ln g − 0.0059, 0.008, 0.045), ν = |N(μ_ν, σ_ν)|, t0 = 20 s, global
      drift compensation on (aihwkit's default for inference).
    * Read: 1/f noise Q_s = min(0.0088 / g^0.65, 0.2), σ/G = Q_s sqrt(ln((t + t_r)/(2 t_r))),
      t_r = 250 ns; the model has no separate white noise.
    * Faults, endurance: not part of the model (0, unlimited).
    * Switching: SET (crystallisation) lands on N(0.9, 0.1)·G_max, RESET (amorphisation) on
      N(0.02, 0.01)·G_max; assumed.
    """
    return DeviceConfig(
        name="pcm", g_min=0.0, g_max=25.0, levels=None,
        programming=ProgrammingNoise(coefficients=tuple(
            c / 25.0 for c in (0.26348, 1.9650, -1.1731))),
        read=ReadNoise(std=0.0, flicker=0.0088, flicker_exponent=0.65, flicker_max=0.2,
                       t_read=250e-9),
        drift=Drift(nu_mean=0.0244, nu_mean_log_slope=-0.0155, nu_mean_bounds=(0.049, 0.1),
                    nu_std=-0.0059, nu_std_log_slope=-0.0125, nu_std_bounds=(0.008, 0.045),
                    folded=True, t0=20.0, compensation=True),
        switching=Switching(set_probability=0.5, set_mean=0.9, set_std=0.1,
                            reset_mean=0.02, reset_std=0.01),
    )


def _ideal() -> DeviceConfig:
    """No noise, no drift, no faults, continuous levels; G_min = 0 so that a crossbar of
    ideal devices reproduces software products bit for bit. Window 0–40 µS as ``rram`` so
    that energies compare. Switching is a fair coin between G_min and G_max."""
    return DeviceConfig(name="ideal", g_min=0.0, g_max=40.0, levels=None)


PRESETS = {"rram": _rram(), "pcm": _pcm(), "ideal": _ideal()}
DEFAULT_DEVICE = "rram"

# Short YAML names for the most swept fields; every field is also reachable as
# ``<record>_<field>`` (``read_std``, ``faults_endurance``) or as a nested mapping.
ALIASES = {
    "read_noise": ("read", "std"),
    "stuck_at_min": ("faults", "stuck_at_min"),
    "stuck_at_max": ("faults", "stuck_at_max"),
    "endurance": ("faults", "endurance"),
    "drift_compensation": ("drift", "compensation"),
}


_SCALARS = {"name", "g_min", "g_max", "levels"}
_FLAT = {f"{record}_{f.name}": (record, f.name)
         for record, cls in _RECORDS.items() for f in dataclasses.fields(cls)}


def device_keys() -> set:
    """Every key a ``hardware:`` mapping may use to choose and adjust the device."""
    return {"device"} | _SCALARS | set(_RECORDS) | set(ALIASES) | set(_FLAT)


def _suggestion(name: str, known) -> str:
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"


def unknown_key(key: str, known, path: str) -> ConfigError:
    """The error for a mapping key outside ``known``, with the closest known key."""
    return ConfigError(f"unknown key {key!r}{_suggestion(key, known)}", path=_joined(path, key))


def _joined(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def build_record(cls, base, overrides: Mapping[str, Any], path: str):
    """``dataclasses.replace(base, **overrides)`` with unknown keys and bad values reported
    as :class:`ConfigError` under ``path`` (shared by the device and crossbar configs)."""
    names = {f.name for f in dataclasses.fields(cls)}
    for key in overrides:
        if key not in names:
            raise unknown_key(key, names, path)
    try:
        return dataclasses.replace(base, **overrides)
    except ConfigError as e:
        raise ConfigError(e.message, path=_joined(path, e.path)) from None


def get_device(spec: Union[str, DeviceConfig, Mapping[str, Any], None] = None,
               path: str = "device") -> DeviceConfig:
    """A validated :class:`DeviceConfig` from a preset name, a config, or a mapping.

    A mapping names its preset under ``device`` (default ``rram``) and overrides fields as
    top-level keys (``g_max: 30``), nested records (``read: {std: 0.02}``), flat
    ``<record>_<field>`` keys (``read_std: 0.02``) or :data:`ALIASES` (``read_noise``).
    Errors are :class:`ConfigError` with the key path under ``path``.
    """
    if spec is None:
        spec = DEFAULT_DEVICE
    if isinstance(spec, DeviceConfig):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ConfigError(f"unknown device {spec!r}{_suggestion(spec, PRESETS)}", path=path)
        return PRESETS[spec]
    if not isinstance(spec, Mapping):
        raise ConfigError(f"must be a preset name ({', '.join(PRESETS)}) or a mapping, "
                          f"got {type(spec).__name__}", path=path)
    spec = dict(spec)
    preset = spec.pop("device", DEFAULT_DEVICE)
    base = get_device(preset, path=_joined(path, "device"))
    top: dict = {}
    records: dict = {name: {} for name in _RECORDS}
    for key, value in spec.items():
        if key in _SCALARS:
            top[key] = value
        elif key in _RECORDS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"must be a mapping of {_RECORDS[key].__name__} fields",
                                  path=_joined(path, key))
            records[key].update(value)
        elif key in ALIASES or key in _FLAT:
            record, name = ALIASES.get(key) or _FLAT[key]
            records[record][name] = value
        else:
            raise unknown_key(key, device_keys(), path)
    for name, overrides in records.items():
        if overrides:
            top[name] = build_record(_RECORDS[name], getattr(base, name), overrides,
                                     _joined(path, name))
    top.setdefault("name", base.name)
    return build_record(DeviceConfig, base, top, path)


# --------------------------------------------------------------------------- device arrays

def _as_tensor(values, device, dtype=torch.float64) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(values), dtype=dtype, device=device)


class DeviceArray:
    """A population of devices and their persistent state.

    Per device: conductance right after its last write (``g``, µS, float64), drift
    exponent (``nu``), time of its last write (``written_at``, s on the array ``clock``),
    write count (``writes``; ``total_writes`` for the array) and a ``frozen`` mask
    (stuck-at faults and worn-out devices ignore writes). Manufacturing faults are drawn at
    construction; devices not yet written sit at G_min.

    ``index`` arguments select devices with any torch/numpy index (``None`` = all); the
    selected devices must be distinct.
    """

    def __init__(self, config: DeviceConfig, shape, rng: Rng,
                 device: Union[str, torch.device, None] = None):
        self.config = get_device(config)
        self.shape = tuple(int(n) for n in (shape if np.iterable(shape) else (shape,)))
        self.device = torch.device(device or "cpu")
        self.clock = 0.0
        gen = torch_generator(rng, self.device)
        c = self.config
        kw = dict(dtype=torch.float64, device=self.device)
        if c.variation.window_std > 0:
            top = c.g_max * (1 + c.variation.window_std * torch.randn(self.shape, generator=gen,
                                                                      **kw))
            self.g_top: Union[torch.Tensor, float] = top.clamp_(min=c.g_min)
        else:
            self.g_top = c.g_max
        draw = torch.rand(self.shape, generator=gen, **kw)
        stuck_min = draw < c.faults.stuck_at_min
        stuck_max = (draw >= c.faults.stuck_at_min) & (
            draw < c.faults.stuck_at_min + c.faults.stuck_at_max)
        self.frozen = stuck_min | stuck_max
        self.g = torch.full(self.shape, c.g_min, **kw)
        self.g[stuck_max] = c.g_max
        self.nu = torch.zeros(self.shape, dtype=torch.float32, device=self.device)
        self.written_at = torch.zeros(self.shape, **kw)
        self.writes = torch.zeros(self.shape, dtype=torch.int32, device=self.device)
        self.total_writes = 0

    # ----- writes
    def program(self, target, rng: Rng, index=None) -> torch.Tensor:
        """Program ``target`` conductances (µS) into the selected devices; returns the new
        conductances of the selection.

        Each write clips the target to the window, rounds it to a level, adds programming
        noise σ_prog(level) and clips to [0, device maximum]; it draws the device's drift
        exponent from the level. Frozen devices keep their conductance.
        """
        gen = torch_generator(rng, self.device)
        shape = self.g[self._selector(index)].shape
        level = quantise_conductance(self.config, _as_tensor(target, self.device).expand(shape))
        sigma = self.config.programming.std(level, self.config.g_max)
        noise = sigma * torch.randn(level.shape, generator=gen, dtype=level.dtype,
                                    device=self.device) if torch.is_tensor(sigma) else 0.0
        return self._write(index, level + noise, level, gen)

    def stochastic_switch(self, rng: Rng, index=None) -> torch.Tensor:
        """Apply one stochastic SET/RESET pulse to the selected devices (random conductances,
        see :class:`Switching`); returns their new conductances."""
        gen = torch_generator(rng, self.device)
        s, g_max = self.config.switching, self.config.g_max
        shape = self.g[self._selector(index)].shape
        kw = dict(generator=gen, dtype=torch.float64, device=self.device)
        is_set = torch.rand(shape, **kw) < s.set_probability
        is_set = is_set.to(torch.float64)
        mean = (s.reset_mean + (s.set_mean - s.reset_mean) * is_set) * g_max
        std = (s.reset_std + (s.set_std - s.reset_std) * is_set) * g_max
        g = mean + std * torch.randn(shape, **kw)
        return self._write(index, g, g, gen)

    def _selector(self, index):
        return (...,) if index is None else index

    def _write(self, index, g_new: torch.Tensor, g_nominal: torch.Tensor,
               gen: torch.Generator) -> torch.Tensor:
        sel = self._selector(index)
        top = self.g_top if isinstance(self.g_top, float) else self.g_top[sel]
        g_new = torch.minimum(g_new.clamp(min=0.0), torch.as_tensor(top, dtype=torch.float64,
                                                                    device=self.device))
        writable = ~self.frozen[sel]
        self.g[sel] = torch.where(writable, g_new, self.g[sel])
        nu = self.config.drift.exponents(g_nominal, self.config.g_max, gen)
        self.nu[sel] = torch.where(writable, nu, self.nu[sel])
        self.written_at[sel] = torch.where(writable, self.clock, self.written_at[sel])
        writes = self.writes[sel] + writable.to(torch.int32)
        self.writes[sel] = writes
        self.total_writes += int(writable.sum())
        if self.config.faults.endurance is not None:
            self.frozen[sel] = self.frozen[sel] | (writes >= self.config.faults.endurance)
        return self.g[sel].clone()

    # ----- reads
    def conductance(self, rng: Optional[Rng] = None, t: Optional[float] = None,
                    index=None) -> torch.Tensor:
        """Conductances (µS) at array time ``t`` (s; default: the array clock) without the
        white read noise: drift since each device's write, plus the 1/f deviation (drawn
        from ``rng``; needed only when the device has 1/f noise)."""
        sel = self._selector(index)
        c = self.config
        g0 = self.g[sel]
        age = ((self.clock if t is None else float(t)) - self.written_at[sel]).clamp(min=c.drift.t0)
        g = g0 * (age / c.drift.t0).pow(-self.nu[sel].to(torch.float64))
        sigma = c.read.flicker_std(g0, c.g_max, age)
        if torch.is_tensor(sigma):
            if rng is None:
                raise ValueError("a device with 1/f read noise needs an rng")
            gen = torch_generator(rng, self.device)
            g = g + g.abs() * sigma * torch.randn(g.shape, generator=gen, dtype=g.dtype,
                                                  device=self.device)
        return g.clamp(min=0.0)

    def read(self, rng: Rng, t: Optional[float] = None, index=None) -> torch.Tensor:
        """One read of the selected devices (µS): :meth:`conductance` plus white read noise.
        A read is a measurement, so it is not clipped at 0."""
        gen = torch_generator(rng, self.device)
        g = self.conductance(gen, t, index)
        std = self.config.read.white_std(self.config.g_max)
        if std == 0:
            return g
        return g + std * torch.randn(g.shape, generator=gen, dtype=g.dtype, device=self.device)
