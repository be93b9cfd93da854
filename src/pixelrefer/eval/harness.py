"""Predict -> resumable JSONL, shard and merge, then score as a separate step.

Files in the output folder (one folder per model x benchmark run):

* ``predictions.jsonl`` (or ``predictions.shard-KKK-of-NNN.jsonl``): one record per item, appended and
  fsynced as produced; a restarted run skips ids already there; finished files are rewritten atomically
  in dataset order, so an interrupted-and-resumed run ends with the same bytes as an uninterrupted one.
* ``run.json`` (``run.shard-…json``): benchmark, data, model and settings of the prediction run.
* ``results.json``, ``results.md``, ``item_scores.jsonl``, ``judge_calls.jsonl``: written by scoring,
  which never modifies predictions.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelrefer.eval.io import JsonlAppender, atomic_write_json, atomic_write_text, dump_line, read_jsonl
from pixelrefer.eval.predictor import Predictor
from pixelrefer.eval.tasks.base import ScoreContext, Task
from pixelrefer.eval.types import BadItem, EvalItem, EvalRequest

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
MAX_CONSECUTIVE_MODEL_ERRORS = 10
MALFORMED_DATA_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, OSError)


class RunMismatch(ValueError):
    """The output folder holds a run of another benchmark, data file, model or sharding."""


def predictions_path(out_dir: Path, num_shards: int = 1, shard: int = 0) -> Path:
    if num_shards == 1:
        return out_dir / PREDICTIONS
    return out_dir / f"predictions.shard-{shard:03d}-of-{num_shards:03d}.jsonl"


def run_info_path(out_dir: Path, num_shards: int = 1, shard: int = 0) -> Path:
    return out_dir / ("run.json" if num_shards == 1 else f"run.shard-{shard:03d}-of-{num_shards:03d}.json")


def shard_items(items: list[EvalItem], num_shards: int, shard: int) -> list[EvalItem]:
    """Contiguous chunks of ceil(n / num_shards) items, as the official ``get_chunk``."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in 0..{num_shards - 1}, got {shard}")
    size = math.ceil(len(items) / num_shards) if items else 0
    return items[shard * size : (shard + 1) * size]


def _record(item: EvalItem, pred: str | None, error: str | None, kind: str | None) -> dict[str, Any]:
    return {
        "index": item.index,
        "id": item.id,
        "pred": pred,
        "error": error,
        "error_kind": kind,
        "ref": item.reference,
    }


def _check_run_info(path: Path, info: dict[str, Any]) -> None:
    if not path.exists():
        atomic_write_json(path, info)
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    keys = ("benchmark", "variant", "data", "num_shards", "shard", "model")
    diff = [k for k in keys if old.get(k) != info.get(k)]
    if diff:
        raise RunMismatch(
            f"{path.parent} already holds a run with different {', '.join(diff)} "
            f"({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); use another --out folder"
        )
    atomic_write_json(path, {**old, "resumed": int(old.get("resumed", 0)) + 1})


@dataclass
class PredictSummary:
    path: Path
    total: int
    skipped: int
    predicted: int
    failed: int


class _Runner:
    """The prediction loop of one shard; keeps the consecutive-model-error count."""

    def __init__(
        self, predictor: Predictor, out: JsonlAppender, progress: Callable[[int], None] | None
    ) -> None:
        self.predictor, self.out, self.progress = predictor, out, progress
        self.consecutive_errors = 0

    def run_batch(self, batch: list[EvalItem]) -> None:
        requests: dict[str, EvalRequest] = {}
        data_errors: dict[str, str] = {}
        for item in batch:
            try:
                requests[item.id] = item.build()
            except BadItem as exc:
                data_errors[item.id] = str(exc)
            except MALFORMED_DATA_ERRORS as exc:  # an annotation shaped unlike the benchmark's format
                data_errors[item.id] = f"malformed entry ({type(exc).__name__}: {exc})"
        answers, model_errors = self._predict([i for i in batch if i.id in requests], requests)
        records = []
        for item in batch:
            if item.id in data_errors:
                records.append(_record(item, None, data_errors[item.id], "data"))
            elif item.id in model_errors:
                records.append(_record(item, None, model_errors[item.id], "model"))
            else:
                records.append(_record(item, answers[item.id], None, None))
        self.out.write_many(records)
        if self.progress is not None:
            self.progress(len(batch))

    def _predict(
        self, items: list[EvalItem], requests: dict[str, EvalRequest]
    ) -> tuple[dict[str, str], dict[str, str]]:
        if not items:
            return {}, {}
        try:
            texts = self.predictor.predict([requests[i.id] for i in items])
            if len(texts) != len(items):
                raise RuntimeError(f"predictor returned {len(texts)} answers for {len(items)} requests")
            self.consecutive_errors = 0
            return {i.id: str(t) for i, t in zip(items, texts)}, {}
        except Exception as exc:
            if len(items) > 1:
                answers: dict[str, str] = {}
                errors: dict[str, str] = {}
                for item in items:
                    a, e = self._predict([item], requests)
                    answers.update(a)
                    errors.update(e)
                return answers, errors
            self.consecutive_errors += 1
            logger.warning("item %s failed in the model: %s", items[0].id, exc)
            if self.consecutive_errors >= MAX_CONSECUTIVE_MODEL_ERRORS:
                raise RuntimeError(
                    f"{self.consecutive_errors} items in a row failed in the model; last: {exc}"
                ) from exc
            return {}, {items[0].id: f"{type(exc).__name__}: {exc}"}


def predict(
    task: Task,
    items: list[EvalItem],
    predictor: Predictor,
    out_dir: Path,
    *,
    run_info: dict[str, Any],
    num_shards: int = 1,
    shard: int = 0,
    batch_size: int = 1,
    retry_model_errors: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PredictSummary:
    """Predict every item of this shard that the predictions file does not hold yet, then finalise it."""
    mine = shard_items(items, num_shards, shard)
    path = predictions_path(out_dir, num_shards, shard)
    info = {
        **run_info,
        "benchmark": task.name,
        "variant": task.variant,
        "num_shards": num_shards,
        "shard": shard,
        "expected_items": len(mine),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_run_info(run_info_path(out_dir, num_shards, shard), info)
    known = {i.id for i in mine}
    if len(known) != len(mine):
        raise ValueError(f"{task.name}: the benchmark file has duplicate item ids")
    existing = _existing_records(path, known, retry_model_errors)
    todo = [i for i in mine if i.id not in existing]
    if progress is not None and existing:
        progress(len(mine) - len(todo))
    logger.info(
        "%s shard %d/%d: %d items, %d already done", task.name, shard, num_shards, len(mine), len(existing)
    )
    with JsonlAppender(path) as out:
        runner = _Runner(predictor, out, progress)
        for start in range(0, len(todo), batch_size):
            runner.run_batch(todo[start : start + batch_size])
    final = finalize(path)
    failed = sum(1 for r in final if r.get("error"))
    return PredictSummary(path, len(mine), len(mine) - len(todo), len(todo), failed)


def _existing_records(path: Path, known: set[str], retry_model_errors: bool) -> dict[str, dict[str, Any]]:
    records = read_jsonl(path)
    foreign = [r["id"] for r in records if r["id"] not in known]
    if foreign:
        raise RunMismatch(
            f"{path} holds ids not in this benchmark shard (e.g. {foreign[0]}); use another --out"
        )
    if retry_model_errors and any(r.get("error_kind") == "model" for r in records):
        records = [r for r in records if r.get("error_kind") != "model"]
        atomic_write_text(path, "".join(dump_line(r) for r in records))
    by_id: dict[str, dict[str, Any]] = {}
    for r in records:
        by_id.setdefault(r["id"], r)
    if len(by_id) != len(records):
        atomic_write_text(path, "".join(dump_line(r) for r in by_id.values()))
    return by_id


def finalize(path: Path) -> list[dict[str, Any]]:
    """Rewrite a predictions file atomically in dataset order, one record per id."""
    by_id: dict[str, dict[str, Any]] = {}
    for record in read_jsonl(path):
        by_id.setdefault(record["id"], record)
    ordered = sorted(by_id.values(), key=lambda r: r["index"])
    atomic_write_text(path, "".join(dump_line(r) for r in ordered))
    return ordered


def merge_shards(out_dir: Path, num_shards: int) -> Path:
    """Merge complete shard files into ``predictions.jsonl`` (dataset order); refuse incomplete shards."""
    merged: dict[str, dict[str, Any]] = {}
    infos = []
    for shard in range(num_shards):
        info_path, path = (
            run_info_path(out_dir, num_shards, shard),
            predictions_path(out_dir, num_shards, shard),
        )
        if not info_path.exists():
            raise FileNotFoundError(f"shard {shard} of {num_shards} has not been run ({info_path} missing)")
        info = json.loads(info_path.read_text(encoding="utf-8"))
        records = read_jsonl(path)
        if len({r["id"] for r in records}) != info["expected_items"]:
            raise RuntimeError(
                f"shard {shard} is incomplete: {len(records)}/{info['expected_items']} items; rerun it"
            )
        infos.append(info)
        for r in records:
            if r["id"] in merged:
                raise RuntimeError(f"item {r['id']} appears in two shards")
            merged[r["id"]] = r
    target = out_dir / PREDICTIONS
    atomic_write_text(
        target, "".join(dump_line(r) for r in sorted(merged.values(), key=lambda r: r["index"]))
    )
    atomic_write_json(
        out_dir / "run.json",
        {
            **infos[0],
            "num_shards": num_shards,
            "shard": None,
            "expected_items": len(merged),
            "merged_from": num_shards,
        },
    )
    return target


def load_predictions(out_dir: Path, num_shards: int = 1) -> list[dict[str, Any]]:
    path = out_dir / PREDICTIONS
    if num_shards > 1:  # always re-merge: a shard may have been resumed or retried since the last merge
        merge_shards(out_dir, num_shards)
    if not path.exists():
        raise FileNotFoundError(f"no predictions in {out_dir}: run prediction first")
    return read_jsonl(path)


def score(
    task: Task,
    out_dir: Path,
    ctx: ScoreContext,
    *,
    num_shards: int = 1,
    extra_info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the predictions of ``out_dir`` and write results.json / results.md / item_scores.jsonl."""
    from pixelrefer.eval.report import build_report, to_markdown

    records = load_predictions(out_dir, num_shards)
    info_path = out_dir / "run.json"
    run_info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    try:
        result = task.score(records, ctx)
    finally:
        if ctx.judge_used is not None:
            ctx.judge_used.close()
    report = build_report(task, result, {**run_info, **(extra_info or {})})
    atomic_write_text(out_dir / "item_scores.jsonl", "".join(dump_line(r) for r in result.item_scores))
    atomic_write_json(out_dir / "results.json", report)
    atomic_write_text(out_dir / "results.md", to_markdown(report))
    return report
