"""Scale-out: DDP, FSDP2 and DeepSpeed ZeRO-2/3 over two CPU processes (``torchrun`` + gloo) give the losses of
one process with the same global batch; a 2-process run killed with SIGKILL resumes to the uninterrupted
losses; a sharded checkpoint consolidates into a loadable model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pixelrefer.model.checkpoint import read_state_dict
from pixelrefer.model.modeling import PixelReferForConditionalGeneration
from pixelrefer.train.consolidate import consolidate
from pixelrefer.train.run import build_trainer

pytest.importorskip("deepspeed")

STEPS = 6
# 2 processes x batch 2 x accumulation 1 == 1 process x batch 2 x accumulation 2 (global batch 4)
COMMON = {"batch_size": 2, "max_steps": STEPS, "save_every": 2, "keep_checkpoints": 3, "log_every": 1,
          "progress": False, "device": "cpu", "num_threads": 1, "optim": {"warmup_ratio": 0.1}}
TOLERANCE = 1e-5  # float reduction order differs between engines; exact equality is not expected
LAUNCH_TIMEOUT_S = 240


def _losses(output_dir: Path) -> dict[int, float]:
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["type"] == "train"}


def _config_file(tiny_data: Path, tmp: Path, **extra) -> Path:
    cfg = {"model": {"preset": "tiny", "overrides": {"region_geometry": "clean", "mask_num": 4,
                                                       "max_visual_tokens": 16}},
           "data": {"root": str(tiny_data), "eval_limit": 4}, **COMMON, **extra}
    path = tmp / "config.yaml"
    tmp.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _torchrun(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "pixelrefer", "train", *args]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def _launch(args: list[str]) -> None:
    done = subprocess.run(_torchrun(args), env=_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


@pytest.fixture(scope="module")
def reference(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    """Losses of one process with grad_accum=2 (the global batch of 2 processes x accumulation 1)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("one-process")
    from pixelrefer.train.config import load_train_config

    cfg = load_train_config(str(_config_file(tiny_data, out)), [f"output_dir={out / 'run'}", "grad_accum=2"])
    trainer, _ = build_trainer(cfg)
    trainer.fit()
    losses = _losses(out / "run")
    assert sorted(losses) == list(range(1, STEPS + 1))
    return losses


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2", "deepspeed_zero2", "deepspeed_zero3"])
def test_two_processes_match_one(strategy, tiny_data, tmp_path, reference):
    out = tmp_path / "run"
    _launch(["--config", str(_config_file(tiny_data, tmp_path)), f"strategy={strategy}", f"output_dir={out}",
             "--no-progress"])
    got = _losses(out)
    assert sorted(got) == sorted(reference)
    worst = max(abs(got[s] - reference[s]) for s in reference)
    print(f"{strategy}: max |loss - one process| = {worst:.3g}")
    assert worst < TOLERANCE, (strategy, got, reference)
    _assert_consolidates(out, tmp_path / "consolidated")


def _assert_consolidates(out: Path, target: Path) -> None:
    """`pixelrefer export-train`'s function on the last (sharded) checkpoint gives the exported final weights."""
    consolidate(out, target)
    final, merged = read_state_dict(out / "final"), read_state_dict(target)
    assert sorted(final) == sorted(merged)
    for name, tensor in final.items():
        assert torch.equal(tensor, merged[name]), name
    PixelReferForConditionalGeneration.from_pretrained(target)


def test_sigkill_of_two_processes_resumes_exactly(tiny_data, tmp_path, reference):
    """FSDP2 (sharded DCP checkpoints): SIGKILL after the step-2 checkpoint, then --resume auto."""
    out = tmp_path / "run"
    args = ["--config", str(_config_file(tiny_data, tmp_path)), "strategy=fsdp2", f"output_dir={out}", "--no-progress"]
    proc = subprocess.Popen(_torchrun(args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    checkpoints = out / "checkpoints"
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while not any(checkpoints.glob("step-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    found = sorted(p.name for p in checkpoints.glob("step-*"))
    assert found and f"step-{STEPS:07d}" not in found, found  # killed mid-run, after a checkpoint
    _launch(args + ["--resume", "auto"])
    got = _losses(out)
    assert sorted(got) == list(range(1, STEPS + 1))  # steps redone after the checkpoint are listed once
    worst = max(abs(got[s] - reference[s]) for s in reference)
    assert worst < TOLERANCE, (got, reference)
    _assert_consolidates(out, tmp_path / "consolidated")


def test_one_process_fsdp2_is_refused(tiny_config):
    from pixelrefer.errors import ConfigError

    with pytest.raises(ConfigError, match="multi-process"):
        build_trainer(tiny_config("strategy=fsdp2"))


def test_unknown_strategy_is_a_config_error(tiny_config):
    from pixelrefer.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown strategy"):
        build_trainer(tiny_config("strategy=horovod"))


def test_length_grouped_order_keeps_every_sample_once(tiny_config):
    """group_by_length sorts within chunks of the shuffled order; each epoch still holds every sample once."""
    trainer, _ = build_trainer(tiny_config("group_by_length=true", "batch_size=2"))
    lengths = [trainer.train_set.length_estimate(i) for i in range(len(trainer.train_set))]
    assert len(set(lengths)) > 1  # the tiny data has samples of different lengths
    for epoch in (0, 1):
        order = [i for batch in trainer.epoch_batches(epoch) for i in batch]
        assert sorted(order) == list(range(len(trainer.train_set)))
        assert [lengths[i] for i in order] == sorted((lengths[i] for i in order), reverse=True)  # one chunk here
