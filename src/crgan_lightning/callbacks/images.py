"""Sample grids of a context-rendering model during training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from ..data.keys import IMAGE, MASK, PID, SOURCE, TARGET
from ..errors import ConfigError
from ..fileio import atomic_save_image
from ..metrics.plots import to_picture
from ..artifacts import log_image_file, run_dir


def sample_grid(sources: torch.Tensor, targets: torch.Tensor, rendered: torch.Tensor, gap: int = 2) -> np.ndarray:
    """A uint8 (H', W', 3) grid: the first row shows the target contexts, each further row one
    source image followed by its renderings into those contexts.

    sources (S, 3, H, W), targets (T, 3, H, W), rendered (S, T, 3, H, W), all in [-1, 1].
    """
    s, t = len(sources), len(targets)
    h, w = sources.shape[-2:]
    grid = np.full(((s + 1) * (h + gap), (t + 1) * (w + gap), 3), 255, np.uint8)

    def put(r: int, c: int, image: torch.Tensor) -> None:
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = to_picture(image)

    for j in range(t):
        put(0, j + 1, targets[j])
    for i in range(s):
        put(i + 1, 0, sources[i])
        for j in range(t):
            put(i + 1, j + 1, rendered[i, j])
    return grid


def distinct_identities(pids: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the first image of up to ``count`` different identities (a P x K batch starts
    with K images of one person; a grid should show several people)."""
    seen: dict[int, int] = {}
    for i, pid in enumerate(pids.tolist()):
        seen.setdefault(pid, i)
    return torch.tensor(list(seen.values())[:count], dtype=torch.long)


@torch.no_grad()
def render_grid(model, sources: torch.Tensor, targets: torch.Tensor,
                target_masks: torch.Tensor | None = None, source_masks: torch.Tensor | None = None) -> torch.Tensor:
    """Every source rendered into every target context: (S, T, 3, H, W) from ``model.render``
    (given the target person masks (T, 1, H, W) and the source person masks (S, 1, H, W) too, for
    a generator that reads them)."""
    s, t = len(sources), len(targets)
    x_s = sources.repeat_interleave(t, 0)
    x_t = targets.repeat(s, 1, 1, 1)
    if target_masks is None and source_masks is None:
        return model.render(x_s, x_t).float().view(s, t, *sources.shape[1:])
    m_t = None if target_masks is None else target_masks.repeat(s, 1, 1, 1)
    if source_masks is None:
        return model.render(x_s, x_t, m_t).float().view(s, t, *sources.shape[1:])
    m_s = source_masks.repeat_interleave(t, 0)
    return model.render(x_s, x_t, m_t, m_s).float().view(s, t, *sources.shape[1:])


class SampleGridCallback(pl.Callback):
    """Every ``every_n_steps`` training batches, render ``num_sources`` source images into
    ``num_contexts`` target contexts and save the grid (source | target | rendered) as
    ``<run folder>/samples/step_XXXXXXX.png``, sent to the W&B / TensorBoard loggers too.

    The images are those of the first training batch (one per identity), kept for the whole run
    so successive grids show the same people and contexts. Works with any module that has ``render(x_s, x_t)``.
    """

    def __init__(self, every_n_steps: int = 200, num_sources: int = 4, num_contexts: int = 4) -> None:
        super().__init__()
        if every_n_steps < 1 or num_sources < 1 or num_contexts < 1:
            raise ConfigError(f"every_n_steps={every_n_steps}, num_sources={num_sources} and "
                              f"num_contexts={num_contexts} must all be >= 1")
        self.every_n_steps, self.num_sources, self.num_contexts = every_n_steps, num_sources, num_contexts
        self.fixed: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None = None
        self.saved: list[Path] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.fixed is None:
            people = distinct_identities(batch[SOURCE][PID], self.num_sources).to(batch[SOURCE][IMAGE].device)
            masks, source_masks = batch[TARGET].get(MASK), batch[SOURCE].get(MASK)
            self.fixed = (batch[SOURCE][IMAGE][people].detach().clone(),
                          batch[TARGET][IMAGE][: self.num_contexts].detach().clone(),
                          None if masks is None else masks[: self.num_contexts].detach().clone(),
                          None if source_masks is None else source_masks[people].detach().clone())
        step = trainer.fit_loop.total_batch_idx  # batches so far (global_step counts every optimiser's steps)
        if step % self.every_n_steps or not trainer.is_global_zero:
            return
        self.save(trainer, pl_module, step)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.fixed is not None:
            self.save(trainer, pl_module, trainer.fit_loop.total_batch_idx + 1)

    def save(self, trainer, pl_module, step: int) -> Path:
        sources, targets, masks, source_masks = (None if x is None else x.to(pl_module.device) for x in self.fixed)
        was_training = pl_module.training
        pl_module.eval()
        try:
            generator = getattr(pl_module, "generator", None)
            needs_masks = getattr(generator, "needs_target_masks", False)
            needs_source_masks = getattr(generator, "needs_source_masks", False)
            rendered = render_grid(pl_module, sources, targets, masks if needs_masks else None,
                                   source_masks if needs_source_masks else None)
        finally:
            pl_module.train(was_training)
        path = atomic_save_image(run_dir(trainer) / "samples" / f"step_{step:07d}.png",
                                 sample_grid(sources.cpu(), targets.cpu(), rendered.cpu()))
        log_image_file(trainer, "samples/grid", path)
        self.saved.append(path)
        return path
