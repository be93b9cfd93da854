import numpy as np
import pytest
import torch

from pixelrefer.processing.crops import (
    CropSpec,
    plan_crop,
    position_grid_official,
    position_grid_xy,
    scale_rate,
)
from pixelrefer.processing.image import smart_resize, to_patches
from pixelrefer.processing.processor import compression_keep
from pixelrefer.processing.prompts import CHAT_TEMPLATE, PromptError, expand_regions


def test_smart_resize_rules():
    assert smart_resize(210, 308, 14, 3136, 10**7) == (210, 308)
    assert smart_resize(210, 308, 28, 3136, 10**7) == (224, 308)  # 7.5 rounds half to even -> 8
    h, w = smart_resize(1080, 1920, 14, 3136, 1_605_632)
    assert h * w <= 1_605_632 and h % 14 == 0 and w % 14 == 0 and (h, w) == (938, 1680)
    # a side shorter than the factor is first scaled up to it (10x20 -> 14x28), then the area is raised to
    # min_pixels: beta = sqrt(3136 / 392), ceil(14 * beta / 14) * 14 = 42, ceil(28 * beta / 14) * 14 = 84
    assert smart_resize(10, 20, 14, 3136, 10**7) == (42, 84)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 5000, 14, 3136, 10**9)


def test_patch_order_is_merge_window_major():
    chw = np.arange(3 * 28 * 56, dtype=np.float32).reshape(3, 28, 56)
    p = to_patches(chw, merge=2)
    assert p.shape == (8, 588)
    # second row is the patch right of the first (same 2x2 window), third the one below it
    np.testing.assert_array_equal(p[1].reshape(3, 14, 14), chw[:, :14, 14:28])
    np.testing.assert_array_equal(p[2].reshape(3, 14, 14), chw[:, 14:28, :14])
    np.testing.assert_array_equal(to_patches(chw, merge=1)[1].reshape(3, 14, 14), chw[:, :14, 14:28])


def test_scale_rate_examples_from_the_paper_code():
    assert scale_rate(2000, 32, 100) == 2
    assert abs(scale_rate(50_000, 32, 100) - 0.626) < 1e-3
    assert scale_rate(196 * 60, 32, 100) == 1  # between 32 and 100 patches: unchanged
    assert abs(scale_rate(25907, 32, 100) - 0.8698) < 1e-4


def test_official_position_grid_swaps_rows_and_columns():
    box = (10, 20, 50, 120)  # (r0, c0, r1, c1)
    g = position_grid_official(4, 5, box, height=100, width=200)
    assert g.shape == (4, 5, 2)
    # channel 0 varies along the width but uses the box rows and the image width (the official quirk)
    np.testing.assert_allclose(g[0, :, 0], (np.arange(5) / 5 * (50 - 10) + 10) / 199, rtol=1e-6)
    np.testing.assert_allclose(g[:, 0, 1], (np.arange(4) / 4 * (120 - 20) + 20) / 99, rtol=1e-6)
    xy = position_grid_xy(4, 5, box, height=100, width=200)
    assert 20 / 200 < xy[0, 0, 0] < xy[0, -1, 0] < 121 / 200 and 10 / 100 < xy[0, 0, 1] < xy[-1, 0, 1] < 51 / 100


@pytest.mark.parametrize("variant,geometry", [("full", "official"), ("lite", "official"), ("full", "clean")])
def test_crop_plan_covers_the_object_with_about_k_cells(variant, geometry):
    img = np.zeros((200, 300, 3), np.uint8)
    mask = np.zeros((200, 300), bool)
    mask[90:100, 140:152] = True  # tiny: 120 px -> zoomed in
    spec = CropSpec(variant, geometry, mask_num=32, downscale_threshold_patches=100 if variant == "full" else 50, max_crop_patches=8192)
    crop = plan_crop(img, mask, spec)
    cells = int((crop.mask_grid > 0).sum())
    assert crop.scale == 8 and cells >= 20  # ceil(sqrt(196 * 32 / 120)) = 8
    assert crop.num_tokens == (32 if variant == "lite" else min(32, cells))
    assert crop.patches.shape == (crop.grid[1] * crop.grid[2], 588)
    assert (crop.local_view is not None) == (variant == "lite")


def test_mask_pooling_baseline_reads_the_whole_frame_without_zoom():
    img = np.zeros((196, 280, 3), np.uint8)
    mask = np.zeros((196, 280), bool)
    mask[90:100, 140:152] = True
    common = dict(mask_num=16, downscale_threshold_patches=100, max_crop_patches=70)
    sat = plan_crop(img, mask, CropSpec("full", "clean", **common))
    pooled = plan_crop(img, mask, CropSpec("full", "clean", scale_adaptive=False, **common))
    assert pooled.scale == 1.0 and pooled.box == (0, 0, 195, 279)
    assert pooled.grid == (1, 7, 10)  # the frame fitted into the 70-patch budget
    assert int((pooled.mask_grid > 0).sum()) == 1 < int((sat.mask_grid > 0).sum())
    assert sat.scale > 1 and sat.box != pooled.box
    with pytest.raises(ValueError, match="region_encoder"):
        from pixelrefer.config import PixelReferConfig

        PixelReferConfig(region_encoder="roi_align")


def test_region_expansion_and_errors():
    assert expand_regions("a <region> b <region>", [None, None]) == "a [<REGION>] b [<REGION>]"
    assert expand_regions("<region>", [[0.0, 1.25]]) == "[Time 0.0:<REGION>,Time 1.2:<REGION>]"
    with pytest.raises(PromptError, match="2 region"):
        expand_regions("<region>", [None, None])


def test_chat_template_renders_official_text():
    from pixelrefer.model.tokenizer import byte_level_tokenizer

    tok = byte_level_tokenizer()
    msgs = [{"role": "user", "content": [{"type": "video", "timestamps": [0.0, 1.0]}, {"type": "text", "text": "Hi"}]}]
    text = tok.apply_chat_template(msgs, chat_template=CHAT_TEMPLATE, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nTime 0.0s:<image>,Time 1.0s:<image>\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_video_compression_keeps_changed_tokens_and_one_per_frame():
    frames = np.zeros((3, 16, 588), np.float32)
    frames[2, 4:8] += 0.5  # one merged token (4 patches) changes in frame 2
    keep = compression_keep(frames, merge=2).reshape(3, 4)
    assert keep[0].all() and keep[1].tolist() == [True, False, False, False] and keep[2].tolist() == [False, True, False, False]
    assert torch.tensor(keep).sum() == 6
