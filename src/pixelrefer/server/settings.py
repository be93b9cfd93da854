"""Serving limits and defaults (one dataclass, filled from CLI flags by ``pixelrefer serve``)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """What the server accepts and how long it waits.

    ``max_queue``: requests waiting for the model beyond the one running; more get HTTP 429.
    ``max_upload_bytes``: largest request body (and largest decoded media); more get HTTP 413.
    ``max_video_seconds`` / ``max_video_frames`` / ``video_fps``: video duration limit and sampling.
    ``request_timeout_s``: a request still waiting or running after this gets HTTP 504.
    ``max_image_pixels``: largest image or video frame (width x height).
    ``max_new_tokens``: default answer length; ``max_new_tokens_limit`` the most a request may ask for.
    ``max_batch``: concurrent non-streaming questions answered together in one ``ask_batch`` call.
    """

    model_name: str = "pixelrefer"
    max_queue: int = 8
    max_upload_bytes: int = 32 * MIB
    max_video_seconds: float = 60.0
    max_video_frames: int = 16
    video_fps: float = 1.0
    request_timeout_s: float = 120.0
    max_new_tokens: int = 128
    max_new_tokens_limit: int = 1024
    max_regions: int = 16
    max_image_pixels: int = 4096 * 4096
    max_batch: int = 4
