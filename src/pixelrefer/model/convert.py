"""Official PixelRefer / PixelRefer-Lite checkpoints: config adapter and the explicit key map.

The official code saves ``PixelreferQwen2ForCausalLM`` (``model_type: pixelrefer_qwen2``) and
``PixelreferliteQwen2ForCausalLM`` (``pixelreferlite_qwen2``): Qwen2 fields at the top level of ``config.json``
plus multimodal fields, weights in safetensors or ``pytorch_model*.bin`` shards. Every key is mapped by
:data:`OFFICIAL_TO_OURS`; keys the variant does not use are listed in :data:`OFFICIAL_UNUSED` and dropped on
purpose. Anything else - a missing or an unexpected key - is an error that names it.

Settings are read where the official code reads them: the vision tower's ``config.json`` and
``preprocessor_config.json`` from the folder named by ``mm_vision_encoder`` (after the official wrapper's overrides),
the placeholder ids from the tokenizer, the rest from ``config.json``. A value the official code could not run
with, or that this package cannot reproduce, is a :class:`CheckpointError` naming the field
(``docs/conventions.md`` lists every field).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from transformers import Qwen2Config
from transformers.activations import ACT2FN
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.models.video_llama_3.configuration_video_llama_3 import VideoLlama3VisionConfig

from pixelrefer.config import (
    COMPRESSION_DTYPES,
    OFFICIAL_OCI_HEADS,
    OFFICIAL_OCI_LAYER_NORM_EPS,
    REAL_VISION_TOWER,
    PixelReferConfig,
)
from pixelrefer.constants import IMAGE_TOKEN, PATCH_SIZE, REGION_TOKEN
from pixelrefer.errors import CheckpointError, ConfigError
from pixelrefer.image_settings import ImageProcessorSettings

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

# Hub ids of the released SigLIP-NaViT tower: its preprocessor_config.json holds ImageProcessorSettings' defaults
# (spec section 1.4; the second id is the one the official converter writes, assumed to be the same tower).
RELEASED_TOWERS = ("DAMO-NLP-SG/VL3-SigLIP-NaViT", "DAMO-NLP-SG/SigLIP-NaViT")
# preprocessor_config.json keys the official DAMOVLImageProcessor uses, by our setting name.
PREPROCESSOR_FIELDS = ("image_mean", "image_std", "rescale_factor", "do_rescale", "do_normalize", "resample", "min_pixels")
# What DAMOVLImageProcessor uses for a key its preprocessor_config.json lacks, where it differs from our defaults.
OFFICIAL_PROCESSOR_DEFAULTS = {"image_mean": OPENAI_CLIP_MEAN, "image_std": OPENAI_CLIP_STD}
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


def _require(raw: dict[str, Any], field: str) -> Any:
    if raw.get(field) is None:
        raise CheckpointError(f"official config.json lacks {field!r}, which the official code needs")
    return raw[field]


def _check_tower_name(name: str) -> None:
    """The official ``build_vision_encoder`` dispatch on ``mm_vision_encoder``: only its DAMOVL branch is supported."""
    if any(tag in name for tag in ("clip", "siglip", "qwen2vl")) or not ("damovl" in name or "SigLIP-NaViT" in name):
        raise CheckpointError(
            f"mm_vision_encoder={name!r} selects a vision encoder other than SigLIP-NaViT (DAMOVL); only that one "
            "is supported (the official code picks the encoder by this name)"
        )


def tower_folder(raw: dict[str, Any], checkpoint_dir: Path) -> Path | None:
    """The local folder named by ``mm_vision_encoder`` (beside or inside the checkpoint, or as given), if any."""
    name = str(raw.get("mm_vision_encoder") or "")
    if not name:
        return None
    for candidate in (checkpoint_dir / name, checkpoint_dir.parent / name, Path(name).expanduser()):
        if candidate.is_dir():
            return candidate
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path.name} of the checkpoint: {exc}") from exc


def _vision_config(raw: dict[str, Any], checkpoint_dir: Path) -> VideoLlama3VisionConfig:
    """The tower shape: the official code builds the tower from the ``mm_vision_encoder`` folder's config.json;
    without that folder the copy in ``vision_encoder_config`` is used."""
    folder = tower_folder(raw, checkpoint_dir)
    fields = None
    if folder is not None and (folder / "config.json").is_file():
        fields = _read_json(folder / "config.json")
        fields = fields.get("vision_config", fields)  # as DAMOVLVisionConfig.from_pretrained reads it
    if fields is None:
        fields = raw.get("vision_encoder_config")
    if fields is None:
        logger.warning("no vision_encoder_config in %s and no %r folder beside it: assuming the released "
                       "VL3-SigLIP-NaViT shape", checkpoint_dir, raw.get("mm_vision_encoder"))
        fields = REAL_VISION_TOWER
    keep = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size",
            "layer_norm_eps", "hidden_act", "attention_dropout", "num_channels")
    kwargs = {k: fields[k] for k in keep if k in fields}
    kwargs.setdefault("patch_size", 16)  # DAMOVLVisionConfig's default, as the official code would read it
    if kwargs["patch_size"] != PATCH_SIZE:
        raise CheckpointError(f"vision tower patch_size={kwargs['patch_size']} is not supported; the official "
                              f"crop code (resize_image_mask) assumes {PATCH_SIZE}")
    if kwargs.get("num_channels", 3) != 3:
        raise CheckpointError(f"vision tower num_channels={kwargs['num_channels']} is not supported; frames are RGB")
    if kwargs.get("hidden_act", "gelu_pytorch_tanh") not in ACT2FN:
        raise CheckpointError(f"vision tower hidden_act={kwargs['hidden_act']!r} is not a known activation")
    return VideoLlama3VisionConfig(**kwargs)


def image_settings_from_official(raw: dict[str, Any], checkpoint_dir: Path) -> ImageProcessorSettings:
    """What the official ``DAMOVLImageProcessor`` reads from ``preprocessor_config.json``.

    Looked up in the ``mm_vision_encoder`` folder (where the official code reads it), then in the checkpoint folder;
    a released tower named by hub id without either file gets its known values. The wrapper overrides
    ``merge_size`` (config ``spatial_merge_size``) and ``max_pixels`` (from ``mm_max_length``), so the file's values
    of those two are never used; ``size`` and ``temporal_patch_size`` are not used either.
    """
    folder = tower_folder(raw, checkpoint_dir)
    candidates = [folder / "preprocessor_config.json"] if folder is not None else []
    candidates.append(checkpoint_dir / "preprocessor_config.json")
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        name = raw.get("mm_vision_encoder")
        if name in RELEASED_TOWERS:
            logger.info("using the released %s image-processor settings (no preprocessor_config.json here)", name)
            return ImageProcessorSettings()
        raise CheckpointError(
            f"no preprocessor_config.json in the checkpoint folder or in the vision tower folder "
            f"mm_vision_encoder={name!r}; put the tower folder (config.json + preprocessor_config.json) beside the checkpoint"
        )
    fields = _read_json(path)
    if fields.get("do_resize", True) is not True:
        raise CheckpointError(f"{path.name}: do_resize={fields['do_resize']!r} is not supported (images must be resized "
                              "to the patch grid)")
    if fields.get("patch_size", PATCH_SIZE) != PATCH_SIZE:
        raise CheckpointError(f"{path.name}: patch_size={fields['patch_size']!r} is not supported; only {PATCH_SIZE}")
    values = {k: fields[k] for k in PREPROCESSOR_FIELDS if fields.get(k) is not None}
    values = {**OFFICIAL_PROCESSOR_DEFAULTS, **values}
    try:
        return ImageProcessorSettings(**values)
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path.name}: {exc}") from exc


def _check_official_fields(raw: dict[str, Any], variant: str, vision: VideoLlama3VisionConfig) -> None:
    """Fields whose value the official inference path (or this package) cannot honour -> CheckpointError."""
    _check_tower_name(str(_require(raw, "mm_vision_encoder")))
    projector = raw.get("mm_projector_type", "linear")  # the official default when the field is absent
    if variant == "full" and projector != "mlp2x_gelu":
        raise CheckpointError(f"mm_projector_type={projector!r} is not supported; only 'mlp2x_gelu'")
    if variant == "full" and raw.get("mm_hidden_size", vision.hidden_size) != vision.hidden_size:
        raise CheckpointError(f"mm_hidden_size={raw['mm_hidden_size']} differs from the vision tower width "
                              f"{vision.hidden_size}")
    if _require(raw, "use_token_compression") is not True:
        raise CheckpointError("use_token_compression=false is not supported (the official forward pass returns "
                              "nothing without compression)")
    if raw.get("image_aspect_ratio", "qwen2vl") != "qwen2vl":
        raise CheckpointError(f"image_aspect_ratio={raw['image_aspect_ratio']!r} is not supported; only 'qwen2vl'")
    for flag in ("is_alignment", "tune_mm_mlp_adapter"):
        if raw.get(flag):
            raise CheckpointError(f"{flag}=true marks a projector-only (stage-1) checkpoint; load the full model")
    if raw.get("hidden_act", "silu") not in ACT2FN:
        raise CheckpointError(f"hidden_act={raw['hidden_act']!r} is not a known activation")
    if variant == "lite" and vision.hidden_size % OFFICIAL_OCI_HEADS:
        raise CheckpointError(f"vision hidden_size={vision.hidden_size} is not divisible by the {OFFICIAL_OCI_HEADS} "
                              "fusion heads of PixelRefer-Lite")


def _compression_dtype(raw: dict[str, Any]) -> str | None:
    """The official code casts the pixels to config ``torch_dtype`` before the frame-difference compressor."""
    dtype = raw.get("torch_dtype")
    if dtype is None:
        return None
    if dtype not in COMPRESSION_DTYPES:
        raise CheckpointError(f"torch_dtype={dtype!r} is not supported; expected one of {COMPRESSION_DTYPES}")
    return dtype


def tokenizer_token_ids(checkpoint_dir: Path) -> dict[str, int]:
    """Added-token ids of the checkpoint's tokenizer files (``tokenizer.json``'s ``added_tokens``,
    ``added_tokens.json``, ``tokenizer_config.json``'s ``added_tokens_decoder``), read without building a tokenizer."""
    ids: dict[str, int] = {}
    fast = checkpoint_dir / "tokenizer.json"
    if fast.is_file():
        ids.update({t["content"]: int(t["id"]) for t in _read_json(fast).get("added_tokens", [])})
    added = checkpoint_dir / "added_tokens.json"
    if added.is_file():
        ids.update({k: int(v) for k, v in _read_json(added).items()})
    config = checkpoint_dir / "tokenizer_config.json"
    if config.is_file():
        ids.update({t["content"]: int(i) for i, t in _read_json(config).get("added_tokens_decoder", {}).items()})
    return ids


def official_token_ids(raw: dict[str, Any], checkpoint_dir: Path) -> tuple[int, int]:
    """``(<image> id, <REGION> id)``. The official inference code takes both from the tokenizer, overriding
    ``image_token_index`` / ``region_token_index`` of config.json; so do we (config.json only without tokenizer files)."""
    tokens = tokenizer_token_ids(checkpoint_dir)
    ids = []
    for token, field in ((IMAGE_TOKEN, "image_token_index"), (REGION_TOKEN, "region_token_index")):
        if not tokens:
            ids.append(_require(raw, field))
            continue
        if token not in tokens:
            raise CheckpointError(f"the checkpoint's tokenizer has no {token} token")
        if raw.get(field) not in (None, tokens[token]):
            logger.warning("config.json %s=%s differs from the tokenizer's %s id %d; using the tokenizer's, as the "
                           "official code does", field, raw[field], token, tokens[token])
        ids.append(tokens[token])
    return ids[0], ids[1]


def config_from_official(raw: dict[str, Any], checkpoint_dir: Path) -> PixelReferConfig:
    """Our config for an official ``config.json`` (geometry ``official``: the weights depend on it)."""
    variant = OFFICIAL_MODEL_TYPES[raw["model_type"]]
    text = Qwen2Config(**{k: raw[k] for k in QWEN2_FIELDS if k in raw})
    vision = _vision_config(raw, checkpoint_dir)
    _check_official_fields(raw, variant, vision)
    image_id, region_id = official_token_ids(raw, checkpoint_dir)
    merge = _require(raw, "spatial_merge_size")
    max_visual_tokens = raw.get("mm_max_length", 9477 // merge**2)  # the official wrapper's default
    try:
        return PixelReferConfig(
            vision_config=vision,
            text_config=text,
            variant=variant,
            mask_num=_require(raw, "mask_num"),
            spatial_merge_size=merge,
            max_visual_tokens=max_visual_tokens,
            max_crop_patches=max_visual_tokens,  # crops share the official processor's budget (training: 1 crop)
            image_token_id=image_id,
            region_token_id=region_id,
            use_token_compression=True,
            region_geometry="official",
            oci_num_heads=OFFICIAL_OCI_HEADS,
            oci_layer_norm_eps=OFFICIAL_OCI_LAYER_NORM_EPS,
            image_processor=image_settings_from_official(raw, checkpoint_dir),
            compression_dtype=_compression_dtype(raw),
            tie_word_embeddings=raw.get("tie_word_embeddings", False),
        )
    except ConfigError as exc:
        raise CheckpointError(f"official config.json: {exc}") from exc


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
