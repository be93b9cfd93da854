"""Shared by the atheris harnesses: run one parser on fuzzed input and allow only our own errors.

A harness is run as a script, ``python tests/fuzz/fuzz_rle.py -max_total_time=600 -timeout=10`` (libFuzzer flags);
``tests/fuzz/test_fuzz_smoke.py`` runs each for a few seconds in CI. Anything but a
:class:`pixelrefer.errors.PixelReferError` escaping, or a broken round-trip invariant, is a crash.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["pixelrefer"]):
    from pixelrefer.errors import PixelReferError


def run(target: Callable[[atheris.FuzzedDataProvider], None]) -> None:
    """Fuzz ``target`` (called with a FuzzedDataProvider) with the command line's libFuzzer flags."""

    def one_input(data: bytes) -> None:
        try:
            target(atheris.FuzzedDataProvider(data))
        except PixelReferError:
            pass

    logging.disable(logging.WARNING)  # region warnings ("covers the whole image") would flood the output
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def small_size(fdp: atheris.FuzzedDataProvider) -> int:
    """Mostly tiny sizes (fast), sometimes zero, negative or huge ones (the limits must catch those)."""
    pick = fdp.ConsumeIntInRange(0, 15)
    if pick == 0:
        return fdp.ConsumeIntInRange(-3, 0)
    if pick == 1:
        return fdp.ConsumeIntInRange(10**4, 10**6)
    return fdp.ConsumeIntInRange(1, 40)
