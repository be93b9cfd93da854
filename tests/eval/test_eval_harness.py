"""Resumable, sharded prediction; scoring as a separate step; bad data counted, never dropped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from eval_helpers import FakePredictor, Killed, vg_file

from pixelrefer.eval.harness import RunMismatch, merge_shards, predict, predictions_path, score
from pixelrefer.eval.io import read_jsonl
from pixelrefer.eval.tasks import ScoreContext, get_task
from pixelrefer.eval.types import EvalRequest

RUN = {"model": "fake", "data": "vg"}


def _answer(request: EvalRequest) -> str:
    return f"answer for {request.id}"


def _run(tmp_path: Path, out: Path, predictor: FakePredictor, **kw) -> Path:
    task = get_task("vg")
    items = task.load(vg_file(tmp_path / "data", n=7, bad=True), tmp_path / "data" / "images")
    return predict(task, items, predictor, out, run_info=RUN, **kw).path


def test_killed_run_resumes_to_identical_file(tmp_path: Path) -> None:
    reference = _run(tmp_path, tmp_path / "full", FakePredictor(_answer)).read_bytes()
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        _run(tmp_path, out, FakePredictor(_answer, fail_after=3))
    path = predictions_path(out)
    assert len(read_jsonl(path)) == 3
    with open(path, "a", encoding="utf-8") as handle:  # a write torn by the kill
        handle.write('{"index": 3, "id": "3", "pr')
    resumed = FakePredictor(_answer)
    _run(tmp_path, out, resumed)
    assert path.read_bytes() == reference
    assert [r.id for r in resumed.seen] == [
        "3",
        "4",
        "5",
        "6",
    ]  # nothing recomputed, bad items never reach it
    again = FakePredictor(_answer)
    _run(tmp_path, out, again)
    assert again.seen == [] and path.read_bytes() == reference
    assert json.loads((out / "run.json").read_text())["resumed"] == 2


def test_shards_merge_to_the_unsharded_file(tmp_path: Path) -> None:
    reference = _run(tmp_path, tmp_path / "full", FakePredictor(_answer)).read_bytes()
    out = tmp_path / "sharded"
    _run(tmp_path, out, FakePredictor(_answer), num_shards=3, shard=0)
    with pytest.raises(FileNotFoundError, match="shard 1 of 3 has not been run"):
        merge_shards(out, 3)
    for shard in (2, 1):
        _run(tmp_path, out, FakePredictor(_answer), num_shards=3, shard=shard)
    assert merge_shards(out, 3).read_bytes() == reference


def test_bad_data_is_reported_and_counted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(tmp_path, out, FakePredictor(lambda r: "a red square"))
    records = read_jsonl(predictions_path(out))
    errors = {r["id"]: r["error"] for r in records if r["error"]}
    assert set(errors) == {"7", "8", "9"}
    assert "media not found" in errors["7"] and "box" in errors["8"] and "empty" in errors["9"]
    before = hashlib.sha256(predictions_path(out).read_bytes()).hexdigest()
    report = score(get_task("vg"), out, ScoreContext(out_dir=out, options={"meteor": False}))
    assert report["counts"] == {"items": 10, "predicted": 7, "failed": 3}
    assert any("item 7: media not found" in n for n in report["notes"])
    assert hashlib.sha256(predictions_path(out).read_bytes()).hexdigest() == before
    assert (out / "results.md").exists() and json.loads((out / "results.json").read_text())["metrics"][
        "BLEU-1"
    ] > 0
    good_only = [r for r in records if not r["error"]]
    assert report["metrics"]["BLEU-1"] < 100.0 * len(good_only) / len(records) + 1e-6


def test_output_folder_of_another_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(tmp_path, out, FakePredictor(_answer))
    task = get_task("vg")
    items = task.load(tmp_path / "data" / "vg_val_5000.json", tmp_path / "data" / "images")
    with pytest.raises(RunMismatch, match="model"):
        predict(task, items, FakePredictor(_answer), out, run_info={**RUN, "model": "other"})


def test_model_errors_recorded_then_retried(tmp_path: Path) -> None:
    attempts = {"2": 0}

    def flaky(request: EvalRequest) -> str:
        if request.id == "2":
            attempts["2"] += 1
            if attempts["2"] <= 2:  # the batch call and the one-by-one retry of the first run
                raise ValueError("region too small")
        return "ok"

    out = tmp_path / "run"
    _run(tmp_path, out, FakePredictor(flaky), batch_size=3)
    record = {r["id"]: r for r in read_jsonl(predictions_path(out))}["2"]
    assert record["error_kind"] == "model" and "region too small" in record["error"]
    _run(tmp_path, out, FakePredictor(flaky), retry_model_errors=True)
    records = read_jsonl(predictions_path(out))
    assert [r["id"] for r in records] == [str(i) for i in range(10)]
    assert {r["id"]: r for r in records}["2"]["pred"] == "ok"


def test_systematic_model_failure_aborts(tmp_path: Path) -> None:
    def broken(request: EvalRequest) -> str:
        raise RuntimeError("CUDA out of memory")

    task = get_task("vg")
    items = task.load(vg_file(tmp_path / "data", n=12), tmp_path / "data" / "images")
    with pytest.raises(RuntimeError, match="in a row failed"):
        predict(task, items, FakePredictor(broken), tmp_path / "run", run_info=RUN)
