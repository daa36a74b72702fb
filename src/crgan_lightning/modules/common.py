"""Helpers shared by the LightningModules."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


def finite_on_all_ranks(module: pl.LightningModule, loss: torch.Tensor) -> bool:
    """True when ``loss`` is finite on every process (so that all ranks stop together on a NaN;
    a rank raising alone would leave the others waiting in the next all-reduce)."""
    finite = bool(torch.isfinite(loss))
    if module._trainer is None:  # called outside a Trainer (notebooks, unit tests)
        return finite
    return module.trainer.strategy.reduce_boolean_decision(finite, all=True)
