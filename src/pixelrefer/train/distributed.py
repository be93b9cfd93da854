"""The processes of a training run: rank, world size, device and the few collectives the loop needs.

A launcher (``torchrun``, ``accelerate launch``, ``deepspeed``) starts one process per device and sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``; :func:`init_processes` reads them and
joins the process group (NCCL on CUDA, gloo on CPU). Without them the run is one process and every collective
here is the identity.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from pixelrefer.errors import ConfigError
from pixelrefer.utils.device import resolve_device

logger = logging.getLogger(__name__)

TIMEOUT_MIN = 30  # a collective waiting this long means a peer died: fail rather than hang forever


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes."""
        return self.sum(value) / self.world_size

    def sum(self, value: float) -> float:
        if not self.distributed:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.comm_device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    @property
    def comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from exc


def init_processes(device: str) -> Processes:
    """Join the launcher's process group (if any) and pick this process's device.

    ``device`` is the config's: ``auto``/``cuda`` become ``cuda:LOCAL_RANK`` in a multi-process run.
    """
    rank, world, local = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if world > 1 and not dist.is_initialized():
        if resolved.type == "mps":
            raise ConfigError("multi-process training is not supported on MPS")
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=TIMEOUT_MIN),
                                device_id=resolved if resolved.type == "cuda" else None)
        logger.info("process %d of %d joined (%s, device %s)", rank, world, backend, resolved)
    return Processes(rank, world, local, resolved)


def close_processes() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
