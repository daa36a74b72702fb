"""Helpers shared by the LightningModules."""

from __future__ import annotations

import inspect
import os

import pytorch_lightning as pl
import torch
from torch.nn.parallel import DistributedDataParallel

from ..checkpoints import hyperparameters, read_checkpoint
from ..errors import ConfigError, TrainingDivergedError
from ..networks import network_specs


def attached_trainer(module: pl.LightningModule) -> pl.Trainer | None:
    """The Trainer running ``module``, or None outside one (notebooks, unit tests)."""
    try:
        return module.trainer
    except RuntimeError:  # "... is not attached to a `Trainer`"
        return None


def finite_on_all_ranks(module: pl.LightningModule, loss: torch.Tensor) -> bool:
    """True when ``loss`` is finite on every process (so that all ranks stop together on a NaN;
    a rank raising alone would leave the others waiting in the next all-reduce)."""
    finite = bool(torch.isfinite(loss))
    trainer = attached_trainer(module)
    if trainer is None:
        return finite
    return trainer.strategy.reduce_boolean_decision(finite, all=True)


class ManualGANModule(pl.LightningModule):
    """What the GAN modules (CR-GAN, SPGAN) share: manual optimisation of several networks, each
    step of one optimiser (``_step``, with optional gradient-norm clipping ``hparams.grad_clip``),
    a stop on a non-finite loss on every rank (``_check_finite``), default Adam optimisers that the
    CLI can replace (``_optimizer``, from ``self.factories``), channels-last inputs and DDP with
    ``find_unused_parameters`` (each backward pass reaches one optimiser's networks only).

    Subclasses set ``method`` (the name in messages), ``divergence_hint`` (what to try),
    ``kind`` (its networks in :data:`~crgan_lightning.networks.FLAT_NETWORK_KEYS`) and
    ``self.factories = {key: OptimizerCallable | None, ...}`` in ``__init__``.
    """

    method = "GAN"
    kind = ""
    divergence_hint = "Lower the learning rates or set grad_clip"
    factories: dict

    #: What the CLI gives these modules for ``--trainer.strategy=ddp``.
    ddp_strategy = "ddp_find_unused_parameters_true"

    def on_fit_start(self) -> None:
        model = self.trainer.strategy.model
        if isinstance(model, DistributedDataParallel) and not model.find_unused_parameters:
            raise ConfigError(f"{self.method} under DDP needs find_unused_parameters=True (each optimiser's "
                              f"backward pass reaches only its own networks); use strategy='{self.ddp_strategy}' "
                              "or DDPStrategy(find_unused_parameters=True)")

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None, **kwargs):
        """Lightning's ``load_from_checkpoint``; a checkpoint written before the networks were
        injected, with flat ``g_*`` / ``d_*`` / ... hyper-parameters, gets each network's spec from
        them (:func:`~crgan_lightning.networks.network_specs`). ``kwargs`` still override."""
        legacy = {}
        if hparams_file is None and isinstance(checkpoint_path, (str, os.PathLike)):
            hparams = hyperparameters(read_checkpoint(checkpoint_path, f"{cls.method} checkpoint"))
            legacy = {name: spec for name, spec in network_specs(hparams, cls.kind).items() if name not in hparams}
        return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, **{**legacy, **kwargs})

    def _save_networks(self, **networks: dict) -> None:
        """Keep the injected networks' specs (``name=spec``, :func:`~crgan_lightning.models.specs.network_spec`)
        in the hyper-parameters, and nothing this module's ``__init__`` does not take: the CLI's
        hyper-parameters also hold the DataModule values it links to whichever module it builds."""
        own = set(inspect.signature(type(self).__init__).parameters) | {"_class_path", "_instantiator"}
        for key in set(self.hparams) - own:
            del self.hparams[key]
        self.hparams.update(networks)

    def _refuse_shadowed_learning_rates(self) -> None:
        """An injected optimiser (``g_optimizer`` ...) brings its own settings: a flat learning rate
        (``lr_g`` ...) changed beside it would be silently ignored, so it is refused, naming both."""
        defaults = inspect.signature(type(self).__init__).parameters
        for key, factory in self.factories.items():
            name = f"lr_{key}"
            if factory is None or name not in defaults or self.hparams[name] == defaults[name].default:
                continue
            raise ConfigError(f"{type(self).__name__}: {name}={self.hparams[name]} would be ignored: {key}_optimizer "
                              f"is given and brings its own learning rate; set it as {key}_optimizer's init_args.lr "
                              f"(or drop {key}_optimizer to use Adam with {name})")

    def _optimizer(self, key: str, params, lr: float) -> torch.optim.Optimizer:
        """The optimiser injected for ``key`` (``g_optimizer`` ...), else Adam(lr, hparams.betas)."""
        factory = self.factories[key]
        if factory is not None:
            return factory(params)
        return torch.optim.Adam(params, lr=lr, betas=tuple(self.hparams.betas))

    def _schedulers(self, optimizers: dict[str, torch.optim.Optimizer]) -> list:
        """The schedulers injected as ``<key>_sched`` for the given optimisers (none by default)."""
        return [self.factories[f"{k}_sched"](o) for k, o in optimizers.items()
                if self.factories.get(f"{k}_sched") is not None]

    def _cl(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def _step(self, optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.hparams.grad_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm")
        optimizer.step()

    def _check_finite(self, name: str, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        if not finite_on_all_ranks(self, loss):
            detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
            raise TrainingDivergedError(
                f"{self.method} {name} loss is {float(loss.detach())} on some process at step {self.global_step} "
                f"({detail}); training stopped before the {name} update, the last checkpoint is the last good one. "
                f"{self.divergence_hint}"
            )


def save_random_states() -> dict:
    """The global random states of torch (CPU), numpy and Python, for a checkpoint (tensors and
    plain Python values only, so ``torch.load(weights_only=True)`` reads them)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def restore_random_states(states: dict) -> None:
    """Restore what :func:`save_random_states` returned."""
    import random

    import numpy as np

    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(states["python"])
