"""Crossbar arrays of resistive devices: weight mapping, tiling, converters, IR drop, MVMs.

A weight matrix ``W[n_in, n_out]`` lives in a differential pair per weight:
``G⁺ = G_min + s·max(w, 0)``, ``G⁻ = G_min + s·max(−w, 0)`` with the scale
``s = (G_max − G_min) / w_max`` µS per weight unit, so ``w = (G⁺ − G⁻)/s``. Row i of W is
input line i, so a presynaptic spike reads one row. The matrix is cut into tiles of
``tile_rows × tile_cols`` weights; each tile has its own row drivers (DACs), its own ADCs
and its own wires. The two devices of a pair sit in adjacent columns and their currents are
subtracted before the ADC.

Programming happens once (with programming noise, levels and faults); each read adds
white read noise. Read noise is applied output-referred: the sum over a tile of
independent Gaussian device noises ``Σ_i x_i n_ij`` is drawn directly as one Gaussian of
variance ``Σ_i x_i² · 2σ²/s²`` per output, which has exactly the same distribution and
costs B·n_out draws per tile instead of n_in·n_out per input vector. On the CPU the
standard normals come from a shared noise table (:func:`cpu_read_noise`).

MVMs run on numpy arrays or torch tensors (on their device) and return the same kind; the
array code is written once against the two libraries' shared operations, with the few that
differ in :class:`_Numpy` / :class:`_Torch`. Device state is torch float64.

When nothing in a tile is non-linear (no ADC quantisation), the tile partial sums add up to
the untiled product, so the product is computed untiled. With ideal devices
(``G_min = 0``, no noise, continuous levels, no IR drop, no drift) the mapping round trip is
exact for float32 weights (conductances are float64 and ``fl64(fl64(w·s)/s)`` is within
2⁻⁵² of ``w``, far inside half a float32 ulp), so an MVM is ``x @ W`` bit for bit.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch

from hardware.devices import (DeviceArray, DeviceConfig, Rng, build_record, check_number,
                              device_keys, get_device, numpy_generator, quantise_conductance,
                              reject, torch_generator, unknown_key)
from hardware.energy import Counters, EnergyModel
from spiking.errors import ConfigError

Array = Union[np.ndarray, torch.Tensor]


# --------------------------------------------------------------------------- read noise

_TABLE_SIZE = 1 << 22
_TABLE_SEED = 20230524
_tables: Dict[torch.dtype, torch.Tensor] = {}


def _random_offset(rng: Rng, high: int) -> int:
    if isinstance(rng, torch.Generator):
        return int(torch.randint(0, high, (1,), generator=rng, device=rng.device))
    return int(numpy_generator(rng).integers(high))


def cpu_read_noise(shape, dtype: torch.dtype, rng: Rng) -> torch.Tensor:
    """Standard normals for the read noise of one MVM on the CPU (read only).

    torch's CPU generator is sequential and costs about as much per number as a multiply-add
    row of the MVM, so fresh numbers would dominate a noisy MVM. Instead each read takes a
    window at a random offset (from ``rng``) in a fixed table of 2^22 standard normals (a
    shared noise table, as in Salimans et al., "Evolution strategies as a scalable
    alternative to reinforcement learning", 2017). Within a read all numbers are distinct
    table entries, hence independent N(0, 1); two reads see independent numbers at each
    position unless their offsets coincide (probability 2^-22), though a number can recur at
    another position. Draws over a quarter of the table are generated afresh.
    """
    size = math.prod(shape)
    if size > _TABLE_SIZE // 4:
        return torch.randn(shape, generator=torch_generator(rng), dtype=dtype)
    if dtype not in _tables:
        _tables[dtype] = torch.randn(_TABLE_SIZE, dtype=dtype,
                                     generator=torch.Generator().manual_seed(_TABLE_SEED))
    offset = _random_offset(rng, _TABLE_SIZE - size + 1)
    return _tables[dtype][offset:offset + size].view(shape)


# --------------------------------------------------------------------------- backends

class _Numpy:
    """The operations numpy and torch spell differently (numpy side)."""
    xp = np

    @staticmethod
    def normal(like: np.ndarray, rng: Rng) -> np.ndarray:
        return cpu_read_noise(like.shape, _torch_dtype(like.dtype), rng).numpy()

    @staticmethod
    def add_product(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        y += a * b

    @staticmethod
    def zeros(like: np.ndarray, shape) -> np.ndarray:
        return np.zeros(shape, dtype=like.dtype)

    @staticmethod
    def promote(x: np.ndarray, dtype: torch.dtype) -> np.ndarray:
        return x.astype(np.promote_types(x.dtype, torch.empty(0, dtype=dtype).numpy().dtype),
                        copy=False)

    @staticmethod
    def from_state(t: torch.Tensor, like: np.ndarray) -> np.ndarray:
        return t.to(dtype=_torch_dtype(like.dtype), device="cpu").numpy()

    @staticmethod
    def to_state(a: np.ndarray, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(device)


class _Torch:
    """The operations numpy and torch spell differently (torch side)."""
    xp = torch

    @staticmethod
    def normal(like: torch.Tensor, rng: Rng) -> torch.Tensor:
        if like.device.type == "cpu":
            return cpu_read_noise(like.shape, like.dtype, rng)
        return torch.randn(like.shape, generator=torch_generator(rng, like.device),
                           dtype=like.dtype, device=like.device)

    @staticmethod
    def add_product(y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        y.addcmul_(a, b)

    @staticmethod
    def zeros(like: torch.Tensor, shape) -> torch.Tensor:
        return like.new_zeros(shape)

    @staticmethod
    def promote(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return x.to(torch.promote_types(x.dtype, dtype))

    @staticmethod
    def from_state(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return t.to(dtype=like.dtype, device=like.device)

    @staticmethod
    def to_state(a: torch.Tensor, device: torch.device) -> torch.Tensor:
        return a.detach().to(device=device, dtype=torch.float64)


def _backend(a) -> type:
    return _Torch if isinstance(a, torch.Tensor) else _Numpy


def _torch_dtype(numpy_dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype=numpy_dtype)).dtype


# --------------------------------------------------------------------------- converters

@dataclass(frozen=True)
class Converter:
    """A DAC or ADC: uniform quantiser with clipping.

    bits: resolution; null = ideal converter (no quantisation, no clipping).
    range: full scale, in input units (DAC) or output units of one tile (ADC, weight ×
        input units); null on an ADC = calibrated at programming to the largest output a
        tile can produce for inputs within the DAC range (no clipping possible).
    signed: codes −N..N with N = 2^(bits−1) − 1 (0 is a level); unsigned: 0..2^bits − 1.

    The levels are ``k · step`` with ``step = range / N``, computed in the dtype of the
    values: a value on a level is returned unchanged, values beyond the ends clip to the end
    levels, and ties round half to even.
    """
    bits: Optional[int] = None
    range: Optional[float] = None
    signed: bool = True

    def __post_init__(self):
        if self.bits is not None and (isinstance(self.bits, bool) or not isinstance(
                self.bits, (int, np.integer)) or not (2 if self.signed else 1) <= self.bits <= 24):
            reject(f"must be an integer in [{2 if self.signed else 1}, 24] or null, "
                   f"got {self.bits!r}", "bits")
        check_number(self, "range", minimum=0.0, optional=True)
        if self.range == 0:
            reject("must be > 0", "range")
        if not isinstance(self.signed, bool):
            reject(f"must be true or false, got {self.signed!r}", "signed")

    @property
    def top_code(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2 ** self.bits - 1

    @property
    def low_code(self) -> int:
        return -self.top_code if self.signed else 0

    def step(self, full_scale: Optional[float] = None) -> float:
        """Distance between levels."""
        return (self.range if full_scale is None else full_scale) / self.top_code

    def round_codes(self, scaled: Array) -> Array:
        """Round values already divided by the step to integer codes, in place."""
        xp = _backend(scaled).xp
        xp.round(scaled, out=scaled)  # half to even in both libraries
        xp.clip(scaled, self.low_code, self.top_code, out=scaled)
        return scaled

    def quantise(self, values: Array, full_scale: Optional[float] = None) -> Array:
        """``values`` (numpy or torch) rounded to the nearest level, as a new array; the
        values themselves for an ideal converter."""
        if self.bits is None:
            return values
        step = self.step(full_scale)
        codes = self.round_codes(values * (1.0 / step))
        codes *= step
        return codes

    def levels(self, full_scale: Optional[float] = None, dtype=np.float64) -> np.ndarray:
        """All levels in increasing order, as :meth:`quantise` computes them in ``dtype``."""
        return np.arange(self.low_code, self.top_code + 1).astype(dtype) * self.step(full_scale)


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class CrossbarConfig:
    """How a weight matrix is put into arrays.

    device: the device technology (:func:`hardware.devices.get_device`).
    w_max: weight magnitude mapped to the full window G_max − G_min; null = max|W|.
        Larger weights saturate at G_max.
    tile_rows, tile_cols: weights per tile (inputs × outputs); a tile holds
        tile_rows × 2·tile_cols devices.
    dac: input converter (default: ideal, range 1).
    adc: output converter per tile (default: ideal).
    wire_resistance: wire resistance between neighbouring cells, Ω (0 = no IR drop).
    strict: reject device levels that the ADC cannot resolve (more levels than
        2^(bits−1) signed codes, or continuous levels).
    energy: per-operation energy and latency constants.
    """
    device: DeviceConfig = field(default_factory=get_device)
    w_max: Optional[float] = None
    tile_rows: int = 256
    tile_cols: int = 256
    dac: Converter = field(default_factory=lambda: Converter(range=1.0))
    adc: Converter = field(default_factory=Converter)
    wire_resistance: float = 0.0
    strict: bool = False
    energy: EnergyModel = field(default_factory=EnergyModel)

    def __post_init__(self):
        check_number(self, "w_max", minimum=0.0, optional=True)
        if self.w_max == 0:
            reject("must be > 0", "w_max")
        for name in ("tile_rows", "tile_cols"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                reject(f"must be a positive integer, got {value!r}", name)
        check_number(self, "wire_resistance", minimum=0.0)
        if self.dac.bits is not None and self.dac.range is None:
            reject("a quantising DAC needs a range", "dac.range")
        if not isinstance(self.strict, bool):
            reject(f"must be true or false, got {self.strict!r}", "strict")
        if self.strict and self.adc.bits is not None:
            codes = self.adc.top_code + 1
            levels = self.device.levels
            if levels is None or levels > codes:
                reject(f"the ADC resolves {codes} levels per sign ({self.adc.bits} bits) but "
                       f"the device has {'continuous' if levels is None else levels} levels; "
                       f"raise adc.bits or lower levels (strict mode)", "adc.bits")


_CROSSBAR_KEYS = {"w_max", "tile", "tile_rows", "tile_cols", "dac", "adc",
                  "wire_resistance", "strict", "energy"}


def get_crossbar_config(spec: Union[None, str, DeviceConfig, CrossbarConfig,
                                    Mapping[str, Any]] = None,
                        path: str = "hardware") -> CrossbarConfig:
    """A validated :class:`CrossbarConfig` from a YAML ``hardware:`` mapping or shortcut.

    The mapping mixes device keys (``device: rram`` plus overrides, see
    :func:`hardware.devices.get_device`) and array keys: ``w_max``, ``tile`` (int or
    ``[rows, cols]``) or ``tile_rows``/``tile_cols``, ``dac``/``adc`` (bits as an int, or
    ``{bits, range, signed}``), ``wire_resistance``, ``strict``, ``energy: {...}``.
    A preset name or a :class:`DeviceConfig` gives default arrays of that device.
    """
    if isinstance(spec, CrossbarConfig):
        return spec
    if spec is None or isinstance(spec, (str, DeviceConfig)):
        return CrossbarConfig(device=get_device(spec, path=f"{path}.device"))
    if not isinstance(spec, Mapping):
        raise ConfigError(f"must be a mapping or a device preset name, got "
                          f"{type(spec).__name__}", path=path)
    spec = dict(spec)
    known = _CROSSBAR_KEYS | device_keys()
    for key in spec:
        if key not in known:
            raise unknown_key(key, known, path)
    array = {key: spec.pop(key) for key in list(spec) if key in _CROSSBAR_KEYS}
    base = CrossbarConfig(device=get_device(spec, path=path))
    if "tile" in array:
        tile = array.pop("tile")
        rows, cols = tile if isinstance(tile, (list, tuple)) and len(tile) == 2 else (tile, tile)
        array.setdefault("tile_rows", rows)
        array.setdefault("tile_cols", cols)
    for name in ("dac", "adc"):
        if name in array:
            value = array[name]
            overrides = {"bits": value} if not isinstance(value, Mapping) else dict(value)
            array[name] = build_record(Converter, getattr(base, name), overrides, f"{path}.{name}")
    if "energy" in array:
        if not isinstance(array["energy"], Mapping):
            raise ConfigError("must be a mapping of EnergyModel fields", path=f"{path}.energy")
        array["energy"] = build_record(EnergyModel, base.energy, array["energy"], f"{path}.energy")
    return build_record(CrossbarConfig, base, array, path)


# --------------------------------------------------------------------------- IR drop

def _reverse_cumsum(values: torch.Tensor, dim: int) -> torch.Tensor:
    return values.flip(dim).cumsum(dim).flip(dim)


def ir_drop_attenuation(g: torch.Tensor, wire_resistance: float) -> torch.Tensor:
    """First-order IR drop: the factor scaling each cell's current in physical tiles.

    ``g``: conductances (µS) of tiles, shape ``[..., rows, columns]``; row drivers sit left of
    column 0, column sense amplifiers (virtual ground) below the last row;
    ``wire_resistance``: Ω per wire segment between neighbouring cells.

    Row i: the segment left of column s carries the currents of cells s, s+1, ..., so cell p
    sees ``V_i (1 − r Σ_{s≤p} Σ_{m≥s} G_im)``, exact to first order in r·G (the row current
    depends on V_i only). Column j: the segment below row s carries the currents of rows
    0..s; assuming every row is driven at the same voltage (the worst case; the real drop
    depends on the input pattern) the column wire at row i rises to ``V r Σ_{s≥i} Σ_{m≤s}
    G_mj``. Factor = ``1 − δ_row − δ_col`` (not clipped); the model holds while δ ≪ 1, and
    the drop grows as r·G·length².
    """
    r = wire_resistance * 1e-6  # Ω × µS -> dimensionless
    along_rows = _reverse_cumsum(g, -1).cumsum(-1)
    along_columns = _reverse_cumsum(g.cumsum(-2), -2)
    return 1 - r * (along_rows + along_columns)


# --------------------------------------------------------------------------- crossbar

@dataclass
class _State:
    """What the arrays read at the current time, before read noise."""
    weights: torch.Tensor  # effective weights, float64 [n_in, n_out]
    compensation: float  # global drift-compensation factor (1 without compensation)
    views: Dict[tuple, Array] = field(default_factory=dict)  # weights per backend/device/dtype


class Crossbar:
    """A weight matrix programmed into tiled differential-pair arrays (see module doc).

    weights: ``[n_in, n_out]`` numpy array or torch tensor (row = input line).
    config: :class:`CrossbarConfig`, a ``hardware:`` mapping, a preset name or a
        :class:`DeviceConfig` (default: ``rram`` with ideal converters).
    seed: seeds the array's own generator, used whenever a method gets no ``rng``.
    device: torch device of the device state (default: that of ``weights``).
    program: program the weights now (else call :meth:`program` or :meth:`switch`).

    Every ``rng`` argument takes an ``np.random.Generator``, a ``torch.Generator`` or an int.
    """

    def __init__(self, weights: Array, config=None, *, seed: Optional[int] = None,
                 device: Union[str, torch.device, None] = None, program: bool = True):
        self.config = get_crossbar_config(config)
        backend = _backend(weights)
        weights = weights if backend is _Torch else np.asarray(weights)
        if weights.ndim != 2:
            raise ValueError(f"weights must be [n_in, n_out], got shape {tuple(weights.shape)}")
        self.n_in, self.n_out = (int(n) for n in weights.shape)
        self._backend = backend
        self.dtype = _torch_dtype(weights.dtype) if backend is _Numpy else weights.dtype
        if not self.dtype.is_floating_point:
            self.dtype = torch.float32
        self.device = torch.device(device) if device is not None else (
            weights.device if backend is _Torch else torch.device("cpu"))
        self.rng = np.random.default_rng(seed)
        self.target_weights = backend.to_state(weights, self.device).clone()  # never the caller's
        self.w_max = self._weight_range()
        device_config = self.config.device
        self.scale = (device_config.g_max - device_config.g_min) / self.w_max  # µS per weight unit
        self.rows_per_tile = min(self.config.tile_rows, self.n_in)
        self.row_tiles = math.ceil(self.n_in / self.rows_per_tile)
        self.column_tiles = math.ceil(self.n_out / self.config.tile_cols)
        self.dac_range = self.config.dac.range or 1.0
        self.adc_range = self.config.adc.range
        self._spike_amplitude = float(self.config.dac.quantise(np.ones(1))[0])
        # read noise per weight (two devices), weight units
        self.noise_std = math.sqrt(2) * device_config.read.white_std(device_config.g_max) \
            / self.scale
        self._counters = Counters()
        self._active_inputs: Dict[str, Any] = {}  # device -> active inputs not yet counted
        self._row_drive = torch.zeros(self.n_in, dtype=torch.float64, device=self.device)  # Σ x²
        self.devices = DeviceArray(device_config, (2, self.n_in, self.n_out), self.rng, self.device)
        self._state: Optional[_State] = None
        self._calibrate_adc = False
        if program:
            self.program()

    # ----- construction helpers
    def _weight_range(self) -> float:
        magnitudes = self.target_weights.abs()
        w_max = self.config.w_max
        if w_max is None:
            return float(magnitudes.max()) if magnitudes.numel() and magnitudes.max() > 0 else 1.0
        nonzero = magnitudes[magnitudes > 0]
        if nonzero.numel() and bool((nonzero > w_max).all()):
            raise ConfigError(
                f"w_max = {w_max:g} is below every non-zero |weight| (smallest "
                f"{float(nonzero.min()):.3g}): every device would saturate at G_max; raise "
                f"w_max or leave it null to use max|W|", path="w_max")
        return w_max

    @classmethod
    def random(cls, n_in: int, n_out: int, config=None, *, w_max: float = 1.0,
               seed: Optional[int] = None, device=None,
               dtype: torch.dtype = torch.float32) -> "Crossbar":
        """An array of random weights made in place by one stochastic SET/RESET pulse per
        device (:class:`hardware.devices.Switching`); ``w_max`` sets the weight of a full
        window."""
        config = dataclasses.replace(get_crossbar_config(config), w_max=w_max)
        crossbar = cls(torch.zeros(n_in, n_out, dtype=dtype), config, seed=seed, device=device,
                       program=False)
        crossbar.switch()
        return crossbar

    def _targets(self, weights: torch.Tensor) -> torch.Tensor:
        """Target conductances [2, ...] (G⁺, G⁻) in µS for float64 weights."""
        g_min = self.config.device.g_min
        return torch.stack([g_min + self.scale * weights.clamp(min=0),
                            g_min + self.scale * (-weights).clamp(min=0)])

    def _rng(self, rng: Optional[Rng]) -> Rng:
        return self.rng if rng is None else rng

    def _count_writes(self, before: int) -> None:
        self._counters.writes += self.devices.total_writes - before
        self._state = None

    # ----- writes
    def program(self, rng: Optional[Rng] = None) -> None:
        """Program every device from the target weights (programming noise, levels, faults),
        and calibrate an auto-ranged ADC on the result."""
        before = self.devices.total_writes
        self.devices.program(self._targets(self.target_weights), self._rng(rng))
        self._calibrate_adc = self.config.adc.range is None
        self._count_writes(before)

    def switch(self, rng: Optional[Rng] = None) -> None:
        """Randomise every weight by one stochastic SET/RESET pulse per device; the target
        weights become the nominal weights of the resulting conductances."""
        before = self.devices.total_writes
        g = self.devices.stochastic_switch(self._rng(rng))
        self.target_weights = (g[0] - g[1]) / self.scale
        self._calibrate_adc = self.config.adc.range is None
        self._count_writes(before)

    def reprogram(self, index, weights, rng: Optional[Rng] = None) -> int:
        """Write new ``weights`` at ``index`` — a pair ``(rows, cols)`` of integer arrays or a
        boolean mask ``[n_in, n_out]`` (``weights`` then holds the masked entries or a full
        matrix); positions must be distinct. Only devices whose level
        changes are written (and counted; worn-out devices freeze, see
        :class:`hardware.devices.Faults`). The ADC keeps its calibration. Returns the number
        of device writes."""
        if isinstance(index, tuple):
            rows, cols = (torch.as_tensor(np.asarray(i) if not torch.is_tensor(i) else i,
                                          device=self.device).reshape(-1) for i in index)
        else:
            rows, cols = torch.as_tensor(np.asarray(index) if not torch.is_tensor(index) else index,
                                         device=self.device).nonzero(as_tuple=True)
        new = _backend(weights).to_state(weights if torch.is_tensor(weights) else np.asarray(
            weights), self.device)
        if not isinstance(index, tuple) and new.shape == (self.n_in, self.n_out):
            new = new[rows, cols]  # a full matrix with a mask: take the masked entries
        new = new.reshape(-1).expand(rows.shape)
        old_levels = quantise_conductance(self.config.device,
                                          self._targets(self.target_weights[rows, cols]))
        new_targets = self._targets(new)
        changed = quantise_conductance(self.config.device, new_targets) != old_levels
        pair = torch.arange(2, device=self.device)[:, None].expand_as(changed)
        device_index = (pair[changed], rows.expand_as(changed)[changed],
                        cols.expand_as(changed)[changed])
        before = self.devices.total_writes
        self.devices.program(new_targets[changed], self._rng(rng), index=device_index)
        self.target_weights[rows, cols] = new
        self._count_writes(before)
        return self.devices.total_writes - before

    def set_time(self, t: float) -> None:
        """Move the array clock to ``t`` seconds after the first programming; reads then see
        the drift (and 1/f noise) of each device since its last write."""
        if not t >= 0:
            raise ValueError(f"time must be >= 0 s, got {t}")
        self.devices.clock = float(t)
        self._state = None

    # ----- state
    def _effective(self, g: torch.Tensor) -> torch.Tensor:
        if self.config.wire_resistance > 0:
            g = g * self._ir_attenuation(g)
        return (g[0] - g[1]) / self.scale

    def _ir_attenuation(self, g: torch.Tensor) -> torch.Tensor:
        """IR-drop factors [2, n_in, n_out]: tiles are full size, G⁺ and G⁻ of a weight in
        adjacent columns; unused cells carry no current."""
        rows, cols = self.config.tile_rows, self.config.tile_cols
        row_tiles = math.ceil(self.n_in / rows)
        shape = (row_tiles * rows, self.column_tiles * cols, 2)
        physical = g.new_zeros(shape)
        physical[:self.n_in, :self.n_out] = g.permute(1, 2, 0)
        physical = physical.reshape(row_tiles, rows, self.column_tiles, 2 * cols).transpose(1, 2)
        factor = ir_drop_attenuation(physical, self.config.wire_resistance)
        worst = 1 - float(factor.min())
        if worst > 0.2:
            warnings.warn(f"IR drop reaches {worst:.0%} of a cell current; the first-order model "
                          f"is inaccurate beyond ~20 % (lower wire_resistance or the tile size)",
                          stacklevel=3)
        factor = factor.clamp_(min=0.0).transpose(1, 2).reshape(shape)
        return factor[:self.n_in, :self.n_out].permute(2, 0, 1)

    def _tiles(self, weights: torch.Tensor) -> torch.Tensor:
        """``[row_tiles, rows_per_tile, n_out]``, zero-padded."""
        padded = weights.new_zeros(self.row_tiles * self.rows_per_tile, self.n_out)
        padded[:self.n_in] = weights
        return padded.reshape(self.row_tiles, self.rows_per_tile, self.n_out)

    def _current(self, rng: Optional[Rng]) -> _State:
        if self._state is None:
            g = self.devices.conductance(self._rng(rng))
            weights = self._effective(g)
            compensation = 1.0
            if self.config.device.drift.compensation:
                now = float(weights.abs().sum())
                reference = float(self._effective(self.devices.g).abs().sum())
                compensation = reference / now if now > 0 else 1.0
            if self._calibrate_adc:
                largest = float(self._tiles(weights.abs()).sum(1).max()) * self.dac_range
                self.adc_range = largest or self.w_max * self.dac_range
                self._calibrate_adc = False
            self._state = _State(weights, compensation)
        return self._state

    def _view(self, state: _State, like: Array) -> Array:
        """The effective weights in ``like``'s library, device and dtype. When the ADC
        quantises, they are tiled and divided by the ADC step, so that tile products come
        out in ADC codes."""
        key = (_backend(like), str(getattr(like, "device", "cpu")), str(like.dtype))
        if key not in state.views:
            weights = state.weights
            if self.config.adc.bits is not None:
                weights = self._tiles(weights) / self.config.adc.step(self.adc_range)
            state.views[key] = _backend(like).from_state(weights, like)
        return state.views[key]

    # ----- reads
    def _with_read_noise(self, y: Array, sum_of_squares: Array, rng: Rng,
                         unit: float = 1.0) -> Array:
        """Add the output-referred white read noise of all devices read (see module doc);
        ``y`` is in weight units divided by ``unit``."""
        if self.noise_std == 0:
            return y
        backend = _backend(y)
        backend.add_product(y, backend.normal(y, rng),
                            (self.noise_std / unit) * backend.xp.sqrt(sum_of_squares))
        return y

    def _split(self, x: Array, backend) -> Array:
        """Inputs per row tile, ``[row_tiles, B, rows_per_tile]``, zero-padded."""
        batch, width = x.shape[0], self.row_tiles * self.rows_per_tile
        if width != self.n_in:
            padded = backend.zeros(x, (batch, width))
            padded[:, :self.n_in] = x
            x = padded
        return x.reshape(batch, self.row_tiles, self.rows_per_tile).swapaxes(0, 1)

    def mvm(self, x: Array, rng: Optional[Rng] = None) -> Array:
        """``y = x @ W`` through the arrays: ``x [B, n_in]`` or ``[n_in]`` (numpy or torch,
        any device) → ``y [B, n_out]``, same kind. Each call is a new read (new read noise).

        Without ADC quantisation the product is untiled (``x[None] @ W``, the software
        product); with it, each row tile's partial sums (computed directly in ADC codes) get
        their own noise and ADC, and the digital results are added."""
        backend = _backend(x)
        x = x if backend is _Torch else np.asarray(x)
        single = x.ndim == 1
        x = backend.promote(x[None] if single else x, self.dtype)
        if x.shape[-1] != self.n_in:
            raise ValueError(f"input has {x.shape[-1]} features, the array {self.n_in} rows")
        rng = self._rng(rng)
        state = self._current(rng)
        weights = self._view(state, x)
        x = self.config.dac.quantise(x, self.dac_range)
        adc = self.config.adc
        tiled = adc.bits is not None
        unit = adc.step(self.adc_range) if tiled else 1.0
        tiles = self._split(x, backend) if tiled else x[None]
        squares = tiles * tiles
        partial = self._with_read_noise(tiles @ weights, squares.sum(-1)[..., None], rng, unit)
        y = adc.round_codes(partial).sum(0) * unit if tiled else partial[0]
        if self.config.device.drift.compensation:
            y = y * state.compensation
        self._count_reads(tiles, squares, backend)
        return y[0] if single else y

    def _count_reads(self, tiles: Array, squares: Array, backend) -> None:
        """Count one MVM of ``tiles`` [T, B, rows]. The number of active inputs stays on the
        inputs' device until the counters are read (no GPU sync per MVM)."""
        batch = int(tiles.shape[1])
        self._counters.mvms += batch
        self._counters.adc_conversions += batch * self.row_tiles * self.n_out
        key = str(getattr(tiles, "device", "numpy"))
        self._active_inputs[key] = self._active_inputs.get(key, 0) + backend.xp.count_nonzero(tiles)
        self._row_drive += backend.to_state(squares.sum(1).reshape(-1)[:self.n_in], self.device)

    @property
    def counters(self) -> Counters:
        """Operation counts (see :class:`hardware.energy.Counters`)."""
        for active in self._active_inputs.values():
            active = int(active)
            self._counters.synaptic_events += active * self.n_out
            self._counters.dac_conversions += active * self.column_tiles
        self._active_inputs.clear()
        return self._counters

    def read_rows(self, rows, rng: Optional[Rng] = None) -> Array:
        """The weights delivered by spikes on input ``rows`` (int or 1-D integer array):
        ``[len(rows), n_out]`` rows of W as read through the array (spike amplitude after the
        DAC, read noise, the tile's ADC, drift compensation). numpy in → numpy out, torch in
        → torch out on the array's device."""
        as_numpy = not torch.is_tensor(rows)
        index = torch.as_tensor(np.asarray(rows) if as_numpy else rows,
                                device=self.device).reshape(-1).long()
        rng = self._rng(rng)
        state = self._current(rng)
        y = state.weights[index].to(self.dtype) * self._spike_amplitude
        y = self._with_read_noise(y, y.new_full((len(index), 1), self._spike_amplitude ** 2), rng)
        y = self.config.adc.quantise(y, self.adc_range)
        if self.config.device.drift.compensation:
            y = y * state.compensation
        c, k = self._counters, len(index)
        c.row_reads += k
        c.synaptic_events += k * self.n_out
        c.dac_conversions += k * self.column_tiles
        c.adc_conversions += k * self.n_out
        self._row_drive.index_add_(0, index, self._row_drive.new_full(
            (k,), self._spike_amplitude ** 2))
        return y.cpu().numpy() if as_numpy else y

    def effective_weights(self, rng: Optional[Rng] = None, read_noise: bool = True) -> Array:
        """All weights as one read of every device would give them (drift, IR drop,
        compensation; with read noise unless ``read_noise`` is false), in the kind and dtype
        of the weights the array was built from. Not counted as operations."""
        rng = self._rng(rng)
        state = self._current(rng)
        weights = state.weights.to(self.dtype)
        if read_noise and self.noise_std:
            weights = weights + self.noise_std * _Torch.normal(weights, rng)
        if self.config.device.drift.compensation:
            weights = weights * state.compensation
        return weights.cpu().numpy() if self._backend is _Numpy else weights

    # ----- cost
    def _report(self) -> Dict[str, Dict[str, float]]:
        drive_times_conductance = float(self._row_drive @ self.devices.g.sum(dim=(0, 2))) \
            / self.dac_range ** 2
        return self.config.energy.report(self.counters, drive_times_conductance,
                                         self.config.adc.bits,
                                         min(self.config.tile_cols, self.n_out))

    def energy(self) -> Dict[str, float]:
        """Energy since construction (or :meth:`reset_counters`), pJ, per component and total.
        Cell energy uses the programmed conductances."""
        return self._report()["energy_pj"]

    def latency(self) -> Dict[str, float]:
        """Time since construction (or :meth:`reset_counters`), ns: reads of all tiles in
        parallel, one input vector or row at a time; writes one device at a time."""
        return self._report()["latency_ns"]

    def reset_counters(self) -> None:
        """Zero the operation counters and the accumulated cell drive."""
        self._active_inputs.clear()
        self._counters.reset()
        self._row_drive.zero_()
