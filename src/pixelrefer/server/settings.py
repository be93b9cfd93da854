"""Serving limits and defaults (one dataclass, filled from CLI flags by ``pixelrefer serve``)."""

from __future__ import annotations

from dataclasses import dataclass

from pixelrefer.constants import DEFAULT_ANSWER_TOKENS
from pixelrefer.limits import MIB, Limits, limits_for
from pixelrefer.media import DEFAULT_SAMPLING, VideoSampling

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "MALLOC_ARENAS", "MIB", "ServerSettings"]  # MIB: re-exported from pixelrefer.limits for the CLI

# glibc malloc arenas for the server process: with the default (8 per core) the request threads' arenas fragment
# and resident memory crept up ~2-4 MB per round of benchmarks/load_faults.py; capped at 2 it levels off.
MALLOC_ARENAS = 2
DEFAULT_HOST = "127.0.0.1"  # loopback unless the user binds another address (pixelrefer serve and demo)
DEFAULT_PORT = 8000
_SERVER = limits_for("server")  # the defaults of every input limit live in pixelrefer.limits


@dataclass(frozen=True)
class ServerSettings:
    """What the server accepts and how long it waits.

    Model work:
    ``max_queue``: requests waiting for the model beyond the one running; more get HTTP 429.
    ``request_timeout_s``: a request still waiting or running after this gets HTTP 504 and its job is stopped.
    ``max_new_tokens``: default answer length; ``max_new_tokens_limit`` the most a request may ask for.
    ``max_batch``: concurrent non-streaming questions answered together in one ``ask_batch`` call.

    Input (the four limits a ``pixelrefer serve`` flag can change; :attr:`limits` holds them with every other
    input limit of the ``server`` interface, see :mod:`pixelrefer.limits`; over a limit is HTTP 413):
    ``max_upload_bytes``: largest request body (and largest decoded media).
    ``max_video_seconds``: longest video (container duration, checked before decoding).
    ``max_image_pixels``: largest image or video frame (width x height, from the header).
    ``max_regions``: regions per request.
    ``max_video_frames`` / ``video_fps``: how a video is sampled (:attr:`sampling`; defaults from
    :data:`pixelrefer.media.DEFAULT_SAMPLING`; ``video_fps=None`` spreads the frames evenly over the clip).

    Connections (enforced by :mod:`pixelrefer.server.protocol`, so slow clients cannot starve the others):
    ``header_timeout_s``: a connection must send complete request headers this soon after it opens (or after
    its previous response); else it is closed with 408.
    ``body_timeout_s``: the whole request body must arrive this soon after the headers; else 408.
    ``min_body_rate``: bytes per second a body must average once it has taken ``header_timeout_s`` (a client
    trickling its body is dropped then, not at ``body_timeout_s``); else 408.
    ``keep_alive_s``: an idle keep-alive connection is closed after this.
    ``max_connections``: open connections; a new one beyond this evicts the connection that has waited longest
    for its headers, or is refused with 503 when every open connection is in a request.
    ``max_header_bytes``: most bytes of an unfinished request head buffered (h11's ``max_incomplete_event_size``;
    headers still incomplete past this get 400).
    ``max_active_requests``: requests being read or served at once, ``/health`` and ``/v1/models`` not counted;
    more get 503 before their body is read. Default ``4 * (max_queue + 2) + 8``.
    """

    model_name: str = "pixelrefer"
    max_queue: int = 8
    max_upload_bytes: int = _SERVER.max_upload_bytes
    max_video_seconds: float = _SERVER.max_video_seconds
    max_video_frames: int | None = DEFAULT_SAMPLING.max_frames
    video_fps: float | None = DEFAULT_SAMPLING.fps
    request_timeout_s: float = 120.0
    max_new_tokens: int = DEFAULT_ANSWER_TOKENS
    max_new_tokens_limit: int = 1024
    max_regions: int = _SERVER.max_regions
    max_image_pixels: int = _SERVER.max_image_pixels
    max_batch: int = 4
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    min_body_rate: int = 16 * 1024
    keep_alive_s: float = 5.0
    max_connections: int = 256
    max_header_bytes: int = 16 * 1024
    max_active_requests: int | None = None

    @property
    def limits(self) -> Limits:
        """Every input limit of the server: the ``server`` interface's, with this object's four overrides."""
        return limits_for("server", max_upload_bytes=self.max_upload_bytes, max_video_seconds=self.max_video_seconds,
                          max_image_pixels=self.max_image_pixels, max_video_frame_pixels=self.max_image_pixels,
                          max_regions=self.max_regions)

    @property
    def sampling(self) -> VideoSampling:
        """How uploaded videos are sampled: the default with this object's two overrides."""
        return DEFAULT_SAMPLING.replace(fps=self.video_fps, max_frames=self.max_video_frames)

    @property
    def active_request_limit(self) -> int:
        if self.max_active_requests is not None:
            return self.max_active_requests
        return 4 * (self.max_queue + 2) + 8

    @property
    def prepare_limit(self) -> int:
        """Requests whose media are decoded at once (off the event loop); more get 429."""
        return self.max_queue + 2
