"""TAUDLModule: the re-id module with TAUDL's unsupervised target part switched on.

TAUDL ("Unsupervised Person Re-identification by Deep Learning Tracklet Association", Li, Zhu
and Gong, ECCV 2018) learns on an unlabelled target domain from *within-camera tracklets*: each
target camera's video gives short tracks of one person, so the images of a tracklet are known to
show one person, but nothing links tracklets across cameras (no cross-camera identity label, the
expensive part of re-id annotation). Two losses use that:

* per-camera tracklet discrimination (PCTD): inside each camera, a classifier branch of its own
  tells that camera's tracklets apart (the tracklets of one camera are taken to be different
  people);
* cross-camera tracklet association (CCTA): each image is drawn towards its most similar
  tracklets of *other* cameras and pushed from the rest, so that one person's tracklets of
  several cameras come together in the shared feature space without ever being told so.

On image benchmarks the tracklets are emulated as in the official code: the images of one person
under one camera of the training split form one tracklet (:mod:`crgan_lightning.data.tracklets`;
the identities group images inside a camera and are never read across cameras).

This module adds that part to :class:`~crgan_lightning.modules.reid.ReIDModule`; see
:class:`TAUDLModule` for the combinations (TAUDL alone, and the hybrids with CR-GAN or SPGAN
renderings) and for where it departs from the paper.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.keys import CAMERA_TRACKLET, CAMID, IMAGE, PID, SYNTHETIC, TARGET, TRACKLET
from ..errors import ConfigError
from ..losses import CrossCameraAssociationLoss, per_camera_tracklet_loss
from .reid import ReIDModule
from .common import attached_trainer

log = logging.getLogger(__name__)

#: Which feature of the network the CCTA memory holds (see :class:`TAUDLModule`).
CCTA_FEATURES = ("neck", "pooled")


class SourceLabelsOnly(Dataset):
    """The source training items of a ``ReIDImageDataset`` without their images: ``{"pid",
    "camid"}``. TAUDL alone (``source_weight=0``) puts it in place of the DataModule's source
    training set, so that the source loader still sets the epoch's length (the target tracklet
    loader is cut to it) but no source image is read or augmented."""

    def __init__(self, dataset) -> None:
        self.samples = list(dataset.samples)
        self.labels = None if dataset.labels is None else list(dataset.labels)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, int]:
        sample = self.samples[index]
        return {PID: sample.pid if self.labels is None else self.labels[index], CAMID: sample.camid}


def read_source_labels_only(trainer, method: str) -> None:
    """For a target-only method (``source_weight: 0``): refuse a rendering callback (it would render
    source images nobody trains on) and make the DataModule read the source's labels only
    (:class:`SourceLabelsOnly`), no source image. ``method`` names the method in the message."""
    rendering = [type(cb).__name__ for cb in trainer.callbacks if hasattr(cb, "render") and hasattr(cb, "translator")]
    if rendering:
        raise ConfigError(f"source_weight=0 ({method}) uses no source image, but {rendering[0]} renders source "
                          "images; expected source_weight > 0 or no rendering callback")
    dm = trainer.datamodule
    train = getattr(dm, "source_train", None)
    if train is not None and not isinstance(train, SourceLabelsOnly) and hasattr(train, "samples"):
        dm.source_train = SourceLabelsOnly(train)


class TAUDLModule(ReIDModule):
    """Re-id on source labels (optional) plus TAUDL on the target's within-camera tracklets.

    What TAUDL assumes: the target training images come in tracklets, each of one person under
    one camera, with ids that say which images of a camera belong together and nothing across
    cameras; no target identity label is used. The DataModule gives this with
    ``data.target_tracklets: true`` (and ``data.with_target: true``): target batches are then
    P x K tracklet batches with ``"tracklet"`` (global id), ``"camera_tracklet"`` (id inside the
    camera) and ``"camid"``. Fitting without it raises :class:`~crgan_lightning.errors.ConfigError`.

    Per training step, in ONE forward pass of the shared network over all the step's images:

    * the labelled part exactly as :class:`ReIDModule` (source labels, plus ``batch["synthetic"]``
      when a :class:`~crgan_lightning.callbacks.rendering.ContextRenderingCallback` streams
      renderings: a CR-GAN checkpoint gives the CR-GAN+TAUDL row, an SPGAN checkpoint the
      SPGAN+TAUDL row), times ``source_weight``;
    * the target part on ``batch["target"]["image"]``: ``taudl_weight * ((1 - taudl_lambda) * PCTD
      + taudl_lambda * r * CCTA)`` with TAUDL's lambda = 0.7 (official code) and ``r`` the CCTA
      ramp (0 before ``ccta_start_epoch``, then linear to 1 over ``ccta_ramp_epochs``, counted
      per step). The CCTA memory is updated at every step, ramp or not, so that it is full when
      CCTA counts.

    The schedule (:meth:`ccta_ramp`): the first ``ccta_start_epoch`` epochs are a PCTD-only
    warm-up, in which CCTA is not computed at all (it adds exactly 0 and is logged as 0). CCTA draws
    each image towards the cross-camera tracklets nearest to it; from a network that has not
    learnt anything yet (training from scratch, no ImageNet weights) those neighbours are chance
    ones, and CCTA from the first step holds the features at chance. PCTD alone does learn from
    scratch, so a warm-up lets the features see people before CCTA picks neighbours with them.
    The official recipe has no warm-up: it starts from ImageNet weights (set ``ccta_start_epoch:
    0`` and ``ccta_ramp_epochs: 0`` for it). The position in the schedule is a function of the
    epoch and of the batch index inside it, which a resumed run restores, so a resume continues
    the schedule where it stopped.

    ``source_weight: 0`` is TAUDL alone (the paper's own row): no source label is used, the
    source classifier is frozen (kept in the network and the checkpoint, untrained, so that
    :func:`~crgan_lightning.networks.load_reid_net` reads the checkpoint as any re-id one) and no
    source loss is added. The DataModule always pairs a source loader with the target loader (its
    length sets the epoch's); this module then replaces the DataModule's source training set by
    :class:`SourceLabelsOnly` when fitting, so no source image is read. A rendering callback needs
    source images and is refused with ``source_weight: 0``.

    Design choices (documented departures from the paper):

    * One backbone and BNNeck for both domains, one forward pass per step over source, rendered
      and target images (their BatchNorm statistics are those of the mixed batch). TAUDL trains
      the target alone; the hybrid rows are this library's combinations.
    * PCTD takes the BN-neck feature (as the source identity classifier does), through one
      bias-free linear branch per target camera, initialised as the source classifier
      (normal, std 0.001). Label smoothing ``pctd_label_smooth`` (0 in the paper). The loss is the
      mean over the batch's images (the official code sums per-camera means).
    * CCTA runs against a memory of one L2-normalised feature per target tracklet (UTAL's memory,
      TPAMI 2019, instead of TAUDL's in-batch tracklet means), holding ``ccta_feature``:
      ``"neck"`` (default: the BN-neck feature, the one evaluated with ``test_pooling`` equal to the
      training pooling and cosine distance) or ``"pooled"`` (the pooled feature before the neck,
      the triplet loss's). Features are L2-normalised inside the loss and the memory; a cosine
      similarity over ``ccta_temperature`` plays the paper's Gaussian kernel. The memory starts
      empty, CCTA is 0 until tracklets of other cameras are filled, hence the default ramp over
      the first epoch. See :class:`~crgan_lightning.losses.CrossCameraAssociationLoss`.
    * Random erasing (``batch_erasing_p``) applies to the target images as to the others.

    The per-camera branches and the memory are sized from the DataModule's
    ``num_target_tracklets_per_camera`` in :meth:`setup` (before the optimiser is built and before
    a checkpoint is restored), or from the checkpoint's own weights when one is loaded without such
    a DataModule (``load_from_checkpoint``, testing). The memory's buffers are part of the
    checkpoint: a resumed run continues with the same memory. Under DDP the memory update gathers
    every rank's batch, so the memory stays equal on all ranks.

    Args:
        taudl_weight: weight of the whole target term (> 0).
        taudl_lambda: lambda in ``(1 - lambda) * PCTD + lambda * CCTA``, in [0, 1] (0.7 in TAUDL).
        source_weight: weight of the labelled (source + rendered) part; 0: TAUDL alone.
        ccta_start_epoch: length of the PCTD-only warm-up in epochs (may be fractional): before
            it CCTA has weight 0 and is not computed.
        ccta_ramp_epochs: epochs over which the CCTA weight then rises linearly from 0 to 1, step
            by step (0: CCTA at full weight from ``ccta_start_epoch`` on).
        ccta_neighbours: K, the cross-camera memory tracklets each image is drawn to (None:
            cameras // 2, the official code's).
        ccta_temperature: temperature of the cosine similarities (> 0).
        memory_momentum: weight of the old memory entry in its moving average, in [0, 1).
        ccta_feature: ``"neck"`` or ``"pooled"`` (see above).
        pctd_label_smooth: label smoothing of PCTD, in [0, 1).
        **kwargs: every :class:`ReIDModule` argument: the injected ``net``, ``optimizer`` and
            ``scheduler`` (optimising the network and the target heads together), the source loss and
            the evaluation. A config sets them as for :class:`ReIDModule` (``base/taudl.yaml`` adds only
            TAUDL's own).
    """

    def __init__(
        self,
        taudl_weight: float = 1.0,
        taudl_lambda: float = 0.7,
        source_weight: float = 1.0,
        ccta_start_epoch: float = 0.0,
        ccta_ramp_epochs: float = 1.0,
        ccta_neighbours: int | None = None,
        ccta_temperature: float = 0.1,
        memory_momentum: float = 0.5,
        ccta_feature: str = "neck",
        pctd_label_smooth: float = 0.0,
        **kwargs,
    ) -> None:
        if not taudl_weight > 0:
            raise ConfigError(f"taudl_weight={taudl_weight}; expected > 0 (for source labels alone use ReIDModule)")
        if not 0.0 <= taudl_lambda <= 1.0:
            raise ConfigError(f"taudl_lambda={taudl_lambda}; expected a weight in [0, 1] (0.7 in TAUDL)")
        if not source_weight >= 0:
            raise ConfigError(f"source_weight={source_weight}; expected >= 0 (0: TAUDL alone)")
        if not (ccta_start_epoch >= 0 and ccta_ramp_epochs >= 0):
            raise ConfigError(f"ccta_start_epoch={ccta_start_epoch}, ccta_ramp_epochs={ccta_ramp_epochs}; "
                              "expected epochs >= 0")
        if ccta_neighbours is not None and ccta_neighbours < 1:
            raise ConfigError(f"ccta_neighbours={ccta_neighbours}; expected >= 1 (or null for cameras // 2)")
        if not ccta_temperature > 0:
            raise ConfigError(f"ccta_temperature={ccta_temperature}; expected > 0")
        if not 0.0 <= memory_momentum < 1.0:
            raise ConfigError(f"memory_momentum={memory_momentum}; expected a value in [0, 1)")
        if ccta_feature not in CCTA_FEATURES:
            raise ConfigError(f"ccta_feature={ccta_feature!r}; expected one of {', '.join(CCTA_FEATURES)}")
        if not 0.0 <= pctd_label_smooth < 1.0:
            raise ConfigError(f"pctd_label_smooth={pctd_label_smooth}; expected a value in [0, 1)")
        super().__init__(**kwargs)
        if source_weight == 0 and self.net.classifier is not None:
            self.net.classifier.requires_grad_(False)  # TAUDL alone: the source classifier never trains
        self.tracklet_classifiers: nn.ModuleList | None = None
        self.ccta: CrossCameraAssociationLoss | None = None

    # ------------------------------------------------------------------ target heads

    @property
    def uses_source(self) -> bool:
        """Whether the labelled (source) part trains: ``source_weight > 0``."""
        return self.hparams.source_weight > 0

    @property
    def tracklet_layout(self) -> list[int] | None:
        """Tracklets per target camera the branches and memory were built for (None before)."""
        return None if self.tracklet_classifiers is None else [c.out_features for c in self.tracklet_classifiers]

    def build_target_heads(self, tracklets_per_camera) -> None:
        """Create the per-camera PCTD branches (``nn.Linear(D, T_c)``, no bias) and the CCTA
        memory for ``tracklets_per_camera``; nothing if they exist for this layout already, a
        :class:`ConfigError` if they exist for another one."""
        layout = [int(n) for n in tracklets_per_camera]
        if self.tracklet_classifiers is not None:
            if layout != self.tracklet_layout:
                raise ConfigError(f"tracklets per target camera {layout} differ from the {self.tracklet_layout} "
                                  "this TAUDL model was built for (a checkpoint of another target dataset?)")
            return
        hp = self.hparams
        dim = self.net.feat_dim
        ccta = CrossCameraAssociationLoss(layout, dim, num_neighbours=hp.ccta_neighbours,
                                          temperature=hp.ccta_temperature, momentum=hp.memory_momentum)
        branches = nn.ModuleList(nn.Linear(dim, n, bias=False) for n in layout)
        for branch in branches:
            if branch.weight.numel():
                nn.init.normal_(branch.weight, std=0.001)
        device = next(self.net.parameters()).device
        self.tracklet_classifiers = branches.to(device)
        self.ccta = ccta.to(device)
        log.info("TAUDL: %d target tracklets over %d cameras (%s), memory of %d x %d", sum(layout), len(layout),
                 layout, sum(layout), dim)

    def setup(self, stage: str) -> None:
        """Size the target heads from the DataModule (``fit`` requires its tracklet view); with
        ``source_weight: 0``, stop the DataModule from reading source images."""
        super().setup(stage)
        dm = self.trainer.datamodule
        tracklets = bool(getattr(dm, "target_tracklets", False))
        if stage == "fit" and not tracklets:
            raise ConfigError("TAUDLModule needs target tracklets, and data.target_tracklets is "
                              f"{'false' if dm is not None else 'unavailable (no DataModule)'}; "
                              "expected data.target_tracklets=true and data.with_target=true")
        if tracklets:
            self.build_target_heads(dm.num_target_tracklets_per_camera)
        if stage == "fit" and not self.uses_source:
            read_source_labels_only(self.trainer, "TAUDL alone")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Build the target heads from the checkpoint's own weights when no DataModule sized them
        (or check that it sized them alike), before the weights are loaded."""
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        widths, cam = [], 0
        while f"tracklet_classifiers.{cam}.weight" in state:
            widths.append(int(state[f"tracklet_classifiers.{cam}.weight"].shape[0]))
            cam += 1
        if widths:
            self.build_target_heads(widths)

    # ------------------------------------------------------------------ training

    def ccta_ramp(self, batch_idx: int) -> float:
        """The CCTA weight factor at this step, in [0, 1]: 0 before ``ccta_start_epoch`` (the
        PCTD-only warm-up), then linear to 1 over ``ccta_ramp_epochs``. Epochs are counted with the
        fraction of the current one done: ``current_epoch + batch_idx / num_training_batches``
        (with ``limit_train_batches`` counted in), so the weight moves at every step."""
        hp = self.hparams
        trainer = attached_trainer(self)
        batches = trainer.num_training_batches if trainer is not None else math.inf
        progress = self.current_epoch + (batch_idx / batches if math.isfinite(batches) and batches > 0 else 0.0)
        if progress < hp.ccta_start_epoch:
            return 0.0
        if hp.ccta_ramp_epochs == 0:
            return 1.0
        return min(1.0, (progress - hp.ccta_start_epoch) / hp.ccta_ramp_epochs)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        if self.ccta is None:
            raise ConfigError("TAUDLModule's target heads are not built: fit it with a CrossDomainDataModule "
                              "with data.target_tracklets=true")
        tgt = batch.get(TARGET, {})
        if TRACKLET not in tgt:
            raise ConfigError("the target batch carries no tracklet ids; expected data.target_tracklets=true")
        if SYNTHETIC in batch and not self.uses_source:
            raise ConfigError("source_weight=0 (TAUDL alone) but the batch holds rendered images; expected no "
                              "rendering callback")
        parts, pooled, neck, n = self._labelled_and_target_features(batch, tgt[IMAGE], self.uses_source)
        net = self.net
        loss = pooled.new_zeros((), dtype=torch.float32)
        if parts:
            labelled = self._labelled_loss(parts, net.classifier(neck[:n]), pooled[:n])
            loss = loss + hp.source_weight * labelled
        pctd = per_camera_tracklet_loss(neck[n:], tgt[CAMID], tgt[CAMERA_TRACKLET], self.tracklet_classifiers,
                                        hp.pctd_label_smooth)
        target_feats = neck[n:] if hp.ccta_feature == "neck" else pooled[n:]
        ramp = self.ccta_ramp(batch_idx)
        if ramp > 0 and hp.taudl_lambda > 0:
            ccta = self.ccta(target_feats, tgt[TRACKLET], tgt[CAMID], update=False)
            target = (1.0 - hp.taudl_lambda) * pctd + hp.taudl_lambda * ramp * ccta
        else:  # PCTD-only warm-up (or lambda 0): CCTA is not computed and adds exactly nothing
            self.ccta.memory.check(target_feats, tgt[TRACKLET], tgt[CAMID])
            ccta = pctd.new_zeros(())
            target = (1.0 - hp.taudl_lambda) * pctd
        loss = loss + hp.taudl_weight * target
        self._stop_if_diverged(loss)  # every rank stops together, before the memory takes a bad feature
        self.ccta.memory.update(target_feats, tgt[TRACKLET])  # a collective under DDP: every rank, every step
        self.log_dict({"train/pctd": pctd, "train/ccta": ccta, "train/ccta_weight": float(ramp),
                       "train/target_loss": target,
                       "train/memory_filled": self.ccta.memory.filled.float().mean()},
                      on_step=True, on_epoch=False)
        self.log("train/loss", loss, prog_bar=True)
        return loss
