"""Loss functions on hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch

from crgan_lightning.losses import batch_hard_triplet_loss, cross_entropy_label_smooth


def test_label_smoothed_ce_matches_the_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.tensor([0])
    logp = torch.log_softmax(logits, 1)[0]
    eps = 0.1
    expected = -((1 - eps) * logp[0] + eps / 3 * logp.sum())
    assert cross_entropy_label_smooth(logits, target, eps).item() == pytest.approx(expected.item())
    assert cross_entropy_label_smooth(logits, target, 0.0).item() == pytest.approx(-logp[0].item())


def test_batch_hard_triplet_picks_hardest_pairs():
    # 1-D features: ids 0 at {0, 1}, id 1 at {3, 10}
    feats = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    pids = torch.tensor([0, 0, 1, 1])
    # anchor 0: d_ap=1, d_an=3 -> relu(1-3+m); anchor 1: 1, 2; anchor 2: 7, 2; anchor 3: 7, 9
    m = 0.5
    expected = (max(0, 1 - 3 + m) + max(0, 1 - 2 + m) + max(0, 7 - 2 + m) + max(0, 7 - 9 + m)) / 4
    assert batch_hard_triplet_loss(feats, pids, margin=m).item() == pytest.approx(expected, rel=1e-5)
    soft = (math.log1p(math.exp(1 - 3)) + math.log1p(math.exp(1 - 2)) + math.log1p(math.exp(5))
            + math.log1p(math.exp(-2))) / 4
    assert batch_hard_triplet_loss(feats, pids, margin=None).item() == pytest.approx(soft, rel=1e-5)


def test_triplet_is_zero_when_identities_are_well_separated_and_has_gradients():
    feats = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.1]], requires_grad=True)
    pids = torch.tensor([1, 1, 2, 2])
    assert batch_hard_triplet_loss(feats, pids, margin=0.3).item() == 0.0
    close = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.5, 0.0], [3.0, 0.0]], requires_grad=True)
    loss = batch_hard_triplet_loss(close, pids, margin=0.3)
    loss.backward()
    assert loss.item() > 0 and close.grad.abs().sum() > 0


def test_triplet_without_positives_is_zero():
    assert batch_hard_triplet_loss(torch.randn(3, 4), torch.tensor([0, 1, 2])).item() == 0.0
