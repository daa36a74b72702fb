"""Learning-rate schedules of the re-id modules, as ``torch.optim.lr_scheduler`` classes.

A re-id module takes its scheduler as an injected factory, like its optimiser (in a config a
``class_path`` object under ``model.init_args.scheduler``), so any torch scheduler works; these
two are the library's recipes:

* :class:`WarmupMultiStepLR` (per epoch): linear warm-up, then a step decay at milestone epochs;
  the standard ResNet-50 re-id recipe and :class:`~crgan_lightning.modules.reid.ReIDModule`'s
  default;
* :class:`WarmupCosineLR` (per optimiser step): linear warm-up, then a cosine decay to a floor at
  the run's last step; for short schedules trained from scratch (the embedded benchmark's).

A scheduler says how often it steps with its ``interval`` attribute (``"epoch"`` when it has
none, as torch's own); a scheduler with ``total_iters=None`` is given the run's number of
optimiser steps by the module (:func:`fit_to_run`). Their settings come from the config, also when
a run resumes: the state kept in a checkpoint is the step count only.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR

from .errors import ConfigError


def warmup_multistep(warmup_epochs: int, milestones: Sequence[int], gamma: float,
                     warmup_factor: float) -> Callable[[int], float]:
    """Learning-rate factor per epoch: linear warm-up from ``warmup_factor`` to 1 over
    ``warmup_epochs``, then multiplied by ``gamma`` at each milestone epoch."""
    milestones = list(milestones)

    def factor(epoch: int) -> float:
        scale = gamma ** sum(epoch >= m for m in milestones)
        if epoch < warmup_epochs:
            alpha = epoch / warmup_epochs
            return scale * (warmup_factor * (1 - alpha) + alpha)
        return scale

    return factor


def warmup_cosine(warmup_iters: int, total_iters: int, warmup_factor: float,
                  min_factor: float) -> Callable[[int], float]:
    """Learning-rate factor per iteration: linear warm-up from ``warmup_factor`` to 1 over
    ``warmup_iters`` iterations, then a cosine decay to ``min_factor`` at ``total_iters``."""

    def factor(step: int) -> float:
        if step < warmup_iters:
            alpha = step / warmup_iters
            return warmup_factor * (1 - alpha) + alpha
        progress = min(1.0, (step - warmup_iters) / max(1, total_iters - warmup_iters))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class _SettingsFromConfig(LambdaLR):
    """A ``LambdaLR`` whose settings (``_settings``, attributes) are left out of its state: a resumed
    run takes them from its config, and the checkpoint restores the step count only."""

    _settings: tuple[str, ...] = ()

    def state_dict(self) -> dict:
        state = super().state_dict()
        for name in self._settings:
            state.pop(name, None)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict({k: v for k, v in state_dict.items() if k not in self._settings})


class WarmupMultiStepLR(_SettingsFromConfig):
    """Per epoch: the learning rate rises linearly from ``warmup_factor`` times the optimiser's rate
    to that rate over ``warmup_epochs``, then is multiplied by ``gamma`` at each of ``milestones``
    (:func:`warmup_multistep`).

    Args:
        optimizer: the optimiser whose rates it sets.
        warmup_epochs: epochs of linear warm-up (0: none).
        milestones: epochs at which the rate is multiplied by ``gamma``.
        gamma: the decay factor at each milestone.
        warmup_factor: the fraction of the rate the warm-up starts from.
    """

    interval = "epoch"
    _settings = ("warmup_epochs", "milestones", "gamma", "warmup_factor")

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_epochs: int = 10,
                 milestones: Sequence[int] = (40, 70), gamma: float = 0.1, warmup_factor: float = 0.01,
                 last_epoch: int = -1) -> None:
        if warmup_epochs < 0 or gamma <= 0 or warmup_factor < 0:
            raise ConfigError(f"WarmupMultiStepLR warmup_epochs={warmup_epochs}, gamma={gamma}, "
                              f"warmup_factor={warmup_factor}; expected warmup_epochs >= 0, gamma > 0, "
                              "warmup_factor >= 0")
        self.warmup_epochs, self.milestones = warmup_epochs, list(milestones)
        self.gamma, self.warmup_factor = gamma, warmup_factor
        super().__init__(optimizer, warmup_multistep(warmup_epochs, self.milestones, gamma, warmup_factor),
                         last_epoch)


class WarmupCosineLR(_SettingsFromConfig):
    """Per optimiser step: the learning rate rises linearly from ``warmup_factor`` times the
    optimiser's rate to that rate over ``warmup_iters`` steps, then follows a cosine down to
    ``min_factor`` times it at step ``total_iters`` (:func:`warmup_cosine`). Suits short schedules
    trained from scratch, where a per-epoch warm-up would take a large share of all updates.

    Args:
        optimizer: the optimiser whose rates it sets.
        warmup_iters: steps of linear warm-up (0: none).
        warmup_factor: the fraction of the rate the warm-up starts from.
        min_factor: the fraction of the rate at the last step.
        total_iters: the step at which the decay ends; None: the run's number of optimiser steps,
            set by the module that trains (:func:`fit_to_run`).
    """

    interval = "step"
    _settings = ("warmup_iters", "warmup_factor", "min_factor", "total_iters")

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_iters: int = 0, warmup_factor: float = 0.01,
                 min_factor: float = 0.01, total_iters: int | None = None, last_epoch: int = -1) -> None:
        if warmup_iters < 0 or warmup_factor < 0 or min_factor < 0 or (total_iters is not None and total_iters < 1):
            raise ConfigError(f"WarmupCosineLR warmup_iters={warmup_iters}, warmup_factor={warmup_factor}, "
                              f"min_factor={min_factor}, total_iters={total_iters}; expected values >= 0 "
                              "(total_iters >= 1, or null for the run's length)")
        self.warmup_iters, self.warmup_factor, self.min_factor = warmup_iters, warmup_factor, min_factor
        self.total_iters = total_iters
        super().__init__(optimizer, lambda step: self._factor(step), last_epoch)  # a function: not in the state

    def _factor(self, step: int) -> float:
        if self.total_iters is None and step > self.warmup_iters:
            raise ConfigError("WarmupCosineLR total_iters is not set; expected the number of optimiser steps "
                              "(a re-id module sets it from its Trainer)")
        return warmup_cosine(self.warmup_iters, self.total_iters or 0, self.warmup_factor, self.min_factor)(step)


def fit_to_run(scheduler, trainer) -> dict:
    """Lightning's ``lr_scheduler`` entry for ``scheduler``: stepped at its ``interval`` (``"epoch"``
    by default); one with ``total_iters=None`` (:class:`WarmupCosineLR`) first gets the run's number
    of optimiser steps, ``trainer.estimated_stepping_batches``."""
    if getattr(scheduler, "total_iters", 0) is None:
        if trainer is None:
            raise ConfigError(f"{type(scheduler).__name__} total_iters is null and no Trainer runs the module; "
                              "expected total_iters set, or the module fitted by a Trainer")
        scheduler.total_iters = int(trainer.estimated_stepping_batches)
    return {"scheduler": scheduler, "interval": getattr(scheduler, "interval", "epoch")}
