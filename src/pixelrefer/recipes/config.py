"""A recipe's config: the trainer's :class:`~pixelrefer.train.config.TrainConfig` plus the sections of the steps
a recipe runs before training (synthetic data, tokenizer, vision pretraining), each typed and defined once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelrefer.errors import ConfigError
from pixelrefer.synth.config import (
    DEFAULT_PRETOKENIZER,
    DEFAULT_VOCAB_SIZE,
    IMAGE_SIZE,
    SynthConfig,
    check_pretokenizer,
)
from pixelrefer.train.config import (
    CONFIG_DIR,
    DataSection,
    OptimConfig,
    TrainConfig,
    list_train_configs,
    load_train_config,
)

RECIPE_CONFIG_DIR = Path(__file__).parent / "configs"
CONFIG_DIRS = (RECIPE_CONFIG_DIR, CONFIG_DIR)  # a recipe config may name a trainer config as its base
LEGACY_VISION_OPTIM = {"weight_decay", "warmup_steps", "min_lr_ratio", "grad_clip"}  # see upgrade()


def vision_optim() -> OptimConfig:
    """The vision pretraining's optimizer: AdamW with decay on every tensor, 100 warmup steps reaching the peak lr
    on the last one, cosine to 5 %."""
    return OptimConfig(weight_decay=0.01, warmup_steps=100, warmup_to_peak=True, min_lr_ratio=0.05)


@dataclass
class VisionPretrainSection:
    """Region-label pretraining of the vision tower on rendered synthetic scenes (:mod:`pixelrefer.recipes.vision`),
    run into ``model.vision_init`` when that folder has no weights yet; a stage of the trainer loop, so it
    checkpoints every ``save_every`` steps and resumes exactly."""

    steps: int = 2000
    batch_size: int = 64  # regions per step
    lr: float = 2e-3
    optim: OptimConfig = field(default_factory=vision_optim)
    seed: int = 0
    workers: int = 1  # DataLoader workers rendering scenes (the stream depends on this count)
    image_size: int = IMAGE_SIZE[0]  # side of the rendered scenes
    off_palette_colours: bool = True  # paint objects in random colours away from the named ones (see the module)
    val_regions: int = 512
    eval_every: int = 250
    log_every: int = 10
    save_every: int = 100  # checkpoint steps (resume point of an interrupted pretraining)
    keep_checkpoints: int = 1
    cell_loss: float = 0.0  # weight of a per-cell label loss (every cell inside a mask names the region's label)
    fact_loss: float = 0.0  # weight of a loss on each region's facts: mean RGB, box, pattern (recipes/regions.py)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "val_regions", "eval_every", "log_every", "save_every",
                     "keep_checkpoints", "image_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"vision_pretrain.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("cell_loss", "fact_loss"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"vision_pretrain.{name} must be >= 0, got {getattr(self, name)}")
        if self.workers < 0 or self.seed < 0 or not self.lr > 0:
            raise ConfigError("vision_pretrain.workers and seed must be >= 0 and lr > 0")


@dataclass
class RecipeData(DataSection):
    """The data section, plus the dataset and tokenizer a recipe builds when they are absent."""

    vocab_size: int = DEFAULT_VOCAB_SIZE  # of a tokenizer trained here (into data.tokenizer)
    pretokenizer: str = DEFAULT_PRETOKENIZER  # ... and its split rule (synth/tokenizer.py, PRETOKENIZERS)
    synth: SynthConfig | None = None  # build DATA_ROOT with pixelrefer.synth if its train file is absent

    def __post_init__(self) -> None:
        check_pretokenizer(self.pretokenizer)


@dataclass
class RecipeConfig(TrainConfig):
    data: RecipeData = field(default_factory=RecipeData)
    vision_pretrain: VisionPretrainSection | None = None


def list_recipe_configs() -> list[str]:
    """Every config ``pixelrefer train --config`` knows: the recipes' and the trainer's."""
    return list_train_configs(CONFIG_DIRS)


def load_recipe_config(name_or_path: str | None = None, overrides: list[str] | None = None) -> Any:
    """A recipe or trainer config by name (or a YAML path) plus ``key=value`` overrides, as a :class:`RecipeConfig`."""
    return load_train_config(name_or_path, overrides, schema=RecipeConfig, dirs=CONFIG_DIRS, upgrade=upgrade)


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A config written before the vision pretraining was a trainer stage (the bundled models' resolved
    ``train_config.yaml``) named its optimizer keys in the ``vision_pretrain`` section itself; they now live in
    ``vision_pretrain.optim`` (same meaning: the former loop's schedule is :func:`vision_optim`'s)."""
    section = raw.get("vision_pretrain")
    if not isinstance(section, dict) or not set(section) & LEGACY_VISION_OPTIM:
        return raw
    moved = {k: v for k, v in section.items() if k in LEGACY_VISION_OPTIM}
    rest = {k: v for k, v in section.items() if k not in LEGACY_VISION_OPTIM}
    optim = rest.get("optim") if isinstance(rest.get("optim"), dict) else {}
    return {**raw, "vision_pretrain": {**rest, "optim": {**moved, **optim}}}
