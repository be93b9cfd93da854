"""TrainConfig: everything a training run depends on, loadable from a preset name or a YAML file plus
dotted ``key=value`` overrides, and written (resolved) next to the run's outputs.

A YAML file may name a ``base`` config (preset name or path) whose values it overrides, so ablations are a
few lines each. Values of overrides are parsed as YAML (``lrs.vision=null``, ``model.overrides.mask_num=8``).
A section given in part keeps its defaults for the keys it does not name.

A recipe extends :class:`TrainConfig` with its own sections (a subclass; see ``pixelrefer.recipes.config``) and
loads it with :func:`load_train_config` given its schema and config folders; :func:`read_resolved` reads any
run's resolved config as the trainer's own sections.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixelrefer.errors import ConfigError

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
PROJECTOR_INITS = (None, "facts")  # model.projector_init
RESOLVED_NAME = "config.yaml"


@dataclass
class ModelSection:
    preset: str = "tiny"  # a random-init preset of pixelrefer.presets.RANDOM_PRESETS
    init_from: str | None = None  # or a checkpoint folder to start from (then preset is ignored)
    overrides: dict[str, Any] = field(default_factory=dict)  # PixelReferConfig fields, for a preset init
    vision_init: str | None = None  # a folder whose vision.safetensors replaces the preset's vision tower (see run.py)
    position_gain: float = 1.0  # amplify the box position embedding about the image centre (preset init only; run.py)
    projector_init: str | None = None  # "facts": object projector rows start as vision_init's fact head (run.py)


@dataclass
class DataSection:
    root: str = "runs/synth"  # folder of the JSON files; media paths are relative to it
    train_file: str = "train.json"
    eval_file: str | None = "val.json"
    tokenizer: str | None = None  # tokenizer folder; default ROOT/tokenizer
    validate: bool = True  # check every sample before training
    limit: int | None = None  # use only the first N training samples
    focus_tasks: list[str] | None = None  # keep every sample of these meta.task values ...
    other_ratio: float = 1.0  # ... plus this many others per focus sample (seeded pick); see dataset.focus
    eval_limit: int | None = 64  # samples of the eval file used for eval loss
    cache_vision: bool = False  # keep each sample's frozen-tower output after its first use (train/vision_cache.py)
    cache_dir: str | None = None  # ... and on disk in this folder, for resumed and later runs (train/cache_store.py)

    @property
    def tokenizer_dir(self) -> Path:
        return Path(self.tokenizer) if self.tokenizer else Path(self.root) / "tokenizer"


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer and schedule of a run (the ``optim`` section of a train config)."""

    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_ratio: float = 0.03  # warmup steps as a fraction of the run's optimizer steps ...
    warmup_steps: int | None = None  # ... or this many steps (overrides warmup_ratio)
    warmup_to_peak: bool = False  # warmup factor (s + 1) / W, at the peak on the last warmup step; else / (W + 1)
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of each group's peak lr
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0 (or null), got {self.warmup_steps}")
        if not 0.0 <= self.warmup_ratio <= 1.0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"optim.warmup_ratio and optim.min_lr_ratio must be in [0, 1], got "
                              f"{self.warmup_ratio} and {self.min_lr_ratio}")

    def warmup(self, total_steps: int) -> int:
        """Warmup steps of a run of ``total_steps`` optimizer steps."""
        return self.warmup_steps if self.warmup_steps is not None else math.ceil(self.warmup_ratio * total_steps)



@dataclass
class DeepSpeedSection:
    """Options of the deepspeed_zero2 / deepspeed_zero3 strategies (the rest is train/configs/deepspeed/*.json)."""

    offload_optimizer: str = "none"  # none | cpu: optimizer states and step in CPU memory
    offload_param: str = "none"  # none | cpu: parameters in CPU memory between uses (ZeRO-3 only)


@dataclass
class LoraSection:
    """LoRA adapters (peft) instead of full fine-tuning of the modules they target."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # a regex over module names (peft's target_modules): the LLM's attention and MLP projections by default;
    # plain names such as q_proj would also hit the vision tower's layers
    target_modules: str = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
    quantize: str | None = None  # "4bit" / "8bit" (QLoRA, bitsandbytes on CUDA only)


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    stage: str = "scratch"  # a name of pixelrefer.train.stages.STAGES
    lrs: dict[str, float | None] = field(default_factory=dict)  # per module group, overriding the stage
    lr_scale: float = 1.0  # multiplies every lr of the stage
    batch_size: int = 8  # samples per micro-batch (per device)
    grad_accum: int = 1
    global_batch_size: int | None = None  # samples per optimizer step; sets grad_accum = this / (batch_size x processes)
    epochs: float = 1.0
    max_steps: int | None = None  # optimizer steps; overrides epochs
    seed: int = 42
    log_every: int = 10
    eval_every: int = 0  # optimizer steps; 0 = only at the end
    save_every: int = 0  # optimizer steps; 0 = only at the end
    keep_checkpoints: int = 2
    output_dir: str = "runs/train"
    export_dir: str | None = None  # final model + tokenizer; default OUTPUT_DIR/final
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA with bf16, fp32 elsewhere; or fp32 / bf16
    num_threads: int | None = None  # torch CPU threads
    num_workers: int = 0  # DataLoader workers
    progress: bool = True
    strategy: str = "single"  # single | ddp | fsdp2 | deepspeed_zero2 | deepspeed_zero3 (see train/engines.py)
    gradient_checkpointing: bool = False  # recompute vision and LLM layer activations in backward
    group_by_length: bool = False  # micro-batches of similar length (within chunks of 64 global batches)
    deepspeed: DeepSpeedSection = field(default_factory=DeepSpeedSection)
    lora: LoraSection | None = None  # set (e.g. lora={}) to train LoRA adapters instead of the LLM's weights

    def __post_init__(self) -> None:
        """Ranges the loop relies on, checked when the config is built (before any data or model work)."""
        at_least = {"batch_size": 1, "grad_accum": 1, "log_every": 1, "keep_checkpoints": 1, "eval_every": 0,
                    "save_every": 0, "num_workers": 0, "seed": 0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("max_steps", "num_threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (or null), got {getattr(self, name)}")
        if not self.model.position_gain > 0:
            raise ConfigError(f"model.position_gain must be > 0, got {self.model.position_gain}")
        if self.model.position_gain != 1.0 and self.model.init_from is not None:
            raise ConfigError("model.position_gain applies to a preset init; model.init_from loads trained weights as "
                              "they are")
        if self.model.projector_init not in PROJECTOR_INITS:
            raise ConfigError(f"model.projector_init must be one of {PROJECTOR_INITS}, got {self.model.projector_init!r}")
        if self.model.projector_init is not None and (self.model.vision_init is None or self.model.init_from):
            raise ConfigError("model.projector_init applies to a preset init with model.vision_init (it reads that "
                              "folder's fact head)")
        if not self.epochs > 0 or not self.lr_scale > 0:
            raise ConfigError(f"epochs and lr_scale must be > 0, got {self.epochs} and {self.lr_scale}")
        for name in ("limit", "eval_limit"):
            value = getattr(self.data, name)
            if value is not None and value < 0:
                raise ConfigError(f"data.{name} must be >= 0 (or null), got {value}")
        if self.data.cache_vision:
            from pixelrefer.train.vision_cache import check_cacheable

            check_cacheable(self)
        elif self.data.cache_dir is not None:
            raise ConfigError("data.cache_dir keeps the frozen-tower cache on disk: set data.cache_vision: true too")

    @property
    def export_path(self) -> Path:
        return Path(self.export_dir) if self.export_dir else Path(self.output_dir) / "final"

    def for_processes(self, world_size: int) -> TrainConfig:
        """This config with ``grad_accum`` derived from ``global_batch_size`` for ``world_size`` processes."""
        if self.global_batch_size is None:
            return self
        per_step = self.batch_size * world_size
        if self.global_batch_size <= 0 or self.global_batch_size % per_step:
            raise ConfigError(f"global_batch_size {self.global_batch_size} is not a positive multiple of batch_size "
                              f"{self.batch_size} x {world_size} process(es)")
        return dataclasses.replace(self, grad_accum=self.global_batch_size // per_step)

    def to_dict(self) -> dict[str, Any]:
        return plain_data(asdict(self))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / RESOLVED_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        return path


def plain_data(obj: Any) -> Any:
    """Nested dicts, lists and scalars only (tuples become lists), as YAML writes them safely."""
    if isinstance(obj, dict):
        return {k: plain_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_data(v) for v in obj]
    return obj


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Light type check/coercion of a YAML value against a dataclass field annotation."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        if hint is type(None) or type(None) in args:
            return None
        raise ConfigError(f"{where}: null is not allowed")
    if origin in (typing.Union, types.UnionType):
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except (TypeError, ValueError):
                continue
        raise ConfigError(f"{where}: {value!r} does not fit {hint}")
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or (hint is int and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        try:
            return hint(float(value)) if isinstance(value, str) else hint(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from exc
    if hint is str:
        return str(value)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], where) for v in value] if args else value
    if origin is tuple:
        return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {k: _coerce(v, args[1], f"{where}.{k}") if args and args[1] is not Any else v
                for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    return value


def _build(cls: type, data: Any, where: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {sorted(unknown)}; known: {sorted(fields)}")
    kwargs = {k: _coerce(_with_defaults(fields[k], v), hints[k], f"{where}.{k}" if where else k)
              for k, v in data.items()}
    return cls(**kwargs)


def _with_defaults(f: dataclasses.Field, value: Any) -> Any:
    """A section given in part keeps the other values of the field's default section."""
    if isinstance(value, dict) and f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
        if dataclasses.is_dataclass(default):
            return _merge(plain_data(asdict(default)), value)
    return value


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the keys (at any depth of nested sections) that ``cls`` does not declare."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        section = next((a for a in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(a)), None)
        out[f.name] = _known(section, value) if section is not None and isinstance(value, dict) else value
    return out


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def list_train_configs(dirs: tuple[Path, ...] = (CONFIG_DIR,)) -> list[str]:
    """The names of the configs in ``dirs`` (the trainer's own by default)."""
    return sorted({p.stem for d in dirs for p in d.glob("*.yaml")})


def _load_raw(name_or_path: str, dirs: tuple[Path, ...], depth: int = 0) -> dict[str, Any]:
    if depth > 8:
        raise ConfigError(f"config 'base' chain too deep at {name_or_path!r}")
    path = Path(name_or_path)
    if not path.is_file():
        path = next((d / f"{name_or_path}.yaml" for d in dirs if (d / f"{name_or_path}.yaml").is_file()), path)
    if not path.is_file():
        raise FileNotFoundError(f"no train config {name_or_path!r}: not a YAML file nor one of "
                                f"{list_train_configs(dirs)}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a train config must be a mapping")
    base = raw.pop("base", None)
    return _merge(_load_raw(str(base), dirs, depth + 1), raw) if base else raw


def parse_override(text: str) -> dict[str, Any]:
    """``a.b.c=value`` -> ``{"a": {"b": {"c": value}}}`` (value parsed as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not key=value")
    parsed: Any = yaml.safe_load(value) if value.strip() else None
    for part in reversed(key.strip().split(".")):
        parsed = {part: parsed}
    return parsed


def load_train_config(name_or_path: str | None = None, overrides: list[str] | None = None,
                      schema: type[TrainConfig] = TrainConfig, dirs: tuple[Path, ...] = (CONFIG_DIR,),
                      upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Any:
    """A named config (``NAME.yaml`` of ``dirs``, by default ``pixelrefer/train/configs``) or a YAML path, plus
    ``key=value`` overrides, built as ``schema`` (a recipe passes its :class:`TrainConfig` subclass, and may
    ``upgrade`` the raw mapping of configs written in an older layout before it is checked)."""
    raw = _load_raw(name_or_path, dirs) if name_or_path else {}
    for text in overrides or []:
        raw = _merge(raw, parse_override(text))
    return _build(schema, upgrade(raw) if upgrade is not None else raw)


def read_resolved(path: str | Path) -> TrainConfig:
    """A run's resolved config (``config.yaml``) as the trainer's own sections; a recipe's extra sections are
    left out (they only shaped what the recipe prepared before training)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a train config must be a mapping")
    return _build(TrainConfig, _known(TrainConfig, raw))
