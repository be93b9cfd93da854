"""The one exception hierarchy for input the caller got wrong.

Every interface maps :class:`PixelReferError` once (CLI: exit code 2, HTTP: a 4xx JSON body, demo: a red
message); anything else escaping is a bug. Each subclass also derives from ``ValueError`` so callers that
catch ``ValueError`` keep working.
"""

from __future__ import annotations

import os
from pathlib import Path


class PixelReferError(ValueError):
    """Bad input: the message says what is wrong and how to fix it, without internal paths."""


class MediaError(PixelReferError):
    """An image or video cannot be read (missing, unreadable, unsupported, zero frames) or written."""


class RegionError(PixelReferError):
    """A region cannot be turned into a usable mask (empty, wrong size, out of the image, ...)."""


class PromptError(PixelReferError):
    """The text and the regions given with it do not fit together."""


class ConfigError(PixelReferError):
    """A configuration (model, training, serving, synthetic data) has a value that cannot be honoured."""


class CheckpointError(PixelReferError):
    """A checkpoint folder cannot be loaded: missing files, unknown format, or keys that do not fit."""


class DataError(PixelReferError):
    """A training sample (or data file) is malformed; the message names the file, sample id and index."""


class LimitError(PixelReferError):
    """The input is well formed but larger than a configured limit (tokens, pixels, frames, regions, bytes)."""


def reason(exc: BaseException, path: str | os.PathLike | None = None) -> str:
    """A third-party exception's message on one line, with ``path``'s folders removed (a server's temporary
    upload folder, a user's home) so that only the file name shows."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if path is not None:
        name = Path(path).name
        for full in {str(path), str(Path(path).resolve())}:
            text = text.replace(full, name)
    return text
