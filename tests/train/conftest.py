"""Fixtures: the tiny dataset with its tokenizer, and a fast train config on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import N_IMAGES, image_sample, video_sample

from pixelrefer.recipes.config import load_recipe_config


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every training test runs on one thread (see ``one_thread``)."""


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pixelrefer.synth.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("train-data")
    rng = np.random.default_rng(0)
    samples = [image_sample(root, i, rng) for i in range(N_IMAGES)] + [video_sample(root, N_IMAGES)]
    (root / "train.json").write_text(json.dumps(samples))
    (root / "val.json").write_text(json.dumps(samples[:4]))
    texts = [t["value"] for s in samples for t in s["conversations"]]
    train_tokenizer(texts * 4, root / "tokenizer", vocab_size=320)
    return root


@pytest.fixture
def tiny_config(tiny_data: Path, tmp_path: Path):
    """A fast config on the tiny data; tests override what they need."""

    def make(*overrides: str):
        return load_recipe_config(None, [
            "model.preset=tiny", "model.overrides.region_geometry=clean", "model.overrides.mask_num=4",
            "model.overrides.max_visual_tokens=16", f"data.root={tiny_data}", "data.eval_limit=4",
            "batch_size=3", "max_steps=12", "log_every=1", "progress=false", f"output_dir={tmp_path / 'run'}",
            "optim.warmup_ratio=0.1", *overrides,
        ])

    return make
