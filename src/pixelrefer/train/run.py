"""A whole training run from a :class:`TrainConfig`, on data and a tokenizer already on disk: model (preset or
checkpoint, optionally with a pretrained vision tower), training, export of model + tokenizer in our checkpoint
format. A recipe (``pixelrefer.recipes``) prepares what a run needs first (data, tokenizer, vision tower) and
then calls :func:`run`; this module never builds data itself."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelrefer.errors import CheckpointError, ConfigError
from pixelrefer.model.checkpoint import load_strict
from pixelrefer.model.modeling import PixelReferForConditionalGeneration
from pixelrefer.processing.processor import PixelReferProcessor
from pixelrefer.train.config import TrainConfig
from pixelrefer.train.dataset import Collator, SupervisedDataset, TaskFocus
from pixelrefer.train.distributed import init_processes
from pixelrefer.train.engines import tied_keys
from pixelrefer.train.loop import STATE_FILE, Trainer, latest_checkpoint, seed_everything
from pixelrefer.train.lora import apply_lora, check_lora, is_peft, merge, save_adapter

logger = logging.getLogger(__name__)

VISION_WEIGHTS_FILE = "vision.safetensors"  # of a model.vision_init folder
HEAD_FILE = "head.safetensors"  # ... and its pretraining's linear heads (labels; facts with fact_loss; diagnostics)
FACT_HEAD_PREFIX = "facts."  # the fact head's tensors in HEAD_FILE (model.projector_init=facts)
VISION_PREFIXES = ("vision_model.", "object_tokenizer.pos_proj.")  # the tensors it holds


def load_tokenizer(cfg: TrainConfig) -> Any:
    """The run's tokenizer folder (``data.tokenizer``, default ``DATA_ROOT/tokenizer``)."""
    from transformers import AutoTokenizer

    directory = cfg.data.tokenizer_dir
    if not (directory / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer in {directory}")
    return AutoTokenizer.from_pretrained(directory)


def build_model(cfg: TrainConfig, tokenizer: Any) -> PixelReferForConditionalGeneration:
    """A random-init preset model (seeded by ``cfg.seed``) or a checkpoint's weights; with ``model.vision_init``
    the vision tower and box position embedding come from that folder."""
    if cfg.model.init_from is not None:
        from pixelrefer.model.loading import load_checkpoint

        model, _ = load_checkpoint(cfg.model.init_from, torch.device("cpu"), torch.float32)
        return model
    from pixelrefer.presets import preset_config

    config = preset_config(cfg.model.preset, tokenizer, **cfg.model.overrides)
    seed_everything(cfg.seed)
    model = PixelReferForConditionalGeneration(config)
    if cfg.model.vision_init is not None:
        folder = Path(cfg.model.vision_init)
        if not (folder / VISION_WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{folder / VISION_WEIGHTS_FILE} does not exist (model.vision_init)")
        load_vision_weights(model, folder)
        logger.info("vision tower and box position embedding loaded from %s", folder)
    if cfg.model.projector_init == "facts":
        init_projector_from_facts(model, Path(cfg.model.vision_init))
    if cfg.model.position_gain != 1.0:
        scale_position_embedding(model, cfg.model.position_gain)
    return model


def init_projector_from_facts(model: PixelReferForConditionalGeneration, folder: Path) -> None:
    """Start the first rows of the object projector's first layer as the vision pretraining's fact head
    (``FOLDER/head.safetensors``; mean RGB, box and pattern logits), each row and its bias rescaled to the mean
    norm of the layer's random rows, so the LLM's object tokens hold the tower's facts from the first step.

    Measured reason (docs/training.md, experiment 13): the fact head reads colour from the pooled tower
    features on unseen (category, colour) pairs (a linear probe on its logits: 90 %), but a readout learnt
    from the LLM stage's data (the projector, or a probe fitted there) finds a colour tied to the category
    (78 % before the projector, 60 % after it).
    """
    from safetensors.torch import load_file

    path = folder / HEAD_FILE
    heads = load_file(path) if path.is_file() else {}
    if FACT_HEAD_PREFIX + "weight" not in heads:
        raise FileNotFoundError(f"{path} holds no fact head (model.projector_init=facts needs a vision "
                                f"pretraining with vision_pretrain.fact_loss > 0)")
    facts, bias = heads[FACT_HEAD_PREFIX + "weight"].float(), heads[FACT_HEAD_PREFIX + "bias"].float()
    first = model.object_tokenizer.mlp[0]
    if facts.shape[1] != first.in_features or facts.shape[0] > first.out_features:
        raise ConfigError(f"the fact head {tuple(facts.shape)} does not fit the object projector's first layer "
                          f"({first.out_features} x {first.in_features})")
    with torch.no_grad():
        target = first.weight.norm(dim=1).mean()
        scale = target / facts.norm(dim=1).clamp(min=1e-12)
        first.weight[: len(facts)] = (facts * scale[:, None]).to(first.weight.dtype)
        first.bias[: len(facts)] = (bias * scale).to(first.bias.dtype)
    logger.info("object projector: %d of %d first-layer rows start as the fact head of %s", len(facts),
                first.out_features, folder)


def scale_position_embedding(model: PixelReferForConditionalGeneration, gain: float) -> None:
    """Amplify the box position embedding ``gain`` times about its value at the image centre, before the LLM
    stage trains: ``pos(p) -> pos(c) + gain * (pos(p) - pos(c))`` with ``c = (0.5, 0.5)``, so the object tokens'
    geometry varies ``gain`` times more while their mean stays put.

    The embedding is added to the tower's crop features after the tower, so the tower is unaffected. Measured
    reason (docs/training.md, experiments 8 to 10): after region-label pretraining the position part of a pooled
    object token varies about 27x less across regions than its appearance part, and an LLM trained from scratch
    on it answers position and left/right questions at chance, even when those are its only training questions.
    """
    proj = model.object_tokenizer.pos_proj
    with torch.no_grad():
        centre = proj.weight.sum(dim=1) * 0.5
        proj.weight.mul_(gain)
        proj.bias.add_((1.0 - gain) * centre)
    logger.info("box position embedding scaled by %g", gain)


def vision_state(model: PixelReferForConditionalGeneration) -> dict[str, torch.Tensor]:
    """The tensors ``model.vision_init`` provides, under the model's names, on the CPU."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.startswith(VISION_PREFIXES)}


def save_vision_weights(model: PixelReferForConditionalGeneration, directory: str | Path) -> Path:
    """Write :func:`vision_state` to ``DIRECTORY/vision.safetensors`` atomically (a present file is complete)."""
    path = Path(directory) / VISION_WEIGHTS_FILE
    save_atomic(vision_state(model), path)
    return path


def save_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_vision_weights(model: PixelReferForConditionalGeneration, directory: str | Path) -> None:
    """Load a ``vision.safetensors`` into ``model`` (every tensor must fit: names and shapes checked)."""
    from safetensors.torch import load_file

    path = Path(directory) / VISION_WEIGHTS_FILE
    state = {k.replace("object_tokenizer.", "", 1): v for k, v in load_file(str(path)).items()}
    sub = nn.ModuleDict({"vision_model": model.vision_model, "pos_proj": model.object_tokenizer.pos_proj})
    try:
        load_strict(sub, state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def set_threads(cfg: TrainConfig) -> None:
    """Apply ``num_threads`` (torch's CPU threads) if the config sets it."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)


def check_resume(resume: str) -> None:
    """``resume`` must be ``never``, ``auto`` or an existing checkpoint folder (checked before any work)."""
    if resume in ("never", "auto"):
        return
    path = Path(resume)
    if not path.is_dir():
        raise ConfigError(f"resume={resume!r}: no such checkpoint folder (or use 'never' / 'auto')")
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"resume={resume!r}: not a training checkpoint (no {STATE_FILE})")


def build_trainer(cfg: TrainConfig, resume: str = "never") -> tuple[Trainer, Any]:
    """Everything but the loop itself; ``resume`` is ``never``, ``auto`` (latest checkpoint if any) or a path."""
    check_resume(resume)
    set_threads(cfg)
    procs = init_processes(cfg.device)
    if cfg.lora is not None:
        check_lora(cfg.lora, procs.device, cfg.strategy)
    tokenizer = load_tokenizer(cfg)
    model = build_model(cfg, tokenizer)
    processor = PixelReferProcessor(tokenizer, model.config)
    if cfg.lora is not None:
        model = apply_lora(model, cfg.lora)
    root = Path(cfg.data.root)
    focus = TaskFocus(tuple(cfg.data.focus_tasks), cfg.data.other_ratio) if cfg.data.focus_tasks else None
    train_set = SupervisedDataset(root / cfg.data.train_file, processor, root, cfg.data.validate, cfg.data.limit,
                                  focus)
    eval_set = None
    if cfg.data.eval_file and (root / cfg.data.eval_file).is_file():
        eval_set = SupervisedDataset(root / cfg.data.eval_file, processor, root, cfg.data.validate,
                                     cfg.data.eval_limit)
    seed_everything(cfg.seed)
    trainer = Trainer(model, train_set, Collator(processor, "right"), cfg, eval_set, procs)
    resume_trainer(trainer, resume)
    return trainer, tokenizer


def resume_trainer(trainer: Trainer, resume: str) -> None:
    """Load the checkpoint ``resume`` names into ``trainer`` (``auto``: the latest of its output folder, if any;
    ``never``: none, with a warning when the folder already holds checkpoints)."""
    found = latest_checkpoint(trainer.output_dir)
    if resume == "never" and found is not None and trainer.procs.is_main:
        logger.warning("%s already holds checkpoints (latest %s); starting a new run over them (resume=auto "
                       "continues it instead)", trainer.output_dir, found.name)
    checkpoint = found if resume == "auto" else (None if resume == "never" else Path(resume))
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)


def export(trainer: Trainer, tokenizer: Any, directory: str | Path) -> Path:
    """Save the trained model (unsharded safetensors) and its tokenizer in our checkpoint format; with LoRA
    the adapter goes to ``DIRECTORY/adapter`` and the model is saved with it merged. Every process calls it
    (gathering a sharded model is a collective); the main process writes."""
    out = Path(directory)
    state = trainer.engine.full_state_dict()
    if trainer.procs.is_main:
        out.mkdir(parents=True, exist_ok=True)
        module = trainer.module
        if is_peft(module):
            save_adapter(module, out)
            module, state = merge(module), None
        if state is not None:
            tied = tied_keys(module)
            state = {k: v for k, v in state.items() if k not in tied}
        module.save_pretrained(out, state_dict=state)
        tokenizer.save_pretrained(out)
        logger.info("exported the model and tokenizer to %s", out)
    trainer.procs.barrier()
    return out


def run(cfg: TrainConfig, resume: str = "never") -> Path:
    """Train per ``cfg`` and export; the resolved config is written to the output folder."""
    check_resume(resume)
    if int(os.environ.get("RANK", "0")) == 0:
        cfg.save(cfg.output_dir)
    trainer, tokenizer = build_trainer(cfg, resume)
    n_params = sum(getattr(p, "ds_numel", p.numel()) for p in trainer.module.parameters())  # ZeRO-3: unsharded
    if trainer.procs.is_main:
        logger.info("model: %s, %d parameters; %d training samples; %d steps on %d process(es), strategy %s",
                    trainer.module.config.variant, n_params, len(trainer.train_set), trainer.total_steps,
                    trainer.procs.world_size, cfg.strategy)
    trainer.fit()
    return export(trainer, tokenizer, cfg.export_path)
