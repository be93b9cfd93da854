"""What a training stage optimises, apart from how the loop runs it.

An :class:`Objective` says which parameters train (and in which optimizer groups), the loss of one
micro-batch and what an evaluation measures; :class:`pixelrefer.train.loop.Trainer` runs any objective with
the same engines, checkpoints, resume, metrics and progress bar. :class:`NextTokenObjective` is PixelRefer's
own (the next-token loss of the model, stages of :mod:`pixelrefer.train.stages`); a recipe may bring another
(see ``pixelrefer.recipes.vision`` for the vision tower's region-label pretraining).

The training data is either a map-style ``Dataset`` (the loop draws a seeded permutation per epoch and shards
it over the processes) or a :class:`BatchStream`: an endless stream of ready batches that restarts from a
saved position, for data made on the fly.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pixelrefer.train.lora import trainable_predicate
from pixelrefer.train.optim import param_groups
from pixelrefer.train.stages import StagePlan, StageSpec, apply_stage

if TYPE_CHECKING:
    from pixelrefer.train.loop import Trainer


class BatchStream(ABC):
    """An endless, seeded stream of ready batches; ``position`` (JSON data) says where it resumes."""

    @abstractmethod
    def batches(self, position: dict[str, Any] | None) -> Iterator[tuple[Any, int, dict[str, Any]]]:
        """``(batch, samples in it, position after it)`` from ``position`` on (``None``: the start)."""


class Objective(ABC):
    """A training stage's loss, trainable parameters and evaluation (see the module docstring)."""

    name = "objective"

    @abstractmethod
    def prepare(self, model: nn.Module) -> StagePlan:
        """Set ``requires_grad`` on ``model`` (before the engine wraps it); returns what trains."""

    @abstractmethod
    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        """Optimizer groups of the trainable parameters of ``module`` (as the engine holds it), each with
        ``lr``, ``weight_decay`` and a ``group`` name."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        """The loss of one micro-batch and the number of targets it averages over."""

    def evaluate(self, trainer: Trainer) -> dict[str, Any] | None:
        """Metrics of an evaluation (logged as an ``eval`` record), or ``None`` for none."""
        return None


class NextTokenObjective(Objective):
    """The model's own next-token loss; a stage freezes module groups and gives the others their lr."""

    name = "train"

    def __init__(self, stage: StageSpec, weight_decay: float) -> None:
        self.stage, self.weight_decay = stage, weight_decay

    def prepare(self, model: nn.Module) -> StagePlan:
        return apply_stage(model, self.stage, trainable_predicate(model))

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        groups = param_groups(module, self.stage, self.weight_decay)
        if not groups:
            raise ValueError(f"stage {self.stage.name!r} leaves no trainable parameter")
        return groups

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        batch = batch.to(device)
        loss = model(**batch.as_kwargs()).loss
        return loss, int((batch.labels != -100).sum()) if batch.labels is not None else 0

    @torch.no_grad()
    def evaluate(self, trainer: Trainer) -> dict[str, Any] | None:
        """Mean token loss over the eval set (its batches shared out over the processes)."""
        eval_set, cfg, procs = trainer.eval_set, trainer.cfg, trainer.procs
        if eval_set is None or len(eval_set) == 0:
            return None
        trainer.model.eval()
        total, count = 0.0, 0
        starts = list(range(0, len(eval_set), cfg.batch_size))
        rounds = math.ceil(len(starts) / procs.world_size)
        for r in range(rounds):  # every process runs the same number of forwards (FSDP2/ZeRO-3 gather in each)
            k = r * procs.world_size + procs.rank
            start = starts[k] if k < len(starts) else starts[-1]
            idx = range(start, min(start + cfg.batch_size, len(eval_set)))
            batch = trainer.to_device(trainer.collator([eval_set[i] for i in idx]))
            with trainer.autocast():
                loss = trainer.model(**batch.as_kwargs()).loss
            if k < len(starts):
                n = int((batch.labels[:, 1:] != -100).sum())
                total, count = total + float(loss) * n, count + n
        total, count = procs.sum(total), procs.sum(count)
        return {"eval_loss": total / max(count, 1)}
