"""Resuming is safe and clean: no pickle is ever unpickled, and metrics.jsonl lists each step once."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from pixelrefer.errors import CheckpointError
from pixelrefer.train.loop import LEGACY_RNG_FILE, RNG_FILE, latest_checkpoint
from pixelrefer.train.run import build_trainer


class _Malicious:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _steps(output_dir: str) -> list[int]:
    lines = (Path(output_dir) / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if r["type"] == "train"]


def test_resumed_metrics_list_each_step_once(tiny_config, tmp_path):
    cfg = tiny_config("max_steps=6", "batch_size=2", "save_every=2", "log_every=1", f"output_dir={tmp_path / 'run'}")
    first, _ = build_trainer(cfg)
    first.fit(stop_at=5)  # killed after step 5: the last checkpoint is step 4, steps 5 was logged already
    assert _steps(cfg.output_dir) == [1, 2, 3, 4, 5]
    with (Path(cfg.output_dir) / "metrics.jsonl").open("a") as f:
        f.write('{"type": "train", "st')  # a line torn by the kill
    resumed, _ = build_trainer(cfg, resume="auto")
    assert resumed.state.step == 4
    resumed.fit()
    assert _steps(cfg.output_dir) == [1, 2, 3, 4, 5, 6]
    checkpoint = latest_checkpoint(cfg.output_dir)
    assert (checkpoint / RNG_FILE).is_file() and not (checkpoint / LEGACY_RNG_FILE).exists()


def test_resume_refuses_a_pickled_rng_state_unread(tiny_config, tmp_path):
    cfg = tiny_config("max_steps=2", "batch_size=2", "save_every=2", f"output_dir={tmp_path / 'run'}")
    trainer, _ = build_trainer(cfg)
    trainer.fit()
    checkpoint = latest_checkpoint(cfg.output_dir)
    (checkpoint / RNG_FILE).unlink()
    marker = tmp_path / "pickle-ran"
    (checkpoint / LEGACY_RNG_FILE).write_bytes(pickle.dumps(_Malicious(marker)))
    with pytest.raises(CheckpointError, match="pickle"):
        build_trainer(cfg, resume=str(checkpoint))
    assert not marker.exists()
