"""Scale-Adaptive Object Tokenizer, model side: crop features -> at most K object tokens per region.

Per region: add the box position embedding to the crop's vision features, resize them to the mask grid if the
two differ, keep the cells inside the mask (row-major), compress them with k-means to at most ``mask_num``
tokens. The MLP to the LLM width (:attr:`ObjectTokenizer.mlp`) is applied by the model after the optional
Object-Centric Infusion of Lite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelrefer.model.kmeans import kmeans_compress


class ObjectTokenizer(nn.Module):
    def __init__(self, vision_hidden: int, text_hidden: int, mask_num: int, kmeans_iterations: int, kmeans_seed: int):
        super().__init__()
        self.pos_proj = nn.Linear(2, vision_hidden)
        self.mlp = nn.Sequential(nn.Linear(vision_hidden, text_hidden), nn.GELU(), nn.Linear(text_hidden, text_hidden))
        self.mask_num = mask_num
        self.kmeans_iterations = kmeans_iterations
        self.kmeans_seed = kmeans_seed

    def masked_tokens(
        self,
        features: list[torch.Tensor],
        positions: list[torch.Tensor],
        masks: list[torch.Tensor],
    ) -> list[torch.Tensor]:
        """Per region: (features + position embedding) at the mask cells, in row-major order.

        ``features[i]``: (gh, gw, C); ``positions[i]``: (gh, gw, 2); ``masks[i]``: (mh, mw).
        """
        out = []
        pos_all = self.pos_proj(torch.cat([p.reshape(-1, 2) for p in positions]).to(self.pos_proj.weight.dtype))
        pos_chunks = pos_all.split([p.shape[0] * p.shape[1] for p in positions])
        for feat, pos, mask in zip(features, pos_chunks, masks):
            x = feat.float() + pos.float().view(feat.shape)
            if x.shape[:2] != mask.shape:
                grid = F.interpolate(x.permute(2, 0, 1)[None], size=tuple(mask.shape), mode="bilinear", align_corners=False)
                x = grid[0].permute(1, 2, 0)
            out.append(x[mask > 0])
        return out

    def pool(
        self,
        features: list[torch.Tensor],
        positions: list[torch.Tensor],
        masks: list[torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """Pooled object tokens per region, ``(min(n_i, K), C)`` in the vision width, before the MLP.

        The model calls this method rather than the module, so that sharding engines (FSDP2, ZeRO-3) hook
        only ``pos_proj`` and ``mlp``: when this container's hooks fire in backward relative to
        ``pos_proj``'s depends on the data, and ZeRO-3 needs that order to be the same on every process.
        """
        tokens = self.masked_tokens(features, positions, masks)
        return kmeans_compress(tokens, self.mask_num, self.kmeans_iterations, seed=self.kmeans_seed, generator=generator)

    forward = pool


def pad_to(tokens: list[torch.Tensor], length: int) -> torch.Tensor:
    """Stack regions into (R, length, C), zero-padding the short ones (Lite always uses K tokens per region)."""
    out = tokens[0].new_zeros(len(tokens), length, tokens[0].shape[-1])
    for i, t in enumerate(tokens):
        out[i, : t.shape[0]] = t
    return out
