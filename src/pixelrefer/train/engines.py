"""Training strategies on the engines' own APIs, behind one small interface the loop drives.

``single``
    one process, plain PyTorch.
``ddp``
    ``torch.nn.parallel.DistributedDataParallel`` (no ``find_unused_parameters``: the model calls every module
    in every training forward, see ``PixelReferForConditionalGeneration.idle_term``).
``fsdp2``
    ``torch.distributed.fsdp.fully_shard`` on every vision encoder layer, every LLM decoder layer and each
    region module, then on the whole model; bf16 parameters with fp32 gradient reduction when the run's
    precision is bf16; checkpoints are sharded with ``torch.distributed.checkpoint`` (DCP).
``deepspeed_zero2`` / ``deepspeed_zero3``
    ``deepspeed.initialize`` with the JSON config shipped in ``train/configs/deepspeed`` (validated, then
    filled from the train config: batch sizes, accumulation, clipping, precision, offload); DeepSpeed's own
    sharded checkpoints.

Every engine takes the unwrapped model with its objective already applied (``requires_grad`` set) and builds the
optimizer (AdamW over the objective's parameter groups) and the warmup-cosine scheduler on the parameters it
will own.
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelrefer.errors import CheckpointError, ConfigError
from pixelrefer.model.checkpoint import read_state_dict
from pixelrefer.train.config import OptimConfig
from pixelrefer.train.distributed import Processes
from pixelrefer.train.optim import build_optimizer, build_scheduler

logger = logging.getLogger(__name__)

STRATEGIES = ("single", "ddp", "fsdp2", "deepspeed_zero2", "deepspeed_zero3")
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
DCP_DIR = "dcp"
DEEPSPEED_TAG = "deepspeed"  # DeepSpeed's checkpoint subfolder of a step folder
REGION_MODULES = ("projector", "object_tokenizer.mlp", "object_tokenizer.pos_proj", "oci")  # own FSDP units
OFFLOAD_TARGETS = ("none", "cpu")
ParamGroups = Callable[[nn.Module], list[dict[str, Any]]]  # the optimizer groups of a module (an Objective's)


def _module_named(model: nn.Module, dotted: str) -> nn.Module | None:
    for name, module in model.named_modules():
        if name == dotted or name.endswith("." + dotted):
            return module
    return None


class Engine:
    """One strategy: wraps the model, owns optimizer and scheduler, steps, saves and loads checkpoints."""

    name = "single"

    def __init__(self, module: nn.Module, procs: Processes, groups: ParamGroups, optim_cfg: OptimConfig,
                 total_steps: int, amp_dtype: torch.dtype | None, cfg: Any) -> None:
        self.procs, self.optim_cfg, self.cfg = procs, optim_cfg, cfg
        self.module = module.to(procs.device)
        self.amp_dtype = amp_dtype  # autocast dtype of the forward (None: none)
        self.model = self.wrap(self.module)
        self.optimizer = build_optimizer(groups(self.module), optim_cfg)
        self.scheduler = build_scheduler(self.optimizer, total_steps, optim_cfg)

    def wrap(self, module: nn.Module) -> nn.Module:
        return module

    # ---------------------------------------------------------------------------------------------- steps
    def accumulating(self, last: bool) -> AbstractContextManager:
        """Context of one micro-batch's forward and backward; ``last`` is the micro-batch that steps."""
        return nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.cfg.grad_accum).backward()

    def step(self) -> float:
        """Clip, step optimizer and scheduler, clear gradients; returns the gradient norm before clipping."""
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        norm = nn.utils.clip_grad_norm_(params, self.optim_cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    def learning_rates(self) -> dict[str, float]:
        return {g["group"]: g["lr"] for g in self.optimizer.param_groups}

    # ---------------------------------------------------------------------------------------------- state
    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Every weight, unsharded, on the main process (``None`` elsewhere); a collective call."""
        return self.module.state_dict() if self.procs.is_main else None

    def save(self, directory: Path) -> None:
        """Write weights, optimizer and scheduler into ``directory``; every process calls it."""
        if self.procs.is_main:
            state = self.module.state_dict()
            save_weights(self.module, state, directory)
            torch.save(self.optimizer.state_dict(), directory / OPTIMIZER_FILE)
            torch.save(self.scheduler.state_dict(), directory / SCHEDULER_FILE)

    def load(self, directory: Path) -> None:
        state = read_state_dict(directory)
        expected = set(self.module.state_dict())
        missing, unexpected = expected - set(state) - tied_keys(self.module), set(state) - expected
        if missing or unexpected:
            raise CheckpointError(f"{directory.name}: checkpoint does not fit the model (missing "
                                  f"{sorted(missing)[:10]}, unexpected {sorted(unexpected)[:10]})")
        optimizer = _torch_load(directory / OPTIMIZER_FILE, self.procs.device)
        scheduler = _torch_load(directory / SCHEDULER_FILE, torch.device("cpu"))
        self.module.load_state_dict(state, strict=False)
        self.optimizer.load_state_dict(optimizer)
        self.scheduler.load_state_dict(scheduler)


def tied_keys(module: nn.Module) -> set[str]:
    config = getattr(module, "config", None)
    if config is None or not getattr(config, "tie_word_embeddings", False):
        return set()
    return {k for k in module.state_dict() if k.endswith("lm_head.weight")}


def save_weights(module: nn.Module, state: dict[str, torch.Tensor], directory: Path) -> None:
    """The weights as one safetensors file (tied copies dropped) plus the model config."""
    from safetensors.torch import save_file

    tied = tied_keys(module)
    plain = {k: v.detach().to("cpu").contiguous() for k, v in state.items() if k not in tied}
    save_file(plain, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config = getattr(module, "config", None)
    if config is not None:
        config.save_pretrained(directory)


def _torch_load(path: Path, device: torch.device) -> Any:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{path.parent.name}/{path.name}: cannot read: {exc}") from exc


class DDPEngine(Engine):
    name = "ddp"

    def wrap(self, module: nn.Module) -> nn.Module:
        if not self.procs.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.procs.device] if self.procs.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=False)

    def accumulating(self, last: bool) -> AbstractContextManager:
        if last or not self.procs.distributed:
            return nullcontext()
        return self.model.no_sync()


class FSDP2Engine(Engine):
    name = "fsdp2"

    def wrap(self, module: nn.Module) -> nn.Module:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        kwargs: dict[str, Any] = {}
        if self.amp_dtype is not None:
            kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=self.amp_dtype, reduce_dtype=torch.float32)
            self.amp_dtype = None  # the policy casts; no autocast on top
        blocks = set(getattr(module, "_no_split_modules", None) or
                     getattr(getattr(module, "base_model", None), "_no_split_modules", None) or ())
        units = [m for m in module.modules() if type(m).__name__ in blocks]
        units += [m for name in REGION_MODULES if (m := _module_named(module, name)) is not None]
        for unit in units:
            fully_shard(unit, **kwargs)
        fully_shard(module, **kwargs)
        logger.info("fsdp2: %d sharded units plus the root", len(units))
        return module

    def _options(self, full: bool = False):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=full, cpu_offload=full)

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        state = get_model_state_dict(self.module, options=self._options(full=True))
        return state if self.procs.is_main else None

    def save(self, directory: Path) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optim_state = get_state_dict(self.module, self.optimizer, options=self._options())
        dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(directory / DCP_DIR))
        if self.procs.is_main:
            self.module.config.save_pretrained(directory)
            torch.save(self.scheduler.state_dict(), directory / SCHEDULER_FILE)

    def load(self, directory: Path) -> None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        if not (directory / DCP_DIR).is_dir():
            raise CheckpointError(f"{directory.name} has no {DCP_DIR}/ folder: not an fsdp2 checkpoint")
        model_state, optim_state = get_state_dict(self.module, self.optimizer, options=self._options())
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, checkpoint_id=str(directory / DCP_DIR))
        set_state_dict(self.module, self.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optim"], options=self._options())
        self.scheduler.load_state_dict(_torch_load(directory / SCHEDULER_FILE, torch.device("cpu")))


def deepspeed_config(strategy: str, cfg: Any, world_size: int, amp_dtype: torch.dtype | None) -> dict[str, Any]:
    """The shipped ZeRO config of ``strategy``, validated and filled from the train config."""
    stage = {"deepspeed_zero2": 2, "deepspeed_zero3": 3}[strategy]
    text = resources.files("pixelrefer.train").joinpath(f"configs/deepspeed/zero{stage}.json").read_text("utf-8")
    conf = json.loads(text)
    if conf.get("zero_optimization", {}).get("stage") != stage:
        raise ConfigError(f"the shipped DeepSpeed config zero{stage}.json does not declare ZeRO stage {stage}")
    ds = cfg.deepspeed
    for key, value in (("offload_optimizer", ds.offload_optimizer), ("offload_param", ds.offload_param)):
        if value not in OFFLOAD_TARGETS:
            raise ConfigError(f"deepspeed.{key} must be one of {OFFLOAD_TARGETS}, got {value!r}")
    if ds.offload_param != "none" and stage != 3:
        raise ConfigError("deepspeed.offload_param needs ZeRO stage 3 (strategy deepspeed_zero3)")
    if amp_dtype not in (None, torch.bfloat16):
        raise ConfigError(f"DeepSpeed runs here in fp32 or bf16, not {amp_dtype}")
    zero = conf["zero_optimization"]
    if ds.offload_optimizer != "none":
        zero["offload_optimizer"] = {"device": ds.offload_optimizer, "pin_memory": False}
    if ds.offload_param != "none":
        zero["offload_param"] = {"device": ds.offload_param, "pin_memory": False}
    conf.update(
        train_micro_batch_size_per_gpu=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        train_batch_size=cfg.batch_size * cfg.grad_accum * world_size,
        gradient_clipping=cfg.optim.grad_clip,  # DeepSpeed's default (1.0) would clip silently otherwise
        bf16={"enabled": amp_dtype is torch.bfloat16},
        zero_force_ds_cpu_optimizer=False,  # our torch AdamW, not DeepSpeed's compiled CPU Adam
    )
    return conf


class DeepSpeedEngine(Engine):
    def __init__(self, module: nn.Module, procs: Processes, groups: ParamGroups, optim_cfg: OptimConfig,
                 total_steps: int, amp_dtype: torch.dtype | None, cfg: Any) -> None:
        import deepspeed

        self.procs, self.optim_cfg, self.cfg = procs, optim_cfg, cfg
        self.name = cfg.strategy
        self.conf = deepspeed_config(cfg.strategy, cfg, procs.world_size, amp_dtype)
        self.amp_dtype = None  # DeepSpeed casts (bf16 section) itself
        if procs.device.type == "cpu":
            _no_shm_kernel()
        module = module.to(procs.device)
        optimizer = build_optimizer(groups(module), optim_cfg)
        scheduler = build_scheduler(optimizer, total_steps, optim_cfg)
        self.model, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=module, optimizer=optimizer, lr_scheduler=scheduler, config=self.conf)
        self.module = module

    def backward(self, loss: torch.Tensor) -> None:
        self.model.backward(loss)  # DeepSpeed divides by gradient_accumulation_steps itself
        self.model.step()  # steps optimizer and scheduler only at an accumulation boundary

    def step(self) -> float:
        norm = self.model.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        if self.conf["zero_optimization"]["stage"] == 3:
            state = self.model._zero3_consolidated_16bit_state_dict()
        else:
            state = self.module.state_dict()
        return state if self.procs.is_main else None

    def save(self, directory: Path) -> None:
        self.model.save_checkpoint(str(directory), tag=DEEPSPEED_TAG, save_latest=False)
        if self.procs.is_main:
            self.module.config.save_pretrained(directory)

    def load(self, directory: Path) -> None:
        if not (directory / DEEPSPEED_TAG).is_dir():
            raise CheckpointError(f"{directory.name} has no {DEEPSPEED_TAG}/ folder: not a DeepSpeed checkpoint")
        path, _ = self.model.load_checkpoint(str(directory), tag=DEEPSPEED_TAG, load_module_strict=True,
                                             load_optimizer_states=True, load_lr_scheduler_states=True)
        if path is None:
            raise CheckpointError(f"DeepSpeed could not load {directory}")


def _no_shm_kernel() -> None:
    """On CPU the collectives go through gloo: keep DeepSpeed from compiling its shared-memory all-reduce
    kernel (minutes of C++ at first use) by marking that op unavailable before its comm backend starts."""
    import deepspeed.ops

    ops = dict(deepspeed.ops.__compatible_ops__)
    ops["deepspeed_shm_comm"] = False
    deepspeed.ops.__compatible_ops__ = ops


ENGINES: dict[str, type[Engine]] = {"single": Engine, "ddp": DDPEngine, "fsdp2": FSDP2Engine,
                                    "deepspeed_zero2": DeepSpeedEngine, "deepspeed_zero3": DeepSpeedEngine}


def build_engine(module: nn.Module, procs: Processes, groups: ParamGroups, optim_cfg: OptimConfig, total_steps: int,
                 amp_dtype: torch.dtype | None, cfg: Any) -> Engine:
    """The engine of ``cfg.strategy``; ``groups(module)`` gives the optimizer's parameter groups of the module as
    the engine holds it (after FSDP2 has sharded it)."""
    if cfg.strategy not in ENGINES:
        raise ConfigError(f"unknown strategy {cfg.strategy!r}; use one of {list(STRATEGIES)}")
    if cfg.strategy == "single" and procs.distributed:
        raise ConfigError(f"strategy single runs one process, but {procs.world_size} were launched; "
                          "use ddp, fsdp2 or a deepspeed strategy")
    if cfg.strategy == "fsdp2" and not procs.distributed:
        raise ConfigError("strategy fsdp2 needs a multi-process launch (torchrun --nproc_per_node N)")
    return ENGINES[cfg.strategy](module, procs, groups, optim_cfg, total_steps, amp_dtype, cfg)
