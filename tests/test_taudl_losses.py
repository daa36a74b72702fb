"""TAUDL losses on hand-made tensors: per-camera tracklet discrimination, the tracklet memory and
cross-camera tracklet association (values computed by hand in the comments)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from crgan_lightning.errors import ConfigError
from crgan_lightning.losses import CrossCameraAssociationLoss, TrackletMemory, per_camera_tracklet_loss

LN3, LN2 = math.log(3.0), math.log(2.0)


def fixed_heads():
    """Camera 0: 2 tracklets, logits [0, ln 3 * f0]; camera 1: 3 tracklets, logits [0, 0, ln 2 * f1]."""
    head0 = nn.Linear(2, 2, bias=False)
    head1 = nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head0.weight.copy_(torch.tensor([[0.0, 0.0], [LN3, 0.0]]))
        head1.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, LN2]]))
    return nn.ModuleList([head0, head1])


# ------------------------------------------------------------------ PCTD


def test_pctd_is_each_images_cross_entropy_in_its_own_camera_averaged_over_the_batch():
    heads = fixed_heads()
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    camids = torch.tensor([0, 0, 1, 1])
    labels = torch.tensor([1, 0, 2, 0])
    # camera 0 logits [0, ln 3]: p = [1/4, 3/4] -> CE(label 1) = ln 4/3, CE(label 0) = ln 4
    # camera 1 logits [0, 0, ln 2]: p = [1/4, 1/4, 1/2] -> CE(label 2) = ln 2, CE(label 0) = ln 4
    expected = (math.log(4 / 3) + math.log(4) + math.log(2) + math.log(4)) / 4
    loss = per_camera_tracklet_loss(features, camids, labels, heads)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_pctd_routes_each_image_through_its_own_cameras_branch_only():
    heads = fixed_heads()
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0]], requires_grad=True)
    loss = per_camera_tracklet_loss(features, torch.tensor([0, 0]), torch.tensor([1, 1]), heads)
    assert loss.item() == pytest.approx(math.log(4 / 3), rel=1e-6)
    loss.backward()
    # camera 1 saw no image: its branch is in the graph (DDP) with a zero gradient
    assert heads[1].weight.grad is not None and torch.equal(heads[1].weight.grad, torch.zeros(3, 2))
    # d CE / d logits = p - onehot = [1/4, -1/4] per image; weight grad = mean over 2 images of that x f
    assert torch.allclose(heads[0].weight.grad, torch.tensor([[0.25, 0.0], [-0.25, 0.0]]), atol=1e-6)


def test_pctd_bad_inputs_raise_config_errors():
    heads = fixed_heads()
    x = torch.zeros(2, 2)
    with pytest.raises(ConfigError, match=r"camera ids \[0, 2\] out of range for 2"):
        per_camera_tracklet_loss(x, torch.tensor([0, 2]), torch.tensor([0, 0]), heads)
    with pytest.raises(ConfigError, match="tracklet id 3 .* of camera 1 is out of range for its branch of 3"):
        per_camera_tracklet_loss(x, torch.tensor([1, 1]), torch.tensor([3, 0]), heads)
    with pytest.raises(ConfigError, match="features"):
        per_camera_tracklet_loss(x, torch.tensor([0]), torch.tensor([0, 0]), heads)


# ------------------------------------------------------------------ memory


def test_memory_first_write_is_the_normalised_mean_then_a_moving_average():
    memory = TrackletMemory([2, 2], feature_dim=2, momentum=0.5)
    assert memory.cameras.tolist() == [0, 0, 1, 1] and not memory.filled.any()
    # tracklet 1 gets two images (3, 0) and (0, 5): normalised (1, 0), (0, 1) -> mean (.5, .5) -> (1, 1)/sqrt 2
    memory.update(torch.tensor([[3.0, 0.0], [0.0, 5.0], [0.0, 2.0]]), torch.tensor([1, 1, 2]))
    r = 1 / math.sqrt(2)
    assert torch.allclose(memory.features, torch.tensor([[0, 0], [r, r], [0, 1], [0, 0]]), atol=1e-6)
    assert memory.filled.tolist() == [False, True, True, False]
    # tracklet 2 again with (1, 0): 0.5 * (0, 1) + 0.5 * (1, 0) = (.5, .5) -> (1, 1)/sqrt 2
    memory.update(torch.tensor([[4.0, 0.0]]), torch.tensor([2]))
    assert torch.allclose(memory.features[2], torch.tensor([r, r]), atol=1e-6)
    assert torch.allclose(memory.features[1], torch.tensor([r, r]), atol=1e-6)  # untouched


def test_memory_momentum_weights_the_old_entry():
    memory = TrackletMemory([1, 1], feature_dim=2, momentum=0.75)
    memory.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    memory.update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    # 0.75 * (0, 1) + 0.25 * (1, 0) = (.25, .75) -> normalised
    assert torch.allclose(memory.features[0], torch.tensor([0.25, 0.75]) / math.sqrt(0.25**2 + 0.75**2), atol=1e-6)


def test_cross_camera_neighbours_skip_own_camera_and_unseen_tracklets():
    memory = TrackletMemory([2, 2, 1], feature_dim=2)
    memory.update(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]]), torch.tensor([0, 1, 2, 4]))
    # tracklet 3 (camera 1) unseen; a camera-0 feature (1, 0) may only pick 2 (cos .6) and 4 (cos 1)
    index, valid = memory.cross_camera_neighbours(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), k=3)
    assert index[0, :2].tolist() == [4, 2] and valid[0].tolist() == [True, True, False]


# ------------------------------------------------------------------ CCTA


def filled_memory_loss(k, temperature=0.5):
    """Cameras 0: tracklets 0, 1 and 1: tracklets 2, 3 with memory t0 = t2 = (1, 0), t1 = t3 = (0, 1)."""
    loss = CrossCameraAssociationLoss([2, 2], feature_dim=2, num_neighbours=k, temperature=temperature)
    loss.memory.update(torch.eye(2)[[0, 1, 0, 1]], torch.tensor([0, 1, 2, 3]))
    return loss


def test_ccta_pulls_to_the_k_nearest_cross_camera_tracklets_against_all_but_its_own():
    tau = 0.5
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.6, 0.8]])
    tracklets, camids = torch.tensor([0, 3, 1]), torch.tensor([0, 1, 0])
    # image 0 (tracklet 0): N = {t2: cos 1}; A = {t1: 0, t2: 1, t3: 0}
    a = math.log(2 + math.exp(1 / tau)) - 1 / tau
    # image 1 (tracklet 3, camera 1): N = {t1: 1}; A = {t0: 0, t1: 1, t2: 0}
    b = a
    # image 2 (tracklet 1): N = {t3: .8}; A = {t0: .6, t2: .6, t3: .8}
    c = math.log(2 * math.exp(0.6 / tau) + math.exp(0.8 / tau)) - 0.8 / tau
    value = filled_memory_loss(k=1, temperature=tau)(x, tracklets, camids, update=False)
    assert value.item() == pytest.approx((a + b + c) / 3, rel=1e-6)
    # K = 2: image 0 N = {t2, t3} -> log(2 + e^2) - log(1 + e^2); image 2 N = {t2, t3}
    a2 = math.log(2 + math.exp(1 / tau)) - math.log(1 + math.exp(1 / tau))
    c2 = math.log(2 * math.exp(0.6 / tau) + math.exp(0.8 / tau)) - math.log(math.exp(0.6 / tau) + math.exp(0.8 / tau))
    value = filled_memory_loss(k=2, temperature=tau)(x, tracklets, camids, update=False)
    assert value.item() == pytest.approx((a2 + a2 + c2) / 3, rel=1e-6)


def test_ccta_gradient_moves_the_feature_towards_its_cross_camera_neighbour():
    loss_fn = filled_memory_loss(k=1)
    x = torch.tensor([[0.6, 0.8]], requires_grad=True)  # camera 0, tracklet 1; neighbour t3 = (0, 1)
    loss_fn(x, torch.tensor([1]), torch.tensor([0]), update=False).backward()
    step = -x.grad[0]
    assert step[1].item() > 0 > step[0].item()  # towards (0, 1), away from t0 = t2 = (1, 0)
    assert loss_fn.memory.features.grad is None  # the memory is not trained by the loss


def test_ccta_uses_the_memory_before_the_batch_then_writes_it():
    loss_fn = CrossCameraAssociationLoss([1, 1], feature_dim=2, temperature=1.0)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    first = loss_fn(x, torch.tensor([0, 1]), torch.tensor([0, 1]))
    # empty memory: no image has a filled cross-camera tracklet -> 0, still in the graph
    assert first.item() == 0.0 and first.requires_grad
    assert loss_fn.memory.filled.tolist() == [True, True]
    # now each image's only other tracklet is its cross-camera neighbour: N = A -> 0
    assert loss_fn(x, torch.tensor([0, 1]), torch.tensor([0, 1])).item() == pytest.approx(0.0, abs=1e-6)
    before = loss_fn.memory.features.clone()
    loss_fn(torch.tensor([[0.0, 1.0]]), torch.tensor([0]), torch.tensor([0]), update=False)
    assert torch.equal(loss_fn.memory.features, before)


def test_ccta_backward_after_the_memory_update_uses_the_memory_of_the_forward():
    tracklets, camids = torch.tensor([1]), torch.tensor([0])
    x = torch.tensor([[0.6, 0.8]], requires_grad=True)
    filled_memory_loss(k=1)(x, tracklets, camids, update=False).backward()
    expected = x.grad.clone()
    x.grad = None
    loss_fn = filled_memory_loss(k=1)
    loss_fn(x, tracklets, camids, update=True).backward()  # the update has rewritten tracklet 1 by then
    assert not torch.equal(loss_fn.memory.features[1], torch.tensor([0.0, 1.0]))
    assert torch.equal(x.grad, expected)


def test_ccta_default_neighbourhood_is_half_the_cameras():
    assert CrossCameraAssociationLoss([3] * 8, feature_dim=4).num_neighbours == 4
    assert CrossCameraAssociationLoss([3] * 6, feature_dim=4).num_neighbours == 3
    assert CrossCameraAssociationLoss([3], feature_dim=4).num_neighbours == 1


def test_ccta_and_memory_bad_inputs_raise_config_errors():
    loss_fn = CrossCameraAssociationLoss([2, 2], feature_dim=2)
    x = torch.zeros(2, 2)
    with pytest.raises(ConfigError, match="tracklet 2 belongs to camera 1 .* the batch says camera 0"):
        loss_fn(x, torch.tensor([0, 2]), torch.tensor([0, 0]))
    with pytest.raises(ConfigError, match="tracklet id 4 .* memory holds tracklets 0..3"):
        loss_fn(x, torch.tensor([0, 4]), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match=r"expects features \(B, 2\)"):
        loss_fn(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([0, 0]))
    with pytest.raises(ConfigError, match="temperature=0"):
        CrossCameraAssociationLoss([2], feature_dim=2, temperature=0)
    with pytest.raises(ConfigError, match="num_neighbours=0"):
        CrossCameraAssociationLoss([2], feature_dim=2, num_neighbours=0)
    with pytest.raises(ConfigError, match="momentum=1.0"):
        TrackletMemory([2], feature_dim=2, momentum=1.0)
    with pytest.raises(ConfigError, match=r"tracklets_per_camera=\[0, 0\]"):
        TrackletMemory([0, 0], feature_dim=2)
