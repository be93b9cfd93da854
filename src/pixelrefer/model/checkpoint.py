"""Checkpoint folders on disk: weight files read strictly (safetensors or ``.bin`` shards, ``weights_only=True``),
``config.json`` read, output folders checked before anything is written; every failure a clear
:class:`~pixelrefer.errors.CheckpointError`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelrefer.model.convert import CheckpointError


def read_config_json(directory: Path) -> dict[str, Any] | None:
    """The folder's ``config.json`` as a dict; ``None`` when there is none; an error when it is not JSON."""
    config_file = Path(directory) / "config.json"
    if not config_file.is_file():
        return None
    try:
        return json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_file} is not valid JSON: {exc}") from exc


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse an output that is a file, or a non-empty folder without ``overwrite`` (before any weight is read)."""
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(f"{out} is not empty; pass --overwrite to replace its files")


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint folder, following a shard index when there is one."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.is_file():
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            files = [directory / n for n in names]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise CheckpointError(f"{directory}: shard(s) listed in {index_name} are missing: {missing}")
            return files
    for pattern in ("*.safetensors", "pytorch_model*.bin"):
        files = sorted(directory.glob(pattern))
        if files:
            return files
    raise CheckpointError(f"{directory}: no *.safetensors or pytorch_model*.bin weight file found")


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity (a broken save or a diverged run would answer garbage)."""
    for key, value in state.items():
        if torch.is_floating_point(value) and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(f"{source}: tensor {key} has {bad} NaN or infinite value(s) of {value.numel()}; "
                                  "the checkpoint is broken")


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint folder (no pickle: safetensors, or ``.bin`` with ``weights_only=True``),
    checked to be finite."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                part = load_file(str(path))
            else:
                part = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupted or truncated file: name it
            first_line = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise CheckpointError(f"cannot read weight file {path.name} (corrupted or truncated, or not plain tensors): "
                                  f"{first_line}") from exc
        check_finite(part, path.name)
        state.update(part)
    return state


def load_strict(model: nn.Module, state: dict[str, Any], ignore_missing: tuple[str, ...] = ()) -> None:
    """``load_state_dict(strict)`` with errors that list the offending keys."""
    expected = set(model.state_dict().keys())
    missing = sorted(k for k in expected - state.keys() if k not in ignore_missing)
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint does not fit the model: missing keys {missing[:20]}, unexpected keys {unexpected[:20]}")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, value in state.items():
        if shapes[key] != tuple(value.shape):
            raise CheckpointError(f"shape mismatch for {key}: checkpoint {tuple(value.shape)}, model {shapes[key]}")
    model.load_state_dict(state, strict=False, assign=True)
