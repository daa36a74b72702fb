"""Pictures of re-id results: the CMC curve and ranked lists (query + top-k gallery)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..fileio import atomic_write_bytes


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure with its own Agg canvas: no pyplot state, no global backend switch."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _atomic_savefig(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def plot_cmc(cmc: np.ndarray | Sequence[float], path: str | os.PathLike, title: str = "CMC",
             max_rank: int = 20) -> Path:
    """Save the CMC curve (matching rate against rank 1..max_rank) as a PNG; returns the path."""
    cmc = np.asarray(cmc, dtype=float)[:max_rank] * 100
    ranks = np.arange(1, len(cmc) + 1)
    fig = _figure((4.5, 3.2))
    ax = fig.subplots()
    ax.plot(ranks, cmc, marker="o", markersize=3)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(1, len(cmc))
    ax.grid(alpha=0.3)
    ax.set_title(f"{title}  (rank-1 {cmc[0]:.1f}%)")
    return _atomic_savefig(fig, Path(path))


def uint8_range(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] (any layout) as uint8 in [0, 255]: the one rule by which the library
    turns network images into pixels (pictures, exported renderings, FID/KID inputs)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_picture(image) -> np.ndarray:
    """A (3, H, W) tensor/array in [-1, 1] as a uint8 (H, W, 3) picture."""
    image = image.detach().cpu() if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))
    return uint8_range(image).permute(1, 2, 0).numpy()


def plot_ranked_lists(
    queries: Sequence[np.ndarray],
    galleries: Sequence[Sequence[np.ndarray]],
    matches: Sequence[Sequence[bool]],
    path: str | os.PathLike,
) -> Path:
    """Save ranked lists: one row per query (uint8 HxWx3 images), its top-k gallery images
    framed green (same identity) or red (different identity)."""
    rows, k = len(queries), max(len(g) for g in galleries)
    fig = _figure((0.9 * (k + 1), 1.9 * rows))
    axes = fig.subplots(rows, k + 1, squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(queries[r])
        axes[r, 0].set_title("query", fontsize=7)
        for c in range(k):
            ax = axes[r, c + 1]
            if c < len(galleries[r]):
                ax.imshow(galleries[r][c])
                colour = "#1a9850" if matches[r][c] else "#d73027"
                for spine in ax.spines.values():
                    spine.set_edgecolor(colour)
                    spine.set_linewidth(3)
                ax.set_title(str(c + 1), fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in axes[:, 0]:
        for spine in ax.spines.values():
            spine.set_visible(False)
    return _atomic_savefig(fig, Path(path))
