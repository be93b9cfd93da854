"""Seeded short videos: objects move, enter, leave and change colour over a static textured background.

Every frame is painted from the same primitives as still scenes, so masks are exact on every frame.
Each object carries its motion facts (direction, appearance, disappearance, colour change) as ground
truth for the temporal questions in :mod:`pixelrefer.synth.tasks`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from pixelrefer.media import Media
from pixelrefer.synth import world
from pixelrefer.synth.scenes import (
    MAX_PLACEMENT_TRIES,
    Box,
    ObjectSpec,
    Point,
    background,
    finish,
    fits,
    mask_box,
    paint,
    rasterize,
    sample_spec,
    visible_masks,
)

DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
MOTIONS: tuple[str, ...] = ("static",) + tuple(DIRECTIONS)
EVENTS: tuple[str, ...] = ("none", "none", "none", "enters", "leaves")
TRAVEL = (0.22, 0.4)  # total displacement over the video, as a fraction of the short side
COLOUR_CHANGE_PROB = 0.2
VIDEO_SIZES = ("tiny", "small", "medium", "medium", "large")


@dataclass
class Track:
    """One object over the frames of a video; `None` entries are frames where it is absent."""

    index: int
    spec: ObjectSpec
    motion: str
    centers: list[Point | None]
    colours: list[str | None]
    masks: list[np.ndarray | None]

    @property
    def present(self) -> list[int]:
        return [t for t, c in enumerate(self.centers) if c is not None]

    @property
    def first_frame(self) -> int:
        return self.present[0]

    @property
    def last_frame(self) -> int:
        return self.present[-1]

    @property
    def num_frames(self) -> int:
        return len(self.centers)

    @property
    def appears_late(self) -> bool:
        return self.first_frame > 0

    @property
    def leaves_early(self) -> bool:
        return self.last_frame < self.num_frames - 1

    @property
    def colour_change(self) -> tuple[str, str, int] | None:
        """(from, to, first frame with the new colour) or None."""
        seen = [(t, c) for t, c in enumerate(self.colours) if c is not None]
        for (_, a), (t, b) in itertools.pairwise(seen):
            if a != b:
                return (a, b, t)
        return None

    @property
    def category(self) -> str:
        return self.spec.category

    @property
    def colour(self) -> str:
        """The colour on the first frame where the object is visible."""
        colour = self.colours[self.first_frame]
        assert colour is not None
        return colour

    def box(self, frame: int) -> Box:
        mask = self.masks[frame]
        return mask_box(mask) if mask is not None else (0, 0, 0, 0)

    def facts(self) -> dict[str, object]:
        change = self.colour_change
        return {
            "index": self.index,
            "category": self.category,
            "colour": self.colour,
            "size": self.spec.size,
            "pattern": self.spec.pattern,
            "motion": self.motion,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "colour_change": list(change) if change else None,
            "held_out": self.spec.held_out,
            "boxes": {str(t): list(self.box(t)) for t in self.present},
        }


@dataclass
class Video:
    frames: list[np.ndarray]  # uint8 (H, W, 3) each
    tracks: list[Track]
    timestamps: list[float]

    @property
    def height(self) -> int:
        return int(self.frames[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.frames[0].shape[1])

    def media(self) -> Media:
        """The frames as the media container every layer takes (every frame kept: sampled frame t is frame t)."""
        span = self.timestamps[-1] - self.timestamps[0] if len(self.timestamps) > 1 else 0.0
        fps = (len(self.timestamps) - 1) / span if span > 0 else 0.0
        return Media(self.frames, self.timestamps, fps=fps, source_num_frames=len(self.frames))


def _path(rng: np.random.Generator, spec: ObjectSpec, motion: str, hw: tuple[int, int], n: int) -> list[Point]:
    r = spec.extent / 2 + 1
    dx, dy = DIRECTIONS.get(motion, (0, 0))
    travel = float(rng.uniform(*TRAVEL)) * min(hw) if motion != "static" else 0.0
    lo_x, hi_x = r + max(0.0, -dx * travel), hw[1] - r - max(0.0, dx * travel)
    lo_y, hi_y = r + max(0.0, -dy * travel), hw[0] - r - max(0.0, dy * travel)
    x0, y0 = float(rng.uniform(lo_x, max(lo_x, hi_x))), float(rng.uniform(lo_y, max(lo_y, hi_y)))
    step = travel / max(n - 1, 1)
    return [(x0 + dx * step * t, y0 + dy * step * t) for t in range(n)]


def _colours(rng: np.random.Generator, spec: ObjectSpec, n: int, allow_held_out: bool) -> list[str]:
    if spec.held_out or rng.random() >= COLOUR_CHANGE_PROB:
        return [spec.colour] * n
    options = [c for c in world.COLOURS if c != spec.colour
               and (allow_held_out or not world.is_held_out(spec.category, c))]
    new = options[int(rng.integers(len(options)))]
    at = int(rng.integers(1, n))
    return [spec.colour] * at + [new] * (n - at)


def _presence(rng: np.random.Generator, n: int) -> list[bool]:
    event = EVENTS[int(rng.integers(len(EVENTS)))]
    if event == "none" or n < 3:
        return [True] * n
    k = int(rng.integers(1, n - 1))
    return [t >= k for t in range(n)] if event == "enters" else [t <= k for t in range(n)]


def _valid(tracks: list[tuple[ObjectSpec, list[Point | None]]], hw: tuple[int, int], n: int) -> bool:
    for t in range(n):
        if not fits([rasterize(spec, path[t], hw) for spec, path in tracks if path[t] is not None]):
            return False
    return True


def render_video(
    rng: np.random.Generator,
    size: tuple[int, int] = (224, 224),
    n_frames: tuple[int, int] = (4, 8),
    n_objects: tuple[int, int] = (2, 4),
    held_out: str = "exclude",
    fps: float = 1.0,
) -> Video:
    """Render one video; `held_out` has the same meaning as in :func:`render_scene`."""
    if held_out not in ("exclude", "require"):
        raise ValueError(f"held_out must be 'exclude' or 'require', got {held_out!r}")
    hw = (int(size[0]), int(size[1]))
    n = int(rng.integers(n_frames[0], n_frames[1] + 1))
    count = int(rng.integers(n_objects[0], n_objects[1] + 1))
    accepted: list[tuple[ObjectSpec, list[Point | None]]] = []
    extra: list[tuple[str, list[str]]] = []
    for i in range(count):
        want = True if held_out == "require" and i == 0 else (False if held_out == "exclude" else None)
        for _ in range(MAX_PLACEMENT_TRIES):
            size_word = VIDEO_SIZES[int(rng.integers(len(VIDEO_SIZES)))]
            spec = sample_spec(rng, min(hw), want, size=size_word)
            motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
            path = _path(rng, spec, motion, hw, n)
            alive = _presence(rng, n)
            colours = _colours(rng, spec, n, allow_held_out=held_out == "require")
            candidate = (spec, [p if a else None for p, a in zip(path, alive)])
            if _valid(accepted + [candidate], hw, n):
                accepted.append(candidate)
                extra.append((motion, colours))
                break
    order = sorted(range(len(accepted)), key=lambda k: -accepted[k][0].extent)
    accepted = [accepted[k] for k in order]
    extra = [extra[k] for k in order]
    return _paint_video(rng, accepted, extra, hw, n, fps)


def _paint_video(rng: np.random.Generator, accepted: list[tuple[ObjectSpec, list[Point | None]]],
                 extra: list[tuple[str, list[str]]], hw: tuple[int, int], n: int, fps: float) -> Video:
    bg = background(rng, hw)
    tracks = [Track(index=k, spec=spec, motion=motion,
                    centers=list(path), colours=[c if p is not None else None for c, p in zip(colours, path)],
                    masks=[None] * n)
              for k, ((spec, path), (motion, colours)) in enumerate(zip(accepted, extra))]
    frames = []
    for t in range(n):
        canvas = bg.copy()
        alive = [tr for tr in tracks if tr.centers[t] is not None]
        full = [rasterize(tr.spec, tr.centers[t], hw) for tr in alive]  # type: ignore[arg-type]
        for tr, layers in zip(alive, full):
            paint(canvas, tr.spec, tr.centers[t], layers, tr.colours[t])  # type: ignore[arg-type]
        for tr, (vis, _) in zip(alive, visible_masks(full)):
            tr.masks[t] = vis
        frames.append(finish(canvas))
    timestamps = [round(t / fps, 1) for t in range(n)]
    return Video(frames=frames, tracks=tracks, timestamps=timestamps)
