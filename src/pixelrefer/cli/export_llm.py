"""`pixelrefer export-llm CKPT OUT`: write a model's LLM once as a plain Qwen2 folder for vLLM (docs/serving.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixelrefer.cli.common import DeviceOpt, ModelArgs, load_pipeline
from pixelrefer.constants import DEFAULT_MAX_SHARD_SIZE


def export_llm_command(
    ckpt: Annotated[str, typer.Argument(help="Model: a checkpoint folder, a bundled model or a preset (e.g. tiny-servable).")],
    out: Annotated[Path, typer.Argument(help="Folder to write (config.json, safetensors, tokenizer).")],
    dtype: Annotated[str, typer.Option(help="weights dtype written: auto (as loaded), float32, bfloat16, float16")] = "auto",
    device: DeviceOpt = "cpu",
    max_shard_size: Annotated[str, typer.Option(help="largest weight file, e.g. 5GB")] = DEFAULT_MAX_SHARD_SIZE,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT's files if it is not empty.")] = False,
) -> None:
    """Export the LLM of CKPT as a Qwen2 folder that vLLM serves with --enable-prompt-embeds."""
    from pixelrefer.engines.export_llm import check_out, export_llm
    from pixelrefer.model.export import shard_size_bytes

    check_out(out, overwrite)
    shard_size_bytes(max_shard_size)
    pipeline = load_pipeline(ModelArgs(ckpt, device, dtype))
    files = export_llm(pipeline.model, pipeline.tokenizer, out, overwrite=overwrite, max_shard_size=max_shard_size)
    typer.echo(f"wrote {out}: {len(files)} files")
    for f in files:
        typer.echo(f"  {f.name}")
