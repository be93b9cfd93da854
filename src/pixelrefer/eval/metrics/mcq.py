"""Multiple-choice answers: the official letter extraction rules and per-type accuracy."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_CLOSE_LETTER = re.compile(r"([A-Z])\)")


def videorefer_letter(text: str) -> str:
    """VideoRefer-Bench-Q rule: ``(X)``, else ``X)``, else the first character after removing dots."""
    match = _PAREN_LETTER.search(text) or _CLOSE_LETTER.search(text)
    if match:
        return match.group(1)
    stripped = text.replace(".", "")
    return stripped[0] if stripped else ""


def answer_letter(answer: str) -> str:
    """Ground-truth letter of an answer such as ``"(B) a red car"`` (the whole string if no ``(X)``)."""
    match = _PAREN_LETTER.search(answer)
    return match.group(1) if match else answer.strip()


def mvbench_choice(output: str, options: list[str]) -> int | None:
    """MVBench rule: the first option letter found (optionally in parentheses), else an option's text."""
    if not options:
        return None
    letters = [chr(ord("A") + i) for i in range(len(options))]
    cleaned = output.replace("answer", "").replace("Answer", "")
    found = re.findall(rf"[\(,\ ]*[{letters[0]}-{letters[-1]}][\),\ ]*", cleaned)
    if found:
        letter = found[0].strip().strip("()")
        return letters.index(letter) if letter in letters else None
    for index, option in enumerate(options):
        if option.strip().strip(".").lower() in cleaned.lower():
            return index
    return None


def accuracy_by_type(outcomes: Iterable[tuple[str, bool]]) -> tuple[dict[str, float], float, dict[str, int]]:
    """Per-type accuracy (percent), overall accuracy over all items (percent), and per-type counts."""
    right: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for kind, correct in outcomes:
        total[kind] += 1
        right[kind] += int(correct)
    per_type = {kind: 100.0 * right[kind] / total[kind] for kind in total}
    all_total = sum(total.values())
    overall = 100.0 * sum(right.values()) / all_total if all_total else 0.0
    return per_type, overall, dict(total)
