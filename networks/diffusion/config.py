"""Configuration of a spiking diffusion model: YAML -> validated pydantic models.

A file has ``name``, ``seed`` (and optionally ``description``, ``base``,
``device``) and a ``diffusion:`` section; see ``configs/sdm_mnist.yaml`` for
every key with its meaning. ``base: other.yaml`` merges recursively (mappings
key by key, everything else replaced; ``null`` removes a key), then
``key.path=value`` overrides apply (values parsed as YAML). Errors are
:class:`spiking.errors.ConfigError` naming the file, line and key path.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, List, Literal, Optional, Sequence, Tuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from spiking.errors import ConfigError

MNIST_SIZE = 28  # pixels per side of an MNIST digit


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    dataset: Literal["mnist"] = "mnist"
    image_size: int = Field(MNIST_SIZE, ge=4, description="side in pixels; > 28 pads the digits evenly")
    train_subset: Optional[int] = Field(None, ge=1, description="use only the first N training images")


class ModelConfig(_Section):
    neuron: Literal["lif", "if", "relu"] = "lif"
    time_steps: int = Field(4, ge=1, le=32, description="SNN steps S per network evaluation (1 for relu)")
    base_channels: int = Field(32, ge=1)
    channel_mult: List[PositiveInt] = Field(default_factory=lambda: [1, 2, 2], min_length=1)
    num_res_blocks: int = Field(1, ge=1)
    tau: float = Field(2.0, gt=1.0, description="LIF membrane time constant, in SNN steps")
    v_threshold: float = Field(1.0, gt=0.0)
    surrogate_alpha: float = Field(2.0, gt=0.0, description="ATan surrogate sharpness")
    tsm: bool = Field(False, description="temporal-wise spiking mechanism: a learnable gain per step")
    output_decay: float = Field(0.8, gt=0.0, le=1.0, description="weight ratio between successive steps at the output")
    input_skip: int = Field(0, ge=0, description="analog skip: channels of a 3x3 conv of x_t added to the output "
                                                "with gains set by the time embedding (0: off)")

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def spiking(self) -> bool:
        return self.neuron != "relu"


class ScheduleConfig(_Section):
    timesteps: int = Field(1000, ge=2, description="diffusion steps T")
    beta_start: float = Field(1e-4, gt=0.0, lt=1.0)
    beta_end: float = Field(0.02, gt=0.0, lt=1.0)


class TrainConfig(_Section):
    steps: int = Field(ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-4, gt=0.0, description="Adam learning rate")
    warmup_steps: int = Field(200, ge=0, description="linear learning-rate warm-up")
    decay_steps: int = Field(0, ge=0, description="the last N steps anneal the learning rate to 0 by a "
                                                  "half cosine (0: constant after the warm-up)")
    grad_clip: Optional[float] = Field(1.0, gt=0.0, description="max global gradient norm")
    precision: Literal["float32", "bfloat16"] = Field(
        "float32", description="of the training convolutions and linear layers (bfloat16: autocast, float32 "
                               "weights, BatchNorm, membranes and sums; sampling stays float32)")
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    bn_batches: int = Field(50, ge=0, description="batches over which the EMA model's BatchNorm statistics are "
                                                  "re-estimated for its own weights at each checkpoint and grid "
                                                  "(0: keep the raw model's)")
    checkpoint_every: int = Field(500, ge=1)
    sample_every: Optional[int] = Field(1000, ge=1, description="write a DDIM sample grid every N steps")
    grid_samples: int = Field(64, ge=1)
    init_from: Optional[str] = Field(None, description="checkpoint to fine-tune from (e.g. a run without TSM)")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")


class SampleConfig(_Section):
    sampler: Literal["ddim", "ddpm"] = "ddim"
    ddim_steps: int = Field(50, ge=1)
    ddpm_steps: Optional[int] = Field(None, ge=1, description="ancestral steps on a respaced schedule (null: all T)")
    threshold_deltas: List[float] = Field(default_factory=lambda: [0.0], min_length=1)


    def steps(self, sampler: str) -> Optional[int]:
        """The configured number of steps of ``sampler`` (None: the sampler's default)."""
        return self.ddim_steps if sampler == "ddim" else self.ddpm_steps


class MetricsConfig(_Section):
    n_samples: int = Field(10000, ge=2, description="generated images for FID / confidence / entropy")
    selection_samples: int = Field(1000, ge=2, description="generated images per delta when picking delta")
    batch_size: int = Field(500, ge=1, description="images per sampling batch")


class DiffusionConfig(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig
    sample: SampleConfig = Field(default_factory=SampleConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)


class SDMConfig(_Section):
    name: str = "sdm"
    description: Optional[str] = None
    seed: int = 0
    diffusion: DiffusionConfig


# ---------------------------------------------------------------- loading

Location = Tuple[str, Optional[int]]  # (file or "--set", line)


def _node_lines(node: yaml.Node, file: str, prefix: Tuple = (), out: Optional[dict] = None) -> dict:
    """Map every key path in a composed YAML tree to (file, 1-based line)."""
    out = {} if out is None else out
    out.setdefault(prefix, (file, node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = prefix + (key_node.value,)
            out[path] = (file, key_node.start_mark.line + 1)
            _node_lines(value_node, file, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, file, prefix + (index,), out)
    return out


def _merge(base: Any, update: Any) -> Any:
    """``update`` over ``base``: mappings merge key by key, ``None`` deletes."""
    if not (isinstance(base, dict) and isinstance(update, dict)):
        return copy.deepcopy(update)
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


def _read_yaml(path: Path, chain: Tuple[Path, ...]) -> Tuple[dict, dict]:
    """Load ``path`` with its ``base:`` chain; returns (data, key-path locations)."""
    if path in chain:
        cycle = " -> ".join(str(p) for p in chain + (path,))
        raise ConfigError(f"base: files form a cycle: {cycle}", file=str(chain[-1]), path="base")
    try:
        text = path.read_text()
    except OSError as error:
        where = str(chain[-1]) if chain else None
        raise ConfigError(f"cannot read config file {path}: {error.strerror}", file=where,
                          path="base" if chain else None) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(error, 'problem', error)}", file=str(path),
                          line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise ConfigError("the file must be a mapping with a 'diffusion:' section", file=str(path))
    lines = _node_lines(node, str(path))
    base_name = data.pop("base", None)
    if base_name is None:
        return data, lines
    if not isinstance(base_name, str):
        raise ConfigError("base: must be a file name", file=str(path), line=lines[("base",)][1], path="base")
    base_data, base_lines = _read_yaml((path.parent / base_name).resolve(), chain + (path,))
    return _merge(base_data, data), {**base_lines, **lines}


def _apply_override(data: dict, lines: dict, override: str) -> None:
    key_path, sep, text = override.partition("=")
    if not sep or not key_path.strip():
        raise ConfigError(f"override {override!r} must look like key.path=value", file="--set")
    keys = key_path.strip().split(".")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"value is not valid YAML: {error}", file="--set", path=key_path) from None
    node = data
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
    lines[tuple(keys)] = ("--set", None)


def _locate(lines: dict, loc: Sequence, default_file: str) -> Location:
    """The closest located ancestor of key path ``loc``."""
    loc = tuple(loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, (default_file, None))


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> SDMConfig:
    """Read, merge, override and validate a diffusion config file."""
    path = Path(path).resolve()
    data, lines = _read_yaml(path, ())
    for override in overrides:
        _apply_override(data, lines, override)
    return validate_config(data, lines, str(path))


def validate_config(data: dict, lines: Optional[dict] = None, file: str = "<config>") -> SDMConfig:
    """Validate an already-parsed config mapping (``lines`` from the YAML tree)."""
    lines = lines or {}
    try:
        config = SDMConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where_file, line = _locate(lines, first["loc"], file)
        more = len(error.errors()) - 1
        suffix = f" (and {more} more error{'s' * (more > 1)})" if more else ""
        raise ConfigError(first["msg"] + suffix, file=where_file, line=line, path=first["loc"]) from None
    _check_consistency(config, lines, file)
    return config


def _check_consistency(config: SDMConfig, lines: dict, file: str) -> None:
    """Checks that involve more than one key."""
    section = config.diffusion
    model, data = section.model, section.data

    def fail(message: str, *loc: str) -> None:
        where_file, line = _locate(lines, ("diffusion",) + loc, file)
        raise ConfigError(message, file=where_file, line=line, path=("diffusion",) + loc)

    factor = model.downsampling_factor
    if data.image_size % factor:
        fail(f"image size {data.image_size} does not divide by the down-sampling factor {factor} "
             f"(2 ** (len(channel_mult) - 1) with channel_mult {model.channel_mult}); use an image size "
             f"that is a multiple of {factor} or fewer levels", "data", "image_size")
    if data.dataset == "mnist" and (data.image_size < MNIST_SIZE or (data.image_size - MNIST_SIZE) % 2):
        fail(f"MNIST digits are {MNIST_SIZE} px; image_size must be {MNIST_SIZE} or larger by an even "
             f"number (padding), got {data.image_size}", "data", "image_size")
    if not model.spiking and model.time_steps != 1:
        fail("relu (ANN) neurons have no time dimension: set time_steps: 1", "model", "time_steps")
    if not model.spiking and model.tsm:
        fail("tsm applies to spiking neurons only", "model", "tsm")
    if not model.spiking and section.sample.threshold_deltas != [0.0]:
        fail("threshold guidance applies to spiking neurons only: set threshold_deltas: [0.0]",
             "sample", "threshold_deltas")
    if section.schedule.beta_end < section.schedule.beta_start:
        fail("beta_end must be >= beta_start", "schedule", "beta_end")
    train = section.train
    if train.decay_steps + train.warmup_steps > train.steps:
        fail(f"warmup_steps ({train.warmup_steps}) + decay_steps ({train.decay_steps}) exceed the "
             f"training steps ({train.steps})", "train", "decay_steps")
    if section.sample.ddim_steps > section.schedule.timesteps:
        fail(f"ddim_steps ({section.sample.ddim_steps}) exceeds the diffusion steps "
             f"({section.schedule.timesteps})", "sample", "ddim_steps")
    if any(not 1.0 + d > 0 for d in section.sample.threshold_deltas):
        fail("threshold guidance needs 1 + delta > 0 for every delta", "sample", "threshold_deltas")
