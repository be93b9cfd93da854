"""Ferret-Bench referring reasoning (Osprey ``box_refer_reason.json``), judged against Ferret's GPT-4 answers.

The judge compares the model's answer (Assistant 1) with Ferret's reference answer (Assistant 2) and
returns two scores on the first line; the benchmark score is 100 · mean(model) / mean(reference).
Scoring needs Ferret's ``question.jsonl``, ``context.jsonl`` and ``answer.jsonl`` of ``refer_reason``
and, for the exact official rubric, Ferret's ``rule.json``; without it a rubric written for this
project (same output contract) is used and recorded by its hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pixelrefer.constants import REGION_PLACEHOLDER
from pixelrefer.eval.io import load_json_or_jsonl
from pixelrefer.eval.masks import decode_segmentation, require_file
from pixelrefer.eval.tasks.base import (
    Record,
    ScoreContext,
    Task,
    TaskResult,
    counts_of,
    failure_notes,
    resolve_media,
)
from pixelrefer.eval.types import BadItem, EvalItem, EvalRequest
from pixelrefer.media.image import shown_size
from pixelrefer.processing.prompts import FERRET_LITE_PREFIX

SYSTEM_PROMPT = "You are a helpful and precise assistant for checking the quality of the answer."
DEFAULT_RULE = {
    "role": "Assistant",
    "prompt": (
        "Two AI assistants answered the question above about an image; the object the question refers to is "
        "given by its region in the image, and the context describes the image. Judge how helpful, relevant, "
        "accurate and detailed each answer is, and give each assistant an overall score from 1 to 10, higher "
        "meaning better.\nOn the first line write only the two scores, for Assistant 1 and Assistant 2, "
        "separated by a space. Then explain your judgement in detail, without bias, and without letting the "
        "order in which the answers appear affect it."
    ),
}
_BOX = re.compile(r"\[.*?\]")


def parse_pair(review: str) -> tuple[float, float] | None:
    """Official parse: first line, commas as spaces, exactly two numbers."""
    parts = review.split("\n")[0].replace(",", " ").split(" ")
    try:
        return (float(parts[0]), float(parts[1])) if len(parts) == 2 else None
    except ValueError:
        return None


def strip_boxes(answer: str) -> str:
    """Ferret's reference answers carry `` [x1, y1, x2, y2]`` boxes; the official scorer removes them."""
    for match in _BOX.findall(answer):
        answer = answer.replace(" " + match, "")
    return answer


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


class FerretReasoning(Task):
    name = "ferret"
    title = "Ferret-Bench referring reasoning"
    judge = "required"
    anchor_key = "ferret"
    aux_files: ClassVar[dict[str, str]] = {
        "question": "Ferret refer_reason/question.jsonl",
        "context": "Ferret refer_reason/context.jsonl",
        "answer": "Ferret refer_reason/answer.jsonl (GPT-4 reference answers)",
        "rule": "Ferret rule.json (optional; official judge rubric)",
    }

    def load(self, data: Path, media_root: Path) -> list[EvalItem]:
        items = []
        for index, entry in enumerate(load_json_or_jsonl(data)):
            qid = entry.get("question_id", f"noid-{index}") if isinstance(entry, dict) else f"noid-{index}"
            ref = (
                {"question_id": qid, "image": entry.get("image"), "category": entry.get("category")}
                if isinstance(entry, dict)
                else {"question_id": qid}
            )
            items.append(EvalItem(str(qid), index, ref, self._builder(str(qid), entry, media_root)))
        return items

    def _builder(self, item_id: str, entry: Any, media_root: Path) -> Callable[[], EvalRequest]:
        def build() -> EvalRequest:
            if not isinstance(entry, dict) or "annotation" not in entry or "text" not in entry:
                raise BadItem("entry lacks annotation or text")
            segmentation = (entry["annotation"] or {}).get("segmentation")
            if segmentation is None:
                raise BadItem("annotation has no segmentation")
            path = resolve_media(media_root, str(entry.get("image")), ("", "train2017", "val2017"))
            path_str = require_file(path)
            height, width = entry.get("height"), entry.get("width")
            if isinstance(segmentation, list) and (height is None or width is None):
                from PIL import Image

                with Image.open(path) as image:
                    height, width = shown_size(image)  # upright, as the image is loaded
            mask = decode_segmentation(segmentation, height, width)
            text = str(entry["text"])
            if self.variant == "lite":
                text = FERRET_LITE_PREFIX + text.replace(REGION_PLACEHOLDER, "")
            return EvalRequest(id=item_id, media=path_str, question=text, regions=[{0: mask}])

        return build

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        judge = ctx.judge()
        for key in ("question", "context", "answer"):
            if key not in ctx.aux:
                raise FileNotFoundError(
                    f"Ferret-Bench scoring needs --aux {key}=PATH ({self.aux_files[key]})"
                )
        questions = {str(q["question_id"]): q for q in _read_jsonl(ctx.aux["question"])}
        contexts = {c["image"]: c for c in _read_jsonl(ctx.aux["context"])}
        answers = {str(a["question_id"]): a for a in _read_jsonl(ctx.aux["answer"])}
        rules = json.loads(Path(ctx.aux["rule"]).read_text(encoding="utf-8")) if "rule" in ctx.aux else None
        requests, categories = [], []
        for r in records:
            question = questions.get(r["id"])
            if question is None or r["id"] not in answers:
                raise ValueError(f"question {r['id']} is missing from the Ferret question/answer files")
            category = question.get("category", "refer_reason")
            rule = rules[category] if rules is not None else DEFAULT_RULE
            judge.register_prompt(f"ferret_{category}", SYSTEM_PROMPT + rule["prompt"])
            role, model_answer = rule["role"], "" if r.get("error") else r["pred"]
            reference = strip_boxes(answers[r["id"]]["text"])
            # the official prompt writes "[Context]\" before the caption (an f-string typo), kept for parity
            content = (
                f"[Context]\\{contexts.get(question['image'], {}).get('text', '')}\n\n"
                f"[Question]\n{question['text']}\n\n"
                f"[{role} 1]\n{model_answer}\n\n[End of {role} 1]\n\n"
                f"[{role} 2]\n{reference}\n\n[End of {role} 2]\n\n"
                f"[System]\n{rule['prompt']}\n\n"
            )
            messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]
            requests.append((f"{r['id']}:review", messages))
            categories.append(category)
        items, unparsed = [], 0
        for r, category, reply in zip(records, categories, judge.complete_many(requests)):
            pair = parse_pair(reply)
            unparsed += pair is None
            model_score, ref_score = pair if pair is not None else (-1.0, -1.0)
            items.append({"id": r["id"], "category": category, "model": model_score, "reference": ref_score})
        model_mean = sum(i["model"] for i in items) / len(items) if items else 0.0
        ref_mean = sum(i["reference"] for i in items) / len(items) if items else 0.0
        notes = [
            "rubric: "
            + ("Ferret rule.json" if rules is not None else "project rubric (rule.json not given)"),
            *failure_notes(records),
        ]
        if unparsed:
            notes.append(
                f"{unparsed} reviews had no two-number first line and count as (-1, -1), as officially"
            )
        metrics = {"Reasoning": 100.0 * model_mean / ref_mean if ref_mean else 0.0}
        return TaskResult(
            metrics=metrics, counts=counts_of(records), notes=notes, item_scores=items, judge=judge.identity()
        )
