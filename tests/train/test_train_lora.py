"""LoRA through peft: only adapters train in the adapted LLM, region modules train in full, stages see peft's
parameter names, the merged model gives the unmerged model's outputs, the adapter folder reloads."""

from __future__ import annotations

import pytest
import torch

from pixelrefer.errors import ConfigError
from pixelrefer.model.modeling import PixelReferForConditionalGeneration
from pixelrefer.train.lora import LORA_MARK, load_adapter, merge, save_adapter
from pixelrefer.train.run import build_trainer
from pixelrefer.train.stages import group_of

pytest.importorskip("peft")


def _logits(trainer, model) -> torch.Tensor:
    batch = trainer.to_device(trainer.collator([trainer.train_set[i] for i in range(3)]))
    model.eval()
    with torch.no_grad():
        return model(**batch.as_kwargs()).logits


def test_lora_trains_adapters_and_merges_exactly(tiny_config, tmp_path):
    trainer, _ = build_trainer(tiny_config("lora={}", "max_steps=3", "stage=stage1"))
    names = dict(trainer.module.named_parameters())
    assert group_of(next(n for n in names if LORA_MARK in n)) == "llm"
    trained = {n for n, p in names.items() if p.requires_grad}
    assert trained and all(LORA_MARK in n for n in trained if group_of(n) == "llm")
    assert not any(LORA_MARK in n for n in names if n.split("base_model.model.")[-1].startswith("vision_model."))
    assert any(group_of(n) == "object_tokenizer" for n in trained)  # region modules train in full alongside
    assert not any(group_of(n) == "vision" for n in trained)  # stage1 freezes the vision tower
    trainer.fit()
    lora_b = [p for n, p in names.items() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # the adapters moved (B starts at zero)

    unmerged = _logits(trainer, trainer.module)
    adapter = save_adapter(trainer.module, tmp_path)
    merged_model = merge(trainer.module)
    assert isinstance(merged_model, PixelReferForConditionalGeneration)
    assert not any(LORA_MARK in n for n, _ in merged_model.named_parameters())
    merged = _logits(trainer, merged_model)
    diff = float((merged - unmerged).abs().max())
    print(f"LoRA merged vs unmerged: max |logit diff| = {diff:.3g}")
    assert diff < 1e-4

    fresh, _ = build_trainer(tiny_config("max_steps=3", "stage=stage1"))  # same seed: same base weights
    reloaded = load_adapter(fresh.module, adapter)
    assert float((_logits(trainer, reloaded) - unmerged).abs().max()) < 1e-4


def test_qlora_without_cuda_is_a_config_error(tiny_config):
    with pytest.raises(ConfigError, match="CUDA"):
        build_trainer(tiny_config("lora.quantize=4bit", "device=cpu"))


def test_lora_with_sharding_engines_is_refused(tiny_config):
    with pytest.raises(ConfigError, match="LoRA runs with strategy single or ddp"):
        build_trainer(tiny_config("lora={}", "strategy=deepspeed_zero3"))
