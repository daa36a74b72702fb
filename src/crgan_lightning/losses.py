"""Loss functions of the library.

Re-id: label-smoothed cross-entropy and the batch-hard triplet loss. All take plain tensors and
return scalar tensors, so they can be tested on hand-made values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
