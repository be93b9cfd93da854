"""Official PixelRefer / PixelRefer-Lite checkpoints: config adapter and the explicit key map.

The official code saves ``PixelreferQwen2ForCausalLM`` (``model_type: pixelrefer_qwen2``) and
``PixelreferliteQwen2ForCausalLM`` (``pixelreferlite_qwen2``): Qwen2 fields at the top level of ``config.json``
plus multimodal fields, weights in safetensors or ``pytorch_model*.bin`` shards. Every key is mapped by
:data:`OFFICIAL_TO_OURS`; keys the variant does not use are listed in :data:`OFFICIAL_UNUSED` and dropped on
purpose. Anything else - a missing or an unexpected key - is an error that names it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from transformers import Qwen2Config
from transformers.models.video_llama_3.configuration_video_llama_3 import VideoLlama3VisionConfig

from pixelrefer.config import PixelReferConfig
from pixelrefer.errors import CheckpointError

logger = logging.getLogger(__name__)

OFFICIAL_MODEL_TYPES = {"pixelrefer_qwen2": "full", "pixelreferlite_qwen2": "lite"}

# Official prefix -> our prefix (first match wins).
OFFICIAL_TO_OURS: tuple[tuple[str, str], ...] = (
    ("model.vision_encoder.vision_encoder.", "vision_model."),
    ("model.mm_projector.readout.", "projector.readout."),
    ("model.region_encoder.pos_linear.", "object_tokenizer.pos_proj."),
    ("model.region_encoder.feat_linear.", "object_tokenizer.mlp."),
    ("model.region_encoder.fusion_attention_local.", "oci.local_attn."),
    ("model.region_encoder.fusion_attention_global.", "oci.global_attn."),
    ("model.region_encoder.ln_local.", "oci.local_norm."),
    ("model.region_encoder.ln_global.", "oci.global_norm."),
    ("model.embed_tokens.", "language_model.embed_tokens."),
    ("model.layers.", "language_model.layers."),
    ("model.norm.", "language_model.norm."),
    ("lm_head.", "lm_head."),
)

# Present in official checkpoints but not used by the variant's forward pass.
OFFICIAL_UNUSED: dict[str, tuple[str, ...]] = {
    "full": (),
    "lite": ("model.mm_projector.", "model.region_encoder.mask_embedding."),
}

REAL_VISION_TOWER = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16}
QWEN2_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling",
    "attention_dropout", "bos_token_id", "eos_token_id", "tie_word_embeddings", "initializer_range",
    "use_sliding_window", "sliding_window", "max_window_layers",
)


def is_official_config(raw: dict[str, Any]) -> bool:
    return raw.get("model_type") in OFFICIAL_MODEL_TYPES


def map_official_key(key: str, variant: str) -> str | None:
    """Our name for an official key; ``None`` for keys the variant ignores; raises on unknown keys."""
    if any(key.startswith(p) for p in OFFICIAL_UNUSED[variant]):
        return None
    for src, dst in OFFICIAL_TO_OURS:
        if key.startswith(src):
            return dst + key[len(src) :]
    raise CheckpointError(f"unexpected key in official checkpoint: {key!r}")


def _vision_config(raw: dict[str, Any], checkpoint_dir: Path) -> VideoLlama3VisionConfig:
    fields = raw.get("vision_encoder_config")
    if fields is None:
        name = str(raw.get("mm_vision_encoder", ""))
        for candidate in (checkpoint_dir / name, checkpoint_dir.parent / name):
            if name and (candidate / "config.json").is_file():
                fields = json.loads((candidate / "config.json").read_text())
                break
    if fields is None:
        logger.warning("no vision_encoder_config in %s and no %r folder beside it: assuming the released "
                       "VL3-SigLIP-NaViT shape", checkpoint_dir, raw.get("mm_vision_encoder"))
        fields = REAL_VISION_TOWER
    keep = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size",
            "layer_norm_eps", "hidden_act", "attention_dropout", "num_channels")
    kwargs = {k: fields[k] for k in keep if k in fields}
    kwargs.setdefault("patch_size", 14)
    return VideoLlama3VisionConfig(**kwargs)


def config_from_official(raw: dict[str, Any], checkpoint_dir: Path) -> PixelReferConfig:
    """Our config for an official ``config.json`` (geometry ``official``: the weights depend on it)."""
    variant = OFFICIAL_MODEL_TYPES[raw["model_type"]]
    text = Qwen2Config(**{k: raw[k] for k in QWEN2_FIELDS if k in raw})
    if raw.get("region_token_index") is None or raw.get("image_token_index") is None:
        raise CheckpointError("official config.json lacks image_token_index / region_token_index")
    return PixelReferConfig(
        vision_config=_vision_config(raw, checkpoint_dir),
        text_config=text,
        variant=variant,
        mask_num=raw.get("mask_num", 32),
        spatial_merge_size=raw.get("spatial_merge_size", 2),
        max_visual_tokens=raw.get("mm_max_length", 8192),
        image_token_id=raw["image_token_index"],
        region_token_id=raw["region_token_index"],
        use_token_compression=raw.get("use_token_compression", True),
        region_geometry="official",
        tie_word_embeddings=raw.get("tie_word_embeddings", False),
    )


def convert_official_state_dict(state: dict[str, Any], variant: str, tied: bool) -> dict[str, Any]:
    """Rename every official key; drop the variant's unused keys; raise on anything unknown."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        new = map_official_key(key, variant)
        if new is not None:
            out[new] = value
    if tied:
        out.pop("lm_head.weight", None)
    return out
