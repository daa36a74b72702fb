"""CRGANModule: trains the CR-GAN generator with the adversarial, identity, camera and context losses."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable

from ..checkpoints import REACHED_KEY
from ..data.keys import CAMID, IMAGE, MASK, PID, SOURCE, TARGET
from ..errors import ConfigError, WeightsError
from ..losses import AdversarialLoss, camera_loss, context_loss, identity_loss, r1_penalty
from ..models.discriminator import CLASSIFIER_CALL_ARGS, AuxiliaryClassifier, PatchDiscriminator, ReIDJudge
from ..models.generator import DualPathGenerator
from ..models.specs import ClassifierFactory, NetworkFactory, build_network, network_spec
from ..networks import load_reid_net
from .common import ManualGANModule
from .image_pool import ImagePool

#: Where a checkpoint keeps the judge ratios of the epochs trained so far (the stop rule's state).
RATIO_HISTORY_KEY = "judge_id_ratio_history"


class IdRatioStopRule:
    """When CR-GAN training stops: once renderings keep the source identity well enough.

    After every epoch the judge's ``id_ratio`` (its identity accuracy on renderings over its
    accuracy on real source images) is added with :meth:`update`, which says whether to stop:
    after at least ``min_epochs`` epochs, once the mean of the last ``window`` epoch ratios (the
    ones there are, at the start) reaches ``target``. ``target=0`` never stops (the trainer's
    ``max_epochs`` is the bound in every case). ``min_epochs=1, window=1`` is the plain rule: the
    first epoch whose ratio reaches ``target``.

    Why not the plain rule: near the target it is a knife edge. Two runs whose ratios differ by
    0.01 (0.698 against 0.70 after epoch 2) stop an epoch apart, and the generator changes most in
    those early epochs. A minimum number of epochs puts the earliest stop past that steep part, and
    the mean of two epochs halves the weight of any one epoch's ratio.

    :meth:`state_dict` / :meth:`load_state_dict` keep the ratios so far, so a resumed run decides
    as an uninterrupted one would.
    """

    def __init__(self, target: float, min_epochs: int = 1, window: int = 1) -> None:
        if not 0.0 <= target <= 1.0:
            raise ConfigError(f"target_id_ratio={target}; expected a fraction in [0, 1] (0: off)")
        for name, value in (("stop_min_epochs", min_epochs), ("stop_window", window)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}={value!r}; expected an integer >= 1")
        self.target, self.min_epochs, self.window = target, min_epochs, window
        self.history: list[float] = []

    def smoothed(self) -> float:
        """The mean of the last ``window`` epoch ratios (0 before the first epoch)."""
        recent = self.history[-self.window:]
        return sum(recent) / len(recent) if recent else 0.0

    def update(self, ratio: float) -> bool:
        """Add the ratio of the epoch just trained; True when training should stop after it."""
        self.history.append(float(ratio))
        return self.target > 0 and len(self.history) >= self.min_epochs and self.smoothed() >= self.target

    def state_dict(self) -> list[float]:
        return list(self.history)

    def load_state_dict(self, history: list[float]) -> None:
        self.history = [float(r) for r in history]


def with_free_border(mask_s: torch.Tensor, mask_t: torch.Tensor, border: int) -> torch.Tensor:
    """The target mask to give :func:`~crgan_lightning.losses.context_loss` so that its background
    term also leaves out a band of ``border`` pixels around the source person (and holes in its
    mask up to ``2 * border`` wide): ``max(mask_t, dilate(mask_s, border))``. There a generator
    that completes a poor source mask is not pulled back to the target's background. The
    foreground term still reads ``mask_s`` alone. Masks (B, 1, H, W) in [0, 1]; ``border=0``
    returns ``mask_t``."""
    if border <= 0:
        return mask_t
    grown = F.max_pool2d(mask_s.to(mask_t.dtype), 2 * border + 1, stride=1, padding=border)
    return torch.maximum(mask_t, grown)


def epochs_trained(ratios: list[float], target: float, min_epochs: int = 1, window: int = 1,
                   max_epochs: int | None = None) -> int:
    """How many epochs a run whose epoch ratios are ``ratios`` trains under
    :class:`IdRatioStopRule` (``max_epochs``, default ``len(ratios)``, is the bound)."""
    rule = IdRatioStopRule(target, min_epochs, window)
    bound = len(ratios) if max_epochs is None else min(max_epochs, len(ratios))
    for epoch, ratio in enumerate(ratios[:bound], start=1):
        if rule.update(ratio):
            return epoch
    return bound


class CRGANModule(ManualGANModule):
    """CR-GAN training (manual optimisation, three optimisers).

    Each training step, on a batch ``{"source": {image, pid, camid, mask}, "target": {image,
    camid, mask}}`` (each source image is paired with one target image of the batch):

    1. **Judge** of the identity and camera losses, its own optimiser. With ``judge`` (a re-id
       checkpoint of the same source) it is that frozen re-id network with a camera head trained on
       real target images; otherwise a classifier trained from scratch here (identity head on real
       source images, camera head on real target images, cross-entropy). Its accuracies on real
       images and on renderings are logged every epoch (``epoch/judge_id_acc_real``,
       ``epoch/judge_id_acc_rendered``, ``epoch/judge_id_ratio``, ``epoch/judge_cam_acc_*``).
    2. **Generator**: ``x_g = G(x_s, x_t)`` and
       ``L_G = lambda_adv * L_adv + lambda_id * L_id + lambda_cam * L_cam + lambda_context * L_context``
       with ``L_adv`` the adversarial loss of the domain discriminator on ``x_g`` (as real),
       ``L_id = -log p(y_id | x_g)`` (source identity), ``L_cam = -log p(y_cam | x_g)`` (camera of
       ``x_t``), both scored by the frozen classifier, and ``L_context`` the masked context
       loss (:func:`~crgan_lightning.losses.context_loss`). Identity and camera terms start after
       ``cls_warmup_steps`` so that the classifier is a useful judge first. A term whose weight is
       0 is not computed into ``L_G``: with ``lambda_adv: 0`` the discriminator does not score
       ``x_g`` for the generator (it still trains, so the step counts stay three per batch); with
       ``lambda_id`` and ``lambda_cam`` both 0 (or before ``cls_warmup_steps``) the judge scores a
       detached ``x_g`` without a graph, for its logged accuracies only.
    3. **Domain discriminator** (PatchGAN): real target images against generated ones (drawn
       through an image pool of ``pool_size``), plus ``r1_gamma / 2`` times the R1 gradient
       penalty on the real images (:func:`~crgan_lightning.losses.r1_penalty`; 0: off).

    The generator receives the target person masks ``m_t`` and the source person masks ``m_s`` of
    the batch (a generator reads those it needs: ``needs_target_masks``, ``needs_source_masks``;
    :class:`~crgan_lightning.models.compositor.CompositingGenerator` composites with both).

    Each backward pass touches only its own network's parameters (``toggle_optimizer``), so
    under DDP the module needs ``find_unused_parameters=True``; the CLI gives it
    ``ddp_find_unused_parameters_true`` for ``--trainer.strategy=ddp``. Every loss term is logged
    under ``train/``. A non-finite loss stops
    training on every process with :class:`~crgan_lightning.errors.TrainingDivergedError` before
    the update of the network whose loss diverged (no checkpoint is written after it), so the
    last checkpoint on disk stays the last good one.

    With three optimisers, Lightning's ``trainer.global_step`` (and so ``max_steps``) counts
    three steps per batch; ``cls_warmup_steps`` and the sample-grid interval count batches.

    Args:
        num_source_pids: identities of the source training set (linked from the DataModule).
        num_target_cameras: cameras of the target domain (linked from the DataModule).
        generator: the generator, a factory called with no argument (a ``class_path`` object in a
            config; default :class:`~crgan_lightning.models.generator.DualPathGenerator` with its
            own defaults); see :mod:`crgan_lightning.models.specs` for what Python code may pass.
        discriminator: the domain discriminator, likewise (default
            :class:`~crgan_lightning.models.discriminator.PatchDiscriminator`).
        classifier: the identity/camera classifier trained from scratch beside the generator when no
            ``judge`` is given (unused with one): a factory called with ``num_source_pids`` and
            ``num_target_cameras`` (default :class:`~crgan_lightning.models.discriminator.AuxiliaryClassifier`).
        judge: a re-id checkpoint of the same source (the direct-transfer run's ``last.ckpt``): its
            frozen network, which knows the source people from the first step, judges identities;
            only a camera head on its feature is trained (:class:`~crgan_lightning.models.discriminator.ReIDJudge`).
        target_id_ratio: stop training once the judge recognises the source identity in renderings
            at this fraction of its accuracy on real source images (``epoch/judge_id_ratio``; 0
            trains for ``max_epochs``), as :class:`IdRatioStopRule` decides with the two arguments below.
        stop_min_epochs: never stop on the ratio before this many epochs (1: from the first epoch).
        stop_window: compare the mean of the last this-many epoch ratios with ``target_id_ratio``
            (``epoch/judge_id_ratio_smoothed``; 1: the epoch's own ratio). The trainer's
            ``max_epochs`` stays the bound. ``1, 1`` is the plain first-epoch-past-the-target rule.
        context_free_border: pixels around the source mask (and holes up to twice as wide) that the
            context loss's background term leaves out (:func:`with_free_border`; 0, the default: the
            poster's term), so that a generator completing a poor mask is not pulled back there.
        r1_gamma: weight of the R1 gradient penalty of the discriminator on real target images,
            ``r1_gamma / 2 * E ||grad D(x_t)||^2`` (0, the default: off).
        gan_mode: ``lsgan``, ``vanilla`` or ``hinge``.
        lambda_adv, lambda_id, lambda_cam, lambda_context: loss weights (0 leaves a term out; at least
            one must be positive).
        context_reduction: ``l1`` or ``l2``.
        cls_warmup_steps: training batches before the identity and camera terms enter ``L_G``.
        lr_g, lr_d, lr_cls, betas: default Adam optimisers.
        g_optimizer, d_optimizer, cls_optimizer: optimisers injected from the CLI instead.
        g_scheduler, d_scheduler: learning-rate schedulers (stepped once per epoch); none by default.
        grad_clip: gradient-norm clipping of every network (0 disables it).
        pool_size, pool_seed: image pool of the discriminator (size 0 disables it); the pool is
            saved in checkpoints, so a resumed run continues with the same history.
        channels_last: channels-last memory format (faster convolutions on GPUs with AMP).
    """

    method = "CR-GAN"
    kind = "crgan"
    #: The injected networks (module arguments, and attributes of the same names).
    networks = ("generator", "discriminator", "classifier")
    divergence_hint = "Lower the learning rates, set grad_clip, or check the input masks"

    def __init__(
        self,
        num_source_pids: int = 0,
        num_target_cameras: int = 0,
        generator: NetworkFactory = None,
        discriminator: NetworkFactory = None,
        classifier: ClassifierFactory = None,
        judge: str | None = None,
        target_id_ratio: float = 0.0,
        stop_min_epochs: int = 1,
        stop_window: int = 1,
        r1_gamma: float = 0.0,
        context_free_border: int = 0,
        gan_mode: str = "lsgan",
        lambda_adv: float = 1.0,
        lambda_id: float = 1.0,
        lambda_cam: float = 1.0,
        lambda_context: float = 10.0,
        context_reduction: str = "l1",
        cls_warmup_steps: int = 0,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        lr_cls: float = 3.5e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        g_optimizer: OptimizerCallable | None = None,
        d_optimizer: OptimizerCallable | None = None,
        cls_optimizer: OptimizerCallable | None = None,
        g_scheduler: LRSchedulerCallable | None = None,
        d_scheduler: LRSchedulerCallable | None = None,
        grad_clip: float = 0.0,
        pool_size: int = 50,
        pool_seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if num_source_pids < 1 or num_target_cameras < 1:
            raise ConfigError(
                f"num_source_pids={num_source_pids}, num_target_cameras={num_target_cameras}: CR-GAN needs "
                "both (the CLI links them from data.num_source_pids and data.num_target_cameras)"
            )
        self.stop_rule = IdRatioStopRule(target_id_ratio, stop_min_epochs, stop_window)
        for name in ("lambda_adv", "lambda_id", "lambda_cam", "lambda_context", "grad_clip", "r1_gamma"):
            if locals()[name] < 0:
                raise ConfigError(f"{name}={locals()[name]} must be >= 0")
        if not isinstance(context_free_border, int) or context_free_border < 0:
            raise ConfigError(f"context_free_border={context_free_border!r}; expected an integer >= 0 (pixels)")
        if max(lambda_adv, lambda_id, lambda_cam, lambda_context) == 0:
            raise ConfigError("lambda_adv, lambda_id, lambda_cam and lambda_context are all 0: the generator would "
                              "have nothing to learn from; expected at least one positive weight")
        self.save_hyperparameters(ignore=["g_optimizer", "d_optimizer", "cls_optimizer", "g_scheduler",
                                          "d_scheduler", *self.networks])
        self.automatic_optimization = False
        self.generator = build_network(generator, DualPathGenerator, "generator")
        self.discriminator = build_network(discriminator, PatchDiscriminator, "discriminator")
        if judge:
            if not Path(judge).expanduser().is_file():
                raise WeightsError(f"judge {judge}: no such re-id checkpoint; train the direct-transfer run first "
                                   "(crgan fit --stage reid_direct; make train-crgan does it), or train CR-GAN without "
                                   "a judge: --model.init_args.judge=null (its classifier then learns the source "
                                   "identities beside the generator)")
            self.classifier = ReIDJudge(load_reid_net(judge), num_target_cameras)
            if self.classifier.num_identities != num_source_pids:
                raise ConfigError(f"judge {judge} classifies {self.classifier.num_identities} identities, but the "
                                  f"source has {num_source_pids}; expected a re-id run of the same source dataset")
        else:
            self.classifier = build_network(classifier, AuxiliaryClassifier, "classifier", num_source_pids,
                                            num_target_cameras)
        # the networks as specs (class_path, init_args): what a checkpoint rebuilds them from
        self._save_networks(generator=network_spec(self.generator), discriminator=network_spec(self.discriminator),
                            classifier=None if judge else network_spec(self.classifier, CLASSIFIER_CALL_ARGS))
        # judge accuracy counts of the epoch: identity on real source / rendered, camera on real target / rendered
        self.register_buffer("judged", torch.zeros(4, 2), persistent=False)
        self.reached_id_ratio = False  # the run stopped because renderings reached target_id_ratio
        if channels_last:
            for net in (self.generator, self.discriminator, self.classifier):
                net.to(memory_format=torch.channels_last)
        self.adversarial = AdversarialLoss(gan_mode)
        self.factories = {"g": g_optimizer, "d": d_optimizer, "cls": cls_optimizer,
                          "g_sched": g_scheduler, "d_sched": d_scheduler}
        self._refuse_shadowed_learning_rates()
        self.pool = ImagePool(pool_size, seed=pool_seed)

    # ------------------------------------------------------------------ set-up

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = self._optimizer("g", self.generator.parameters(), hp.lr_g)
        opt_d = self._optimizer("d", self.discriminator.parameters(), hp.lr_d)
        opt_c = self._optimizer("cls", [p for p in self.classifier.parameters() if p.requires_grad], hp.lr_cls)
        return [opt_g, opt_d, opt_c], self._schedulers({"g": opt_g, "d": opt_d})

    # ------------------------------------------------------------------ training

    def render(self, x_s: torch.Tensor, x_t: torch.Tensor, m_t: torch.Tensor | None = None,
               m_s: torch.Tensor | None = None) -> torch.Tensor:
        """``G(x_s, x_t)``: source persons (B,3,H,W) rendered into target contexts (B,3,H,W), in [-1, 1];
        ``m_t`` and ``m_s`` (B,1,H,W), the target and source person masks, are read by a generator
        that needs them (``target_input: masked``, the compositing generator)."""
        return self.generator(self._cl(x_s), self._cl(x_t), m_t, m_s)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp = self.hparams
        if TARGET not in batch:
            raise ConfigError("CR-GAN trains on source and target images: set data.with_target=true")
        src, tgt = batch[SOURCE], batch[TARGET]
        x_s, pid, m_s = src[IMAGE], src[PID], src[MASK]
        pair = torch.arange(len(x_s), device=x_s.device) % len(tgt[IMAGE])
        x_t, cam_t, m_t = tgt[IMAGE][pair], tgt[CAMID][pair], tgt[MASK][pair]
        opt_g, opt_d, opt_c = self.optimizers()
        b = len(x_s)

        # 1. classifier on real images: identities of the source, cameras of the target
        self.toggle_optimizer(opt_c)
        id_logits, cam_logits = self.classifier(self._cl(torch.cat([x_s, x_t])))
        cls_id = identity_loss(id_logits[:b], pid)
        cls_cam = camera_loss(cam_logits[b:], cam_t)
        loss_c = cls_id + cls_cam
        self._check_finite("classifier", loss_c, {"id": cls_id, "cam": cls_cam})
        self._step(opt_c, loss_c)
        self.untoggle_optimizer(opt_c)

        # 2. generator
        self.toggle_optimizer(opt_g)
        x_g = self.render(x_s, x_t, m_t, m_s)
        judged = self.trainer.fit_loop.total_batch_idx >= hp.cls_warmup_steps
        with self.classifier.frozen():
            if judged and (hp.lambda_id > 0 or hp.lambda_cam > 0):
                id_g, cam_g = self.classifier(self._cl(x_g))
            else:  # no identity or camera term in L_G: scored for the logged accuracies only
                with torch.no_grad():
                    id_g, cam_g = self.classifier(self._cl(x_g.detach()))
        l_id, l_cam = identity_loss(id_g, pid), camera_loss(cam_g, cam_t)
        ctx, ctx_fg, ctx_bg = context_loss(x_g, x_s, x_t, m_s, with_free_border(m_s, m_t, hp.context_free_border),
                                           reduction=hp.context_reduction)
        terms = {"id": l_id, "cam": l_cam, "context": ctx}
        weighted = [(hp.lambda_context, ctx)]
        if judged:
            weighted += [(hp.lambda_id, l_id), (hp.lambda_cam, l_cam)]
        if hp.lambda_adv > 0:
            terms["adv"] = adv_g = self.adversarial(self.discriminator(self._cl(x_g)), True, for_discriminator=False)
            weighted.append((hp.lambda_adv, adv_g))
        loss_g = sum((weight * term for weight, term in weighted if weight > 0), x_g.sum() * 0.0)
        self._check_finite("generator", loss_g, terms)
        self._step(opt_g, loss_g)
        self.untoggle_optimizer(opt_g)

        # 3. domain discriminator: real target vs rendered (through the pool)
        self.toggle_optimizer(opt_d)
        x_real = self._cl(x_t).detach().requires_grad_(hp.r1_gamma > 0)
        logits_real = self.discriminator(x_real)
        d_real = self.adversarial(logits_real, True)
        d_fake = self.adversarial(self.discriminator(self._cl(self.pool.query(x_g))), False)
        loss_d = 0.5 * (d_real + d_fake)
        d_terms = {"real": d_real, "fake": d_fake}
        if hp.r1_gamma > 0:
            d_terms["r1"] = r1 = r1_penalty(logits_real, x_real)
            loss_d = loss_d + 0.5 * hp.r1_gamma * r1
        self._check_finite("discriminator", loss_d, d_terms)
        self._step(opt_d, loss_d)
        self.untoggle_optimizer(opt_d)

        logged = {f"train/d_{k}": v for k, v in d_terms.items() if k == "r1"}
        if "adv" in terms:
            logged["train/g_adv"] = terms["adv"]
        self.log_dict({
            **logged, "train/g_loss": loss_g, "train/g_id": l_id, "train/g_cam": l_cam,
            "train/g_context": ctx, "train/g_context_fg": ctx_fg, "train/g_context_bg": ctx_bg,
            "train/d_loss": loss_d, "train/d_real": d_real, "train/d_fake": d_fake,
            "train/cls_id": cls_id, "train/cls_cam": cls_cam,
            "train/cls_id_acc": (id_logits[:b].argmax(1) == pid).float().mean(),
            "train/cls_cam_acc": (cam_logits[b:].argmax(1) == cam_t).float().mean(),
        }, on_step=True, on_epoch=False)
        with torch.no_grad():
            for row, (logits, labels) in enumerate(((id_logits[:b], pid), (id_g, pid), (cam_logits[b:], cam_t),
                                                    (cam_g, cam_t))):
                self.judged[row] += torch.stack([(logits.argmax(1) == labels).sum(), labels.new_tensor(len(labels))])
        self.log("g", loss_g, prog_bar=True, logger=False)
        self.log("d", loss_d, prog_bar=True, logger=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["image_pool"] = self.pool.state_dict()
        checkpoint[REACHED_KEY] = self.reached_id_ratio
        checkpoint[RATIO_HISTORY_KEY] = self.stop_rule.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "image_pool" in checkpoint:
            self.pool.load_state_dict(checkpoint["image_pool"])
        self.reached_id_ratio = bool(checkpoint.get(REACHED_KEY, False))
        self.stop_rule.load_state_dict(checkpoint.get(RATIO_HISTORY_KEY, []))

    def on_train_epoch_start(self) -> None:
        self.judged.zero_()

    def judge_accuracies(self) -> dict[str, float]:
        """The judge's accuracies over the epoch so far, summed over every process: identity on real
        source images and on renderings, camera on real target images and on renderings, and
        ``id_ratio`` = rendered / real identity accuracy (how well renderings keep the person)."""
        counts = self.trainer.strategy.reduce(self.judged.clone(), reduce_op="sum")
        acc = (counts[:, 0] / counts[:, 1].clamp(min=1)).tolist()
        names = ("id_acc_real", "id_acc_rendered", "cam_acc_real", "cam_acc_rendered")
        out = dict(zip(names, acc))
        out["id_ratio"] = out["id_acc_rendered"] / out["id_acc_real"] if out["id_acc_real"] > 0 else 0.0
        return out

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """After the epoch's last batch (before the epoch-end checkpoint is written): log the judge's
        accuracies of the epoch and, once :class:`IdRatioStopRule` says the renderings keep the
        identity (``target_id_ratio``, ``stop_min_epochs``, ``stop_window``), stop training; the
        checkpoint records that the run ended there and the ratios so far (:meth:`on_save_checkpoint`)."""
        if batch_idx + 1 != self.trainer.num_training_batches:
            return
        accuracies = self.judge_accuracies()
        stop = self.stop_rule.update(accuracies["id_ratio"])  # the same sums on every process: all agree
        accuracies["id_ratio_smoothed"] = self.stop_rule.smoothed()
        self.log_dict({f"epoch/judge_{name}": value for name, value in accuracies.items()},
                      on_step=False, on_epoch=True)
        if stop:
            self.trainer.should_stop = True
            self.reached_id_ratio = True

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()
