"""VideoRefer-Bench-D: detailed video object descriptions, judged on four 0-5 dimensions."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelrefer.eval.tasks.base import (
    EntryTask,
    Record,
    ScoreContext,
    TaskResult,
    counts_of,
    failure_notes,
)
from pixelrefer.eval.tasks.videorefer import object_masks, video_path
from pixelrefer.eval.types import BadItem, EvalRequest
from pixelrefer.media import OFFICIAL_EVAL_SAMPLING
from pixelrefer.processing.prompts import BENCHMARK_PROMPTS

PROMPT = BENCHMARK_PROMPTS["videorefer_d"]
LITE_PROMPT = BENCHMARK_PROMPTS["videorefer_d_lite"]
DIMENSIONS = (
    "Subject Correspondence",
    "Appearance Description",
    "Temporal Description",
    "Hallucination Detection",
)
SHORT = {
    "Subject Correspondence": "SC",
    "Appearance Description": "AD",
    "Temporal Description": "TD",
    "Hallucination Detection": "HD",
}
SYSTEM_PROMPT = """You are an advanced intelligent chatbot specialized in evaluating the factual accuracy of generative outputs related to object-based video descriptions.
Your primary task is to meticulously compare the predicted answer with the correct answer and assess their factual consistency. To accomplish this, you will evaluate the descriptions across four key dimensions:
1. Subject Correspondence: Assess whether the subject of the input description accurately matches the subject indicated in the ground truth description.
2. Appearance Description: Evaluate the accuracy of the appearance details, including color, shape, size, texture, and any other relevant visual attributes.
3. Temporal Description: Analyze whether the depiction of the object's motion aligns with the actual movements described in the correct answer.
4. Hallucination Detection: Identify any discrepancies by determining if the description includes facts, actions, or elements that do not exist in reality, such as imaginative interpretations or incorrect inferences.
Please assign a score for each of these four dimensions, using an integer from 0 to 5, where 5 indicates a perfect match and 0 signifies no relevance at all. Accompany your assessments with brief explanations to clarify your scoring rationale.
### OUTPUT FORMAT(EXAMPLE)
1. Subject Correspondence: 5\\nExplanation: xxx
2. Appearance Description: 4\\nExplanation: xxx
3. Temporal Description: 5\\nExplanation: xxx
4. Hallucination Detection: 3\\nExplanation: xxx"""  # verbatim official system.txt (literal "\n" sequences kept)
_SCORE = re.compile(r"\d+\.\s+(.*?):\s+([\d.]+)")


def parse_dimensions(reply: str) -> dict[str, float]:
    """Official regex: ``N. Name: score`` lines -> {name: score}."""
    out = {}
    for name, value in _SCORE.findall(reply):
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def _reference_fields(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        return {"Answer": ""}
    return {"video": entry.get("video"), "Answer": str(entry.get("caption", ""))}


class VideoReferD(EntryTask):
    name = "videorefer_d"
    title = "VideoRefer-Bench-D"
    modality = "video"
    judge = "required"
    anchor_key = "videorefer_d"

    def reference_fields(self, entry: Any) -> dict[str, Any]:
        return _reference_fields(entry)

    def builder(self, item_id: str, entry: dict[str, Any], media_root: Path) -> Callable[[], EvalRequest]:
        def build() -> EvalRequest:
            regions = object_masks(entry, all_frames=self.variant == "lite")
            if len(regions) != 1:
                raise BadItem(f"a description item refers to one object, this one has {len(regions)}")
            question = LITE_PROMPT if self.variant == "lite" else PROMPT
            return EvalRequest(item_id, video_path(entry, media_root), question, regions, OFFICIAL_EVAL_SAMPLING)

        return build

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        judge = ctx.judge()
        judge.register_prompt("videorefer_d", SYSTEM_PROMPT)
        ok = [r for r in records if not r.get("error")]
        requests = [
            (
                f"{r['id']}:review",
                [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {
                        "role": "user",
                        "content": f"##Correct answer: {r['ref']['Answer']}\n##Predicted answer: {r['pred']}\n",
                    },
                ],
            )
            for r in ok
        ]
        parsed = {r["id"]: parse_dimensions(reply) for r, reply in zip(ok, judge.complete_many(requests))}
        unparsed = sum(any(d not in p for d in DIMENSIONS) for p in parsed.values())
        items = [
            {"id": r["id"], **{SHORT[d]: parsed.get(r["id"], {}).get(d, 0.0) for d in DIMENSIONS}}
            for r in records
        ]
        n = len(items)
        metrics = {SHORT[d]: sum(i[SHORT[d]] for i in items) / n if n else 0.0 for d in DIMENSIONS}
        metrics["Avg"] = sum(metrics[SHORT[d]] for d in DIMENSIONS) / len(DIMENSIONS)
        notes = [
            f"mask mode: {'all annotated frames (M)' if self.variant == 'lite' else 'single frame (S)'}",
            *failure_notes(records),
        ]
        if unparsed:
            notes.append(
                f"{unparsed} judge replies missed a dimension; a missing dimension counts as 0 "
                "(the official script drops it from that dimension's mean)"
            )
        return TaskResult(
            metrics=metrics, counts=counts_of(records), notes=notes, item_scores=items, judge=judge.identity()
        )
