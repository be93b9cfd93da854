"""Load a model + tokenizer from a preset name, a local folder (ours or official) or a hub id."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelrefer.config import PixelReferConfig
from pixelrefer.model.checkpoint import load_strict, read_config_json, read_state_dict
from pixelrefer.model.convert import CheckpointError, is_official_config
from pixelrefer.model.export import read_official
from pixelrefer.model.modeling import PixelReferForConditionalGeneration

logger = logging.getLogger(__name__)


def _materialize_buffers(model: nn.Module, device: torch.device) -> None:
    """Rebuild modules whose non-persistent buffers (rotary tables) are still on the meta device."""
    for name, module in list(model.named_modules()):
        if any(b.is_meta for b in module.buffers(recurse=False)):
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            with torch.device(device):
                fresh = type(module)(module.config)
            setattr(parent, name.rpartition(".")[2], fresh)


def _use_generation_defaults(model: PixelReferForConditionalGeneration, directory: Path) -> None:
    """The checkpoint's ``generation_config.json`` (repetition penalty, ...) becomes the model's generation defaults,
    as transformers' ``from_pretrained`` - and so the official ``generate`` - uses it; explicit settings still win."""
    if (directory / "generation_config.json").is_file():
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(directory)


def _build(config: PixelReferConfig, state: dict[str, torch.Tensor], directory: Path, device: torch.device,
           dtype: torch.dtype) -> PixelReferForConditionalGeneration:
    """The model of ``config`` built on the meta device, ``state`` loaded strictly (a tied ``lm_head`` may be
    absent), then moved to ``device`` in eval mode with the folder's generation defaults."""
    with torch.device("meta"):
        model = PixelReferForConditionalGeneration(config).to(dtype=dtype)
    ignore = ("lm_head.weight",) if config.tie_word_embeddings else ()
    load_strict(model, {k: v.to(dtype) for k, v in state.items()}, ignore_missing=ignore)
    _materialize_buffers(model, device)
    model.tie_weights()
    _use_generation_defaults(model, directory)
    return model.to(device).eval()


def load_official(directory: Path, device: torch.device, dtype: torch.dtype) -> PixelReferForConditionalGeneration:
    """An official checkpoint folder -> our model, every key mapped explicitly and loaded strictly."""
    config, state = read_official(directory)
    return _build(config, state, directory, device, dtype)


def load_ours(directory: Path, device: torch.device, dtype: torch.dtype) -> PixelReferForConditionalGeneration:
    """A folder written by this package (``save_pretrained`` layout), loaded strictly."""
    return _build(PixelReferConfig.from_pretrained(directory), read_state_dict(directory), directory, device, dtype)


def resolve_directory(name_or_path: str | Path) -> Path:
    """A local folder, or a hub id downloaded with huggingface_hub (needs network)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; pass the checkpoint folder")
    if str(name_or_path).count("/") != 1:
        raise CheckpointError(f"no checkpoint folder, preset or hub id named {str(name_or_path)!r}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path)))
    except Exception as exc:
        raise CheckpointError(f"cannot fetch {name_or_path!r} from the hub (offline or unknown id): {exc}") from exc


def load_checkpoint(name_or_path: str | Path, device: torch.device, dtype: torch.dtype) -> tuple[PixelReferForConditionalGeneration, Any]:
    """(model, tokenizer) from a checkpoint folder or hub id."""
    directory = resolve_directory(name_or_path)
    raw = read_config_json(directory)
    if raw is None:
        raise CheckpointError(f"{directory} has no config.json")
    if is_official_config(raw):
        model = load_official(directory, device, dtype)
    elif raw.get("model_type") == PixelReferConfig.model_type:
        model = load_ours(directory, device, dtype)
    else:
        raise CheckpointError(f"{directory}: unsupported model_type {raw.get('model_type')!r}")
    return model, load_tokenizer(directory)


def load_tokenizer(directory: Path) -> Any:
    """The tokenizer of a checkpoint folder (ours or official)."""
    if (directory / "tokenizer.json").is_file():  # no config.json look-up (official configs have custom model types)
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(directory)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)
