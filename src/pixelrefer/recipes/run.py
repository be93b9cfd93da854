"""Run a recipe config: its preparation steps, each skipped when its output is on disk (synthetic dataset,
tokenizer, vision pretraining), then the trainer's :func:`pixelrefer.train.run.run` (training and export).

With ``resume="auto"`` an interrupted recipe continues where it stopped, in the vision pretraining or in the
training after it, also in a later session. In a multi-process launch the main process builds data and
tokenizer while the others wait; the vision pretraining runs in whichever process takes its folder's lock first
(the others wait on the lock, not in a collective that could time out).
"""

from __future__ import annotations

from pathlib import Path

from pixelrefer.recipes.config import RecipeConfig
from pixelrefer.recipes.synthetic import prepare_data, prepare_tokenizer
from pixelrefer.recipes.vision import prepare_vision
from pixelrefer.train.distributed import init_processes
from pixelrefer.train.run import check_resume, set_threads
from pixelrefer.train.run import run as train


def prepare(cfg: RecipeConfig, resume: str = "never") -> None:
    """Everything the training of ``cfg`` needs on disk before it starts."""
    set_threads(cfg)
    procs = init_processes(cfg.device)
    if procs.is_main:
        prepare_data(cfg)
        prepare_tokenizer(cfg)
    procs.barrier()
    prepare_vision(cfg, resume)


def run(cfg: RecipeConfig, resume: str = "never") -> Path:
    """Prepare, train and export; returns the exported model folder."""
    check_resume(resume)
    prepare(cfg, resume)
    return train(cfg, resume)
