"""`pixelrefer ask / describe / chat` end to end on generated media with the tiny preset (and nano if installed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelrefer.cli.main import app
from pixelrefer.presets import BUNDLED

runner = CliRunner()
TINY = ["--model", "tiny", "--device", "cpu", "--max-new-tokens", "4"]
NANO = ["--model", "nano", "--device", "cpu", "--max-new-tokens", "8"]


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def test_ask_json_with_several_region_kinds_and_overlay(scene_dir: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.png"
    result = run("ask", scene_dir / "scene.png", "Compare <region>, <region>, <region> and <region>.",
                 "--box", "30,20,80,60", "--point", "105,40", "--polygon", "10,70,40,70,40,90",
                 "--mask", scene_dir / "mask.png", "--json", "--overlay", overlay, *TINY)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    kinds = [r["kind"] for r in out["regions"]]
    assert kinds == ["mask", "polygon", "box", "points"]  # documented order: masks, rles, polygons, boxes, points
    assert out["regions"][2]["bbox"] == [30, 20, 80, 60]
    assert out["answers"][0]["completion_tokens"] >= 1
    image = Image.open(overlay)
    assert image.size == (128, 96)


def test_ask_adds_region_names_when_question_has_none(scene_dir: Path) -> None:
    result = run("ask", scene_dir / "scene.png", "What are these?", "--box", "30,20,80,60", "--points", "105,40;100,35",
                 "--json", *TINY)
    assert result.exit_code == 0, result.output
    question = json.loads(result.stdout.strip().splitlines()[-1])["question"]
    assert question.startswith("There are 2 regions in the image:") and question.count("<region>") == 2


def test_ask_stream_prints_the_same_text_as_ask(scene_dir: Path) -> None:
    """The bundled nano model (the random tiny one only emits whitespace): streamed text == the --json answer."""
    args = ("ask", scene_dir / "scene.png", "What is <region>?", "--rle", scene_dir / "rle.json", *NANO)
    streamed = run(*args, "--stream")
    assert streamed.exit_code == 0, streamed.output
    answer = json.loads(run(*args, "--json").stdout.strip().splitlines()[-1])["answers"][0]["text"]
    assert answer and streamed.stdout.strip() == answer


def test_describe_one_answer_per_region(scene_dir: Path) -> None:
    result = run("describe", scene_dir / "scene.png", "--box", "30,20,80,60", "--point", "105,40", "--task", "category",
                 "--json", *TINY)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert [a["region"] for a in out["answers"]] == [0, 1]


def test_ask_about_a_video_region_writes_a_gif_overlay(scene_dir: Path, tmp_path: Path) -> None:
    gif = tmp_path / "overlay.gif"
    result = run("ask", scene_dir / "video.mp4", "What is <region>?", "--box", "8,20,28,40", "--frame", "0",
                 "--fps", "2", "--overlay", gif, "--json", *TINY)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["regions"][0]["frames"] == [0]
    assert Image.open(gif).n_frames >= 2


def test_chat_reads_questions_from_stdin(scene_dir: Path) -> None:
    result = run("chat", scene_dir / "scene.png", "--box", "30,20,80,60", "--json", *TINY,
                 stdin="What is <region>?\nAnd what colour is it?\n/quit\nnever asked\n")
    assert result.exit_code == 0, result.output
    turns = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [t["turn"] for t in turns] == [0, 1]
    assert turns[1]["question"] == "And what colour is it?"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["missing.png", "What is <region>?", "--box", "1,1,5,5"], 2, "not found"),
        (["corrupt.png", "What is <region>?", "--box", "1,1,5,5"], 2, "cannot read"),
        (["notes.txt", "What is <region>?", "--box", "1,1,5,5"], 2, "cannot read"),
        (["scene.png", "What is <region>?", "--regions", "bad_regions.json"], 2, "Expecting"),
        (["scene.png", "What is <region>?", "--box", "1,2,3"], 2, "expected 4 numbers"),
        (["scene.png", "What is <region>?", "--box", "300,200,400,260"], 2, "outside"),
        (["scene.png", "What is <region>?", "--box", "1,1,9,9", "--point", "3,3"], 2, "placeholder"),
    ],
)
def test_bad_input_gives_one_line_error_and_exit_2(scene_dir: Path, args: list[str], code: int, needle: str) -> None:
    args = [str(scene_dir / a) if a.endswith((".png", ".txt", ".json")) else a for a in args]
    result = run("ask", *args, *TINY)
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr


def test_unknown_checkpoint_exits_3(scene_dir: Path, tmp_path: Path) -> None:
    result = run("ask", scene_dir / "scene.png", "What is <region>?", "--box", "30,20,80,60",
                 "--model", tmp_path / "no-such-checkpoint", "--device", "cpu")
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: model:")


def test_default_model_falls_back_to_tiny_with_a_message_when_nano_is_absent(
    scene_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "assets").mkdir()  # an installation whose asset folder lacks the bundled models
    monkeypatch.setitem(BUNDLED, "nano", tmp_path / "assets" / BUNDLED["nano"].name)
    result = run("ask", scene_dir / "scene.png", "What is <region>?", "--box", "30,20,80,60", "--device", "cpu",
                 "--max-new-tokens", "2", "--json")
    assert result.exit_code == 0, result.output
    assert "the bundled model 'nano' is not installed; using the random 'tiny' preset" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["answers"][0]["completion_tokens"] == 2


def test_nano_describes_a_region(scene_dir: Path) -> None:
    assert BUNDLED["nano"].is_dir(), "the bundled nano model ships with the package"
    result = run("describe", scene_dir / "scene.png", "--box", "30,20,80,60", "--task", "category", "--json",
                 "--model", "nano", "--device", "cpu", "--max-new-tokens", "16")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["answers"][0]["text"]
    assert "not installed" not in result.stderr


def test_real_process_exit_code_and_help(scene_dir: Path) -> None:
    """The installed entry point, in a real process: a one-line error on stderr and exit status 2."""
    proc = subprocess.run([sys.executable, "-m", "pixelrefer", "ask", str(scene_dir / "notes.txt"), "What?",
                           "--box", "1,1,4,4", *TINY], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert [line for line in proc.stderr.splitlines() if line.strip()] [-1].startswith("error: ")
    help_text = run("ask", "--help").stdout
    assert "--box" in help_text and "--overlay" in help_text


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_serve_and_demo_refuse_an_unknown_checkpoint_with_exit_3(command: str, tmp_path: Path) -> None:
    if command == "demo":
        pytest.importorskip("gradio")
    result = run(command, "--model", tmp_path / "missing", "--device", "cpu", "--port", "1")
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: model:")
