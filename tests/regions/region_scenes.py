"""Generated scenes with exact ground-truth masks, for measuring the classical segmenter.

A textured, noisy background (smooth random blobs, a gradient, stripes, pixel noise) with distractor
shapes and one target shape drawn last, so its mask is exact. Sizes are the target's diameter as a
share of the image side: small 0.12-0.18, medium 0.28-0.38, large 0.5-0.65.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SIZES = {"small": (0.12, 0.18), "medium": (0.28, 0.38), "large": (0.5, 0.65)}


@dataclass
class Scene:
    frames: list[np.ndarray]
    masks: list[np.ndarray]


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    low = rng.uniform(40, 215, size=(6, 6, 3)).astype(np.float32)
    base = cv2.resize(low, (side, side), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    stripes = 18.0 * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) / rng.uniform(3, 7))
    return base + stripes[..., None]


def _draw(canvas: np.ndarray, kind: str, centre: np.ndarray, radius: float, angle: float, color) -> None:
    cx, cy = (round(v) for v in centre)
    r = max(2, round(radius))
    if kind == "circle":
        cv2.circle(canvas, (cx, cy), r, color, -1)
    elif kind == "ellipse":
        cv2.ellipse(canvas, (cx, cy), (r, max(2, int(r * 0.6))), np.degrees(angle), 0, 360, color, -1)
    else:
        n = 4 if kind == "rect" else 5
        t = angle + np.arange(n) * 2 * np.pi / n
        pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1).round().astype(np.int32)
        cv2.fillPoly(canvas, [pts], color)


def _color(rng: np.random.Generator, hard: bool = False) -> tuple[float, float, float]:
    if hard:
        return tuple(float(v) for v in rng.uniform(0, 255, 3))
    return tuple(float(v) for v in rng.choice([rng.uniform(0, 60), rng.uniform(190, 255)], 3))


def make_scene(seed: int, size: str = "medium", side: int = 160, num_frames: int = 1,
               noise: float = 8.0, hard: bool = False) -> Scene:
    """A still image (num_frames=1) or a clip where the target moves and turns a little each frame.

    ``hard``: colours drawn uniformly (the target may resemble the background), a shading ramp across
    the target, and twice the pixel noise.
    """
    rng = np.random.default_rng(seed)
    background = _background(rng, side)
    kinds = ["circle", "ellipse", "rect", "pentagon"]
    distractors = [(kinds[rng.integers(4)], rng.uniform(0.1, 0.9, 2) * side, rng.uniform(0.05, 0.12) * side,
                    rng.uniform(0, np.pi), _color(rng)) for _ in range(3)]
    lo, hi = SIZES[size]
    radius = rng.uniform(lo, hi) * side / 2
    kind, color = kinds[rng.integers(4)], _color(rng, hard)
    noise = noise * 2 if hard else noise
    start = rng.uniform(radius + 4, side - radius - 4, 2)
    velocity = rng.uniform(-1, 1, 2) * max(1.5, 0.02 * side)
    angle, spin = rng.uniform(0, np.pi), rng.uniform(-0.08, 0.08)
    frames, masks = [], []
    for t in range(num_frames):
        canvas = background.copy()
        for d in distractors:
            _draw(canvas, d[0], d[1], d[2], d[3], d[4])
        centre = np.clip(start + t * velocity, radius, side - radius)
        mask = np.zeros((side, side), np.uint8)
        _draw(mask, kind, centre, radius, angle + t * spin, 1)
        inside = mask.astype(bool)
        canvas[inside] = color
        if hard:
            ramp = np.linspace(-25, 25, side, dtype=np.float32)[None, :, None]
            canvas[inside] += np.broadcast_to(ramp, canvas.shape)[inside]
        canvas += rng.normal(0, noise, canvas.shape).astype(np.float32)
        frames.append(np.clip(canvas, 0, 255).astype(np.uint8))
        masks.append(mask.astype(bool))
    return Scene(frames, masks)


def inner_point(mask: np.ndarray) -> list[float]:
    """The pixel deepest inside the mask, as [x, y]."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return [float(x), float(y)]


def box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def scribble_of(mask: np.ndarray) -> list[list[float]]:
    """A horizontal stroke through the deepest point, spanning half the object's inner width."""
    x, y = inner_point(mask)
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    half = max(1.0, float(dist[int(y), int(x)]) * 0.5)
    return [[x - half, y], [x + half, y]]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
