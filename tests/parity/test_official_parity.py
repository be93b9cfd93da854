"""Parity with the official code's recorded outputs on every official-* fixture (tests/data/official-*, README in each).

Every stage is compared: token ids and preprocessing exactly; vision features, object tokens and input embeddings
within 1e-5; logits within 1e-4; greedy tokens identical.
"""

from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelrefer.parity import (
    encode,
    expected_ids,
    fixture_cases,
    forward,
    kmeans_generator,
    lite_view_ids,
    load_case,
    logits_to_compare,
    max_abs,
    polygons,
    recorded_mask,
)
from pixelrefer.regions.codecs import polygons_to_mask

FEATURE_TOL = 1e-5
LOGITS_TOL = 1e-4
DATA = Path(__file__).resolve().parents[1] / "data"
FIXTURES = ("official-tiny", "official-varied-a", "official-varied-b")
CASES = [pytest.param(f, c, id=f"{Path(f).name}-{c}") for f, c in fixture_cases(DATA, FIXTURES)]


def _cases_where(keep):
    return [p for p in CASES if keep(load_case(*p.values))]


MEDIA_CASES = _cases_where(lambda c: not c.lite)  # Lite prompts carry no media tokens
LITE_VIEW_CASES = _cases_where(lambda c: c.lite and "global_pixel_values" in c.expected)
POLYGON_CASES = _cases_where(lambda c: any(k in c.call["masks"] for k in polygons(c.root)))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@cache
def _run(fixture, name):
    return encode(load_case(fixture, name))


@cache
def _forward(fixture, name):
    stages = forward(_run(fixture, name))
    return stages.features, stages.pooled, stages.object_tokens, stages.inputs_embeds, stages.logits


def _close(actual, expected, tol, what):
    diff = max_abs(actual, expected)
    assert diff <= tol, f"{what}: max |diff| = {diff:.3g} > {tol:g} (shapes {tuple(np.shape(actual))} vs {tuple(np.shape(expected))})"


@pytest.mark.parametrize("fixture,name", CASES)
def test_input_ids_exact(fixture, name):
    run = _run(fixture, name)
    np.testing.assert_array_equal(np.array(run.sample.input_ids), expected_ids(run.case))


@pytest.mark.parametrize("fixture,name", MEDIA_CASES)
def test_media_preprocessing_exact(fixture, name):
    run, exp = _run(fixture, name), load_case(fixture, name).expected
    if "pixel_values" in exp:
        np.testing.assert_array_equal(np.array(run.sample.media_grid), exp["image_grid_thw"])
        np.testing.assert_array_equal(run.sample.media_patches, exp["pixel_values"])
    else:
        np.testing.assert_array_equal(np.array(run.sample.media_grid), exp["frame_grid_thw"])
        np.testing.assert_array_equal(run.sample.media_patches.reshape(exp["frame_pixel_values"].shape), exp["frame_pixel_values"])
        np.testing.assert_array_equal(run.sample.media_keep, exp["frame_token_keep_mask"])


@pytest.mark.parametrize("fixture,name", CASES)
def test_region_crops_exact(fixture, name):
    run, case = _run(fixture, name), load_case(fixture, name)
    exp = case.expected
    assert len(run.sample.crops) == len(case.meta["regions"])
    for i, crop in enumerate(run.sample.crops):
        if f"region{i}_crop_pixel_values" not in exp:
            continue
        np.testing.assert_array_equal(crop.patches, exp[f"region{i}_crop_pixel_values"], err_msg=f"region {i} crop pixels")
        np.testing.assert_array_equal(crop.mask_grid, exp[f"region{i}_crop_mask"].astype(np.float32), err_msg=f"region {i} mask")
        np.testing.assert_allclose(crop.position, exp[f"region{i}_pos_input"], atol=1e-6, rtol=0, err_msg=f"region {i} position")


@pytest.mark.parametrize("fixture,name", LITE_VIEW_CASES)
def test_lite_views_exact(fixture, name):
    run, case = _run(fixture, name), load_case(fixture, name)
    exp = case.expected
    v = run.inputs.visual
    region_image, stored = lite_view_ids(case)
    g_exp, l_exp = exp["global_pixel_values"], exp["local_pixel_values"]
    g_exp, l_exp = (g_exp[None], l_exp[None]) if g_exp.ndim == 2 else (g_exp, l_exp)
    g_len = g_exp.shape[1]
    l_len = l_exp.shape[1]
    index = v.crop_global_index.tolist()
    for k, image_id in enumerate(stored):
        region = region_image.index(image_id)
        g = v.global_pixels[index[region] * g_len:(index[region] + 1) * g_len]
        np.testing.assert_array_equal(g.numpy(), g_exp[k], err_msg=f"global view of image {image_id}")
        loc = v.local_pixels[region * l_len:(region + 1) * l_len]
        np.testing.assert_array_equal(loc.numpy(), l_exp[k], err_msg=f"local view of image {image_id}")


@pytest.mark.parametrize("fixture,name", POLYGON_CASES)
def test_polygon_rasterised_like_official(fixture, name):
    case = load_case(fixture, name)
    for key, p in polygons(case.root).items():
        if key not in case.call["masks"]:
            continue
        np.testing.assert_array_equal(polygons_to_mask(p["polygon_xy"], p["height"], p["width"]), recorded_mask(case, key) > 0)


@pytest.mark.parametrize("fixture,name", CASES)
def test_vision_features(fixture, name):
    case = load_case(fixture, name)
    exp = case.expected
    feats = _forward(fixture, name)[0]
    if "vision_features" in exp and not case.video:
        _close(feats["media"][0], exp["vision_features"], FEATURE_TOL, "image features")
    if "projector_input" in exp:
        _close(torch.cat(feats["media"]), exp["projector_input"], FEATURE_TOL, "merged frame features")
    for i, f in enumerate(feats["crop"]):
        if f"region{i}_crop_vision_features" in exp:
            _close(f, exp[f"region{i}_crop_vision_features"], FEATURE_TOL, f"region {i} crop features")
    if case.lite and "global_vision_features" in exp:
        region_image, stored = lite_view_ids(case)
        g_exp, l_exp = exp["global_vision_features"], exp["local_vision_features"]
        g_exp, l_exp = (g_exp[None], l_exp[None]) if g_exp.ndim == 3 else (g_exp, l_exp)
        index = _run(fixture, name).inputs.visual.crop_global_index.tolist()
        for k, image_id in enumerate(stored[: len(g_exp)]):
            region = region_image.index(image_id)
            _close(feats["global"][index[region]], g_exp[k], FEATURE_TOL, f"global view features of image {image_id}")
            _close(feats["local"][region], l_exp[k], FEATURE_TOL, f"local view features of image {image_id}")


@pytest.mark.parametrize("fixture,name", CASES)
def test_pooled_object_tokens(fixture, name):
    exp = load_case(fixture, name).expected
    pooled = _forward(fixture, name)[1]
    for i, p in enumerate(pooled):
        # official-tiny's Lite video case, where every region ran k-means, stores the centroids under kmeans{i}_*
        key = f"region{i}_tokens" if f"region{i}_tokens" in exp else f"kmeans{i}_centroids"
        _close(p, exp[key], FEATURE_TOL, f"region {i} pooled tokens (masked tokens or k-means centroids)")


@pytest.mark.parametrize("fixture,name", CASES)
def test_object_tokens_after_mlp(fixture, name):
    _close(_forward(fixture, name)[2], load_case(fixture, name).expected["region_tokens_post_mlp"], FEATURE_TOL, "object tokens")


@pytest.mark.parametrize("fixture,name", CASES)
def test_inputs_embeds(fixture, name):
    _close(_forward(fixture, name)[3], load_case(fixture, name).expected["inputs_embeds"], FEATURE_TOL, "inputs_embeds")


@pytest.mark.parametrize("fixture,name", CASES)
def test_logits(fixture, name):
    exp = load_case(fixture, name).expected
    logits = logits_to_compare(load_case(fixture, name), _forward(fixture, name)[4])
    _close(logits, exp["logits"], LOGITS_TOL, "logits")


@pytest.mark.parametrize("fixture,name", CASES)
def test_greedy_tokens(fixture, name):
    run, exp = _run(fixture, name), load_case(fixture, name).expected
    out = run.model.generate(
        **run.inputs.as_kwargs(), kmeans_generator=kmeans_generator(run.case), max_new_tokens=8, do_sample=False,
        pad_token_id=run.tokenizer.pad_token_id, eos_token_id=run.tokenizer.eos_token_id,
    )
    np.testing.assert_array_equal(out[0, run.inputs.input_ids.shape[1]:].numpy(), exp["generated_ids"])
