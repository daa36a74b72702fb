"""Stream rendered images into re-id training batches."""

from __future__ import annotations

import copy
import logging
import os

import pytorch_lightning as pl
import torch

from ..data.datamodule import ReIDImageDataset
from ..data.masks import build_mask_provider
from ..data.keys import CAMID, IMAGE, MASK, PID, SOURCE, SYNTHETIC, TARGET
from ..errors import ConfigError
from ..translators import Translator, load_translator, translator_fingerprint

log = logging.getLogger(__name__)


#: Where the rendering callback draws target contexts from.
CONTEXT_SOURCES = ("batch", "dataset")
#: The value of a zero (black) pixel in the [-1, 1] images of the DataModule.
BLACK = -1.0


def pad_and_crop(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of (B, C, H, W) zero-padded by ``pad`` pixels on every side and cropped back to
    H x W at an offset drawn from ``generator``: the DataModule's pad-and-crop augmentation
    (black padding), on tensors."""
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), value=BLACK)
    offsets = torch.randint(2 * pad + 1, (b, 2), generator=generator).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


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

    Three options make streaming teach invariance (each off by default, the behaviour above):

    * ``within_identity``: instead of whole identities, ``round(ratio * K)`` of each identity's
      K images are rendered (K/2 at ratio 0.5), so every identity of the batch appears both in its
      source context and in target contexts; with the re-id module's ``joint_triplet`` one triplet
      loss runs over source and rendered images together and asks for exactly that invariance.
    * ``contexts_from="dataset"``: contexts are drawn at random from the whole target training
      set (read with the DataModule's training transform), not only from the target images of the
      batch; the DataModule then needs no target loader (``with_target: false``).
    * ``pad``: the re-id augmentation's zero-padding and random crop, applied here to every
      training image (source and rendered) after rendering, with ``data.pad: 0``: the generator
      then gets its inputs prepared as in its own training (``pad: 0``), not padded and shifted
      crops, and re-id sees the same augmentation as direct transfer with ``data.pad: pad``.
      With ``pad_target``, the batch's target images get it too: the stages that train on them
      (the clustering hybrid) see them augmented as in the clustering stage alone.

    Under DDP every rank loads the translator on its own device and renders its own shard of
    the batch; the draws are seeded by ``seed``, the rank and the batch index, so a run is
    reproducible.

    Args:
        translator: a CR-GAN checkpoint (``last.ckpt`` of ``make train-crgan``), an SPGAN
            checkpoint (``make train-spgan``), both read with ``torch.load(weights_only=True)``,
            ``cut_and_paste`` (needs the source masks: DataModule ``masks`` not ``none``) or
            ``cut_and_fill`` (the target masks too).
        ratio: fraction of each source batch that is rendered (0 < ratio <= 1).
        contexts_per_image: target contexts per chosen source image.
        seed: base seed of the random pairing.
        replace_source: drop the rendered identities' source images from ``batch["source"]``
            (needs ``ratio < 1``, so that source images remain).
        within_identity: render a ``ratio`` of each identity's images instead of a ``ratio`` of the
            identities.
        contexts_from: ``"batch"`` (the batch's target images) or ``"dataset"`` (the whole target
            training set).
        pad: zero-padding of the random crop applied after rendering to every training image (0: none).
        pad_target: also pad-and-crop ``batch["target"]``'s images (for modules that train on them).
    """

    def __init__(self, translator: str, ratio: float = 1.0, contexts_per_image: int = 1, seed: int = 0,
                 replace_source: bool = False, within_identity: bool = False, contexts_from: str = "batch",
                 pad: int = 0, pad_target: bool = False) -> None:
        super().__init__()
        if not 0.0 < ratio <= 1.0:
            raise ConfigError(f"ratio={ratio}; expected a fraction in (0, 1]")
        if contexts_per_image < 1:
            raise ConfigError(f"contexts_per_image={contexts_per_image}; expected >= 1")
        if replace_source and ratio >= 1.0:
            raise ConfigError(f"replace_source=true with ratio={ratio} would leave no source image in the batch; "
                              "use a ratio below 1")
        if contexts_from not in CONTEXT_SOURCES:
            raise ConfigError(f"contexts_from={contexts_from!r}; expected one of {', '.join(CONTEXT_SOURCES)}")
        if pad < 0:
            raise ConfigError(f"pad={pad}; expected >= 0 pixels")
        self.within_identity, self.contexts_from, self.pad = within_identity, contexts_from, pad
        self.pad_target = pad_target
        self.contexts: ReIDImageDataset | None = None
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
        if stage == "fit" and self.contexts_from == "dataset" and self.contexts is None:
            dm = trainer.datamodule
            if dm is None:
                raise ConfigError("contexts_from='dataset' draws contexts from the DataModule's target training "
                                  "set; fit with a CrossDomainDataModule")
            masks = None
            if self.model.needs_target_masks:  # a generator that blanks out the context's own person
                masks = build_mask_provider(dm.masks if dm.masks != "none" else "auto", dm.target_dataset)
            # a pipeline of its own, seeded from the step's generator in render(): the DataModule's is
            # seeded only inside loader workers, and this one runs in the training process
            self.contexts = ReIDImageDataset(dm.target_dataset.train, copy.deepcopy(dm.train_transform),
                                             mask_provider=masks, with_pid=False)

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
        identities drawn at random among the P identities of the batch (at least one); with
        ``within_identity``, ``round(ratio * K)`` images drawn at random among the K of every
        identity (at least one, and one fewer than K when ``replace_source``, so each identity
        keeps a source image)."""
        if self.ratio >= 1.0:
            return torch.arange(len(pids))
        identities = pids.unique()
        if self.within_identity:
            picked = []
            for pid in identities:
                rows = (pids == pid).nonzero().flatten()
                keep = max(1, round(self.ratio * len(rows)))
                if self.replace_source:
                    keep = min(keep, len(rows) - 1)
                picked.append(rows[torch.randperm(len(rows), generator=generator)[:keep]])
            return torch.cat(picked).sort().values
        keep = max(1, round(self.ratio * len(identities)))
        picked = identities[torch.randperm(len(identities), generator=generator)[:keep]]
        return torch.isin(pids, picked).nonzero().flatten()

    @torch.no_grad()
    def render(self, batch: dict, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The synthetic part for one batch (see the class docstring); with ``replace_source``
        it also removes the rendered source images from ``batch["source"]``."""
        src = batch[SOURCE]
        if self.model.needs_masks and MASK not in src:
            raise ConfigError(f"the {self.model.kind} translator needs source person masks: "
                              "set data.masks=auto (or folder/prior) instead of none")
        device = src[IMAGE].device
        chosen = self.choose(src[PID].cpu(), generator).repeat_interleave(self.contexts_per_image)
        if len(chosen) == 0:
            raise ConfigError("within_identity with replace_source keeps one source image of each identity, and "
                              "this batch has one image per identity: set data.num_instances >= 2")
        if self.contexts_from == "dataset":
            drawn = torch.randint(len(self.contexts), (len(chosen),), generator=generator).tolist()
            self.contexts.transform.set_random_seed(int(torch.randint(2**31 - 1, (), generator=generator)))
            items = [self.contexts[i] for i in drawn]
            tgt = {IMAGE: torch.stack([item[IMAGE] for item in items]).to(device),
                   CAMID: torch.tensor([item[CAMID] for item in items], device=device)}
            if MASK in items[0]:
                tgt[MASK] = torch.stack([item[MASK] for item in items]).to(device)
            contexts = torch.arange(len(chosen))
        else:
            if TARGET not in batch:
                raise ConfigError("ContextRenderingCallback needs target images in the batch: set "
                                  "data.with_target=true (or contexts_from='dataset')")
            tgt = batch[TARGET]
            if self.model.needs_target_masks and MASK not in tgt:
                raise ConfigError(f"the {self.model.kind} translator removes the context's own person and needs "
                                  "the target masks: set data.masks=auto (or folder/prior) instead of none")
            contexts = torch.randint(len(tgt[IMAGE]), (len(chosen),), generator=generator)
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
        if self.pad > 0:
            parts = [batch[SOURCE], batch[SYNTHETIC]] + ([batch[TARGET]] if self.pad_target and TARGET in batch else [])
            for part in parts:
                part[IMAGE] = pad_and_crop(part[IMAGE], self.pad, generator)
