"""Stream CR-GAN renderings into re-id training batches."""

from __future__ import annotations

import logging
import os

import pytorch_lightning as pl
import torch

from ..data.keys import CAMID, IMAGE, PID, SOURCE, SYNTHETIC, TARGET
from ..errors import ConfigError
from ..fileio import file_sha256
from ..models.generator import load_generator

log = logging.getLogger(__name__)


class ContextRenderingCallback(pl.Callback):
    """Adds ``batch["synthetic"] = {"image", "pid", "camid"}`` to every training batch: source
    images rendered by a frozen CR-GAN generator into the contexts of target images of the
    same batch, labelled with the source identity and the target camera.

    Before each ``training_step``, ``round(ratio * B)`` source images of the batch (chosen at
    random) are each paired with ``contexts_per_image`` target images drawn at random from
    ``batch["target"]`` and rendered with ``G(x_s, x_t)`` under ``torch.no_grad()``; no gradient
    reaches the generator, which is not part of the trained module or its checkpoint. With
    ``ratio=1`` and one context per image the synthetic part keeps the P x K identity structure
    of the source batch, so the triplet loss applies to it too.

    Under DDP every rank loads the generator on its own device and renders its own shard of
    the batch; the draws are seeded by ``seed``, the rank and the batch index, so a run is
    reproducible.

    Args:
        crgan_checkpoint: a CR-GAN checkpoint (``last.ckpt`` of ``make train-crgan``); read with
            ``torch.load(weights_only=True)``.
        ratio: fraction of each source batch that is rendered (0 < ratio <= 1).
        contexts_per_image: target contexts per chosen source image.
        seed: base seed of the random pairing.
    """

    def __init__(self, crgan_checkpoint: str, ratio: float = 1.0, contexts_per_image: int = 1, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"ratio={ratio}; expected a fraction in (0, 1]")
        if contexts_per_image < 1:
            raise ConfigError(f"contexts_per_image={contexts_per_image}; expected >= 1")
        self.crgan_checkpoint = os.fspath(crgan_checkpoint)
        self.ratio, self.contexts_per_image, self.seed = ratio, contexts_per_image, seed
        self.generator: torch.nn.Module | None = None
        self.checkpoint_sha256: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.generator is None:
            self.generator = load_generator(self.crgan_checkpoint, map_location=pl_module.device)
            self.checkpoint_sha256 = file_sha256(self.crgan_checkpoint)
            log.info("rendering source images with the generator of %s", self.crgan_checkpoint)

    def state_dict(self) -> dict:
        """Which generator rendered this run (saved in the re-id checkpoint)."""
        return {"crgan_checkpoint": self.crgan_checkpoint, "checkpoint_sha256": self.checkpoint_sha256}

    def load_state_dict(self, state_dict: dict) -> None:
        """On resume: refuse to continue with another generator than the one the run started with."""
        used = state_dict.get("checkpoint_sha256")
        if used and self.checkpoint_sha256 and used != self.checkpoint_sha256:
            raise ConfigError(
                f"this re-id run was trained with the generator of {state_dict.get('crgan_checkpoint')}, "
                f"but {self.crgan_checkpoint} now holds another one; point crgan_checkpoint at the original file"
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.generator is not None:
            self.generator.to(pl_module.device)  # the module is on its device by now

    @torch.no_grad()
    def render(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The synthetic part for one batch (see the class docstring)."""
        if TARGET not in batch:
            raise ConfigError("ContextRenderingCallback needs target images in the batch: set data.with_target=true")
        src, tgt = batch[SOURCE], batch[TARGET]
        b, bt = len(src[IMAGE]), len(tgt[IMAGE])
        n = max(1, round(self.ratio * b))
        device = src[IMAGE].device
        chosen = torch.randperm(b, generator=generator)[:n].sort().values.repeat_interleave(self.contexts_per_image)
        contexts = torch.randint(bt, (len(chosen),), generator=generator)
        chosen, contexts = chosen.to(device), contexts.to(device)
        dtype = next(self.generator.parameters()).dtype  # batches may arrive in half precision (16-true)
        images = self.generator(src[IMAGE][chosen].to(dtype), tgt[IMAGE][contexts].to(dtype))
        return {IMAGE: images.to(src[IMAGE].dtype), PID: src[PID][chosen], CAMID: tgt[CAMID][contexts]}

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        step = trainer.fit_loop.total_batch_idx
        generator = torch.Generator().manual_seed(hash((self.seed, trainer.global_rank, step)) % (2**63))
        batch[SYNTHETIC] = self.render(batch, generator)
