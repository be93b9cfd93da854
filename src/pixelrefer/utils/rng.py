"""Seeded work without touching anyone else's random state.

``torch.manual_seed`` reseeds the CPU generator *and every CUDA (and MPS) generator* for the whole process, and
``torch.random.fork_rng(devices=[])`` saves and restores only the CPU one, so the pair leaves the accelerator's
generator reseeded behind the caller's back. :func:`seeded` forks and seeds exactly the generators the work uses:
the CPU one and that of ``device``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int | None, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with the CPU generator and ``device``'s generator seeded with ``seed``, both restored after.

    ``seed=None`` does nothing: the block draws from the process's generators as any unseeded torch call would.
    """
    if seed is None:
        yield
        return
    device = torch.device(device)
    if device.type == "mps":  # one generator, no device index: saved and restored by hand
        state = torch.mps.get_rng_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                torch.mps.manual_seed(seed)
                yield
        finally:
            torch.mps.set_rng_state(state)
    elif device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield
    else:  # an indexed accelerator (cuda, xpu, ...): fork and seed exactly that device's generator
        module = torch.get_device_module(device.type)
        index = device.index if device.index is not None else module.current_device()
        with torch.random.fork_rng(devices=[index], device_type=device.type):
            torch.default_generator.manual_seed(seed)
            with module.device(index):
                module.manual_seed(seed)
            yield
