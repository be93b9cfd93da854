"""The `pixelrefer` command: a table of subcommands, each a plain typed function in its own module.

Every command is wrapped once by :func:`pixelrefer.cli.common.handle_errors` (one-line errors, exit code 2 for
bad input, 3 for a model that cannot be loaded) and parse errors are one line too (:class:`PixelReferTyper`).

Commands are loaded lazily: `pixelrefer ask ...` imports only :mod:`pixelrefer.cli.ask` (not the demo, server,
training or synthetic-data modules); `pixelrefer --help` loads them all to list them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

import typer
from typer.core import TyperGroup

from pixelrefer.cli.common import EXIT_BAD_INPUT, PixelReferTyper, handle_errors

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


def load_command(name: str):
    """The click command of ``pixelrefer NAME``, importing its module now."""
    module_name, func_name = COMMANDS[name].split(":")
    try:
        target = getattr(importlib.import_module(f"pixelrefer.cli.{module_name}"), func_name)
    except ImportError as exc:  # an optional extra is missing: keep the rest of the CLI working
        target = _missing_dependency(name, exc)
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    if isinstance(target, typer.Typer):  # a command group (`pixelrefer data validate`)
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(handle_errors(target) if func_name == target.__name__ else target)
        holder.callback()(_group)  # a group of one, so that the command keeps its name
    return typer.main.get_command(holder).commands[name]


class _LazyCommands(MutableMapping):
    """The subcommands by name, each imported on first use."""

    def __init__(self) -> None:
        self._loaded: dict[str, object] = {}

    def __getitem__(self, name: str):
        if name not in self._loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self._loaded[name] = load_command(name)
        return self._loaded[name]

    def __setitem__(self, name: str, command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*COMMANDS, *self._loaded]))

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._loaded))


class LazyGroup(TyperGroup):
    """The top-level group: subcommands come from :data:`COMMANDS`, imported when named."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _LazyCommands()

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)


app = PixelReferTyper(
    name="pixelrefer",
    help="Region-level understanding of images and videos (PixelRefer / PixelRefer-Lite).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=LazyGroup,
)


@app.callback()
def _group() -> None:
    """Region-level understanding of images and videos (PixelRefer / PixelRefer-Lite)."""


if __name__ == "__main__":
    app()
