"""Declarative training stages: which module trains with which learning rate.

A stage maps every module group of :data:`MODULE_GROUPS` to a learning rate, or to ``None`` for frozen.
Frozen means frozen: ``requires_grad=False`` and absent from the optimizer. The official recipe (spec §6)
gives the vision encoder lr 0 while still computing its gradients; here lr 0 is rejected and the encoder is
simply frozen, which gives the same weights for less work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import nn

logger = logging.getLogger(__name__)

# group -> parameter-name prefixes (names as in ``model.named_parameters()``)
MODULE_GROUPS: dict[str, tuple[str, ...]] = {
    "vision": ("vision_model.",),
    "projector": ("projector.",),
    "object_tokenizer": ("object_tokenizer.",),
    "oci": ("oci.",),
    "llm": ("language_model.", "lm_head."),
}


@dataclass(frozen=True)
class StageSpec:
    """Learning rate per module group (``None`` = frozen)."""

    name: str
    lrs: Mapping[str, float | None]
    description: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.lrs) - set(MODULE_GROUPS)
        if unknown:
            raise ValueError(f"stage {self.name!r}: unknown module group(s) {sorted(unknown)}; known {list(MODULE_GROUPS)}")
        missing = set(MODULE_GROUPS) - set(self.lrs)
        if missing:
            raise ValueError(f"stage {self.name!r}: no lr for {sorted(missing)} (use None to freeze)")
        for group, lr in self.lrs.items():
            if lr is not None and lr <= 0:
                raise ValueError(f"stage {self.name!r}: lr of {group!r} must be > 0 or None (frozen), got {lr}")

    def with_lrs(self, overrides: Mapping[str, float | None]) -> StageSpec:
        return StageSpec(self.name, {**self.lrs, **overrides}, self.description)


STAGES: dict[str, StageSpec] = {
    "stage1": StageSpec(
        "stage1",
        {"vision": None, "projector": 1e-5, "object_tokenizer": 1e-3, "oci": 1e-3, "llm": 1e-5},
        "paper stage 1 (region-text alignment): new object tokenizer / OCI at 1e-3, LLM and projector at 1e-5",
    ),
    "stage2": StageSpec(
        "stage2",
        {"vision": None, "projector": 1e-5, "object_tokenizer": 1e-5, "oci": 1e-5, "llm": 1e-5},
        "paper stage 2 (instruction tuning): everything but the vision encoder at 1e-5",
    ),
    "scratch": StageSpec(
        "scratch",
        {"vision": 2e-3, "projector": 2e-3, "object_tokenizer": 2e-3, "oci": 2e-3, "llm": 2e-3},
        "from random init (the bundled small models): every module trains",
    ),
    "region-only": StageSpec(
        "region-only",
        {"vision": None, "projector": None, "object_tokenizer": 1e-3, "oci": 1e-3, "llm": None},
        "only the object tokenizer and OCI train (probing a frozen backbone)",
    ),
}


def get_stage(name: str, overrides: Mapping[str, float | None] | None = None) -> StageSpec:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; known: {sorted(STAGES)}")
    return STAGES[name].with_lrs(overrides or {})


WRAPPER_PREFIXES = ("base_model.model.", "module.", "_orig_mod.")  # peft, DDP / DeepSpeed, torch.compile


def model_name(param_name: str) -> str:
    """The parameter's name in the bare model: wrapper prefixes (peft, DDP, compile) removed."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if param_name.startswith(prefix):
                param_name, stripped = param_name[len(prefix):], True
    return param_name


def group_of(param_name: str) -> str:
    name = model_name(param_name)
    for group, prefixes in MODULE_GROUPS.items():
        if name.startswith(prefixes):
            return group
    raise ValueError(f"parameter {param_name!r} belongs to no module group of {list(MODULE_GROUPS)}")


@dataclass
class StagePlan:
    """Parameter names per module group after applying a stage (groups absent from the model are empty)."""

    trainable: dict[str, list[str]] = field(default_factory=dict)
    frozen: dict[str, list[str]] = field(default_factory=dict)


def apply_stage(model: nn.Module, stage: StageSpec, trainable: Callable[[str], bool] | None = None) -> StagePlan:
    """Set ``requires_grad`` per the stage; returns which parameters train.

    ``trainable(name)`` narrows it further: a parameter of a group with an lr trains only if it says so
    (LoRA: the adapted groups train their adapters, not their base weights).
    """
    plan = StagePlan()
    for name, param in model.named_parameters():
        group = group_of(name)
        train = stage.lrs[group] is not None and (trainable is None or trainable(name))
        param.requires_grad_(train)
        (plan.trainable if train else plan.frozen).setdefault(group, []).append(name)
    for group in MODULE_GROUPS:
        n_train = len(plan.trainable.get(group, []))
        n_frozen = len(plan.frozen.get(group, []))
        if n_train or n_frozen:
            logger.info("stage %s: %-16s lr=%s (%d trainable, %d frozen tensors)", stage.name, group,
                        stage.lrs[group], n_train, n_frozen)
    return plan
