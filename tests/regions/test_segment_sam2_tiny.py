"""The SAM2 code path on tiny random models: shapes, dtypes, multimask choice, propagation, loading.

Random weights say nothing about quality; these tests check that the real transformers classes are
driven correctly (preprocessing, prompt scaling, sessions, forward/backward propagation, devices).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelrefer.regions import Region
from pixelrefer.segment import SegmentPrompt, get_segmenter
from pixelrefer.segment.sam2 import Sam2Segmenter

H, W = 72, 100
RNG = np.random.default_rng(0)
FRAMES = [RNG.integers(0, 255, (H, W, 3), dtype=np.uint8) for _ in range(5)]
MASK = np.zeros((H, W), bool)
MASK[20:50, 30:70] = True


pytestmark = pytest.mark.usefixtures("one_thread")


PROMPTS = {
    "point": SegmentPrompt(points=np.array([[40.0, 30.0]]), labels=np.array([1])),
    "points+neg": SegmentPrompt(points=np.array([[40.0, 30.0], [90.0, 60.0]]), labels=np.array([1, 0])),
    "box": SegmentPrompt(box=np.array([10.0, 5.0, 60.0, 50.0])),
    "box+point": SegmentPrompt(points=np.array([[40.0, 30.0]]), labels=np.array([1]), box=np.array([10.0, 5, 60, 50])),
    "scribble": SegmentPrompt(scribble=MASK),
}


@pytest.mark.parametrize("name", list(PROMPTS))
def test_image_prompts_give_full_size_masks(tiny_sam2, name) -> None:
    result = tiny_sam2.segment(FRAMES[0], PROMPTS[name])
    assert result.mask.shape == (H, W) and result.mask.dtype == bool
    assert 0.0 <= result.score <= 1.0


def test_best_of_three_masks_is_kept(tiny_sam2) -> None:
    prompt = PROMPTS["point"]
    inputs = tiny_sam2._prompt_tensors(prompt, H, W)
    with torch.no_grad():
        out = tiny_sam2.image_model(pixel_values=tiny_sam2._pixels([FRAMES[0]]), multimask_output=True, **inputs)
    assert out.pred_masks.shape[:3] == (1, 1, 3)
    best = int(out.iou_scores[0, 0].argmax())
    expected = tiny_sam2._to_frame(out.pred_masks[0, 0, best], H, W)
    result = tiny_sam2.segment(FRAMES[0], prompt)
    assert np.array_equal(result.mask, expected)
    assert result.score == pytest.approx(float(out.iou_scores[0, 0, best].clamp(0, 1)))


def test_prompt_coordinates_are_scaled_to_the_model_square(tiny_sam2) -> None:
    s = tiny_sam2.image_size
    inputs = tiny_sam2._prompt_tensors(SegmentPrompt(points=np.array([[W / 2, H / 4]]), labels=np.array([1]),
                                                     box=np.array([0.0, 0.0, W, H])), H, W)
    torch.testing.assert_close(inputs["input_points"].view(2), torch.tensor([s / 2, s / 4]))
    torch.testing.assert_close(inputs["input_boxes"].view(4), torch.tensor([0.0, 0.0, s, s]))
    pixels = tiny_sam2._pixels(FRAMES[:2])
    assert pixels.shape == (2, 3, s, s) and pixels.dtype == torch.float32


@pytest.mark.parametrize("annotated", [{0: MASK}, {2: MASK}, {1: MASK, 3: ~MASK}])
def test_video_propagation_forward_and_backward(tiny_sam2, annotated) -> None:
    done: list[int] = []
    out = tiny_sam2.propagate(FRAMES, annotated, progress=done.append)
    assert sorted(out) == list(range(len(FRAMES)))
    assert all(m.shape == (H, W) and m.dtype == bool for m in out.values())
    assert all(np.array_equal(out[f], m) for f, m in annotated.items())
    assert sum(done) == len(FRAMES) - len(annotated)


def test_region_resolve_through_sam2(tiny_sam2) -> None:
    region = Region.from_points([[40, 30]], frame=2)
    resolved = region.resolve(H, W, len(FRAMES), segmenter=tiny_sam2, frames=FRAMES, propagate=True)
    assert resolved.segmenter == "sam2" and 2 in resolved.scores
    assert set(resolved.frames) | set(resolved.empty_frames) == set(range(len(FRAMES)))
    assert all(resolved.masks[f].shape == (H, W) for f in resolved.frames)


def test_auto_picks_sam2_from_env(tiny_sam2_dir, monkeypatch, caplog) -> None:
    monkeypatch.setenv("PIXELREFER_SAM2", str(tiny_sam2_dir))
    with caplog.at_level("INFO"):
        segmenter = get_segmenter("auto")
    assert segmenter.name == "sam2" and "sam2" in caplog.text
    assert segmenter.video_model is not None


def test_bfloat16_on_cpu(tiny_sam2_dir) -> None:
    segmenter = Sam2Segmenter.from_pretrained(tiny_sam2_dir, dtype=torch.bfloat16)
    assert next(segmenter.image_model.parameters()).dtype == torch.bfloat16
    assert segmenter.segment(FRAMES[0], PROMPTS["box"]).mask.shape == (H, W)
    assert len(segmenter.propagate(FRAMES[:3], {0: MASK})) == 3


def test_image_only_checkpoint_falls_back_to_flow(tmp_path, tiny_sam2, caplog) -> None:
    tiny_sam2.image_model.save_pretrained(tmp_path)
    with caplog.at_level("WARNING"):
        segmenter = Sam2Segmenter.from_pretrained(tmp_path)
    assert segmenter.video_model is None and "missing" in caplog.text
    assert sorted(segmenter.propagate(FRAMES[:3], {0: MASK})) == [0, 1, 2]


def test_missing_weights_are_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="cannot load SAM2 weights"):
        Sam2Segmenter.from_pretrained(tmp_path / "nothing-here")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device(tiny_sam2_dir) -> None:
    segmenter = Sam2Segmenter.from_pretrained(tiny_sam2_dir, device="cuda", dtype=torch.float16)
    assert next(segmenter.image_model.parameters()).device.type == "cuda"
    assert segmenter.segment(FRAMES[0], PROMPTS["box+point"]).mask.shape == (H, W)
    out = segmenter.propagate(FRAMES, {2: MASK})
    assert sorted(out) == list(range(len(FRAMES))) and out[0].shape == (H, W)
