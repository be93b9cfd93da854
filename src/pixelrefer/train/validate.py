"""``pixelrefer data validate FILE... --media-root DIR``: check official training JSONs sample by sample while
streaming them (a multi-GB file is never loaded whole), with the training loader's own validator
(:func:`pixelrefer.train.data.parse_sample`), and report the defects by kind.

Kinds (the first matching rule names a defect): ``mask_key`` (the sample keeps its masks under ``annotation``
or ``mask``, VideoRefer-700K style, not the ``masks`` the loader reads), ``missing_segmentation`` (an
``annotation`` entry without ``segmentation``), ``missing_size`` (a polygon without top-level height/width),
``region_count`` (``<region>`` placeholders and masks differ), ``missing_media``, ``bad_mask``, ``media``,
``conversation``, ``json`` (not an object / not parseable), ``other``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pixelrefer.errors import DataError
from pixelrefer.train.data import parse_sample, sample_ref

CHUNK_BYTES = 1 << 20
MAX_SAMPLE_BYTES = 64 << 20  # one sample larger than this is a defect, not something to buffer
EXAMPLES_PER_KIND = 3
ALT_MASK_KEYS = ("annotation", "mask")

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("missing_size", re.compile(r"needs top-level 'height' and 'width'|declared height/width")),
    ("region_count", re.compile(r"placeholder\(s\) but \d+ mask")),
    ("missing_media", re.compile(r"missing media file")),
    ("bad_mask", re.compile(r"mask|RLE|polygon|frame index")),
    ("media", re.compile(r"image|video|frame|timestamps|media")),
    ("conversation", re.compile(r"conversation|turn|answer|placeholder|question|token")),
    ("json", re.compile(r"must be a JSON object")),
)


@dataclass
class Defect:
    file: str
    index: int
    sample_id: str
    kind: str
    message: str


@dataclass
class Report:
    samples: int = 0
    defects: list[Defect] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(d.kind for d in self.defects)

    def lines(self) -> list[str]:
        out = [f"{self.samples} samples, {len(self.defects)} with defects"]
        for kind, n in self.counts.most_common():
            out.append(f"  {kind}: {n}")
            for d in [d for d in self.defects if d.kind == kind][:EXAMPLES_PER_KIND]:
                out.append(f"    {d.message}")
        return out

    def to_json(self) -> list[dict[str, Any]]:
        return [vars(d) for d in self.defects]


def iter_json_array(stream: IO[str], source: str) -> Iterator[tuple[Any, int]]:
    """The elements of a top-level JSON array, one at a time, with the characters consumed so far."""
    decoder = json.JSONDecoder()
    buf, pos, consumed, started, eof = "", 0, 0, False, False

    def fill() -> bool:
        nonlocal buf, pos, consumed, eof
        chunk = stream.read(CHUNK_BYTES)
        consumed += pos
        buf, pos = buf[pos:] + chunk, 0
        eof = not chunk
        return bool(chunk)

    def skip_space() -> None:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf) or not fill():
                return

    skip_space()
    if pos >= len(buf) or buf[pos] != "[":
        raise DataError(f"{source}: the top level must be a JSON array of samples")
    pos += 1
    while True:
        skip_space()
        if pos < len(buf) and buf[pos] == "]":
            return
        if started:
            if pos >= len(buf) or buf[pos] != ",":
                raise DataError(f"{source}: expected ',' or ']' after sample at character {consumed + pos}")
            pos += 1
            skip_space()
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                if end == len(buf) and not eof:  # a number may continue in the next chunk
                    raise json.JSONDecodeError("incomplete", buf, end)
                break
            except json.JSONDecodeError as exc:
                if len(buf) - pos > MAX_SAMPLE_BYTES:
                    raise DataError(f"{source}: a sample beyond {MAX_SAMPLE_BYTES >> 20} MB or invalid JSON at "
                                    f"character {consumed + pos}") from exc
                if not fill():
                    raise DataError(f"{source}: invalid or truncated JSON at character {consumed + pos}: "
                                    f"{exc.msg}") from exc
            except RecursionError as exc:
                raise DataError(f"{source}: JSON nested too deeply at character {consumed + pos}") from exc
        pos, started = end, True
        yield value, consumed + pos


def kind_of(raw: Any, message: str) -> str:
    if isinstance(raw, dict) and "masks" not in raw:
        alt = [k for k in ALT_MASK_KEYS if k in raw]
        if alt:
            entries = raw[alt[0]] if isinstance(raw[alt[0]], list) else []
            if any(isinstance(e, dict) and "segmentation" not in e and not all(
                    isinstance(v, dict) and "segmentation" in v for v in e.values()) for e in entries):
                return "missing_segmentation"
            return "mask_key"
    for kind, pattern in _RULES:
        if pattern.search(message):
            return kind
    return "other"


def validate_files(files: list[Path], media_root: Path | None, progress: bool = True) -> Report:
    """Every sample of ``files`` through the training validator; defects collected, never raised."""
    from tqdm.auto import tqdm

    report = Report()
    total = sum(f.stat().st_size for f in files if f.is_file())
    with tqdm(total=total, unit="B", unit_scale=True, disable=not progress, desc="validate") as bar:
        for file in files:
            root = media_root if media_root is not None else file.parent
            done = 0
            try:
                with file.open(encoding="utf-8") as stream:
                    for index, (raw, consumed) in enumerate(iter_json_array(stream, str(file))):
                        report.samples += 1
                        try:
                            parse_sample(raw, sample_ref(raw, file, index), root)
                        except DataError as exc:
                            ref = sample_ref(raw, file, index)
                            report.defects.append(Defect(str(file), index, ref.sample_id, kind_of(raw, str(exc)),
                                                         str(exc)))
                        bar.update(max(0, consumed - done))  # characters, close to bytes for JSON
                        done = consumed
            except (OSError, UnicodeDecodeError, DataError) as exc:
                report.defects.append(Defect(str(file), -1, "", "json", f"{file}: {exc}"))
    return report
