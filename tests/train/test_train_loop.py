"""The trainer on a tiny model: loss falls, resume is exact, frozen modules are really frozen."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pixelrefer.train.loop import latest_checkpoint
from pixelrefer.train.run import build_trainer, run


def _losses(output_dir: str) -> dict[int, float]:
    lines = (Path(output_dir) / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["type"] == "train"}


def test_loss_falls_and_run_exports(tiny_config):
    cfg = tiny_config("max_steps=40", "lrs.vision=3e-3")
    out = run(cfg)
    losses = _losses(cfg.output_dir)
    first = sum(losses[s] for s in (1, 2, 3)) / 3
    last = sum(losses[s] for s in (38, 39, 40)) / 3
    assert last < 0.4 * first, (first, last)
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert any(out.glob("*.safetensors"))
    assert (Path(cfg.output_dir) / "config.yaml").is_file()
    evals = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert any(r["type"] == "eval" for r in evals)


def test_resume_reproduces_uninterrupted_run(tiny_config, tmp_path):
    common = ("max_steps=8", "batch_size=2", "grad_accum=2", "save_every=3", "keep_checkpoints=3")
    full_cfg = tiny_config(*common, f"output_dir={tmp_path / 'full'}")
    full, _ = build_trainer(full_cfg)
    full.fit()

    cut_cfg = tiny_config(*common, f"output_dir={tmp_path / 'cut'}")
    first, _ = build_trainer(cut_cfg)
    first.fit(stop_at=5)  # "interrupted" after step 5; the last checkpoint is step 3 (mid-epoch)
    checkpoint = latest_checkpoint(cut_cfg.output_dir)
    assert checkpoint is not None and checkpoint.name == "step-0000003"
    assert json.loads((checkpoint / "trainer_state.json").read_text())["position"] == 6
    resumed, _ = build_trainer(cut_cfg, resume="auto")
    assert resumed.state.step == 3
    resumed.fit()

    expected, got = _losses(full_cfg.output_dir), _losses(cut_cfg.output_dir)
    assert sorted(expected) == list(range(1, 9))
    for step in range(1, 9):
        assert got[step] == expected[step], (step, got[step], expected[step])
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.scheduler.get_last_lr() == full.scheduler.get_last_lr()


def _check_frozen(trainer, frozen_prefixes: tuple[str, ...]) -> None:
    batch = trainer.to_device(trainer.collator([trainer.train_set[i] for i in range(3)]))
    trainer.model(**batch.as_kwargs()).loss.backward()
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    frozen = [(n, p) for n, p in trainer.model.named_parameters() if n.startswith(frozen_prefixes)]
    trained = [(n, p) for n, p in trainer.model.named_parameters() if not n.startswith(frozen_prefixes)]
    assert frozen and trained
    for name, p in frozen:
        assert not p.requires_grad and p.grad is None, name
        assert id(p) not in in_optimizer, name
    for name, p in trained:
        assert p.requires_grad and id(p) in in_optimizer, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for _, p in trained)


def test_stage1_freezes_the_vision_encoder(tiny_config):
    trainer, _ = build_trainer(tiny_config("stage=stage1"))
    _check_frozen(trainer, ("vision_model.",))


def test_region_only_stage_freezes_llm_vision_projector(tiny_config):
    trainer, _ = build_trainer(tiny_config("stage=region-only"))
    _check_frozen(trainer, ("vision_model.", "language_model.", "projector.", "lm_head."))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if n.startswith("language_model.")}
    trainer.fit(stop_at=2)
    for n, p in trainer.model.named_parameters():
        if n in before:
            assert torch.equal(p, before[n]), n


def test_no_decay_for_biases_and_norms(tiny_config):
    trainer, _ = build_trainer(tiny_config("optim.weight_decay=0.1"))
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            vector = p.ndim < 2 or "norm" in names[id(p)]
            assert group["weight_decay"] == (0.0 if vector else 0.1), names[id(p)]


def test_train_cli_scores_splits_with_the_harness(tiny_config, tmp_path):
    from pixelrefer.cli.train import train

    cfg = tiny_config("max_steps=2", "device=cpu")
    config_file = cfg.save(tmp_path / "cfg")
    train(overrides=None, config=str(config_file), resume="never", evaluate=["val.json"], progress=False)
    results = json.loads((Path(cfg.output_dir) / "eval-val" / "results.json").read_text())
    predictions = (Path(cfg.output_dir) / "eval-val" / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 4 and "category acc" in results["metrics"]
