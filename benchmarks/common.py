"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, which puts this folder on the
import path): the synthetic scene with elliptical masks of mixed sizes, and one region-encoding pass.

Only the package's public API is used: ``PixelRefer.processor`` to encode, the model's ``encode_vision``,
``object_features`` and ``vision_model`` to run the tower.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelrefer import PixelRefer, Region
from pixelrefer.processing.processor import collate_visual


def scene(n_regions: int, size=(480, 640), seed=0):
    """A random RGB image and ``n_regions`` elliptical masks cycling through 8 sizes (about 360 px to 53k px)."""
    rng = np.random.default_rng(seed)
    img = (rng.random((*size, 3)) * 255).astype(np.uint8)
    yy, xx = np.mgrid[: size[0], : size[1]]
    masks = []
    for i in range(n_regions):
        r = [9, 20, 40, 70, 110, 25, 50, 90][i % 8]
        cy, cx = 60 + (i * 53) % (size[0] - 120), 60 + (i * 97) % (size[1] - 120)
        masks.append(((yy - cy) ** 2 / r**2 + (xx - cx) ** 2 / (1.4 * r) ** 2) <= 1)
    return img, masks


def region_encoding(pr: PixelRefer, img, masks, one_call: bool):
    """Encode the regions' crops: in one vision call with pooling (``one_call``), or one tower call per crop."""
    sample = pr.processor.encode(img, [Region.from_mask(m) for m in masks],
                                 [{"role": "user", "content": " ".join(["<region>"] * len(masks))}])
    v = collate_visual([sample]).to(pr.device, pr.model.dtype)
    v.media_pixels = None
    with torch.inference_mode():
        if one_call:
            pr.model.object_features(v, pr.model.encode_vision(v))
            return
        starts = np.cumsum([0] + [int(g.prod()) for g in v.crop_grid])
        for i in range(v.num_regions):
            pr.model.vision_model(pixel_values=v.crop_pixels[starts[i]:starts[i + 1]], grid_thw=v.crop_grid[i:i + 1],
                                  merge_sizes=torch.ones(1, dtype=torch.long, device=pr.device))


def save_rows(path: Path | None, args: Any, rows: list[dict]) -> None:
    """Write a probe's rows with the arguments that produced them (``path=None``: nothing)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))
