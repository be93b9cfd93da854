"""The one training loop: plain PyTorch, gradient accumulation, autocast where it pays, clipping, JSONL metrics,
a progress bar, and checkpoints that resume the exact same run (weights, optimizer, scheduler, RNG states, data
position). What a stage optimises is its :class:`~pixelrefer.train.objective.Objective` (PixelRefer's next-token
loss by default; a recipe may bring another, such as the vision tower's region-label pretraining).
Nothing is unpickled: RNG states are JSON, optimizer and scheduler states are read with ``weights_only=True``;
on resume ``metrics.jsonl`` is cut back to the checkpoint's step.

The strategy (single process, DDP, FSDP2, DeepSpeed ZeRO-2/3) is an engine of :mod:`pixelrefer.train.engines`
that wraps the model and owns optimizer, scheduler, stepping and the checkpoint format; the loop is the same
for all. The data order of epoch ``e`` is a permutation drawn from ``seed`` and ``e`` alone, cut into global
micro-batches of which process ``r`` of ``N`` takes every ``N``-th; resuming only needs the epoch and the
number of global micro-batches already consumed in it. A :class:`~pixelrefer.train.objective.BatchStream`
instead of a dataset (data made on the fly, one process) resumes from the position it reports after each batch.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from pixelrefer.errors import CheckpointError, ConfigError, DataError
from pixelrefer.train.config import TrainConfig
from pixelrefer.train.distributed import Processes, init_processes
from pixelrefer.train.engines import build_engine
from pixelrefer.train.objective import BatchStream, NextTokenObjective, Objective
from pixelrefer.train.stages import StageSpec, get_stage
from pixelrefer.train.vision_cache import with_tower_cache
from pixelrefer.types import ModelInputs

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
STATE_FILE = "trainer_state.json"
RNG_FILE = "rng.json"
LEGACY_RNG_FILE = "rng.pt"  # pickled by older versions: refused, never unpickled
DATA_ORDER_STRIDE = 1_000_003  # seed * stride + epoch seeds the permutation of an epoch
LENGTH_GROUP_STEPS = 64  # group_by_length sorts within chunks of this many global batches


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    position: int = 0  # micro-batches consumed in the current epoch
    samples: int = 0
    elapsed_s: float = 0.0
    strategy: str = "single"
    world_size: int = 1
    stream: dict[str, Any] | None = None  # a BatchStream's position (None for a dataset)


class JsonlLogger:
    """Appends one JSON object per line; ``fresh=True`` truncates the file first.

    ``resume_step`` (a resumed run) keeps only the records of steps up to the checkpoint's, so the steps run
    again after resuming are not listed twice; a torn last line left by a crash is dropped with them.
    """

    def __init__(self, path: Path, fresh: bool, resume_step: int | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            path.write_text("", encoding="utf-8")
        elif resume_step is not None and path.is_file():
            kept = [line for line in path.read_text(encoding="utf-8").splitlines() if _step_at_most(line, resume_step)]
            path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def log(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def _step_at_most(line: str, step: int) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False
    return isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _b64(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.numpy().tobytes()).decode("ascii")


def _tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text, validate=True)), dtype=torch.uint8)


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states as plain JSON (no pickle)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss},
        "numpy": {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "torch": _b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned; a malformed state is a :class:`CheckpointError`."""
    try:
        py, npy = state["python"], state["numpy"]
        random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
        np.random.set_state((npy["kind"], np.asarray(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"],
                             npy["cached_gaussian"]))
        torch.set_rng_state(_tensor(state["torch"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([_tensor(s) for s in state["cuda"]])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"the saved RNG state is malformed: {exc}") from exc


def rng_file(rank: int) -> str:
    """``rng.json`` for process 0 (and one-process runs), ``rng-rankN.json`` for the others."""
    return RNG_FILE if rank == 0 else f"rng-rank{rank}.json"


def read_rng_state(directory: Path, rank: int = 0) -> dict[str, Any]:
    """The RNG state of a checkpoint folder (``rng.json``); an old pickled ``rng.pt`` is refused, unread."""
    path = directory / rng_file(rank)
    if not path.is_file():
        if (directory / LEGACY_RNG_FILE).is_file():
            raise CheckpointError(
                f"{directory.name} holds {LEGACY_RNG_FILE}, a pickle written by an older version; it is not loaded, "
                "since unpickling a file can run code. Resume is not possible from this checkpoint; start a new run "
                "from its weights instead"
            )
        raise CheckpointError(f"{directory.name} has no {path.name}; it is not a complete training checkpoint")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{directory.name}/{path.name} is not valid JSON: {exc}") from exc


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA with bf16 support (``auto``), none (fp32) on CPU/MPS."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ConfigError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def resolve_stage(cfg: TrainConfig) -> StageSpec:
    stage = get_stage(cfg.stage, cfg.lrs)
    scaled = {g: (lr * cfg.lr_scale if lr is not None else None) for g, lr in stage.lrs.items()}
    return StageSpec(stage.name, scaled, stage.description)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = sorted((Path(output_dir) / CHECKPOINT_DIR).glob("step-*"))
    found = [p for p in found if (p / STATE_FILE).is_file()]
    return found[-1] if found else None


class Trainer:
    """Trains ``model`` on ``train_set`` (a dataset or a :class:`BatchStream`) per ``cfg`` and ``objective``
    (default: the next-token loss under ``cfg``'s stage); see the module docstring."""

    def __init__(self, model: nn.Module, train_set: Dataset | BatchStream, collator: Any, cfg: TrainConfig,
                 eval_set: Dataset | None = None, procs: Processes | None = None,
                 objective: Objective | None = None) -> None:
        self.procs = procs if procs is not None else init_processes(cfg.device)
        self.cfg = cfg = cfg.for_processes(self.procs.world_size)
        self.device = self.procs.device
        self.train_set, self.eval_set, self.collator = train_set, eval_set, collator
        self.stage = resolve_stage(cfg)
        self.objective = objective if objective is not None else NextTokenObjective(self.stage, cfg.optim.weight_decay)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.plan = self.objective.prepare(model)
        self.optim_cfg = cfg.optim
        world = self.procs.world_size
        if isinstance(train_set, BatchStream):
            if world > 1:
                raise ConfigError("a batch stream trains in one process; launch this stage without torchrun")
            if cfg.max_steps is None:
                raise ConfigError("a batch stream is endless: set max_steps")
            self.batches_per_epoch = 0
        else:
            self.batches_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
            if self.batches_per_epoch == 0:
                raise DataError("the training set is empty")
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.batches_per_epoch /
                                                             (cfg.grad_accum * world)))
        self.engine = build_engine(model, self.procs, self.objective.param_groups, self.optim_cfg,
                                   self.total_steps, autocast_dtype(cfg.precision, self.device), cfg)
        self.amp_dtype = self.engine.amp_dtype
        self.module, self.model = self.engine.module, self.engine.model
        self.optimizer, self.scheduler = self.engine.optimizer, self.engine.scheduler
        if cfg.data.cache_vision:
            if isinstance(train_set, BatchStream):
                raise ConfigError("data.cache_vision caches a dataset's samples; a batch stream makes new ones each step")
            cached = functools.partial(with_tower_cache, model=self.module, autocast=self.autocast,
                                       amp_dtype=self.amp_dtype, cache_dir=cfg.data.cache_dir)
            self.train_set = cached(train_set, name="train")
            self.eval_set = None if eval_set is None else cached(eval_set, name="eval")
        self.state = TrainerState(strategy=cfg.strategy, world_size=world)
        self.output_dir = Path(cfg.output_dir)
        self.metrics: JsonlLogger | None = None
        self.resumed_from: int | None = None  # step of the checkpoint this run resumed from

    # ------------------------------------------------------------------------------------------ data
    def to_device(self, batch: ModelInputs) -> ModelInputs:
        return batch.to(self.device)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The global micro-batches of an epoch, in order (the same for any number of processes)."""
        gen = torch.Generator().manual_seed(self.cfg.seed * DATA_ORDER_STRIDE + epoch)
        order = torch.randperm(len(self.train_set), generator=gen).tolist()
        size = self.cfg.batch_size
        if self.cfg.group_by_length:
            order = group_by_length(order, sample_lengths(self.train_set), size * self.cfg.grad_accum *
                                    self.procs.world_size * LENGTH_GROUP_STEPS)
        return [order[i:i + size] for i in range(0, len(order), size)]

    def global_stream(self, epoch: int, position: int) -> Iterator[tuple[int, int, list[int]]]:
        """``(epoch, position, indices)`` of every global micro-batch from ``(epoch, position)`` on, forever."""
        while True:
            batches = self.epoch_batches(epoch)
            for pos in range(position, len(batches)):
                yield epoch, pos, batches[pos]
            epoch, position = epoch + 1, 0

    def micro_batches(self) -> Iterator[Any]:
        """This process's micro-batches from the saved position on: global micro-batch ``k`` goes to process
        ``k % world_size``, so each optimizer step sees the same samples as one process with
        ``grad_accum * world_size`` micro-batches. The state advances by whole rounds of ``world_size``."""
        if isinstance(self.train_set, BatchStream):
            for batch, samples, position in self.train_set.batches(self.state.stream):
                self.state.stream = position
                self.state.samples += samples
                yield batch
            return
        world, rank = self.procs.world_size, self.procs.rank
        start = (self.state.epoch, self.state.position)
        mine = (b for b in itertools.islice(self.global_stream(*start), rank, None, world))
        seed = self.cfg.seed * DATA_ORDER_STRIDE + self.state.epoch * 7919 + self.state.position * world + rank
        loader = DataLoader(self.train_set, batch_sampler=_Batches(mine), collate_fn=self.collator,
                            num_workers=self.cfg.num_workers, worker_init_fn=seed_worker,
                            generator=torch.Generator().manual_seed(seed))
        rounds = _chunks(self.global_stream(*start), world)
        for batch, round_ in zip(loader, rounds):
            epoch, pos, _ = round_[-1]
            self.state.epoch, self.state.position = epoch, pos + 1
            self.state.samples += sum(len(indices) for _, _, indices in round_)
            yield batch

    # ------------------------------------------------------------------------------------------ steps
    def autocast(self):
        """The forward's autocast context (none in fp32)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, batches: Iterator[Any]) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches per process."""
        self.model.train()
        lrs = self.engine.learning_rates()
        losses, tokens = [], 0
        for i in range(self.cfg.grad_accum):
            batch = next(batches)
            with self.engine.accumulating(last=i == self.cfg.grad_accum - 1):
                with self.autocast():
                    loss, targets = self.objective.loss(self.model, batch, self.device)
                self.engine.backward(loss)
            losses.append(float(loss.detach()))
            tokens += targets
        grad_norm = self.engine.step()
        self.state.step += 1
        return {"loss": self.procs.mean(sum(losses) / len(losses)), "grad_norm": grad_norm,
                "target_tokens": int(self.procs.sum(tokens)), "lr": lrs}

    def evaluate(self) -> dict[str, Any] | None:
        """The objective's evaluation (for the next-token loss: the eval set's mean token loss)."""
        return self.objective.evaluate(self)

    # ------------------------------------------------------------------------------------------ run
    def fit(self, stop_at: int | None = None) -> TrainerState:
        """Train until ``total_steps`` (or ``stop_at``, to simulate an interruption); returns the state."""
        cfg = self.cfg
        main = self.procs.is_main
        if self.metrics is None and main:
            self.metrics = JsonlLogger(self.output_dir / METRICS_FILE, fresh=self.state.step == 0,
                                       resume_step=self.resumed_from)
        end = min(self.total_steps, stop_at) if stop_at is not None else self.total_steps
        batches = self.micro_batches()
        bar = tqdm(total=self.total_steps, initial=self.state.step, disable=not (cfg.progress and main),
                   desc=self.objective.name, unit="step", dynamic_ncols=True)
        start = time.perf_counter() - self.state.elapsed_s
        while self.state.step < end:
            record = self.train_step(batches)
            self.state.elapsed_s = time.perf_counter() - start
            step = self.state.step
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}")
            if self.metrics is not None and (step % cfg.log_every == 0 or step == 1 or step == self.total_steps):
                self.metrics.log({"type": "train", "step": step, "epoch": self.state.epoch,
                                  "samples": self.state.samples, "elapsed_s": round(self.state.elapsed_s, 2),
                                  **record})
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == self.total_steps:
                evaluation = self.evaluate()
                if evaluation is not None and self.metrics is not None:
                    self.metrics.log({"type": "eval", "step": step, **evaluation,
                                      "elapsed_s": round(time.perf_counter() - start, 2)})
                    logger.info("%s step %d: %s", self.objective.name, step,
                                ", ".join(f"{k} {v:.4f}" for k, v in evaluation.items() if isinstance(v, float)))
            if (cfg.save_every and step % cfg.save_every == 0) or step == self.total_steps:
                self.save_checkpoint()
        bar.close()
        return self.state

    # ------------------------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Every process writes its part (rank 0 the shared files) into a temporary folder, renamed when all
        are done; a checkpoint folder therefore exists only complete. Needs a filesystem all processes see."""
        root = self.output_dir / CHECKPOINT_DIR
        final = root / f"step-{self.state.step:07d}"
        tmp = root / f".tmp-step-{self.state.step:07d}"
        if self.procs.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.procs.barrier()
        self.engine.save(tmp)
        (tmp / rng_file(self.procs.rank)).write_text(json.dumps(rng_state()), encoding="utf-8")
        self.procs.barrier()
        if self.procs.is_main:
            (tmp / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=2), encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            for old in sorted(root.glob("step-*"))[:-self.cfg.keep_checkpoints or None]:
                shutil.rmtree(old)
            logger.info("saved checkpoint %s", final)
        self.procs.barrier()
        return final

    def load_checkpoint(self, directory: str | Path) -> None:
        """Restore a checkpoint of this run (same config, strategy and process count) into the live model,
        optimizer and scheduler, and this process's RNG states."""
        path = Path(directory)
        try:
            trainer_state = TrainerState(**json.loads((path / STATE_FILE).read_text(encoding="utf-8")))
        except (OSError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path.name}: cannot read the trainer state: {exc}") from exc
        if (trainer_state.strategy, trainer_state.world_size) != (self.cfg.strategy, self.procs.world_size):
            raise CheckpointError(
                f"{path.name} was written by strategy {trainer_state.strategy} on {trainer_state.world_size} "
                f"process(es); this run is {self.cfg.strategy} on {self.procs.world_size}. Resume with the same "
                "strategy and process count, or start a new run from its exported weights")
        rng = read_rng_state(path, self.procs.rank)
        self.engine.load(path)
        set_rng_state(rng)
        self.state = trainer_state
        self.resumed_from = trainer_state.step
        logger.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.state.step, self.state.epoch,
                    self.state.position)


class _Batches:
    """A DataLoader ``batch_sampler`` over an (endless) iterator of index lists."""

    def __init__(self, batches: Iterator[list[int]]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        return (indices for _, _, indices in self.batches)


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while True:
        chunk = list(itertools.islice(items, size))
        if len(chunk) < size:
            return
        yield chunk


def seed_worker(worker_id: int) -> None:
    """DataLoader workers seed Python and NumPy from the torch seed the loader's generator gave them."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def sample_lengths(dataset: Dataset) -> list[int]:
    """An estimate of each sample's sequence length, for length grouping (cached on the dataset)."""
    cached = getattr(dataset, "_length_estimates", None)
    if cached is None:
        estimate = getattr(dataset, "length_estimate", None)
        if estimate is None:
            raise ConfigError("group_by_length needs a dataset with length_estimate(index)")
        cached = [estimate(i) for i in range(len(dataset))]
        dataset._length_estimates = cached  # type: ignore[attr-defined]
    return cached


def group_by_length(order: list[int], lengths: list[int], chunk: int) -> list[int]:
    """Within consecutive chunks of the shuffled ``order``, samples sorted longest first (as transformers'
    length-grouped sampler), so a micro-batch pads little while the chunk order stays random."""
    out: list[int] = []
    for i in range(0, len(order), chunk):
        out += sorted(order[i:i + chunk], key=lambda j: -lengths[j])
    return out
