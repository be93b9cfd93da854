"""The demo's state and handlers without any UI: load media, add regions by clicks/boxes/scribbles, ask.

:class:`DemoSession` is the per-browser-session state (kept in a ``gr.State``); :class:`DemoController`
holds the pipeline and the segmenter and implements each handler, so tests can call them directly.
Errors the user caused raise :class:`DemoError` (shown in the page by :mod:`pixelrefer.demo.app`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelrefer.demo.defaults import DEMO_DEFAULTS
from pixelrefer.engines.generation import GenerationConfig
from pixelrefer.errors import PixelReferError
from pixelrefer.limits import limits_for, use_limits
from pixelrefer.media import DEFAULT_SAMPLING, Media, load_media
from pixelrefer.processing.prompts import MENU_TASKS, menu_question
from pixelrefer.regions import Region, ResolvedRegion
from pixelrefer.viz import overlay

logger = logging.getLogger(__name__)

MODES = ("point +", "point -", "box (2 clicks)")
TASKS = MENU_TASKS
MAX_SIDE = 1024
DEMO_LIMITS = limits_for("demo")


class DemoError(ValueError):
    """A problem the user can fix (bad file, no region, bad question); shown in the page."""


@dataclass
class RegionDraft:
    """One region being drawn: clicks, a box or a scribble on one frame, and its mask once segmented."""

    frame: int
    points: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    corner: list[float] | None = None
    box: list[float] | None = None
    scribble: np.ndarray | None = None
    resolved: ResolvedRegion | None = None

    @property
    def kind(self) -> str:
        return "box" if self.box is not None else "scribble" if self.scribble is not None else "points"

    def region(self) -> Region | None:
        if self.box is not None:
            return Region.from_box(self.box, frame=self.frame)
        if self.scribble is not None:
            return Region.from_scribble(brush=self.scribble, frame=self.frame)
        if self.points:
            return Region.from_points(self.points, self.labels, frame=self.frame)
        return None


@dataclass
class DemoSession:
    """The loaded :class:`Media` (``None`` before an upload), the frame shown and the regions drawn."""

    media: Media | None = None
    frame: int = 0
    regions: list[RegionDraft] = field(default_factory=list)
    name: str = ""

    @property
    def loaded(self) -> bool:
        return self.media is not None

    @property
    def frames(self) -> list[np.ndarray]:
        return self.media.frames if self.media is not None else []

    @property
    def is_video(self) -> bool:
        return self.media is not None and self.media.is_video

    def finished(self) -> list[RegionDraft]:
        return [r for r in self.regions if r.resolved is not None and r.resolved.masks]


class DemoController:
    """The demo's handlers around one pipeline (:class:`pixelrefer.PixelRefer`) and one segmenter."""

    def __init__(self, pipeline: Any, segmenter: Any) -> None:
        self.pipeline = pipeline
        self.segmenter = segmenter

    # ------------------------------------------------------------------------------------------- media
    def load(self, path: str | Path | None) -> DemoSession:
        """A fresh session on an uploaded image or video (videos sampled by
        :data:`pixelrefer.media.DEFAULT_SAMPLING`), read within the demo's limits
        (:func:`pixelrefer.limits.limits_for`)."""
        if not path:
            raise DemoError("upload an image or a video first")
        path = Path(path)
        try:
            with use_limits(DEMO_LIMITS):
                media = load_media(path, DEFAULT_SAMPLING)
        except PixelReferError as exc:
            raise DemoError(f"cannot read {path.name}: {exc}") from exc
        if not media.is_video and max(media.size) > MAX_SIDE * 4:
            raise DemoError(f"{path.name} is {media.width}x{media.height}; use an image under {MAX_SIDE * 4} px a side")
        return DemoSession(media, name=path.name)

    def view(self, session: DemoSession, frame: int | None = None) -> np.ndarray | None:
        """The current frame with every region that has a mask on it drawn over."""
        if not session.loaded:
            return None
        index = session.frame if frame is None else frame
        masks = [r.resolved.masks.get(index) if r.resolved is not None else None for r in session.regions]
        return overlay(session.frames[index], masks)

    def gallery(self, session: DemoSession) -> list[np.ndarray]:
        """Every video frame with the masks on it (empty for an image)."""
        if not session.is_video:
            return []
        return [self.view(session, i) for i in range(len(session.frames))]

    # ----------------------------------------------------------------------------------------- regions
    def _current(self, session: DemoSession, kind: str) -> RegionDraft:
        current = session.regions[-1] if session.regions else None
        if current is None or current.frame != session.frame or (current.kind != kind and current.region() is not None):
            current = RegionDraft(frame=session.frame)
            session.regions.append(current)
        return current

    def click(self, session: DemoSession, mode: str, x: float, y: float) -> str:
        """Add a click to the region being drawn (a point, or a box corner) and re-segment it."""
        if not session.loaded:
            raise DemoError("upload an image or a video first")
        if mode not in MODES:
            raise DemoError(f"unknown mode {mode!r}")
        if mode.startswith("box"):
            draft = self._current(session, "box")
            if draft.corner is None or draft.box is not None:
                draft.corner, draft.box = [x, y], None
                return f"box: first corner at ({x:.0f}, {y:.0f}); click the opposite corner"
            (x0, y0), draft.corner = draft.corner, None
            draft.box = [min(x0, x), min(y0, y), max(x0, x) + 1, max(y0, y) + 1]
        else:
            draft = self._current(session, "points")
            draft.points.append([x, y])
            draft.labels.append(1 if mode == "point +" else 0)
        return self._segment(session, draft)

    def scribble(self, session: DemoSession, editor_value: Any) -> str:
        """Make a region from the strokes drawn in the scribble editor (any painted pixel)."""
        if not session.loaded:
            raise DemoError("upload an image or a video first")
        brush = brush_mask(editor_value, session.frames[session.frame].shape[:2])
        if brush is None or not brush.any():
            raise DemoError("draw on the object in the scribble editor first")
        draft = RegionDraft(frame=session.frame, scribble=brush)
        session.regions.append(draft)
        return self._segment(session, draft)

    def _segment(self, session: DemoSession, draft: RegionDraft) -> str:
        region = draft.region()
        if region is None:
            return "add a click"
        h, w = session.frames[0].shape[:2]
        try:
            draft.resolved = region.resolve(h, w, len(session.frames), self.segmenter, frames=session.frames,
                                             propagate=session.is_video)
        except PixelReferError as exc:
            draft.resolved = None
            raise DemoError(f"region {session.regions.index(draft)}: {exc}") from exc
        frames = len(draft.resolved.masks)
        where = f" on {frames} frame(s)" if session.is_video else ""
        return f"region {session.regions.index(draft)} ({draft.kind}) segmented{where}"

    def new_region(self, session: DemoSession) -> str:
        if session.regions and session.regions[-1].region() is not None:
            session.regions.append(RegionDraft(frame=session.frame))
        return f"drawing region {len(session.regions) - 1 if session.regions else 0}"

    def undo(self, session: DemoSession) -> str:
        while session.regions and session.regions[-1].region() is None:
            session.regions.pop()
        if session.regions:
            session.regions.pop()
        return f"{len(session.finished())} region(s)"

    def clear(self, session: DemoSession) -> str:
        session.regions.clear()
        return "regions cleared"

    def describe_regions(self, session: DemoSession) -> str:
        done = session.finished()
        if not done:
            return "No regions yet: click on the image (or draw a box / scribble)."
        lines = []
        for i, r in enumerate(done):
            frames = r.resolved.frames if r.resolved is not None else []
            area = int(np.count_nonzero(r.resolved.masks[frames[0]])) if frames else 0
            lines.append(f"- **region {i}** ({r.kind}, frame {r.frame}): {area} px" +
                         (f", on {len(frames)} frames" if session.is_video else ""))
        return "\n".join(lines)

    # ---------------------------------------------------------------------------------------------- ask
    def question_for(self, session: DemoSession, question: str, task: str) -> str:
        """The text sent to the model: the typed question, or the picked task's prompt for the regions."""
        n = len(session.finished())
        if n == 0:
            raise DemoError("add a region first: click on the image")
        try:
            return menu_question(task, question, n, session.is_video)
        except PixelReferError as exc:
            raise DemoError(str(exc)) from exc

    def ask(self, session: DemoSession, question: str, task: str,
            max_new_tokens: int = DEMO_DEFAULTS.max_new_tokens,
            temperature: float = DEMO_DEFAULTS.temperature) -> Iterator[str]:
        """Stream the answer: each yield is the text so far."""
        if not session.loaded:
            raise DemoError("upload an image or a video first")
        text = self.question_for(session, question, task)
        # each region as the user drew it: its mask on the frame it was drawn on; the predictor applies its own
        # rule from there (Lite carries it through a video), exactly as for the CLI, the server and the API
        regions = [Region.from_frames({r.frame: r.resolved.masks[r.frame]}) for r in session.finished()]
        sampling = {"do_sample": True, "temperature": float(temperature)} if temperature > 0 else {}
        generation = GenerationConfig(max_new_tokens=int(max_new_tokens), seed=0, **sampling)
        answer = ""
        try:
            for piece in self.pipeline.stream(session.media, regions, text, generation):
                answer += piece
                yield answer
        except PixelReferError as exc:
            raise DemoError(str(exc)) from exc
        if not answer.strip():
            yield "(the model returned an empty answer)"


def brush_mask(editor_value: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """Painted pixels of a ``gr.ImageEditor`` value (``{"background", "layers", "composite"}``) at ``shape``."""
    if not isinstance(editor_value, dict):
        return None
    layers = [np.asarray(layer) for layer in editor_value.get("layers") or [] if layer is not None]
    if not layers:
        return None
    painted = np.zeros(layers[0].shape[:2], dtype=bool)
    for layer in layers:
        painted |= (layer[..., 3] > 0) if layer.ndim == 3 and layer.shape[2] == 4 else (layer.reshape(*layer.shape[:2], -1).max(-1) > 0)
    if painted.shape != tuple(shape):
        import cv2

        painted = cv2.resize(painted.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return painted
