"""A request's media and regions, read on a worker thread (never on the event loop), within the limits.

:func:`prepare` is the one place a request's media bytes (base64 text, data URL, or an upload) and region JSON
become a :class:`Media` and :class:`Region` objects; it runs through
:class:`pixelrefer.server.runtime.PrepareSlots`, so a slow decode delays only its own request.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pixelrefer.errors import LimitError
from pixelrefer.inference.resolve import on_sampled_frames
from pixelrefer.limits import check_region_count
from pixelrefer.media import Media, MediaError
from pixelrefer.regions import Region, RegionError
from pixelrefer.server.errors import ApiError
from pixelrefer.server.media_io import decode_base64, decode_media
from pixelrefer.server.settings import ServerSettings


@dataclass
class Prepared:
    media: Media
    regions: list[Region]


def prepare(settings: ServerSettings, data: bytes | str, raw_regions: Sequence[Any], masks: Sequence[bytes] = (),
            what: str = "media") -> Prepared:
    """Parse the regions (``masks``: uploaded mask images, one region each, after ``raw_regions``), then decode
    ``data`` (bytes, or base64 / a data URL as text): a bad region is refused before the media are decoded.
    Counts and declared sizes are checked before decoding, with the limits in force
    (:func:`pixelrefer.limits.use_limits`, set per request by the app). With no region, an RGBA image's own
    alpha is the region. On a video, each region's ``"frame"`` keys are SOURCE frame indices (as the CLI's
    ``--frame``), moved here to the nearest sampled frame (:func:`pixelrefer.inference.resolve.on_sampled_frames`,
    the one mapping, :func:`pixelrefer.media.map_frames`); the responses report both."""
    raw = list(raw_regions) + [{"type": "mask_png", "data": base64.b64encode(m).decode()} for m in masks]
    check_region_count(len(raw))
    regions = parse_regions(raw)
    media = decode_media(decode_base64(data, settings, what) if isinstance(data, str) else data, settings)
    if media.is_video and regions:
        try:
            regions, _ = on_sampled_frames(regions, media)
        except MediaError as exc:  # a frame outside the video: the region is wrong, not the media
            raise ApiError(422, "invalid_region", str(exc)) from exc
    if not regions and media.alpha is not None:
        regions.append(Region.from_mask(media.alpha))
    return Prepared(media, regions)


def parse_regions(raw: Sequence[Any]) -> list[Region]:
    """Regions from their JSON form."""
    regions = []
    for index, item in enumerate(raw):
        try:
            regions.append(Region.from_dict(item))
        except LimitError:
            raise
        except (RegionError, TypeError, ValueError) as exc:
            raise ApiError(422, "invalid_region", f"region {index}: {exc}") from exc
    return regions
