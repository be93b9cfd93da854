"""One predictor behind every entry point: the same clip and question give the same answer (and the same masks)
through the Python API, the CLI, the server and the demo, for an image and for a video; options mean the same
everywhere (``--frame`` is a source frame, one default model)."""

from __future__ import annotations

import base64
import inspect
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from interface_scenes import moving_box_video
from live_server import running
from PIL import Image
from typer.testing import CliRunner

from pixelrefer.cli.main import app
from pixelrefer.media import load_media, write_video
from pixelrefer.presets import BUNDLED
from pixelrefer.regions import Region, decode_rle

QUESTION = "What is <region>?"
TOKENS = 12
runner = CliRunner()


def _textured_scene(seed: int) -> np.ndarray:
    """Noise with a tinted object: a click's GrabCut result depends on its start here (unseeded, it differs from
    call to call), so every path must segment alike for the answers to agree."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (120, 160, 3)).astype(np.uint8)
    patch = image[20:90, 30:110] * 0.3 + np.array([150, 60, 40])
    image[20:90, 30:110] = np.clip(patch, 0, 255).astype(np.uint8)
    return image


@pytest.fixture(scope="module")
def nano():
    from pixelrefer import PixelRefer

    assert BUNDLED["nano"].is_dir(), "the bundled nano model ships with the package"
    return PixelRefer.from_pretrained("nano", device="cpu", dtype="float32", segmenter="classical")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """name -> (file, source frame the box is drawn on)."""
    root = tmp_path_factory.mktemp("entry")
    image = root / "scene.png"
    Image.fromarray(_textured_scene(0)).save(image)
    video = write_video([np.roll(_textured_scene(0), 2 * t, axis=1) for t in range(6)], root / "clip.mp4", fps=3)
    return {"image": (image, 0), "video": (video, 2)}


CLICK = [60, 50]


@pytest.mark.parametrize("kind", ["image", "video"])
def test_same_answer_through_api_cli_server_and_demo(kind: str, nano, clips, monkeypatch) -> None:
    from pixelrefer import GenerationConfig
    from pixelrefer.demo.session import DemoController
    from pixelrefer.segment import get_segmenter
    from pixelrefer.server import ServerSettings, create_app

    monkeypatch.delenv("PIXELREFER_SAM2", raising=False)  # the CLI's "auto" segmenter is then the classical one
    path, frame = clips[kind]
    media = load_media(path)
    assert media.is_video == (kind == "video")
    position = media.sampled_index(frame) if media.is_video else 0
    assert not media.is_video or media.frame_indices[position] == frame  # the test clip is short: every frame sampled

    api = nano.ask(str(path), [Region.from_points([CLICK], frame=position)], QUESTION, GenerationConfig(max_new_tokens=TOKENS))
    api_mask = api.regions[0].masks[position]
    assert api.text, "nano answers in words; an empty answer would make the comparison vacuous"

    cli = runner.invoke(app, ["ask", str(path), QUESTION, "--point", ",".join(map(str, CLICK)), "--frame", str(frame),
                              "--model", "nano", "--device", "cpu", "--dtype", "float32",
                              "--max-new-tokens", str(TOKENS), "--json"])
    assert cli.exit_code == 0, cli.output
    out = json.loads(cli.stdout.strip().splitlines()[-1])
    assert out["answers"][0]["text"] == api.text
    assert out["regions"][0]["area"] == int(api_mask.sum()) and out["regions"][0]["frames"] == api.regions[0].frames

    settings = ServerSettings(max_new_tokens=TOKENS, request_timeout_s=120)
    body = {"media": {"data": base64.b64encode(path.read_bytes()).decode()}, "question": QUESTION,
            "regions": [{"type": "points", "points": [CLICK], "frame": frame}], "max_new_tokens": TOKENS}
    with running(create_app(nano, settings)) as url:
        response = httpx.post(f"{url}/v1/ask", json=body, timeout=120)
    assert response.status_code == 200, response.text
    served = response.json()["answer"]
    assert served["text"] == api.text
    assert np.array_equal(decode_rle(served["regions"][0]["masks"][str(position)]), api_mask)

    demo = DemoController(nano, get_segmenter("classical"))
    session = demo.load(path)
    session.frame = position
    demo.click(session, "point +", *CLICK)
    assert np.array_equal(session.regions[0].resolved.masks[position], api_mask)
    shown = list(demo.ask(session, QUESTION, "question", max_new_tokens=TOKENS))
    assert shown[-1] == api.text


def test_frame_is_a_source_frame_and_its_sampled_frame_is_reported(scene_dir: Path, tmp_path: Path) -> None:
    """40 source frames, 16 sampled: --frame 13 goes on the sampled frame nearest source frame 13, and says so."""
    video = moving_box_video(tmp_path / "long.mp4")
    clip = load_media(video)
    assert clip.num_frames < 40
    result = runner.invoke(app, ["ask", str(video), QUESTION, "--box", "5,10,30,30", "--frame", "13", "--model", "tiny",
                                 "--device", "cpu", "--max-new-tokens", "2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    sampled = out["frame"]["sampled"]
    assert out["frame"]["source"] == 13 and out["frame"]["sampled_source"] == clip.frame_indices[sampled]
    assert min(abs(i - 13) for i in clip.frame_indices) == abs(clip.frame_indices[sampled] - 13)
    assert out["regions"][0]["frames"] == [sampled] and out["regions"][0]["source_frames"] == [clip.frame_indices[sampled]]
    past = runner.invoke(app, ["ask", str(video), QUESTION, "--box", "5,10,30,30", "--frame", "40", "--model", "tiny",
                               "--device", "cpu"])
    assert past.exit_code == 2 and "outside the video" in past.stderr


def test_every_command_that_loads_a_model_defaults_to_the_bundled_one() -> None:
    from pixelrefer.cli import ask, chat, demo, eval, serve
    from pixelrefer.cli.common import DEFAULT_MODEL

    commands = [ask.ask, ask.describe, chat.chat, demo.demo, serve.serve, eval.eval_command]
    defaults = {c.__name__: inspect.signature(c).parameters["model"].default for c in commands}
    assert set(defaults.values()) == {DEFAULT_MODEL} and DEFAULT_MODEL in BUNDLED, defaults


def test_eval_warns_loudly_about_random_weights(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "synthetic", "--data", str(tmp_path / "missing.json"), "--out",
                                 str(tmp_path / "out"), "--model", "tiny"])
    assert "RANDOM weights" in result.stderr and "synthetic scores will be meaningless" in " ".join(result.stderr.split())
    quiet = runner.invoke(app, ["eval", "synthetic", "--data", str(tmp_path / "missing.json"), "--out",
                                str(tmp_path / "out2"), "--model", str(tmp_path / "no-model")])
    assert "RANDOM" not in quiet.stderr


def test_one_region_parser_for_every_command(scene_dir: Path) -> None:
    """ask and segment reject the same bad region with the same one-line message."""
    for command in (["ask", str(scene_dir / "scene.png"), QUESTION], ["segment", str(scene_dir / "scene.png")]):
        result = runner.invoke(app, [*command, "--polygon", "1,1,5,5", "--model", "tiny"] if command[0] == "ask"
                               else [*command, "--polygon", "1,1,5,5"])
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == "error: --polygon '1,1,5,5': expected at least 3 points (x,y pairs)"


def test_a_stream_returns_the_masks_it_used(pipeline, scene_dir: Path) -> None:
    from pixelrefer import GenerationConfig

    region = Region.from_box([30, 20, 80, 60])
    pieces = pipeline.stream(str(scene_dir / "scene.png"), [region], QUESTION, GenerationConfig(max_new_tokens=2))
    answer = pipeline.ask(str(scene_dir / "scene.png"), [region], QUESTION, GenerationConfig(max_new_tokens=2))
    assert [list(r.masks) for r in pieces.regions] == [[0]] and pieces.source_frames is None
    assert np.array_equal(pieces.regions[0].masks[0], answer.regions[0].masks[0])
    list(pieces)


def test_the_processor_takes_masks_not_prompts(pipeline) -> None:
    from pixelrefer.errors import RegionError
    from pixelrefer.media import Media

    image = Media.image(np.full((32, 32, 3), 200, np.uint8))
    with pytest.raises(RegionError, match="resolve it first"):
        pipeline.processor.encode(image, [Region.from_box([2, 2, 20, 20])], [{"role": "user", "content": QUESTION}])
    mask = np.zeros((32, 32), bool)
    mask[2:20, 2:20] = True
    assert pipeline.processor.encode(image, [mask], [{"role": "user", "content": QUESTION}]).crops
