"""Training data in the official JSON format, validated strictly.

A data file is a JSON list of samples::

    {"id": "...",                                   # optional; the list index names the sample otherwise
     "image": "rel/path.png",                       # or "video": ["f0.png", ...] + "timestamps": [0.0, ...]
     "conversations": [{"from": "human", "value": "<image>\\nWhat is <region>?"}, {"from": "gpt", "value": "..."}],
     "masks": [<mask>, ...],                        # one per <region>, in order
     "height": 224, "width": 224}                   # needed by polygon masks

An image ``<mask>`` is a COCO RLE (compressed ``counts`` string or uncompressed list) or a COCO polygon list;
a video ``<mask>`` is ``{"<frame index>": <image mask>, ...}``. Paths are relative to the data root (the
folder of the JSON file unless given). Unlike the official loader, a bad sample is never replaced by another
one: it raises :class:`DataError` naming the file, the sample id and its index.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelrefer.constants import REGION_PLACEHOLDER
from pixelrefer.errors import DataError, PixelReferError
from pixelrefer.limits import check_image_pixels, check_question, decompression_bomb
from pixelrefer.media.image import shown_size
from pixelrefer.processing.prompts import check_control_tokens, check_user_text
from pixelrefer.regions import codecs

logger = logging.getLogger(__name__)

ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
_FRAME_KEY = re.compile(r"[0-9]{1,9}")
MAX_REPORTED_ERRORS = 20


@dataclass(frozen=True)
class SampleRef:
    """Where a sample comes from, for error messages."""

    file: str
    index: int
    sample_id: str

    def __str__(self) -> str:
        return f"{self.file}: sample {self.sample_id!r} (index {self.index})"


@dataclass
class ParsedSample:
    """A validated sample: media paths, per-region masks keyed by frame, chat messages."""

    ref: SampleRef
    image: Path | None = None
    frames: list[Path] = field(default_factory=list)
    timestamps: list[float] | None = None
    regions: list[dict[int, np.ndarray]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)

    @property
    def is_video(self) -> bool:
        return self.image is None and bool(self.frames)


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """The raw sample list of a data file."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such data file")
    try:
        samples = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{file}: not valid UTF-8 (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{file}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise DataError(f"{file}: JSON nested too deeply") from exc
    if not isinstance(samples, list):
        raise DataError(f"{file}: the top level must be a list of samples, got {type(samples).__name__}")
    return samples


def _messages(convs: Any) -> list[dict[str, str]]:
    if not isinstance(convs, list) or not convs:
        raise DataError("'conversations' must be a non-empty list")
    out: list[dict[str, str]] = []
    for turn in convs:
        if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
            raise DataError(f"bad conversation turn {turn!r}: need {{'from': human|gpt|system, 'value': str}}")
        if not out and turn["from"] != "human":
            continue  # leading non-human turns are dropped, as in the official loader
        out.append({"role": ROLES[turn["from"]], "content": _checked_text(turn["from"], turn["value"])})
    if not any(m["role"] == "assistant" for m in out):
        raise DataError("the conversation has no answer (gpt) turn after the first human turn")
    if any(REGION_PLACEHOLDER in m["content"] for m in out if m["role"] != "user"):
        raise DataError(f"{REGION_PLACEHOLDER} may only appear in human turns")
    return out


def _checked_text(speaker: str, text: str) -> str:
    """The same rules as at inference: question limits and no control tokens typed in the text."""
    try:
        if speaker == "human":
            check_question(text, what=f"a {speaker} turn")
            check_user_text(text, what=f"a {speaker} turn")
        else:
            check_control_tokens(text, what=f"a {speaker} turn")
    except PixelReferError as exc:
        raise DataError(str(exc)) from exc
    return text


def _media_size(path: Path) -> tuple[int, int]:
    """(height, width) of the upright image (EXIF orientation applied) from its header, checked against the image
    pixel limit."""
    if not path.is_file():
        raise DataError(f"missing media file {path}")
    try:
        with Image.open(path) as im:
            check_image_pixels(im.width, im.height, what=path.name)
            return shown_size(im)
    except PixelReferError as exc:
        raise DataError(str(exc)) from exc
    except Image.DecompressionBombError as exc:
        raise DataError(str(decompression_bomb(exc, path.name))) from exc
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... on corrupt headers
        raise DataError(f"unreadable image {path}: {exc}") from exc


def _decode_mask(mask: Any, size: tuple[int, int], declared: tuple[int, int] | None) -> np.ndarray:
    """One image mask (RLE dict or polygon list) as a (H, W) bool array of the media size."""
    if isinstance(mask, dict):
        try:
            rle_size = codecs.check_size(mask.get("size"), "RLE")  # the declared size first, nothing decoded
            if rle_size != size:
                raise DataError(f"RLE size {list(rle_size)} differs from the media size {list(size)}")
            decoded = codecs.decode_rle(mask)
        except PixelReferError as exc:
            raise DataError(f"undecodable RLE: {exc}") from exc
    elif isinstance(mask, list):
        if declared is None:
            raise DataError("a polygon mask needs top-level 'height' and 'width'")
        if declared != size:
            raise DataError(f"declared height/width {list(declared)} differ from the media size {list(size)}")
        try:
            decoded = codecs.polygons_to_mask(codecs.normalise_polygons(mask), *size)
        except PixelReferError as exc:
            raise DataError(f"bad polygon: {exc}") from exc
    else:
        raise DataError(f"a mask must be an RLE dict or a polygon list, got {type(mask).__name__}")
    if not decoded.any():
        raise DataError("empty mask")
    return decoded.astype(bool)


def _declared_size(sample: dict[str, Any]) -> tuple[int, int] | None:
    if "height" in sample and "width" in sample:
        try:
            return codecs.check_size([sample["height"], sample["width"]], "the sample's declared")
        except PixelReferError as exc:
            raise DataError(str(exc)) from exc
    return None


def _regions(sample: dict[str, Any], size: tuple[int, int], num_frames: int | None) -> list[dict[int, np.ndarray]]:
    masks = sample.get("masks", [])
    if not isinstance(masks, list):
        raise DataError("'masks' must be a list (one entry per <region>)")
    declared = _declared_size(sample)
    regions: list[dict[int, np.ndarray]] = []
    for k, mask in enumerate(masks):
        try:
            if num_frames is None:
                regions.append({0: _decode_mask(mask, size, declared)})
                continue
            if not isinstance(mask, dict) or not mask or "counts" in mask:
                raise DataError("a video mask must be a non-empty {frame index: mask} dict")
            per_frame: dict[int, np.ndarray] = {}
            for key, value in mask.items():
                frame = int(key) if _FRAME_KEY.fullmatch(str(key)) else -1
                if not 0 <= frame < num_frames:
                    raise DataError(f"frame index {key!r} is outside the {num_frames} frames")
                per_frame[frame] = _decode_mask(value, size, declared)
            regions.append(dict(sorted(per_frame.items())))
        except DataError as exc:
            raise DataError(f"mask {k}: {exc}") from exc
    return regions


def _media_path(root: Path, name: Any) -> Path:
    if not isinstance(name, str) or not name or "\x00" in name:
        raise DataError(f"a media path must be a non-empty string, got {name!r}")
    return root / name


def media_files(sample: dict[str, Any], root: Path) -> list[Path]:
    """The files of a sample's media: its one image, or its video's frames in order."""
    has_image, has_video = "image" in sample, "video" in sample
    if has_image and has_video:
        raise DataError("a sample has either 'image' or 'video', not both")
    if has_image:
        image = sample["image"]
        if isinstance(image, list):
            if len(image) != 1:
                raise DataError(f"only one image per sample is supported, got {len(image)}")
            image = image[0]
        return [_media_path(root, image)]
    if has_video:
        frames = sample["video"]
        if not isinstance(frames, list) or not frames:
            raise DataError("'video' must be a non-empty list of frame paths")
        return [_media_path(root, f) for f in frames]
    raise DataError("a sample needs 'image' or 'video' (text-only samples are not supported)")


def _media(sample: dict[str, Any], root: Path, parsed: ParsedSample) -> tuple[tuple[int, int], int | None]:
    """Fill the media fields; returns (frame size, number of frames or None for an image)."""
    files = media_files(sample, root)
    if "image" in sample:
        parsed.image = files[0]
        return _media_size(parsed.image), None
    parsed.frames = files
    stamps = sample.get("timestamps")
    if not isinstance(stamps, list) or len(stamps) != len(files):
        raise DataError("a frame-list video needs 'timestamps', one per frame")
    if not all(isinstance(t, int | float) and not isinstance(t, bool) and np.isfinite(t) for t in stamps):
        raise DataError("'timestamps' must be finite numbers (seconds)")
    parsed.timestamps = [float(t) for t in stamps]
    sizes = {_media_size(f) for f in files}
    if len(sizes) != 1:
        raise DataError(f"video frames have different sizes {sorted(sizes)}")
    return sizes.pop(), len(files)


def parse_sample(sample: Any, ref: SampleRef, root: Path) -> ParsedSample:
    """Validate one raw sample and decode its masks; raises :class:`DataError` naming ``ref``."""
    try:
        if not isinstance(sample, dict):
            raise DataError(f"a sample must be a JSON object, got {type(sample).__name__}")
        parsed = ParsedSample(ref=ref, messages=_messages(sample.get("conversations")))
        size, num_frames = _media(sample, root, parsed)
        parsed.regions = _regions(sample, size, num_frames)
        placeholders = sum(m["content"].count(REGION_PLACEHOLDER) for m in parsed.messages)
        if placeholders != len(parsed.regions):
            raise DataError(f"{placeholders} {REGION_PLACEHOLDER} placeholder(s) but {len(parsed.regions)} mask(s)")
        return parsed
    except DataError as exc:
        raise DataError(f"{ref}: {exc}") from None


def sample_ref(sample: Any, file: str | Path, index: int) -> SampleRef:
    sid = sample.get("id", index) if isinstance(sample, dict) else index
    return SampleRef(file=str(file), index=index, sample_id=str(sid))


@dataclass
class ValidationReport:
    file: str
    samples: int
    images: int
    videos: int
    regions: int


def validate_dataset(path: str | Path, root: str | Path | None = None) -> ValidationReport:
    """Check every sample of a data file (media present, masks decodable and of the media size, one mask per
    ``<region>``). Raises one :class:`DataError` listing the first bad samples; returns counts otherwise."""
    file = Path(path)
    base = Path(root) if root is not None else file.parent
    samples = read_samples(file)
    errors: list[str] = []
    images = videos = regions = 0
    for i, raw in enumerate(samples):
        try:
            parsed = parse_sample(raw, sample_ref(raw, file, i), base)
        except DataError as exc:
            errors.append(str(exc))
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
            continue
        videos += parsed.is_video
        images += not parsed.is_video
        regions += len(parsed.regions)
    if errors:
        more = " (stopped after the first errors)" if len(errors) >= MAX_REPORTED_ERRORS else ""
        raise DataError(f"{len(errors)} bad sample(s){more}:\n" + "\n".join(errors))
    report = ValidationReport(file=str(file), samples=len(samples), images=images, videos=videos, regions=regions)
    logger.info("validated %s: %d samples (%d images, %d videos), %d regions", file, len(samples), images,
                videos, regions)
    return report


def check_ids_unique(samples: Sequence[Any], file: str | Path) -> None:
    seen: dict[str, int] = {}
    for i, s in enumerate(samples):
        sid = sample_ref(s, file, i).sample_id
        if sid in seen:
            raise DataError(f"{file}: sample id {sid!r} is used at index {seen[sid]} and {i}")
        seen[sid] = i
