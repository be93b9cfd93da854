"""Batched k-means that compresses each region's masked features to at most K object tokens.

All regions run together on a padded (R, N, C) tensor: no Python loop over clusters or iterations per region.
The algorithm is the official one: centroids start at ``tokens[randperm(n)[:k]]``, each iteration assigns
tokens to the nearest centroid (squared Euclidean, near ties decided with the official formula, ties to the lowest
index) and moves each centroid to the mean of its members (an empty cluster keeps its centroid). A region stops as soon as its centroids move by less than
``allclose(rtol=1e-5, atol=1e-6)`` and then keeps the centroids from *before* that last update, as the official
code does.

Initialisation is deterministic by default: each region draws its permutation from its own generator seeded with
``seed``, so a region's tokens do not depend on the other regions of the batch. Passing one shared ``generator``
instead consumes it region after region, which reproduces the official code run after ``torch.manual_seed``.
"""

from __future__ import annotations

import torch


def _initial_centroids(
    tokens: list[torch.Tensor], k: int, seed: int, generator: torch.Generator | None
) -> torch.Tensor:
    firsts = []
    for t in tokens:
        gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(seed)
        perm = torch.randperm(t.shape[0], generator=gen)[:k]
        firsts.append(t[perm.to(t.device)])
    return torch.stack(firsts)


DISTANCE_CHUNK_ELEMENTS = 1 << 24  # bound on the (n, K, C) difference tensor built per chunk of tokens
# Assignments whose two nearest squared distances (matmul form) are closer than this, relative to |x|^2 + |c|^2,
# are re-decided with the official formula. The matmul form's rounding error is far below it (C * eps ~ 1e-4
# worst case for C = 1152 in fp32), so every other assignment is the official one too.
NEAR_TIE = 1e-3


def _official_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(M, C) x (M, K, C) -> (M, K) sums of squared differences, as the official code computes them."""
    step = max(1, DISTANCE_CHUNK_ELEMENTS // max(1, centroids.shape[1] * centroids.shape[2]))
    parts = [(x[i : i + step].unsqueeze(1) - centroids[i : i + step]).pow(2).sum(-1) for i in range(0, x.shape[0], step)]
    return torch.cat(parts)


def _nearest(x: torch.Tensor, centroids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (squared Euclidean, ties to the lowest index) for (R, N, C) x (R, K, C);
    ``valid`` (R, N) marks real tokens (the rest is padding).

    One batched matmul (||x||^2 - 2 x.c + ||c||^2) decides the clear cases; near ties are recomputed as the
    official code does (sum of squared differences), whose rounding they depend on."""
    x_sq = x.pow(2).sum(-1, keepdim=True)
    c_sq = centroids.pow(2).sum(-1).unsqueeze(1)
    approx = torch.baddbmm(x_sq + c_sq, x, centroids.transpose(1, 2), alpha=-2.0)
    labels = approx.argmin(dim=-1)
    if centroids.shape[1] < 2:
        return labels
    best = approx.topk(2, dim=-1, largest=False).values
    near = ((best[..., 1] - best[..., 0]) <= NEAR_TIE * (x_sq[..., 0] + c_sq.amax(dim=-1))) & valid
    if bool(near.any()):
        r, n = near.nonzero(as_tuple=True)
        labels[r, n] = _official_distances(x[r, n], centroids[r]).argmin(dim=-1)
    return labels


def kmeans_compress(
    tokens: list[torch.Tensor],
    k: int,
    iterations: int,
    seed: int = 0,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Compress each ``(n_i, C)`` tensor to ``min(n_i, k)`` rows; regions with ``n_i <= k`` pass through."""
    out: list[torch.Tensor | None] = [t if t.shape[0] <= k else None for t in tokens]
    todo = [i for i, t in enumerate(tokens) if t.shape[0] > k]
    if not todo:
        return out  # type: ignore[return-value]
    x_list = [tokens[i].float() for i in todo]
    r, c = len(x_list), x_list[0].shape[1]
    n_max = max(x.shape[0] for x in x_list)
    x = x_list[0].new_zeros(r, n_max, c)
    valid = torch.zeros(r, n_max, dtype=torch.bool, device=x.device)
    for j, t in enumerate(x_list):
        x[j, : t.shape[0]] = t
        valid[j, : t.shape[0]] = True
    centroids = _initial_centroids(x_list, k, seed, generator)
    done = torch.zeros(r, dtype=torch.bool, device=x.device)
    for _ in range(iterations):
        assign = _nearest(x, centroids, valid)  # (R, N)
        onehot = torch.nn.functional.one_hot(assign, k).to(x.dtype) * valid.unsqueeze(-1)
        counts = onehot.sum(dim=1)  # (R, K)
        sums = torch.einsum("rnk,rnc->rkc", onehot, x)
        updated = torch.where(counts.unsqueeze(-1) > 0, sums / counts.clamp(min=1).unsqueeze(-1), centroids)
        converged = torch.isclose(updated, centroids, rtol=1e-5, atol=1e-6).flatten(1).all(dim=1)
        newly_done = converged & ~done
        keep_old = (done | newly_done).view(r, 1, 1)
        centroids = torch.where(keep_old, centroids, updated)
        done = done | newly_done
        if bool(done.all()):
            break
    for j, i in enumerate(todo):
        out[i] = centroids[j].to(tokens[i].dtype)
    return out  # type: ignore[return-value]
