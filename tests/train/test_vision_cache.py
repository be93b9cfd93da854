"""The frozen-tower cache: a cached run trains exactly as the pixel run, each sample goes through the tower once,
and configs that cannot cache are refused when they are built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pixelrefer.errors import ConfigError
from pixelrefer.processing.processor import collate_visual
from pixelrefer.train.run import build_trainer
from pixelrefer.train.vision_cache import VisionFeatureCache


def _losses(output_dir: str) -> list[float]:
    lines = (Path(output_dir) / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r["type"] == "train"]


def _eval_losses(output_dir: str) -> list[float]:
    lines = (Path(output_dir) / "metrics.jsonl").read_text().splitlines()
    return [r["eval_loss"] for r in map(json.loads, lines) if r["type"] == "eval"]


@pytest.mark.parametrize("preset", ["tiny", "tiny-lite"])
def test_a_cached_run_logs_the_losses_of_the_pixel_run(tiny_config, tmp_path, preset):
    """Two epochs and more (the tiny set has 9 samples, 3 per step), the video sample included: every logged
    train and eval loss of the cached run equals the run that encodes pixels at every step."""
    common = (f"model.preset={preset}", "stage=stage1", "max_steps=8", "eval_every=4")
    plain_cfg = tiny_config(*common, f"output_dir={tmp_path / 'plain'}")
    cached_cfg = tiny_config(*common, "data.cache_vision=true", f"output_dir={tmp_path / 'cached'}")
    plain, _ = build_trainer(plain_cfg)
    plain.fit()
    cached, _ = build_trainer(cached_cfg)
    assert isinstance(cached.train_set, VisionFeatureCache) and isinstance(cached.eval_set, VisionFeatureCache)
    cached.fit()
    assert len(_losses(cached_cfg.output_dir)) == 8
    assert _losses(cached_cfg.output_dir) == pytest.approx(_losses(plain_cfg.output_dir), rel=1e-6, abs=1e-7)
    assert _eval_losses(cached_cfg.output_dir) == pytest.approx(_eval_losses(plain_cfg.output_dir), rel=1e-6)
    for (name, a), b in zip(plain.model.state_dict().items(), cached.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_each_sample_goes_through_the_tower_once(tiny_config):
    trainer, _ = build_trainer(tiny_config("stage=stage1", "data.cache_vision=true"))
    cache = trainer.train_set
    calls = []
    tower = trainer.module.vision_model
    hook = tower.register_forward_hook(lambda module, args, out: calls.append(1))
    try:
        first = [cache[i] for i in range(len(cache))]
        assert len(calls) == len(cache)
        again = [cache[i] for i in range(len(cache))]
        assert len(calls) == len(cache)  # no tower call the second time
    finally:
        hook.remove()
    assert all(a is b and a.encoded for a, b in zip(first, again))
    assert cache.cached_bytes == sum(
        a.nbytes for s in first for a in [s.media_patches, *(c.patches for c in s.crops)] if a is not None)
    width = trainer.module.config.vision_config.hidden_size
    assert all(c.patches.shape[1] == width for s in first for c in s.crops)  # features, not 588-wide patches


def test_a_batch_cannot_mix_cached_and_pixel_samples(tiny_config):
    trainer, _ = build_trainer(tiny_config("stage=stage1", "data.cache_vision=true"))
    with pytest.raises(ValueError, match="mixes"):
        collate_visual([trainer.train_set[0], trainer.train_set.dataset[1]])


@pytest.mark.parametrize(("overrides", "message"), [
    (("stage=scratch",), "frozen vision tower"),
    (("stage=stage1", "lrs.vision=1e-4"), "frozen vision tower"),
    (("stage=stage1", "num_workers=2"), "num_workers: 0"),
    (("stage=stage1", "strategy=fsdp2"), "whole tower"),
])
def test_configs_that_cannot_cache_are_refused_when_built(tiny_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(*overrides, "data.cache_vision=true")
