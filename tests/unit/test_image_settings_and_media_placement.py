"""Image-processor settings change pixels and video compression as the official formula says; media tags stay
where the user wrote them, with the official chunk spacing."""

import numpy as np
import pytest
from PIL import Image

from pixelrefer.errors import ConfigError, PromptError
from pixelrefer.processing.image import ImageProcessorSettings, normalize, patchify, to_patches
from pixelrefer.processing.processor import compression_keep
from pixelrefer.processing.prompts import compose_question, split_at_media

PER_CHANNEL = ImageProcessorSettings(image_mean=(0.4, 0.5, 0.6), image_std=(0.25, 0.5, 0.75))


def _official_normalize(image: np.ndarray, s: ImageProcessorSettings) -> np.ndarray:
    """transformers' rescale (float64 product -> float32) then normalize ((x - mean) / std, float32) per channel."""
    x = (image.astype(np.float64) * s.rescale_factor).astype(np.float32)
    out = np.empty((3, *image.shape[:2]), np.float32)
    for c in range(3):
        out[c] = (x[..., c] - np.float32(s.image_mean[c])) / np.float32(s.image_std[c])
    return out


def test_per_channel_mean_and_std_give_the_official_pixels():
    rng = np.random.default_rng(0)
    img = (rng.random((28, 42, 3)) * 255).astype(np.uint8)
    got = normalize(img, PER_CHANNEL)
    np.testing.assert_array_equal(got, _official_normalize(img, PER_CHANNEL))
    assert not np.array_equal(got, normalize(img, ImageProcessorSettings()))
    # the released tower's values map 0..255 onto [-1, 1]
    np.testing.assert_array_equal(normalize(np.array([[[0, 255, 51]]], np.uint8), ImageProcessorSettings())[:, 0, 0],
                                  np.float32([-1.0, 1.0, (np.float32(0.2) - np.float32(0.5)) / np.float32(0.5)]))


def test_rescale_factor_resample_and_min_pixels_are_honoured():
    rng = np.random.default_rng(1)
    img = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    s = ImageProcessorSettings(rescale_factor=1 / 200, resample=int(Image.Resampling.BILINEAR), min_pixels=56 * 84)
    patches, grid = patchify(img, merge=1, max_pixels=10**6, settings=s)
    h, w = grid[1] * 14, grid[2] * 14
    assert h * w >= 56 * 84 and (h, w) == (70, 84)  # min_pixels scaled the 30x40 image up
    resized = np.asarray(Image.fromarray(img).resize((w, h), resample=Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(patches, to_patches(_official_normalize(resized, s), 1))
    bicubic, _ = patchify(img, merge=1, max_pixels=10**6, settings=ImageProcessorSettings(rescale_factor=1 / 200, min_pixels=56 * 84))
    assert not np.array_equal(patches, bicubic)


def test_video_compression_threshold_is_on_normalised_values():
    """The official compressor keeps a merged token iff mean |delta normalised pixels| * 255 > 0.1, so a smaller std
    for the changed channel keeps a change the released values drop."""
    base = np.full((56, 56, 3), 100, np.uint8)  # 2x2 merged tokens of 28x28 pixels
    changed = base.copy()
    changed[0:4, 0:20, 0] += 1  # 80 red pixels of the first token, +1 grey level
    changed[28:, 28:] += 40  # the last token changes clearly (a frame keeps its first token if none is kept)
    keep = {}
    for name, s in {"released": ImageProcessorSettings(), "per_channel": PER_CHANNEL}.items():
        frames = np.stack([patchify(f, merge=2, max_pixels=10**6, settings=s)[0] for f in (base, changed)])
        expected_diff = 80 * (1 / 255) / s.image_std[0] / (4 * 588) * 255
        keep[name] = compression_keep(frames, merge=2).reshape(2, 4)
        assert keep[name][1, 0] == (expected_diff > 0.1), (name, expected_diff)
        assert keep[name][0].all() and list(keep[name][1, 1:]) == [False, False, True]
    assert not keep["released"][1, 0] and keep["per_channel"][1, 0]


@pytest.mark.parametrize("fields, name", [
    ({"resample": 9}, "resample"),
    ({"image_mean": [0.5, 0.5]}, "image_mean"),
    ({"image_std": [0.5, 0.0, 0.5]}, "image_std"),
    ({"rescale_factor": 0}, "rescale_factor"),
    ({"min_pixels": 0}, "min_pixels"),
    ({"crop_size": 3}, "crop_size"),
])
def test_bad_settings_name_the_field(fields, name):
    with pytest.raises(ConfigError, match=name):
        ImageProcessorSettings.from_dict(fields)


def test_settings_dict_round_trip():
    s = ImageProcessorSettings(image_mean=0.3, image_std=[0.2, 0.3, 0.4], resample=2, min_pixels=1000, do_rescale=False)
    assert s.image_mean == (0.3, 0.3, 0.3)
    assert ImageProcessorSettings.from_dict(s.to_dict()) == s


@pytest.mark.parametrize("text, pieces", [
    ("<image>\nWhat is it?", [None, "What is it?"]),
    ("What is it?", [None, "What is it?"]),  # no tag: media first (official default)
    ("Look at this <image> and describe it.", ["Look at this", None, "and describe it."]),
    ("  Describe it: <video>", ["Describe it:", None]),
    ("<image>", [None]),
])
def test_split_at_media_follows_the_official_chunking(text, pieces):
    assert split_at_media(text) == pieces


def test_two_media_tags_are_a_prompt_error():
    with pytest.raises(PromptError, match="2"):
        split_at_media("<image> and <image>")


def test_compose_question_keeps_the_tag_in_place():
    assert compose_question("Look at <image> and name <region>.", 1) == "Look at <image> and name <region>."
    assert compose_question("<image> what?", 1).endswith("<image> what?")
    with pytest.raises(PromptError, match="empty"):
        compose_question(" <image> ", 1)


def _near_threshold_frames():
    """Two frames whose first merged token changed by a mean of ~0.1 grey level: the float32 and the bf16
    comparison disagree on it (found by search, fixed by the seed)."""
    rng = np.random.default_rng(2)
    base = (rng.random((56, 56, 3)) * 200 + 20).astype(np.uint8)
    for k in range(100, 119):
        changed = base.copy()
        block = changed[:28, :28].reshape(-1).copy()
        block[rng.choice(block.size, size=k, replace=False)] += 1
        changed[:28, :28] = block.reshape(28, 28, 3)
    changed[28:, 28:] = 0
    return np.stack([patchify(f, merge=2, max_pixels=10**6, settings=ImageProcessorSettings())[0] for f in (base, changed)])


def test_compression_in_the_checkpoint_dtype_follows_the_official_rounding():
    import torch

    frames = _near_threshold_frames()
    x = torch.from_numpy(frames).to(torch.bfloat16).view(2, 4, -1)  # the official code: pixels in torch_dtype
    official = (torch.abs(x[1:] - x[:-1]).mean(dim=-1) * 255 > 0.1)[0].numpy()
    bf16 = compression_keep(frames, merge=2, dtype="bfloat16").reshape(2, 4)[1]
    fp32 = compression_keep(frames, merge=2).reshape(2, 4)[1]
    np.testing.assert_array_equal(bf16, official)
    assert bf16[0] != fp32[0]  # the rounding decides this token

