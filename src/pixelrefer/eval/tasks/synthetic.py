"""The synthetic benchmark of :mod:`pixelrefer.synth`: samples in the official training JSON format.

Each sample has ``image`` (path) or ``video`` (list of frame paths) + ``timestamps``, ``conversations``
(human question with ``<region>`` placeholders, gpt answer), ``masks`` (RLE per object; for videos
``{frame: RLE}`` per object), ``height``/``width`` and a ``meta`` dict with the ground truth
(``task``, ``media``, ``answer``, ...). Short answers are scored by exact match (after lowercasing and
trimming spaces and a final period); captions (``brief``, ``detail``) by BLEU and CIDEr.

Data built with ``SynthConfig.paraphrases`` records each question's wording in ``meta["phrasing"]``; every
accuracy is then also reported on the questions asked in held-out wordings (never in training data) and in
trained ones (``held-out phrasings <group> acc``, ``trained phrasings <group> acc``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelrefer.eval.io import load_json_or_jsonl
from pixelrefer.eval.masks import decode_segmentation, require_file
from pixelrefer.eval.metrics.caption import caption_metrics
from pixelrefer.eval.metrics.mcq import videorefer_letter
from pixelrefer.eval.tasks.base import Record, ScoreContext, Task, TaskResult, counts_of, failure_notes
from pixelrefer.eval.types import BadItem, EvalItem, EvalRequest
from pixelrefer.media import VideoSampling

CAPTION_TASKS = frozenset({"brief", "detail"})
GROUPS = {
    "category": "category",
    "part_category": "category",
    "region_qa": "attribute",
    "motion": "attribute",
    "temporal": "attribute",
    "relation": "relation",
    "interaction": "relation",
    "multiple_choice": "mcq",
}
_MEDIA_TAG = re.compile(r"<(image|video)>\n?")
PHRASING_GROUPS = {True: "held-out phrasings", False: "trained phrasings"}


def normalize_answer(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".").split())


def _question(sample: dict[str, Any]) -> str:
    for turn in sample.get("conversations", []):
        if turn.get("from") == "human":
            return _MEDIA_TAG.sub("", str(turn.get("value", ""))).strip()
    raise BadItem("no human turn in conversations")


def _answer(sample: dict[str, Any]) -> str:
    meta = sample.get("meta") or {}
    if "answer" in meta:
        return str(meta["answer"])
    turns = [t for t in sample.get("conversations", []) if t.get("from") == "gpt"]
    return str(turns[0].get("value", "")) if turns else ""


def _phrasing(meta: dict[str, Any], key: str, kind: Callable[[Any], Any]) -> Any:
    """A field of the question's recorded wording: ``held_out`` (asked in a wording never trained on) or ``family``
    (``position``, ``larger_than``, ...); ``None`` where the data records no wording."""
    phrasing = meta.get("phrasing")
    return kind(phrasing[key]) if isinstance(phrasing, dict) and key in phrasing else None


def _percent(outcomes: dict[str, list[bool]]) -> dict[str, float]:
    return {k: 100.0 * sum(v) / len(v) for k, v in outcomes.items()}


def _target_size(meta: dict[str, Any]) -> str | None:
    """Size word of the one object a single-target question is about (parts: their object's size)."""
    targets, objects = meta.get("targets") or [], meta.get("objects") or []
    if len(targets) != 1 or not isinstance(targets[0], dict):
        return None
    found = [o for o in objects if isinstance(o, dict) and o.get("index") == targets[0].get("object")]
    return str(found[0]["size"]) if found and "size" in found[0] else None


class Synthetic(Task):
    name = "synthetic"
    title = "Synthetic region benchmark (pixelrefer.synth)"
    anchor_key = None

    def load(self, data: Path, media_root: Path) -> list[EvalItem]:
        items = []
        for index, sample in enumerate(load_json_or_jsonl(data)):
            if not isinstance(sample, dict):
                sample = {"_invalid": sample}
            meta = sample.get("meta") or {}
            item_id = str(sample.get("id", index))
            ref = {
                "task": str(meta.get("task", "unknown")),
                "media": str(meta.get("media", "image")),
                "Answer": _answer(sample),
                "size": _target_size(meta),
                "held_out_phrasing": _phrasing(meta, "held_out", bool),
                "family": _phrasing(meta, "family", str),
            }
            items.append(EvalItem(item_id, index, ref, self._builder(item_id, sample, media_root)))
        return items

    def _builder(self, item_id: str, sample: dict[str, Any], root: Path) -> Callable[[], EvalRequest]:
        def build() -> EvalRequest:
            masks = sample.get("masks")
            if not isinstance(masks, list) or not masks:
                raise BadItem("sample has no masks")
            question = _question(sample)
            if "video" in sample:
                frames = sample["video"] if isinstance(sample["video"], list) else [sample["video"]]
                paths = [require_file(root / f) for f in frames]
                regions = [{int(k): decode_segmentation(v) for k, v in m.items()} for m in masks]
                stamps = sample.get("timestamps")
                media: str | list[str] = paths if len(paths) > 1 else paths[0]
                times = tuple(float(t) for t in stamps) if stamps else None
                return EvalRequest(item_id, media, question, regions, VideoSampling(fps=None, max_frames=None), times)
            if "image" not in sample:
                raise BadItem("sample has neither image nor video")
            image = sample["image"][0] if isinstance(sample["image"], list) else sample["image"]
            path = require_file(root / str(image))
            regions = [{0: decode_segmentation(m, sample.get("height"), sample.get("width"))} for m in masks]
            return EvalRequest(item_id, path, question, regions)

        return build

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        correct: dict[str, list[bool]] = defaultdict(list)
        captions: dict[str, list[Record]] = defaultdict(list)
        by_size: dict[str, list[bool]] = defaultdict(list)
        by_family: dict[str, list[bool]] = defaultdict(list)
        items = []
        for r in records:
            task, media = r["ref"]["task"], r["ref"]["media"]
            if task in CAPTION_TASKS:
                captions[media].append(r)
                continue
            pred = "" if r.get("error") else r["pred"]
            answer = r["ref"]["Answer"]
            ok = (
                videorefer_letter(pred).lower() == answer.lower()
                if task == "multiple_choice" and pred
                else bool(pred) and normalize_answer(pred) == normalize_answer(answer)
            )
            correct[f"{media}/{task}"].append(ok)
            correct[GROUPS.get(task, task)].append(ok)
            wording = r["ref"].get("held_out_phrasing")
            if wording is not None:
                correct[f"{PHRASING_GROUPS[wording]} {GROUPS.get(task, task)}"].append(ok)
            if GROUPS.get(task) == "category" and r["ref"].get("size"):
                by_size[r["ref"]["size"]].append(ok)
            if r["ref"].get("family"):
                by_family[r["ref"]["family"]].append(ok)
            items.append({"id": r["id"], "task": f"{media}/{task}", "correct": ok})
        accuracy = _percent(correct)
        per_task = {k: v for k, v in accuracy.items() if "/" in k}
        metrics = {f"{k} acc": v for k, v in accuracy.items() if "/" not in k}
        notes = failure_notes(records)
        for media, recs in sorted(captions.items()):
            preds = ["" if r.get("error") else r["pred"] for r in recs]
            result = caption_metrics(preds, [r["ref"]["Answer"] for r in recs], meteor=False, spice=False)
            metrics[f"{media} caption BLEU-4"] = result.scores["BLEU-4"]
            metrics[f"{media} caption CIDEr"] = result.scores["CIDEr"]
            notes.append(f"{media} captions: {len(recs)} items, tokenizer {result.tokenizer}")
        return TaskResult(
            metrics=metrics,
            counts=counts_of(records),
            groups={"accuracy_per_task": per_task,
                    "category_accuracy_per_object_size": _percent(by_size),
                    "accuracy_per_question_family": _percent(dict(sorted(by_family.items()))),
                    "items_per_question_family": {k: len(v) for k, v in sorted(by_family.items())}},
            notes=notes,
            item_scores=items,
        )
