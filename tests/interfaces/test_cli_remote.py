"""`pixelrefer ask --server URL`: the thin client gives the local command's output, with no model stack imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from interface_scenes import moving_box_video
from live_server import running
from typer.testing import CliRunner

from pixelrefer.cli.main import app
from pixelrefer.media import load_media
from pixelrefer.server import ServerSettings, create_app

runner = CliRunner()
QUESTION = "What is <region>?"
LOCAL = ["--model", "tiny", "--device", "cpu", "--dtype", "float32"]


@pytest.fixture(scope="module")
def url(pipeline):
    with running(create_app(pipeline, ServerSettings(request_timeout_s=120))) as base:
        yield base


def _json_out(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _same_but_latency(remote: dict, local: dict) -> None:
    assert {k: v for k, v in remote.items() if k != "latency_s"} == {k: v for k, v in local.items() if k != "latency_s"}


def test_remote_ask_prints_what_the_local_ask_prints(url: str, scene_dir: Path) -> None:
    args = ["ask", str(scene_dir / "scene.png"), "Is <region> next to <region>?", "--box", "10,10,40,40", "--point", "60,30",
            "--max-new-tokens", "3"]
    remote = _json_out([*args, "--json", "--server", url])
    _same_but_latency(remote, _json_out([*args, "--json", *LOCAL]))
    text = runner.invoke(app, args, env={"PIXELREFER_SERVER": url})  # the server from the environment
    assert text.exit_code == 0, text.output
    answer = remote["answers"][0]
    assert text.stdout.strip() == (answer["text"] or f"(empty answer, {answer['completion_tokens']} tokens)")


def test_remote_frame_is_a_source_frame(url: str, tmp_path: Path) -> None:
    video = moving_box_video(tmp_path / "long.mp4")
    clip = load_media(video)
    args = ["ask", str(video), QUESTION, "--box", "5,10,30,30", "--frame", "13", "--max-new-tokens", "2", "--json"]
    remote = _json_out([*args, "--server", url])
    assert remote["frame"]["source"] == 13 and clip.frame_indices[remote["frame"]["sampled"]] == remote["frame"]["sampled_source"]
    _same_but_latency(remote, _json_out([*args, *LOCAL]))


def test_remote_errors_have_the_local_exit_codes(url: str, scene_dir: Path) -> None:
    image = str(scene_dir / "scene.png")
    refused = runner.invoke(app, ["ask", image, QUESTION, "--box", "10,10,40,40", "--frame", "3", "--server", url])
    assert refused.exit_code == 2 and "server (" in refused.stderr
    parse = runner.invoke(app, ["ask", image, QUESTION, "--box", "1,2,3", "--server", url])
    assert parse.exit_code == 2 and "expected 4 numbers" in parse.stderr
    unsupported = runner.invoke(app, ["ask", image, QUESTION, "--box", "10,10,40,40", "--stream", "--server", url])
    assert unsupported.exit_code == 2 and "--stream" in unsupported.stderr
    gone = runner.invoke(app, ["ask", image, QUESTION, "--box", "10,10,40,40", "--server", "http://127.0.0.1:9"])
    assert gone.exit_code == 3 and "cannot reach the server" in gone.stderr


def test_the_remote_path_imports_no_model_stack() -> None:
    code = ("import sys; from pixelrefer.cli import main, ask, remote, common; "
            "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'PIL', 'cv2', 'av', 'fastapi', 'gradio', "
            "'sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
