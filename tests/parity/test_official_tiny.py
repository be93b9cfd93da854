"""Parity with the official code's outputs on the official-tiny fixture (tests/data/official-tiny, README there).

Every stage is compared: preprocessing exactly, features / object tokens / embeddings within 1e-5, logits within
1e-4, identical greedy tokens.
"""

import json

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from pixelrefer.model.loading import load_checkpoint
from pixelrefer.processing.processor import Media, PixelReferProcessor

CASES = {
    "pixelrefer_image": ("pixelrefer-tiny", "image", "<image>\nThere are two regions in the image: <region>, <region>. Which is larger?"),
    "pixelrefer_video": ("pixelrefer-tiny", "video", "<video>\nPlease describe in detail the marked object <region> in the video."),
    "pixelreferlite_image": ("pixelreferlite-tiny", "image", "There are two regions in the image: <region>, <region>. Which is larger?"),
    "pixelreferlite_video": ("pixelreferlite-tiny", "video", "There is one object in the video: <region>.\nPlease describe in detail the marked object in the video."),
}


def _rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _case_inputs(root, case):
    rles = json.loads((root / "inputs/masks_rle.json").read_text())
    if CASES[case][1] == "image":
        media = Media(frames=[_rgb(root / "inputs/image.png")])
        masks = [mask_utils.decode(rles["image"]["masks"][k]) for k in ("small", "large")]
        return media, [{0: m} for m in masks]
    video = rles["video"]
    media = Media(frames=[_rgb(root / "inputs" / f) for f in video["files"]], timestamps=list(video["timestamps"]))
    frame_masks = {int(k): mask_utils.decode(r) for k, r in video["object_masks_per_frame"].items()}
    if case.startswith("pixelrefer_"):
        return media, [{0: frame_masks[0]}]
    return media, [frame_masks]


@pytest.fixture(scope="module")
def models(official_tiny):
    torch.set_num_threads(1)
    return {d: load_checkpoint(official_tiny / d, torch.device("cpu"), torch.float32) for d in ("pixelrefer-tiny", "pixelreferlite-tiny")}


def _run(models, root, case):
    from pixelrefer.regions import Region

    model, tokenizer = models[CASES[case][0]]
    processor = PixelReferProcessor(tokenizer, model.config)
    media, masks = _case_inputs(root, case)
    regions = [Region.from_frames(m) for m in masks]
    sample = processor.encode(media, regions, [{"role": "user", "content": CASES[case][2]}], official_local_view_cache=True)
    inputs = processor.collate([sample])
    expected = np.load(root / "expected" / f"{case}.npz")
    return model, tokenizer, sample, inputs, expected


@pytest.mark.parametrize("case", list(CASES))
def test_preprocessing_exact(models, official_tiny, case):
    _, _, sample, inputs, exp = _run(models, official_tiny, case)
    ids_key = "input_ids_after_compression" if case == "pixelrefer_video" else "input_ids"
    np.testing.assert_array_equal(np.array(sample.input_ids), exp[ids_key])
    if case == "pixelrefer_image":
        np.testing.assert_array_equal(sample.media_patches, exp["pixel_values"])
        np.testing.assert_array_equal(np.array(sample.media_grid), exp["image_grid_thw"])
    if case == "pixelrefer_video":
        np.testing.assert_array_equal(sample.media_patches.reshape(exp["frame_pixel_values"].shape), exp["frame_pixel_values"])
        np.testing.assert_array_equal(sample.media_keep, exp["frame_token_keep_mask"])
    for i, crop in enumerate(sample.crops):
        if f"region{i}_crop_pixel_values" in exp:
            np.testing.assert_array_equal(crop.patches, exp[f"region{i}_crop_pixel_values"])
            np.testing.assert_array_equal(crop.mask_grid, exp[f"region{i}_crop_mask"].astype(np.float32))
            np.testing.assert_allclose(crop.position, exp[f"region{i}_pos_input"], atol=1e-6, rtol=0)
    if case == "pixelreferlite_image":
        v = inputs.visual
        np.testing.assert_array_equal(v.global_pixels.numpy(), exp["global_pixel_values"])
        np.testing.assert_array_equal(v.local_pixels[:256].numpy(), exp["local_pixel_values"])


@pytest.mark.parametrize("case", list(CASES))
def test_object_tokens_embeddings_logits_and_greedy(models, official_tiny, case):
    model, tokenizer, _sample, inputs, exp = _run(models, official_tiny, case)
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        v = inputs.visual
        feats = model.encode_vision(v)
        tokens = model.object_features(v, feats, torch.Generator().manual_seed(1234))
        embeds = model.embed(inputs.input_ids, v, gen)
        logits = model(inputs_embeds=embeds, attention_mask=inputs.attention_mask).logits[0]
    torch.testing.assert_close(tokens, torch.from_numpy(exp["region_tokens_post_mlp"]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(embeds[0], torch.from_numpy(exp["inputs_embeds"]), atol=1e-5, rtol=1e-5)
    assert (logits - torch.from_numpy(exp["logits"])).abs().max().item() < 1e-4
    out = model.generate(
        **inputs.as_kwargs(), kmeans_generator=torch.Generator().manual_seed(1234), max_new_tokens=8, do_sample=False,
        min_new_tokens=8, pad_token_id=tokenizer.pad_token_id,
    )
    new = out[0, inputs.input_ids.shape[1]:]
    np.testing.assert_array_equal(new.numpy(), exp["generated_ids"])
