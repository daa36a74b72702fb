"""SPGANModule: the SPGAN baseline (Deng et al., CVPR 2018), a CycleGAN with a Siamese contrastive loss."""

from __future__ import annotations

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable

from ..data.keys import IMAGE, SOURCE, TARGET
from ..errors import ConfigError
from ..losses import AdversarialLoss, contrastive_loss
from ..models.discriminator import PatchDiscriminator
from ..models.spgan import ResnetGenerator, SiameseNet
from ..models.specs import NetworkFactory, build_network, network_spec
from .common import ManualGANModule
from .image_pool import ImagePool


class SPGANModule(ManualGANModule):
    """SPGAN training (Deng et al., "Image-Image Domain Adaptation with Preserved Self-Similarity
    and Domain-Dissimilarity for Person Re-identification", CVPR 2018); manual optimisation,
    three optimisers.

    Networks: ``generator_st`` (G, source -> target), ``generator_ts`` (F, target -> source),
    ``discriminator_t`` (real target images vs ``G(x_s)``), ``discriminator_s`` (real source
    images vs ``F(x_t)``), both PatchGAN, and ``siamese`` (the SiaNet,
    :class:`~crgan_lightning.models.spgan.SiameseNet`). Each training step, on a batch
    ``{"source": {image, ...}, "target": {image, ...}}`` (identities, cameras and masks are not
    used):

    1. **Generators** (one optimiser for G and F)::

           L_G = L_adv(D_T(G(x_s))) + L_adv(D_S(F(x_t)))
                 + lambda_cycle    * (|F(G(x_s)) - x_s|_1 + |G(F(x_t)) - x_t|_1)
                 + lambda_identity * (|G(x_t) - x_t|_1 + |F(x_s) - x_s|_1)
                 + lambda_siamese  * L_con

       ``L_con`` is :func:`~crgan_lightning.losses.contrastive_loss` (margin ``margin``) of the
       SiaNet embeddings, scored by the SiaNet frozen for this step, over one pair list:
       positive pairs ``(x_s, G(x_s))`` and ``(x_t, F(x_t))`` (self-similarity: a translated
       image keeps the identity of its input) and negative pairs ``(G(x_s), x_t)`` and
       ``(F(x_t), x_s)`` (domain-dissimilarity). The negative pairs follow the paper: a
       translated image and an image of the domain it was translated into, because the two
       domains share no identities, so a translated source person must stay distinguishable
       from every target person however target-like its style becomes. Negatives pair the
       i-th images of the two batches (as many as the smaller batch holds). The term enters
       ``L_G`` from epoch ``siamese_start_epoch`` on (default 0, from the start); a later start
       warms up with a plain CycleGAN while the SiaNet itself already trains, so that it is a
       useful judge when its term joins.
    2. **Discriminators** (one optimiser for D_T and D_S): ``0.5 * (real + fake)`` each, summed;
       the fakes are drawn through an image pool of ``pool_size`` per discriminator.
    3. **SiaNet**: the same contrastive loss on the same pairs, with the generated images
       detached, so it learns the metric the generators are held to.

    Each backward pass touches only its own networks' parameters (``toggle_optimizer``), so
    under DDP the module needs ``find_unused_parameters=True``; the CLI gives it
    ``ddp_find_unused_parameters_true`` for ``--trainer.strategy=ddp``. Every loss term is logged
    under ``train/``. A non-finite loss stops
    training on every process with :class:`~crgan_lightning.errors.TrainingDivergedError` before
    the update of the networks whose loss diverged, so the last checkpoint on disk stays the
    last good one. With three optimisers, ``trainer.global_step`` (and so ``max_steps``) counts
    three steps per batch.

    :meth:`render` is ``G(x_s)``; :func:`~crgan_lightning.networks.load_spgan_generator`
    reads G (or F) back from a checkpoint.

    Args:
        generator: the two generators, a factory called once for each (a ``class_path`` object in a
            config; default :class:`~crgan_lightning.models.spgan.ResnetGenerator` with its own
            defaults: 9 residual blocks; CycleGAN uses 9 at 256x256 and 6 at 128x128); see
            :mod:`crgan_lightning.models.specs` for what Python code may pass.
        discriminator: the two discriminators, likewise (default
            :class:`~crgan_lightning.models.discriminator.PatchDiscriminator`).
        siamese: the SiaNet, likewise (default :class:`~crgan_lightning.models.spgan.SiameseNet`:
            64 and 128 wide, as in the paper).
        gan_mode: ``lsgan`` (SPGAN's, from CycleGAN), ``vanilla`` or ``hinge``.
        lambda_cycle, lambda_identity, lambda_siamese: loss weights (10, 5, 2 in the paper).
        margin: contrastive margin (2 in the paper).
        siamese_start_epoch: first epoch whose generator loss includes the contrastive term.
        lr_g, lr_d, lr_siamese, betas: default Adam optimisers.
        g_optimizer, d_optimizer, siamese_optimizer: optimisers injected from the CLI instead.
        g_scheduler, d_scheduler: learning-rate schedulers (stepped once per epoch; CycleGAN
            decays linearly to 0 over the second half of training); none by default.
        grad_clip: gradient-norm clipping of every optimiser's networks (0 disables it).
        pool_size, pool_seed: image pools of the discriminators (size 0 disables them); they
            are saved in checkpoints, so a resumed run continues with the same history.
        channels_last: channels-last memory format (faster convolutions on GPUs with AMP).
    """

    method = "SPGAN"
    kind = "spgan"
    #: The injected networks (module arguments; each builds two networks but the SiaNet).
    networks = ("generator", "discriminator", "siamese")

    def __init__(
        self,
        generator: NetworkFactory = None,
        discriminator: NetworkFactory = None,
        siamese: NetworkFactory = None,
        gan_mode: str = "lsgan",
        lambda_cycle: float = 10.0,
        lambda_identity: float = 5.0,
        lambda_siamese: float = 2.0,
        margin: float = 2.0,
        siamese_start_epoch: int = 0,
        lr_g: float = 2e-4,
        lr_d: float = 2e-4,
        lr_siamese: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        g_optimizer: OptimizerCallable | None = None,
        d_optimizer: OptimizerCallable | None = None,
        siamese_optimizer: OptimizerCallable | None = None,
        g_scheduler: LRSchedulerCallable | None = None,
        d_scheduler: LRSchedulerCallable | None = None,
        grad_clip: float = 0.0,
        pool_size: int = 50,
        pool_seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        for name in ("lambda_cycle", "lambda_identity", "lambda_siamese", "grad_clip", "siamese_start_epoch"):
            if locals()[name] < 0:
                raise ConfigError(f"{name}={locals()[name]} must be >= 0")
        if margin <= 0:
            raise ConfigError(f"margin={margin} must be > 0 (the distance negative pairs are pushed to)")
        self.save_hyperparameters(ignore=["g_optimizer", "d_optimizer", "siamese_optimizer", "g_scheduler",
                                          "d_scheduler", *self.networks])
        self.automatic_optimization = False
        self.generator_st = build_network(generator, ResnetGenerator, "generator")
        self.generator_ts = build_network(generator, ResnetGenerator, "generator")
        self.discriminator_t = build_network(discriminator, PatchDiscriminator, "discriminator")
        self.discriminator_s = build_network(discriminator, PatchDiscriminator, "discriminator")
        self.siamese = build_network(siamese, SiameseNet, "siamese")
        # the networks as specs (class_path, init_args): what a checkpoint rebuilds them from
        self._save_networks(generator=network_spec(self.generator_st), discriminator=network_spec(self.discriminator_t),
                            siamese=network_spec(self.siamese))
        if channels_last:
            for net in (self.generator_st, self.generator_ts, self.discriminator_t, self.discriminator_s,
                        self.siamese):
                net.to(memory_format=torch.channels_last)
        self.adversarial = AdversarialLoss(gan_mode)
        self.factories = {"g": g_optimizer, "d": d_optimizer, "siamese": siamese_optimizer,
                          "g_sched": g_scheduler, "d_sched": d_scheduler}
        self._refuse_shadowed_learning_rates()
        self.pool_t = ImagePool(pool_size, seed=pool_seed)  # G(x_s) for discriminator_t
        self.pool_s = ImagePool(pool_size, seed=pool_seed + 1)  # F(x_t) for discriminator_s

    # ------------------------------------------------------------------ set-up

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = self._optimizer("g", [*self.generator_st.parameters(), *self.generator_ts.parameters()], hp.lr_g)
        opt_d = self._optimizer("d", [*self.discriminator_t.parameters(), *self.discriminator_s.parameters()],
                                hp.lr_d)
        opt_sia = self._optimizer("siamese", self.siamese.parameters(), hp.lr_siamese)
        return [opt_g, opt_d, opt_sia], self._schedulers({"g": opt_g, "d": opt_d})

    # ------------------------------------------------------------------ training

    def render(self, x_s: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """``G(x_s)``: source images (B,3,H,W) translated to the target style, in [-1, 1]. ``x_t`` is
        unused (SPGAN translates the whole image); the argument lets SPGAN stand wherever a
        context-rendering model is expected, e.g. :class:`~crgan_lightning.callbacks.images.SampleGridCallback`."""
        return self.generator_st(self._cl(x_s))

    def _contrastive(self, x_s: torch.Tensor, x_t: torch.Tensor, fake_t: torch.Tensor,
                     fake_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(L_con, mean positive distance, mean negative distance)`` of the SiaNet over the SPGAN pairs:
        positives ``(x_s, G(x_s))``, ``(x_t, F(x_t))``; negatives ``(G(x_s), x_t)``, ``(F(x_t), x_s)``."""
        b_s, b_t = len(x_s), len(x_t)
        n = min(b_s, b_t)
        f_s, f_t, f_gs, f_ft = self.siamese(self._cl(torch.cat([x_s, x_t, fake_t, fake_s]))).split(
            [b_s, b_t, b_s, b_t])
        x1 = torch.cat([f_s, f_t, f_gs[:n], f_ft[:n]])
        x2 = torch.cat([f_gs, f_ft, f_t[:n], f_s[:n]])
        label = torch.cat([x1.new_ones(b_s + b_t), x1.new_zeros(2 * n)])
        with torch.no_grad():
            dist = (x1 - x2).norm(dim=1)
        return contrastive_loss(x1, x2, label, self.hparams.margin), dist[label > 0].mean(), dist[label == 0].mean()

    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp = self.hparams
        if TARGET not in batch:
            raise ConfigError("SPGAN trains on source and target images: set data.with_target=true")
        x_s, x_t = batch[SOURCE][IMAGE], batch[TARGET][IMAGE]
        opt_g, opt_d, opt_sia = self.optimizers()

        # 1. generators G (S->T) and F (T->S)
        self.toggle_optimizer(opt_g)
        fake_t = self.generator_st(self._cl(x_s))
        fake_s = self.generator_ts(self._cl(x_t))
        adv_t = self.adversarial(self.discriminator_t(self._cl(fake_t)), True, for_discriminator=False)
        adv_s = self.adversarial(self.discriminator_s(self._cl(fake_s)), True, for_discriminator=False)
        cycle = ((self.generator_ts(self._cl(fake_t)) - x_s).abs().mean()
                 + (self.generator_st(self._cl(fake_s)) - x_t).abs().mean())
        with torch.set_grad_enabled(hp.lambda_identity > 0):  # logged either way; no backward pass when off
            identity = ((self.generator_st(self._cl(x_t)) - x_t).abs().mean()
                        + (self.generator_ts(self._cl(x_s)) - x_s).abs().mean())
        w_siamese = hp.lambda_siamese if self.current_epoch >= hp.siamese_start_epoch else 0.0
        with torch.set_grad_enabled(w_siamese > 0):
            con_g, _, _ = self._contrastive(x_s, x_t, fake_t, fake_s)
        loss_g = adv_t + adv_s + hp.lambda_cycle * cycle + hp.lambda_identity * identity + w_siamese * con_g
        terms = {"adv_t": adv_t, "adv_s": adv_s, "cycle": cycle, "identity": identity, "contrastive": con_g}
        self._check_finite("generator", loss_g, terms)
        self._step(opt_g, loss_g)
        self.untoggle_optimizer(opt_g)
        fake_t, fake_s = fake_t.detach(), fake_s.detach()

        # 2. discriminators: real vs generated (through the pools)
        self.toggle_optimizer(opt_d)
        d_t_real = self.adversarial(self.discriminator_t(self._cl(x_t)), True)
        d_t_fake = self.adversarial(self.discriminator_t(self._cl(self.pool_t.query(fake_t))), False)
        d_s_real = self.adversarial(self.discriminator_s(self._cl(x_s)), True)
        d_s_fake = self.adversarial(self.discriminator_s(self._cl(self.pool_s.query(fake_s))), False)
        loss_d = 0.5 * (d_t_real + d_t_fake) + 0.5 * (d_s_real + d_s_fake)
        self._check_finite("discriminator", loss_d, {"t_real": d_t_real, "t_fake": d_t_fake,
                                                     "s_real": d_s_real, "s_fake": d_s_fake})
        self._step(opt_d, loss_d)
        self.untoggle_optimizer(opt_d)

        # 3. SiaNet on the same pairs, generated images detached
        self.toggle_optimizer(opt_sia)
        loss_sia, pos_dist, neg_dist = self._contrastive(x_s, x_t, fake_t, fake_s)
        self._check_finite("siamese", loss_sia, {"contrastive": loss_sia})
        self._step(opt_sia, loss_sia)
        self.untoggle_optimizer(opt_sia)

        self.log_dict({
            "train/g_loss": loss_g, "train/g_adv_t": adv_t, "train/g_adv_s": adv_s, "train/g_cycle": cycle,
            "train/g_identity": identity, "train/g_contrastive": con_g,
            "train/d_loss": loss_d, "train/d_t_real": d_t_real, "train/d_t_fake": d_t_fake,
            "train/d_s_real": d_s_real, "train/d_s_fake": d_s_fake,
            "train/siamese_loss": loss_sia, "train/siamese_pos_dist": pos_dist, "train/siamese_neg_dist": neg_dist,
        }, on_step=True, on_epoch=False)
        self.log("g", loss_g, prog_bar=True, logger=False)
        self.log("d", loss_d, prog_bar=True, logger=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["image_pools"] = {"target": self.pool_t.state_dict(), "source": self.pool_s.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        pools = checkpoint.get("image_pools", {})
        if "target" in pools:
            self.pool_t.load_state_dict(pools["target"])
        if "source" in pools:
            self.pool_s.load_state_dict(pools["source"])

    def on_train_epoch_end(self) -> None:
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()
