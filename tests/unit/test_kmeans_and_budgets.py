"""k-means against the official runs' recorded inputs and centroids; crop and view pixel budgets."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelrefer.model.kmeans import kmeans_compress
from pixelrefer.processing.crops import CropSpec, crop_pixel_budget, plan_crop

DATA = Path(__file__).parents[1] / "data"
FIXTURE_CASES = sorted(
    (fixture, npz.stem)
    for fixture in DATA.glob("official-*")
    for npz in (fixture / "expected").glob("*.npz")
)


def _recorded_kmeans(fixture: Path, case: str):
    """Per region in call order: (official k-means input, official output), from either naming of the arrays."""
    exp = np.load(fixture / "expected" / f"{case}.npz")
    pairs, i = [], 0
    while True:
        for inp, out in ((f"region{i}_masked_tokens", f"region{i}_tokens"), (f"kmeans{i}_input", f"kmeans{i}_centroids")):
            if inp in exp and out in exp:
                pairs.append((exp[inp], exp[out]))
                break
        else:
            return pairs
        i += 1


@pytest.mark.parametrize("fixture, case", FIXTURE_CASES, ids=[f"{f.name}-{c}" for f, c in FIXTURE_CASES])
def test_kmeans_reproduces_the_official_centroids(fixture, case):
    """Fed the official masked tokens and the official RNG state (the recorded torch.manual_seed before the call), the
    batched k-means returns the official tokens of every region."""
    pairs = _recorded_kmeans(fixture, case)
    assert pairs, "the fixture records k-means inputs"
    checkpoint = next(p for p in fixture.iterdir() if p.name.startswith(case.split("_")[0] + "-"))
    k = json.loads((checkpoint / "config.json").read_text())["mask_num"]
    iterations = 3 if case.startswith("pixelreferlite") else 5
    call = json.loads((fixture / "expected" / f"{case}.json").read_text()).get("call") or {}
    seed = call.get("seed", 1234)  # the torch.manual_seed before the official mm_infer call
    out = kmeans_compress([torch.from_numpy(a) for a, _ in pairs], k, iterations, generator=torch.Generator().manual_seed(seed))
    for (_, expected), got in zip(pairs, out):
        torch.testing.assert_close(got, torch.from_numpy(expected), atol=1e-6, rtol=1e-6)


def _blob(h, w, rows, cols):
    mask = np.zeros((h, w), bool)
    mask[rows, cols] = True
    return mask


def test_crop_budget_caps_the_crop_and_official_views():
    image = (np.random.default_rng(0).random((300, 400, 3)) * 255).astype(np.uint8)
    mask = _blob(300, 400, slice(20, 280), slice(30, 380))  # large: shrunk to ~50 patches, then capped
    official = CropSpec("lite", "official", mask_num=16, downscale_threshold_patches=50, max_crop_patches=40)
    crop = plan_crop(image, mask, official)
    assert crop.patches.shape[0] <= 40 and crop.mask_grid.size > crop.patches.shape[0]  # mask grid kept, features resized
    assert crop.local_view[0].shape[0] <= 40  # the 224x224 view is fitted into the same budget (official processor)
    clean = CropSpec("lite", "clean", mask_num=16, downscale_threshold_patches=50, max_crop_patches=40)
    assert plan_crop(image, mask, clean).local_view[0].shape[0] == 16 * 16  # clean views keep their size
    half = plan_crop(image, mask, official, crop_pixel_budget(official, num_crops=2))
    assert half.patches.shape[0] <= 20 and crop_pixel_budget(official, 2) == 40 * 196 // 2


def test_official_crop_budget_is_shared_by_the_crops_of_a_sample(official_tiny):
    from transformers import PreTrainedTokenizerFast

    from pixelrefer.model.convert import config_from_official
    from pixelrefer.processing.processor import Media, PixelReferProcessor
    from pixelrefer.regions import ResolvedRegion

    folder = official_tiny / "pixelrefer-tiny"
    config = config_from_official(json.loads((folder / "config.json").read_text()), folder)
    config.max_crop_patches = 60
    processor = PixelReferProcessor(PreTrainedTokenizerFast.from_pretrained(folder), config)
    image = (np.random.default_rng(1).random((200, 300, 3)) * 255).astype(np.uint8)
    regions = [ResolvedRegion(masks={0: _blob(200, 300, slice(10, 190), slice(10, 140))}),
               ResolvedRegion(masks={0: _blob(200, 300, slice(10, 190), slice(160, 290))})]
    turn = [{"role": "user", "content": "<region> or <region>?"}]
    alone = processor.encode(Media(frames=[image]), regions, turn)
    shared = processor.encode(Media(frames=[image]), regions, turn, official_crop_budget=True)
    assert max(c.patches.shape[0] for c in alone.crops) > 30
    assert all(c.patches.shape[0] <= 30 for c in shared.crops)
