"""Ref-L4-CLAIR: detailed region captions of Ref-L4 judged by CLAIR (LLM score 0-100, reported /100·100)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pixelrefer.eval.tasks.base import Record, ScoreContext, Task, TaskResult, counts_of, failure_notes
from pixelrefer.eval.tasks.refl4 import load_refl4
from pixelrefer.eval.types import EvalItem

PROMPT = "Please describe <region> in detail."
CLAIR_PROMPT = """\
You are trying to tell if a candidate set of captions is describing the same image as a reference set of captions.
Candidate set:
{candidate_statements}
Reference set:
{target_statements}
On a precise scale from 0 to 100, how likely is it that the candidate set is \
describing the same image as the reference set? (JSON format, with a key "score", \
value between 0 and 100, and a key "reason" with a string value.)
"""  # verbatim from the official clair/clair.py (CLAIR, Chan et al. 2023; Apache-2.0)
_NUMBER = re.compile(r"\d*\.?\d+")


def parse_clair(response: str) -> float | None:
    """Score in [0, 1] from the first JSON object, else the first number (official fallback), else None."""
    try:
        parsed = "{" + response.split("{")[1].split("}")[0] + "}"
        return float(json.loads(parsed)["score"]) / 100.0
    except (IndexError, KeyError, ValueError, TypeError):
        numbers = _NUMBER.findall(response)
        if not numbers:
            return None
        score = float(numbers[0])
        return (score * 100.0 if score < 1 else score) / 100.0


def clair_prompt(candidate: str, references: list[str]) -> str:
    return CLAIR_PROMPT.format(
        candidate_statements=f"- {candidate}\n", target_statements="".join(f"- {t}\n" for t in references)
    )


class RefL4Clair(Task):
    name = "refl4_clair"
    title = "Ref-L4 detailed captions (CLAIR)"
    judge = "required"
    anchor_key = "refl4_clair"

    def load(self, data: Path, media_root: Path) -> list[EvalItem]:
        return load_refl4(data, media_root, PROMPT)

    def score(self, records: list[Record], ctx: ScoreContext) -> TaskResult:
        judge = ctx.judge()
        judge.register_prompt("clair", CLAIR_PROMPT)
        items, unparsed = [], 0
        for r in records:
            score = 0.0
            if not r.get("error"):
                answer = r["ref"]["Answer"]
                refs = answer if isinstance(answer, list) else [answer]
                parsed = None
                for attempt in range(5):
                    reply = judge.complete(f"{r['id']}:clair:{attempt}", [
                        {"role": "user", "content": clair_prompt(r["pred"], refs)}])
                    parsed = parse_clair(reply)
                    if parsed is not None:
                        break
                unparsed += parsed is None
                score = parsed or 0.0
            items.append({"id": r["id"], "CLAIR": score})
        n = len(records)
        metrics = {"CLAIR": 100.0 * sum(i["CLAIR"] for i in items) / n if n else 0.0}
        notes = failure_notes(records)
        if unparsed:
            notes.append(f"{unparsed} judge replies had no score after 5 tries and count as 0")
        return TaskResult(metrics=metrics, counts=counts_of(records), notes=notes, item_scores=items,
                          judge=judge.identity())
