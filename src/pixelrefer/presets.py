"""Named model presets: tiny random models for tests and demos, the real 2B/7B shapes, and the bundled models.

``tiny``/``tiny-lite`` use the same classes as the released models at toy sizes; ``2b``/``7b``/``lite-2b``/``lite-7b``
have the released shapes (random weights: for benchmarks and memory planning). Bundled trained models are listed
in :data:`BUNDLED` and live in ``pixelrefer/assets``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelrefer.config import REAL_VISION_TOWER, PixelReferConfig

ASSETS = Path(__file__).parent / "assets"
BUNDLED: dict[str, Path] = {"nano": ASSETS / "pixelrefer-nano", "nano-lite": ASSETS / "pixelrefer-lite-nano"}

_VISION_TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=14)
_VISION_NANO = dict(hidden_size=96, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4, patch_size=14)
_TEXT_TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6)
# head size 32 (128 / 4): the smallest head size vLLM's CPU attention serves (tiny's 16 and nano's 40 it cannot)
_TEXT_TINY_SERVABLE = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, initializer_range=0.1,
                           num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6)
_TEXT_NANO = dict(hidden_size=160, intermediate_size=320, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=8192, rope_theta=1e4, rms_norm_eps=1e-6)
# nano-v2 (the bundled nano models since 2026-12-02, recipes/configs/nano-base.yaml): a wider, deeper tower; an LLM with head size 32 (192 / 6), servable on CPU
_VISION_NANO_V2 = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4, patch_size=14)
_TEXT_NANO_V2 = dict(hidden_size=192, intermediate_size=384, num_hidden_layers=3, num_attention_heads=6,
                     num_key_value_heads=2, max_position_embeddings=8192, rope_theta=1e4, rms_norm_eps=1e-6)
# nano-v3 (experiment 8, docs/training.md): the nano-v2 tower with a wider, deeper LLM (head size 32: 256 / 8)
_TEXT_NANO_V3 = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=8,
                     num_key_value_heads=2, max_position_embeddings=8192, rope_theta=1e4, rms_norm_eps=1e-6)
_TEXT_2B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6, vocab_size=151669, tie_word_embeddings=True)
_TEXT_7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6, vocab_size=152064, tie_word_embeddings=False)

RANDOM_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(vision=_VISION_TINY, text=_TEXT_TINY, variant="full"),
    "tiny-lite": dict(vision=_VISION_TINY, text=_TEXT_TINY, variant="lite"),
    # the LLM exported by `pixelrefer export-llm` can be served by vLLM on CPU (docs/serving.md)
    "tiny-servable": dict(vision=_VISION_TINY, text=_TEXT_TINY_SERVABLE, variant="full"),
    "2b": dict(vision=REAL_VISION_TOWER, text=_TEXT_2B, variant="full"),
    "7b": dict(vision=REAL_VISION_TOWER, text=_TEXT_7B, variant="full"),
    "lite-2b": dict(vision=REAL_VISION_TOWER, text=_TEXT_2B, variant="lite"),
    "lite-7b": dict(vision=REAL_VISION_TOWER, text=_TEXT_7B, variant="lite"),
    # shapes of the bundled small models (trained by `pixelrefer train --config nano` / `nano-lite`)
    "nano-arch": dict(vision=_VISION_NANO, text=_TEXT_NANO, variant="full"),
    "nano-lite-arch": dict(vision=_VISION_NANO, text=_TEXT_NANO, variant="lite"),
    "nano-v2-arch": dict(vision=_VISION_NANO_V2, text=_TEXT_NANO_V2, variant="full"),
    "nano-v2-lite-arch": dict(vision=_VISION_NANO_V2, text=_TEXT_NANO_V2, variant="lite"),
    "nano-v3-arch": dict(vision=_VISION_NANO_V2, text=_TEXT_NANO_V3, variant="full"),
    "nano-v3-lite-arch": dict(vision=_VISION_NANO_V2, text=_TEXT_NANO_V3, variant="lite"),
}


def list_presets() -> list[str]:
    return sorted(RANDOM_PRESETS) + sorted(BUNDLED)


def preset_config(name: str, tokenizer: Any, **overrides: Any) -> PixelReferConfig:
    """Config of a random-weight preset, with the special-token ids of ``tokenizer``."""
    if name not in RANDOM_PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {list_presets()}")
    p = RANDOM_PRESETS[name]
    text = dict(p["text"])
    text.setdefault("vocab_size", len(tokenizer))
    text.setdefault("tie_word_embeddings", True)
    text.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    fields = dict(
        vision_config=dict(p["vision"]),
        text_config=text,
        variant=p["variant"],
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        region_token_id=tokenizer.convert_tokens_to_ids("<REGION>"),
    )
    fields.update(overrides)
    return PixelReferConfig(**fields)
