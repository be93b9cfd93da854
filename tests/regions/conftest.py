"""Fixtures for the region tests: tiny random SAM2 models (configs from docs/environment.md §4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

TINY_SIDE = 128  # model input size
TINY_HIDDEN = 128  # video hidden sizes must be multiples of 64 and > 64


def tiny_sam2_video_config():
    from transformers import Sam2VideoConfig
    from transformers.models.sam2.configuration_sam2 import Sam2HieraDetConfig, Sam2VisionConfig
    from transformers.models.sam2_video.configuration_sam2_video import (
        Sam2VideoMaskDecoderConfig,
        Sam2VideoPromptEncoderConfig,
    )

    s, d = TINY_SIDE, TINY_HIDDEN
    backbone = Sam2HieraDetConfig(hidden_size=12, image_size=s, blocks_per_stage=[1, 1, 2, 1],
                                  embed_dim_per_stage=[12, 24, 48, 96], num_attention_heads_per_stage=[1, 2, 4, 8],
                                  global_attention_blocks=[3], window_size_per_stage=[8, 4, 4, 4])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[96, 48, 24, 12],
                              backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
                              fpn_hidden_size=d)
    return Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=d, image_size=s, patch_size=16,
                                                           mask_input_channels=8),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(hidden_size=d, mlp_dim=64, num_hidden_layers=2,
                                                       num_attention_heads=4, iou_head_hidden_dim=d),
        image_size=s, num_maskmem=3, memory_attention_hidden_size=d, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[s // 16, s // 16],
        memory_encoder_hidden_size=d, memory_encoder_output_channels=64, mask_downsampler_embed_dim=d,
        memory_fuser_embed_dim=d, memory_fuser_intermediate_dim=128,
    )


@pytest.fixture(scope="session")
def tiny_sam2_dir(tmp_path_factory) -> Path:
    """A saved tiny random SAM2 video checkpoint (loads as both Sam2Model and Sam2VideoModel)."""
    from transformers import Sam2VideoModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam2-tiny")
    Sam2VideoModel(tiny_sam2_video_config()).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_sam2(tiny_sam2_dir):
    from pixelrefer.segment.sam2 import Sam2Segmenter

    return Sam2Segmenter.from_pretrained(tiny_sam2_dir)
