"""ReIDNet: LMP, pooling choices, flip averaging, last stride, input normalisation, weights."""

from __future__ import annotations

import pytest
import torch

from crgan_lightning.errors import ConfigError, WeightsError
from crgan_lightning.models.reid import LocalMaxPooling, ReIDNet, pool_features


def test_lmp_is_the_mean_of_stripe_maxima():
    fmap = torch.zeros(1, 2, 6, 2)
    fmap[0, 0, 0, 1] = 6.0   # stripe 0 (rows 0-1)
    fmap[0, 0, 3, 0] = 3.0   # stripe 1 (rows 2-3)
    fmap[0, 1, 5, 1] = -1.0  # channel 1 max is 0 everywhere
    out = LocalMaxPooling(parts=3)(fmap)
    assert out.shape == (1, 2)
    assert out[0, 0].item() == pytest.approx((6.0 + 3.0 + 0.0) / 3)
    assert out[0, 1].item() == 0.0
    concat = LocalMaxPooling(parts=3, combine="concat")(fmap)
    assert concat.shape == (1, 6) and concat[0, ::2].tolist() == [6.0, 3.0, 0.0]  # stripe-major: (stripe, channel)


def test_lmp_with_one_part_is_global_max_and_shapes_for_uneven_heights():
    fmap = torch.randn(4, 8, 16, 8)
    torch.testing.assert_close(LocalMaxPooling(1)(fmap), fmap.amax(dim=(2, 3)))
    assert LocalMaxPooling(6)(torch.randn(2, 5, 16, 8)).shape == (2, 5)  # 16 rows in 6 stripes
    torch.testing.assert_close(pool_features(fmap, "avg"), fmap.mean(dim=(2, 3)))
    with pytest.raises(ConfigError, match="pooling='gem'"):
        pool_features(fmap, "gem")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return ReIDNet("resnet18", pretrained=False, num_classes=5, test_pooling="avg").eval()


def test_last_stride_one_doubles_the_final_map_without_dilation(net):
    x = torch.randn(2, 3, 128, 64)
    assert net.feature_map(x).shape == (2, 512, 8, 4)
    plain = ReIDNet("resnet18", pretrained=False, num_classes=5, last_stride=2).eval()
    assert plain.feature_map(x).shape == (2, 512, 4, 2)
    assert all(m.dilation == (1, 1) for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_train_and_eval_outputs(net):
    x = torch.randn(4, 3, 128, 64)
    net.train()
    logits, feat = net(x)
    assert logits.shape == (4, 5) and feat.shape == (4, 512)
    net.eval()
    assert net(x).shape == (4, 512)


def test_flip_test_averages_the_mirrored_feature(net):
    x = torch.randn(3, 3, 128, 64)
    plain = net.extract(x)
    mirrored = net.extract(x.flip(3))
    net.flip_test = True
    try:
        torch.testing.assert_close(net.extract(x), 0.5 * (plain + mirrored))
        torch.testing.assert_close(net.extract(x), net.extract(x.flip(3)), rtol=1e-4, atol=1e-5)  # flip invariant
    finally:
        net.flip_test = False


def test_input_in_minus_one_one_becomes_imagenet_normalised(net, monkeypatch):
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 32, 16)
    seen = []
    real = net.backbone.forward_features
    monkeypatch.setattr(net.backbone, "forward_features", lambda inp: seen.append(inp) or real(inp))
    net.extract(x)
    got = seen[0]  # what the backbone received
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(got, ((x + 1) / 2 - mean) / std)


def test_local_pretrained_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    donor = ReIDNet("resnet18", pretrained=False)
    state = donor.backbone.state_dict()
    state["fc.weight"] = torch.zeros(1000, 512)  # classifier heads in checkpoints are dropped
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    net = ReIDNet("resnet18", pretrained=True, pretrained_path=str(path), num_classes=3)
    torch.testing.assert_close(net.backbone.conv1.weight, donor.backbone.conv1.weight)


def test_weight_file_problems_are_named(tmp_path):
    with pytest.raises(WeightsError, match="missing.pth does not exist"):
        ReIDNet("resnet18", pretrained=True, pretrained_path=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(WeightsError, match="does not fit backbone 'resnet18'"):
        ReIDNet("resnet18", pretrained=True, pretrained_path=str(wrong))
    with pytest.raises(ConfigError, match="'resnet-fifty' is not a timm model"):
        ReIDNet("resnet-fifty", pretrained=False)


def test_offline_download_failure_names_the_argument(monkeypatch):
    import timm

    real = timm.create_model

    def offline(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("We couldn't connect to the Hub")
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(WeightsError, match="pretrained_path=FILE"):
        ReIDNet("resnet18", pretrained=True)
