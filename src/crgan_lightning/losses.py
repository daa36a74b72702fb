"""Loss functions of the library.

Re-id: label-smoothed cross-entropy and the batch-hard triplet loss. CR-GAN: the adversarial
loss (lsgan / vanilla / hinge), the identity and camera losses on generated images, and the
masked context loss. All take plain tensors and return scalar tensors, so they can be tested
on hand-made values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError


def cross_entropy_label_smooth(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy against ``(1 - epsilon) * one_hot + epsilon / num_classes`` (Szegedy et al.).

    logits (B, N) float; targets (B,) int in [0, N). Returns the batch mean.
    """
    return F.cross_entropy(logits.float(), targets, label_smoothing=epsilon)


def pairwise_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (N, M) between rows of x (N, D) and y (M, D), clamped away from 0
    so that the square root stays differentiable."""
    d2 = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * x @ y.t()
    return d2.clamp_min(1e-12).sqrt()


def batch_hard_triplet_loss(
    features: torch.Tensor, pids: torch.Tensor, margin: float | None = 0.3, normalize: bool = False
) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al., 2017).

    For each anchor, the farthest positive and the nearest negative in the batch:
    ``mean(relu(d(a, p_hard) - d(a, n_hard) + margin))``. ``margin=None`` uses the soft-margin
    form ``softplus(d_ap - d_an)``. Anchors without a positive or a negative in the batch are
    left out (a P x K batch with K >= 2 has both for every anchor).

    features (B, D) float; pids (B,) int. Returns a scalar (0 when no anchor qualifies).
    """
    feats = F.normalize(features.float(), dim=1) if normalize else features.float()
    dist = pairwise_euclidean(feats, feats)
    same = pids.unsqueeze(0) == pids.unsqueeze(1)
    eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    pos_mask, neg_mask = same & ~eye, ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not valid.any():
        return dist.sum() * 0.0
    d_ap = dist.masked_fill(~pos_mask, float("-inf")).amax(1)[valid]
    d_an = dist.masked_fill(~neg_mask, float("inf")).amin(1)[valid]
    if margin is None:
        return F.softplus(d_ap - d_an).mean()
    return F.relu(d_ap - d_an + margin).mean()


# --------------------------------------------------------------------------------------------
# CR-GAN losses: adversarial, identity, camera and context.
# --------------------------------------------------------------------------------------------

ADVERSARIAL_MODES = ("lsgan", "vanilla", "hinge")


class AdversarialLoss(nn.Module):
    """GAN loss on raw discriminator outputs (logits), for the discriminator and the generator.

    ``loss(pred, target_is_real, for_discriminator=True)``: ``pred`` is any tensor of logits
    (a PatchGAN map (B, 1, h, w) or a vector (B,)); the result is a scalar averaged over all
    its elements. Modes:

    - ``"lsgan"`` (Mao et al., 2017): ``mean((pred - 1)^2)`` against real, ``mean(pred^2)``
      against fake.
    - ``"vanilla"`` (Goodfellow et al., 2014, non-saturating): binary cross-entropy with
      logits, ``mean(softplus(-pred))`` against real, ``mean(softplus(pred))`` against fake.
    - ``"hinge"`` (Lim and Ye, 2017; Miyato et al., 2018): discriminator
      ``mean(relu(1 - pred))`` on real and ``mean(relu(1 + pred))`` on fake; generator
      ``-mean(pred)``.

    For ``lsgan`` and ``vanilla`` the discriminator and the generator use the same formula (the
    generator asks for ``target_is_real=True`` on its fakes), so ``for_discriminator`` only
    matters for ``hinge``, where the generator loss must be called with ``target_is_real=True``.
    Computed in float32 whatever the input precision. Unknown ``mode`` raises
    :class:`~crgan_lightning.errors.ConfigError`.
    """

    def __init__(self, mode: str = "lsgan") -> None:
        super().__init__()
        if mode not in ADVERSARIAL_MODES:
            raise ConfigError(f"adversarial loss mode={mode!r}; expected one of {ADVERSARIAL_MODES}")
        self.mode = mode

    def forward(
        self, pred: torch.Tensor, target_is_real: bool, for_discriminator: bool = True
    ) -> torch.Tensor:
        pred = pred.float()
        if self.mode == "lsgan":
            target = 1.0 if target_is_real else 0.0
            return (pred - target).pow(2).mean()
        if self.mode == "vanilla":
            target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
            return F.binary_cross_entropy_with_logits(pred, target)
        if for_discriminator:
            return F.relu(1.0 - pred).mean() if target_is_real else F.relu(1.0 + pred).mean()
        if not target_is_real:
            raise ValueError("hinge generator loss is defined for target_is_real=True only")
        return -pred.mean()


def identity_loss(id_logits: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
    """Identity loss ``-log p(y_id | x_g)``: cross-entropy of the classifier's identity logits on
    generated images against the identities of their SOURCE persons.

    id_logits (B, num_identities) float; pids (B,) int in [0, num_identities). Returns the batch mean.
    """
    return F.cross_entropy(id_logits.float(), pids)


def camera_loss(cam_logits: torch.Tensor, target_camids: torch.Tensor) -> torch.Tensor:
    """Camera loss ``-log p(y_cam | x_g)``: cross-entropy of the classifier's camera logits on
    generated images against the camera of the TARGET image ``x_t`` each was rendered into.

    cam_logits (B, num_cameras) float; target_camids (B,) int in [0, num_cameras). Returns the batch mean.
    """
    return F.cross_entropy(cam_logits.float(), target_camids)


def _masked_mean_error(diff: torch.Tensor, mask: torch.Tensor, squared: bool, eps: float) -> torch.Tensor:
    """``mean_b [ sum(err_b * M_b) / (C * sum(M_b) + eps) ]`` with err = |diff| or diff^2."""
    err = diff.pow(2) if squared else diff.abs()
    channels = diff.shape[1]
    num = (err * mask).sum(dim=(1, 2, 3))
    den = channels * mask.sum(dim=(1, 2, 3)) + eps
    return (num / den).mean()


def context_loss(
    x_g: torch.Tensor,
    x_s: torch.Tensor,
    x_t: torch.Tensor,
    mask_s: torch.Tensor,
    mask_t: torch.Tensor,
    reduction: str = "l1",
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Context loss ``||(x_g - x_s) * M_F|| + ||(x_g - x_t) * M_B||``; returns ``(total, fg_term, bg_term)``.

    - ``M_F = mask_s``: the foreground of the SOURCE person. There, ``x_g`` must keep the
      source person (``fg_term`` compares ``x_g`` with ``x_s``).
    - ``M_B = (1 - mask_s) * (1 - mask_t)``: background in both images. There, ``x_g`` must
      show the target's context (``bg_term`` compares ``x_g`` with ``x_t``). The target's own
      person is left out (copying it would paste a second person next to the source one), and
      so is the place where the source person stands.

    Each term is normalised by its mask area, per image, then averaged over the batch::

        term = mean_b [ sum_{c,h,w} |diff| * M  /  (C * sum_{h,w} M + eps) ]

    i.e. the mean absolute error per masked pixel and channel (``reduction="l2"``: mean squared
    error), so that a small person is not under-weighted against a large one, and an image
    whose mask is empty contributes 0. ``total = fg_term + bg_term``. The loss is exactly 0
    when ``x_g`` equals ``x_s`` wherever ``M_F > 0`` and ``x_t`` wherever ``M_B > 0``, whatever
    it holds elsewhere (pixels on the target person outside the source mask are free), and
    grows with the error inside the masks.

    Shapes: ``x_g``, ``x_s``, ``x_t`` (B, C, H, W) float in [-1, 1]; ``mask_s``, ``mask_t``
    (B, 1, H, W) float in [0, 1], 1 on the person (soft masks weight pixels proportionally).
    Returns three scalars.
    """
    if reduction not in ("l1", "l2"):
        raise ConfigError(f"context loss reduction={reduction!r}; expected 'l1' or 'l2'")
    if not (x_g.shape == x_s.shape == x_t.shape) or x_g.dim() != 4:
        raise ValueError(
            f"context loss images must share one (B, C, H, W) shape; got x_g {tuple(x_g.shape)}, "
            f"x_s {tuple(x_s.shape)}, x_t {tuple(x_t.shape)}"
        )
    expected = (x_g.shape[0], 1, *x_g.shape[2:])
    for name, m in (("mask_s", mask_s), ("mask_t", mask_t)):
        if tuple(m.shape) != expected:
            raise ValueError(f"context loss {name} has shape {tuple(m.shape)}; expected {expected}")
    x_g, x_s, x_t = x_g.float(), x_s.float(), x_t.float()
    m_f = mask_s.float()
    m_b = (1.0 - m_f) * (1.0 - mask_t.float())
    squared = reduction == "l2"
    fg = _masked_mean_error(x_g - x_s, m_f, squared, eps)
    bg = _masked_mean_error(x_g - x_t, m_b, squared, eps)
    return fg + bg, fg, bg


# --------------------------------------------------------------------------------------------
# SPGAN loss: the contrastive loss of the Siamese metric network.
# --------------------------------------------------------------------------------------------


def contrastive_loss(
    x1_feat: torch.Tensor, x2_feat: torch.Tensor, label: torch.Tensor, margin: float = 2.0
) -> torch.Tensor:
    """Contrastive loss (Hadsell, Chopra and LeCun, 2006) as written in SPGAN (Deng et al., 2018)::

        mean over pairs of  label * d^2 + (1 - label) * max(0, margin - d)^2

    with ``d = ||x1_feat - x2_feat||_2``: a positive pair (label 1) is pulled together, a
    negative pair (label 0) is pushed apart until it is ``margin`` away, after which it costs
    nothing. No 1/2 factor (Hadsell et al. halve both terms; SPGAN's equation does not), so the
    SPGAN weight ``lambda=2`` applies to this sum as published.

    x1_feat, x2_feat (N, D) float; label (N,) with 1 for positive pairs, 0 for negative ones
    (bool, int or float). Returns a scalar. The distance of negative pairs is computed as
    ``sqrt(max(d^2, 1e-12))`` so that identical features have a finite gradient.
    """
    if x1_feat.shape != x2_feat.shape or x1_feat.dim() != 2:
        raise ValueError(f"contrastive loss features must share one (N, D) shape; got "
                         f"{tuple(x1_feat.shape)} and {tuple(x2_feat.shape)}")
    if label.shape != x1_feat.shape[:1]:
        raise ValueError(f"contrastive loss label has shape {tuple(label.shape)}; expected ({len(x1_feat)},)")
    label = label.float()
    d2 = (x1_feat.float() - x2_feat.float()).pow(2).sum(1)
    push = F.relu(margin - d2.clamp_min(1e-12).sqrt()).pow(2)
    return (label * d2 + (1.0 - label) * push).mean()
