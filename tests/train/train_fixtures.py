"""A tiny on-disk dataset in the official format, drawn with numpy (shared by the conftest and the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

SIZE = 64
QUESTION = "What is the category of <region>? Using only one word or phrase."
N_IMAGES = 14


def rle(mask: np.ndarray) -> dict:
    enc = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(enc["size"][0]), int(enc["size"][1])], "counts": enc["counts"].decode("ascii")}


def shape_mask(kind: str, cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    if kind == "circle":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return (abs(yy - cy) <= r) & (abs(xx - cx) <= r)


def image_sample(root: Path, i: int, rng: np.random.Generator) -> dict:
    kind = ("circle", "square")[i % 2]
    cy, cx = (int(v) for v in rng.integers(20, 44, 2))
    r = int(rng.integers(6, 14))
    image = np.full((SIZE, SIZE, 3), 40, np.uint8) + rng.integers(0, 20, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = shape_mask(kind, cy, cx, r)
    image[mask] = rng.integers(120, 255, 3)
    rel = f"images/{i:03d}.png"
    (root / "images").mkdir(exist_ok=True)
    Image.fromarray(image).save(root / rel)
    return {"id": f"img-{i}", "image": rel,
            "conversations": [{"from": "human", "value": f"<image>\n{QUESTION}"}, {"from": "gpt", "value": kind}],
            "masks": [rle(mask)], "height": SIZE, "width": SIZE, "meta": {"task": "category", "media": "image"}}


def video_sample(root: Path, i: int) -> dict:
    frames, masks = [], {}
    for t in range(3):
        image = np.full((SIZE, SIZE, 3), 30, np.uint8)
        mask = shape_mask("square", 20 + 8 * t, 30, 8)
        image[mask] = (200, 60, 60)
        rel = f"videos/{i:03d}/{t}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / rel)
        frames.append(rel)
        masks[str(t)] = rle(mask)
    return {"id": f"vid-{i}", "video": frames, "timestamps": [0.0, 1.0, 2.0],
            "conversations": [{"from": "human", "value": "<video>\nIn which direction does <region> move?"},
                              {"from": "gpt", "value": "down"}],
            "masks": [{"0": masks["0"]}], "height": SIZE, "width": SIZE, "meta": {"task": "motion", "media": "video"}}
