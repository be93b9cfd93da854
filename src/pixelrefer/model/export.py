"""Official checkpoints in our format: read one in memory, or write it once as a folder that loads as saved.

:func:`read_official` maps an official folder to our config and state dict with the explicit key map of
:mod:`pixelrefer.model.convert` (strict: unknown or missing keys are errors). :func:`export_official` writes the
result with ``save_pretrained`` - safetensors, sharded above ``max_shard_size`` - plus the tokenizer, the
generation settings and the image-processor settings, so later loads are plain
``PixelReferForConditionalGeneration.from_pretrained(folder)`` calls with no key remapping.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from pixelrefer.config import PixelReferConfig
from pixelrefer.constants import DEFAULT_MAX_SHARD_SIZE
from pixelrefer.errors import CheckpointError, ConfigError
from pixelrefer.model.checkpoint import check_output_folder, read_config_json, read_state_dict
from pixelrefer.model.convert import config_from_official, convert_official_state_dict, is_official_config

logger = logging.getLogger(__name__)

PROCESSOR_FILE = "preprocessor_config.json"
GENERATION_FILE = "generation_config.json"
SIZE_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}  # decimal, as transformers and the Hub


def shard_size_bytes(size: str | int) -> int:
    """``"5GB"``, ``"200KB"`` or a byte count -> bytes (> 0)."""
    text = str(size).strip().upper()
    unit = text[-2:] if text[-2:] in SIZE_UNITS else ""
    try:
        value = float(text[: len(text) - len(unit)]) * SIZE_UNITS.get(unit, 1)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"max shard size {size!r}: expected a positive size such as 5GB, 500MB, 200KB or bytes")
    return int(value)


def official_folder(name_or_path: Any) -> Path | None:
    """The folder if ``name_or_path`` is a local official PixelRefer / PixelRefer-Lite checkpoint, else ``None``."""
    if name_or_path is None:
        return None
    path = Path(name_or_path).expanduser()
    raw = read_config_json(path)
    return path if raw is not None and is_official_config(raw) else None


def read_official(directory: Path) -> tuple[PixelReferConfig, dict[str, torch.Tensor]]:
    """Our config and our state dict (official dtype kept) for an official checkpoint folder."""
    raw = json.loads((directory / "config.json").read_text())
    config = config_from_official(raw, directory)
    state = convert_official_state_dict(read_state_dict(directory), config.variant, config.tie_word_embeddings)
    return config, state


def processor_settings_file(directory: Path) -> Path | None:
    """The official image-processor settings: in the checkpoint folder, else in the vision tower folder it names."""
    raw = json.loads((directory / "config.json").read_text())
    tower = str(raw.get("mm_vision_encoder", ""))
    candidates = [directory / PROCESSOR_FILE]
    if tower:
        candidates += [directory / tower / PROCESSOR_FILE, directory.parent / tower / PROCESSOR_FILE]
    return next((c for c in candidates if c.is_file()), None)


def check_export_target(official: Path, out: Path, overwrite: bool) -> None:
    """Validate both folders before any weight is read."""
    if not official.is_dir():
        raise CheckpointError(f"{official} is not a folder")
    if official_folder(official) is None:
        raise CheckpointError(f"{official} is not an official PixelRefer / PixelRefer-Lite checkpoint "
                              "(config.json with model_type pixelrefer_qwen2 or pixelreferlite_qwen2)")
    check_output_folder(out, overwrite)
    o, src = out.resolve(), official.resolve()
    if o == src or src in o.parents or o in src.parents:
        raise CheckpointError(f"the output folder {out} must not contain or be inside the official folder {official}")


def export_official(
    official: Path, out: Path, max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE, overwrite: bool = False
) -> list[Path]:
    """Write the official checkpoint ``official`` to ``out`` in our format; returns the files written.

    The folder is written beside ``out`` first and moved into place at the end, so an interrupted export never
    leaves a half-written checkpoint under ``out``.
    """
    from transformers import GenerationConfig

    from pixelrefer.model.loading import load_tokenizer
    from pixelrefer.model.modeling import PixelReferForConditionalGeneration

    official, out = Path(official), Path(out)
    limit = shard_size_bytes(max_shard_size)
    check_export_target(official, out, overwrite)
    model = PixelReferForConditionalGeneration.from_pretrained(official, dtype="auto")
    if (official / GENERATION_FILE).is_file():
        model.generation_config = GenerationConfig.from_pretrained(official)
    tokenizer = load_tokenizer(official)
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        model.save_pretrained(staging, max_shard_size=limit)
        tokenizer.save_pretrained(staging)
        settings = processor_settings_file(official)
        if settings is not None:
            shutil.copyfile(settings, staging / PROCESSOR_FILE)
        else:
            logger.warning("%s: no %s found beside the checkpoint; none written", official, PROCESSOR_FILE)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    logger.info("wrote %s (%s) to %s", official, model.config.variant, out)
    return sorted(p for p in out.iterdir() if p.is_file())
