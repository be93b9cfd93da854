import numpy as np
import pytest
import torch

from pixelrefer import PixelRefer


def sharpen(pr: PixelRefer, seed: int = 0) -> PixelRefer:
    """Random weights with a large scale, so greedy output depends on the input (the default init is near-uniform)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pr.model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5 * 2.0)
    return pr


@pytest.fixture(scope="session", params=["tiny", "tiny-lite"])
def tiny(request) -> PixelRefer:
    torch.set_num_threads(1)
    return sharpen(PixelRefer.from_pretrained(request.param, device="cpu", dtype="float32", segmenter=None))


@pytest.fixture(scope="session")
def scene():
    rng = np.random.default_rng(0)
    img = (rng.random((112, 140, 3)) * 255).astype(np.uint8)
    img[10:40, 10:50] = (220, 30, 30)
    img[60:100, 70:130] = (30, 30, 220)
    m1 = np.zeros((112, 140), bool)
    m1[10:40, 10:50] = True
    m2 = np.zeros((112, 140), bool)
    m2[60:100, 70:130] = True
    return img, m1, m2
