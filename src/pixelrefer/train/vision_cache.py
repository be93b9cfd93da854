"""Frozen vision tower outputs, computed once per sample and reused in every later epoch.

When a stage freezes the vision tower (the paper's stages, and the nano recipe after its vision pretraining),
what the tower makes of a sample's image, crops and Lite views never changes during training, yet reading the
image, cropping, resizing and encoding it again each epoch was most of a nano step on a CPU (0.70 s of 1.15 s:
docs/training.md, "Frozen-tower cache"). :class:`VisionFeatureCache` wraps the training dataset: the first time a
sample is asked for, it is encoded as usual and its pixels go through the tower once, in the training's autocast;
the sample is kept with the tower's output in place of its pixels (``EncodedSample.encoded``), which the model
then uses as is (:meth:`PixelReferForConditionalGeneration.encode_vision`). Everything after the tower (box
position embedding, k-means, projector, OCI, LLM) still runs, and trains, at every step.

The cache lives in the training process's memory (float32, about 30 KB per image and 50 KB per region crop at
nano sizes); with ``data.cache_dir`` it is also kept on disk (train/cache_store.py), so that a resumed run, or
another run with the same tower, data and preprocessing, reads it back instead of rebuilding it. It needs
``num_workers: 0`` (the tower runs where the model is) and a model whose tower is not sharded.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from pixelrefer.errors import ConfigError
from pixelrefer.processing.processor import EncodedSample, collate_visual
from pixelrefer.train.cache_store import CacheStore, fingerprint, sample_keys
from pixelrefer.train.stages import get_stage

if TYPE_CHECKING:
    from pixelrefer.train.config import TrainConfig

logger = logging.getLogger(__name__)

CACHEABLE_STRATEGIES = ("single", "ddp")


def check_cacheable(cfg: TrainConfig) -> None:
    """Why a config cannot cache its tower's outputs, as a :class:`ConfigError` when the config is built."""
    vision_lr = get_stage(cfg.stage, cfg.lrs).lrs["vision"]
    if vision_lr is not None:
        raise ConfigError(f"data.cache_vision needs a frozen vision tower (lrs.vision: null); stage {cfg.stage!r} "
                          f"trains it at lr {vision_lr}")
    if cfg.num_workers:
        raise ConfigError("data.cache_vision runs the tower in the training process: set num_workers: 0")
    if cfg.strategy not in CACHEABLE_STRATEGIES:
        raise ConfigError(f"data.cache_vision needs the whole tower in each process (strategy "
                          f"{' or '.join(CACHEABLE_STRATEGIES)}), not {cfg.strategy}")


class VisionFeatureCache(Dataset):
    """``dataset``'s samples with their pixels replaced by ``model``'s frozen tower output, each computed once.

    ``autocast`` is the training forward's autocast context, so the cached features are the ones the tower would
    have produced inside the step. With a ``store`` (and each sample's key in ``keys``), the samples already on
    disk are read back at once and every new one is written there too.
    """

    def __init__(self, dataset: Dataset, model: nn.Module, autocast: Callable[[], AbstractContextManager[Any]],
                 store: CacheStore | None = None, keys: list[str] | None = None):
        self.dataset, self.model, self.autocast = dataset, model, autocast
        self._cache: dict[int, EncodedSample] = {}
        self.cached_bytes = 0
        self.store, self.keys = store, keys
        if store is not None:
            if keys is None or len(keys) != len(self):
                raise ValueError("a cache store needs one key per sample")
            found = store.load()
            for index, key in enumerate(keys):
                if key in found:
                    self._cache[index] = found[key]
                    self.cached_bytes += encoded_bytes(found[key])
            logger.info("tower outputs of %d of %d samples read from %s", len(self._cache), len(self), store.folder)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:  # length_estimate, samples, parsed, ... of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> EncodedSample:
        hit = self._cache.get(index)
        if hit is None:
            hit = self._cache[index] = encode_with_tower(self.model, self.dataset[index], self.autocast)
            self.cached_bytes += encoded_bytes(hit)
            if self.store is not None:
                self.store.add(self.keys[index], hit)  # type: ignore[index]
            if len(self._cache) == len(self):
                logger.info("tower outputs of all %d samples cached (%.0f MB)", len(self), self.cached_bytes / 2**20)
                if self.store is not None:
                    self.store.flush()
        return hit


def with_tower_cache(dataset: Dataset, model: nn.Module, autocast: Callable[[], AbstractContextManager[Any]],
                     amp_dtype: torch.dtype | None, cache_dir: str | Path | None, name: str) -> VisionFeatureCache:
    """``dataset`` behind a tower cache, kept on disk under ``cache_dir`` (its fingerprint folder) when given."""
    if cache_dir is None:
        return VisionFeatureCache(dataset, model, autocast)
    samples, root, processor = (getattr(dataset, a, None) for a in ("samples", "root", "processor"))
    if samples is None or root is None or processor is None:
        raise ConfigError("data.cache_dir keeps the samples of a data file (a SupervisedDataset) on disk")
    folder = Path(cache_dir) / fingerprint(model, processor.tokenizer, amp_dtype)
    return VisionFeatureCache(dataset, model, autocast, CacheStore(folder, name), sample_keys(samples, Path(root)))


def encode_with_tower(model: nn.Module, sample: EncodedSample,
                      autocast: Callable[[], AbstractContextManager[Any]]) -> EncodedSample:
    """``sample`` with every pixel array the model would encode replaced by the tower's output for it (one row
    per token, items in the same order); media the model does not encode (Lite) is dropped."""
    if sample.encoded:
        return sample
    tower = model.vision_model
    if any(p.requires_grad for p in tower.parameters()):
        raise ConfigError("data.cache_vision: the vision tower has trainable parameters (a LoRA on it?)")
    visual = collate_visual([sample])
    if visual is None:
        return dataclasses.replace(sample, encoded=True)
    device = next(tower.parameters()).device
    with torch.no_grad(), autocast():
        feats = model.encode_vision(visual.to(device))

    def rows(tensor: torch.Tensor) -> np.ndarray:
        return tensor.reshape(-1, tensor.shape[-1]).float().cpu().numpy()

    crops = [dataclasses.replace(crop, patches=rows(feats["crop"][k]),
                                 local_view=None if crop.local_view is None else (rows(feats["local"][k]), crop.local_view[1]))
             for k, crop in enumerate(sample.crops)]
    media = "media" in feats
    return dataclasses.replace(
        sample,
        media_patches=np.concatenate([rows(f) for f in feats["media"]]) if media else None,
        media_grid=sample.media_grid if media else [],
        media_keep=sample.media_keep if media else None,
        crops=crops,
        global_views=[(rows(feats["global"][g]), grid) for g, (_, grid) in enumerate(sample.global_views)],
        encoded=True,
    )


def encoded_bytes(sample: EncodedSample) -> int:
    arrays = [sample.media_patches] + [c.patches for c in sample.crops]
    arrays += [c.local_view[0] for c in sample.crops if c.local_view is not None] + [p for p, _ in sample.global_views]
    return sum(a.nbytes for a in arrays if a is not None)
