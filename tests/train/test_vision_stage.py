"""The vision pretraining is a stage of the one trainer loop: interrupted (in process, or by SIGKILL) and resumed
it reaches the uninterrupted losses; the nano recipe's config still computes the bundled tower's logged losses;
the whole recipe (data, tokenizer, vision stage, training, export) runs on tiny settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from pixelrefer.recipes.config import VisionPretrainSection, load_recipe_config, vision_optim
from pixelrefer.recipes.run import run as run_recipe
from pixelrefer.recipes.vision import plan_line, prepare_vision, pretrain_vision
from pixelrefer.train.loop import METRICS_FILE, latest_checkpoint
from pixelrefer.train.run import VISION_WEIGHTS_FILE, build_model, load_tokenizer

BUNDLED = Path(__file__).resolve().parents[2] / "src" / "pixelrefer" / "assets" / "pixelrefer-nano"
KILL_TIMEOUT_S = 240


def _losses(folder: Path) -> dict[int, float]:
    lines = (folder / METRICS_FILE).read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["type"] == "train"}


def _section(**changes) -> VisionPretrainSection:
    base = VisionPretrainSection(steps=8, batch_size=5, optim=replace(vision_optim(), warmup_steps=2), workers=0,
                                 val_regions=5, eval_every=4, log_every=1, save_every=3, image_size=112)
    return replace(base, **changes)


def _fresh_model(tiny_config):
    cfg = tiny_config()
    return build_model(cfg, load_tokenizer(cfg))


def test_interrupted_vision_stage_resumes_to_the_same_losses(tiny_config, tmp_path):
    section = _section()
    full = pretrain_vision(_fresh_model(tiny_config), section, tmp_path / "full", torch.device("cpu"), progress=False)

    cut = tmp_path / "cut"
    first = pretrain_vision(_fresh_model(tiny_config), section, cut, torch.device("cpu"), progress=False, stop_at=5)
    assert first.state.step == 5 and not (cut / VISION_WEIGHTS_FILE).is_file()  # interrupted: no weights yet
    checkpoint = latest_checkpoint(cut)
    assert checkpoint is not None and checkpoint.name == "step-0000003"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["stream"]["next"][0][0] > 0
    resumed = pretrain_vision(_fresh_model(tiny_config), section, cut, torch.device("cpu"), progress=False,
                              resume="auto")
    assert (cut / VISION_WEIGHTS_FILE).is_file()

    expected, got = _losses(tmp_path / "full"), _losses(cut)
    assert sorted(got) == sorted(expected) == list(range(1, 9))
    for step in expected:
        assert got[step] == expected[step], (step, got[step], expected[step])
    for (name, a), b in zip(full.module.state_dict().items(), resumed.module.state_dict().values()):
        assert torch.equal(a, b), name
    evals = [json.loads(x) for x in (cut / METRICS_FILE).read_text().splitlines() if '"eval"' in x]
    assert [r["step"] for r in evals] == [4, 8] and all("per_size" in r for r in evals)


def test_region_stream_resumes_mid_scene_with_two_workers(tiny_config, tmp_path):
    """With two rendering workers the loader alternates between their streams; a resume continues the turn."""
    section = _section(workers=2, steps=6, save_every=3, eval_every=6)
    pretrain_vision(_fresh_model(tiny_config), section, tmp_path / "full", torch.device("cpu"), progress=False)
    cut = tmp_path / "cut"
    pretrain_vision(_fresh_model(tiny_config), section, cut, torch.device("cpu"), progress=False, stop_at=4)
    state = json.loads((latest_checkpoint(cut) / "trainer_state.json").read_text())
    assert state["stream"]["turn"] == 1  # 3 batches consumed: worker 1's turn next
    pretrain_vision(_fresh_model(tiny_config), section, cut, torch.device("cpu"), progress=False, resume="auto")
    assert _losses(cut) == _losses(tmp_path / "full")


def _cli_overrides(tiny_data: Path, tmp: Path, vision: Path) -> list[str]:
    return [f"data.root={tiny_data}", "data.limit=6", "data.eval_limit=2", f"model.vision_init={vision}",
            "vision_pretrain.steps=40", "vision_pretrain.batch_size=4", "vision_pretrain.workers=0",
            "vision_pretrain.val_regions=4", "vision_pretrain.image_size=112", "vision_pretrain.save_every=5",
            "vision_pretrain.eval_every=100", "vision_pretrain.log_every=1", "max_steps=2", "batch_size=2",
            "eval_every=0", "save_every=0", f"output_dir={tmp / 'run'}", "num_threads=1", "progress=false"]


def test_vision_stage_killed_resumes_with_resume_auto(tiny_data, tmp_path):
    vision = tmp_path / "vision"
    overrides = _cli_overrides(tiny_data, tmp_path, vision)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pixelrefer", "train", "--config", "tiny-smoke", *overrides]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while not (vision / "checkpoints" / "step-0000005").is_dir() and proc.poll() is None:
        assert time.monotonic() < deadline, "no vision checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
    assert not (vision / VISION_WEIGHTS_FILE).is_file()

    done = subprocess.run([*command, "--resume", "auto"], env=env, capture_output=True, text=True,
                          timeout=KILL_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (vision / VISION_WEIGHTS_FILE).is_file() and (tmp_path / "run" / "final" / "config.json").is_file()

    reference = tmp_path / "reference"
    prepare_vision(load_recipe_config("tiny-smoke", [*overrides[:3], f"model.vision_init={reference}",
                                                     *overrides[4:]]))
    expected, got = _losses(reference), _losses(vision)
    assert sorted(got) == list(range(1, 41))
    assert got == expected


def test_nano_config_reproduces_the_bundled_towers_logged_losses(tmp_path):
    """The first logged losses of the bundled nano tower's pretraining, recomputed by the trainer loop from the
    nano recipe's config (same seeds, scenes, batches, schedule and optimizer): equal to the last bit."""
    bundled = {r["step"]: r["loss"] for r in map(json.loads, (BUNDLED / "vision_pretrain_metrics.jsonl").open())
               if r["type"] == "train"}
    cfg = load_recipe_config("nano", ["model.vision_init=null"])
    from transformers import AutoTokenizer

    model = build_model(cfg, AutoTokenizer.from_pretrained(BUNDLED))
    section = replace(cfg.vision_pretrain, steps=10, val_regions=8)  # the first 100 steps are warmup: same lrs
    pretrain_vision(model, section, tmp_path / "vision", torch.device("cpu"), progress=False)
    assert _losses(tmp_path / "vision")[10] == bundled[10]


def test_the_recipe_runs_end_to_end_on_tiny_settings(tmp_path):
    """Synthetic data built, tokenizer trained, vision tower pretrained, PixelRefer trained and exported."""
    root = tmp_path / "synth"
    cfg = load_recipe_config("tiny-smoke", [
        f"data.root={root}", "data.synth={n_train: 12, n_val: 4, n_test: 0, n_heldout: 0, image_size: 96}",
        "data.vocab_size=400", "data.limit=null", f"model.vision_init={tmp_path / 'vision'}",
        "vision_pretrain={steps: 2, batch_size: 4, workers: 0, val_regions: 4, image_size: 96}",
        "max_steps=2", "batch_size=2", "eval_every=0", "save_every=0", f"output_dir={tmp_path / 'run'}",
        "progress=false"])
    out = run_recipe(cfg)
    assert (root / "train.json").is_file() and (root / "tokenizer" / "tokenizer.json").is_file()
    assert (tmp_path / "vision" / VISION_WEIGHTS_FILE).is_file()
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert sorted(_losses(tmp_path / "run")) == [1, 2]


def test_bundled_resolved_configs_load_as_todays_nano_recipes():
    """The bundled models' resolved configs (written before the vision pretraining was a trainer stage) still
    load, and say what the nano and nano-lite recipe configs say."""
    for folder, name in (("pixelrefer-nano", "nano"), ("pixelrefer-lite-nano", "nano-lite")):
        bundled = load_recipe_config(str(BUNDLED.parent / folder / "train_config.yaml"))
        today = load_recipe_config(name)
        assert bundled.vision_pretrain == today.vision_pretrain and bundled.vision_pretrain.optim.warmup_to_peak
        assert (bundled.model, bundled.data, bundled.optim) == (today.model, today.data, today.optim)
        assert (bundled.max_steps, bundled.batch_size, bundled.seed) == (today.max_steps, today.batch_size, today.seed)


def test_dry_run_names_the_pending_pretraining_and_where_it_resumes(tiny_config, tmp_path):
    folder = tmp_path / "vision"
    cfg = tiny_config(f"model.vision_init={folder}", "vision_pretrain={steps: 4, batch_size: 4, workers: 0, "
                      "val_regions: 4, image_size: 112, save_every: 2}")
    assert plan_line(cfg).startswith("vision pretraining first: 4 steps x 4 regions")
    model = build_model(replace(cfg, model=replace(cfg.model, vision_init=None)), load_tokenizer(cfg))
    pretrain_vision(model, cfg.vision_pretrain, folder, torch.device("cpu"), progress=False, stop_at=3)
    assert plan_line(cfg).endswith("--resume auto continues from step-0000002")
    prepare_vision(cfg, resume="auto")
    assert plan_line(cfg) is None and (folder / VISION_WEIGHTS_FILE).is_file()
