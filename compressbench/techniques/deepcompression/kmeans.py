"""Exact 1-D k-means (Lloyd's algorithm) for weight sharing: Han et al.'s weights are scalars.

In one dimension the nearest centroid is found by ``bucketize`` against the midpoints of the sorted centroids,
so an iteration is O(n log k) and needs no n × k distance matrix. Initialisations (Han et al. §3.2 compares the
first three; ``linear`` worked best for them, because it keeps the few large weights that matter):
  linear     k points evenly spaced between the smallest and the largest weight;
  density    k points evenly spaced on the weights' CDF (quantiles): dense where weights are many;
  random     k distinct weights picked at random (Forgy);
  kmeans++   Arthur & Vassilvitskii's D² sampling.

A cluster that ends up empty (linear init puts many centroids in the sparse tails) is relocated, as
scikit-learn's Lloyd does: it restarts at the weight farthest from its own centroid, which leaves its old
cluster. Dropping empty clusters instead wasted codebook entries (reported: 237 of 256 kept on a 400k-weight
layer, 27% higher MSE than scikit-learn's KMeans from the same init; on a 50k Student-t sample 35 of 256 were
kept, at 17x its MSE). With relocation the MSE matches scikit-learn's (tests/test_recipes_kmeans.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from compressbench.techniques.deepcompression.choices import KMEANS_INITS as INITS


@dataclass
class Clustering:
    """The result: ``centroids[labels]`` approximates the input; ``iterations`` is how many Lloyd steps ran."""

    # [k'] ascending; k' = k unless the data has fewer distinct values, the init repeated a value (density or
    # random on tied weights: merged), or the iteration cap ended the search right after a step emptied a
    # cluster (a cluster still empty at the end is dropped)
    centroids: torch.Tensor
    labels: torch.Tensor  # [n] int64 in 0..k'-1
    iterations: int


def init_centroids(x: torch.Tensor, k: int, init: str, generator: torch.Generator) -> torch.Tensor:
    """``k`` starting centroids for the 1-D data ``x`` (float64)."""
    if init == "linear":
        return torch.linspace(float(x.min()), float(x.max()), k, dtype=x.dtype)
    if init == "density":
        ordered = x.sort().values
        levels = (torch.arange(k, dtype=x.dtype) + 0.5) / k
        return ordered[(levels * (len(x) - 1)).round().long()]
    if init == "random":
        return x[torch.randperm(len(x), generator=generator)[:k]]
    if init == "kmeans++":
        chosen = [x[torch.randint(len(x), (1,), generator=generator)]]
        d2 = (x - chosen[0]) ** 2
        for _ in range(k - 1):
            total = d2.sum()
            if total <= 0:  # every point sits on a centroid already
                break
            # Sample proportional to D² via the cumulative sum (works past multinomial's 2^24 categories).
            u = torch.rand(1, generator=generator, dtype=x.dtype) * total
            i = int(torch.searchsorted(d2.cumsum(0), u).clamp_max(len(x) - 1))
            chosen.append(x[i:i + 1])
            d2 = torch.minimum(d2, (x - x[i]) ** 2)
        return torch.cat(chosen)
    raise ValueError(f"unknown k-means init {init!r}; known: {', '.join(INITS)}")


def assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest of the ascending ``centroids`` for every element of ``x`` (ties go left)."""
    if len(centroids) == 1:
        return torch.zeros(len(x), dtype=torch.long)
    midpoints = (centroids[1:] + centroids[:-1]) / 2
    return torch.bucketize(x, midpoints)


def relocate_empty_(x: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor, counts: torch.Tensor,
                    sums: torch.Tensor) -> int:
    """Give every empty cluster one point, the farthest from its centroid first, updating ``counts`` and ``sums``
    in place (the point leaves its old cluster); return how many clusters were relocated.

    Only points with distinct values that are no centroid already are used, so no two centroids coincide (in
    1-D two equal centroids would leave one of them empty again).
    """
    empty = torch.nonzero(counts == 0).flatten()
    if len(empty) == 0:
        return 0
    d = (x - centroids[labels]) ** 2
    taken = centroids[counts > 0]
    want = min(len(x), 4 * len(empty) + 64)  # the farthest few usually suffice: no full sort of a big layer
    while True:
        order = torch.topk(d, want).indices  # farthest first
        order = order[(d[order] > 0) & ~torch.isin(x[order], taken)]
        picks = _first_of_each_value(x, order)[: len(empty)]
        if len(picks) == len(empty) or want == len(x):
            break
        want = min(len(x), 4 * want)
    for cluster, i in zip(empty[: len(picks)].tolist(), picks.tolist(), strict=True):
        old = int(labels[i])
        counts[old] -= 1
        sums[old] -= x[i]
        counts[cluster], sums[cluster] = 1, x[i]
    return len(picks)


def _first_of_each_value(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """The indices ``order`` keeps, dropping each one whose value an earlier index already has."""
    if len(order) == 0:
        return order
    _, inverse = torch.unique(x[order], return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(order), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(order)), reduce="amin")
    return order[first.sort().values]


@torch.no_grad()
def kmeans_1d(values: torch.Tensor, k: int, init: str = "linear", iters: int = 30,
              generator: torch.Generator | None = None) -> Clustering:
    """Cluster the scalars ``values`` into at most ``k`` groups; stops when no assignment changes.

    With ``k`` or fewer distinct values the answer is exact (each value its own centroid). Computed in float64,
    so the centroids do not depend on summation order; they are returned in ``values``' dtype.
    """
    if k < 1:
        raise ValueError(f"k={k}: need at least one cluster")
    x = values.detach().reshape(-1).to("cpu", torch.float64)
    if len(x) == 0:
        return Clustering(torch.zeros(0, dtype=values.dtype), torch.zeros(0, dtype=torch.long), 0)
    distinct = torch.unique(x)
    if len(distinct) <= k:
        return Clustering(distinct.to(values.dtype), torch.searchsorted(distinct, x), 0)
    generator = generator or torch.Generator().manual_seed(0)
    centroids = init_centroids(x, k, init, generator).unique()  # sorted; duplicates (ties in the init) merged
    labels = assign(x, centroids)
    done = 0
    for step in range(1, iters + 1):
        done = step
        counts = torch.bincount(labels, minlength=len(centroids))
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        relocate_empty_(x, labels, centroids, counts, sums)
        # A cluster still empty (no point left to give it) keeps its place; dropped at the end if it stays so.
        centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids).sort().values
        new = assign(x, centroids)
        if torch.equal(new, labels):
            break
        labels = new
    # Each centroid the mean of its members (already so when the loop converged; not when it ran out).
    counts = torch.bincount(labels, minlength=len(centroids))
    sums = torch.zeros_like(centroids).index_add_(0, labels, x)
    used = counts > 0
    centroids = sums[used] / counts[used]
    remap = torch.cumsum(used.long(), 0) - 1
    return Clustering(centroids.to(values.dtype), remap[labels], done)
