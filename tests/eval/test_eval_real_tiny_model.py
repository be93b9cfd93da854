"""Every benchmark end to end with the real random-weight ``tiny`` model (``PixelRefer.ask_batch``) on CPU.

Scores of a random model mean nothing; what is checked is that each benchmark's real format flows through
the real model and its scorer: every item gets a string answer or a per-item data error, none fails in
the model, and the results count every item.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_files import BUILDERS, JUDGE_REPLIES, synthetic, vg

from pixelrefer.eval.harness import predict, score
from pixelrefer.eval.io import read_jsonl
from pixelrefer.eval.judge import Judge, JudgeConfig
from pixelrefer.eval.tasks import ScoreContext, get_task

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
MAX_NEW_TOKENS = 6


@pytest.fixture(scope="module")
def tiny_predictor():
    from pixelrefer.eval.predictor import PixelReferPredictor

    return PixelReferPredictor("tiny", device="cpu", dtype="float32", max_new_tokens=MAX_NEW_TOKENS)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_benchmark_with_tiny_model(name: str, tmp_path: Path, tiny_predictor, judge_server, embedder) -> None:
    files = synthetic(tmp_path / "d", n=6, seed=2) if name == "synthetic" else BUILDERS[name](tmp_path / "d")
    task = get_task(name)
    out = tmp_path / "out"
    predict(task, task.load(files.data, files.media_root), tiny_predictor, out, run_info={"model": "tiny"})
    records = read_jsonl(out / "predictions.jsonl")
    assert [r for r in records if r["error_kind"] == "model"] == []
    assert all(isinstance(r["pred"], str) for r in records if not r["error"])
    factory = None
    if name in JUDGE_REPLIES:
        server = judge_server(JUDGE_REPLIES[name])
        factory = lambda: Judge(JudgeConfig.resolve(name, server.base_url, "judge"))
    ctx = ScoreContext(
        out_dir=out, aux=files.aux, options={"meteor": False, "embedder": embedder}, judge_factory=factory
    )
    report = score(task, out, ctx)
    failed = sum(1 for r in records if r["error"])
    assert report["counts"] == {"items": len(records), "predicted": len(records) - failed, "failed": failed}
    assert report["metrics"] and all(isinstance(v, float) for v in report["metrics"].values())


def test_cli_runs_and_resumes_with_the_tiny_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pixelrefer.cli.main import app

    files = vg(tmp_path / "d")
    args = [
        "eval",
        "vg",
        "--model",
        "tiny",
        "--data",
        str(files.data),
        "--media-root",
        str(files.media_root),
        "--out",
        str(tmp_path / "out"),
        "--no-meteor",
        "--max-new-tokens",
        str(MAX_NEW_TOKENS),
        "--no-progress",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    first = (tmp_path / "out" / "predictions.jsonl").read_bytes()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["counts"] == {"items": 4, "predicted": 4, "failed": 0}
    assert results["paper"]["PixelRefer-7B"]["CIDEr"] == 168.2 and results["predictor"]["preset"] == "tiny"
    markdown = (tmp_path / "out" / "results.md").read_text()
    assert "- model: `tiny` (variant full, preset tiny" in markdown and "| CIDEr |" in markdown
    assert "transformers" in markdown and "judge: none" in markdown
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "4 resumed" in again.output
    assert (tmp_path / "out" / "predictions.jsonl").read_bytes() == first


def test_cli_torchrun_style_shards_merge_to_the_unsharded_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from pixelrefer.cli.main import app

    files = vg(tmp_path / "d")

    def run(out: str, *extra: str) -> str:
        args = [
            "eval",
            "vg",
            "--model",
            "tiny",
            "--data",
            str(files.data),
            "--media-root",
            str(files.media_root),
            "--out",
            str(tmp_path / out),
            "--no-meteor",
            "--max-new-tokens",
            str(MAX_NEW_TOKENS),
            "--no-progress",
        ]
        result = CliRunner().invoke(app, args + list(extra))
        assert result.exit_code == 0, result.output
        return result.output

    run("single")
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        assert f"shard {rank} done" in run("sharded")
    assert sorted(p.name for p in (tmp_path / "sharded").glob("predictions*")) == [
        "predictions.shard-000-of-002.jsonl",
        "predictions.shard-001-of-002.jsonl",
    ]
    run("sharded", "--score-only")
    merged = (tmp_path / "sharded" / "predictions.jsonl").read_bytes()
    assert merged == (tmp_path / "single" / "predictions.jsonl").read_bytes()
    assert json.loads((tmp_path / "sharded" / "results.json").read_text())["counts"]["items"] == 4


def test_cli_judged_benchmark_with_flags(tmp_path: Path, judge_server) -> None:
    from typer.testing import CliRunner

    from pixelrefer.cli.main import app

    server = judge_server(JUDGE_REPLIES["dlc_bench"])
    files = BUILDERS["dlc_bench"](tmp_path / "d")
    args = [
        "eval",
        "dlc_bench",
        "--model",
        "tiny",
        "--data",
        str(files.data),
        "--media-root",
        str(files.media_root),
        "--out",
        str(tmp_path / "out"),
        "--max-new-tokens",
        str(MAX_NEW_TOKENS),
        "--no-progress",
        "--aux",
        f"qa={files.aux['qa']}",
        "--aux",
        f"class_names={files.aux['class_names']}",
        "--judge-base-url",
        server.base_url,
        "--judge-model",
        "llama-judge",
        "--dlc-protocol",
        "llama",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["judge"]["model"] == "llama-judge" and results["judge"]["temperature"] == 0.0
    assert {r["body"]["max_tokens"] for r in server.requests} == {300}
    assert set(results["metrics"]) == {"Pos", "Neg", "Avg"}
