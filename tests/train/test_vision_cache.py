"""The frozen-tower cache: a cached run trains exactly as the pixel run, each sample goes through the tower once,
and configs that cannot cache are refused when they are built."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelrefer.errors import ConfigError
from pixelrefer.processing.processor import collate_visual
from pixelrefer.train.cache_store import fingerprint
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


def _assert_same_sample(a, b) -> None:
    """Field by field: arrays equal in dtype, shape and bits; everything else equal and of the same type."""
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _assert_same_sample(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_sample(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("preset", ["tiny", "tiny-lite"])
def test_the_disk_cache_gives_back_every_sample_bit_for_bit(tiny_config, tmp_path, preset):
    cfg = tiny_config(f"model.preset={preset}", "stage=stage1", "data.cache_vision=true",
                      f"data.cache_dir={tmp_path / 'cache'}")
    first, _ = build_trainer(cfg)
    computed = [first.train_set[i] for i in range(len(first.train_set))]
    shards = list((tmp_path / "cache").glob("*/train-*.safetensors"))
    assert len(shards) == 1 and not list((tmp_path / "cache").glob("*/*.tmp"))
    again, _ = build_trainer(cfg)  # a new run with the same tower, data and settings
    calls = []
    hook = again.module.vision_model.register_forward_hook(lambda module, args, out: calls.append(1))
    try:
        read = [again.train_set[i] for i in range(len(again.train_set))]
    finally:
        hook.remove()
    assert calls == []  # every sample came from disk
    for a, b in zip(computed, read, strict=True):
        _assert_same_sample(a, b)


def test_a_run_from_the_disk_cache_logs_the_losses_of_the_pixel_run(tiny_config, tmp_path):
    common = ("stage=stage1", "max_steps=6", "eval_every=3")
    plain_cfg = tiny_config(*common, f"output_dir={tmp_path / 'plain'}")
    plain, _ = build_trainer(plain_cfg)
    plain.fit()
    disk = ("data.cache_vision=true", f"data.cache_dir={tmp_path / 'cache'}")
    build_trainer(tiny_config(*common, *disk, f"output_dir={tmp_path / 'fill'}"))[0].fit()  # fills the store
    cfg = tiny_config(*common, *disk, f"output_dir={tmp_path / 'from-disk'}")
    trainer, _ = build_trainer(cfg)
    assert len(trainer.train_set._cache) == len(trainer.train_set)  # all read back before the first step
    trainer.fit()
    assert _losses(cfg.output_dir) == pytest.approx(_losses(plain_cfg.output_dir), rel=1e-6, abs=1e-7)


def test_another_tower_or_other_pixels_miss_the_disk_cache(tiny_config, tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)  # this test changes an image
    disk = ("stage=stage1", "data.cache_vision=true", f"data.cache_dir={tmp_path / 'cache'}", f"data.root={data}")
    trainer, _ = build_trainer(tiny_config(*disk))
    for i in range(len(trainer.train_set)):
        trainer.train_set[i]
    other, _ = build_trainer(tiny_config(*disk))
    with torch.no_grad():
        next(other.module.vision_model.parameters()).add_(1.0)
    tokenizer = trainer.train_set.dataset.processor.tokenizer
    assert fingerprint(other.module, tokenizer, None) != fingerprint(trainer.module, tokenizer, None)
    samples = trainer.train_set.dataset.samples
    image = data / samples[0]["image"]
    image.write_bytes(image.read_bytes() + b"\0")  # the same record, other file bytes
    rebuilt, _ = build_trainer(tiny_config(*disk))
    stale = {i for i, s in enumerate(samples) if s.get("image") == samples[0]["image"]}
    assert set(rebuilt.train_set._cache) == set(range(len(samples))) - stale


def test_a_corrupt_shard_is_skipped_not_trusted(tiny_config, tmp_path):
    cfg = tiny_config("stage=stage1", "data.cache_vision=true", f"data.cache_dir={tmp_path / 'cache'}")
    trainer, _ = build_trainer(cfg)
    for i in range(len(trainer.train_set)):
        trainer.train_set[i]
    (shard,) = (tmp_path / "cache").glob("*/train-*.safetensors")
    shard.write_bytes(shard.read_bytes()[:100])
    again, _ = build_trainer(cfg)
    assert len(again.train_set._cache) == 0
    again.train_set[0]  # computed again, not read


def test_cache_dir_needs_cache_vision(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="cache_vision"):
        tiny_config("stage=stage1", f"data.cache_dir={tmp_path}")
