"""Typed records shared by the harness, the predictors and the benchmark modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelrefer.media import VideoSampling


class BadItem(Exception):
    """One benchmark item cannot be turned into a request (missing media, malformed or empty mask).

    The harness records the message in that item's prediction record and counts the item as wrong;
    it never aborts the run and never drops the item from the denominator.
    """


@dataclass
class EvalRequest:
    """One model query: media, one mask dict per region, and the question with ``<region>`` placeholders.

    ``media`` is an image path, a video file or frame-folder path, or a list of frame image paths (then
    ``timestamps`` gives their times, default one per second). ``video`` (a
    :class:`pixelrefer.media.VideoSampling`, usually :data:`pixelrefer.media.OFFICIAL_EVAL_SAMPLING`) marks a video. ``regions[i]`` maps a *source* frame index (0 for an image)
    to an ``(H, W)`` binary mask; for a video the predictor maps source frames onto the sampled clip.
    """

    id: str
    media: str | list[str]
    question: str
    regions: list[dict[int, np.ndarray]] = field(default_factory=list)
    video: VideoSampling | None = None
    timestamps: tuple[float, ...] | None = None


@dataclass
class EvalItem:
    """One benchmark item: a stable id, its position, the reference fields, and a lazy request builder.

    ``build`` may raise :class:`BadItem`; it runs in the prediction loop so that bad data is reported
    per item. ``reference`` is copied into the prediction record (ground truth, question type, ...).
    """

    id: str
    index: int
    reference: dict[str, Any]
    build: Callable[[], EvalRequest]


def bad_item_builder(message: str) -> Callable[[], EvalRequest]:
    """A builder for an item whose annotation could not even be parsed at load time."""

    def build() -> EvalRequest:
        raise BadItem(message)

    return build
