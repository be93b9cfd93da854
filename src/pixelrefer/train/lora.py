"""LoRA adapters through peft: adapters on the modules a regex names (the LLM's projections by default), the
region modules training in full alongside, per the stage; adapters saved and loaded with peft; ``merge`` folds
them into a plain checkpoint that ``from_pretrained`` loads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from pixelrefer.errors import ConfigError
from pixelrefer.model.checkpoint import load_strict
from pixelrefer.train.config import LoraSection
from pixelrefer.train.stages import group_of, model_name

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"  # subfolder of an export holding the peft adapter alone
FULL_WEIGHTS = "full_weights.safetensors"  # in ADAPTER_DIR: the weights that trained in full (region modules)
LORA_MARK = ".lora_"  # peft's adapter parameters: ...q_proj.lora_A.default.weight
QUANTIZE = ("4bit", "8bit")


def is_peft(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def check_lora(section: LoraSection, device: torch.device, strategy: str) -> None:
    """Refuse what this LoRA setup cannot do, before any model is built."""
    if section.r <= 0 or section.alpha <= 0 or not 0 <= section.dropout < 1:
        raise ConfigError(f"lora: r and alpha must be > 0 and dropout in [0, 1), got r={section.r}, "
                          f"alpha={section.alpha}, dropout={section.dropout}")
    if section.quantize is not None:
        if section.quantize not in QUANTIZE:
            raise ConfigError(f"lora.quantize must be one of {QUANTIZE} or null, got {section.quantize!r}")
        if device.type != "cuda":
            raise ConfigError(f"QLoRA (lora.quantize={section.quantize}) needs bitsandbytes on a CUDA device; "
                              f"this run is on {device.type}. Use plain LoRA (lora.quantize=null)")
        raise ConfigError("QLoRA (lora.quantize) is not implemented yet; use plain LoRA (lora.quantize=null)")
    if strategy not in ("single", "ddp"):
        raise ConfigError(f"LoRA runs with strategy single or ddp; {strategy} with peft is not supported yet")


def apply_lora(model: nn.Module, section: LoraSection) -> nn.Module:
    """``model`` with LoRA adapters on every module whose name matches ``section.target_modules``."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=section.r, lora_alpha=section.alpha, lora_dropout=section.dropout,
                        target_modules=section.target_modules, bias="none")
    try:
        wrapped = get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(f"lora.target_modules {section.target_modules!r}: {exc}") from exc
    n = sum(1 for name, _ in wrapped.named_parameters() if LORA_MARK in name)
    logger.info("LoRA r=%d alpha=%d on %d adapter tensors", section.r, section.alpha, n)
    return wrapped


def trainable_predicate(model: nn.Module) -> Callable[[str], bool] | None:
    """For a peft model: in a group holding adapters only the adapters train; other groups train in full.
    ``None`` (no restriction) for a plain model."""
    if not is_peft(model):
        return None
    adapted = {group_of(name) for name, _ in model.named_parameters() if LORA_MARK in name}
    return lambda name: LORA_MARK in name or group_of(name) not in adapted


def save_adapter(model: nn.Module, directory: Path) -> Path:
    """peft's adapter folder, plus the weights that trained in full (region modules) under their bare names."""
    from safetensors.torch import save_file

    out = directory / ADAPTER_DIR
    model.save_pretrained(out)
    full = {model_name(n): p.detach().cpu().contiguous() for n, p in model.named_parameters()
            if p.requires_grad and LORA_MARK not in n}
    save_file(full, str(out / FULL_WEIGHTS), metadata={"format": "pt"})
    return out


def merge(model: nn.Module) -> nn.Module:
    """The bare model with every adapter folded into its base weights (the peft model is consumed)."""
    return model.merge_and_unload()


def load_adapter(base: nn.Module, adapter_dir: str | Path) -> nn.Module:
    """``base`` with a saved adapter attached (peft), e.g. to merge it later or to keep training."""
    from peft import PeftModel
    from safetensors.torch import load_file

    full = Path(adapter_dir) / FULL_WEIGHTS
    if full.is_file():
        state = load_file(str(full))
        load_strict(base, state, ignore_missing=tuple(set(base.state_dict()) - set(state)))
    return PeftModel.from_pretrained(base, str(adapter_dir))
