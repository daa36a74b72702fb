"""CR-GAN losses on hand-made tensors: adversarial modes, identity/camera CE, masked context loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from crgan_lightning.errors import ConfigError
from crgan_lightning.losses import AdversarialLoss, camera_loss, context_loss, identity_loss


def test_lsgan_is_squared_distance_to_one_or_zero():
    loss = AdversarialLoss("lsgan")
    pred = torch.full((2, 1, 3, 2), 0.5)
    assert loss(pred, True).item() == pytest.approx(0.25)
    assert loss(pred, False).item() == pytest.approx(0.25)
    pred = torch.tensor([0.0, 2.0])
    assert loss(pred, True).item() == pytest.approx((1 + 1) / 2)
    assert loss(pred, False).item() == pytest.approx((0 + 4) / 2)
    assert loss(pred, True, for_discriminator=False).item() == pytest.approx(1.0)


def test_vanilla_is_bce_with_logits():
    loss = AdversarialLoss("vanilla")
    assert loss(torch.zeros(4), True).item() == pytest.approx(math.log(2))
    assert loss(torch.zeros(4), False).item() == pytest.approx(math.log(2))
    pred = torch.tensor([2.0, -1.0])
    assert loss(pred, True).item() == pytest.approx(F.softplus(-pred).mean().item())
    assert loss(pred, False).item() == pytest.approx(F.softplus(pred).mean().item())
    assert loss(torch.tensor([20.0]), True).item() < 1e-6


def test_hinge_values_for_discriminator_and_generator():
    loss = AdversarialLoss("hinge")
    pred = torch.tensor([-2.0, 0.0, 0.5, 3.0])
    assert loss(pred, True).item() == pytest.approx((3.0 + 1.0 + 0.5 + 0.0) / 4)   # relu(1 - pred)
    assert loss(pred, False).item() == pytest.approx((0.0 + 1.0 + 1.5 + 4.0) / 4)  # relu(1 + pred)
    assert loss(pred, True, for_discriminator=False).item() == pytest.approx(-(1.5 / 4))
    with pytest.raises(ValueError, match="target_is_real=True"):
        loss(pred, False, for_discriminator=False)


def test_adversarial_loss_gradient_and_half_precision_input():
    pred = torch.zeros(3, requires_grad=True)
    AdversarialLoss("lsgan")(pred, True).backward()
    torch.testing.assert_close(pred.grad, torch.full((3,), -2.0 / 3))
    out = AdversarialLoss("lsgan")(torch.full((2,), 0.5, dtype=torch.bfloat16), True)
    assert out.dtype == torch.float32


def test_unknown_adversarial_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="wgan"):
        AdversarialLoss("wgan")


def test_identity_and_camera_losses_are_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    logp = torch.log_softmax(logits, 1)
    expected = -(logp[0, 0] + logp[1, 2]) / 2
    assert identity_loss(logits, labels).item() == pytest.approx(expected.item())
    assert camera_loss(logits, labels).item() == pytest.approx(expected.item())
    assert identity_loss(torch.zeros(1, 10), torch.tensor([3])).item() == pytest.approx(math.log(10))


def scene(seed: int = 0, b: int = 2, h: int = 16, w: int = 8):
    """Source/target images and binary masks with people in different places."""
    g = torch.Generator().manual_seed(seed)
    x_s = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    x_t = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    mask_s = torch.zeros(b, 1, h, w)
    mask_s[:, :, 2:12, 1:4] = 1.0
    mask_t = torch.zeros(b, 1, h, w)
    mask_t[:, :, 4:14, 5:8] = 1.0
    return x_s, x_t, mask_s, mask_t


@pytest.mark.parametrize("reduction", ["l1", "l2"])
def test_context_loss_is_zero_when_regions_match_even_if_the_rest_differs_wildly(reduction):
    x_s, x_t, mask_s, mask_t = scene()
    x_g = x_s * mask_s + x_t * (1 - mask_s)
    total, fg, bg = context_loss(x_g, x_s, x_t, mask_s, mask_t, reduction)
    assert total.item() == 0.0 and fg.item() == 0.0 and bg.item() == 0.0
    # pixels on the target person but outside the source person are free
    free = (1 - mask_s) * mask_t
    assert free.sum() > 0
    wild = x_g + 100.0 * free
    total, fg, bg = context_loss(wild, x_s, x_t, mask_s, mask_t, reduction)
    assert total.item() == 0.0


@pytest.mark.parametrize("reduction", ["l1", "l2"])
def test_context_loss_grows_monotonically_with_noise_inside_the_masks(reduction):
    x_s, x_t, mask_s, mask_t = scene()
    x_g = x_s * mask_s + x_t * (1 - mask_s)
    noise = torch.randn(x_g.shape, generator=torch.Generator().manual_seed(5))
    values = [context_loss(x_g + a * noise, x_s, x_t, mask_s, mask_t, reduction)[0].item()
              for a in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert values[0] == 0.0
    assert all(a < b for a, b in zip(values, values[1:]))


def test_context_fg_and_bg_terms_respond_only_to_their_region():
    x_s, x_t, mask_s, mask_t = scene()
    x_g = x_s * mask_s + x_t * (1 - mask_s)
    m_b = (1 - mask_s) * (1 - mask_t)
    _, fg, bg = context_loss(x_g + 0.5 * mask_s, x_s, x_t, mask_s, mask_t)
    assert fg.item() == pytest.approx(0.5) and bg.item() == 0.0
    _, fg, bg = context_loss(x_g - 0.25 * m_b, x_s, x_t, mask_s, mask_t)
    assert fg.item() == 0.0 and bg.item() == pytest.approx(0.25)
    total, fg, bg = context_loss(x_g + 0.5 * mask_s - 0.25 * m_b, x_s, x_t, mask_s, mask_t, "l2")
    assert fg.item() == pytest.approx(0.25) and bg.item() == pytest.approx(0.0625)
    assert total.item() == pytest.approx(fg.item() + bg.item())


def test_context_loss_is_normalised_by_mask_area():
    x_s, x_t, _, _ = scene(b=1, h=32, w=16)
    no_target = torch.zeros(1, 1, 32, 16)
    small = torch.zeros(1, 1, 32, 16)
    small[:, :, 10:14, 6:9] = 1.0   # 12 pixels
    large = torch.zeros(1, 1, 32, 16)
    large[:, :, 2:30, 2:14] = 1.0   # 336 pixels
    values = []
    for mask in (small, large):
        x_g = x_s * mask + x_t * (1 - mask) + 0.3 * mask  # same per-pixel error, 0.3, on the person
        values.append(context_loss(x_g, x_s, x_t, mask, no_target)[1].item())
    assert values[0] == pytest.approx(0.3, rel=1e-5) and values[1] == pytest.approx(0.3, rel=1e-5)


def test_context_loss_averages_per_image_and_an_empty_mask_contributes_zero():
    x_s, x_t, mask_s, mask_t = scene(b=2)
    x_g = x_s * mask_s + x_t * (1 - mask_s)
    x_g[0] += 0.4 * mask_s[0]
    _, fg, _ = context_loss(x_g, x_s, x_t, mask_s, mask_t)
    assert fg.item() == pytest.approx(0.2)  # (0.4 + 0) / 2
    empty = torch.zeros_like(mask_s)
    total, fg, bg = context_loss(x_t, x_s, x_t, empty, empty)
    assert fg.item() == 0.0 and bg.item() == 0.0 and total.item() == 0.0


def test_context_loss_rejects_bad_reduction_and_shapes():
    x_s, x_t, mask_s, mask_t = scene()
    with pytest.raises(ConfigError, match="'l3'"):
        context_loss(x_s, x_s, x_t, mask_s, mask_t, "l3")
    with pytest.raises(ValueError, match="mask_t"):
        context_loss(x_s, x_s, x_t, mask_s, mask_t[:, :, :8])
    with pytest.raises(ValueError, match="share one"):
        context_loss(x_s[:, :, :8], x_s, x_t, mask_s, mask_t)


def test_context_loss_gradient_flows_only_to_the_generated_image():
    x_s, x_t, mask_s, mask_t = scene()
    x_g = torch.zeros_like(x_s, requires_grad=True)
    context_loss(x_g, x_s, x_t, mask_s, mask_t)[0].backward()
    free = ((1 - mask_s) * mask_t).expand_as(x_g).bool()
    assert x_g.grad[free].abs().sum() == 0
    assert x_g.grad[~free].abs().min() > 0
