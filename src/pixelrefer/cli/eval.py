"""`pixelrefer eval BENCHMARK`: run a model over a benchmark (resumable, sharded) and score it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pixelrefer.cli.common import DEFAULT_MODEL, ModelOpt, QuantizeOpt, warn_random_weights
from pixelrefer.errors import ConfigError
from pixelrefer.utils.text import ascii_decimal

if TYPE_CHECKING:
    from pixelrefer.eval.predictor import PixelReferPredictor
    from pixelrefer.eval.tasks import Task

logger = logging.getLogger(__name__)


def _parse_aux(values: list[str]) -> dict[str, Path]:
    aux = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"--aux expects NAME=PATH, got {value!r}")
        aux[name.strip()] = Path(path)
    return aux


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    number = ascii_decimal(value)
    if number is None:
        raise ConfigError(f"environment variable {name}={value!r} must be a whole number")
    return number


def _launch_layout(num_shards: int | None, shard: int | None, device: str) -> tuple[int, int, str]:
    """Shards from flags, else from a torchrun/accelerate launch (WORLD_SIZE, RANK, LOCAL_RANK), else 1 shard."""
    world = _env_int("WORLD_SIZE", 1)
    if num_shards is None:
        num_shards = world
    if shard is None:
        shard = _env_int("RANK", 0) if num_shards == world else 0
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{_env_int('LOCAL_RANK', 0)}"
    return num_shards, shard, device


def eval_command(
    benchmark: Annotated[
        str,
        typer.Argument(
            help="lvis, paco, vg, refl4, refl4_clair, dlc_bench, ferret, "
            "videorefer_d, videorefer_q, hc_stvg, mvbench, synthetic"
        ),
    ],
    out: Annotated[Path, typer.Option(help="output folder of this model x benchmark run")],
    data: Annotated[
        Path | None,
        typer.Option(help="the benchmark's file (or folder, for MVBench); not needed with --score-only"),
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    media_root: Annotated[
        Path | None, typer.Option(help="images/videos folder (default: the data folder)")
    ] = None,
    variant: Annotated[str, typer.Option(help="prompt protocol: full (PixelRefer) or lite")] = "full",
    num_shards: Annotated[
        int | None,
        typer.Option(
            help="split the items into this many shards "
            "(default: WORLD_SIZE of a torchrun/accelerate launch, else 1)",
            min=1,
        ),
    ] = None,
    shard: Annotated[
        int | None, typer.Option(help="which shard this process runs, 0-based (default: RANK, else 0)", min=0)
    ] = None,
    score_only: Annotated[bool, typer.Option(help="only score existing predictions (merges shards)")] = False,
    predict_only: Annotated[bool, typer.Option(help="only predict; score later with --score-only")] = False,
    limit: Annotated[int | None, typer.Option(help="only the first N items", min=0)] = None,
    device: Annotated[str, typer.Option()] = "cpu",
    dtype: Annotated[str, typer.Option()] = "float32",
    quantize: QuantizeOpt = "none",
    batch_size: Annotated[int, typer.Option(min=1)] = 1,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 1024,
    retry_errors: Annotated[bool, typer.Option(help="re-run items whose model call failed before")] = False,
    aux: Annotated[
        list[str] | None, typer.Option(help="NAME=PATH extra file for scoring (repeatable)")
    ] = None,
    judge_base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible judge endpoint")] = None,
    judge_model: Annotated[str | None, typer.Option(help="judge model string, recorded in results")] = None,
    judge_api_key: Annotated[str | None, typer.Option(help="judge API key (or env)")] = None,
    judge_workers: Annotated[int | None, typer.Option(
        help="judge calls in flight at once (default: JudgeConfig.workers)", min=1)] = None,
    dlc_protocol: Annotated[str, typer.Option(help="DLC-Bench judge protocol: gpt or llama")] = "gpt",
    meteor: Annotated[bool, typer.Option(help="compute METEOR (starts a JVM, ~15 s)")] = True,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Run BENCHMARK with the paper's prompt and metric; predictions resume where a killed run stopped."""
    from pixelrefer.eval.harness import score
    from pixelrefer.eval.judge import Judge, JudgeConfig, JudgeNotConfigured
    from pixelrefer.eval.tasks import ScoreContext, get_task

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    num_shards, shard, device = _launch_layout(num_shards, shard, device)
    if not 0 <= shard < num_shards:
        raise typer.BadParameter(f"shard {shard} is outside 0..{num_shards - 1}", param_hint="--shard")
    task = get_task(benchmark, variant=variant)
    options = {"meteor": meteor, "dlc_protocol": dlc_protocol}

    def make_judge() -> Judge:
        settings = task.judge_settings(options)
        config = JudgeConfig.resolve(
            task.name, judge_base_url, judge_model, judge_api_key, **settings,
            **({} if judge_workers is None else {"workers": judge_workers}),
        )
        return Judge(config, cache_path=out / "judge_calls.jsonl")

    if task.judge == "required" and not predict_only:
        try:
            JudgeConfig.resolve(task.name, judge_base_url, judge_model, judge_api_key)
        except JudgeNotConfigured as exc:
            typer.echo(
                f"error: {exc}\n(or run with --predict-only now and --score-only once a judge is available)",
                err=True,
            )
            raise typer.Exit(2) from exc
    if not score_only:
        if data is None:
            raise typer.BadParameter("--data is required unless --score-only", param_hint="--data")
        warn_random_weights(model, f"the {task.name} scores")
        predictor = _build_predictor(model, device, dtype, max_new_tokens, quantize)
        _run_predictions(
            task,
            predictor,
            data,
            media_root or data.parent,
            out,
            num_shards,
            shard,
            limit,
            batch_size,
            retry_errors,
            progress,
        )
        if num_shards > 1:
            typer.echo(
                f"shard {shard} done; after all shards: pixelrefer eval {task.name} --score-only "
                f"--num-shards {num_shards} --out {out}"
            )
            return
    if predict_only:
        return
    ctx = ScoreContext(out_dir=out, aux=_parse_aux(aux or []), options=options, judge_factory=make_judge)
    try:
        score(task, out, ctx, num_shards=num_shards)
    except JudgeNotConfigured as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo((out / "results.md").read_text(encoding="utf-8"))
    logger.info("results: %s", out / "results.json")


def _build_predictor(model: str, device: str, dtype: str, max_new_tokens: int, quantize: str) -> PixelReferPredictor:
    from pixelrefer.eval.predictor import PixelReferPredictor

    return PixelReferPredictor(model, device=device, dtype=dtype, max_new_tokens=max_new_tokens, quantize=quantize)


def _run_predictions(
    task: Task,
    predictor: PixelReferPredictor,
    data: Path,
    media_root: Path,
    out: Path,
    num_shards: int,
    shard: int,
    limit: int | None,
    batch_size: int,
    retry_errors: bool,
    progress: bool,
) -> None:
    """Load the benchmark, predict this shard with a progress bar, and print a one-line summary."""
    from tqdm import tqdm

    from pixelrefer.eval.harness import predict, shard_items

    items = task.load(data, media_root)
    if limit is not None:
        items = items[:limit]
    run_info = {
        "model": predictor.model_name,
        "data": str(data.resolve()),
        "media_root": str(media_root.resolve()),
        "limit": limit,
        "predictor": predictor.describe(),
    }
    total = len(shard_items(items, num_shards, shard))
    with tqdm(total=total, desc=f"{task.name} shard {shard}/{num_shards}", disable=not progress) as bar:
        summary = predict(
            task,
            items,
            predictor,
            out,
            run_info=run_info,
            num_shards=num_shards,
            shard=shard,
            batch_size=batch_size,
            retry_model_errors=retry_errors,
            progress=bar.update,
        )
    typer.echo(
        f"predictions: {summary.path} ({summary.total} items, {summary.skipped} resumed, "
        f"{summary.failed} failed)"
    )
