"""The one place where placeholder embeddings are replaced by features, with a loud count check."""

from __future__ import annotations

import torch

from pixelrefer.errors import PromptError


class PlaceholderMismatchError(PromptError):
    """The number of placeholder tokens differs from the number of feature rows."""


def scatter_features(embeds: torch.Tensor, input_ids: torch.Tensor, token_id: int, features: torch.Tensor, kind: str) -> torch.Tensor:
    """Write ``features`` (rows in sequence order, row-major over the batch) at every ``token_id`` position."""
    mask = input_ids == token_id
    n = int(mask.sum())
    if n != features.shape[0]:
        raise PlaceholderMismatchError(f"{n} {kind} placeholder token(s) but {features.shape[0]} {kind} feature row(s)")
    return embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype))
