"""TrainConfig: everything a training run depends on, loadable from a preset name or a YAML file plus
dotted ``key=value`` overrides, and written (resolved) next to the run's outputs.

A YAML file may name a ``base`` config (preset name or path) whose values it overrides, so ablations are a
few lines each. Values of overrides are parsed as YAML (``lrs.vision=null``, ``model.overrides.mask_num=8``).
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixelrefer.errors import ConfigError

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
RESOLVED_NAME = "config.yaml"


@dataclass
class ModelSection:
    preset: str = "tiny"  # a random-init preset of pixelrefer.presets.RANDOM_PRESETS
    init_from: str | None = None  # or a checkpoint folder to start from (then preset is ignored)
    overrides: dict[str, Any] = field(default_factory=dict)  # PixelReferConfig fields, for a preset init
    vision_init: str | None = None  # a vision pretraining folder whose weights replace the preset's vision tower


@dataclass
class DataSection:
    root: str = "runs/synth"  # folder of the JSON files; media paths are relative to it
    train_file: str = "train.json"
    eval_file: str | None = "val.json"
    tokenizer: str | None = None  # tokenizer folder; default ROOT/tokenizer (trained there if synth is set)
    vocab_size: int = 1024  # of a tokenizer trained here
    validate: bool = True  # check every sample before training
    limit: int | None = None  # use only the first N training samples
    focus_tasks: list[str] | None = None  # keep every sample of these meta.task values ...
    other_ratio: float = 1.0  # ... plus this many others per focus sample (seeded pick); see dataset.focus
    eval_limit: int | None = 64  # samples of the eval file used for eval loss
    synth: dict[str, Any] | None = None  # pixelrefer.synth.build_dataset arguments: build ROOT if absent

    @property
    def tokenizer_dir(self) -> Path:
        return Path(self.tokenizer) if self.tokenizer else Path(self.root) / "tokenizer"


@dataclass
class OptimSection:
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0


@dataclass
class VisionPretrainSection:
    """Region-label pretraining of the vision tower on rendered synthetic scenes (pixelrefer.train.vision_pretrain);
    run into ``model.vision_init`` when that folder has no weights yet."""

    steps: int = 2000
    batch_size: int = 64  # regions per step
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    workers: int = 1  # DataLoader workers rendering scenes (the stream depends on this count)
    image_size: int = 224
    off_palette_colours: bool = True  # paint objects in random colours away from the named ones (see the module)
    val_regions: int = 512
    eval_every: int = 250
    log_every: int = 10


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    vision_pretrain: VisionPretrainSection | None = None
    stage: str = "scratch"  # a name of pixelrefer.train.stages.STAGES
    lrs: dict[str, float | None] = field(default_factory=dict)  # per module group, overriding the stage
    lr_scale: float = 1.0  # multiplies every lr of the stage
    batch_size: int = 8  # samples per micro-batch (per device)
    grad_accum: int = 1
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
        if not self.epochs > 0 or not self.lr_scale > 0:
            raise ConfigError(f"epochs and lr_scale must be > 0, got {self.epochs} and {self.lr_scale}")
        for name in ("limit", "eval_limit"):
            value = getattr(self.data, name)
            if value is not None and value < 0:
                raise ConfigError(f"data.{name} must be >= 0 (or null), got {value}")

    @property
    def export_path(self) -> Path:
        return Path(self.export_dir) if self.export_dir else Path(self.output_dir) / "final"

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / RESOLVED_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        return path


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
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
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def list_train_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _load_raw(name_or_path: str, depth: int = 0) -> dict[str, Any]:
    if depth > 8:
        raise ConfigError(f"config 'base' chain too deep at {name_or_path!r}")
    path = Path(name_or_path)
    if not path.is_file():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no train config {name_or_path!r}: not a YAML file nor one of {list_train_configs()}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a train config must be a mapping")
    base = raw.pop("base", None)
    return _merge(_load_raw(str(base), depth + 1), raw) if base else raw


def parse_override(text: str) -> dict[str, Any]:
    """``a.b.c=value`` -> ``{"a": {"b": {"c": value}}}`` (value parsed as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not key=value")
    parsed: Any = yaml.safe_load(value) if value.strip() else None
    for part in reversed(key.strip().split(".")):
        parsed = {part: parsed}
    return parsed


def load_train_config(name_or_path: str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A named config (``pixelrefer/train/configs/NAME.yaml``) or a YAML path, plus ``key=value`` overrides."""
    raw = _load_raw(name_or_path) if name_or_path else {}
    for text in overrides or []:
        raw = _merge(raw, parse_override(text))
    return _build(TrainConfig, raw)
