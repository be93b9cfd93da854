"""LLM-judged benchmarks against a fake OpenAI-compatible server on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmark_files import (
    VIDEOREFER_D_REPLY,
    dlc_bench,
    dlc_judge,
    ferret,
    ferret_judge,
    refl4,
    user_text,
    videorefer_d,
)
from eval_helpers import FakePredictor, write_json

from pixelrefer.eval.harness import predict, score
from pixelrefer.eval.io import read_jsonl
from pixelrefer.eval.judge import Judge, JudgeConfig, JudgeNotConfigured
from pixelrefer.eval.tasks import ScoreContext, get_task

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
JUDGE_MODEL = "judge-test-model"


def _predict(name: str, data: Path, media_root: Path, out: Path, predictor: FakePredictor) -> None:
    task = get_task(name)
    predict(task, task.load(data, media_root), predictor, out, run_info={"model": "fake", "data": str(data)})


def _score(
    name: str, out: Path, base_url: str | None, aux: dict | None = None, options: dict | None = None
) -> dict:
    task = get_task(name)
    opts = {"meteor": False, **(options or {})}

    def factory() -> Judge:
        config = JudgeConfig.resolve(
            name, base_url, JUDGE_MODEL if base_url else None, "sk-test", **task.judge_settings(opts)
        )
        return Judge(config, cache_path=out / "judge_calls.jsonl")

    return score(task, out, ScoreContext(out_dir=out, aux=aux or {}, options=opts, judge_factory=factory))


def test_refl4_with_summarisation_judge(tmp_path: Path, judge_server) -> None:
    server = judge_server(lambda messages: "a red square")
    data, out = refl4(tmp_path / "d").data, tmp_path / "out"
    answers = {"0": "This is a large red square shape placed in the middle of the picture.", "1": "red block"}
    predictor = FakePredictor(lambda r: answers[r.id])
    _predict("refl4", data, tmp_path / "d", out, predictor)
    assert [r.question for r in predictor.seen] == ["Please describe <region> in brief."] * 2
    gt = write_json(
        tmp_path / "refl4_gt.json",
        {
            "images": [{"id": "0"}, {"id": "1"}],
            "annotations": [
                {"image_id": "0", "id": "0", "caption": "a red square"},
                {"image_id": "1", "id": "1", "caption": "red block"},
            ],
        },
    )
    report = _score("refl4", out, server.base_url, aux={"refl4_gt": gt})
    assert len(server.requests) == 1  # only the prediction longer than 5 words is condensed
    assert server.requests[0]["body"]["messages"][0]["role"] == "system"
    assert report["metrics"]["BLEU-1"] == pytest.approx(100.0, abs=1e-3)
    assert report["judge"]["model"] == JUDGE_MODEL and report["judge"]["answered_by"] == [
        JUDGE_MODEL + "-served"
    ]
    assert "refl4_summary" in report["judge"]["prompt_sha256_16"]
    plain = _score("refl4", out, None)
    assert any("NOT condensed" in n for n in plain["notes"]) and plain["metrics"]["BLEU-1"] < 100.0


def test_refl4_clair(tmp_path: Path, judge_server) -> None:
    server = judge_server(lambda messages: 'Sure. {"score": 80, "reason": "same object"}')
    data, out = refl4(tmp_path / "d").data, tmp_path / "out"
    bad = json.loads(data.read_text().splitlines()[2])
    bad["bbox"] = "broken"
    data.write_text("\n".join(data.read_text().splitlines()[:2] + [json.dumps(bad)]) + "\n")
    predictor = FakePredictor(lambda r: "A red square with sharp corners.")
    _predict("refl4_clair", data, tmp_path / "d", out, predictor)
    assert predictor.seen[0].question == "Please describe <region> in detail."
    report = _score("refl4_clair", out, server.base_url)
    assert report["metrics"]["CLAIR"] == pytest.approx(40.0)  # 0.8 and a failed item (0) over 2 items
    markdown = (out / "results.md").read_text()
    assert f"judge: `{JUDGE_MODEL}` at {server.base_url} (answered by {JUDGE_MODEL}-served)" in markdown
    assert "| CLAIR | 40.00 | 60.90 | 60.80 | 63.50 | 56.20 |" in markdown
    prompt = user_text(server.requests[0]["body"]["messages"])
    assert "- A red square with sharp corners.\n" in prompt and "- a red square\n" in prompt
    assert server.requests[0]["auth"] == "Bearer sk-test"
    again = _score("refl4_clair", out, server.base_url)  # cached calls: no new HTTP request
    assert len(server.requests) == 1 and again["judge"]["cached_calls"] == 1


@pytest.mark.parametrize("protocol", ["gpt", "llama"])
def test_dlc_bench(tmp_path: Path, judge_server, protocol: str) -> None:
    server = judge_server(dlc_judge)
    files = dlc_bench(tmp_path / "d")
    data, aux = files.data, files.aux
    out = tmp_path / "out"
    predictor = FakePredictor(lambda r: "A brown dog sitting.")
    _predict("dlc_bench", data, tmp_path / "d" / "images", out, predictor)
    assert predictor.seen[0].question == (
        "Please describe the region <region> in the image in detail. Do not describe anything else."
    )
    report = _score("dlc_bench", out, server.base_url, aux=aux, options={"dlc_protocol": protocol})
    # item 11: recognised, pos 1, neg -1 ("a hat"); item 12: not recognised -> pos capped at 0
    assert report["metrics"] == {"Pos": 50.0, "Neg": -100.0, "Avg": -25.0}
    body = server.requests[0]["body"]
    assert body["model"] == JUDGE_MODEL
    assert (body.get("temperature"), body.get("max_tokens")) == (
        (0.0, 300) if protocol == "llama" else (None, None)
    )
    assert report["notes"][0].startswith(f"protocol: {protocol}")


def test_ferret(tmp_path: Path, judge_server) -> None:
    server = judge_server(ferret_judge)
    files = ferret(tmp_path / "d")
    data, aux = files.data, files.aux
    out = tmp_path / "out"
    predictor = FakePredictor(lambda r: "It decorates the wall.")
    _predict("ferret", data, tmp_path / "d" / "coco", out, predictor)
    assert predictor.seen[0].question == "Why is <region> here?"
    report = _score("ferret", out, server.base_url, aux=aux)
    assert report["metrics"]["Reasoning"] == pytest.approx(100 * ((6 + 1) / 2) / 8)
    texts = [user_text(request["body"]["messages"]) for request in server.requests]  # concurrent: any order
    first = next(t for t in texts if "Why is <region> here?" in t)
    assert "It is a sign of art." in first and "[Context]\\A red square on black." in first
    assert any("project rubric" in n for n in report["notes"])


def test_videorefer_d(tmp_path: Path, judge_server) -> None:
    server = judge_server(lambda messages: VIDEOREFER_D_REPLY)
    files = videorefer_d(tmp_path / "d")
    out = tmp_path / "out"
    predictor = FakePredictor(lambda r: "A green square moving.")
    _predict("videorefer_d", files.data, files.media_root, out, predictor)
    assert predictor.seen[0].question == "Please describe in detail the marked object <region> in the video."
    assert list(predictor.seen[0].regions[0]) == [1]
    report = _score("videorefer_d", out, server.base_url)
    assert report["metrics"] == {"SC": 5.0, "AD": 4.0, "TD": 3.0, "HD": 2.0, "Avg": 3.5}
    messages = server.requests[0]["body"]["messages"]
    assert messages[0]["content"].startswith("You are an advanced intelligent chatbot")
    assert (
        user_text(messages)
        == "##Correct answer: A green block slides right.\n##Predicted answer: A green square moving.\n"
    )


def test_judge_retries_server_errors_and_records_identity(tmp_path: Path, judge_server) -> None:
    calls = {"n": 0}

    def flaky(messages: list[dict]) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("overloaded")
        return "fine"

    server = judge_server(flaky)
    judge = Judge(
        JudgeConfig.resolve("x", server.base_url, "m", None, max_retries=2), cache_path=tmp_path / "c.jsonl"
    )
    judge.register_prompt("p", "template")
    assert judge.complete("k", [{"role": "user", "content": "hi"}]) == "fine"
    identity = judge.identity()
    assert calls["n"] == 2 and identity["calls"] == 1 and identity["answered_by"] == ["m-served"]
    assert identity["prompt_sha256_16"] == {"p": "5cde0f1298f41f7d"}  # sha256("template")[:16]
    judge.close()
    reopened = Judge(JudgeConfig.resolve("x", server.base_url, "m", None), cache_path=tmp_path / "c.jsonl")
    hi = [{"role": "user", "content": "hi"}]
    assert reopened.complete("k", hi) == "fine" and calls["n"] == 2  # served from the cache file
    assert reopened.complete("k", [{"role": "user", "content": "changed"}]) == "fine" and calls["n"] == 3
    other_model = Judge(
        JudgeConfig.resolve("x", server.base_url, "m2", None), cache_path=tmp_path / "c.jsonl"
    )
    assert other_model.complete("k", hi) == "fine" and calls["n"] == 4  # the cache is per judge model


@pytest.mark.parametrize("name", ["refl4_clair", "dlc_bench", "ferret", "videorefer_d"])
def test_judged_benchmarks_without_endpoint_say_a_judge_is_needed(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.jsonl").write_text(
        json.dumps(
            {"index": 0, "id": "1", "pred": "x", "error": None, "error_kind": None, "ref": {"Answer": "y"}}
        )
        + "\n"
    )
    aux = {k: tmp_path / k for k in ("qa", "class_names", "question", "context", "answer")}
    for path in aux.values():
        path.write_text("{}")
    with pytest.raises(
        JudgeNotConfigured, match=rf"benchmark '{name}' is scored by an LLM judge.*--judge-base-url"
    ):
        _score(name, out, None, aux=aux)
    assert not (out / "results.json").exists() and len(read_jsonl(out / "predictions.jsonl")) == 1


def test_cli_without_judge_exits_with_the_message(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pixelrefer.cli.main import app

    data = dlc_bench(tmp_path / "d").data
    result = CliRunner().invoke(
        app, ["eval", "dlc_bench", "--data", str(data), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert "scored by an LLM judge" in result.output and "--predict-only" in result.output
