"""The training loop: plain PyTorch, gradient accumulation, autocast where it pays, clipping, JSONL metrics,
and checkpoints that resume the exact same run (weights, optimizer, scheduler, RNG states, data position).
Nothing is unpickled: RNG states are JSON, optimizer and scheduler states are read with ``weights_only=True``;
on resume ``metrics.jsonl`` is cut back to the checkpoint's step.

Device placement happens only in :class:`Trainer` (``self.device`` / :meth:`Trainer.to_device`), so a
launcher such as accelerate or torchrun can take over that one place. The data order of epoch ``e`` is a
permutation drawn from ``seed`` and ``e`` alone, so resuming only needs the epoch and the number of
micro-batches already consumed in it.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import pickle
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
from pixelrefer.model.checkpoint import read_state_dict
from pixelrefer.train.config import TrainConfig
from pixelrefer.train.optim import OptimConfig, build_optimizer, build_scheduler
from pixelrefer.train.stages import StageSpec, apply_stage, get_stage
from pixelrefer.types import ModelInputs
from pixelrefer.utils.device import resolve_device

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
STATE_FILE = "trainer_state.json"
RNG_FILE = "rng.json"
LEGACY_RNG_FILE = "rng.pt"  # pickled by older versions: refused, never unpickled
DATA_ORDER_STRIDE = 1_000_003  # seed * stride + epoch seeds the permutation of an epoch


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    position: int = 0  # micro-batches consumed in the current epoch
    samples: int = 0
    elapsed_s: float = 0.0


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


def read_rng_state(directory: Path) -> dict[str, Any]:
    """The RNG state of a checkpoint folder (``rng.json``); an old pickled ``rng.pt`` is refused, unread."""
    path = directory / RNG_FILE
    if not path.is_file():
        if (directory / LEGACY_RNG_FILE).is_file():
            raise CheckpointError(
                f"{directory.name} holds {LEGACY_RNG_FILE}, a pickle written by an older version; it is not loaded, "
                "since unpickling a file can run code. Resume is not possible from this checkpoint; start a new run "
                "from its weights instead"
            )
        raise CheckpointError(f"{directory.name} has no {RNG_FILE}; it is not a complete training checkpoint")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{directory.name}/{RNG_FILE} is not valid JSON: {exc}") from exc


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
    """Trains ``model`` on ``train_set`` per ``cfg``; see the module docstring."""

    def __init__(self, model: nn.Module, train_set: Dataset, collator: Any, cfg: TrainConfig,
                 eval_set: Dataset | None = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        self.model = model.to(self.device)
        self.train_set, self.eval_set, self.collator = train_set, eval_set, collator
        self.stage = resolve_stage(cfg)
        self.plan = apply_stage(self.model, self.stage)
        o = cfg.optim
        self.optim_cfg = OptimConfig(o.weight_decay, tuple(o.betas), o.eps, o.warmup_ratio, o.min_lr_ratio,
                                     o.grad_clip)
        self.optimizer = build_optimizer(self.model, self.stage, self.optim_cfg)
        self.batches_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
        if self.batches_per_epoch == 0:
            raise DataError("the training set is empty")
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.batches_per_epoch / cfg.grad_accum))
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, self.optim_cfg)
        self.state = TrainerState()
        self.output_dir = Path(cfg.output_dir)
        self.metrics: JsonlLogger | None = None
        self.resumed_from: int | None = None  # step of the checkpoint this run resumed from

    # ------------------------------------------------------------------------------------------ data
    def to_device(self, batch: ModelInputs) -> ModelInputs:
        return batch.to(self.device)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(self.cfg.seed * DATA_ORDER_STRIDE + epoch)
        order = torch.randperm(len(self.train_set), generator=gen).tolist()
        size = self.cfg.batch_size
        return [order[i:i + size] for i in range(0, len(order), size)]

    def micro_batches(self) -> Iterator[ModelInputs]:
        """Micro-batches from the saved position on, across epochs, forever."""
        while True:
            batches = self.epoch_batches(self.state.epoch)[self.state.position:]
            loader = DataLoader(self.train_set, batch_sampler=batches, collate_fn=self.collator,
                                num_workers=self.cfg.num_workers)
            for batch in loader:
                self.state.position += 1
                self.state.samples += int(batch.input_ids.shape[0])
                yield batch
            self.state.epoch += 1
            self.state.position = 0

    # ------------------------------------------------------------------------------------------ steps
    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, batches: Iterator[ModelInputs]) -> dict[str, float]:
        """One optimizer step over ``grad_accum`` micro-batches."""
        self.model.train()
        losses, tokens = [], 0
        for _ in range(self.cfg.grad_accum):
            batch = self.to_device(next(batches))
            with self._autocast():
                loss = self.model(**batch.as_kwargs()).loss
            (loss / self.cfg.grad_accum).backward()
            losses.append(float(loss.detach()))
            tokens += int((batch.labels != -100).sum()) if batch.labels is not None else 0
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = float(nn.utils.clip_grad_norm_(params, self.optim_cfg.grad_clip))
        lrs = {g["group"]: g["lr"] for g in self.optimizer.param_groups}
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        return {"loss": sum(losses) / len(losses), "grad_norm": grad_norm, "target_tokens": tokens, "lr": lrs}

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean token loss over the eval set."""
        if self.eval_set is None or len(self.eval_set) == 0:
            return None
        self.model.eval()
        total, count = 0.0, 0
        for start in range(0, len(self.eval_set), self.cfg.batch_size):
            idx = range(start, min(start + self.cfg.batch_size, len(self.eval_set)))
            batch = self.to_device(self.collator([self.eval_set[i] for i in idx]))
            with self._autocast():
                loss = self.model(**batch.as_kwargs()).loss
            n = int((batch.labels[:, 1:] != -100).sum())
            total, count = total + float(loss) * n, count + n
        return total / max(count, 1)

    # ------------------------------------------------------------------------------------------ run
    def fit(self, stop_at: int | None = None) -> TrainerState:
        """Train until ``total_steps`` (or ``stop_at``, to simulate an interruption); returns the state."""
        cfg = self.cfg
        if self.metrics is None:
            self.metrics = JsonlLogger(self.output_dir / METRICS_FILE, fresh=self.state.step == 0,
                                       resume_step=self.resumed_from)
        end = min(self.total_steps, stop_at) if stop_at is not None else self.total_steps
        batches = self.micro_batches()
        bar = tqdm(total=self.total_steps, initial=self.state.step, disable=not cfg.progress, desc="train",
                   unit="step", dynamic_ncols=True)
        start = time.perf_counter() - self.state.elapsed_s
        while self.state.step < end:
            record = self.train_step(batches)
            self.state.elapsed_s = time.perf_counter() - start
            step = self.state.step
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}")
            if step % cfg.log_every == 0 or step == 1 or step == self.total_steps:
                self.metrics.log({"type": "train", "step": step, "epoch": self.state.epoch,
                                  "samples": self.state.samples, "elapsed_s": round(self.state.elapsed_s, 2),
                                  **record})
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == self.total_steps:
                eval_loss = self.evaluate()
                if eval_loss is not None:
                    self.metrics.log({"type": "eval", "step": step, "eval_loss": eval_loss})
                    logger.info("step %d: eval loss %.4f", step, eval_loss)
            if (cfg.save_every and step % cfg.save_every == 0) or step == self.total_steps:
                self.save_checkpoint()
        bar.close()
        return self.state

    # ------------------------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        root = self.output_dir / CHECKPOINT_DIR
        final = root / f"step-{self.state.step:07d}"
        tmp = root / f".tmp-step-{self.state.step:07d}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / RNG_FILE).write_text(json.dumps(rng_state()), encoding="utf-8")
        (tmp / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=2), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(root.glob("step-*"))[:-self.cfg.keep_checkpoints or None]:
            shutil.rmtree(old)
        logger.info("saved checkpoint %s", final)
        return final

    def load_checkpoint(self, directory: str | Path) -> None:
        """Restore a checkpoint of this run (same config) into the live model, optimizer and scheduler."""
        path = Path(directory)
        state = read_state_dict(path)
        expected = set(self.model.state_dict())
        tied = {"lm_head.weight"} if getattr(self.model.config, "tie_word_embeddings", False) else set()
        missing = expected - set(state) - tied
        unexpected = set(state) - expected
        if missing or unexpected:
            raise CheckpointError(f"{path.name}: checkpoint does not fit the model (missing {sorted(missing)[:10]}, "
                                  f"unexpected {sorted(unexpected)[:10]})")
        rng = read_rng_state(path)
        try:
            trainer_state = TrainerState(**json.loads((path / STATE_FILE).read_text(encoding="utf-8")))
            optimizer = torch.load(path / "optimizer.pt", map_location=self.device, weights_only=True)
            scheduler = torch.load(path / "scheduler.pt", weights_only=True)
        except (OSError, TypeError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
            raise CheckpointError(f"{path.name}: cannot read the trainer state: {exc}") from exc
        self.model.load_state_dict(state, strict=False)
        self.optimizer.load_state_dict(optimizer)
        self.scheduler.load_state_dict(scheduler)
        set_rng_state(rng)
        self.state = trainer_state
        self.resumed_from = trainer_state.step
        logger.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.state.step, self.state.epoch,
                    self.state.position)
