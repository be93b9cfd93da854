"""PixelRefer and PixelRefer-Lite as one transformers ``PreTrainedModel``.

Parts: the vision tower is transformers' ``VideoLlama3VisionModel`` (SigLIP-NaViT), the LLM transformers'
``Qwen2Model`` plus ``lm_head``. Our own modules are the :class:`ObjectTokenizer`, the projector of image tokens
(PixelRefer only) and :class:`ObjectCentricInfusion` (Lite only); the variants differ in nothing else.

The forward pass encodes every image, frame, region crop and Lite view of the batch in **one** variable-length
vision call (attention is block-diagonal per image), scatters projected image features into the ``<image>``
placeholders (PixelRefer) and object tokens into the ``<REGION>`` placeholders, then runs the LLM. Features are
only computed for placeholders present in ``input_ids``, so ``generate`` with a cached media prefix works.

Loading is transformers' ``from_pretrained`` (``dtype``, ``device_map``, ``attn_implementation``, ...), made strict,
and it also accepts official checkpoint folders. Importing this module registers the model with transformers'
``AutoModel``, ``AutoModelForImageTextToText`` and ``AutoModelForCausalLM``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    GenerationMixin,
    PreTrainedModel,
    Qwen2Model,
)
from transformers.cache_utils import Cache
from transformers.modeling_outputs import ModelOutput
from transformers.models.video_llama_3.modeling_video_llama_3 import VideoLlama3VisionModel

from pixelrefer.config import PixelReferConfig
from pixelrefer.errors import CheckpointError
from pixelrefer.model.fusion import scatter_features
from pixelrefer.model.object_tokenizer import ObjectTokenizer, pad_to
from pixelrefer.model.oci import ObjectCentricInfusion
from pixelrefer.types import VisualInputs


@dataclass
class PixelReferOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: Cache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    object_tokens: torch.Tensor | None = None


class MultimodalProjector(nn.Module):
    """Vision width -> LLM width for image tokens (Linear, GELU, Linear)."""

    def __init__(self, vision_hidden: int, text_hidden: int):
        super().__init__()
        self.readout = nn.Sequential(nn.Linear(vision_hidden, text_hidden), nn.GELU(), nn.Linear(text_hidden, text_hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(x)


class PixelReferPreTrainedModel(PreTrainedModel):
    config_class = PixelReferConfig
    config: PixelReferConfig
    base_model_prefix = ""
    supports_gradient_checkpointing = True
    _no_split_modules = ["VideoLlama3VisionEncoderLayer", "Qwen2DecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True


def region_grids(visual: VisualInputs) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per region: its crop's box position grid ``(gh, gw, 2)`` and its mask on the token grid ``(mh, mw)``."""
    hw = visual.crop_grid[:, 1:].tolist()
    positions = [p.view(h, w, 2) for p, (h, w) in zip(visual.crop_position.split([h * w for h, w in hw]), hw)]
    mask_hw = visual.crop_mask_hw.tolist()
    masks = [m.view(h, w) for m, (h, w) in zip(visual.crop_mask.split([h * w for h, w in mask_hw]), mask_hw)]
    return positions, masks


class PixelReferForConditionalGeneration(PixelReferPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "language_model.embed_tokens.weight"}

    def __init__(self, config: PixelReferConfig):
        super().__init__(config)
        v, t = config.vision_config.hidden_size, config.text_config.hidden_size
        self.vision_model = VideoLlama3VisionModel(config.vision_config)
        self.projector = None if config.is_lite else MultimodalProjector(v, t)
        self.object_tokenizer = ObjectTokenizer(v, t, config.mask_num, config.kmeans_iterations, config.kmeans_seed)
        self.oci = ObjectCentricInfusion(v, config.oci_num_heads, config.oci_layer_norm_eps) if config.is_lite else None
        self.language_model = Qwen2Model(config.text_config)
        self.lm_head = nn.Linear(t, config.text_config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' ``from_pretrained`` for our folders and for official PixelRefer / PixelRefer-Lite folders.

        Every transformers option works (``dtype``, ``device_map``, ``attn_implementation``, ...); the attention
        implementation reaches the vision tower and the LLM. An official folder is mapped key by key in memory
        (:func:`pixelrefer.model.export.read_official`; ``pixelrefer convert`` writes it once in our format).
        Loading is strict: a missing, unexpected or mis-shaped weight raises :class:`CheckpointError` instead of
        leaving a randomly initialised parameter.
        """
        from pixelrefer.model.export import official_folder, read_official

        if kwargs.get("ignore_mismatched_sizes"):
            raise CheckpointError("PixelRefer checkpoints load strictly; ignore_mismatched_sizes is not supported")
        official = official_folder(pretrained_model_name_or_path)
        if official is not None:
            if kwargs.get("config") is not None or kwargs.get("state_dict") is not None:
                raise CheckpointError(f"{official} is an official checkpoint: its config and weights are read from it")
            config, state = read_official(official)
            pretrained_model_name_or_path = None
            kwargs.update(config=config, state_dict=state)
        want_info = kwargs.pop("output_loading_info", False)
        kwargs["ignore_mismatched_sizes"] = True  # reported below as an error, with the other key problems
        model, info = super().from_pretrained(pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs)
        problems = {
            "missing keys": sorted(info["missing_keys"]),
            "unexpected keys": sorted(info["unexpected_keys"]),
            "shape mismatches": sorted(f"{k} (checkpoint {tuple(a)}, model {tuple(b)})" for k, a, b in info["mismatched_keys"]),
        }
        if any(problems.values()):
            listed = "; ".join(f"{kind} {names[:20]}" for kind, names in problems.items() if names)
            raise CheckpointError(f"checkpoint does not fit the model: {listed}")
        return (model, info) if want_info else model

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    # ----------------------------------------------------------------------------------------------- vision
    def encode_vision(self, visual: VisualInputs) -> dict[str, list[torch.Tensor]]:
        """One vision call over every image, frame, crop and view; returns per-item features by group.

        Media items come back merged (``media_merge``) in raster order of the merged grid; all other groups at
        merge 1 as (gh, gw, C) grids. Inputs already ``encoded`` by the tower are only split the same way.
        """
        groups: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        if visual.media_pixels is not None and self.projector is not None:
            groups.append(("media", visual.media_pixels, visual.media_grid, visual.media_merge))
        for name in ("crop", "local", "global"):
            pixels, grid = getattr(visual, f"{name}_pixels"), getattr(visual, f"{name}_grid")
            if pixels is not None and (name == "crop" or self.oci is not None):
                groups.append((name, pixels, grid, torch.ones_like(grid[:, 0])))
        if not groups:
            return {}
        pixels = torch.cat([g[1] for g in groups]).to(self.vision_model.dtype)
        grid = torch.cat([g[2] for g in groups])
        merge = torch.cat([g[3] for g in groups])
        if visual.encoded:
            feats = pixels
        else:
            feats = self.vision_model(pixel_values=pixels, grid_thw=grid, merge_sizes=merge).last_hidden_state
        sizes = (grid.prod(dim=1) // (merge * merge)).tolist()
        per_item = list(feats.split(sizes))
        out: dict[str, list[torch.Tensor]] = {}
        start = 0
        for name, _, g, m in groups:
            items = per_item[start : start + g.shape[0]]
            start += g.shape[0]
            if name != "media":
                items = [f.view(int(h), int(w), -1) for f, (_, h, w) in zip(items, g.tolist())]
            out[name] = items
        return out

    def image_features(self, media: list[torch.Tensor], keep: torch.Tensor | None) -> torch.Tensor:
        feats = torch.cat(media)
        if keep is not None:
            feats = feats[keep]
        return self.projector(feats)

    def object_features(
        self, visual: VisualInputs, feats: dict[str, list[torch.Tensor]], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Object tokens of every region in LLM width, concatenated in placeholder order."""
        positions, masks = region_grids(visual)
        pooled = self.object_tokenizer.pool(feats["crop"], positions, masks, generator=generator)
        if self.oci is not None:
            objects = pad_to(pooled, self.config.mask_num)
            local = torch.stack([f.flatten(0, 1) for f in feats["local"]]).float()
            global_views = torch.stack([f.flatten(0, 1) for f in feats["global"]]).float()
            fused = self.oci(objects.to(self.oci.local_norm.weight.dtype),
                             local.to(self.oci.local_norm.weight.dtype),
                             global_views[visual.crop_global_index].to(self.oci.local_norm.weight.dtype))
            tokens = fused.flatten(0, 1)
        else:
            counts = visual.crop_tokens.tolist()
            tokens = torch.cat([p[:n] for p, n in zip(pooled, counts)])
        return self.object_tokenizer.mlp(tokens.to(self.object_tokenizer.mlp[0].weight.dtype))

    def embed(
        self, input_ids: torch.Tensor, visual: VisualInputs | None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Text embeddings with image and object features written into their placeholders."""
        embeds = self.language_model.embed_tokens(input_ids)
        image_id, region_id = self.config.image_token_id, self.config.region_token_id
        has_image = visual is not None and self.projector is not None and bool((input_ids == image_id).any())
        has_region = visual is not None and visual.num_regions > 0 and bool((input_ids == region_id).any())
        if not (has_image or has_region):
            return embeds + self.idle_term(vision=True, image=True, region=True) if self.training else embeds
        feats = self.encode_vision(visual)
        if has_image:
            embeds = scatter_features(embeds, input_ids, image_id, self.image_features(feats["media"], visual.media_keep), "image")
        if has_region:
            embeds = scatter_features(embeds, input_ids, region_id, self.object_features(visual, feats, generator), "region")
        if self.training and not (has_image and has_region):
            embeds = embeds + self.idle_term(vision=False, image=not has_image, region=not has_region)
        return embeds

    def idle_term(self, vision: bool, image: bool, region: bool) -> torch.Tensor:
        """An exact zero computed by the modules a training batch leaves idle (``vision``: the vision tower,
        ``image``: the projector, ``region``: object tokenizer and OCI), each called once on a tiny dummy input.

        Every process of a distributed run then calls the same modules the same number of times whatever its
        batch holds, which DDP (without ``find_unused_parameters``), FSDP2 and ZeRO-3 need; the idle parameters
        get zero gradients, as they would from a process that had nothing for them.
        """
        v = self.config.vision_config
        device, dtype = self.lm_head.weight.device, self.vision_model.dtype
        width = v.hidden_size
        term = torch.zeros((), device=device)
        if vision:
            patches = torch.zeros(4, v.num_channels * v.patch_size ** 2, device=device, dtype=dtype)
            grid = torch.tensor([[1, 2, 2]], device=device)
            out = self.vision_model(pixel_values=patches, grid_thw=grid, merge_sizes=torch.ones(1, dtype=torch.long,
                                    device=device)).last_hidden_state
            term = term + out.float().sum() * 0
        if image and self.projector is not None:
            term = term + self.projector(torch.zeros(1, width, device=device, dtype=dtype)).float().sum() * 0
        if region:
            cell = torch.zeros(1, 1, width, device=device, dtype=dtype)
            pooled = self.object_tokenizer.pool([cell], [torch.zeros(1, 1, 2, device=device)],
                                           [torch.ones(1, 1, device=device)])
            tokens = pooled[0]
            if self.oci is not None:
                fused = self.oci(pad_to(pooled, self.config.mask_num).to(self.oci.local_norm.weight.dtype),
                                 cell, cell)
                tokens = fused.flatten(0, 1)
            term = term + self.object_tokenizer.mlp(tokens.to(self.object_tokenizer.mlp[0].weight.dtype)).float().sum() * 0
        return term.to(self.lm_head.weight.dtype)

    # ----------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        visual: VisualInputs | None = None,
        kmeans_generator: torch.Generator | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> PixelReferOutput:
        """Standard causal-LM forward; ``visual`` carries the pixels of the placeholders in ``input_ids``."""
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass input_ids (with placeholders) or inputs_embeds")
            inputs_embeds = self.embed(input_ids, visual, kmeans_generator)
        out = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = out.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden = hidden[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            hidden = hidden[:, logits_to_keep]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size)
        return PixelReferOutput(loss=loss, logits=logits, cache=out.cache, hidden_states=out.hidden_states)

    def prepare_inputs_for_generation(self, *args, inputs_embeds: torch.Tensor | None = None,
                                      is_first_iteration: bool | None = False, **kwargs):
        """``inputs_embeds`` (named so transformers lets ``generate`` start from embeddings, as the engines do)."""
        inputs = super().prepare_inputs_for_generation(*args, inputs_embeds=inputs_embeds,
                                                       is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration:
            inputs.pop("visual", None)
            inputs.pop("kmeans_generator", None)
        return inputs


for _auto in (AutoModel, AutoModelForImageTextToText, AutoModelForCausalLM):
    _auto.register(PixelReferConfig, PixelReferForConditionalGeneration, exist_ok=True)
