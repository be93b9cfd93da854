"""`pixelrefer train --config PRESET_OR_YAML key=value ...`: run a recipe (its data, tokenizer and vision
pretraining steps when configured, then training) and export the model with its tokenizer."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

logger = logging.getLogger(__name__)

EVAL_BATCH_SIZE = 16
EVAL_MAX_NEW_TOKENS = 64  # the synthetic answers are short; a weak model must not ramble for 1,024 tokens


def train(
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted key=value overrides, e.g. max_steps=100.")] = None,
    config: Annotated[str, typer.Option("--config", "-c", help="A train config name (nano, nano-lite, ...) or a YAML file.")] = "nano",
    resume: Annotated[str, typer.Option(help="'never', 'auto' (latest checkpoint of the output folder) or a checkpoint folder.")] = "never",
    evaluate: Annotated[list[str] | None, typer.Option("--eval", help="After training, score these split files of the data root (e.g. test.json) with `pixelrefer eval synthetic`; results in OUTPUT_DIR/eval-SPLIT.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved plan (parameters per group, what trains, batch per step, memory per device for the strategy) with the model on the meta device, then stop.")] = False,
    processes: Annotated[int | None, typer.Option(help="With --dry-run: plan for this many processes (default: the launcher's WORLD_SIZE, else 1).")] = None,
) -> None:
    """Train PixelRefer / PixelRefer-Lite per a config; writes the resolved config, metrics.jsonl and the model.
    Multi-process: `torchrun --nproc_per_node N -m pixelrefer train ... strategy=ddp|fsdp2|deepspeed_zero2|deepspeed_zero3`."""
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun / accelerate launch, only rank 0 talks
    logging.basicConfig(level=logging.INFO if main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pixelrefer.recipes.config import load_recipe_config
    from pixelrefer.recipes.run import run

    cfg = load_recipe_config(config, list(overrides or []) + ([] if progress else ["progress=false"]))
    if dry_run:
        from pixelrefer.recipes.vision import plan_line
        from pixelrefer.train.plan import plan_run

        vision = plan_line(cfg)
        for line in ([vision] if vision else []) + plan_run(cfg, processes or int(os.environ.get("WORLD_SIZE", "1")),
                                                                 cfg.data.vocab_size).lines():
            typer.echo(line)
        return
    from pixelrefer.train.distributed import close_processes

    out = run(cfg, resume=resume)
    close_processes()
    if not main_process:
        return
    typer.echo(f"model + tokenizer -> {out}; config and metrics in {cfg.output_dir}")
    for split in evaluate or []:
        evaluate_split(out, Path(cfg.data.root) / split, Path(cfg.output_dir) / f"eval-{Path(split).stem}",
                       cfg.device, progress)


def evaluate_split(model_dir: Path, data_file: Path, out_dir: Path, device: str, progress: bool) -> None:
    """Score the exported model on one split with the harness's synthetic benchmark (prints its results table)."""
    from pixelrefer.cli.eval import eval_command
    from pixelrefer.utils.device import resolve_device

    eval_command("synthetic", out=out_dir, data=data_file, model=str(model_dir), device=str(resolve_device(device)),
                 batch_size=EVAL_BATCH_SIZE, max_new_tokens=EVAL_MAX_NEW_TOKENS, meteor=False, progress=progress)


def export_train(
    run_dir: Annotated[Path, typer.Argument(help="A training run's output folder (holds checkpoints/ and config.yaml).")],
    out: Annotated[Path, typer.Argument(help="Folder for the model + tokenizer.")],
    checkpoint: Annotated[Path | None, typer.Option(help="A checkpoint folder of the run; default its latest.")] = None,
) -> None:
    """Consolidate a training checkpoint of any strategy (DDP, FSDP2's DCP shards, DeepSpeed's ZeRO shards) into
    one model folder that `from_pretrained` loads; runs in one process, no launcher needed."""
    from pixelrefer.errors import PixelReferError
    from pixelrefer.train.consolidate import consolidate

    try:
        written = consolidate(run_dir, out, checkpoint)
    except PixelReferError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"model + tokenizer -> {written}")
