"""Ref-L4-CLAIR: detailed region captions of Ref-L4 judged by CLAIR (LLM score 0-100, reported /100·100)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pixelrefer.eval.tasks.base import Record, ScoreContext, Task, TaskResult, counts_of, failure_notes
from pixelrefer.eval.tasks.refl4 import load_refl4
from pixelrefer.eval.types import EvalItem
from pixelrefer.processing.prompts import BENCHMARK_PROMPTS

PROMPT = BENCHMARK_PROMPTS["refl4_clair"]
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
MAX_TRIES = 5
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


def _references(record: Record) -> list[str]:
    answer = record["ref"]["Answer"]
    return [str(a) for a in answer] if isinstance(answer, list) else [str(answer)]


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
        ok = [r for r in records if not r.get("error")]
        prompts = {
            r["id"]: [{"role": "user", "content": clair_prompt(r["pred"], _references(r))}] for r in ok
        }
        replies = judge.complete_many([(f"{r['id']}:clair:0", prompts[r["id"]]) for r in ok])
        parsed = {r["id"]: parse_clair(reply) for r, reply in zip(ok, replies)}
        for item_id in [k for k, v in parsed.items() if v is None]:
            for attempt in range(1, MAX_TRIES):  # the official scorer asks up to 5 times
                parsed[item_id] = parse_clair(judge.complete(f"{item_id}:clair:{attempt}", prompts[item_id]))
                if parsed[item_id] is not None:
                    break
        unparsed = sum(v is None for v in parsed.values())
        items = [{"id": r["id"], "CLAIR": parsed.get(r["id"]) or 0.0} for r in records]
        n = len(records)
        metrics = {"CLAIR": 100.0 * sum(i["CLAIR"] for i in items) / n if n else 0.0}
        notes = failure_notes(records)
        if unparsed:
            notes.append(f"{unparsed} judge replies had no score after 5 tries and count as 0")
        return TaskResult(
            metrics=metrics, counts=counts_of(records), notes=notes, item_scores=items, judge=judge.identity()
        )
