"""Run folders, atomic writes, and checkpoints that refuse a different architecture.

A run folder holds ``checkpoint.pt`` (model, EMA, optimizer, step, RNG state,
the full config), ``config.yaml`` (the resolved config), ``model.json`` (the
model kind, for the ``spiking`` CLI), ``metrics.json`` and ``samples/``. Every file is written to a temporary name in the same folder and
moved into place with ``os.replace``, so a crash never leaves half a file.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
import yaml

from spiking.errors import SpikingError

from .config import SDMConfig, validate_config

CHECKPOINT_FORMAT = "spiking-diffusion-checkpoint/1"
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.yaml"
MODEL_INFO_NAME = "model.json"  # tells ``spiking sample`` / ``spiking evaluate`` the model kind


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)``, then move the result onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda temporary: torch.save(obj, temporary))


def read_metrics(run_dir: Path) -> Dict[str, Any]:
    """``run_dir/metrics.json`` ({} before the first write)."""
    path = Path(run_dir) / METRICS_NAME
    return json.loads(path.read_text()) if path.exists() else {}


def update_metrics(run_dir: Path, updates: Dict[str, Any]) -> Dict[str, Any]:
    """Merge ``updates`` into ``run_dir/metrics.json`` (mappings merge one level
    deep, other values are replaced), atomically."""
    path = Path(run_dir) / METRICS_NAME
    metrics = read_metrics(run_dir)
    for key, value in updates.items():
        old = metrics.get(key)
        metrics[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    atomic_write(path, lambda temporary: temporary.write_text(json.dumps(metrics, indent=2) + "\n"))
    return metrics


def write_run_description(run_dir: Path, config: SDMConfig) -> None:
    """``config.yaml`` (the resolved config) and ``model.json`` (kind and files)."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    atomic_write(Path(run_dir) / CONFIG_NAME, lambda temporary: temporary.write_text(text))
    info = {"kind": "diffusion", "name": config.name, "checkpoint": CHECKPOINT_NAME, "config": CONFIG_NAME}
    atomic_write(Path(run_dir) / MODEL_INFO_NAME, lambda temporary: temporary.write_text(json.dumps(info) + "\n"))


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or the checkpoint inside a run folder."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def read_checkpoint(path: str | Path) -> Dict[str, Any]:
    """Load a checkpoint written by the trainer (clear errors for anything else)."""
    path = checkpoint_path(path)
    if not path.exists():
        raise SpikingError(f"{path}: no checkpoint here (train first: spiking train CONFIG --out RUN)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad file
        raise SpikingError(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise SpikingError(f"{path}: not a spiking diffusion checkpoint (expected format {CHECKPOINT_FORMAT})")
    checkpoint["path"] = str(path)
    return checkpoint


def checkpoint_config(checkpoint: Dict[str, Any]) -> SDMConfig:
    return validate_config(checkpoint["config"], file=checkpoint["path"])


def architecture_differences(saved: Dict[str, Any], wanted: Dict[str, Any], ignore: tuple = ()) -> list:
    """``["key: checkpoint X, config Y", ...]`` for the model settings that differ."""
    return [f"{key}: checkpoint {saved.get(key)!r}, config {wanted.get(key)!r}"
            for key in sorted(set(saved) | set(wanted))
            if key not in ignore and saved.get(key) != wanted.get(key)]


def check_architecture(checkpoint: Dict[str, Any], config: SDMConfig, ignore: tuple = ()) -> None:
    """Raise if the checkpoint's model or schedule differ from ``config`` (except ``ignore``)."""
    saved = checkpoint_config(checkpoint).diffusion.model_dump()  # keys added since: their defaults
    wanted = config.diffusion.model_dump()
    differences = [f"model.{line}" for line in
                   architecture_differences(saved["model"], wanted["model"], ignore)]
    differences += [f"schedule.{line}" for line in
                    architecture_differences(saved["schedule"], wanted["schedule"])]
    if differences:
        raise SpikingError(f"{checkpoint['path']} was trained with a different architecture: "
                           + "; ".join(differences))


def load_weights(module: torch.nn.Module, state: Dict[str, torch.Tensor], source: str,
                 allow_missing: Optional[Callable[[str], bool]] = None) -> None:
    """``load_state_dict`` with a readable error; ``allow_missing(key)`` may excuse
    keys the checkpoint lacks (they keep their initial value)."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise SpikingError(f"{source}: weights do not fit this architecture: {error}") from None
    missing = [key for key in result.missing_keys if not (allow_missing and allow_missing(key))]
    problems = ([f"missing {key}" for key in missing] + [f"unexpected {key}" for key in result.unexpected_keys])
    if problems:
        shown = ", ".join(problems[:6]) + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else "")
        raise SpikingError(f"{source}: weights do not fit this architecture: {shown}")
