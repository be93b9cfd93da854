"""Object-Centric Infusion (PixelRefer-Lite): object tokens attend to a local crop view, then to the whole frame.

``q = q + MHA_local(LN_local(q), L, L)``; ``q = q + MHA_global(LN_global(q), G, G)``. Pre-norm is applied to the
queries only; keys and values are the raw vision features of the views.
"""

from __future__ import annotations

import torch
from torch import nn


class ObjectCentricInfusion(nn.Module):
    def __init__(self, hidden: int, num_heads: int, eps: float):
        super().__init__()
        self.local_norm = nn.LayerNorm(hidden, eps=eps)
        self.local_attn = nn.MultiheadAttention(hidden, num_heads, batch_first=True)
        self.global_norm = nn.LayerNorm(hidden, eps=eps)
        self.global_attn = nn.MultiheadAttention(hidden, num_heads, batch_first=True)

    def forward(self, objects: torch.Tensor, local_view: torch.Tensor, global_view: torch.Tensor) -> torch.Tensor:
        """``objects`` (R, K, C), ``local_view`` (R, Nl, C), ``global_view`` (R, Ng, C) -> (R, K, C)."""
        q = self.local_norm(objects)
        objects = objects + self.local_attn(q, local_view, local_view, need_weights=False)[0]
        q = self.global_norm(objects)
        return objects + self.global_attn(q, global_view, global_view, need_weights=False)[0]
