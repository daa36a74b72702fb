"""Stream rendered images into re-id training batches."""

from __future__ import annotations

import logging
import os

import pytorch_lightning as pl
import torch

from ..data.keys import CAMID, IMAGE, MASK, PID, SOURCE, SYNTHETIC, TARGET
from ..errors import ConfigError
from ..translators import Translator, load_translator, translator_fingerprint

log = logging.getLogger(__name__)


def drop_rows(part: dict, rows: torch.Tensor) -> dict:
    """``part`` (a dict of per-image tensors and lists of one batch) without the images at ``rows``."""
    n = len(part[IMAGE])
    keep = torch.ones(n, dtype=torch.bool)
    keep[rows.cpu()] = False
    kept = keep.nonzero().flatten().tolist()
    out = {}
    for key, value in part.items():
        if torch.is_tensor(value) and value.dim() > 0 and len(value) == n:
            out[key] = value[keep.to(value.device)]
        elif isinstance(value, (list, tuple)) and len(value) == n:
            out[key] = type(value)(value[i] for i in kept)
        else:
            out[key] = value
    return out


class ContextRenderingCallback(pl.Callback):
    """Adds ``batch["synthetic"] = {"image", "pid", "camid"}`` to every training batch: source
    images rendered by a frozen translator (the CR-GAN generator, SPGAN or cut-and-paste, see
    :mod:`crgan_lightning.translators`) with target images of the same batch as contexts,
    labelled with the source identity and the target camera.

    Before each ``training_step``, about ``ratio * B`` source images of the batch are each paired
    with ``contexts_per_image`` target images drawn at random from ``batch["target"]`` and
    rendered under ``torch.no_grad()``; no gradient reaches the translator, which is not part
    of the trained module or its checkpoint. The images are chosen by whole identities (a random
    ``round(ratio * P)`` of the P identities of a P x K batch, at least one), so the synthetic
    part keeps the P x K structure and the triplet loss applies to it too. ``ratio`` trades
    renderings against time: each rendered image costs a generator pass plus, by default, one
    more image in the re-id forward and backward pass.

    With ``replace_source=True`` the chosen identities' source images leave the batch instead:
    the re-id step trains on as many images as without streaming (the same re-id compute as
    direct transfer, so streaming costs only the rendering), and in each step a source
    identity is seen either as itself or rendered into target contexts.

    Under DDP every rank loads the translator on its own device and renders its own shard of
    the batch; the draws are seeded by ``seed``, the rank and the batch index, so a run is
    reproducible.

    Args:
        translator: a CR-GAN checkpoint (``last.ckpt`` of ``make train-crgan``), an SPGAN
            checkpoint (``make train-spgan``), both read with ``torch.load(weights_only=True)``,
            or ``cut_and_paste`` (needs the source masks: DataModule ``masks`` not ``none``).
        ratio: fraction of each source batch that is rendered (0 < ratio <= 1).
        contexts_per_image: target contexts per chosen source image.
        seed: base seed of the random pairing.
        replace_source: drop the rendered identities' source images from ``batch["source"]``
            (needs ``ratio < 1``, so that source images remain).
    """

    def __init__(self, translator: str, ratio: float = 1.0, contexts_per_image: int = 1, seed: int = 0,
                 replace_source: bool = False) -> None:
        super().__init__()
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"ratio={ratio}; expected a fraction in (0, 1]")
        if contexts_per_image < 1:
            raise ConfigError(f"contexts_per_image={contexts_per_image}; expected >= 1")
        if replace_source and ratio >= 1.0:
            raise ConfigError(f"replace_source=true with ratio={ratio} would leave no source image in the batch; "
                              "use a ratio below 1")
        self.translator = os.fspath(translator)
        self.ratio, self.contexts_per_image, self.seed = ratio, contexts_per_image, seed
        self.replace_source = replace_source
        self.model: Translator | None = None
        self.fingerprint: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.model is None:
            self.model = load_translator(self.translator, map_location=pl_module.device)
            self.fingerprint = translator_fingerprint(self.model)
            log.info("rendering source images with %s (%s)", self.translator, self.model.kind)

    def state_dict(self) -> dict:
        """Which translator rendered this run (saved in the re-id checkpoint)."""
        return {"translator": self.translator, "fingerprint": self.fingerprint}

    def load_state_dict(self, state_dict: dict) -> None:
        """On resume: refuse to continue with another translator than the one the run started with."""
        used = state_dict.get("fingerprint")
        if used and self.fingerprint and used != self.fingerprint:
            raise ConfigError(
                f"this re-id run was trained with the translator {state_dict.get('translator')}, "
                f"but {self.translator} is another one now; point translator at the original"
            )

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.model is not None:
            self.model.to(pl_module.device)  # the module is on its device by now

    def choose(self, pids: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sorted indices of the source images to render: every image of ``round(ratio * P)``
        identities drawn at random among the P identities of the batch (at least one)."""
        if self.ratio >= 1.0:
            return torch.arange(len(pids))
        identities = pids.unique()
        keep = max(1, round(self.ratio * len(identities)))
        picked = identities[torch.randperm(len(identities), generator=generator)[:keep]]
        return torch.isin(pids, picked).nonzero().flatten()

    @torch.no_grad()
    def render(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The synthetic part for one batch (see the class docstring); with ``replace_source``
        it also removes the rendered source images from ``batch["source"]``."""
        if TARGET not in batch:
            raise ConfigError("ContextRenderingCallback needs target images in the batch: set data.with_target=true")
        src, tgt = batch[SOURCE], batch[TARGET]
        if self.model.needs_masks and MASK not in src:
            raise ConfigError(f"the {self.model.kind} translator needs source person masks: "
                              "set data.masks=auto (or folder/prior) instead of none")
        bt = len(tgt[IMAGE])
        device = src[IMAGE].device
        chosen = self.choose(src[PID].cpu(), generator).repeat_interleave(self.contexts_per_image)
        contexts = torch.randint(bt, (len(chosen),), generator=generator)
        chosen, contexts = chosen.to(device), contexts.to(device)
        dtype = self.model.dtype or src[IMAGE].dtype  # batches may arrive in half precision (16-true)
        masks = [part[MASK][idx].to(dtype) if MASK in part else None for part, idx in ((src, chosen), (tgt, contexts))]
        images = self.model.render(src[IMAGE][chosen].to(dtype), tgt[IMAGE][contexts].to(dtype), *masks)
        synthetic = {IMAGE: images.to(src[IMAGE].dtype), PID: src[PID][chosen], CAMID: tgt[CAMID][contexts]}
        if self.replace_source:
            batch[SOURCE] = drop_rows(src, chosen.unique())
        return synthetic

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        step = trainer.fit_loop.total_batch_idx
        generator = torch.Generator().manual_seed(hash((self.seed, trainer.global_rank, step)) % (2**63))
        batch[SYNTHETIC] = self.render(batch, generator)
