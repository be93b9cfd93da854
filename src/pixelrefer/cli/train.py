"""`pixelrefer train --config PRESET_OR_YAML key=value ...`: train a model and export it with its tokenizer."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

logger = logging.getLogger(__name__)


def train(
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted key=value overrides, e.g. max_steps=100.")] = None,
    config: Annotated[str, typer.Option("--config", "-c", help="A train config name (nano, nano-lite, ...) or a YAML file.")] = "nano",
    resume: Annotated[str, typer.Option(help="'never', 'auto' (latest checkpoint of the output folder) or a checkpoint folder.")] = "never",
    evaluate: Annotated[list[str] | None, typer.Option("--eval", help="After training, exact-match accuracy on these split files (e.g. test.json).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train PixelRefer / PixelRefer-Lite per a config; writes the resolved config, metrics.jsonl and the model."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pixelrefer.train.config import load_train_config
    from pixelrefer.train.recipe import run

    cfg = load_train_config(config, list(overrides or []) + ([] if progress else ["progress=false"]))
    out = run(cfg, resume=resume)
    typer.echo(f"model + tokenizer -> {out}; config and metrics in {cfg.output_dir}")
    for split in evaluate or []:
        accuracy = evaluate_split(out, Path(cfg.data.root) / split, Path(cfg.output_dir), progress)
        typer.echo(f"{split}: " + ", ".join(f"{k}={v:.3f}" for k, v in accuracy.items()))


def evaluate_split(model_dir: Path, data_file: Path, out_dir: Path, progress: bool) -> dict[str, float]:
    """Exact-match accuracy of an exported model on one data file; written to ``out_dir``."""
    import torch

    from pixelrefer.model.loading import load_checkpoint
    from pixelrefer.processing.processor import PixelReferProcessor
    from pixelrefer.train.dataset import SupervisedDataset
    from pixelrefer.train.evaluate import answer_accuracy

    model, tokenizer = load_checkpoint(model_dir, torch.device("cpu"), torch.float32)
    processor = PixelReferProcessor(tokenizer, model.config)
    dataset = SupervisedDataset(data_file, processor, validate=False)
    report = answer_accuracy(model, processor, dataset, progress=progress)
    accuracy = report.accuracy()
    (out_dir / f"accuracy-{data_file.stem}.json").write_text(
        json.dumps({"accuracy": accuracy, "counts": dict(report.total), "errors": report.examples}, indent=2))
    return accuracy
