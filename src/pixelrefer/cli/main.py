"""The `pixelrefer` command: a table of subcommands, each a plain typed function in its own module.

Every command is wrapped once by :func:`pixelrefer.cli.common.handle_errors` (one-line errors, exit code 2 for
bad input, 3 for a model that cannot be loaded) and parse errors are one line too (:class:`PixelReferTyper`).
"""

from __future__ import annotations

import importlib

import typer

from pixelrefer.cli.common import EXIT_BAD_INPUT, PixelReferTyper, handle_errors

app = PixelReferTyper(
    name="pixelrefer",
    help="Region-level understanding of images and videos (PixelRefer / PixelRefer-Lite).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# name -> "module:function" (or "module:typer_group") in pixelrefer/cli/. A command whose optional extra is not installed is replaced by
# a stub that says which dependency is missing, so the rest of the CLI keeps working.
COMMANDS: dict[str, str] = {
    "ask": "ask:ask",
    "describe": "ask:describe",
    "chat": "chat:chat",
    "convert": "convert:convert",
    "data": "data:data_app",
    "export-llm": "export_llm:export_llm_command",
    "serve": "serve:serve",
    "demo": "demo:demo",
    "eval": "eval:eval_command",
    "segment": "segment:segment",
    "synth": "synth:synth",
    "train": "train:train",
    "export-train": "train:export_train",
}


def _missing_dependency(name: str, exc: ImportError):
    def missing() -> None:
        typer.echo(f"error: `pixelrefer {name}` needs an optional dependency that is not installed: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)

    missing.__doc__ = f"(unavailable: {exc})"
    return missing


def _register() -> None:
    for name, target in COMMANDS.items():
        module_name, func_name = target.split(":")
        try:
            module = importlib.import_module(f"pixelrefer.cli.{module_name}")
        except ImportError as exc:  # an optional extra is missing: keep the rest of the CLI working
            app.command(name)(_missing_dependency(name, exc))
            continue
        target_obj = getattr(module, func_name)
        if isinstance(target_obj, typer.Typer):  # a command group (`pixelrefer data validate`)
            app.add_typer(target_obj, name=name)
        else:
            app.command(name)(handle_errors(target_obj))


_register()

if __name__ == "__main__":
    app()
