"""`pixelrefer data validate FILE... --media-root DIR`: report the defects of official training JSONs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Training data tools.", no_args_is_help=True)


@data_app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(help="Training JSON files (PixelRefer-2.2M / VideoRefer-700K style).")],
    media_root: Annotated[Path | None, typer.Option(help="Folder the media paths are relative to; default each file's folder.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write every defect as a JSON list here.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Stream every sample through the training validator; print counts by defect kind with first examples.
    Exit 1 if any sample has a defect, 2 if a file is missing."""
    from pixelrefer.train.validate import validate_files

    missing = [f for f in files if not f.is_file()]
    if missing:
        typer.echo(f"error: no such file: {', '.join(map(str, missing))}", err=True)
        raise typer.Exit(2)
    result = validate_files(list(files), media_root, progress)
    for line in result.lines():
        typer.echo(line)
    if report is not None:
        report.write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
        typer.echo(f"defects -> {report}")
    if result.defects:
        raise typer.Exit(1)
