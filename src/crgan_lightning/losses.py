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


def r1_penalty(logits_real: torch.Tensor, x_real: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty (Mescheder, Geiger and Nowozin, 2018): ``mean_b ||d sum(D(x_b)) / d x_b||^2``,
    the squared norm of the discriminator's gradient with respect to each REAL image, averaged
    over the batch. Weighted by ``gamma / 2`` it smooths the discriminator around the real data.

    ``logits_real``: the discriminator's output on ``x_real`` (any shape; a PatchGAN map is summed
    per image), computed from ``x_real`` (B, C, H, W) with ``requires_grad=True``. The graph is
    kept (``create_graph``) so the penalty trains the discriminator. Returns a scalar."""
    if not x_real.requires_grad:
        raise ValueError("r1_penalty needs x_real with requires_grad=True (the discriminator's input)")
    (grad,) = torch.autograd.grad(logits_real.float().sum(), x_real, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


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


# --------------------------------------------------------------------------------------------
# TAUDL losses: per-camera tracklet discrimination (PCTD) and cross-camera tracklet
# association (CCTA) with a tracklet memory.
#
# TAUDL (Li, Zhu, Gong, ECCV 2018) and UTAL (TPAMI 2019) learn on an unlabelled target from
# within-camera tracklets only (data/tracklets.py): each camera's tracklets are the classes of
# that camera's own classifier branch (PCTD), and each image is drawn towards the tracklets of
# OTHER cameras that are nearest to it in the shared feature space (CCTA). No cross-camera
# label is ever used. The official code combines them as (1 - lambda) * PCTD + lambda * CCTA with
# lambda = 0.7 (taudl_image.py / reid/trainers.py of liminxian/Tracklet-Association-Unsupervised-
# Deep-Learning); that weighting belongs to the training module. Values taken from that code:
# lambda, the neighbourhood K = cameras // 2 and the kernel; the papers' own text (UTAL's memory
# update rate and any temperature) was not available to us, so the memory momentum (0.5) and the
# temperature (0.1 on cosine similarity) are our choices, named as such below.
# --------------------------------------------------------------------------------------------


def per_camera_tracklet_loss(
    features: torch.Tensor,
    camids: torch.Tensor,
    camera_tracklets: torch.Tensor,
    classifiers,
    epsilon: float = 0.0,
) -> torch.Tensor:
    """Per-camera tracklet discrimination (PCTD): softmax cross-entropy of each image against the
    tracklets of its own camera, through that camera's own classifier branch.

    Only the images of camera ``c`` go through ``classifiers[c]``; their label is their tracklet
    id inside camera ``c``. The result is the mean over all images of the batch (TAUDL's
    formulation, the CE averaged over the mini-batch; the official code instead sums the
    per-camera means, which weights cameras rather than images). A branch without image in the
    batch is still run on an empty slice, so that every branch takes part in the graph and DDP
    needs no ``find_unused_parameters``.

    Args:
        features: (B, D) shared features.
        camids: (B,) int, camera of each image, in ``[0, len(classifiers))``.
        camera_tracklets: (B,) int, tracklet id of each image inside its camera.
        classifiers: one callable per camera mapping (n, D) to (n, T_c) logits (e.g. an
            ``nn.ModuleList`` of ``nn.Linear(D, T_c)`` built from the data module's
            ``num_target_tracklets_per_camera``).
        epsilon: label smoothing (0 in the papers).

    Returns a scalar. Raises :class:`~crgan_lightning.errors.ConfigError` for a camera without
    branch or a tracklet id beyond its branch's width.
    """
    if features.dim() != 2 or camids.shape != features.shape[:1] or camera_tracklets.shape != features.shape[:1]:
        raise ConfigError(
            f"per-camera tracklet loss expects features (B, D) with camids and camera_tracklets (B,); got "
            f"{tuple(features.shape)}, {tuple(camids.shape)} and {tuple(camera_tracklets.shape)}")
    num_cameras = len(classifiers)
    if len(camids) and not (0 <= int(camids.min()) and int(camids.max()) < num_cameras):
        raise ConfigError(f"camera ids {sorted(set(camids.tolist()))} out of range for {num_cameras} "
                          f"classifier branches (one per camera, 0..{num_cameras - 1})")
    total = features.new_zeros((), dtype=torch.float32)
    for cam, classifier in enumerate(classifiers):
        in_camera = camids == cam
        logits = classifier(features[in_camera]).float()
        labels = camera_tracklets[in_camera]
        if len(labels) == 0:
            total = total + logits.sum() * 0.0
            continue
        if int(labels.min()) < 0 or int(labels.max()) >= logits.shape[1]:
            raise ConfigError(f"tracklet id {int(labels.max())} (or {int(labels.min())}) of camera {cam} is out of "
                              f"range for its branch of {logits.shape[1]} tracklets")
        total = total + F.cross_entropy(logits, labels, label_smoothing=epsilon, reduction="sum")
    return total / max(len(features), 1)


def _gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (n_r, ...) of every rank in rank order (sizes may differ); ``x`` itself
    when no process group is running."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    world = dist.get_world_size()
    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = max(int(s) for s in sizes)
    padded = torch.cat([x, x.new_zeros((longest - x.shape[0], *x.shape[1:]))]).contiguous()
    out = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(out, padded)
    return torch.cat([o[: int(s)] for o, s in zip(out, sizes)])


def _check_tracklet_layout(tracklets_per_camera) -> list[int]:
    counts = [int(n) for n in tracklets_per_camera]
    if not counts or min(counts) < 0 or sum(counts) < 1:
        raise ConfigError(f"tracklets_per_camera={counts} must list one count >= 0 per camera, with at least "
                          f"one tracklet in all")
    return counts


class TrackletMemory(nn.Module):
    """One L2-normalised feature per tracklet of the target, updated by a moving average, the same
    on every DDP rank.

    Buffers (saved in checkpoints, so a resumed run continues with the same memory):
    ``features`` (T, D), ``filled`` (T,) bool (whether the tracklet has been seen yet) and
    ``cameras`` (T,) long, the camera of each global tracklet (camera-major layout of
    :func:`crgan_lightning.data.tracklets.build_tracklet_view`).

    :meth:`update` gathers the features and tracklet ids of all ranks (``all_gather``, in rank
    order) before it writes, so every rank applies the same update to the same memory: the
    memory stays identical across ranks without any broadcast (DDP's own buffer broadcast from
    rank 0 then changes nothing). Per tracklet seen in the gathered batch, the mean of its
    normalised image features ``m`` is normalised and written as ``s <- normalise(momentum * s +
    (1 - momentum) * m)``; a tracklet seen for the first time takes ``m`` itself.

    Args:
        tracklets_per_camera: ``T_c`` per camera (``num_target_tracklets_per_camera`` of the data module).
        feature_dim: D.
        momentum: weight of the old entry in the moving average, in [0, 1). UTAL's value was not
            available to us (see the section comment); 0.5 is our choice.
    """

    def __init__(self, tracklets_per_camera, feature_dim: int, momentum: float = 0.5) -> None:
        super().__init__()
        counts = _check_tracklet_layout(tracklets_per_camera)
        if feature_dim < 1:
            raise ConfigError(f"feature_dim={feature_dim} must be >= 1")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"tracklet memory momentum={momentum} must be in [0, 1)")
        self.momentum = float(momentum)
        self.tracklets_per_camera = tuple(counts)
        cameras = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))
        self.register_buffer("features", torch.zeros(sum(counts), feature_dim))
        self.register_buffer("filled", torch.zeros(sum(counts), dtype=torch.bool))
        self.register_buffer("cameras", cameras)

    @property
    def num_tracklets(self) -> int:
        return self.features.shape[0]

    @property
    def num_cameras(self) -> int:
        return len(self.tracklets_per_camera)

    def check(self, features: torch.Tensor, tracklets: torch.Tensor, camids: torch.Tensor | None = None) -> None:
        """Raise :class:`ConfigError` unless ``features`` (B, D), ``tracklets`` (B,) in [0, T) and
        ``camids`` (B,) (when given) match this memory's layout."""
        dim = self.features.shape[1]
        if features.dim() != 2 or features.shape[1] != dim or tracklets.shape != features.shape[:1]:
            raise ConfigError(f"tracklet memory of {self.num_tracklets} x {dim} expects features (B, {dim}) and "
                              f"tracklets (B,); got {tuple(features.shape)} and {tuple(tracklets.shape)}")
        if len(tracklets) and not (0 <= int(tracklets.min()) and int(tracklets.max()) < self.num_tracklets):
            raise ConfigError(f"tracklet id {int(tracklets.max())} (or {int(tracklets.min())}) is out of range; the "
                              f"memory holds tracklets 0..{self.num_tracklets - 1}")
        if camids is not None:
            if camids.shape != tracklets.shape:
                raise ConfigError(f"camids {tuple(camids.shape)} must match tracklets {tuple(tracklets.shape)}")
            expected = self.cameras[tracklets.to(self.cameras.device)]
            wrong = (expected != camids.to(expected.device)).nonzero().flatten()
            if len(wrong):
                i = int(wrong[0])
                raise ConfigError(
                    f"tracklet {int(tracklets[i])} belongs to camera {int(expected[i])} in the memory's layout "
                    f"{list(self.tracklets_per_camera)}; the batch says camera {int(camids[i])} (a memory built for "
                    f"another dataset?)")

    @torch.no_grad()
    def update(self, features: torch.Tensor, tracklets: torch.Tensor) -> None:
        """Write this step's features (B, D) of tracklets (B,) of ALL ranks into the memory.

        Under DDP this is a collective (``all_gather``): every rank must call it at the same
        steps, as a training step that calls it unconditionally does."""
        self.check(features, tracklets)
        feats = _gather_rows(F.normalize(features.detach().float(), dim=1))
        ids = _gather_rows(tracklets.detach().to(device=feats.device, dtype=torch.long))
        seen, inverse = torch.unique(ids, return_inverse=True)
        assign = F.one_hot(inverse, len(seen)).t().float()  # (U, N): a fixed-order mean, same on every rank
        means = F.normalize(assign @ feats / assign.sum(1, keepdim=True), dim=1)
        seen = seen.to(self.features.device)
        old, filled = self.features[seen], self.filled[seen]
        blended = self.momentum * old + (1.0 - self.momentum) * means.to(old.device)
        self.features[seen] = torch.where(filled[:, None], F.normalize(blended, dim=1), means.to(old.device))
        self.filled[seen] = True

    @torch.no_grad()
    def cross_camera_neighbours(self, features: torch.Tensor, camids: torch.Tensor, k: int
                                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` memory tracklets most similar (cosine) to each feature among the filled
        tracklets of OTHER cameras than ``camids``. Returns ``(index (B, k'), valid (B, k'))``
        with ``k' = min(k, T)``; ``valid`` is False where fewer than ``k`` candidates exist."""
        x = F.normalize(features.detach().float(), dim=1)
        sim = x @ self.features.t()
        eligible = self.filled[None, :] & (self.cameras[None, :] != camids.to(self.cameras.device)[:, None])
        values, index = sim.masked_fill(~eligible, float("-inf")).topk(min(k, self.num_tracklets), dim=1)
        return index, torch.isfinite(values)


class CrossCameraAssociationLoss(nn.Module):
    """Cross-camera tracklet association (CCTA) against a :class:`TrackletMemory`.

    For an image with normalised feature ``x`` of tracklet ``y`` in camera ``c``, let ``N`` be the
    ``num_neighbours`` memory tracklets of cameras other than ``c`` most similar to ``x`` (found
    at each step in the current shared feature space) and ``A`` every filled memory tracklet
    except ``y``::

        loss(x) = -log( sum_{j in N} exp(x . s_j / T) / sum_{j in A} exp(x . s_j / T) )

    averaged over the images that have at least one filled cross-camera tracklet (0, in the
    graph, when none has). ``x`` is drawn towards its nearest tracklets of other cameras and
    pushed from the rest, including the other tracklets of its own camera (TAUDL's "within-camera
    tracklet dissimilarity": two tracklets of one camera are taken to be two people). The
    gradient flows into ``x`` only; the memory is a buffer.

    How this follows the papers, and where it departs:

    - TAUDL (ECCV 2018) computes the same ratio inside the mini-batch: tracklet features are the
      means of their K in-batch images, similarity is a Gaussian kernel of the Euclidean distance,
      the numerator holds the K nearest cross-camera tracklets and the denominator all in-batch
      tracklets. The official code (reid/loss/poset_G2G.py) uses ``exp(-d / (2 sigma))`` with
      sigma = 4 on unnormalised 2048-d features, K = floor(number of cameras / 2), and detaches
      the numerator (so only the denominator trains; we do not copy that). UTAL (TPAMI 2019)
      keeps a memory of per-tracklet representations updated by a moving average, which is what
      this class does, so that every image sees all tracklets, not just the batch's.
    - On L2-normalised features ``||x - s||^2 = 2 - 2 x . s``, so a Gaussian kernel
      ``exp(-||x - s||^2 / (2 sigma^2))`` is ``exp(x . s / sigma^2)`` up to a constant that
      cancels: ``temperature`` plays ``sigma^2``. 0.1 is our choice.
    - The image's own tracklet is left out of the denominator: with a memory, ``x . s_y`` is
      not a constant (as the in-batch self-distance 0 is), and keeping it would push images away
      from their own tracklet, against PCTD.
    - ``num_neighbours=None`` takes the official code's K = max(1, cameras // 2).

    The memory starts empty and fills as tracklets are seen (one epoch sees them all); images
    with no filled cross-camera tracklet do not count. A module may warm the memory with a
    feature pass (``memory.update``) or ramp the CCTA weight in over the first epoch.

    ``forward(features, tracklets, camids, update=True)``: features (B, D) float, global tracklet
    ids (B,) and cameras (B,) int; returns a scalar computed against the memory as it was BEFORE
    this batch, then (``update=True``) writes the batch of every rank into the memory.
    """

    def __init__(
        self,
        tracklets_per_camera,
        feature_dim: int,
        num_neighbours: int | None = None,
        temperature: float = 0.1,
        momentum: float = 0.5,
    ) -> None:
        super().__init__()
        self.memory = TrackletMemory(tracklets_per_camera, feature_dim, momentum)
        if num_neighbours is None:
            num_neighbours = max(1, self.memory.num_cameras // 2)
        if num_neighbours < 1:
            raise ConfigError(f"num_neighbours={num_neighbours} must be >= 1 (or None for cameras // 2)")
        if temperature <= 0:
            raise ConfigError(f"CCTA temperature={temperature} must be > 0")
        self.num_neighbours = int(num_neighbours)
        self.temperature = float(temperature)

    def forward(
        self, features: torch.Tensor, tracklets: torch.Tensor, camids: torch.Tensor, update: bool = True
    ) -> torch.Tensor:
        memory = self.memory
        memory.check(features, tracklets, camids)
        x = F.normalize(features.float(), dim=1)
        bank = memory.features.clone()  # a snapshot: the update below writes the buffer in place before backward
        logits = x @ bank.t() / self.temperature  # (B, T)
        index, valid = memory.cross_camera_neighbours(x, camids, self.num_neighbours)
        neighbours = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, index, valid)
        own = F.one_hot(tracklets.to(logits.device).long(), memory.num_tracklets).bool()
        others = memory.filled[None, :] & ~own
        rows = neighbours.any(1)
        if not rows.any():
            loss = features.sum() * 0.0
        else:
            log_num = logits.masked_fill(~neighbours, float("-inf"))[rows].logsumexp(1)
            log_den = logits.masked_fill(~others, float("-inf"))[rows].logsumexp(1)
            loss = (log_den - log_num).mean()
        if update:
            memory.update(features, tracklets)
        return loss


# ---------------------------------------------------------------------------------------------
# Cluster contrast (SpCL, NeurIPS 2020; cluster contrast, Dai et al.): one memory feature per
# pseudo-identity of the target, rebuilt from the cluster centroids every epoch, moved towards the
# features of each training batch, and an InfoNCE loss of every image against all of them.


class ClusterMemory(nn.Module):
    """One L2-normalised feature per pseudo-identity, the same on every DDP rank.

    Buffer ``features`` (C, D) is part of the checkpoint (its size changes when the clusters are
    rebuilt: :meth:`reset`; a module resizes it from the checkpoint before loading).

    :meth:`update` gathers the features and labels of all ranks (``all_gather`` in rank order)
    before it writes, so every rank applies the same update: per pseudo-identity ``c`` seen in the
    gathered batch, with ``m`` the mean of its images' normalised features,
    ``s_c <- normalise(momentum * s_c + (1 - momentum) * m)``. (SpCL and cluster contrast update one
    image after another; the batch mean does not depend on the order of the images or of the
    ranks.)

    Args:
        feature_dim: D.
        momentum: weight of the old entry, in [0, 1) (SpCL: 0.2; cluster contrast: 0.1).
    """

    def __init__(self, feature_dim: int, momentum: float = 0.2) -> None:
        super().__init__()
        if feature_dim < 1:
            raise ConfigError(f"feature_dim={feature_dim} must be >= 1")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"cluster memory momentum={momentum} must be in [0, 1)")
        self.momentum = float(momentum)
        self.register_buffer("features", torch.zeros(0, feature_dim))

    @property
    def num_classes(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def reset(self, centroids: torch.Tensor) -> None:
        """Replace the memory by ``centroids`` (C, D), normalised (a new clustering)."""
        if centroids.dim() != 2 or centroids.shape[1] != self.features.shape[1]:
            raise ConfigError(f"cluster memory of dimension {self.features.shape[1]} got centroids of shape "
                              f"{tuple(centroids.shape)}")
        self.features = F.normalize(centroids.detach().float(), dim=1).to(self.features.device)

    def check(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Raise :class:`ConfigError` unless ``features`` (B, D) and ``labels`` (B,) in [0, C) fit."""
        dim = self.features.shape[1]
        if features.dim() != 2 or features.shape[1] != dim or labels.shape != features.shape[:1]:
            raise ConfigError(f"cluster memory of {self.num_classes} x {dim} expects features (B, {dim}) and labels "
                              f"(B,); got {tuple(features.shape)} and {tuple(labels.shape)}")
        if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < self.num_classes):
            raise ConfigError(f"pseudo-label {int(labels.max())} (or {int(labels.min())}) is out of range; the memory "
                              f"holds pseudo-identities 0..{self.num_classes - 1}")

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Move the entries of this step's pseudo-identities towards the batch features (B, D) of
        ALL ranks. Under DDP a collective: every rank calls it at the same steps."""
        self.check(features, labels)
        feats = _gather_rows(F.normalize(features.detach().float(), dim=1))
        ids = _gather_rows(labels.detach().to(device=feats.device, dtype=torch.long))
        if ids.numel() == 0:
            return
        seen, inverse = torch.unique(ids, return_inverse=True)
        assign = F.one_hot(inverse, len(seen)).t().float()  # (U, N): a fixed-order mean, same on every rank
        means = F.normalize(assign @ feats / assign.sum(1, keepdim=True), dim=1).to(self.features.device)
        seen = seen.to(self.features.device)
        blended = self.momentum * self.features[seen] + (1.0 - self.momentum) * means
        self.features[seen] = F.normalize(blended, dim=1)


def cluster_contrast_loss(features: torch.Tensor, labels: torch.Tensor, memory: torch.Tensor,
                          temperature: float = 0.05) -> torch.Tensor:
    """InfoNCE of each image against the cluster memory:
    ``mean_i -log( exp(x_i . s_{y_i} / T) / sum_c exp(x_i . s_c / T) )`` with ``x_i`` the
    L2-normalised feature.

    Args:
        features: (B, D) features (gradients flow into them).
        labels: (B,) pseudo-identities in [0, C).
        memory: (C, D) normalised memory features (no gradient; pass a snapshot taken before the
            memory update of the same step).
        temperature: T (SpCL, cluster contrast: 0.05).
    """
    if temperature <= 0:
        raise ConfigError(f"cluster contrast temperature={temperature} must be > 0")
    logits = F.normalize(features.float(), dim=1) @ memory.detach().t() / temperature
    return F.cross_entropy(logits, labels.to(logits.device).long())
