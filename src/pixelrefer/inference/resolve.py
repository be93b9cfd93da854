"""A request's media and regions, resolved once: the predictor's first step, beside the processor.

:func:`prepare` loads the media (:func:`pixelrefer.media.load_media`: a :class:`~pixelrefer.media.Media` is kept as
it is) and turns every region into
masks (:func:`resolve_regions`: segmenting clicks, boxes and scribbles, and on video propagating where the model
variant needs it). The result, :class:`Prepared`, is what the processor encodes and what every answer reports back
(masks per region and frame; on video, the source frame index of each sampled frame).

:func:`on_sampled_frames` re-keys regions drawn on SOURCE frames of a video onto the sampled frames they map to
(the nearest one, :func:`pixelrefer.media.map_frames`); the CLI and the evaluation harness use it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pixelrefer.media import Media, VideoSampling, load_media, map_frames
from pixelrefer.regions import Region, ResolvedRegion, as_region

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What a request used: the media as encoded and each region's masks per (sampled) frame."""

    media: Media
    regions: list[ResolvedRegion]

    @property
    def source_frames(self) -> list[int] | None:
        """Video: the source frame index of each sampled frame (position ``i`` -> source frame); ``None`` for an image."""
        return list(self.media.frame_indices) if self.media.is_video and self.media.frame_indices is not None else None


def propagates(config: Any, media: Media) -> bool:
    """Whether a region given on one frame is carried to every sampled frame: PixelRefer-Lite on video reads an
    object on all its frames; PixelRefer reads each region on its first annotated frame."""
    return bool(config.is_lite) and media.is_video and len(media.frames) > 1


def resolve_regions(media: Media, regions: Sequence[Any], config: Any, segmenter: Any = None) -> list[ResolvedRegion]:
    """Masks per frame for every region (``segmenter``: for clicks/boxes/scribbles and propagation; default the
    classical one). A Lite video region given on one frame is propagated to every sampled frame; one given on
    several frames keeps exactly those, as in the official code. Resolved regions are kept as they are."""
    h, w = media.size
    propagate = propagates(config, media)
    out: list[ResolvedRegion] = []
    for r in regions:
        if isinstance(r, ResolvedRegion):
            out.append(r)
            continue
        prompt = as_region(r)
        region = prompt.resolve(h, w, num_frames=len(media.frames), segmenter=segmenter, frames=media.frames,
                                propagate=propagate and len(prompt.data) == 1)
        for warning in region.warnings:
            logger.warning("region %d: %s", len(out), warning)
        out.append(region)
    return out


def prepare(media: Any, regions: Sequence[Any], config: Any, segmenter: Any = None,
            sampling: VideoSampling | None = None) -> Prepared:
    """Load ``media`` once (a video file by ``sampling``, default :data:`pixelrefer.media.DEFAULT_SAMPLING`) and
    resolve ``regions`` on it (see :func:`resolve_regions`)."""
    media_obj = load_media(media, sampling)
    return Prepared(media_obj, resolve_regions(media_obj, regions, config, segmenter))


def on_sampled_frames(regions: Sequence[Region], clip: Media) -> tuple[list[Region], dict[int, int]]:
    """Regions whose prompts are keyed by SOURCE frame index, re-keyed to positions in ``clip`` (the nearest
    sampled frame); also returns the map source frame -> sampled position. Two prompts of one region landing on
    the same sampled frame keep the first."""
    annotated = sorted({f for region in regions for f in region.data})
    mapping = map_frames(annotated, clip) if annotated else {}
    for source, position in mapping.items():
        if clip.frame_indices[position] != source:
            logger.info("frame %d is not sampled; its prompt goes on the nearest sampled frame %d (position %d)",
                        source, clip.frame_indices[position], position)
    out = []
    for region in regions:
        data: dict[int, Any] = {}
        for frame, prompt in sorted(region.data.items()):
            data.setdefault(mapping[frame], prompt)
        out.append(Region.from_prompts(data))
    return out, mapping

