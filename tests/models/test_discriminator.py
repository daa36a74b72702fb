"""PatchDiscriminator map sizes and norms; AuxiliaryClassifier heads, normalisation and freezing."""

from __future__ import annotations

import pytest
import torch

from crgan_lightning.errors import ConfigError
from crgan_lightning.models.discriminator import AuxiliaryClassifier, PatchDiscriminator


@pytest.mark.parametrize("size, expected", [((256, 128), (30, 14)), ((128, 64), (14, 6))])
@pytest.mark.parametrize("norm", ["instance", "batch", "spectral", "none"])
def test_patch_discriminator_gives_a_logit_map_per_patch(size, expected, norm):
    torch.manual_seed(0)
    disc = PatchDiscriminator(base_channels=8, norm=norm)
    out = disc(torch.rand(2, 3, *size) * 2 - 1)
    assert out.shape == (2, 1, *expected)
    assert disc.output_size(*size) == expected
    assert out.min() < 0 < out.max()  # raw logits, no sigmoid


def test_patch_discriminator_spectral_norm_wraps_every_conv_and_default_width():
    disc = PatchDiscriminator(norm="spectral")
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(hasattr(c, "weight_orig") for c in convs)
    widths = [c.out_channels for c in PatchDiscriminator().modules() if isinstance(c, torch.nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 1]
    assert PatchDiscriminator(n_layers=2).output_size(128, 64) == (30, 14)


def test_spectral_norm_can_sit_beside_instance_norm():
    torch.manual_seed(0)
    disc = PatchDiscriminator(base_channels=8, n_layers=2, spectral=True)
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(hasattr(c, "weight_orig") for c in convs)
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in disc.modules()) == 2
    plain = PatchDiscriminator(base_channels=8, n_layers=2)
    assert not any(hasattr(m, "weight_orig") for m in plain.modules())
    assert disc(torch.rand(2, 3, 64, 32) * 2 - 1).shape == (2, 1, *disc.output_size(64, 32))


@pytest.mark.parametrize("kwargs", [dict(norm="layer"), dict(n_layers=0)])
def test_patch_discriminator_rejects_bad_config(kwargs):
    with pytest.raises(ConfigError):
        PatchDiscriminator(**kwargs)


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return AuxiliaryClassifier(num_identities=7, num_cameras=3, backbone="resnet18")


def test_auxiliary_classifier_heads_have_the_label_counts(classifier):
    classifier.train()
    id_logits, cam_logits = classifier(torch.rand(4, 3, 64, 32) * 2 - 1)
    assert id_logits.shape == (4, 7) and cam_logits.shape == (4, 3)
    assert classifier.feat_dim == 512


def test_auxiliary_classifier_converts_minus_one_one_to_imagenet_statistics(classifier, monkeypatch):
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 32, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = ((x + 1) / 2 - mean) / std
    seen = []
    real = classifier.trunk.forward_features
    monkeypatch.setattr(classifier.trunk, "forward_features", lambda inp: seen.append(inp) or real(inp))
    classifier.eval()
    classifier(x)
    torch.testing.assert_close(seen[0], expected)  # what the trunk received


@pytest.mark.parametrize("ids, cams", [(0, 4), (6, 0), (0, 0)])
def test_auxiliary_classifier_zero_classes_disables_a_head(ids, cams):
    clf = AuxiliaryClassifier(ids, cams, feat_dim=32).eval()
    id_logits, cam_logits = clf(torch.zeros(2, 3, 64, 32))
    assert (id_logits is None) == (ids == 0) and (cam_logits is None) == (cams == 0)
    if ids:
        assert id_logits.shape == (2, ids)
    if cams:
        assert cam_logits.shape == (2, cams)
    assert clf.feat_dim == 32


def test_auxiliary_classifier_rejects_negative_counts():
    with pytest.raises(ConfigError, match="num_cameras=-1"):
        AuxiliaryClassifier(5, -1)


def test_frozen_classifier_passes_gradients_to_the_image_only_and_keeps_its_statistics(classifier):
    classifier.train()
    bn_before = classifier.bn.running_mean.clone()
    x = (torch.rand(2, 3, 64, 32) * 2 - 1).requires_grad_(True)
    with classifier.frozen():
        assert not classifier.training
        id_logits, cam_logits = classifier(x)
        (id_logits.sum() + cam_logits.sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in classifier.parameters())
    torch.testing.assert_close(classifier.bn.running_mean, bn_before)
    assert classifier.training and all(p.requires_grad for p in classifier.parameters())
