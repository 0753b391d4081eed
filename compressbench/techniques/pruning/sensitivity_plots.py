"""Figures of a sensitivity scan: a heat map (layers × amounts, colour = accuracy) and accuracy-vs-amount lines,
one pair per method, as Distiller drew them."""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _grid(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[float], np.ndarray]:
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    amounts = sorted({float(r["amount"]) for r in rows})
    grid = np.full((len(layers), len(amounts)), np.nan)
    for r in rows:
        grid[layers.index(r["layer"]), amounts.index(float(r["amount"]))] = r["top1"]
    return layers, amounts, grid


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def heatmap(rows: Sequence[Mapping[str, Any]], method: str, title: str) -> bytes:
    layers, amounts, grid = _grid(rows)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(amounts), 1.5 + 0.22 * len(layers)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=max(100.0, float(np.nanmax(grid))))
    ax.set_xticks(range(len(amounts)), [f"{a:g}" for a in amounts])
    ax.set_yticks(range(len(layers)), layers, fontsize=7)
    ax.set_xlabel(f"amount pruned ({'weights' if method == 'magnitude' else 'channels'} of the layer)")
    ax.set_title(f"{title}\n{method}: top-1 % with one layer pruned", fontsize=9)
    fig.colorbar(image, ax=ax, label="top-1 %")
    return _png(fig)


def lines(rows: Sequence[Mapping[str, Any]], method: str, title: str) -> bytes:
    layers, amounts, grid = _grid(rows)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.cm.viridis(np.linspace(0, 1, max(len(layers), 2)))
    for i, layer in enumerate(layers):
        ax.plot(amounts, grid[i], marker=".", linewidth=1, color=colours[i], label=layer)
    baseline = rows[0]["baseline_top1"]
    ax.axhline(baseline, color="0.5", linestyle=":", linewidth=1, label="unpruned")
    ax.set_xlabel(f"amount pruned ({'weights' if method == 'magnitude' else 'channels'} of the layer)")
    ax.set_ylabel("top-1 %")
    ax.set_title(f"{title}\n{method}: accuracy vs amount, one layer at a time", fontsize=9)
    if len(layers) <= 24:  # beyond that a legend hides the plot; the heat map names every layer
        ax.legend(fontsize=6, ncol=2 if len(layers) > 12 else 1, loc="lower left")
    return _png(fig)


def draw(rows: Sequence[Mapping[str, Any]], title: str) -> dict[str, bytes]:
    """Both figures for every method in ``rows``, as PNG bytes by file name."""
    files = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        files[f"sensitivity_{method}_heatmap.png"] = heatmap(mine, method, title)
        files[f"sensitivity_{method}_lines.png"] = lines(mine, method, title)
    return files
