"""The recipe steps before training: the synthetic dataset (built with :mod:`pixelrefer.synth` when the config's
``data.synth`` is set and the train file is absent) and the small models' tokenizer (trained on the training
split's text when the tokenizer folder is empty)."""

from __future__ import annotations

import logging
from pathlib import Path

from pixelrefer.recipes.config import RecipeConfig

logger = logging.getLogger(__name__)


def prepare_data(cfg: RecipeConfig) -> None:
    """Build the synthetic dataset if the config asks for it and it is not on disk."""
    root = Path(cfg.data.root)
    if (root / cfg.data.train_file).is_file():
        return
    if cfg.data.synth is None:
        raise FileNotFoundError(f"{root / cfg.data.train_file} does not exist and data.synth is not set")
    from pixelrefer.synth import build_dataset

    logger.info("building the synthetic dataset in %s", root)
    build_dataset(root, cfg.data.synth, progress=cfg.progress)


def prepare_tokenizer(cfg: RecipeConfig) -> None:
    """Train the tokenizer on the training split's text if its folder is empty (a run from a checkpoint, or on
    data the recipe did not build, brings its own)."""
    directory = cfg.data.tokenizer_dir
    if (directory / "tokenizer.json").is_file():
        return
    if cfg.model.init_from is not None or cfg.data.synth is None:
        raise FileNotFoundError(f"no tokenizer in {directory}")
    from pixelrefer.synth.tokenizer import corpus_texts, train_tokenizer

    logger.info("training the tokenizer into %s", directory)
    train_tokenizer(corpus_texts(cfg.data.root, (cfg.data.train_file,)), directory, vocab_size=cfg.data.vocab_size,
                    pretokenizer=cfg.data.pretokenizer)
