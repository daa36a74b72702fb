"""The cluster memory (momentum update, reset) and its contrastive loss, on hand-made values."""

from __future__ import annotations

import math

import pytest
import torch

from crgan_lightning.errors import ConfigError
from crgan_lightning.losses import ClusterMemory, cluster_contrast_loss


def memory_of(rows, momentum: float = 0.5) -> ClusterMemory:
    memory = ClusterMemory(2, momentum)
    memory.reset(torch.tensor(rows, dtype=torch.float32))
    return memory


def test_reset_normalises_the_centroids_and_resizes_the_memory():
    memory = memory_of([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    assert memory.num_classes == 3
    assert torch.allclose(memory.features, torch.tensor([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]]))
    assert memory.state_dict()["features"].shape == (3, 2)


def test_update_moves_each_seen_entry_towards_the_mean_of_its_images():
    memory = memory_of([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], momentum=0.5)
    # cluster 0 sees two images whose normalised mean is (0, 1); cluster 1 one image (1, 0)
    memory.update(torch.tensor([[0.0, 5.0], [0.0, 0.5], [2.0, 0.0]]), torch.tensor([0, 0, 1]))
    s = 1 / math.sqrt(2)
    expected = torch.tensor([[s, s], [s, s], [1.0, 0.0]])  # normalise(0.5 old + 0.5 mean); cluster 2 unseen
    assert torch.allclose(memory.features, expected, atol=1e-6)


def test_update_with_momentum_zero_writes_the_batch_mean():
    memory = memory_of([[1.0, 0.0]], momentum=0.0)
    memory.update(torch.tensor([[0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 0]))
    mean = torch.tensor([0.0, 1.0]) + torch.tensor([1.0, 1.0]) / math.sqrt(2)
    assert torch.allclose(memory.features[0], mean / mean.norm(), atol=1e-6)


def test_update_does_not_depend_on_the_order_of_the_images():
    gen = torch.Generator().manual_seed(0)
    feats, labels = torch.randn(12, 2, generator=gen), torch.randint(0, 3, (12,), generator=gen)
    a, b = memory_of([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), memory_of([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    a.update(feats, labels)
    order = torch.randperm(12, generator=gen)
    b.update(feats[order], labels[order])
    assert torch.allclose(a.features, b.features, atol=1e-6)


def test_contrast_loss_by_hand():
    memory = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x = torch.tensor([[2.0, 0.0]], requires_grad=True)  # normalised: (1, 0); logits (1, 0) / 0.5 = (2, 0)
    loss = cluster_contrast_loss(x, torch.tensor([0]), memory, temperature=0.5)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the wrong label costs more: -log(e^0 / (e^2 + e^0))
    assert cluster_contrast_loss(x, torch.tensor([1]), memory, 0.5).item() == pytest.approx(
        math.log(1 + math.exp(2)), rel=1e-6)


def test_contrast_loss_is_the_mean_over_images_at_temperature_005():
    memory = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    x = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]) / 0.05
    expected = (torch.logsumexp(logits[0], 0) - logits[0, 0] + torch.logsumexp(logits[1], 0) - logits[1, 1]) / 2
    assert cluster_contrast_loss(x, torch.tensor([0, 1]), memory).item() == pytest.approx(expected.item(), rel=1e-5)


def test_memory_rejects_wrong_shapes_and_labels():
    memory = memory_of([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ConfigError, match="pseudo-label 2"):
        memory.update(torch.ones(1, 2), torch.tensor([2]))
    with pytest.raises(ConfigError, match="expects features"):
        memory.update(torch.ones(1, 3), torch.tensor([0]))
    with pytest.raises(ConfigError, match="momentum"):
        ClusterMemory(2, momentum=1.0)
    with pytest.raises(ConfigError, match="temperature"):
        cluster_contrast_loss(torch.ones(1, 2), torch.tensor([0]), memory.features, temperature=0)
