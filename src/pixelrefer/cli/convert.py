"""`pixelrefer convert OFFICIAL OUT`: write an official checkpoint once in our format (no key remapping later)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from pixelrefer.constants import DEFAULT_MAX_SHARD_SIZE
from pixelrefer.errors import PixelReferError

EXIT_BAD_INPUT = 2


def convert(
    official: Annotated[Path, typer.Argument(help="Official PixelRefer / PixelRefer-Lite checkpoint folder.")],
    out: Annotated[Path, typer.Argument(help="Folder to write (safetensors, config, tokenizer, processor settings).")],
    max_shard_size: Annotated[str, typer.Option(
        help="Largest weight file, e.g. 5GB, 500MB; bigger models are split into shards with an index.")] = DEFAULT_MAX_SHARD_SIZE,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists and is not empty.")] = False,
) -> None:
    """Convert an official checkpoint to this package's format; it then loads with `from_pretrained(OUT)`."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from pixelrefer.model.export import export_official

    try:  # the folders and the shard size are checked before any weight is read
        files = export_official(official, out, max_shard_size=max_shard_size, overwrite=overwrite)
    except PixelReferError as exc:
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    shards = [f for f in files if f.suffix == ".safetensors"]
    size = sum(f.stat().st_size for f in shards)
    typer.echo(f"wrote {out}: {len(shards)} weight file(s), {size / 1e6:.1f} MB, {len(files)} files in all")
    for f in files:
        typer.echo(f"  {f.name}")
