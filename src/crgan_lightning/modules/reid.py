"""ReIDModule: trains the re-id network on source identities (and rendered images when present)
and evaluates it on the target query/gallery with CMC, mAP and mINP."""

from __future__ import annotations

import functools
import inspect
import io
import logging
import os
import sys

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable

from ..checkpoints import hyperparameters, read_checkpoint
from ..data.keys import CAMID, IMAGE, INDEX, PID, SOURCE, SYNTHETIC
from ..data.transforms import random_erasing
from ..errors import ConfigError, TrainingDivergedError, brief
from ..losses import batch_hard_triplet_loss, cross_entropy_label_smooth
from ..metrics import ReIDMetric
from ..metrics.plots import plot_cmc, plot_ranked_lists, to_picture
from ..models.reid import ReIDNet, pool_features
from ..models.specs import (REID_CALL_ARGS, ReIDNetFactory, build_network, factory_from_spec, for_trained_weights,
                            network_spec)
from ..networks import network_specs
from ..schedules import WarmupMultiStepLR, fit_to_run
from .common import attached_trainer, finite_on_all_ranks, restore_random_states, save_random_states
from ..artifacts import log_image_file, run_dir

log = logging.getLogger(__name__)

#: The optimiser a re-id module trains with when none is injected: Adam, as in the Bag of Tricks recipe.
DEFAULT_OPTIMIZER = functools.partial(torch.optim.Adam, lr=3.5e-4, weight_decay=5e-4)
#: The scheduler when none is injected: 10 epochs of warm-up, then x0.1 at epochs 40 and 70.
DEFAULT_SCHEDULER = WarmupMultiStepLR
#: Where the arguments the re-id module took before its network and optimisation were injected went
#: (below ``model.init_args``); a checkpoint that holds them still loads (:meth:`ReIDModule.load_from_checkpoint`).
_NET_KEYS = ("backbone", "pretrained", "pretrained_path", "last_stride", "neck", "pooling", "test_pooling",
             "lmp_parts", "flip_test")
_SCHEDULE_KEYS = ("warmup_epochs", "milestones", "gamma", "warmup_iters", "warmup_factor")
MOVED_ARGUMENTS = {
    **{name: f"net.init_args.{name}" for name in _NET_KEYS},
    "lr": "optimizer.init_args.lr", "weight_decay": "optimizer.init_args.weight_decay",
    "optimizer_name": "optimizer (class_path: torch.optim.Adam or torch.optim.AdamW)",
    "lr_schedule": "scheduler (class_path: crgan_lightning.schedules.WarmupMultiStepLR or WarmupCosineLR)",
    **{name: f"scheduler.init_args.{name}" for name in _SCHEDULE_KEYS},
    "min_lr_factor": "scheduler.init_args.min_factor",
}
#: What LightningCLI adds to a module's hyper-parameters beside its arguments.
CLI_KEYS = {"_class_path", "_instantiator"}


def _checked_factory(factory, what: str, build):
    """``factory`` after a trial call (``build(factory)``) on a throwaway parameter, so that a bad
    setting (a negative learning rate, an unknown argument) is one line when the module is built
    rather than a traceback when training starts."""
    if isinstance(factory, (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)):
        raise ConfigError(f"{what} is a built {type(factory).__name__}; give its class or a functools.partial of it "
                          "(the module builds it over its own parameters)")
    if not callable(factory):
        raise ConfigError(f"{what}={factory!r}; expected a class_path object, a class, a functools.partial or a "
                          "spec dict")
    try:
        build(factory)
    except ConfigError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"{what}: {brief(exc)}") from None
    return factory


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

    The network and the optimisation are injected, each configured in one place (a ``class_path``
    object in a config, see :mod:`crgan_lightning.models.specs`)::

        model:
          class_path: crgan_lightning.modules.reid.ReIDModule
          init_args:
            net:
              class_path: crgan_lightning.models.reid.ReIDNet
              init_args: {backbone: resnet50, test_pooling: lmp}
            optimizer:
              class_path: torch.optim.Adam
              init_args: {lr: 3.5e-4, weight_decay: 5.0e-4}
            scheduler:
              class_path: crgan_lightning.schedules.WarmupMultiStepLR
              init_args: {warmup_epochs: 10, milestones: [40, 70]}

    Subclasses (:class:`~crgan_lightning.modules.taudl.TAUDLModule`) take their own arguments and
    pass the rest on (``**kwargs``); heads they add before :meth:`configure_optimizers` (in
    ``setup``) are optimised with the network.

    Args:
        num_source_pids: classifier width (linked from the DataModule by the CLI).
        num_query: how many evaluation items are queries (linked from the DataModule).
        net: the re-id network, a factory called with ``num_classes=num_source_pids`` (default
            :class:`~crgan_lightning.models.reid.ReIDNet` with its own defaults: ResNet-50 with
            ImageNet weights, last stride 1, BNNeck, LMP at test time). In Python also a class, a
            ``functools.partial``, a spec dict or a dict of ``ReIDNet`` arguments
            (``net={"backbone": "resnet18", "pretrained": False}``). Another class needs
            ``ReIDNet``'s interface (``feature_map``, ``neck``, ``classifier``, ``pooling``,
            ``test_pooling``, ``lmp_parts``, ``feat_dim``, ``extract``, ``extract_poolings``) and
            records its arguments (``self.init_args = init_arguments(locals())``); its spec is kept in
            the checkpoint, from which :func:`~crgan_lightning.networks.load_reid_net` rebuilds it.
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
        optimizer: the optimiser, a factory called with the list of trainable parameters (one
            group); default ``Adam(lr=3.5e-4, weight_decay=5e-4)`` (:data:`DEFAULT_OPTIMIZER`).
            ``torch.optim.AdamW`` with decoupled weight decay suits training from scratch. In Python the
            optimiser and the scheduler are classes, ``functools.partial`` objects or spec dicts.
        scheduler: the learning-rate scheduler, a factory called with the optimiser; default
            :class:`~crgan_lightning.schedules.WarmupMultiStepLR` (10 warm-up epochs, x0.1 at
            epochs 40 and 70). It steps every epoch, or at its own ``interval``
            (:class:`~crgan_lightning.schedules.WarmupCosineLR` steps every optimiser step and gets
            the run's length); a constant rate: ``torch.optim.lr_scheduler.ConstantLR`` with
            ``factor: 1.0``.
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
        net: ReIDNetFactory | None = None,
        ce_weight: float = 1.0,
        label_smooth: float = 0.1,
        triplet_weight: float = 1.0,
        triplet_margin: float | None = 0.3,
        synthetic_weight: float = 1.0,
        joint_triplet: bool = False,
        batch_erasing_p: float = 0.0,
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
        optimizer = factory_from_spec(optimizer, torch.optim.Adam, torch.optim.Optimizer, "optimizer")
        scheduler = factory_from_spec(scheduler, WarmupMultiStepLR, torch.optim.lr_scheduler.LRScheduler, "scheduler")
        trial = [torch.nn.Parameter(torch.zeros(1))]
        self.optimizer_factory = _checked_factory(optimizer or DEFAULT_OPTIMIZER, "optimizer", lambda f: f(trial))
        self.scheduler_factory = _checked_factory(scheduler or DEFAULT_SCHEDULER, "scheduler",
                                                  lambda f: f(self.optimizer_factory(trial)))
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        for key in set(self.hparams) - self.argument_names() - CLI_KEYS:  # DataModule values the CLI links to
            del self.hparams[key]                                          # any module, as num_target_cameras
        self.net = build_network(net, ReIDNet, "net", num_classes=num_source_pids)
        self.hparams["net"] = network_spec(self.net, REID_CALL_ARGS)  # what a checkpoint rebuilds it from
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.num_query = num_query
        self.metric: ReIDMetric | None = None
        self.also_test = dict(also_test or {})
        for pooling, distance in self.also_test.items():
            if pooling not in ("avg", "max", "lmp") or distance not in ("euclidean", "cosine"):
                raise ConfigError(f"also_test={{{pooling!r}: {distance!r}}}: expected a pooling of avg/max/lmp "
                                  "mapped to a distance of euclidean/cosine")
        self.extra_metrics: dict[str, ReIDMetric] = {}

    @classmethod
    def argument_names(cls) -> set[str]:
        """The arguments of the module: those of its ``__init__`` and of every re-id module
        ``__init__`` it passes ``**kwargs`` on to."""
        names = set()
        for klass in cls.__mro__:
            if issubclass(klass, ReIDModule):
                names |= {name for name, p in inspect.signature(klass.__init__).parameters.items()
                          if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        return names

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None, **kwargs):
        """Lightning's ``load_from_checkpoint``, with the network rebuilt from the checkpoint's ``net``
        spec without pretrained weights (the checkpoint's weights replace them). A checkpoint written
        before the network and the optimisation were injected (``backbone``, ``lr`` ... among the
        hyper-parameters) loads too: its network arguments become the ``net`` spec and its
        optimisation settings are dropped (give ``optimizer`` / ``scheduler`` to train it further),
        as are values that are no argument of the module. ``kwargs`` still override."""
        if hparams_file is None and isinstance(checkpoint_path, (str, os.PathLike)):
            hparams = hyperparameters(read_checkpoint(checkpoint_path, "re-id checkpoint"))
            spec = network_specs(hparams, "reid")["net"]
            module_path, _, name = str(hparams.get("_class_path", "")).rpartition(".")
            written_by = getattr(sys.modules.get(module_path), name, cls)  # the subclass that wrote it, if imported
            module = written_by if inspect.isclass(written_by) and issubclass(written_by, cls) else cls
            unknown = set(hparams) - module.argument_names() - CLI_KEYS
            if unknown or "net" not in hparams:  # rewritten in memory: Lightning passes every hyper-parameter on
                ckpt = read_checkpoint(checkpoint_path, "re-id checkpoint", mmap=False)
                ckpt["hyper_parameters"] = {**{k: v for k, v in hparams.items() if k not in unknown}, "net": spec}
                checkpoint_path = io.BytesIO()
                torch.save(ckpt, checkpoint_path)
                checkpoint_path.seek(0)
            kwargs.setdefault("net", for_trained_weights(spec, ReIDNet, "net"))
        return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, **kwargs)

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

    def _labelled_and_target_features(self, batch: dict, target_images: torch.Tensor, with_labelled: bool):
        """One forward pass of the batch's labelled parts (when ``with_labelled``) and the target's
        images, erased as in training: ``(parts, pooled, neck, n)``, rows ``[0, n)`` the labelled
        parts in their order, rows ``[n, end)`` the target images (B, D)."""
        parts = self._labelled_parts(batch) if with_labelled else []
        images = torch.cat([p[1] for p in parts] + [target_images])
        if self.hparams.batch_erasing_p > 0:
            images = random_erasing(images, self.hparams.batch_erasing_p)
        net = self.net
        pooled = pool_features(net.feature_map(self._input(images)), net.pooling, net.lmp_parts)
        return parts, pooled, net.neck(pooled), len(images) - len(target_images)

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
            trainer = attached_trainer(self)
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer is not None and trainer.optimizers else None
            raise TrainingDivergedError(
                f"re-id loss is {loss.item()} on some process at step {self.global_step}; training stopped "
                f"before this update. Lower the optimizer's lr"
                f"{f' (now {lr:.3g})' if lr is not None else ''} or check the input data"
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
        """The injected optimiser over every trainable parameter (one group) and its scheduler, at
        the scheduler's ``interval`` (:func:`~crgan_lightning.schedules.fit_to_run`)."""
        optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        scheduler = fit_to_run(self.scheduler_factory(optimizer), attached_trainer(self))
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

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
