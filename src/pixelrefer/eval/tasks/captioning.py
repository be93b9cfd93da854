"""Shared scoring for short region captions (VG, Ref-L4, HC-STVG): COCO caption metrics."""

from __future__ import annotations

from pixelrefer.eval.metrics.caption import caption_metrics
from pixelrefer.eval.tasks.base import Record, ScoreContext, TaskResult, counts_of, failure_notes


def score_captions(
    records: list[Record],
    ctx: ScoreContext,
    predictions: dict[str, str] | None = None,
    references: dict[str, str] | None = None,
) -> TaskResult:
    """Corpus caption metrics over all records; failed items enter with an empty prediction.

    ``predictions`` / ``references`` override ``record['pred']`` / ``record['ref']['Answer']`` by id
    (Ref-L4's summarised predictions and its separately published references).
    """
    preds = ["" if r.get("error") else (predictions or {}).get(r["id"], r["pred"]) for r in records]
    refs = [(references or {}).get(r["id"], str(r["ref"].get("Answer", ""))) for r in records]
    result = caption_metrics(
        preds, refs, meteor=bool(ctx.options.get("meteor", True)), spice=bool(ctx.options.get("spice", True))
    )
    notes = [f"tokenizer: {result.tokenizer}", *result.notes, *failure_notes(records)]
    return TaskResult(metrics=result.scores, counts=counts_of(records), notes=notes)
