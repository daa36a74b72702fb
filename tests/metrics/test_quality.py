"""LPIPS diversity and FID / KID, with self-built weight files loaded exactly as a user's file is.

No pretrained weights can be downloaded in the tests: the LPIPS backbone file is a randomly
initialised torchvision AlexNet state dict, the Inception file a randomly initialised state dict
of torch-fidelity's own Inception-v3 module (convolutions re-initialised with Kaiming-normal so
that the 2048-d features keep a usable scale through the 90+ layers).
"""

from __future__ import annotations

import inspect
import math
import os
import urllib.error
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm
import torchvision.models._api as tv_api
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

from crgan_lightning.errors import ConfigError, WeightsError
from crgan_lightning.metrics.quality import (
    build_inception,
    build_lpips,
    fid_kid,
    fid_kid_from_features,
    frechet_distance,
    inception_features,
    lpips_diversity,
    lpips_pairs,
    to_uint8,
)


# ---------------------------------------------------------------------------------------- weight files


def save_random_alexnet(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised torchvision AlexNet state dict (the layout of alexnet-owt-7be5be79.pth)."""
    torch.manual_seed(seed)
    state = tvm.alexnet().state_dict()
    torch.save(state, path)
    return state


def save_random_inception(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict of torch-fidelity's Inception-v3 (the layout of its downloaded weights).

    The network class always loads weights in its constructor; it is instantiated here with the
    loading switched off, so the saved structure is exactly torch-fidelity's own.
    """
    cls = tf_inception.FeatureExtractorInceptionV3
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tf_inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        mp.setattr(cls, "load_state_dict", lambda self, *args, **kwargs: None)
        net = cls("inception-v3-compat", ["2048"])
    gen = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=gen)
    state = net.state_dict()
    torch.save(state, path)
    return state


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path_factory.mktemp("weights") / "alexnet-random.pth"
    return path, save_random_alexnet(path)


@pytest.fixture(scope="module")
def lpips_model(alexnet_file) -> lpips.LPIPS:
    return build_lpips("alex", pretrained_path=alexnet_file[0])


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path_factory.mktemp("weights") / "inception-random.pth"
    return path, save_random_inception(path)


@pytest.fixture(scope="module")
def inception(inception_file):
    return build_inception(weights_path=inception_file[0])


# ---------------------------------------------------------------------------------------- images


def smooth_images(n: int, seed: int, size: int = 64) -> torch.Tensor:
    """(n, 3, size, size) in [-1, 1]: low-frequency colour fields (upsampled 4x4 noise)."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=gen) * 2 - 1
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def stripe_images(n: int, seed: int, size: int = 64) -> torch.Tensor:
    """(n, 3, size, size) in [-1, 1]: high-contrast black/white stripes, clearly unlike ``smooth_images``."""
    gen = torch.Generator().manual_seed(seed)
    periods = torch.randint(2, 6, (n,), generator=gen)
    x = torch.arange(size)
    stripes = [((x // p) % 2).float().mul(2).sub(1).expand(3, size, size) for p in periods.tolist()]
    return torch.stack(stripes)


@pytest.fixture(scope="module")
def image_sets() -> dict[str, torch.Tensor]:
    """Two disjoint draws of one distribution (a, a2) and a clearly different set (b), 10 images each.

    ``a2`` is 48 x 32 instead of 64 x 64: the Inception network resizes every input to 299 x 299.
    """
    a2 = F.interpolate(smooth_images(10, seed=2), size=(48, 32), mode="bilinear", align_corners=False)
    return {"a": smooth_images(10, seed=1), "a2": a2, "b": stripe_images(10, seed=3)}


@pytest.fixture(scope="module")
def features(inception, image_sets) -> dict[str, torch.Tensor]:
    """Inception features of each set, one forward pass per set (the slow part of this file)."""
    return {name: inception_features(images, inception, batch_size=10) for name, images in image_sets.items()}


# ---------------------------------------------------------------------------------------- LPIPS


def test_build_lpips_loads_backbone_from_local_file_and_calibration_from_package(lpips_model, alexnet_file):
    _, saved = alexnet_file
    loaded = {}
    for key, value in lpips_model.net.state_dict().items():  # "sliceK.N.weight" <- "features.N.weight"
        loaded["features." + key.split(".", 1)[1]] = value
    feature_keys = {k for k in saved if k.startswith("features.")}
    assert set(loaded) == feature_keys
    for key in feature_keys:
        assert torch.equal(loaded[key], saved[key]), key
    package_file = Path(inspect.getfile(lpips.LPIPS)).parent / "weights" / "v0.1" / "alex.pth"
    calibration = torch.load(package_file, map_location="cpu", weights_only=True)
    assert torch.equal(lpips_model.lin0.model[1].weight, calibration["lin0.model.1.weight"])
    assert not lpips_model.training
    assert not any(p.requires_grad for p in lpips_model.parameters())


def test_build_lpips_maps_squeezenet_features_into_its_seven_slices(tmp_path):
    torch.manual_seed(0)
    saved = tvm.squeezenet1_1().state_dict()
    torch.save(saved, tmp_path / "squeezenet.pth")
    model = build_lpips("squeeze", pretrained_path=tmp_path / "squeezenet.pth")
    loaded = {"features." + k.split(".", 1)[1]: v for k, v in model.net.state_dict().items()}
    assert set(loaded) == {k for k in saved if k.startswith("features.")}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)


def test_lpips_is_zero_for_identical_images_and_grows_with_noise(lpips_model):
    x = smooth_images(4, seed=5)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    same = lpips_pairs(x, x, lpips_model)
    small = lpips_pairs(x, (x + 0.05 * noise).clamp(-1, 1), lpips_model)
    large = lpips_pairs(x, (x + 0.5 * noise).clamp(-1, 1), lpips_model)
    assert same.shape == (4,)
    assert torch.all(same == 0)
    assert torch.all(small > 0)
    assert torch.all(large > small)


def test_lpips_diversity_is_zero_for_identical_renderings_and_the_mean_over_pairs_otherwise(lpips_model):
    sources = smooth_images(2, seed=7)
    identical = sources[:, None].expand(2, 3, 3, 64, 64)
    assert lpips_diversity(identical, lpips_model) == 0.0

    rendered = torch.stack([smooth_images(3, seed=10), smooth_images(3, seed=11)])  # (S=2, T=3, 3, 64, 64)
    diversity = lpips_diversity(rendered, lpips_model, batch_size=4)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = torch.cat([lpips_pairs(rendered[:, j], rendered[:, k], lpips_model) for j, k in pairs]).mean()
    assert diversity > 0
    assert diversity == pytest.approx(float(expected), rel=1e-5)


def test_lpips_diversity_needs_two_contexts(lpips_model):
    with pytest.raises(ConfigError, match="two contexts"):
        lpips_diversity(smooth_images(2, seed=0)[:, None], lpips_model)


def test_build_lpips_rejects_files_that_are_not_the_backbone(tmp_path, alexnet_file):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsError, match="nowhere.pth.*pretrained_path.*does not exist"):
        build_lpips("alex", pretrained_path=missing)

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="corrupt.pth.*pretrained_path"):
        build_lpips("alex", pretrained_path=corrupt)

    wrong_shape = dict(alexnet_file[1])
    wrong_shape["features.3.weight"] = torch.zeros(8, 8, 3, 3)
    torch.save(wrong_shape, tmp_path / "wrong_shape.pth")
    with pytest.raises(WeightsError, match="wrong_shape.pth.*does not fit the LPIPS AlexNet"):
        build_lpips("alex", pretrained_path=tmp_path / "wrong_shape.pth")

    torch.save(tvm.squeezenet1_1().state_dict(), tmp_path / "squeezenet.pth")
    with pytest.raises(WeightsError, match="squeezenet.pth.*alexnet-owt-7be5be79.pth") as info:
        build_lpips("alex", pretrained_path=tmp_path / "squeezenet.pth")
    assert "\n" not in str(info.value)


def test_build_lpips_failed_download_names_backbone_and_argument(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as info:
        build_lpips("alex")
    message = str(info.value)
    assert "AlexNet" in message and "pretrained_path" in message and "alexnet-owt-7be5be79.pth" in message
    assert "\n" not in message


# ---------------------------------------------------------------------------------------- FID / KID


def test_build_inception_loads_the_local_file(inception, inception_file):
    _, saved = inception_file
    loaded = inception.state_dict()
    assert set(loaded) == set(saved)
    for key in saved:
        assert torch.equal(loaded[key], saved[key]), key


def test_inception_features_are_2048_d_for_any_image_size(features):
    for name in ("a", "a2", "b"):
        assert features[name].shape == (10, 2048)
        assert torch.isfinite(features[name]).all() and features[name].std() > 1e-3


def test_fid_is_zero_for_identical_sets_and_larger_for_a_different_distribution(features):
    same = fid_kid_from_features(features["a"], features["a"], kid=False)["fid"]
    similar = fid_kid_from_features(features["a"], features["a2"], kid=False)["fid"]
    different = fid_kid_from_features(features["a"], features["b"], kid=False)["fid"]
    assert abs(same) < 1e-6 * different
    assert 0 < similar < different


def test_kid_is_reported_with_enough_samples_and_skipped_with_a_reason_otherwise(features):
    out = fid_kid_from_features(features["a"], features["b"])
    assert out["num_a"] == out["num_b"] == 10 and out["kid_subset_size"] == 10
    assert math.isfinite(out["kid_mean"]) and math.isfinite(out["kid_std"])
    similar = fid_kid_from_features(features["a"], features["a2"])
    assert similar["kid_mean"] < out["kid_mean"]

    few = fid_kid_from_features(features["a"][:5], features["b"])
    assert "kid_mean" not in few and "at least 10 images" in few["kid_skipped"]
    assert math.isfinite(few["fid"])


def test_fid_kid_on_images_loads_the_weight_file_like_a_user_does(inception_file, image_sets, features):
    # uint8 input gives the features of the same float images
    out = fid_kid(to_uint8(image_sets["a"][:3]), image_sets["b"][:3], weights_path=inception_file[0])
    expected = fid_kid_from_features(features["a"][:3], features["b"][:3])
    assert out["fid"] == pytest.approx(expected["fid"], rel=1e-4)
    assert out["fid"] > 0 and "kid_skipped" in out


@pytest.mark.parametrize("n", [20, 100])  # fewer and more samples than feature dimensions
def test_frechet_distance_matches_torch_fidelity(n):
    rng = np.random.default_rng(n)
    a = torch.from_numpy(rng.normal(size=(n, 64)))
    b = torch.from_numpy(rng.normal(0.3, 1.5, size=(n + 7, 64)))
    expected = fid_statistics_to_metric(fid_features_to_statistics(a), fid_features_to_statistics(b),
                                        verbose=False)["frechet_inception_distance"]
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_build_inception_rejects_files_that_are_not_its_weights(tmp_path):
    with pytest.raises(WeightsError, match="missing.pth.*weights_path.*does not exist"):
        build_inception(weights_path=tmp_path / "missing.pth")

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(os.urandom(64))
    with pytest.raises(WeightsError, match="corrupt.pth.*weights_path"):
        build_inception(weights_path=corrupt)

    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="other.pth.*weights_path.*does not fit") as info:
        build_inception(weights_path=tmp_path / "other.pth")
    assert "\n" not in str(info.value)


def test_build_inception_failed_download_names_the_argument(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as info:
        build_inception()
    message = str(info.value)
    assert "weights_path" in message and "weights-inception-2015-12-05-6726825d.pth" in message
    assert "\n" not in message


def test_to_uint8_maps_the_image_range_and_rejects_other_ranges():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    assert to_uint8(x).flatten().tolist() == [0, 128, 255]
    with pytest.raises(ConfigError, match=r"expected float images in \[-1, 1\]"):
        to_uint8(x * 255)
