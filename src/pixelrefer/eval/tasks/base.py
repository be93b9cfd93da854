"""The benchmark interface: load a benchmark's own file format into items, score prediction records."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pixelrefer.errors import ConfigError
from pixelrefer.eval.io import load_json_or_jsonl
from pixelrefer.eval.judge import Judge
from pixelrefer.eval.types import BadItem, EvalItem, EvalRequest, bad_item_builder

Record = dict[str, Any]


@dataclass
class ScoreContext:
    """What scoring may use: the output folder, auxiliary files, options, and a lazy judge factory."""

    out_dir: Path
    aux: dict[str, Path] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    judge_factory: Callable[[], Judge] | None = None
    _judge: Judge | None = None

    def judge(self) -> Judge:
        """The configured judge; raises :class:`~pixelrefer.eval.judge.JudgeNotConfigured` if none."""
        if self._judge is None:
            if self.judge_factory is None:
                raise RuntimeError("no judge factory was given to the score context")
            self._judge = self.judge_factory()
        return self._judge

    @property
    def judge_used(self) -> Judge | None:
        return self._judge


@dataclass
class TaskResult:
    """Headline metrics (names match the paper's columns), per-group metrics, counts, and notes."""

    metrics: dict[str, float]
    counts: dict[str, int]
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    item_scores: list[Record] = field(default_factory=list)
    judge: dict[str, Any] | None = None


class Task(ABC):
    """One benchmark. Subclasses set the class attributes and implement :meth:`load` and :meth:`score`."""

    name: ClassVar[str]
    title: ClassVar[str]
    modality: ClassVar[str] = "image"
    judge: ClassVar[str] = "none"  # "none", "optional" (an extra stage) or "required"
    aux_files: ClassVar[dict[str, str]] = {}  # name -> what it is (files scoring needs besides --data)
    anchor_key: ClassVar[str | None] = None  # key in pixelrefer.eval.anchors

    def __init__(self, variant: str = "full") -> None:
        if variant not in ("full", "lite"):
            raise ConfigError(f"variant must be 'full' or 'lite', got {variant!r}")
        self.variant = variant

    def judge_settings(self, options: dict[str, Any]) -> dict[str, Any]:
        """Sampling settings this benchmark's judge protocol fixes (temperature, max_tokens)."""
        return {}

    @abstractmethod
    def load(self, data: Path, media_root: Path) -> list[EvalItem]:
        """Parse the benchmark file into items, in file order. Bad entries become items whose build fails."""

    @abstractmethod
    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        """Score all prediction records (failed items included, as wrong)."""


class EntryTask(Task):
    """A benchmark whose file is a JSON or JSONL list with one item per entry: subclasses give the reference
    fields of an entry and the request builder of an item."""

    def load(self, data: Path, media_root: Path) -> list[EvalItem]:
        def build(item_id: str, entry: Any) -> Callable[[], EvalRequest]:
            if not isinstance(entry, dict):
                return bad_item_builder("entry is not an object")
            return self.builder(item_id, entry, media_root)

        return numbered_items(load_json_or_jsonl(data), self.reference_fields, build)

    @abstractmethod
    def reference_fields(self, entry: Any) -> dict[str, Any]:
        """What an item's record keeps of its entry (ground truth, media name, question type)."""

    @abstractmethod
    def builder(self, item_id: str, entry: dict[str, Any], media_root: Path) -> Callable[[], EvalRequest]:
        """The lazy request builder of an item whose entry is an object (raises :class:`BadItem` for a bad
        entry when called); an entry that is not an object is a bad item without it."""


def numbered_items(entries: Iterable[Any], reference: Callable[[Any], dict[str, Any]],
                   build: Callable[[str, Any], Callable[[], EvalRequest]]) -> list[EvalItem]:
    """One item per entry, its id and index its position: ``reference(entry)`` gives its reference fields and
    ``build(item_id, entry)`` its lazy request builder (the load loop of every one-item-per-entry benchmark)."""
    return [EvalItem(str(index), index, reference(entry), build(str(index), entry))
            for index, entry in enumerate(entries)]


def resolve_media(root: Path, name: str, subdirs: tuple[str, ...] = ("",)) -> Path:
    """``root/sub/name`` for the first sub-folder where it exists (else the first candidate)."""
    candidates = [root / sub / name if sub else root / name for sub in subdirs]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]


def counts_of(records: list[Record]) -> dict[str, int]:
    failed = sum(1 for r in records if r.get("error"))
    return {"items": len(records), "predicted": len(records) - failed, "failed": failed}


def failure_notes(records: list[Record], limit: int = 20) -> list[str]:
    """Per-item failure messages (first ``limit``), so that bad data is reported, never hidden."""
    failed = [r for r in records if r.get("error")]
    notes = [f"item {r['id']}: {r['error']}" for r in failed[:limit]]
    if len(failed) > limit:
        notes.append(f"... and {len(failed) - limit} more failed items (see predictions.jsonl)")
    if failed:
        notes.insert(0, f"{len(failed)} of {len(records)} items failed and are scored as wrong")
    return notes


def require(entry: dict[str, Any], *keys: str) -> list[Any]:
    """Fetch required keys of a raw benchmark entry, raising BadItem naming the missing one."""
    missing = [k for k in keys if k not in entry]
    if missing:
        raise BadItem(f"annotation lacks {', '.join(missing)}")
    return [entry[k] for k in keys]


TASKS: dict[str, str] = {
    "lvis": "pixelrefer.eval.tasks.category:LVIS",
    "paco": "pixelrefer.eval.tasks.category:PACO",
    "vg": "pixelrefer.eval.tasks.vg:VG",
    "refl4": "pixelrefer.eval.tasks.refl4:RefL4",
    "refl4_clair": "pixelrefer.eval.tasks.refl4_clair:RefL4Clair",
    "dlc_bench": "pixelrefer.eval.tasks.dlc_bench:DLCBench",
    "ferret": "pixelrefer.eval.tasks.ferret:FerretReasoning",
    "videorefer_d": "pixelrefer.eval.tasks.videorefer_d:VideoReferD",
    "videorefer_q": "pixelrefer.eval.tasks.videorefer_q:VideoReferQ",
    "hc_stvg": "pixelrefer.eval.tasks.hc_stvg:HCSTVG",
    "mvbench": "pixelrefer.eval.tasks.mvbench:MVBench",
    "synthetic": "pixelrefer.eval.tasks.synthetic:Synthetic",
}


def get_task(name: str, variant: str = "full") -> Task:
    key = name.lower().replace("-", "_")
    if key not in TASKS:
        raise ConfigError(f"unknown benchmark {name!r}; known: {', '.join(sorted(TASKS))}")
    module_name, class_name = TASKS[key].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(variant=variant)
