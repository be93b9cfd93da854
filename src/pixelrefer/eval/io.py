"""Crash-safe file IO for evaluation runs: append-and-fsync JSON lines, atomic whole-file writes."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def dump_line(record: dict[str, Any]) -> str:
    """One JSONL line; keys keep insertion order so identical records give identical bytes."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def repair_jsonl(path: Path) -> int:
    """Drop a torn last line left by a killed writer. Returns the number of bytes removed."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as handle:
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    removed = len(data) - keep
    logger.warning("%s: removed a torn last line (%d bytes) left by an interrupted run", path, removed)
    return removed


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read all complete records; a torn last line (no trailing newline) is ignored."""
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                logger.warning("%s:%d: ignoring a torn last line", path, number)
                break
            if line.strip():
                records.append(json.loads(line))
    return records


class JsonlAppender:
    """Append records to a JSONL file, flushing and fsyncing after every write."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_jsonl(path)
        self.path = path
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across writes, closed in close()

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(dump_line(record))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlAppender:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_json_or_jsonl(path: Path) -> Any:
    """Benchmark files come as one JSON document or as JSON lines (Ref-L4); accept both."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
