"""Ref-L4 short region captions (``ref-l4-val.json``, Objects365 split), COCO caption metrics.

Paper protocol (DAM's): predictions longer than 5 words are condensed to a phrase by an LLM judge,
then scored against the GPT-summarised references of ``refl4_gt.json`` (COCO format, aligned by the
item's position). Without a judge the raw predictions are scored, and the results say so; without
``refl4_gt.json`` the raw captions of the benchmark file are the references.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pixelrefer.eval.io import load_json_or_jsonl
from pixelrefer.eval.judge import JudgeNotConfigured
from pixelrefer.eval.masks import box_mask, require_file
from pixelrefer.eval.tasks.base import (
    Record,
    ScoreContext,
    Task,
    TaskResult,
    numbered_items,
    require,
    resolve_media,
)
from pixelrefer.eval.tasks.captioning import score_captions
from pixelrefer.eval.types import BadItem, EvalItem, EvalRequest
from pixelrefer.processing.prompts import BENCHMARK_PROMPTS

PROMPT = BENCHMARK_PROMPTS["refl4"]
SUMMARY_MIN_WORDS = 5
SUMMARY_SYSTEM_PROMPT = """
Give you a description of an object, please condense the sentence into a brief phrase that highlights the object\'s category and key characteristics. 
For example:
INPUT: A freestanding, top-loading washing machine with a white exterior. It features a front-loading door with a recessed handle at the top center for opening and closing. The control panel is located on the upper right side of the machine, consisting of several buttons and possibly a display screen.
OUTPUT: a white washing machine
"""


def load_refl4(data: Path, media_root: Path, prompt: str) -> list[EvalItem]:
    """Items of the Objects365 part of Ref-L4 (entries with another ``ori_dataset`` are skipped)."""
    entries = [e for e in load_json_or_jsonl(data) if _source(e).lower().startswith("objects365")]
    return numbered_items(entries, _reference_fields, lambda item_id, entry: _builder(item_id, entry, media_root, prompt))


def _source(entry: Any) -> str:
    return str(entry.get("ori_dataset", "objects365")) if isinstance(entry, dict) else "objects365"


def _reference_fields(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        return {"image": None, "Answer": ""}
    return {"image": entry.get("file_name"), "Answer": str(entry.get("caption", ""))}


def _builder(item_id: str, entry: Any, media_root: Path, prompt: str) -> Callable[[], EvalRequest]:
    def build() -> EvalRequest:
        if not isinstance(entry, dict):
            raise BadItem("entry is not an object")
        name, height, width, box = require(entry, "file_name", "height", "width", "bbox")
        mask = box_mask([int(b) for b in box] if isinstance(box, list) else box, height, width)
        path = require_file(resolve_media(media_root, str(name)))
        return EvalRequest(id=item_id, media=path, question=prompt, regions=[{0: mask}])

    return build


def load_summarised_references(path: Path) -> dict[str, str]:
    """``refl4_gt.json`` (COCO caption format): image_id (the item position) -> caption."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {str(a["image_id"]): str(a["caption"]) for a in data.get("annotations", [])}


class RefL4(Task):
    name = "refl4"
    title = "Ref-L4 short region captions"
    judge = "optional"
    anchor_key = "refl4"
    aux_files: ClassVar[dict[str, str]] = {
        "refl4_gt": "refl4_gt.json: GPT-summarised references in COCO caption format (paper protocol)"
    }

    def load(self, data: Path, media_root: Path) -> list[EvalItem]:
        return load_refl4(data, media_root, PROMPT)

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        notes: list[str] = []
        summaries: dict[str, str] = {}
        try:
            judge = ctx.judge()
        except JudgeNotConfigured:
            judge = None
            notes.append(
                "no judge configured: predictions were NOT condensed by the LLM stage (paper protocol "
                "condenses predictions longer than 5 words); numbers are not comparable to the paper"
            )
        if judge is not None:
            judge.register_prompt("refl4_summary", SUMMARY_SYSTEM_PROMPT)
            long = [
                r for r in records if not r.get("error") and len(r["pred"].split(" ")) > SUMMARY_MIN_WORDS
            ]
            requests = [
                (
                    f"{r['id']}:summary",
                    [
                        {"role": "system", "content": SUMMARY_SYSTEM_PROMPT},
                        {"role": "user", "content": r["pred"]},
                    ],
                )
                for r in long
            ]
            summaries = dict(zip([r["id"] for r in long], judge.complete_many(requests)))
        references = None
        if "refl4_gt" in ctx.aux:
            by_position = load_summarised_references(ctx.aux["refl4_gt"])
            references = {r["id"]: by_position.get(str(r["index"]), r["ref"]["Answer"]) for r in records}
            notes.append("references: refl4_gt.json (GPT-summarised)")
        else:
            notes.append("references: raw captions of the benchmark file (refl4_gt.json not given)")
        result = score_captions(records, ctx, predictions=summaries, references=references)
        result.notes = notes + result.notes
        result.item_scores = [{"id": k, "pred_summary": v} for k, v in summaries.items()]
        result.judge = judge.identity() if judge is not None else None
        return result
