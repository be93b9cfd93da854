"""Typed containers passed between the processor and the model."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class VisualInputs:
    """All pixels of a batch, flattened across samples in sequence order.

    Media (PixelRefer only): images / video frames as patches with one grid row per image or frame.
    Crops: one per object-token group, in the order of the ``<REGION>`` runs in the batch (row-major over samples).
    Lite views: a local crop per region and a global view per distinct frame (``crop_global_index``).
    ``encoded``: every ``*_pixels`` field already holds the vision tower's output for its items (one row per
    token, media merged), as a frozen tower's cache makes them (:mod:`pixelrefer.train.vision_cache`).
    """

    media_pixels: torch.Tensor | None = None  # (N, 588)
    media_grid: torch.Tensor | None = None  # (M, 3) long
    media_merge: torch.Tensor | None = None  # (M,) long
    media_keep: torch.Tensor | None = None  # (sum of merged tokens,) bool, video token compression
    crop_pixels: torch.Tensor | None = None  # (Nc, 588)
    crop_grid: torch.Tensor | None = None  # (R, 3) long
    crop_mask: torch.Tensor | None = None  # (sum mh*mw,) float mask cells, row-major per region
    crop_mask_hw: torch.Tensor | None = None  # (R, 2) long
    crop_position: torch.Tensor | None = None  # (sum gh*gw, 2) float box position grid
    crop_tokens: torch.Tensor | None = None  # (R,) long object tokens per region in the prompt
    local_pixels: torch.Tensor | None = None  # (Nl, 588) Lite
    local_grid: torch.Tensor | None = None  # (R, 3)
    global_pixels: torch.Tensor | None = None  # (Ng, 588) Lite
    global_grid: torch.Tensor | None = None  # (G, 3)
    crop_global_index: torch.Tensor | None = None  # (R,) long
    encoded: bool = False

    @property
    def num_regions(self) -> int:
        return 0 if self.crop_grid is None else int(self.crop_grid.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> VisualInputs:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device=device, dtype=dtype if (dtype is not None and f.name.endswith("pixels")) else None)
            out[f.name] = v
        return VisualInputs(**out)


@dataclass
class ModelInputs:
    """A collated batch: token ids, masks, optional labels and the visual inputs."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    visual: VisualInputs | None = None
    labels: torch.Tensor | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ModelInputs:
        return ModelInputs(
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            visual=None if self.visual is None else self.visual.to(device, dtype),
            labels=None if self.labels is None else self.labels.to(device),
        )

    def as_kwargs(self) -> dict:
        out = {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "visual": self.visual}
        if self.labels is not None:
            out["labels"] = self.labels
        return out
