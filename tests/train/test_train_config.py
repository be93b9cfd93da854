"""Train configs: every shipped YAML resolves; overrides are typed; the resolved config round-trips."""

from __future__ import annotations

import pytest
import yaml

from pixelrefer.presets import RANDOM_PRESETS
from pixelrefer.recipes.config import list_recipe_configs, load_recipe_config
from pixelrefer.train.config import TrainConfig
from pixelrefer.train.dataset import TaskFocus
from pixelrefer.train.loop import resolve_stage
from pixelrefer.train.stages import STAGES


@pytest.mark.parametrize("name", list_recipe_configs())
def test_every_shipped_config_resolves(name):
    cfg = load_recipe_config(name)
    assert cfg.model.preset in RANDOM_PRESETS and cfg.stage in STAGES
    resolve_stage(cfg)


def test_bundled_recipes_differ_only_in_variant():
    full, lite = load_recipe_config("nano"), load_recipe_config("nano-lite")
    assert RANDOM_PRESETS[full.model.preset]["variant"] == "full"
    assert RANDOM_PRESETS[lite.model.preset]["variant"] == "lite"
    assert full.model.init_from is None and lite.model.init_from is None
    assert full.data == lite.data and full.max_steps == lite.max_steps and full.seed == lite.seed
    assert full.data.focus_tasks and full.data.other_ratio > 0  # category focus plus every other task
    assert full.model.vision_init == lite.model.vision_init and full.vision_pretrain == lite.vision_pretrain
    assert full.vision_pretrain is not None and full.lrs["vision"] is None  # one pretrained tower, frozen after


def test_nano_recipes_paraphrase_mix_off_palette_scenes_and_have_a_cpu_servable_head_size():
    full, lite = load_recipe_config("nano"), load_recipe_config("nano-lite")
    assert full.data.synth is not None and full.data.synth.paraphrases and full.data.synth.off_palette_categories > 0
    for cfg in (full, lite):
        text = RANDOM_PRESETS[cfg.model.preset]["text"]
        assert text["hidden_size"] // text["num_attention_heads"] in (32, 64)  # vLLM CPU attention (docs/serving.md)


def test_task_focus_keeps_focus_tasks_and_a_seeded_share_of_the_rest():
    samples = [{"id": f"s{i:02d}", "meta": {"task": "category" if i % 4 == 0 else "brief"}} for i in range(40)]
    only = TaskFocus(("category",), 0.0).select(samples)
    assert [s["id"] for s in only] == [f"s{i:02d}" for i in range(0, 40, 4)]
    mixed = TaskFocus(("category",), 1.0, seed=3).select(samples)
    assert len(mixed) == 20 and sum(s["meta"]["task"] == "category" for s in mixed) == 10
    assert [s["id"] for s in mixed] == sorted(s["id"] for s in mixed)


def test_overrides_are_parsed_and_checked(tmp_path):
    cfg = load_recipe_config("nano", ["max_steps=7", "lrs.vision=null", "optim.weight_decay=1e-2",
                                     "model.overrides.mask_num=8", f"output_dir={tmp_path}"])
    assert cfg.max_steps == 7 and cfg.lrs == {"vision": None} and cfg.optim.weight_decay == 0.01
    assert cfg.model.overrides["mask_num"] == 8
    assert resolve_stage(cfg).lrs["vision"] is None
    saved = yaml.safe_load(cfg.save(tmp_path).read_text())
    assert load_recipe_config(str(tmp_path / "config.yaml")) == cfg and saved["max_steps"] == 7
    with pytest.raises(ValueError, match="unknown key"):
        load_recipe_config("nano", ["optim.wd=1"])
    with pytest.raises(ValueError, match="batch_size"):
        load_recipe_config("nano", ["batch_size=many"])
    with pytest.raises(ValueError, match="lr of 'llm'"):
        resolve_stage(load_recipe_config("nano", ["lrs.llm=0"]))
    assert TrainConfig().stage == "scratch"


def test_position_gain_amplifies_the_box_embedding_about_the_image_centre(tiny_config):
    import torch

    from pixelrefer.train.run import build_model, load_tokenizer

    base_cfg, loud_cfg = tiny_config(), tiny_config("model.position_gain=6")
    tokenizer = load_tokenizer(base_cfg)
    base = build_model(base_cfg, tokenizer).object_tokenizer.pos_proj
    loud = build_model(loud_cfg, tokenizer).object_tokenizer.pos_proj
    points = torch.tensor([[0.5, 0.5], [0.0, 0.0], [1.0, 0.25], [0.9, 0.7]])
    with torch.no_grad():
        before, after = base(points), loud(points)
    torch.testing.assert_close(after[0], before[0])  # the centre's embedding is unchanged
    torch.testing.assert_close(after[1:] - after[0], 6 * (before[1:] - before[0]))


@pytest.mark.parametrize("gain", ["0", "-1"])
def test_position_gain_must_be_positive(tiny_config, gain):
    from pixelrefer.errors import ConfigError

    with pytest.raises(ConfigError, match="position_gain"):
        tiny_config(f"model.position_gain={gain}")


def test_position_gain_is_refused_with_trained_weights(tiny_config):
    from pixelrefer.errors import ConfigError

    with pytest.raises(ConfigError, match="preset init"):
        tiny_config("model.position_gain=2", "model.init_from=some/checkpoint")
