"""What the endpoints ask of the model, run on the model thread: answer, stream, segment.

Questions go to the predictor (:class:`pixelrefer.PixelRefer`) with the regions as given; it resolves them once
and returns the masks it used with every answer (streams too), which the responses report. Every job carries a
cancel event (set when its request stops waiting): generation checks it at each decoding step, segmentation
between regions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelrefer.engines.generation import GenerationConfig
from pixelrefer.inference.api import Answer, AskRequest
from pixelrefer.media import Media
from pixelrefer.regions import Region, ResolvedRegion, encode_rle
from pixelrefer.server.errors import ApiError
from pixelrefer.server.schemas import AnswerOut, RegionOut
from pixelrefer.server.settings import ServerSettings

logger = logging.getLogger(__name__)


@dataclass
class Question:
    """One question about regions of decoded media (what a batched job carries); ``cancel`` stops it."""

    media: Media
    regions: list[Region]
    text: str
    generation: GenerationConfig
    cancel: threading.Event = field(default_factory=threading.Event)


class Cancelled(RuntimeError):
    """The job's request went away before a step that cannot be interrupted; nobody reads the result."""


def generation_config(settings: ServerSettings, max_new_tokens: int | None, temperature: float | None = None,
                      top_p: float | None = None, seed: int | None = None) -> GenerationConfig:
    n = max_new_tokens or settings.max_new_tokens
    if n > settings.max_new_tokens_limit:
        raise ApiError(400, "invalid_request", f"max tokens {n} exceeds this server's limit {settings.max_new_tokens_limit}")
    given = {name: value for name, value in (("temperature", temperature), ("top_p", top_p)) if value}
    return GenerationConfig(max_new_tokens=n, do_sample=bool(temperature), seed=seed, **given)  # else its defaults


class ModelService:
    """The pipeline plus the segmenter, used only from the model thread."""

    def __init__(self, pipeline: Any, segmenter: Any = None) -> None:
        self.pipeline = pipeline
        self.segmenter = segmenter if segmenter is not None else _pipeline_segmenter(pipeline)

    def segment(self, media: Media, regions: Sequence[Region], propagate: bool = False,
                cancel: threading.Event | None = None) -> list[ResolvedRegion]:
        """Masks of prompts with this service's segmenter (``propagate``: to every video frame)."""
        h, w = media.size
        frames = media.frames
        out = []
        for region in regions:
            if cancel is not None and cancel.is_set():
                raise Cancelled("the request went away")
            out.append(region.resolve(h, w, media.num_frames, self.segmenter, frames=frames, propagate=propagate))
        return out

    def ask_batch(self, questions: list[Question]) -> list[Answer]:
        requests = [AskRequest(q.media, q.regions, q.text, q.cancel) for q in questions]
        return self.pipeline.ask_batch(requests, questions[0].generation)

    def describe(self, media: Media, regions: list[Region], task: str, generation: GenerationConfig,
                 cancel: threading.Event | None = None) -> list[Answer]:
        return self.pipeline.describe_each(media, regions, task=task, generation=generation, cancel=cancel)

    def stream(self, question: Question, emit: Callable[[str], None], ready: Callable[[], None]) -> list[ResolvedRegion]:
        """Resolve and encode (input errors raise here), call ``ready()``, then emit answer pieces as they come;
        returns the masks the answer used. ``question.cancel`` ends generation at the next decoding step."""
        pieces = self.pipeline.stream(question.media, question.regions, question.text, question.generation,
                                      cancel=question.cancel)
        ready()
        try:
            for piece in pieces:
                if piece:
                    emit(piece)
        finally:
            pieces.close()
        return pieces.regions


def _pipeline_segmenter(pipeline: Any) -> Any:
    segmenter = getattr(pipeline, "segmenter", None)
    if segmenter is None:
        from pixelrefer.segment import get_segmenter

        segmenter = get_segmenter("classical")
    return segmenter


def region_out(index: int, region: Region | None, resolved: ResolvedRegion,
               source_frames: Sequence[int] | None = None) -> RegionOut:
    """A resolved region for a response; on a video ``source_frames`` (the source frame of each sampled frame)
    adds the source frame of each of its sampled frames."""
    masks, area, bbox = {}, {}, {}
    for frame, mask in sorted(resolved.masks.items()):
        key = str(frame)
        masks[key] = encode_rle(np.asarray(mask, dtype=bool))
        area[key] = int(np.count_nonzero(mask))
        ys, xs = np.nonzero(mask)
        bbox[key] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else [0, 0, 0, 0]
    kind = region.kind if region is not None else resolved.source
    frames = sorted(resolved.masks)
    return RegionOut(index=index, kind=kind, frames=frames, masks=masks, area=area, bbox=bbox,
                     segmenter=resolved.segmenter,
                     source_frames=None if source_frames is None else [source_frames[f] for f in frames])


def answer_out(answer: Answer, regions: Sequence[Region | None]) -> AnswerOut:
    resolved = list(answer.regions)
    outs = [region_out(i, regions[i] if i < len(regions) else None, r, answer.source_frames)
            for i, r in enumerate(resolved)]
    return AnswerOut(text=answer.text, completion_tokens=len(answer.token_ids), prompt_tokens=answer.prompt_tokens,
                     regions=outs)
