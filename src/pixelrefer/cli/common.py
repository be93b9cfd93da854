"""How every `pixelrefer` command ends on an error: one line on stderr, a meaningful exit code, no traceback.

Exit codes: 2 bad input (any :class:`~pixelrefer.errors.PixelReferError`, a bad option value, a missing file),
3 a model or checkpoint that cannot be loaded (:class:`~pixelrefer.errors.CheckpointError`), 130 interrupted.
Anything else escaping is a bug and keeps its traceback (exit 1). :func:`handle_errors` wraps each command once
(see :mod:`pixelrefer.cli.main`); :class:`PixelReferTyper` does the same for click's own parse errors, which
happen before a command runs.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer 0.29 vendors click; not re-exported

from pixelrefer.errors import CheckpointError, PixelReferError

EXIT_BAD_INPUT = 2
EXIT_MODEL = 3
EXIT_INTERRUPTED = 130

# Input mistakes that are not (yet) ours: typer/click parameter errors and missing or malformed user files.
INPUT_ERRORS = (PixelReferError, typer.BadParameter, json.JSONDecodeError, FileNotFoundError, IsADirectoryError,
                NotADirectoryError, UnicodeDecodeError)

console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def fail(code: int, message: str) -> NoReturn:
    """Print a one-line error and exit with ``code``."""
    console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False)
    raise typer.Exit(code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, typer.BadParameter):
        return exc.format_message()
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not valid UTF-8 text (byte {exc.start})"
    return str(exc) or type(exc).__name__


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn known failures into one-line errors with the exit codes above."""
    try:
        yield
    except typer.Exit:
        raise
    except CheckpointError as exc:
        fail(EXIT_MODEL, f"model: {exc}")
    except INPUT_ERRORS as exc:
        fail(EXIT_BAD_INPUT, _describe(exc))
    except KeyboardInterrupt:
        fail(EXIT_INTERRUPTED, "interrupted")


def handle_errors(func: F) -> F:
    """Decorate a command so that its errors end as :func:`cli_errors` says (typer still sees its signature)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with cli_errors():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class PixelReferTyper(typer.Typer):
    """A Typer app whose parse errors (bad option values, unknown options) are one line and exit code 2."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().__call__(*args, **kwargs)
        try:
            code = super().__call__(*args, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as exc:  # `pixelrefer` alone: the help text, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:
            name = exc.ctx.command_path if exc.ctx is not None else "pixelrefer"
            console.print(f"[bold red]error:[/] {escape(one_line(exc.format_message()))} (see `{name} --help`)",
                          highlight=False)
            sys.exit(EXIT_BAD_INPUT)
        except typer.TyperException as exc:  # click's other errors (file errors, ...)
            console.print(f"[bold red]error:[/] {escape(one_line(exc.format_message()))}", highlight=False)
            sys.exit(exc.exit_code)
        except typer.Abort:
            console.print("[bold red]error:[/] interrupted", highlight=False)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)
