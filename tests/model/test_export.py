"""`pixelrefer convert OFFICIAL OUT`: the converted folder loads with from_pretrained and gives the same logits as
loading the official folder directly; sharding above --max-shard-size; clear errors before any work."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from pixelrefer import PixelRefer
from pixelrefer.cli.main import app
from pixelrefer.model.modeling import PixelReferForConditionalGeneration

runner = CliRunner()
VARIANTS = ["pixelrefer-tiny", "pixelreferlite-tiny"]


def convert(*args):
    return runner.invoke(app, ["convert", *[str(a) for a in args]])


def _scene():
    img = np.full((112, 140, 3), 120, np.uint8)
    img[10:40, 10:50] = (220, 30, 30)
    m1 = np.zeros((112, 140), bool)
    m1[10:40, 10:50] = True
    m2 = np.zeros((112, 140), bool)
    m2[60:100, 70:130] = True
    return img, [m1, m2]


def _logits(pipeline, model=None):
    img, masks = _scene()
    batch = pipeline.processor(img, masks, "Compare <region> with <region>.")
    with torch.no_grad():
        return (model or pipeline.model)(**batch.as_kwargs()).logits


@pytest.mark.parametrize("name", VARIANTS)
def test_converted_folder_gives_the_official_logits(official_tiny, tmp_path, name, one_thread):
    out = tmp_path / "converted"
    result = convert(official_tiny / name, out)
    assert result.exit_code == 0, result.output
    assert "1 weight file(s)" in result.stdout and "model.safetensors" in result.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "pixelrefer" and config["region_geometry"] == "official"
    assert {"tokenizer.json", "preprocessor_config.json", "generation_config.json"} <= {p.name for p in out.iterdir()}
    official = PixelRefer.from_pretrained(official_tiny / name, device="cpu", dtype="float32", segmenter=None)
    ours = PixelRefer.from_pretrained(out, device="cpu", dtype="float32", segmenter=None)
    hf = PixelReferForConditionalGeneration.from_pretrained(out)
    assert ours.tokenizer("What is <region>?<|im_end|>")["input_ids"] == official.tokenizer("What is <region>?<|im_end|>")["input_ids"]
    reference = _logits(official)
    assert torch.equal(_logits(ours), reference)
    assert torch.equal(_logits(official, hf), reference)


def test_large_models_are_sharded_and_reload(official_tiny, tmp_path, one_thread):
    out = tmp_path / "sharded"
    result = convert(official_tiny / "pixelreferlite-tiny", out, "--max-shard-size", "200KB")
    assert result.exit_code == 0, result.output
    shards = sorted(out.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {s.name for s in shards}
    assert f"{len(shards)} weight file(s)" in result.stdout
    official = PixelRefer.from_pretrained(official_tiny / "pixelreferlite-tiny", device="cpu", dtype="float32", segmenter=None)
    reloaded = PixelReferForConditionalGeneration.from_pretrained(out)
    assert torch.equal(_logits(official, reloaded), _logits(official))


def test_bad_folders_and_options_exit_2_with_a_message(official_tiny, tmp_path):
    src = official_tiny / "pixelrefer-tiny"
    result = convert(tmp_path / "absent", tmp_path / "out")
    assert result.exit_code == 2 and "is not a folder" in result.stderr, result.output
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours/config.json").write_text('{"model_type": "pixelrefer"}')
    result = convert(tmp_path / "ours", tmp_path / "out")
    assert result.exit_code == 2 and "not an official PixelRefer" in result.stderr, result.output
    result = convert(src, tmp_path / "out", "--max-shard-size", "lots")
    assert result.exit_code == 2 and "max shard size 'lots'" in result.stderr, result.output
    result = convert(src, src / "inside")
    assert result.exit_code == 2 and "must not contain or be inside" in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite(official_tiny, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    result = convert(official_tiny / "pixelrefer-tiny", out)
    assert result.exit_code == 2 and "pass --overwrite" in result.stderr, result.output
    assert (out / "keep.txt").read_text() == "user data"
    result = convert(official_tiny / "pixelrefer-tiny", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_the_official_dtype_is_kept(official_tiny, tmp_path):
    src = official_tiny / "pixelrefer-tiny"
    shutil.copytree(src, tmp_path / "ckpt", ignore=shutil.ignore_patterns("*.safetensors"))
    shutil.copytree(official_tiny / "VL3-SigLIP-NaViT-tiny", tmp_path / "VL3-SigLIP-NaViT-tiny")
    state = load_file(str(src / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in state.items()}, str(tmp_path / "ckpt/model.safetensors"))
    result = convert(tmp_path / "ckpt", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert {v.dtype for v in load_file(str(tmp_path / "out/model.safetensors")).values()} == {torch.bfloat16}
    assert json.loads((tmp_path / "out/config.json").read_text())["dtype"] == "bfloat16"
