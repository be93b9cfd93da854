"""The bundled default answers the README's first command right: every object of ``pixelrefer synth --sample``,
boxed and asked its category through the CLI exactly as the README does, is named by its ground-truth category."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pixelrefer.cli.main import app
from pixelrefer.presets import BUNDLED
from pixelrefer.synth.scenes import sample_scene
from pixelrefer.synth.tasks import CATEGORY_PROMPT

runner = CliRunner()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("sample")
    result = runner.invoke(app, ["synth", "--sample", "--out", str(out)])
    assert result.exit_code == 0, result.output
    truth = json.loads((out / "scene.json").read_text())["objects"]
    return out / "scene.png", truth


def test_the_sample_is_the_scene_the_browser_test_uses(sample: tuple[Path, list[dict]]) -> None:
    _, truth = sample
    assert [(o["category"], o["box"]) for o in truth] == [(o.category, list(o.box)) for o in sample_scene().objects]


def test_every_sample_object_is_named_right(sample: tuple[Path, list[dict]]) -> None:
    model = "nano"  # the default (nano-lite takes the sample's hexagon for a circle: README, the bundled models)
    assert BUNDLED[model].is_dir(), "the bundled nano model ships with the package"
    image, truth = sample
    answers = []
    for obj in truth:
        box = ",".join(str(v) for v in obj["box"])
        result = runner.invoke(app, ["ask", str(image), "--box", box, CATEGORY_PROMPT, "--json", "--model", model,
                                     "--device", "cpu"])
        assert result.exit_code == 0, result.output
        answers.append(json.loads(result.stdout.strip().splitlines()[-1])["answers"][0]["text"].strip())
    assert answers == [o["category"] for o in truth]
