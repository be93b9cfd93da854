"""The frozen-tower cache on disk (``data.cache_dir``), so that a resumed run or another run with the same tower,
data and preprocessing starts from the cached tower outputs instead of a first epoch of reading and encoding.

A store is a folder named by the cache's fingerprint (:func:`fingerprint`: the tower's weights, the model settings
that shape the preprocessing, the tokenizer, the autocast dtype and this format's version), holding safetensors
shards of at most :data:`SHARD_SAMPLES` samples. Each sample is keyed by its JSON record and the bytes of its media
files (:func:`sample_keys`), so a rebuilt dataset that changed pixels only (``SynthConfig.variety``) misses the
cache rather than reading stale features. A shard holds the samples' arrays as tensors and, in its metadata, a
JSON tree per sample naming the dataclass fields; only :data:`DATACLASSES` are rebuilt from it, and nothing is
unpickled. Shards are written under a temporary name and renamed, so a killed run leaves whole shards only;
several runs (or processes) may write to one store, each under its own shard names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file
from torch import nn

from pixelrefer import __version__
from pixelrefer.processing.crops import RegionCrop
from pixelrefer.processing.processor import EncodedSample
from pixelrefer.train.data import media_files

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the tree layout or what a cached sample holds changes
SHARD_SAMPLES = 512
SUFFIX = ".safetensors"
DATACLASSES: dict[str, type] = {"EncodedSample": EncodedSample, "RegionCrop": RegionCrop}


def flatten(obj: Any, arrays: dict[str, np.ndarray], prefix: str) -> Any:
    """A JSON tree of ``obj``; its arrays go to ``arrays`` under ``prefix``-numbered names."""
    if isinstance(obj, np.ndarray):
        name = f"{prefix}{len(arrays)}"
        arrays[name] = np.ascontiguousarray(obj)
        return {"a": name}
    if dataclasses.is_dataclass(obj) and type(obj).__name__ in DATACLASSES:
        return {"d": type(obj).__name__,
                "f": {f.name: flatten(getattr(obj, f.name), arrays, prefix) for f in dataclasses.fields(obj)}}
    if isinstance(obj, tuple):
        return {"t": [flatten(v, arrays, prefix) for v in obj]}
    if isinstance(obj, list):
        return {"l": [flatten(v, arrays, prefix) for v in obj]}
    if isinstance(obj, np.generic):
        return {"v": obj.item()}
    if obj is None or isinstance(obj, bool | int | float | str):
        return {"v": obj}
    raise TypeError(f"cannot store a {type(obj).__name__} in the tower cache")


def unflatten(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The inverse of :func:`flatten`; only the dataclasses of :data:`DATACLASSES` are built."""
    if not isinstance(tree, dict) or len(tree) not in (1, 2):
        raise ValueError(f"not a cache tree node: {str(tree)[:80]}")
    if "a" in tree:
        return arrays[tree["a"]]
    if "d" in tree:
        cls = DATACLASSES[tree["d"]]
        return cls(**{k: unflatten(v, arrays) for k, v in tree["f"].items()})
    if "t" in tree:
        return tuple(unflatten(v, arrays) for v in tree["t"])
    if "l" in tree:
        return [unflatten(v, arrays) for v in tree["l"]]
    return tree["v"]


def fingerprint(model: nn.Module, tokenizer: Any, amp_dtype: torch.dtype | None) -> str:
    """What a cached sample depends on besides the sample itself, as a short hex digest."""
    h = hashlib.sha256(f"format {CACHE_FORMAT}; pixelrefer {__version__}; autocast {amp_dtype}".encode())
    settings = {k: v for k, v in model.config.to_dict().items() if k not in ("text_config", "transformers_version")}
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.vision_model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    return h.hexdigest()[:24]


def sample_keys(samples: Sequence[dict[str, Any]], root: Path) -> list[str]:
    """One key per raw sample: a digest of its JSON record and of its media files' bytes."""
    keys = []
    for raw in samples:
        h = hashlib.sha256(json.dumps(raw, sort_keys=True).encode())
        for path in media_files(raw, root):
            h.update(path.read_bytes())
        keys.append(h.hexdigest())
    return keys


class CacheStore:
    """The shards of one fingerprint folder; ``name`` (``train``, ``eval``) starts this process's shard names."""

    def __init__(self, folder: str | Path, name: str) -> None:
        self.folder, self.name = Path(folder), name
        self._pending: dict[str, EncodedSample] = {}

    def load(self) -> dict[str, EncodedSample]:
        """Every sample in the folder's whole shards (any writer's), by key; an unreadable shard is skipped."""
        found: dict[str, EncodedSample] = {}
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            try:
                with safe_open(str(path), framework="np") as f:
                    meta = f.metadata() or {}
                    if meta.get("format") != str(CACHE_FORMAT):
                        continue
                    arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
                for key, tree in zip(json.loads(meta["keys"]), json.loads(meta["trees"]), strict=True):
                    found[key] = unflatten(tree, arrays)
            except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
                logger.warning("skipping the unreadable tower cache shard %s: %s", path, exc)
        return found

    def add(self, key: str, sample: EncodedSample) -> None:
        self._pending[key] = sample
        if len(self._pending) >= SHARD_SAMPLES:
            self.flush()

    def flush(self) -> None:
        """Write the pending samples as one shard (temporary name, then renamed)."""
        if not self._pending:
            return
        arrays: dict[str, np.ndarray] = {}
        trees = [flatten(s, arrays, f"{i}.") for i, s in enumerate(self._pending.values())]
        meta = {"format": str(CACHE_FORMAT), "keys": json.dumps(list(self._pending)), "trees": json.dumps(trees)}
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.name}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        save_file(arrays, str(tmp), metadata=meta)
        os.replace(tmp, path)
        logger.info("wrote %d samples' tower outputs to %s", len(self._pending), path)
        self._pending.clear()
