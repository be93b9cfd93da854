"""`--dry-run` plans: the paper recipes resolve, the model is built on the meta device (7B costs nothing), the
batch and trainable counts follow the stage, memory per device follows the strategy."""

from __future__ import annotations

import pytest

from pixelrefer.errors import ConfigError
from pixelrefer.train.config import list_train_configs, load_train_config
from pixelrefer.train.plan import memory, plan_run

PAPER = [name for name in list_train_configs() if name.startswith("paper-") and name != "paper-base"]


def test_every_paper_recipe_is_shipped():
    assert sorted(PAPER) == sorted(f"paper-{v}-{s}-stage{k}" for v in ("pixelrefer", "lite") for s in ("2b", "7b")
                                   for k in (1, 2))


def test_7b_stage1_plan_on_eight_processes():
    plan = plan_run(load_train_config("paper-pixelrefer-7b-stage1"), processes=8)
    assert (plan.micro_batch, plan.grad_accum, plan.global_batch) == (2, 16, 256)
    assert plan.trainable.get("vision", 0) == 0 and plan.params["vision"] > 0  # vision frozen in stage 1
    assert plan.trainable["llm"] == plan.params["llm"] and plan.lrs["object_tokenizer"] == 1e-3
    assert 7e9 < sum(plan.params.values()) < 9e9
    assert any("8 process(es)" in line for line in plan.lines())


def test_global_batch_must_divide():
    with pytest.raises(ConfigError, match="global_batch_size"):
        plan_run(load_train_config("paper-lite-2b-stage2"), processes=3)


def test_memory_falls_with_sharding():
    p, t, n = 8_000_000_000, 7_600_000_000, 8
    per = {s: memory(p, t, s, n, True, False, False)["device"] for s in
           ("ddp", "deepspeed_zero2", "deepspeed_zero3", "fsdp2")}
    assert per["deepspeed_zero3"] < per["deepspeed_zero2"] < per["ddp"]
    assert per["fsdp2"] < per["deepspeed_zero2"]
    offload = memory(p, t, "deepspeed_zero3", n, True, True, True)
    assert offload["device"] < per["deepspeed_zero3"] and offload["host"] > 0


def test_recipe_plan_is_sized_for_its_own_tokenizer(tmp_path):
    """Before its data exist, the nano recipe is planned at the vocabulary it will train (not Qwen2's 151k)."""
    from pixelrefer.recipes.config import load_recipe_config

    cfg = load_recipe_config("nano", [f"data.root={tmp_path / 'absent'}"])
    sized = plan_run(cfg, processes=1, vocab_size=cfg.data.vocab_size)
    assert sum(sized.params.values()) < 5_000_000
    assert sum(plan_run(cfg, processes=1).params.values()) > 20_000_000  # the Qwen2-vocabulary default
