"""DLC-Bench detailed localized captioning (NVIDIA, DAM), scored by an LLM answering multiple-choice
questions about each description.

Protocols: ``gpt`` (PixelRefer's script: the judge model with its default sampling settings; the paper
used ``gpt-4-0409``) and ``llama`` (DAM's official protocol: ``meta-llama/Meta-Llama-3.1-8B-Instruct``
served by vLLM, temperature 0, 300 max tokens). The scorer logic (recognition question, positive and
negative questions, option parsing, capping at 0 after a wrong recognition) follows DAM's ``eval.py``
(Apache-2.0), whose prompt text is reproduced verbatim.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

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
from pixelrefer.processing.prompts import BENCHMARK_PROMPTS

logger = logging.getLogger(__name__)

PROMPT = BENCHMARK_PROMPTS["dlc_bench"]
JUDGE_PROMPT = """Answer the multiple-choice question based on the text description of an object in an image. You need to follow these rules:
1. Do not output any reasoning. Do not perform correction. Please output exactly one answer from the choices for each question. Do not repeat the question.
2. There is no need for exact matching. Please choose the closest option based on the description.

The description is:
{pred_caption}

From the description above, please answer the following question with one of the choices:
{question_text_str}
"""
PROTOCOLS: dict[str, dict[str, Any]] = {
    "gpt": {"temperature": None, "max_tokens": None, "paper_judge": "gpt-4-0409"},
    "llama": {"temperature": 0.0, "max_tokens": 300, "paper_judge": "meta-llama/Meta-Llama-3.1-8B-Instruct"},
}
_LABELS = "abcde"


def parse_choice(pred: str, choices: list[str]) -> int | None:
    """DAM's option parser: exact/prefixed match, unique substring, 'x.' prefix, last occurrence, ..."""
    pred = pred.strip().lower()
    if not pred:
        return None
    found = []
    for index, choice in enumerate(choices):
        choice = choice.strip().lower()
        if choice == pred or pred == f"{_LABELS[index]}. {choice}" or pred == _LABELS[index]:
            return index
        if choice in pred:
            found.append((index, pred.index(choice), len(choice)))
    if len(found) == 1:
        return found[0][0]
    if len(pred) > 1 and pred[0] in _LABELS and pred[1] == ".":
        return _LABELS.index(pred[0])
    if found:
        position = max(f[1] for f in found)
        return max((f for f in found if f[1] == position), key=lambda f: f[2])[0]
    inside = [(i, len(c)) for i, c in enumerate(choices) if pred in c.strip().lower()]
    if inside:
        return max(inside, key=lambda m: m[1])[0]
    if pred[0] in _LABELS and (len(pred) == 1 or pred[1] == "\n"):
        return _LABELS.index(pred[0])
    return None


def recognition_question(class_name: str) -> dict[str, Any]:
    import inflect

    engine = inflect.engine()
    plural = class_name != "bus" and engine.singular_noun(class_name) is not False
    if plural:
        text = (
            f"Is it likely that the objects in the description are {class_name} or objects of a similar type? "
            "Again, It does not have to be an exact match."
        )
    else:
        text = (
            f"Is it likely that the object in the description is {engine.a(class_name)} or an object of a "
            "similar type? Again, It does not have to be an exact match."
        )
    return {"question": text, "choices": [["Yes", "correct"], ["No", "incorrect"]], "type": "recognition"}


def question_prompt(description: str, question: dict[str, Any]) -> str:
    options = "".join(f"{'ABCDE'[i]}. {choice}\n" for i, (choice, _) in enumerate(question["choices"]))
    return JUDGE_PROMPT.format(
        pred_caption=description, question_text_str=f"{question['question']}\n{options}".strip()
    )


def score_description(answers: list[str], questions: list[dict[str, Any]]) -> dict[str, Any]:
    """Positive / negative scores of one description from the judge's answers (recognition first)."""
    recognised: bool | None = None
    positives: list[float] = []
    negatives: list[float] = []
    for answer, question in zip(answers, questions):
        index = parse_choice(answer, [c for c, _ in question["choices"]])
        value = question["choices"][index][1] if index is not None else 0
        if question["type"] == "recognition":
            recognised = value == "correct"
            continue
        value = float(value)
        if recognised is False:
            value = min(0.0, value)
        (positives if question["type"] == "positive" else negatives).append(value)
    return {
        "recognised": recognised,
        "score_pos": sum(positives) / len(positives) if positives else 0.0,
        "score_neg": sum(negatives) / len(negatives) if negatives else None,
    }


class DLCBench(Task):
    name = "dlc_bench"
    title = "DLC-Bench detailed localized captioning"
    judge = "required"
    anchor_key = "dlc_bench"
    aux_files: ClassVar[dict[str, str]] = {
        "qa": "DLC-Bench qa.json (questions per annotation id)",
        "class_names": "DLC-Bench class_names.json (category name per annotation id)",
    }

    def load(self, data: Path, media_root: Path) -> list[EvalItem]:
        coco = load_json_or_jsonl(data)
        cat_ids = {c["id"] for c in coco.get("categories", [])}
        by_image: dict[Any, list[dict[str, Any]]] = {}
        for ann in coco.get("annotations", []):
            if not cat_ids or ann.get("category_id") in cat_ids:
                by_image.setdefault(ann.get("image_id"), []).append(ann)
        items: list[EvalItem] = []
        for image in coco.get("images", []):
            for ann in by_image.get(image.get("id"), []):
                item_id = str(ann.get("id", f"noid-{len(items)}"))
                ref = {"image": image.get("file_name")}
                items.append(
                    EvalItem(item_id, len(items), ref, self._builder(item_id, image, ann, media_root))
                )
        return items

    def _builder(
        self, item_id: str, image: dict[str, Any], ann: dict[str, Any], media_root: Path
    ) -> Callable[[], EvalRequest]:
        def build() -> EvalRequest:
            if "segmentation" not in ann or "file_name" not in image:
                raise BadItem("annotation lacks segmentation or image file_name")
            mask = decode_segmentation(ann["segmentation"], image.get("height"), image.get("width"))
            path = require_file(resolve_media(media_root, image["file_name"]))
            return EvalRequest(id=item_id, media=path, question=PROMPT, regions=[{0: mask}])

        return build

    def judge_settings(self, options: dict[str, Any]) -> dict[str, Any]:
        protocol = options.get("dlc_protocol", "gpt")
        if protocol not in PROTOCOLS:
            raise ValueError(f"DLC-Bench protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
        return {k: PROTOCOLS[protocol][k] for k in ("temperature", "max_tokens")}

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        judge = ctx.judge()
        for key in ("qa", "class_names"):
            if key not in ctx.aux:
                raise FileNotFoundError(f"DLC-Bench scoring needs --aux {key}=PATH ({self.aux_files[key]})")
        qa = json.loads(Path(ctx.aux["qa"]).read_text(encoding="utf-8"))
        class_names = json.loads(Path(ctx.aux["class_names"]).read_text(encoding="utf-8"))
        judge.register_prompt("dlc_bench", JUDGE_PROMPT)
        missing = [r["id"] for r in records if r["id"] not in qa]
        if missing:
            raise ValueError(
                f"predictions for annotations {missing[:5]} have no questions in qa.json: wrong --aux qa?"
            )
        questions = {
            r["id"]: [recognition_question(class_names[r["id"]]), *qa[r["id"]]]
            for r in records
            if not r.get("error")
        }
        requests = [
            (f"{r['id']}:q{i}", [{"role": "user", "content": question_prompt(r["pred"], q)}])
            for r in records
            if not r.get("error")
            for i, q in enumerate(questions[r["id"]])
        ]
        replies = iter(judge.complete_many(requests))
        items = []
        for r in records:
            if r.get("error"):
                items.append({"id": r["id"], "recognised": None, "score_pos": 0.0, "score_neg": 0.0})
                continue
            answers = [next(replies) for _ in questions[r["id"]]]
            items.append({"id": r["id"], **score_description(answers, questions[r["id"]])})
        pos = [i["score_pos"] for i in items]
        neg = [i["score_neg"] for i in items if i["score_neg"] is not None]
        avg_pos = 100.0 * sum(pos) / len(pos) if pos else 0.0
        avg_neg = 100.0 * sum(neg) / len(neg) if neg else 0.0
        protocol = ctx.options.get("dlc_protocol", "gpt")
        notes = [
            f"protocol: {protocol} (paper judge: {PROTOCOLS[protocol]['paper_judge']})",
            *failure_notes(records),
        ]
        missing = len(set(qa) - {r["id"] for r in records})
        if missing:
            notes.append(f"{missing} annotations of qa.json have no prediction in this run (partial run)")
        return TaskResult(
            metrics={"Pos": avg_pos, "Neg": avg_neg, "Avg": (avg_pos + avg_neg) / 2},
            counts=counts_of(records),
            notes=notes,
            item_scores=items,
            judge=judge.identity(),
        )
