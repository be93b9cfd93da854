"""min_new_tokens / max_new_tokens are honoured (the bundled nano model ends its category answers after a word)."""

from __future__ import annotations

import numpy as np
import pytest

from pixelrefer import GenerationConfig, PixelRefer, Region
from pixelrefer.presets import BUNDLED

CATEGORY = "What is the category of <region>? Using only one word or phrase."


@pytest.fixture(scope="module")
def nano() -> PixelRefer:
    if not BUNDLED["nano"].is_dir():
        pytest.skip("the bundled nano model is not installed")
    return PixelRefer.from_pretrained("nano", device="cpu", dtype="float32", segmenter=None)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    image = np.full((224, 224, 3), 90, np.uint8)
    image[60:140, 70:150] = (220, 40, 40)
    mask = np.zeros((224, 224), bool)
    mask[60:140, 70:150] = True
    return image, mask


def test_min_new_tokens_suppresses_the_early_end(nano: PixelRefer) -> None:
    image, mask = _scene()
    short = nano.ask(image, [Region.from_mask(mask)], CATEGORY, GenerationConfig(max_new_tokens=12))
    assert len(short.token_ids) < 6  # a word and the end of the turn
    forced = nano.ask(image, [Region.from_mask(mask)], CATEGORY, GenerationConfig(max_new_tokens=12, min_new_tokens=8))
    assert len(forced.token_ids) >= 8
    assert forced.token_ids[:1] == short.token_ids[:1]  # greedy: the same first token


def test_min_new_tokens_is_checked() -> None:
    with pytest.raises(ValueError, match="min_new_tokens"):
        GenerationConfig(max_new_tokens=4, min_new_tokens=5)
    with pytest.raises(ValueError, match="min_new_tokens"):
        GenerationConfig(min_new_tokens=-1)
