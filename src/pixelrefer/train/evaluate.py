"""Exact-match answer accuracy of a model on a data file, by task (greedy decoding, left padding).

A quick check for training runs; the benchmark harness with all metrics lives in :mod:`pixelrefer.eval`.
Only single-turn samples (one question, one answer) are scored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from pixelrefer.processing.processor import PixelReferProcessor
from pixelrefer.train.dataset import SupervisedDataset, encode_parsed

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 48


@dataclass
class AccuracyReport:
    correct: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[dict[str, str]] = field(default_factory=list)

    def add(self, task: str, prediction: str, answer: str) -> None:
        self.total[task] += 1
        self.correct[task] += int(prediction.strip() == answer.strip())
        if len(self.examples) < 40 and prediction.strip() != answer.strip():
            self.examples.append({"task": task, "prediction": prediction, "answer": answer})

    def accuracy(self) -> dict[str, float]:
        out = {task: self.correct[task] / n for task, n in sorted(self.total.items())}
        total = sum(self.total.values())
        out["all"] = sum(self.correct.values()) / total if total else 0.0
        return out


def task_of(raw: dict[str, Any]) -> str:
    meta = raw.get("meta") or {}
    return f"{meta.get('media', 'image')}/{meta.get('task', 'unknown')}"


@torch.no_grad()
def answer_accuracy(model: Any, processor: PixelReferProcessor, dataset: SupervisedDataset,
                    tasks: Sequence[str] | None = None, batch_size: int = 8,
                    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, progress: bool = False) -> AccuracyReport:
    """Greedy answers vs the reference answer of every single-turn sample (optionally only ``tasks``,
    matched against ``media/task`` or ``task``)."""
    model.eval()
    device = next(model.parameters()).device
    picked = []
    for i, raw in enumerate(dataset.samples):
        task = task_of(raw)
        if tasks is None or task in tasks or task.split("/")[1] in tasks:
            picked.append((i, task))
    report = AccuracyReport()
    eos = processor.tokenizer.eos_token_id
    for start in tqdm(range(0, len(picked), batch_size), disable=not progress, desc="eval", unit="batch"):
        chunk = picked[start:start + batch_size]
        encoded, answers = [], []
        for i, _ in chunk:
            parsed = dataset.parsed(i)
            user = [m for m in parsed.messages if m["role"] != "assistant"]
            answers.append(next(m["content"] for m in parsed.messages if m["role"] == "assistant"))
            encoded.append(encode_parsed(processor, parsed, with_labels=False, messages=user[:1]))
        batch = processor.collate(encoded, padding_side="left").to(device)
        out = model.generate(**batch.as_kwargs(), max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=eos, pad_token_id=processor.pad_id)
        texts = processor.tokenizer.batch_decode(out[:, batch.input_ids.shape[1]:], skip_special_tokens=True)
        for (_, task), text, answer in zip(chunk, texts, answers):
            report.add(task, text, answer)
    return report
