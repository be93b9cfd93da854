"""Every size limit on user input, in one place, checked before the heavy work it protects.

:class:`Limits` holds one value per limit kind; :data:`DEFAULT_LIMITS` is what the Python API and the CLI use,
:func:`limits_for` gives each interface its defaults (the HTTP server and the demo are stricter), and
:func:`use_limits` makes a set of limits the active one for the code it wraps (a request, a training run), so
checks deep in the region codecs or the video reader see the interface's values without threading an argument
through every call. Each ``check_*`` function raises :class:`~pixelrefer.errors.LimitError` (a well-formed input
that is too large) or another :class:`~pixelrefer.errors.PixelReferError` (a malformed one) whose message names
the limit and the value, and returns quickly: sizes are read from headers and container metadata, text is
bounded by characters before any tokeniser sees it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from typing import Any

from pixelrefer.errors import ConfigError, LimitError, PromptError

MIB = 1024 * 1024
_OPTIONAL = frozenset({"max_prompt_tokens"})  # None: the model's own maximum


@dataclass(frozen=True)
class Limits:
    """Upper bounds on user input (all inclusive; a value is accepted when it is <= its limit).

    Text: ``max_question_chars`` (checked first, without tokenising), ``max_question_tokens``,
    ``max_prompt_tokens`` (the whole prompt after placeholder expansion; ``None``: the model's own maximum,
    ``max_position_embeddings`` less room for the answer, see :func:`check_prompt_tokens`).
    Regions: ``max_regions`` per request, ``max_mask_pixels`` for the declared ``h x w`` of an RLE, mask or
    polygon size, ``max_polygon_points`` over all polygons of a region, ``max_scribble_width`` in pixels.
    Media: ``max_image_pixels`` (width x height, read from the header before decoding, so a decompression bomb
    is refused unread), ``max_video_frame_pixels``, ``max_video_frames`` (frames in the source container),
    ``max_video_sampled_pixels`` (sampled frames x frame pixels: the memory the decoded clip takes),
    ``max_video_seconds`` (container duration). Bytes: ``max_upload_bytes`` for uploaded media or masks.
    """

    max_question_chars: int = 16_384
    max_question_tokens: int = 4_096
    max_prompt_tokens: int | None = None
    max_regions: int = 64
    max_mask_pixels: int = 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS: about 0.25 GB of RGB
    max_polygon_points: int = 100_000
    max_scribble_width: float = 1_024.0
    max_image_pixels: int = 89_478_485
    max_video_frame_pixels: int = 4096 * 4096
    max_video_frames: int = 1_000_000
    max_video_sampled_pixels: int = 1_000_000_000  # about 3 GB of decoded RGB frames
    max_video_seconds: float = 6 * 3600.0
    max_upload_bytes: int = 256 * MIB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in _OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"limit {f.name} must be a positive number, got {value!r}")

    def replace(self, **changes: Any) -> Limits:
        """A copy with some limits changed (unknown names are an error)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown limit(s) {sorted(unknown)}; known: {sorted(f.name for f in fields(self))}")
        return replace(self, **changes)


DEFAULT_LIMITS = Limits()

# Stricter defaults for interfaces that take input from other people over a network.
_INTERFACE_LIMITS: dict[str, Limits] = {
    "api": DEFAULT_LIMITS,
    "cli": DEFAULT_LIMITS,
    "train": DEFAULT_LIMITS,
    "server": Limits(
        max_question_chars=8_192, max_question_tokens=2_048, max_regions=16, max_mask_pixels=4096 * 4096,
        max_polygon_points=20_000, max_image_pixels=4096 * 4096, max_video_frame_pixels=4096 * 4096,
        max_video_frames=100_000, max_video_sampled_pixels=16 * 4096 * 4096, max_video_seconds=60.0,
        max_upload_bytes=32 * MIB,
    ),
    "demo": Limits(
        max_question_chars=8_192, max_question_tokens=2_048, max_regions=16, max_mask_pixels=4096 * 4096,
        max_image_pixels=4096 * 4096, max_video_seconds=300.0, max_video_frames=100_000,
        max_video_sampled_pixels=64 * 4096 * 4096, max_upload_bytes=256 * MIB,
    ),
}

INTERFACES = tuple(_INTERFACE_LIMITS)


def limits_for(interface: str, **overrides: Any) -> Limits:
    """The default limits of ``interface`` (``api``, ``cli``, ``server``, ``demo``, ``train``), with overrides."""
    if interface not in _INTERFACE_LIMITS:
        raise ConfigError(f"unknown interface {interface!r}; expected one of {list(INTERFACES)}")
    return _INTERFACE_LIMITS[interface].replace(**overrides) if overrides else _INTERFACE_LIMITS[interface]


_ACTIVE: ContextVar[Limits] = ContextVar("pixelrefer_limits", default=DEFAULT_LIMITS)


def active_limits() -> Limits:
    """The limits in force here: those of the innermost :func:`use_limits`, else :data:`DEFAULT_LIMITS`."""
    return _ACTIVE.get()


@contextlib.contextmanager
def use_limits(limits: Limits) -> Iterator[Limits]:
    """Make ``limits`` the active limits for the wrapped code (this thread / asyncio task and what it awaits)."""
    if not isinstance(limits, Limits):
        raise TypeError(f"use_limits needs a Limits, got {type(limits).__name__}")
    token = _ACTIVE.set(limits)
    try:
        yield limits
    finally:
        _ACTIVE.reset(token)


def _resolve(limits: Limits | None) -> Limits:
    return active_limits() if limits is None else limits


def _too_large(what: str, value: float, limit_name: str, limit: float, unit: str = "") -> LimitError:
    unit = f" {unit}" if unit else ""
    return LimitError(f"{what} is {value:,}{unit}; the limit {limit_name} is {limit:,}{unit}")


# ------------------------------------------------------------------------------------------------------- text
def as_text(value: Any, what: str = "the question") -> str:
    """``value`` as a ``str``: bytes must be valid UTF-8; lone surrogates (from JSON ``\\ud800``) are refused."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PromptError(f"{what} is not valid UTF-8 (byte {exc.start}: {exc.reason})") from exc
    if not isinstance(value, str):
        raise PromptError(f"{what} must be text, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromptError(f"{what} holds an invalid character at position {exc.start} ({exc.reason})") from exc
    return value


def check_question(text: Any, tokenizer: Any = None, limits: Limits | None = None, what: str = "the question") -> str:
    """Validate a user's question (or any user text turn) and return it as ``str``.

    The character bound is checked first, so a 100 KB string is refused in microseconds without tokenising it;
    the token bound only tokenises text already within ``max_question_chars``, and skips the tokeniser when the
    UTF-8 length alone proves the bound (byte-level BPE never makes more tokens than bytes).
    """
    lim = _resolve(limits)
    if isinstance(text, str | bytes) and len(text) > 4 * lim.max_question_chars:  # too long even as UTF-8 bytes
        raise _too_large(f"{what} length", len(text), "max_question_chars", lim.max_question_chars,
                         "characters" if isinstance(text, str) else "bytes")
    text = as_text(text, what)
    if len(text) > lim.max_question_chars:
        raise _too_large(f"{what} length", len(text), "max_question_chars", lim.max_question_chars, "characters")
    if tokenizer is not None and len(text.encode("utf-8")) > lim.max_question_tokens:
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if n > lim.max_question_tokens:
            raise _too_large(f"{what} length", n, "max_question_tokens", lim.max_question_tokens, "tokens")
    return text


def model_max_tokens(config: Any) -> int | None:
    """The longest sequence the model's position embeddings cover (``None`` if the config does not say)."""
    text = getattr(config, "text_config", config)
    value = getattr(text, "max_position_embeddings", None)
    return int(value) if value else None


def check_prompt_tokens(n_tokens: int, config: Any = None, max_new_tokens: int = 0, limits: Limits | None = None) -> None:
    """The whole prompt (text + expanded visual and object placeholders) plus ``max_new_tokens`` must fit both
    ``max_prompt_tokens`` (when set) and the model's maximum length."""
    lim = _resolve(limits)
    if lim.max_prompt_tokens is not None and n_tokens > lim.max_prompt_tokens:
        raise _too_large("the prompt", n_tokens, "max_prompt_tokens", lim.max_prompt_tokens, "tokens")
    model_max = model_max_tokens(config) if config is not None else None
    if model_max is not None and n_tokens + max_new_tokens > model_max:
        raise LimitError(
            f"the prompt is {n_tokens:,} tokens (+{max_new_tokens:,} to generate); the model's maximum length "
            f"(max_position_embeddings) is {model_max:,} tokens: use fewer frames, regions or a shorter question"
        )


# ------------------------------------------------------------------------------------------------------- regions
def check_region_count(n: int, limits: Limits | None = None) -> None:
    lim = _resolve(limits)
    if n > lim.max_regions:
        raise _too_large("the number of regions", n, "max_regions", lim.max_regions)


def check_declared_size(height: int, width: int, what: str, limits: Limits | None = None) -> None:
    """A mask size declared by the input (RLE ``size``, polygon ``size``, a mask image's header) before decoding."""
    lim = _resolve(limits)
    if height * width > lim.max_mask_pixels:
        raise _too_large(f"{what} size {height}x{width} (h x w)", height * width, "max_mask_pixels",
                         lim.max_mask_pixels, "pixels")


def check_polygon_points(n_points: int, limits: Limits | None = None) -> None:
    lim = _resolve(limits)
    if n_points > lim.max_polygon_points:
        raise _too_large("the polygon point count", n_points, "max_polygon_points", lim.max_polygon_points)


def check_scribble_width(width: float, limits: Limits | None = None) -> None:
    lim = _resolve(limits)
    if width > lim.max_scribble_width:
        raise _too_large("the scribble width", width, "max_scribble_width", lim.max_scribble_width, "px")


# ------------------------------------------------------------------------------------------------------- media
def check_image_pixels(width: int, height: int, what: str = "the image", limits: Limits | None = None) -> None:
    """Decompression-bomb guard: call with the header's size, before decoding the pixels."""
    lim = _resolve(limits)
    if width * height > lim.max_image_pixels:
        raise _too_large(f"{what} ({width}x{height})", width * height, "max_image_pixels", lim.max_image_pixels,
                         "pixels")


_PIL_BOMB_SIZE = re.compile(r"\((\d+) pixels\)")


def decompression_bomb(exc: Exception, what: str, limit_name: str = "max_image_pixels",
                       limits: Limits | None = None) -> LimitError:
    """The :class:`LimitError` for PIL's ``DecompressionBombError``, which PIL raises while reading the header of
    an image of more than twice ``Image.MAX_IMAGE_PIXELS``, before our own header check can run."""
    lim = _resolve(limits)
    match = _PIL_BOMB_SIZE.search(str(exc))
    size = f"{int(match.group(1)):,} pixels" if match else "more pixels than PIL decodes"
    return LimitError(f"{what} declares {size}; the limit {limit_name} is {getattr(lim, limit_name):,} pixels")


def check_video_metadata(
    width: int, height: int, num_frames: int | None, duration_s: float | None, what: str = "the video",
    limits: Limits | None = None,
) -> None:
    """Frame size, frame count and duration read from the container, before any frame is decoded."""
    lim = _resolve(limits)
    if width * height > lim.max_video_frame_pixels:
        raise _too_large(f"the frame size of {what} ({width}x{height})", width * height, "max_video_frame_pixels",
                         lim.max_video_frame_pixels, "pixels")
    if num_frames is not None and num_frames > lim.max_video_frames:
        raise _too_large(f"the frame count of {what}", num_frames, "max_video_frames", lim.max_video_frames)
    if duration_s is not None and duration_s > lim.max_video_seconds:
        raise LimitError(f"the duration of {what} is {duration_s:.1f} s; the limit max_video_seconds is "
                         f"{lim.max_video_seconds:g} s")


def check_video_sampled(n_frames: int, width: int, height: int, what: str = "the video",
                        limits: Limits | None = None) -> None:
    """The decoded clip's size (sampled frames x frame pixels), checked once frames are chosen, before decoding."""
    lim = _resolve(limits)
    total = n_frames * width * height
    if total > lim.max_video_sampled_pixels:
        raise LimitError(f"{what}: {n_frames} sampled frames of {width}x{height} are {total:,} pixels; the limit "
                         f"max_video_sampled_pixels is {lim.max_video_sampled_pixels:,} (sample fewer frames)")


def check_upload_bytes(n_bytes: int, what: str = "the upload", limits: Limits | None = None) -> None:
    lim = _resolve(limits)
    if n_bytes > lim.max_upload_bytes:
        raise _too_large(what, n_bytes, "max_upload_bytes", lim.max_upload_bytes, "bytes")


__all__ = [
    "DEFAULT_LIMITS",
    "INTERFACES",
    "LimitError",
    "Limits",
    "active_limits",
    "as_text",
    "check_declared_size",
    "check_image_pixels",
    "check_polygon_points",
    "check_prompt_tokens",
    "check_question",
    "check_region_count",
    "check_scribble_width",
    "check_upload_bytes",
    "check_video_metadata",
    "check_video_sampled",
    "decompression_bomb",
    "limits_for",
    "model_max_tokens",
    "use_limits",
]
