"""AdamW with one parameter group per (module group, decay or not), and linear warmup + cosine decay."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from pixelrefer.train.config import OptimConfig
from pixelrefer.train.stages import StageSpec, group_of


def no_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norm weights and other vectors are not decayed."""
    return param.ndim < 2 or name.endswith(".bias") or "norm" in name.lower()


def param_groups(model: nn.Module, stage: StageSpec, weight_decay: float) -> list[dict]:
    """Optimizer groups of the trainable parameters only; each carries its module ``group`` name."""
    buckets: dict[tuple[str, bool], list[torch.Tensor]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        group = group_of(name)
        if stage.lrs[group] is None:
            raise ValueError(f"{name} requires grad but its group {group!r} is frozen in stage {stage.name!r}")
        buckets.setdefault((group, no_decay(name, param)), []).append(param)
    return [
        {"params": params, "lr": stage.lrs[group], "weight_decay": 0.0 if skip else weight_decay,
         "group": group, "decay": not skip}
        for (group, skip), params in buckets.items()
    ]


def build_optimizer(groups: list[dict], cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over parameter groups (each with its ``lr``, ``weight_decay`` and ``group`` name)."""
    if not groups:
        raise ValueError("no trainable parameter to optimize")
    return torch.optim.AdamW(groups, betas=cfg.betas, eps=cfg.eps, foreach=False)


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float, to_peak: bool = False):
    """Multiplier of the peak lr at optimizer step ``s`` (0-based): linear warmup, ``(s + 1) / (W + 1)``
    (``(s + 1) / W`` with ``to_peak``), then cosine decay to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + (0 if to_peak else 1))
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, cfg: OptimConfig) -> LambdaLR:
    return LambdaLR(optimizer, warmup_cosine(total_steps, cfg.warmup(total_steps), cfg.min_lr_ratio,
                                             cfg.warmup_to_peak))
