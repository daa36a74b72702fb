"""ClusterModule: the re-id module trained on pseudo-identities of the unlabelled target, found by
clustering its features once an epoch (SpCL, NeurIPS 2020; cluster contrast, Dai et al.).

Every training epoch starts with a pass of the current network over the target's training images
(no augmentation); their k-reciprocal Jaccard distance and DBSCAN give each image a pseudo-identity
(:mod:`crgan_lightning.clustering`); a memory of one feature per pseudo-identity is rebuilt from the
cluster centroids; the epoch's target batches are P x K batches over the pseudo-identities; each
image is trained by an InfoNCE loss against the memory, which then moves towards the batch's
features. The network starts from a source-trained re-id checkpoint (direct transfer, or the
CR-GAN streaming model).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.distributed as dist

from ..checkpoints import read_checkpoint, submodule_weights
from ..clustering import (
    OUTLIER_MODES, assign_outliers, cluster_centroids, dbscan_labels, eps_from_rho, jaccard_distance,
    label_agreement,
)
from ..data.datasets import EMBEDDED_DATASETS, get_spec
from ..data.keys import IMAGE, INDEX, SYNTHETIC, TARGET
from ..errors import ConfigError, WeightsError
from ..losses import ClusterMemory, _gather_rows, cluster_contrast_loss
from .reid import ReIDModule
from .taudl import read_source_labels_only

log = logging.getLogger(__name__)


class ClusterModule(ReIDModule):
    """Re-id on the target's pseudo-identities (and, optionally, source labels in the same batches).

    Fitting needs a :class:`~crgan_lightning.data.datamodule.CrossDomainDataModule` with
    ``data.target_clusters: true``: its target batches are P x K batches over the pseudo-identities
    this module sets at the start of every epoch, and carry each image's ``"index"`` in the target
    training split, never its identity.

    At the start of every training epoch (:meth:`recluster`):

    1. features of all target training images from the current network in eval mode (the
       BN-neck feature of the training pooling), each DDP rank extracting its share, gathered on all;
    2. on rank 0: the Jaccard distance (``k1``, ``k2``) and DBSCAN (``eps``, ``min_samples``);
       outliers dropped or kept as pseudo-identities of one image (``outliers``); the labels are
       broadcast to the other ranks;
    3. the memory (:class:`~crgan_lightning.losses.ClusterMemory`) set to the normalised centroids
       (computed on every rank from the same features and labels, so equal on all) and the labels
       given to the DataModule's sampler;
    4. logged: ``cluster/clusters`` (DBSCAN's clusters), ``cluster/outliers`` (share of images
       DBSCAN leaves out), ``cluster/classes`` (pseudo-identities trained on) and, when the target
       is an embedded benchmark dataset, ``cluster/ari``, ``cluster/precision``, ``cluster/recall``,
       ``cluster/fscore`` against the true identities: a diagnostic read from the dataset's file
       names after the labels are fixed, never an input of training.

    Per training step, one forward pass over the step's images: ``cluster_weight *``
    InfoNCE(BN-neck features of the target images, memory, ``temperature``), plus
    ``source_weight *`` the :class:`ReIDModule` loss on the labelled parts (source images, and
    rendered ones when a rendering callback streams them: the joint hybrid). After the loss, the
    memory moves towards the batch's features of every rank (``memory_momentum``).

    ``source_weight: 0`` (default) is clustering alone: no source label is used, the source
    classifier is frozen and the DataModule's source set is replaced by labels only (its loader
    sets the epoch's length; no source image is read), as in TAUDL alone.

    The first clustering of a fit happens in ``on_fit_start`` (Lightning creates the first epoch's
    loader iterator before ``on_train_epoch_start``), the others at each epoch start. The
    pseudo-labels (buffer ``pseudo_labels``, ``(N,)``) and the memory are part of the checkpoint;
    a resumed run continues with them until its next epoch starts and clusters anew. Images
    without pseudo-identity (dropped outliers) never count in the loss (with loader workers, a
    run resumed at an epoch end may draw that epoch's first batches from the previous labels).

    Args:
        init_checkpoint: a re-id checkpoint (``last.ckpt`` of ``reid_direct``, ``reid_crgan``, ...)
            whose network weights start the fit (None: the network as built, e.g. ImageNet weights).
        source_weight: weight of the labelled (source + rendered) part; 0: clustering alone.
        cluster_weight: weight of the contrastive loss on the target's pseudo-identities (> 0).
        k1, k2: of the Jaccard distance (SpCL: 30, 6).
        eps, min_samples: of DBSCAN (SpCL: 0.6, 4). ``eps: auto``: set once, at the run's first
            clustering, to the mean of the smallest ``eps_rho`` share of the pairs' Jaccard
            distances (MMT's rule, :func:`~crgan_lightning.clustering.eps_from_rho`; no label read),
            then kept and checkpointed, so a resumed run clusters with the same radius.
        eps_rho: that share (MMT: 1.6e-3).
        outliers: ``"drop"`` (cluster contrast) or ``"instances"`` (SpCL's un-clustered instances).
        temperature: of the contrastive loss (0.05).
        memory_momentum: weight of the old memory entry, in [0, 1) (SpCL: 0.2).
        **kwargs: every :class:`ReIDModule` argument (network, source loss, optimiser, schedule,
            evaluation).
    """

    def __init__(
        self,
        init_checkpoint: str | None = None,
        source_weight: float = 0.0,
        cluster_weight: float = 1.0,
        k1: int = 30,
        k2: int = 6,
        eps: float | str = 0.6,
        eps_rho: float = 1.6e-3,
        min_samples: int = 4,
        outliers: str = "drop",
        temperature: float = 0.05,
        memory_momentum: float = 0.2,
        **kwargs,
    ) -> None:
        if not source_weight >= 0:
            raise ConfigError(f"source_weight={source_weight}; expected >= 0 (0: clustering alone)")
        if not cluster_weight > 0:
            raise ConfigError(f"cluster_weight={cluster_weight}; expected > 0 (for source labels alone use ReIDModule)")
        if outliers not in OUTLIER_MODES:
            raise ConfigError(f"outliers={outliers!r}; expected one of {', '.join(OUTLIER_MODES)}")
        if not (isinstance(k1, int) and isinstance(k2, int) and isinstance(min_samples, int)
                and k1 >= 1 and k2 >= 1 and min_samples >= 1):
            raise ConfigError(f"k1={k1}, k2={k2}, min_samples={min_samples}; expected positive integers")
        if eps != "auto" and not (isinstance(eps, (int, float)) and 0 < eps < 1):
            raise ConfigError(f"eps={eps}; expected a Jaccard distance in (0, 1) (SpCL: 0.6) or auto (MMT's rule)")
        if not 0 < eps_rho < 1:
            raise ConfigError(f"eps_rho={eps_rho}; expected a share of the image pairs in (0, 1) (MMT: 0.0016)")
        if not temperature > 0:
            raise ConfigError(f"temperature={temperature}; expected > 0")
        super().__init__(**kwargs)
        if source_weight == 0 and self.net.classifier is not None:
            self.net.classifier.requires_grad_(False)  # clustering alone: the source classifier never trains
        self.memory = ClusterMemory(self.net.feat_dim, memory_momentum)
        self.register_buffer("pseudo_labels", torch.zeros(0, dtype=torch.long))
        # eps: auto, set by the run's first clustering and kept (and checkpointed) for the rest of it
        self.register_buffer("dbscan_eps", torch.tensor(float(eps) if eps != "auto" else 0.0, dtype=torch.float32))

    @property
    def uses_source(self) -> bool:
        return self.hparams.source_weight > 0

    # ------------------------------------------------------------------ setup and checkpoints

    def load_initial_weights(self, path: str | os.PathLike) -> None:
        """Copy the network of the re-id checkpoint ``path`` into this module's network."""
        expected = "the last.ckpt of a re-id run (make train-reid, crgan fit --stage reid_direct or reid_crgan)"
        ckpt = read_checkpoint(path, "init_checkpoint", expected, mmap=False)
        weights = submodule_weights(ckpt, "net.")
        if not weights:
            raise WeightsError(f"init_checkpoint {path} holds no re-id network (no net.* weights); expected {expected}")
        try:
            self.net.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WeightsError(f"init_checkpoint {path} does not fit this network (backbone, neck or number of "
                               f"source identities differ): {first}") from None
        log.info("clustering stage: network initialised from %s", path)

    def setup(self, stage: str) -> None:
        """Check the DataModule, load ``init_checkpoint`` (a resumed fit then overwrites the weights
        with its own) and, with ``source_weight: 0``, stop the DataModule from reading source images."""
        super().setup(stage)
        if stage != "fit":
            return
        dm = self.trainer.datamodule
        if not getattr(dm, "target_clusters", False):
            raise ConfigError("ClusterModule needs the target's pseudo-identity batches; expected "
                              "data.target_clusters=true and data.with_target=true")
        if self.hparams.init_checkpoint:
            self.load_initial_weights(self.hparams.init_checkpoint)
        if not self.uses_source:
            read_source_labels_only(self.trainer, "clustering alone")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Size the memory and the pseudo-labels as the checkpoint's before its weights are loaded."""
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        if "memory.features" in state:
            self.memory.features = torch.zeros_like(state["memory.features"], device=self.memory.features.device)
        if "pseudo_labels" in state:
            self.pseudo_labels = torch.zeros_like(state["pseudo_labels"], device=self.pseudo_labels.device)
        if state and "dbscan_eps" not in state:  # a checkpoint from before eps: auto: its fixed eps
            state["dbscan_eps"] = torch.tensor(float(self.hparams.eps) if self.hparams.eps != "auto" else 0.0)

    def on_fit_start(self) -> None:
        """Cluster for the first epoch here: Lightning creates the first epoch's loader iterator
        (and loader workers start drawing batches) before ``on_train_epoch_start``. A resumed run
        gives the checkpoint's pseudo-labels back to the sampler instead."""
        if self.pseudo_labels.numel():
            self.trainer.datamodule.set_target_pseudo_labels(self.pseudo_labels.cpu().numpy())
        else:
            self._pending_stats = self.recluster()
            self._clustered_epoch = self.current_epoch
        # A schedule that counts the training batches (lr_schedule: cosine) made Lightning build the loader
        # and its iterator already, and loader workers drew batches from no labels: start that iterator
        # again, as Lightning does at each later epoch.
        fetcher = getattr(self.trainer.fit_loop, "_data_fetcher", None)
        if fetcher is not None and getattr(fetcher, "combined_loader", None) is not None:
            iter(fetcher)

    # ------------------------------------------------------------------ clustering

    @torch.no_grad()
    def extract_target_features(self) -> torch.Tensor:
        """``(N, D)`` features of all target training images (in order), from every rank's share."""
        trainer = self.trainer
        dm = trainer.datamodule
        was_training = self.net.training
        self.net.eval()
        feats, index = [], []
        try:
            for batch in dm.cluster_loader(trainer.global_rank, trainer.world_size):
                images = self._input(batch[IMAGE].to(self.device))
                feats.append(self.net.extract(images, pooling=self.net.pooling).float())
                index.append(batch[INDEX].to(self.device))
        finally:
            self.net.train(was_training)
        dim = self.net.feat_dim
        local_feats = torch.cat(feats) if feats else torch.zeros(0, dim, device=self.device)
        local_index = torch.cat(index) if index else torch.zeros(0, dtype=torch.long, device=self.device)
        all_feats, all_index = _gather_rows(local_feats), _gather_rows(local_index)
        out = torch.zeros(dm.num_target_train, dim, device=self.device)
        out[all_index] = all_feats
        return out

    def cluster(self, features: torch.Tensor) -> np.ndarray:
        """DBSCAN labels (``(N,)``, -1: outlier) of the features' Jaccard distance."""
        hp = self.hparams
        if hp.eps == "auto" and not self.dbscan_eps > 0:  # the run's first clustering: MMT's rule
            distance = jaccard_distance(features, hp.k1, hp.k2)
            eps = eps_from_rho(distance, hp.eps_rho)
            if not eps > 0:
                raise ConfigError(f"eps: auto gave eps={eps:.4g}: the smallest {hp.eps_rho:.2g} of the pairs' Jaccard "
                                  "distances are all 0 (duplicate features); expected a larger eps_rho or a fixed eps")
            self.dbscan_eps.fill_(eps)
            log.info("eps = %.4f: the mean of the smallest %.2g of the pairs' Jaccard distances (eps: auto)",
                     float(self.dbscan_eps), hp.eps_rho)
        else:
            distance = jaccard_distance(features, hp.k1, hp.k2, max_distance=float(self.dbscan_eps))
        return dbscan_labels(distance, float(self.dbscan_eps), hp.min_samples)

    def _broadcast(self, labels: np.ndarray | None) -> np.ndarray:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return self.trainer.strategy.broadcast(labels, src=0)
        return labels

    def recluster(self) -> dict[str, float]:
        """Extract, cluster (rank 0), broadcast, rebuild the memory and the sampler's labels; returns
        the logged statistics."""
        hp = self.hparams
        dm = self.trainer.datamodule
        features = self.extract_target_features()
        raw = self.cluster(features) if self.trainer.is_global_zero else None
        raw = self._broadcast(raw)
        labels, num_classes = assign_outliers(raw, hp.outliers)
        num_clusters = int(raw.max()) + 1 if raw.size and raw.max() >= 0 else 0
        per_batch = dm.target_batch_size // dm.num_instances
        if num_classes < per_batch:
            raise ConfigError(
                f"epoch {self.current_epoch}: DBSCAN (eps={float(self.dbscan_eps):.4g}, min_samples={hp.min_samples}) "
                f"found {num_clusters} clusters and {int((raw < 0).sum())} outliers, fewer pseudo-identities than "
                f"the P={per_batch} of a batch; expected a larger eps, a smaller min_samples, outliers: instances, "
                "or a better init_checkpoint")
        labels_t = torch.as_tensor(labels, device=self.device)
        self.memory.reset(cluster_centroids(features, labels_t, num_classes))
        self.pseudo_labels = labels_t
        dm.set_target_pseudo_labels(labels)
        stats = {"cluster/clusters": float(num_clusters), "cluster/outliers": float((raw < 0).mean()),
                 "cluster/classes": float(num_classes)}
        if get_spec(dm.target_name).name in EMBEDDED_DATASETS:  # diagnostic only: labels are fixed above
            true = np.asarray([sample.pid for sample in dm.target_dataset.train])
            stats.update({f"cluster/{k}": v for k, v in label_agreement(raw, true).items()})
        log.info("epoch %d: %s", self.current_epoch, ", ".join(f"{k.split('/')[1]} {v:.4g}" for k, v in stats.items()))
        return stats

    def on_train_epoch_start(self) -> None:
        if getattr(self, "_clustered_epoch", None) == self.current_epoch:  # done in on_fit_start
            stats = self._pending_stats
            self._clustered_epoch = None
        else:
            stats = self.recluster()
        # every rank holds the same labels (rank 0 clusters, the labels are broadcast), so the mean over the
        # ranks is each rank's value; syncing also keeps Lightning from warning about unsynced epoch metrics
        self.log_dict(stats, on_step=False, on_epoch=True, sync_dist=True)

    # ------------------------------------------------------------------ training

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        tgt = batch.get(TARGET, {})
        if INDEX not in tgt:
            raise ConfigError("the target batch carries no image index; expected data.target_clusters=true")
        if SYNTHETIC in batch and not self.uses_source:
            raise ConfigError("source_weight=0 (clustering alone) but the batch holds rendered images; expected no "
                              "rendering callback")
        labels = self.pseudo_labels[tgt[INDEX].to(self.pseudo_labels.device)]
        # images without pseudo-identity (dropped outliers) do not count; they reach a batch only when the
        # loader drew it before a new clustering (workers prefetching across a resume)
        keep = labels >= 0
        parts, pooled, neck, n = self._labelled_and_target_features(batch, tgt[IMAGE], self.uses_source)
        net = self.net
        loss = pooled.new_zeros((), dtype=torch.float32)
        if parts:
            loss = loss + hp.source_weight * self._labelled_loss(parts, net.classifier(neck[:n]), pooled[:n])
        target = neck[n:][keep]
        if keep.any():
            contrast = cluster_contrast_loss(target, labels[keep], self.memory.features.clone(), hp.temperature)
        else:
            contrast = neck.sum() * 0.0
        loss = loss + hp.cluster_weight * contrast
        self._stop_if_diverged(loss)  # every rank stops together, before the memory takes a bad feature
        self.memory.update(target, labels[keep])  # a collective under DDP: every rank, every step
        self.log("train/cluster_contrast", contrast, on_step=True, on_epoch=False)
        self.log("train/loss", loss, prog_bar=True)
        return loss
