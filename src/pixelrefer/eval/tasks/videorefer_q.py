"""VideoRefer-Bench-Q: multiple-choice questions about video objects, accuracy per question type."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelrefer.eval.metrics.mcq import accuracy_by_type, answer_letter, videorefer_letter
from pixelrefer.eval.tasks.base import (
    EntryTask,
    Record,
    ScoreContext,
    TaskResult,
    counts_of,
    failure_notes,
    require,
)
from pixelrefer.eval.tasks.videorefer import object_masks, video_path
from pixelrefer.eval.types import BadItem, EvalRequest
from pixelrefer.media import OFFICIAL_EVAL_SAMPLING
from pixelrefer.processing.prompts import count_region_placeholders, inline_choices

TYPE_SHORT = {
    "Basic Questions": "BQ",
    "Sequential Questions": "SQ",
    "Relationship Questions": "RlQ",
    "Reasoning Questions": "RsQ",
    "Future Predictions": "FP",
}


def _reference_fields(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        return {"Answer": "", "type": "unknown"}
    return {"video": entry.get("video"), "Answer": str(entry.get("Answer", "")),
            "type": str(entry.get("type", "unknown"))}


class VideoReferQ(EntryTask):
    name = "videorefer_q"
    title = "VideoRefer-Bench-Q"
    modality = "video"
    anchor_key = "videorefer_q"

    def reference_fields(self, entry: Any) -> dict[str, Any]:
        return _reference_fields(entry)

    def builder(self, item_id: str, entry: dict[str, Any], media_root: Path) -> Callable[[], EvalRequest]:
        def build() -> EvalRequest:
            question, options = require(entry, "Question", "options")
            if not isinstance(options, list) or not options:
                raise BadItem("'options' must be a non-empty list")
            regions = object_masks(entry, all_frames=self.variant == "lite")
            text = inline_choices(str(question), [str(o) for o in options])  # options come lettered: "(A) ..."
            if count_region_placeholders(text) != len(regions):
                raise BadItem(f"question has {count_region_placeholders(text)} <region> but {len(regions)} objects")
            return EvalRequest(item_id, video_path(entry, media_root), text, regions, OFFICIAL_EVAL_SAMPLING)

        return build

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        outcomes, items = [], []
        for r in records:
            letter = "" if r.get("error") else videorefer_letter(r["pred"])
            correct = bool(letter) and letter.lower() == answer_letter(r["ref"]["Answer"]).lower()
            kind = TYPE_SHORT.get(r["ref"]["type"], r["ref"]["type"])
            outcomes.append((kind, correct))
            items.append({"id": r["id"], "type": kind, "letter": letter, "correct": correct})
        per_type, overall, sizes = accuracy_by_type(outcomes)
        return TaskResult(
            metrics={**per_type, "Avg": overall},
            counts=counts_of(records),
            groups={"items_per_type": {k: float(v) for k, v in sizes.items()}},
            notes=["Avg is accuracy over all questions (as the official script)", *failure_notes(records)],
            item_scores=items,
        )
