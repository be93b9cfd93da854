"""What the endpoints ask of the model, run on the model thread: resolve regions, answer, stream, segment."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelrefer.inference.api import Answer, AskRequest
from pixelrefer.inference.generation import GenerationConfig
from pixelrefer.media import MediaError, VideoClip
from pixelrefer.processing.processor import as_media
from pixelrefer.processing.prompts import PromptError
from pixelrefer.regions import Region, RegionError, ResolvedRegion, encode_rle
from pixelrefer.server.errors import ApiError
from pixelrefer.server.media_io import DecodedMedia
from pixelrefer.server.schemas import AnswerOut, RegionOut
from pixelrefer.server.settings import ServerSettings

logger = logging.getLogger(__name__)


@dataclass
class Question:
    """One question about regions of decoded media (what a batched job carries)."""

    media: DecodedMedia
    regions: list[Region]
    text: str
    generation: GenerationConfig


def as_api_error(exc: BaseException) -> ApiError | None:
    """The 4xx an input error deserves, or ``None`` for a server fault."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RegionError):
        return ApiError(422, "invalid_region", str(exc))
    if isinstance(exc, PromptError):
        return ApiError(400, "invalid_prompt", str(exc))
    if isinstance(exc, MediaError):
        return ApiError(400, "invalid_media", str(exc))
    return None


def parse_regions(raw: Sequence[Any], media: DecodedMedia, settings: ServerSettings) -> list[Region]:
    """Regions from their JSON form; an RGBA image's own alpha is the region when none is given."""
    if len(raw) > settings.max_regions:
        raise ApiError(422, "invalid_region", f"{len(raw)} regions; at most {settings.max_regions} are accepted")
    regions = []
    for index, item in enumerate(raw):
        try:
            regions.append(Region.from_dict(item))
        except (RegionError, TypeError, ValueError) as exc:
            raise ApiError(422, "invalid_region", f"region {index}: {exc}") from exc
    if not regions and media.alpha is not None:
        regions.append(Region.from_mask(media.alpha))
    return regions


def generation_config(settings: ServerSettings, max_new_tokens: int | None, temperature: float | None = None,
                      top_p: float | None = None, seed: int | None = None) -> GenerationConfig:
    n = max_new_tokens or settings.max_new_tokens
    if n > settings.max_new_tokens_limit:
        raise ApiError(400, "invalid_request", f"max tokens {n} exceeds this server's limit {settings.max_new_tokens_limit}")
    sample = bool(temperature)
    return GenerationConfig(max_new_tokens=n, do_sample=sample, temperature=temperature or 0.2,
                            top_p=top_p or 0.9, seed=seed)


class ModelService:
    """The pipeline plus the segmenter, used only from the model thread."""

    def __init__(self, pipeline: Any, segmenter: Any = None) -> None:
        self.pipeline = pipeline
        self.segmenter = segmenter if segmenter is not None else _pipeline_segmenter(pipeline)

    def segment(self, media: DecodedMedia, regions: Sequence[Region], propagate: bool = False) -> list[ResolvedRegion]:
        """Masks of prompts with this service's segmenter (``propagate``: to every video frame)."""
        h, w = media.size
        frames = media.media.frames if isinstance(media.media, VideoClip) else media.media
        return [r.resolve(h, w, media.num_frames, self.segmenter, frames=frames, propagate=propagate) for r in regions]

    def resolve(self, media: DecodedMedia, regions: Sequence[Region]) -> list[ResolvedRegion]:
        """Masks of regions by the pipeline's own rule (its segmenter; Lite video regions propagated)."""
        return self.pipeline.processor.resolve_regions(as_media(media.media), regions)

    def ask_batch(self, questions: list[Question]) -> list[Answer]:
        resolved = [self.resolve(q.media, q.regions) for q in questions]
        requests = [AskRequest(q.media.media, r, q.text) for q, r in zip(questions, resolved)]
        return self.pipeline.ask_batch(requests, questions[0].generation)

    def describe(self, media: DecodedMedia, regions: list[Region], task: str, generation: GenerationConfig) -> list[Answer]:
        return self.pipeline.describe_each(media.media, self.resolve(media, regions), task=task, generation=generation)

    def stream(self, question: Question, emit: Callable[[str], None], stop: Callable[[], bool]) -> list[ResolvedRegion]:
        """Emit answer pieces as they come; ``stop()`` true ends early (client gone or timed out)."""
        resolved = self.resolve(question.media, question.regions)
        pieces = self.pipeline.stream(question.media.media, resolved, question.text, question.generation)
        try:
            for piece in pieces:
                if stop():
                    break
                if piece:
                    emit(piece)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        return resolved


def _pipeline_segmenter(pipeline: Any) -> Any:
    processor = getattr(pipeline, "processor", None)
    segmenter = getattr(processor, "segmenter", None) or getattr(pipeline, "segmenter", None)
    if segmenter is None:
        from pixelrefer.segment import get_segmenter

        segmenter = get_segmenter("classical")
    return segmenter


def region_out(index: int, region: Region | None, resolved: ResolvedRegion) -> RegionOut:
    masks, area, bbox = {}, {}, {}
    for frame, mask in sorted(resolved.masks.items()):
        key = str(frame)
        masks[key] = encode_rle(np.asarray(mask, dtype=bool))
        area[key] = int(np.count_nonzero(mask))
        ys, xs = np.nonzero(mask)
        bbox[key] = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if len(xs) else [0, 0, 0, 0]
    kind = region.kind if region is not None else resolved.source
    return RegionOut(index=index, kind=kind, frames=sorted(resolved.masks), masks=masks, area=area, bbox=bbox,
                     segmenter=resolved.segmenter)


def answer_out(answer: Answer, regions: Sequence[Region | None]) -> AnswerOut:
    resolved = list(answer.regions)
    outs = [region_out(i, regions[i] if i < len(regions) else None, r) for i, r in enumerate(resolved)]
    return AnswerOut(text=answer.text, completion_tokens=len(answer.token_ids), prompt_tokens=answer.prompt_tokens,
                     regions=outs)
