"""PixelReferProcessor: (media, regions, conversation) -> token ids + pixels, for inference and training.

The only place where ``<image>`` and ``<region>`` are expanded into placeholder runs. Per variant:

* PixelRefer: the media goes into the first user turn (one ``<image>`` per image or frame, each expanded to its
  visual token count after video token compression); each region contributes one crop on its first annotated
  frame, expanded to ``min(K, mask cells)`` ``<REGION>`` placeholders.
* PixelRefer-Lite: no media tokens; each region contributes one crop per annotated frame (K placeholders each),
  with timestamps on video, plus a local view per crop and a global view per distinct frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pixelrefer.config import PixelReferConfig
from pixelrefer.constants import (
    IGNORE_INDEX,
    IM_END,
    IMAGE_TOKEN,
    PATCH_AREA,
    REGION_TOKEN,
    VIDEO_DIFF_THRESHOLD,
    VIDEO_MIN_TOKENS_PER_FRAME,
    VIDEO_TAG,
)
from pixelrefer.errors import ConfigError
from pixelrefer.media import Media, load_media
from pixelrefer.processing.crops import (
    CropSpec,
    RegionCrop,
    crop_pixel_budget,
    global_view,
    plan_crop,
    view_patches,
)
from pixelrefer.processing.image import media_pixel_budget, patchify
from pixelrefer.processing.prompts import (
    ASSISTANT_HEADER,
    CHAT_TEMPLATE,
    PromptError,
    check_control_tokens,
    check_user_text,
    control_token_pattern,
    control_tokens,
    count_media_tags,
    count_region_placeholders,
    expand_regions,
    split_at_media,
    strip_media_tags,
)
from pixelrefer.regions import RegionError, ResolvedRegion, as_region
from pixelrefer.types import ModelInputs, VisualInputs

logger = logging.getLogger(__name__)

Message = dict[str, str]


@dataclass
class EncodedSample:
    """One sample after tokenisation and crop planning, before collation."""

    input_ids: list[int]
    labels: list[int] | None
    media_patches: np.ndarray | None = None
    media_grid: list[tuple[int, int, int]] = field(default_factory=list)
    media_merge: int = 1
    media_keep: np.ndarray | None = None
    crops: list[RegionCrop] = field(default_factory=list)
    global_views: list[tuple[np.ndarray, tuple[int, int, int]]] = field(default_factory=list)  # Lite: per distinct frame
    crop_global_index: list[int] = field(default_factory=list)
    encoded: bool = False  # the pixel arrays hold the frozen tower's output instead (train/vision_cache.py)




def compression_keep(frame_patches: np.ndarray, merge: int, dtype: str | None = None) -> np.ndarray:
    """Official frame-difference compressor on pixel patches (T, N, 588) -> keep mask over merged tokens.

    ``dtype`` (``config.compression_dtype``): compare the pixels in that torch dtype, as the official code does in
    the checkpoint's ``torch_dtype``; ``None`` compares in float32."""
    t, n, d = frame_patches.shape
    tokens = frame_patches.reshape(t, n // (merge * merge), merge * merge * d)
    if dtype in (None, "float32"):
        changed = np.abs(tokens[1:] - tokens[:-1]).mean(axis=-1) * 255 > VIDEO_DIFF_THRESHOLD
    else:
        x = torch.from_numpy(tokens).to(getattr(torch, dtype))
        changed = ((x[1:] - x[:-1]).abs().mean(dim=-1) * 255 > VIDEO_DIFF_THRESHOLD).numpy()
    keep = np.concatenate([np.ones((1, tokens.shape[1]), dtype=bool), changed], axis=0)
    empty = keep.sum(axis=1) < VIDEO_MIN_TOKENS_PER_FRAME
    keep[empty, 0] = True
    return keep.reshape(-1)


class PixelReferProcessor:
    """Turns media, regions and messages into :class:`ModelInputs` for a :class:`PixelReferConfig`."""

    def __init__(self, tokenizer: Any, config: PixelReferConfig):
        self.tokenizer = tokenizer
        self.config = config
        self.image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.region_id = tokenizer.convert_tokens_to_ids(REGION_TOKEN)
        if (self.image_id, self.region_id) != (config.image_token_id, config.region_token_id):
            raise ConfigError(
                f"tokenizer ids of {IMAGE_TOKEN}/{REGION_TOKEN} ({self.image_id}, {self.region_id}) differ from the "
                f"config ({config.image_token_id}, {config.region_token_id})"
            )
        self.crop_spec = CropSpec.from_config(config)
        self.control_pattern = control_token_pattern(control_tokens(tokenizer))
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else tokenizer.eos_token_id

    # ----------------------------------------------------------------------------------------------- media
    def _encode_media(self, media: Media, sample: EncodedSample) -> list[int]:
        """Patchify image or frames; returns visual token counts per ``<image>`` placeholder."""
        merge = self.config.spatial_merge_size if media.is_video else 1
        budget = media_pixel_budget(self.config.max_visual_tokens, merge, len(media.frames))
        settings = self.config.image_processor
        per_frame = [patchify(f, merge=merge, max_pixels=budget, settings=settings) for f in media.frames]
        sample.media_patches = np.concatenate([p for p, _ in per_frame])
        sample.media_grid = [g for _, g in per_frame]
        sample.media_merge = merge
        tokens_per_frame = [g[1] * g[2] // (merge * merge) for g in sample.media_grid]
        if media.is_video and len(per_frame) > 1 and self.config.use_token_compression:
            if len(set(sample.media_grid)) != 1:
                raise ValueError("all frames of a video must have the same size")
            keep = compression_keep(np.stack([p for p, _ in per_frame]), merge, self.config.compression_dtype)
            sample.media_keep = keep
            return [int(k.sum()) for k in keep.reshape(len(per_frame), -1)]
        return tokens_per_frame

    # ----------------------------------------------------------------------------------------------- regions
    def _encode_regions(
        self, media: Media, regions: Sequence[ResolvedRegion], sample: EncodedSample, official_local_view_cache: bool,
        official_crop_budget: bool,
    ) -> list[list[float] | None]:
        lite = self.config.is_lite
        groups: list[list[float] | None] = []
        global_index: dict[int, int] = {}
        local_cache: dict[int, Any] = {}
        region_frames = [region.frames if lite else region.frames[:1] for region in regions]
        budget = crop_pixel_budget(self.crop_spec, sum(map(len, region_frames)) if official_crop_budget else 1)
        for region, frames in zip(regions, region_frames):
            for f in frames:
                crop = plan_crop(media.frames[f], region.masks[f], self.crop_spec, budget)
                sample.crops.append(crop)
                if lite:
                    if official_local_view_cache:
                        crop.local_view = local_cache.setdefault(f, crop.local_view)
                    if f not in global_index:
                        global_index[f] = len(sample.global_views)
                        view = global_view(media.frames[f], self.config.global_view_size)
                        sample.global_views.append(view_patches(view, self.crop_spec, budget))
                    sample.crop_global_index.append(global_index[f])
            stamps = [media.timestamps[f] for f in frames] if (lite and media.is_video) else None
            groups.append(stamps)
        return groups

    def as_resolved(self, media: Media, regions: Sequence[Any]) -> list[ResolvedRegion]:
        """Resolved regions as they are, mask regions (arrays, mask files, RLE, polygons) as their masks. Nothing
        is segmented or propagated here: clicks, boxes and scribbles are resolved first, beside the processor
        (:func:`pixelrefer.inference.resolve.resolve_regions`, which the predictor calls)."""
        h, w = media.size
        out = []
        for r in regions:
            if isinstance(r, ResolvedRegion):
                out.append(r)
                continue
            region = as_region(r)
            if region.needs_segmenter:
                raise RegionError(f"region {len(out)} is a {region.kind} prompt; the processor takes masks: resolve it "
                                  "first (PixelRefer.prepare or pixelrefer.inference.resolve.resolve_regions)")
            out.append(region.resolve(h, w, num_frames=len(media.frames)))
        return out

    # ----------------------------------------------------------------------------------------------- text
    def _render(self, message: dict[str, Any]) -> str:
        return self.tokenizer.apply_chat_template([message], chat_template=CHAT_TEMPLATE, tokenize=False)

    def _tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _messages(self, messages: Sequence[Message], media: Media | None, groups: list) -> list[dict[str, Any]]:
        """Chat messages for the template. The media goes where the user wrote ``<image>``/``<video>`` (official
        chunk split and spacing, :func:`split_at_media`), else at the start of the first user turn."""
        groups_iter = list(groups)
        out: list[dict[str, Any]] = []
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        tagged = [i for i in users if count_media_tags(messages[i]["content"])]
        if media is not None and len(tagged) > 1:
            raise PromptError(f"{len(tagged)} user turns have an {IMAGE_TOKEN}/{VIDEO_TAG} tag; one image or video is given")
        media_turn = (tagged or users or [None])[0] if media is not None else None
        for index, msg in enumerate(messages):
            role, text = msg["role"], msg["content"]
            if role == "user":
                text = check_user_text(text, self.control_pattern)
                n = count_region_placeholders(text)
                text, groups_iter = expand_regions(text, groups_iter[:n]), groups_iter[n:]
                if index == media_turn:
                    item = {"type": "video", "timestamps": media.timestamps} if media.is_video else {"type": "image"}
                    content = [item if piece is None else {"type": "text", "text": piece} for piece in split_at_media(text)]
                    out.append({"role": role, "content": content})
                    continue
                text = strip_media_tags(text)
            else:
                text = check_control_tokens(text, self.control_pattern, f"the {role} turn")
            out.append({"role": role, "content": text})
        if groups_iter:
            raise PromptError(
                f"{len(groups)} region(s) were given but the user turns have only "
                f"{len(groups) - len(groups_iter)} <region> placeholder(s)"
            )
        return out

    def _token_ids(self, rendered: list[dict[str, Any]], add_generation_prompt: bool, with_labels: bool):
        if not with_labels:
            text = "".join(self._render(m) for m in rendered) + (ASSISTANT_HEADER if add_generation_prompt else "")
            return self._tokenize(text), None
        ids: list[int] = []
        labels: list[int] = []
        for m in rendered:
            if m["role"] != "assistant":
                piece = self._tokenize(self._render(m))
                ids += piece
                labels += [IGNORE_INDEX] * len(piece)
                continue
            head, body, tail = self._tokenize(ASSISTANT_HEADER), self._tokenize(m["content"] + IM_END), self._tokenize("\n")
            ids += head + body + tail
            labels += [IGNORE_INDEX] * len(head) + body + [IGNORE_INDEX] * len(tail)
        if add_generation_prompt:
            head = self._tokenize(ASSISTANT_HEADER)
            ids += head
            labels += [IGNORE_INDEX] * len(head)
        return ids, labels

    def _expand(self, ids: list[int], labels: list[int] | None, image_counts: list[int], region_counts: list[int]):
        out_ids: list[int] = []
        out_labels: list[int] = []
        images, regions = iter(image_counts), iter(region_counts)
        n_img = n_reg = 0
        for pos, tok in enumerate(ids):
            lab = labels[pos] if labels is not None else IGNORE_INDEX
            if tok == self.image_id or tok == self.region_id:
                is_image = tok == self.image_id
                count = next(images, None) if is_image else next(regions, None)
                if count is None:
                    kind = IMAGE_TOKEN if is_image else REGION_TOKEN
                    raise ValueError(f"the prompt has more {kind} tokens than visual inputs for them")
                n_img, n_reg = n_img + is_image, n_reg + (not is_image)
                out_ids += [tok] * count
                out_labels += [IGNORE_INDEX] * count
            else:
                out_ids.append(tok)
                out_labels.append(lab)
        if n_img != len(image_counts) or n_reg != len(region_counts):
            raise ValueError(
                f"placeholder mismatch: {n_img}/{len(image_counts)} image and {n_reg}/{len(region_counts)} region groups"
            )
        return out_ids, (out_labels if labels is not None else None)

    # ----------------------------------------------------------------------------------------------- public
    def encode(
        self,
        media: Any,
        regions: Sequence[Any],
        messages: Sequence[Message],
        add_generation_prompt: bool = True,
        with_labels: bool = False,
        official_local_view_cache: bool = False,
        include_media: bool = True,
        official_crop_budget: bool = False,
    ) -> EncodedSample:
        """Encode one sample. ``messages`` are ``{"role": "user"|"assistant", "content": str}`` turns whose user
        text holds one ``<region>`` per region, in order. ``media`` may be ``None`` for text-only samples.

        ``include_media=False`` leaves the media tokens out of the text (a follow-up turn whose media prefix is
        already in a KV cache); the frames are still used to crop the regions.
        ``official_local_view_cache`` reproduces the official Lite bug of reusing a frame's first local crop for
        every region of that frame; ``official_crop_budget`` the official inference rule of dividing the crop
        (and view) pixel budget by the number of crops of the sample (parity tests only)."""
        sample = EncodedSample(input_ids=[], labels=None)
        media_obj = load_media(media) if media is not None else None
        resolved = self.as_resolved(media_obj, regions) if (regions and media_obj is not None) else []
        if regions and media_obj is None:
            raise ValueError("regions need media (an image or a video) to refer to")
        image_counts: list[int] = []
        place_media = media_obj is not None and include_media and not self.config.is_lite
        if place_media:
            image_counts = self._encode_media(media_obj, sample)
        groups = (
            self._encode_regions(media_obj, resolved, sample, official_local_view_cache, official_crop_budget)
            if resolved else []
        )
        rendered = self._messages(messages, media_obj if place_media else None, groups)
        ids, labels = self._token_ids(rendered, add_generation_prompt, with_labels)
        region_counts = [c.num_tokens for c in sample.crops]
        sample.input_ids, sample.labels = self._expand(ids, labels, image_counts, region_counts)
        return sample

    def collate(self, samples: Sequence[EncodedSample], padding_side: str = "left") -> ModelInputs:
        length = max(len(s.input_ids) for s in samples)
        ids = torch.full((len(samples), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(samples), length), dtype=torch.long)
        with_labels = all(s.labels is not None for s in samples)
        labels = torch.full((len(samples), length), IGNORE_INDEX, dtype=torch.long) if with_labels else None
        for i, s in enumerate(samples):
            n = len(s.input_ids)
            sl = slice(length - n, length) if padding_side == "left" else slice(0, n)
            ids[i, sl] = torch.tensor(s.input_ids)
            mask[i, sl] = 1
            if labels is not None:
                labels[i, sl] = torch.tensor(s.labels)
        return ModelInputs(input_ids=ids, attention_mask=mask, visual=collate_visual(samples), labels=labels)

    def __call__(
        self, media: Any, regions: Sequence[Any], question: str, padding_side: str = "left"
    ) -> ModelInputs:
        return self.collate([self.encode(media, regions, [{"role": "user", "content": question}])], padding_side)


def _cat(arrays: list[np.ndarray], dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
    return torch.from_numpy(np.concatenate(arrays)).to(dtype) if arrays else None


def collate_visual(samples: Sequence[EncodedSample]) -> VisualInputs | None:
    """Concatenate the visual inputs of several samples in batch order."""
    media = [s for s in samples if s.media_patches is not None]
    crops = [c for s in samples for c in s.crops]
    if not media and not crops:
        return None
    encoded = {s.encoded for s in samples}
    if len(encoded) > 1:
        raise ValueError("a batch mixes samples encoded by the vision tower with samples in pixels")
    v = VisualInputs(encoded=encoded.pop())
    if media:
        v.media_pixels = _cat([s.media_patches for s in media])
        v.media_grid = torch.tensor([g for s in media for g in s.media_grid], dtype=torch.long)
        v.media_merge = torch.tensor([s.media_merge for s in media for _ in s.media_grid], dtype=torch.long)
        if any(s.media_keep is not None for s in media):
            v.media_keep = torch.from_numpy(np.concatenate([
                s.media_keep if s.media_keep is not None else np.ones(sum(g[1] * g[2] // s.media_merge**2 for g in s.media_grid), bool)
                for s in media
            ]))
    if crops:
        v.crop_pixels = _cat([c.patches for c in crops])
        v.crop_grid = torch.tensor([c.grid for c in crops], dtype=torch.long)
        v.crop_mask = _cat([c.mask_grid.reshape(-1) for c in crops])
        v.crop_mask_hw = torch.tensor([c.mask_grid.shape for c in crops], dtype=torch.long)
        v.crop_position = _cat([c.position.reshape(-1, 2) for c in crops])
        v.crop_tokens = torch.tensor([c.num_tokens for c in crops], dtype=torch.long)
    if crops and crops[0].local_view is not None:
        local = [c.local_view for c in crops]
        v.local_pixels = _cat([p for p, _ in local])
        v.local_grid = torch.tensor([g for _, g in local], dtype=torch.long)
        glob, index, offset = [], [], 0
        for s in samples:
            glob += s.global_views
            index += [i + offset for i in s.crop_global_index]
            offset += len(s.global_views)
        v.global_pixels = _cat([p for p, _ in glob])
        v.global_grid = torch.tensor([g for _, g in glob], dtype=torch.long)
        v.crop_global_index = torch.tensor(index, dtype=torch.long)
    return v


__all__ = ["PATCH_AREA", "EncodedSample", "Media", "PixelReferProcessor", "compression_keep"]
