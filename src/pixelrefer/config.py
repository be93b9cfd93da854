"""The model configuration: one declared config for PixelRefer and PixelRefer-Lite.

Every field is declared here; nothing is attached at run time. Official checkpoints (model_type
``pixelrefer_qwen2`` / ``pixelreferlite_qwen2``) are read through :func:`pixelrefer.model.convert.config_from_official`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Literal

from transformers import AutoConfig, PretrainedConfig, Qwen2Config
from transformers.models.video_llama_3.configuration_video_llama_3 import VideoLlama3VisionConfig

from pixelrefer.constants import LITE_GLOBAL_VIEW_SIZE, LITE_LOCAL_VIEW_SIZE, PATCH_SIZE
from pixelrefer.errors import ConfigError
from pixelrefer.image_settings import ImageProcessorSettings

Variant = Literal["full", "lite"]
VARIANTS: tuple[str, ...] = ("full", "lite")

# Region-geometry conventions. "official" reproduces what the released weights were trained with, per variant
# (crop rounding, mask-to-grid resizing, the row/column swap of the box position grid; see docs/conventions.md).
# "clean" is the corrected geometry, for models trained by this package from scratch.
GEOMETRIES: tuple[str, ...] = ("official", "clean")
REGION_ENCODERS: tuple[str, ...] = ("scale_adaptive", "mask_pooling")
DOWNSCALE_THRESHOLD: dict[str, int] = {"full": 100, "lite": 50}  # official shrink threshold (patches) per variant
COMPRESSION_DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
# Official constants that no checkpoint file records: Lite's fusion heads and LayerNorm eps (region_encoder.py).
OFFICIAL_OCI_HEADS = 8
OFFICIAL_OCI_LAYER_NORM_EPS = 1e-5
# The released SigLIP-NaViT tower (VL3-SigLIP-NaViT) of every PixelRefer model: the default vision_config, the
# 2B/7B presets, and what an official checkpoint without any tower description is assumed to have.
REAL_VISION_TOWER = MappingProxyType(dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                          num_attention_heads=16, patch_size=PATCH_SIZE))


class PixelReferConfig(PretrainedConfig):
    r"""Configuration of a PixelRefer (``variant="full"``) or PixelRefer-Lite (``variant="lite"``) model.

    Args:
        vision_config: SigLIP-NaViT tower (transformers ``VideoLlama3VisionConfig``).
        text_config: the Qwen2 language model.
        variant: ``"full"`` feeds image tokens and object tokens to the LLM; ``"lite"`` feeds only object tokens
            after Object-Centric Infusion.
        mask_num: maximum number of object tokens per region (K; 32 in the paper).
        spatial_merge_size: merge of video frame tokens (2x2 average); images and crops use 1.
        max_visual_tokens: the LLM-side visual token budget per sample (official ``mm_max_length``).
        image_token_id / region_token_id: placeholder ids of ``<image>`` and ``<REGION>``.
        use_token_compression: drop video tokens whose pixels did not change since the previous frame.
        kmeans_iterations: k-means iterations of the object tokenizer (official: 5 full, 3 Lite).
        kmeans_seed: seed of the per-region k-means initialisation (deterministic by default).
        downscale_threshold_patches: objects covering more patches than this are shrunk to it (100 full, 50 Lite).
        region_geometry: ``"official"`` (released weights) or ``"clean"``.
        oci_num_heads: heads of the two Lite cross-attentions; oci_layer_norm_eps: their query LayerNorm eps.
        global_view_size / local_view_size: side of the Lite whole-frame and local-crop views.
        max_crop_patches: patch budget of one region crop (official training value: 8192).
        region_encoder: ``"scale_adaptive"`` (the paper's tokenizer: a zoomed crop around each region) or
            ``"mask_pooling"``, the ablation baseline: the whole frame encoded at the crop budget, no zoom, its
            features pooled inside the mask (the fixed-resolution mask pooling of earlier region models).
        image_processor: :class:`ImageProcessorSettings` (mean, std, rescale factor, resample filter, minimum
            pixels), saved in ``config.json``; official checkpoints take it from their ``preprocessor_config.json``.
        compression_dtype: dtype in which the video frame-difference compressor compares pixels. The official code
            compares them in the checkpoint's ``torch_dtype`` (bf16 for the released models), whose rounding
            decides tokens near the threshold; ``None`` is float32.
    """

    model_type = "pixelrefer"
    sub_configs = {"vision_config": VideoLlama3VisionConfig, "text_config": AutoConfig}

    def __init__(
        self,
        vision_config: dict | VideoLlama3VisionConfig | None = None,
        text_config: dict | Qwen2Config | None = None,
        variant: Variant = "full",
        mask_num: int = 32,
        spatial_merge_size: int = 2,
        max_visual_tokens: int = 8192,
        image_token_id: int | None = None,
        region_token_id: int | None = None,
        use_token_compression: bool = True,
        kmeans_iterations: int | None = None,
        kmeans_seed: int = 0,
        downscale_threshold_patches: int | None = None,
        region_geometry: str = "official",
        oci_num_heads: int = OFFICIAL_OCI_HEADS,
        oci_layer_norm_eps: float = OFFICIAL_OCI_LAYER_NORM_EPS,
        global_view_size: int = LITE_GLOBAL_VIEW_SIZE,
        local_view_size: int = LITE_LOCAL_VIEW_SIZE,
        max_crop_patches: int = 8192,
        region_encoder: str = "scale_adaptive",
        image_processor: dict | ImageProcessorSettings | None = None,
        compression_dtype: str | None = None,
        **kwargs: Any,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
        if region_geometry not in GEOMETRIES:
            raise ConfigError(f"unknown region_geometry {region_geometry!r}; expected one of {GEOMETRIES}")
        if region_encoder not in REGION_ENCODERS:
            raise ConfigError(f"unknown region_encoder {region_encoder!r}; expected one of {REGION_ENCODERS}")
        if mask_num < 1:
            raise ConfigError(f"mask_num must be >= 1, got {mask_num}")
        if compression_dtype not in (None, *COMPRESSION_DTYPES):
            raise ConfigError(f"compression_dtype {compression_dtype!r} is not one of {COMPRESSION_DTYPES}")
        if spatial_merge_size < 1:
            raise ConfigError(f"spatial_merge_size must be >= 1, got {spatial_merge_size}")
        if isinstance(vision_config, dict):
            vision_config = VideoLlama3VisionConfig(**vision_config)
        elif vision_config is None:
            vision_config = VideoLlama3VisionConfig(**REAL_VISION_TOWER)
        if isinstance(text_config, dict):
            text_config = dict(text_config)
            text_config.setdefault("model_type", "qwen2")
            text_config = AutoConfig.for_model(**text_config)
        elif text_config is None:
            text_config = Qwen2Config()
        if vision_config.patch_size != PATCH_SIZE:
            # crop margins, crop rounding and the mask grid are defined on 14-pixel patches (official code too)
            raise ConfigError(f"vision patch_size {vision_config.patch_size} is not supported; only {PATCH_SIZE}")
        self.vision_config = vision_config
        self.text_config = text_config
        self.variant = variant
        self.mask_num = mask_num
        self.spatial_merge_size = spatial_merge_size
        self.max_visual_tokens = max_visual_tokens
        self.image_token_id = image_token_id
        self.region_token_id = region_token_id
        self.use_token_compression = use_token_compression
        self.kmeans_iterations = kmeans_iterations if kmeans_iterations is not None else (5 if variant == "full" else 3)
        self.kmeans_seed = kmeans_seed
        self.downscale_threshold_patches = (
            downscale_threshold_patches if downscale_threshold_patches is not None else DOWNSCALE_THRESHOLD[variant]
        )
        self.region_geometry = region_geometry
        self.oci_num_heads = oci_num_heads
        self.oci_layer_norm_eps = oci_layer_norm_eps
        self.global_view_size = global_view_size
        self.local_view_size = local_view_size
        self.max_crop_patches = max_crop_patches
        self.region_encoder = region_encoder
        self.image_processor = ImageProcessorSettings.from_dict(image_processor)
        self.compression_dtype = compression_dtype
        kwargs.setdefault("tie_word_embeddings", getattr(text_config, "tie_word_embeddings", False))
        super().__init__(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["image_processor"] = self.image_processor.to_dict()
        return out

    @property
    def is_lite(self) -> bool:
        return self.variant == "lite"


AutoConfig.register(PixelReferConfig.model_type, PixelReferConfig, exist_ok=True)
