"""ReIDModule: trains the re-id network on source identities (and rendered images when present)
and evaluates it on the target query/gallery with CMC, mAP and mINP."""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable

from ..data.keys import CAMID, IMAGE, INDEX, PID, SOURCE, SYNTHETIC
from ..data.transforms import random_erasing
from ..errors import ConfigError, TrainingDivergedError
from ..losses import batch_hard_triplet_loss, cross_entropy_label_smooth
from ..metrics import ReIDMetric
from ..metrics.plots import plot_cmc, plot_ranked_lists, to_picture
from ..models.reid import ReIDNet
from .common import finite_on_all_ranks, restore_random_states, save_random_states
from ..artifacts import log_image_file, run_dir

log = logging.getLogger(__name__)


def warmup_multistep(warmup_epochs: int, milestones: list[int], gamma: float, warmup_factor: float):
    """Learning-rate factor per epoch: linear warm-up from ``warmup_factor`` to 1 over
    ``warmup_epochs``, then multiplied by ``gamma`` at each milestone epoch."""

    def factor(epoch: int) -> float:
        scale = gamma ** sum(epoch >= m for m in milestones)
        if epoch < warmup_epochs:
            alpha = epoch / warmup_epochs
            return scale * (warmup_factor * (1 - alpha) + alpha)
        return scale

    return factor


def warmup_cosine(warmup_iters: int, total_iters: int, warmup_factor: float, min_factor: float):
    """Learning-rate factor per iteration: linear warm-up from ``warmup_factor`` to 1 over
    ``warmup_iters`` iterations, then a cosine decay to ``min_factor`` at ``total_iters``. Suits
    short schedules trained from scratch, where a per-epoch warm-up would take a large share of
    all updates."""

    def factor(step: int) -> float:
        if step < warmup_iters:
            alpha = step / warmup_iters
            return warmup_factor * (1 - alpha) + alpha
        progress = min(1.0, (step - warmup_iters) / max(1, total_iters - warmup_iters))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


LR_SCHEDULES = ("multistep", "cosine")


class ReIDModule(pl.LightningModule):
    """Re-id training and evaluation.

    Training uses ``batch["source"]`` (images with relabelled pids) and, when a rendering
    callback has added it, ``batch["synthetic"]`` (source identities rendered into target
    contexts) with its own weight. The loss of each part is
    ``ce_weight * CE_label_smooth + triplet_weight * batch_hard_triplet``, from one forward
    pass over both parts.

    Validation/test run over the target query + gallery and log ``rank1``, ``rank5``,
    ``rank10``, ``mAP`` and ``mINP`` (in percent), save a CMC plot and a ranked-list picture
    in the run folder and send them to the loggers.

    Args:
        num_source_pids: classifier width (linked from the DataModule by the CLI).
        num_query: how many evaluation items are queries (linked from the DataModule).
        backbone, pretrained, pretrained_path, last_stride, neck, pooling, test_pooling,
        lmp_parts, flip_test: see :class:`~crgan_lightning.models.reid.ReIDNet`.
        ce_weight, label_smooth, triplet_weight, triplet_margin: the loss.
        synthetic_weight: weight of the identity loss on ``batch["synthetic"]`` (and of its triplet
            loss, unless ``joint_triplet``).
        joint_triplet: one batch-hard triplet loss over source and rendered images together instead
            of one per part, so that the hardest positive of a person can be its rendering in a
            target context (use with the rendering callback's ``within_identity``).
        batch_erasing_p: probability of random erasing applied here, to the whole training batch
            (source and rendered images) after the rendering callback has run. With streaming,
            set the DataModule's ``erasing_p`` to 0 and this one instead: the generator then
            renders unerased persons, as in its own training, and every image the re-id network
            sees is erased alike.
        lr, weight_decay: the default optimiser (``optimizer_name``: ``adam``, or ``adamw`` with
            decoupled weight decay, which suits training from scratch).
        lr_schedule: ``multistep`` (per epoch: ``warmup_epochs`` of linear warm-up, then ``gamma``
            at each of ``milestones``; the standard ResNet-50 recipe) or ``cosine`` (per
            iteration: ``warmup_iters`` of linear warm-up, then a cosine decay to
            ``min_lr_factor`` times ``lr`` at the last iteration; for short schedules from scratch).
        warmup_factor: the learning-rate factor the warm-up starts from.
        optimizer, scheduler: injected from the CLI/YAML instead of the defaults
            (``class_path: torch.optim.SGD`` ...); the scheduler is stepped per epoch.
        distance, rerank, max_rank: evaluation (see :class:`~crgan_lightning.metrics.ReIDMetric`).
        also_test: further evaluations in the same pass, ``{pooling: distance}`` (e.g.
            ``{"lmp": "euclidean"}``: the poster's LMP row next to a BN-neck/cosine default); each is
            logged as ``<stage>/<pooling>_<metric>`` (``test/lmp_mAP``).
        ranked_list_queries, ranked_list_topk: size of the ranked-list picture (0 disables it).
        channels_last: run the network in channels-last memory format (faster on GPUs with AMP).
    """

    def __init__(
        self,
        num_source_pids: int = 0,
        num_query: int = 0,
        backbone: str = "resnet50",
        pretrained: bool = True,
        pretrained_path: str | None = None,
        last_stride: int = 1,
        neck: str = "bnneck",
        pooling: str = "avg",
        test_pooling: str = "lmp",
        lmp_parts: int = 6,
        flip_test: bool = False,
        ce_weight: float = 1.0,
        label_smooth: float = 0.1,
        triplet_weight: float = 1.0,
        triplet_margin: float | None = 0.3,
        synthetic_weight: float = 1.0,
        joint_triplet: bool = False,
        batch_erasing_p: float = 0.0,
        lr: float = 3.5e-4,
        weight_decay: float = 5e-4,
        optimizer_name: str = "adam",
        lr_schedule: str = "multistep",
        warmup_epochs: int = 10,
        warmup_iters: int = 0,
        warmup_factor: float = 0.01,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        min_lr_factor: float = 0.01,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        distance: str = "euclidean",
        rerank: bool = False,
        max_rank: int = 50,
        also_test: dict[str, str] | None = None,
        ranked_list_queries: int = 6,
        ranked_list_topk: int = 8,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if num_source_pids < 1:
            raise ConfigError(
                f"num_source_pids={num_source_pids}: the classifier needs the number of source identities "
                "(the CLI links it from data.num_source_pids)"
            )
        if not 0.0 <= batch_erasing_p <= 1.0:
            raise ConfigError(f"batch_erasing_p={batch_erasing_p} is not a probability; expected a value in [0, 1]")
        if lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule={lr_schedule!r} is unknown; expected one of {', '.join(LR_SCHEDULES)}")
        if optimizer_name not in ("adam", "adamw"):
            raise ConfigError(f"optimizer_name={optimizer_name!r} is unknown; expected adam or adamw")
        if lr <= 0 or weight_decay < 0 or warmup_iters < 0 or warmup_epochs < 0:
            raise ConfigError(f"lr={lr}, weight_decay={weight_decay}, warmup_iters={warmup_iters}, "
                              f"warmup_epochs={warmup_epochs}: expected lr > 0 and the others >= 0")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.net = ReIDNet(
            backbone=backbone, pretrained=pretrained, pretrained_path=pretrained_path, last_stride=last_stride,
            num_classes=num_source_pids, neck=neck, pooling=pooling, test_pooling=test_pooling,
            lmp_parts=lmp_parts, flip_test=flip_test,
        )
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.milestones = list(milestones) if milestones is not None else [40, 70]
        self.num_query = num_query
        self.metric: ReIDMetric | None = None
        self.also_test = dict(also_test or {})
        for pooling, distance in self.also_test.items():
            if pooling not in ("avg", "max", "lmp") or distance not in ("euclidean", "cosine"):
                raise ConfigError(f"also_test={{{pooling!r}: {distance!r}}}: expected a pooling of avg/max/lmp "
                                  "mapped to a distance of euclidean/cosine")
        self.extra_metrics: dict[str, ReIDMetric] = {}

    # ------------------------------------------------------------------ training

    def _part_loss(self, logits: torch.Tensor, feats: torch.Tensor, pids: torch.Tensor, prefix: str,
                   triplet: bool = True):
        hp = self.hparams
        ce = cross_entropy_label_smooth(logits, pids, hp.label_smooth)
        acc = (logits.argmax(1) == pids).float().mean()
        self.log_dict({f"train/{prefix}_ce": ce, f"train/{prefix}_acc": acc}, on_step=True, on_epoch=False)
        if not triplet:
            return hp.ce_weight * ce
        tri = batch_hard_triplet_loss(feats, pids, hp.triplet_margin)
        self.log(f"train/{prefix}_triplet", tri, on_step=True, on_epoch=False)
        return hp.ce_weight * ce + hp.triplet_weight * tri

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else images

    def _labelled_parts(self, batch: dict) -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
        """``(name, images, pids, weight)`` of the labelled parts of a training batch: the source
        images and, when the rendering callback added them, the rendered ones."""
        src = batch[SOURCE]
        parts = [(SOURCE, src[IMAGE], src[PID], 1.0)]
        if SYNTHETIC in batch:
            syn = batch[SYNTHETIC]
            parts.append((SYNTHETIC, syn[IMAGE], syn[PID], self.hparams.synthetic_weight))
        return parts

    def _labelled_loss(self, parts: list, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """The identity loss of ``parts`` (rows of ``logits`` and ``feats`` in the order of the parts)."""
        joint = self.hparams.joint_triplet and len(parts) > 1
        loss, start = feats.new_zeros(()), 0
        for name, imgs, pids, weight in parts:
            end = start + len(imgs)
            loss = loss + weight * self._part_loss(logits[start:end], feats[start:end], pids, name, not joint)
            start = end
        if joint:  # one triplet over source and rendered images: a person's nearest is also in another context
            tri = batch_hard_triplet_loss(feats, torch.cat([p[2] for p in parts]), self.hparams.triplet_margin)
            self.log("train/joint_triplet", tri, on_step=True, on_epoch=False)
            loss = loss + self.hparams.triplet_weight * tri
        return loss

    def _stop_if_diverged(self, loss: torch.Tensor) -> None:
        if not finite_on_all_ranks(self, loss):
            raise TrainingDivergedError(
                f"re-id loss is {loss.item()} on some process at step {self.global_step}; training stopped "
                f"before this update. "
                f"Lower lr (now {self.hparams.lr}) or check the input data"
            )

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        parts = self._labelled_parts(batch)
        images = torch.cat([p[1] for p in parts])
        if self.hparams.batch_erasing_p > 0:
            images = random_erasing(images, self.hparams.batch_erasing_p)
        logits, feats = self.net(self._input(images))
        loss = self._labelled_loss(parts, logits, feats)
        self._stop_if_diverged(loss)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        hp = self.hparams
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(params)
        else:
            kind = torch.optim.AdamW if hp.optimizer_name == "adamw" else torch.optim.Adam
            optimizer = kind(params, lr=hp.lr, weight_decay=hp.weight_decay)
        if self.scheduler_factory is not None:
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "epoch"}}
        if hp.lr_schedule == "cosine":
            total = int(self.trainer.estimated_stepping_batches)
            factor = warmup_cosine(hp.warmup_iters, total, hp.warmup_factor, hp.min_lr_factor)
            interval = "step"
        else:
            factor = warmup_multistep(hp.warmup_epochs, self.milestones, hp.gamma, hp.warmup_factor)
            interval = "epoch"
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the global random states (random erasing, loader seeds) so a resumed run continues
        the same random streams as an uninterrupted one."""
        checkpoint["random_states"] = save_random_states()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "random_states" in checkpoint:
            restore_random_states(checkpoint["random_states"])

    # ------------------------------------------------------------------ evaluation

    def _eval_start(self) -> None:
        if self.num_query < 1:
            raise ConfigError("num_query is not set: the CLI links it from data.num_query")
        hp = self.hparams
        self.metric = ReIDMetric(num_query=self.num_query, max_rank=hp.max_rank, metric=hp.distance,
                                 rerank=hp.rerank, ranked_queries=hp.ranked_list_queries,
                                 ranked_topk=hp.ranked_list_topk).to(self.device)
        self.extra_metrics = {
            pooling: ReIDMetric(num_query=self.num_query, max_rank=hp.max_rank, metric=distance, rerank=hp.rerank,
                                ranked_queries=0).to(self.device)
            for pooling, distance in self.also_test.items()}

    def _eval_step(self, batch: dict) -> None:
        main = self.net.test_pooling
        feats = self.net.extract_poolings(self._input(batch[IMAGE]), (main, *self.extra_metrics))
        for pooling, metric in ((main, self.metric), *self.extra_metrics.items()):
            metric.update(feats[pooling].float(), batch[PID], batch[CAMID], batch[INDEX])

    def _eval_end(self, stage: str) -> dict[str, float]:
        if self.trainer.sanity_checking:  # a few batches may hold no gallery at all: nothing to rank
            for metric in (self.metric, *self.extra_metrics.values()):
                metric.reset()
            return {}
        results = self.metric.compute()
        keys = ("rank1", "rank5", "rank10", "mAP", "mINP")
        scores = {f"{stage}/{k}": float(results[k]) * 100 for k in keys}
        for pooling, metric in self.extra_metrics.items():
            extra = metric.compute()
            scores.update({f"{stage}/{pooling}_{k}": float(extra[k]) * 100 for k in keys})
            metric.reset()
        self.log_dict(scores, sync_dist=False, prog_bar=stage == "val")
        if self.trainer.is_global_zero:
            self._save_pictures(stage, results)
        self.metric.reset()
        return scores

    def _save_pictures(self, stage: str, results: dict) -> None:
        out = run_dir(self.trainer) / "plots"
        tag = f"{stage}_epoch{self.current_epoch:03d}"
        path = plot_cmc(results["cmc"].cpu().numpy(), out / f"cmc_{tag}.png", title=f"CMC ({stage})")
        log_image_file(self.trainer, f"{stage}/cmc", path)
        if "ranked_gallery" in results:
            dataset = self.trainer.datamodule.target_eval
            q_rows, g_rows, m_rows = [], [], []
            for q, row in zip(results["ranked_queries"].tolist(), results["ranked_gallery"].tolist()):
                q_item = dataset[q]
                gallery = [dataset[g] for g in row]
                q_rows.append(to_picture(q_item[IMAGE]))
                g_rows.append([to_picture(g[IMAGE]) for g in gallery])
                m_rows.append([g[PID] == q_item[PID] for g in gallery])
            path = plot_ranked_lists(q_rows, g_rows, m_rows, out / f"ranked_{tag}.png")
            log_image_file(self.trainer, f"{stage}/ranked_list", path)

    def on_validation_epoch_start(self) -> None:
        self._eval_start()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        """Features of the evaluation images, with their pid, camid and index."""
        return {"features": self.net.extract(self._input(batch[IMAGE])), PID: batch[PID],
                CAMID: batch[CAMID], INDEX: batch[INDEX]}
