"""A whole training run from a :class:`TrainConfig`: data (built if synthetic and absent), tokenizer (trained if
absent), model (preset or checkpoint), training, export of model + tokenizer in our checkpoint format."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from pixelrefer.errors import CheckpointError, ConfigError
from pixelrefer.model.modeling import PixelReferForConditionalGeneration
from pixelrefer.processing.processor import PixelReferProcessor
from pixelrefer.train.config import TrainConfig
from pixelrefer.train.dataset import Collator, SupervisedDataset, TaskFocus
from pixelrefer.train.loop import STATE_FILE, Trainer, latest_checkpoint, seed_everything

logger = logging.getLogger(__name__)


def prepare_data(cfg: TrainConfig) -> None:
    """Build the synthetic dataset if the config asks for it and it is not on disk."""
    root = Path(cfg.data.root)
    if (root / cfg.data.train_file).is_file():
        return
    if cfg.data.synth is None:
        raise FileNotFoundError(f"{root / cfg.data.train_file} does not exist and data.synth is not set")
    from pixelrefer.synth import build_dataset

    logger.info("building the synthetic dataset in %s", root)
    build_dataset(root, progress=cfg.progress, **cfg.data.synth)


def prepare_tokenizer(cfg: TrainConfig) -> Any:
    """Load the tokenizer folder, training it on the training split's text first if it is absent."""
    from transformers import AutoTokenizer

    directory = cfg.data.tokenizer_dir
    if not (directory / "tokenizer.json").is_file():
        if cfg.model.init_from is not None or cfg.data.synth is None:
            raise FileNotFoundError(f"no tokenizer in {directory}")
        from pixelrefer.synth.tokenizer import corpus_texts, train_tokenizer

        logger.info("training the tokenizer into %s", directory)
        train_tokenizer(corpus_texts(cfg.data.root, (cfg.data.train_file,)), directory,
                        vocab_size=cfg.data.vocab_size)
    return AutoTokenizer.from_pretrained(directory)


def build_model(cfg: TrainConfig, tokenizer: Any) -> PixelReferForConditionalGeneration:
    """A random-init preset model (seeded by ``cfg.seed``) or a checkpoint's weights."""
    if cfg.model.init_from is not None:
        from pixelrefer.model.loading import load_checkpoint

        model, _ = load_checkpoint(cfg.model.init_from, torch.device("cpu"), torch.float32)
        return model
    from pixelrefer.presets import preset_config

    config = preset_config(cfg.model.preset, tokenizer, **cfg.model.overrides)
    seed_everything(cfg.seed)
    model = PixelReferForConditionalGeneration(config)
    if cfg.model.vision_init is not None:
        prepare_vision(cfg, model)
    return model


def prepare_vision(cfg: TrainConfig, model: PixelReferForConditionalGeneration) -> None:
    """Load ``model.vision_init`` into the model, running the vision pretraining there first if it is absent."""
    from pixelrefer.train.vision_pretrain import (
        WEIGHTS_FILE,
        folder_lock,
        load_vision_weights,
        pretrain_vision,
    )
    from pixelrefer.utils.device import resolve_device

    folder = Path(str(cfg.model.vision_init))
    if not (folder / WEIGHTS_FILE).is_file():
        if cfg.vision_pretrain is None:
            raise FileNotFoundError(f"{folder / WEIGHTS_FILE} does not exist and vision_pretrain is not set")
        with folder_lock(folder):
            if not (folder / WEIGHTS_FILE).is_file():  # another run may have finished it while this one waited
                logger.info("pretraining the vision tower into %s", folder)
                device = resolve_device(cfg.device)
                pretrain_vision(model.to(device), cfg.vision_pretrain, folder, device, cfg.progress)
                model.to("cpu")
    load_vision_weights(model, folder)
    logger.info("vision tower and box position embedding loaded from %s", folder)


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
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    prepare_data(cfg)
    tokenizer = prepare_tokenizer(cfg)
    model = build_model(cfg, tokenizer)
    processor = PixelReferProcessor(tokenizer, model.config)
    root = Path(cfg.data.root)
    focus = TaskFocus(tuple(cfg.data.focus_tasks), cfg.data.other_ratio) if cfg.data.focus_tasks else None
    train_set = SupervisedDataset(root / cfg.data.train_file, processor, root, cfg.data.validate, cfg.data.limit,
                                  focus)
    eval_set = None
    if cfg.data.eval_file and (root / cfg.data.eval_file).is_file():
        eval_set = SupervisedDataset(root / cfg.data.eval_file, processor, root, cfg.data.validate,
                                     cfg.data.eval_limit)
    seed_everything(cfg.seed)
    trainer = Trainer(model, train_set, Collator(processor, "right"), cfg, eval_set)
    found = latest_checkpoint(cfg.output_dir)
    if resume == "never" and found is not None:
        logger.warning("%s already holds checkpoints (latest %s); starting a new run over them (resume=auto "
                       "continues it instead)", cfg.output_dir, found.name)
    checkpoint = found if resume == "auto" else (None if resume == "never" else Path(resume))
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
    return trainer, tokenizer


def export(trainer: Trainer, tokenizer: Any, directory: str | Path) -> Path:
    """Save the trained model (fp32 safetensors) and its tokenizer in our checkpoint format."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    logger.info("exported the model and tokenizer to %s", out)
    return out


def run(cfg: TrainConfig, resume: str = "never") -> Path:
    """Train per ``cfg`` and export; the resolved config is written to the output folder."""
    check_resume(resume)
    cfg.save(cfg.output_dir)
    trainer, tokenizer = build_trainer(cfg, resume)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    logger.info("model: %s, %d parameters; %d training samples; %d steps", trainer.model.config.variant,
                n_params, len(trainer.train_set), trainer.total_steps)
    trainer.fit()
    return export(trainer, tokenizer, cfg.export_path)
