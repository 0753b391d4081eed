"""k-means weight sharing relocates empty clusters, so it matches scikit-learn's KMeans from the same init."""
from __future__ import annotations

import pytest
import torch

from compressbench.techniques.deepcompression.kmeans import init_centroids, kmeans_1d, relocate_empty_

cluster = pytest.importorskip("sklearn.cluster")


def heavy_tailed(n: int, seed: int = 0) -> torch.Tensor:
    """Weights as trained layers have them: most near zero, a few large (Student's t, 3 degrees of freedom)."""
    generator = torch.Generator().manual_seed(seed)
    normal = torch.randn(n, generator=generator, dtype=torch.float64)
    chi2 = (torch.randn(3, n, generator=generator, dtype=torch.float64) ** 2).sum(0)
    return 0.02 * normal / (chi2 / 3).sqrt()


def mse(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor) -> float:
    return float(((x - centroids.double()[labels]) ** 2).mean())


@pytest.mark.parametrize("iters", [30, 100])
def test_linear_init_keeps_every_cluster_and_matches_sklearn(iters: int):
    x, k = heavy_tailed(50_000), 256
    ours = kmeans_1d(x.float(), k, init="linear", iters=iters)
    assert len(ours.centroids) == k and torch.bincount(ours.labels, minlength=k).min() >= 1  # none empty
    assert torch.all(ours.centroids[1:] > ours.centroids[:-1])  # distinct, ascending
    init = init_centroids(x, k, "linear", torch.Generator()).numpy().reshape(-1, 1)
    reference = cluster.KMeans(k, init=init, n_init=1, max_iter=iters, tol=0.0, algorithm="lloyd")
    reference.fit(x.numpy().reshape(-1, 1))
    sklearn_mse = reference.inertia_ / len(x)
    assert mse(x, ours.centroids, ours.labels) <= 1.01 * sklearn_mse


def test_relocation_takes_the_farthest_point_from_its_cluster():
    x = torch.tensor([0.0, 0.1, 0.2, 5.0, 9.5], dtype=torch.float64)
    centroids = torch.tensor([0.1, 4.0, 7.0], dtype=torch.float64)  # the middle cluster is empty
    labels = torch.tensor([0, 0, 0, 2, 2])
    counts = torch.bincount(labels, minlength=3)
    sums = torch.zeros(3, dtype=torch.float64).index_add_(0, labels, x)
    assert relocate_empty_(x, labels, centroids, counts, sums) == 1
    # 9.5 is the farthest from its centroid (2.5 from 7.0): it moves to the empty cluster and leaves its old one
    assert counts.tolist() == [3, 1, 1] and sums.tolist() == pytest.approx([0.3, 9.5, 5.0])


def test_no_two_centroids_coincide_with_repeated_values():
    # Many copies of a few far values: a relocated centroid must not duplicate another (it would stay empty).
    x = torch.cat([torch.zeros(1000), torch.full((50,), 1.0), torch.full((50,), -1.0), torch.linspace(-0.1, 0.1, 40)])
    result = kmeans_1d(x, 16, init="linear", iters=50)
    assert len(result.centroids) == 16 and torch.unique(result.centroids).numel() == 16
    assert torch.bincount(result.labels, minlength=16).min() >= 1
