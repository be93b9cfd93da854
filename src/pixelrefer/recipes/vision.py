"""Region-label pretraining of the vision tower on the synthetic world.

The released PixelRefer models start from a SigLIP encoder that contrastive pretraining on billions of
image-text pairs has already taught what things look like; the LLM-side training of the paper never has to
teach the encoder shapes. A small model trained from scratch has no such encoder, and learning shapes through
the next-token loss alone, a few category answers per batch, is far too slow for a CPU budget. This module is
our stand-in for that pretraining: the vision tower (and the object tokenizer's box position embedding) learn
to name every region of freshly rendered synthetic scenes, supervised directly.

Per region the features are exactly those the object tokenizer sees at inference: the Scale-Adaptive crop
(:func:`pixelrefer.processing.crops.plan_crop` with the model's crop rules), one vision call over the batch,
the box position embedding, the cells inside the mask; their mean goes through a linear head over the labels of
the world (categories and ``object:part`` labels); with ``fact_loss`` a second linear head on the same feature
reads the region's facts measured on its pixels (mean RGB, box, pattern: :func:`pixelrefer.recipes.regions.region_facts`),
so that the tower keeps what the category alone would let it discard, which the LLM's colour, size and position
answers need. Scenes are rendered on the fly in DataLoader workers, so
every step sees new images. Objects are painted in random colours at least
:data:`pixelrefer.synth.scenes.OFF_PALETTE_DISTANCE` away from every named colour of the world
(``off_palette_colours``): like a real-world encoder the tower sees every shape in many colours, so it learns
shapes apart from colours, yet it never sees any named colour on any shape, so the held-out split's (category,
colour) combinations stay unseen. With ``off_palette_colours=False`` it sees the instruction data's palette minus
the held-out combinations, and its features then tie shape to colour (see docs/training.md for what that costs).
Validation uses scenes of another seed stream.

It is a stage of the one trainer loop (:class:`pixelrefer.train.loop.Trainer`, strategy ``single``) with its
own objective (:class:`RegionLabelObjective`) and data (:class:`RegionStream`, a resumable stream of rendered
batches), so it has the trainer's checkpoints, exact resume (``resume="auto"``: from the latest checkpoint of the
folder, also in a later session), metrics and progress bar.

The output folder holds ``vision.safetensors`` (the ``vision_model.*`` and ``object_tokenizer.pos_proj.*``
tensors under their model names; written last and atomically, see :func:`pixelrefer.train.run.save_vision_weights`),
``head.safetensors`` (the label head, labels in its metadata, and with ``fact_loss`` the fact head, which
``model.projector_init=facts`` reads), ``metrics.jsonl``, ``checkpoints/`` and the
resolved section as ``vision_pretrain.yaml``; runs sharing the folder take turns (:func:`folder_lock`), so it is
trained once. ``model.vision_init`` loads the weights into a freshly built model
(:func:`pixelrefer.train.run.load_vision_weights`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from pixelrefer.config import DOWNSCALE_THRESHOLD
from pixelrefer.model.modeling import PixelReferForConditionalGeneration, region_grids
from pixelrefer.processing.crops import CropSpec
from pixelrefer.recipes.config import RecipeConfig, VisionPretrainSection
from pixelrefer.recipes.regions import (
    FACTS,
    HELDOUT_STREAM,
    NO_PATTERN,
    TRAIN_STREAM,
    VAL_STREAM,
    Batch,
    RegionStream,
    SyntheticRegions,
    eval_batches,
)
from pixelrefer.synth import world
from pixelrefer.train.config import TrainConfig, plain_data
from pixelrefer.train.distributed import Processes, init_processes
from pixelrefer.train.loop import Trainer, latest_checkpoint, seed_everything
from pixelrefer.train.objective import Objective
from pixelrefer.train.run import (
    FACT_HEAD_PREFIX,
    HEAD_FILE,
    VISION_WEIGHTS_FILE,
    build_model,
    load_tokenizer,
    resume_trainer,
    save_atomic,
    save_vision_weights,
)
from pixelrefer.train.stages import StagePlan
from pixelrefer.types import VisualInputs

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
CONFIG_FILE = "vision_pretrain.yaml"
GROUP = "vision"  # the optimizer group name of every pretrained tensor
FACT_BINS = 8  # equal bins of [0, 1] in which the fact head places each continuous fact

def crop_spec(model: PixelReferForConditionalGeneration) -> CropSpec:
    """PixelRefer's crop rules (full variant, its shrink threshold) with the model's geometry and budgets: the same
    tower is shared by both variants, so a Lite model pretrains exactly the tower a full one would."""
    spec = CropSpec.from_config(model.config)
    threshold = DOWNSCALE_THRESHOLD["full"] if model.config.is_lite else spec.downscale_threshold_patches
    return replace(spec, variant="full", downscale_threshold_patches=threshold)


class RegionClassifier(nn.Module):
    """The model's vision tower and box position embedding, plus a linear head on each region's mean feature; with
    ``facts=True`` a second linear head reads the region's facts from the same feature (:func:`fact_loss`)."""

    def __init__(self, model: PixelReferForConditionalGeneration, num_labels: int, facts: bool = False) -> None:
        super().__init__()
        self.vision_model = model.vision_model
        self.pos_proj = model.object_tokenizer.pos_proj
        self._model = [model]  # not a submodule: only the modules above train
        hidden = model.config.vision_config.hidden_size
        self.head = nn.Linear(hidden, num_labels)
        self.facts = nn.Linear(hidden, len(FACTS) * FACT_BINS + len(world.PATTERNS)) if facts else None

    def region_tokens(self, visual: VisualInputs) -> list[torch.Tensor]:
        """Per region, the features of the cells inside its mask (what the object tokenizer pools)."""
        model = self._model[0]
        positions, masks = region_grids(visual)
        return model.object_tokenizer.masked_tokens(model.encode_vision(visual)["crop"], positions, masks)

    def pooled(self, visual: VisualInputs) -> torch.Tensor:
        return torch.stack([t.mean(0) for t in self.region_tokens(visual)])

    def forward(self, visual: VisualInputs) -> torch.Tensor:
        return self.head(self.pooled(visual))


def fact_targets(facts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each continuous fact as one of ``FACT_BINS`` equal bins of [0, 1] (N, len(FACTS)), and the pattern (N,)."""
    bins = (facts[:, :len(FACTS)] * FACT_BINS).long().clamp(0, FACT_BINS - 1)
    return bins, facts[:, len(FACTS)].long()


def fact_logits(classifier: RegionClassifier, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fact head's logits: per continuous fact over its bins (N, len(FACTS), FACT_BINS), and over the patterns."""
    assert classifier.facts is not None
    logits = classifier.facts(pooled)
    split = len(FACTS) * FACT_BINS
    return logits[:, :split].reshape(len(pooled), len(FACTS), FACT_BINS), logits[:, split:]


def fact_loss(classifier: RegionClassifier, pooled: torch.Tensor, facts: torch.Tensor) -> torch.Tensor:
    """Mean of the per-fact cross-entropies: each continuous fact over its bins, the pattern over the world's
    patterns (parts, whose pattern is :data:`NO_PATTERN`, are left out of that term)."""
    binned, patterns = fact_logits(classifier, pooled)
    bins, pattern = fact_targets(facts.to(pooled.device))
    losses = [nn.functional.cross_entropy(binned.reshape(-1, FACT_BINS), bins.reshape(-1))]
    if bool((pattern != NO_PATTERN).any()):
        losses.append(nn.functional.cross_entropy(patterns, pattern, ignore_index=NO_PATTERN))
    return torch.stack(losses).mean()


@torch.no_grad()
def accuracy(classifier: RegionClassifier, batches: list[Batch], device: torch.device) -> dict[str, float]:
    """Label accuracy overall (``all``) and per object size; with a fact head also each fact's bin accuracy
    (``fact:NAME``, the pattern over whole objects)."""
    classifier.eval()
    hits: dict[str, list[bool]] = {}
    for visual, labels, sizes, facts in batches:
        pooled = classifier.pooled(visual.to(device))
        right = (classifier.head(pooled).argmax(1).cpu() == labels).tolist()
        for size, ok in zip(sizes, right):
            hits.setdefault("all", []).append(ok)
            hits.setdefault(size, []).append(ok)
        if classifier.facts is not None:
            binned, patterns = (t.cpu() for t in fact_logits(classifier, pooled))
            bins, pattern = fact_targets(facts)
            guess = binned.argmax(2)
            for k, name in enumerate(FACTS):
                hits.setdefault(f"fact:{name}", []).extend((guess[:, k] == bins[:, k]).tolist())
            whole = pattern != NO_PATTERN
            hits.setdefault("fact:pattern", []).extend((patterns[whole].argmax(1) == pattern[whole]).tolist())
    classifier.train()
    return {k: sum(v) / len(v) for k, v in hits.items() if v}


class RegionLabelObjective(Objective):
    """Cross-entropy of each region's label; every tensor of the classifier trains at one lr with weight decay
    (biases and norms included); evaluations: accuracy on ``val`` (unseen scenes of the training distribution)
    and ``heldout`` (objects of the held-out (category, colour) combinations in their named colours, which
    training never shows), each overall and per object size."""

    name = "vision pretraining"

    def __init__(self, lr: float, weight_decay: float, evals: dict[str, list[Batch]], cell_loss: float = 0.0,
                 fact_loss: float = 0.0) -> None:
        self.lr, self.weight_decay, self.evals, self.cell_loss = lr, weight_decay, evals, cell_loss
        self.fact_loss = fact_loss

    def prepare(self, model: nn.Module) -> StagePlan:
        names = []
        for name, p in model.named_parameters():
            p.requires_grad_(True)
            names.append(name)
        return StagePlan(trainable={GROUP: names})

    def param_groups(self, module: nn.Module) -> list[dict[str, Any]]:
        return [{"params": list(module.parameters()), "lr": self.lr, "weight_decay": self.weight_decay,
                 "group": GROUP, "decay": True}]

    def loss(self, model: nn.Module, batch: Batch, device: torch.device) -> tuple[torch.Tensor, int]:
        visual, target, _, facts = batch
        target = target.to(device)
        if not self.cell_loss and not self.fact_loss:
            return nn.functional.cross_entropy(model(visual.to(device)), target), len(target)
        tokens = model.region_tokens(visual.to(device))
        pooled = torch.stack([t.mean(0) for t in tokens])
        loss = nn.functional.cross_entropy(model.head(pooled), target)
        if self.cell_loss:
            cells = target.repeat_interleave(torch.tensor([len(t) for t in tokens], device=device))
            loss = loss + self.cell_loss * nn.functional.cross_entropy(model.head(torch.cat(tokens)), cells)
        if self.fact_loss:
            loss = loss + self.fact_loss * fact_loss(model, pooled, facts)
        return loss, len(target)

    def evaluate(self, trainer: Trainer) -> dict[str, Any]:
        acc = {name: accuracy(trainer.model, batches, trainer.device) for name, batches in self.evals.items()}
        facts = {k: v for k, v in acc["val"].items() if k.startswith("fact:")}
        return {"val_accuracy": acc["val"]["all"], "heldout_accuracy": acc["heldout"]["all"],
                **({"val_fact_accuracy": sum(facts.values()) / len(facts)} if facts else {}), "per_size": acc}


def stage_config(cfg: VisionPretrainSection, out_dir: Path, precision: str, progress: bool) -> TrainConfig:
    """The trainer settings of the pretraining stage (one process; its steps, batch, seed, schedule, cadence)."""
    return TrainConfig(optim=cfg.optim, batch_size=cfg.batch_size, max_steps=cfg.steps, seed=cfg.seed,
                       log_every=cfg.log_every, eval_every=cfg.eval_every, save_every=cfg.save_every,
                       keep_checkpoints=cfg.keep_checkpoints, output_dir=str(out_dir), precision=precision,
                       num_workers=cfg.workers, progress=progress, strategy="single")


def pretrain_vision(model: PixelReferForConditionalGeneration, cfg: VisionPretrainSection, out_dir: str | Path,
                    device: torch.device, progress: bool = True, resume: str = "never", precision: str = "auto",
                    stop_at: int | None = None) -> Trainer:
    """Train ``model``'s vision tower and box position embedding in place (moving the model to ``device``); write
    them to ``out_dir``. ``resume``: ``never``, ``auto`` (the folder's latest checkpoint, if any) or a checkpoint
    folder. ``stop_at`` ends the run after that step as an interruption would (no weights written). Returns the
    stage's trainer (its ``module`` is the classifier: tower + head)."""
    from pixelrefer.synth.scenes import MIN_PART_PIXELS

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = world.category_labels()
    seed_everything(cfg.seed)
    spec = crop_spec(model)
    settings = {**asdict(cfg), "crop_spec": asdict(spec)}
    (out / CONFIG_FILE).write_text(yaml.safe_dump(plain_data(settings), sort_keys=False), encoding="utf-8")
    model.to(device)
    classifier = RegionClassifier(model, len(labels), facts=cfg.fact_loss > 0)
    palette = not cfg.off_palette_colours

    def regions(stream: int, **kwargs: Any) -> SyntheticRegions:
        return SyntheticRegions(spec, labels, cfg.seed, stream, cfg.image_size, MIN_PART_PIXELS,
                                **({"palette": palette} | kwargs))

    evals = {"val": eval_batches(regions(VAL_STREAM), cfg.batch_size, cfg.val_regions),
             "heldout": eval_batches(regions(HELDOUT_STREAM, palette=True, held_out="require"), cfg.batch_size,
                                     cfg.val_regions)}
    objective = RegionLabelObjective(cfg.lr, cfg.optim.weight_decay, evals, cfg.cell_loss, cfg.fact_loss)
    trainer = Trainer(classifier, RegionStream(regions(TRAIN_STREAM), cfg.batch_size, cfg.workers), None,
                      stage_config(cfg, out, precision, progress), procs=Processes(device=device),
                      objective=objective)
    resume_trainer(trainer, resume)
    trainer.fit(stop_at)
    if trainer.state.step < trainer.total_steps:
        return trainer
    heads = {"": classifier.head, FACT_HEAD_PREFIX: classifier.facts}
    head = {prefix + k: v.detach().cpu().contiguous() for prefix, module in heads.items() if module is not None
            for k, v in module.state_dict().items()}
    save_atomic(head, out / HEAD_FILE, {"labels": json.dumps(list(labels))})
    path = save_vision_weights(model, out)  # written last: its presence means the folder is complete
    logger.info("vision pretraining: %d steps in %.0f s -> %s", cfg.steps, trainer.state.elapsed_s, path)
    return trainer


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``FOLDER/.lock`` (POSIX ``flock``: released even if the process dies), so that
    runs sharing one pretraining folder train it once; a run that has to wait says so."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): concurrent runs would each pretrain
        yield
        return
    with open(folder / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another run is pretraining into %s; waiting for it", folder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pending_folder(cfg: RecipeConfig) -> Path | None:
    """The ``model.vision_init`` folder if the run needs it and it holds no weights yet (else ``None``)."""
    if cfg.model.vision_init is None or cfg.model.init_from is not None:
        return None
    folder = Path(cfg.model.vision_init)
    return None if (folder / VISION_WEIGHTS_FILE).is_file() else folder


def plan_line(cfg: RecipeConfig) -> str | None:
    """What the pretraining step will do, for ``pixelrefer train --dry-run`` (``None``: nothing to do)."""
    folder = pending_folder(cfg)
    if folder is None:
        return None
    section = cfg.vision_pretrain
    if section is None:
        return f"vision pretraining: needed, but vision_pretrain is not set ({folder / VISION_WEIGHTS_FILE} is absent)"
    found = latest_checkpoint(folder)
    resume = f"; --resume auto continues from {found.name}" if found is not None else ""
    return (f"vision pretraining first: {section.steps} steps x {section.batch_size} regions, lr {section.lr:g}, "
            f"one process, into {folder}{resume}")


def prepare_vision(cfg: RecipeConfig, resume: str = "never") -> None:
    """The recipe step: make ``model.vision_init`` hold pretrained weights, running the pretraining there (on the
    run's freshly initialised model, seeded as the run builds it) if it has none. ``resume``: the run's; the
    pretraining resumes from its own latest checkpoint unless it is ``never``."""
    folder = pending_folder(cfg)
    if folder is None:
        return
    if cfg.vision_pretrain is None:
        raise FileNotFoundError(f"{folder / VISION_WEIGHTS_FILE} does not exist and vision_pretrain is not set")
    with folder_lock(folder):
        if (folder / VISION_WEIGHTS_FILE).is_file():  # another run may have finished it while this one waited
            return
        logger.info("pretraining the vision tower into %s", folder)
        # position_gain and projector_init belong to the LLM stage (applied when that stage loads this tower)
        tower_cfg = replace(cfg.model, vision_init=None, position_gain=1.0, projector_init=None)
        model = build_model(dataclasses.replace(cfg, model=tower_cfg), load_tokenizer(cfg))
        device = init_processes(cfg.device).device
        pretrain_vision(model, cfg.vision_pretrain, folder, device, cfg.progress,
                        resume="never" if resume == "never" else "auto", precision=cfg.precision)

