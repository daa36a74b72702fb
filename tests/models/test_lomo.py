"""LOMO descriptor: its dimension, the maximal-occurrence and SILTP invariances, the colour/texture
split, batch consistency, input checks, and a tiny ranking that a plain Euclidean distance solves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import rgb_to_hsv as mpl_rgb_to_hsv

from crgan_lightning.errors import ConfigError
from crgan_lightning.metrics.ranking import compute_distance
from crgan_lightning.models.lomo import (
    LOMO,
    LOMO_DIM,
    lomo_dim,
    lomo_features,
    lomo_layout,
    max_occurrence,
    multiscale_retinex,
    rgb_to_hsv,
    siltp_codes,
)

H, W = 128, 48


def to_library(unit: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> the library's [-1, 1] convention."""
    return unit * 2 - 1


def uniform(colour: tuple[float, float, float], h: int = H, w: int = W) -> torch.Tensor:
    return torch.tensor(colour).view(3, 1, 1).expand(3, h, w).clone()


def noisy_background(seed: int, h: int = 128, w: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, h, w, generator=g) * 0.5 + 0.25


def part(features: torch.Tensor, name: str) -> torch.Tensor:
    return features[..., lomo_layout()[name]]


# ------------------------------------------------------------------ dimension and layout


def test_dimension_is_the_published_26960_and_follows_the_formula():
    rows = [(128 - 10) // 5 + 1, (64 - 10) // 5 + 1, (32 - 10) // 5 + 1]  # 24, 11, 5 window rows
    assert rows == [24, 11, 5]
    assert LOMO_DIM == lomo_dim() == sum(rows) * (8 * 8 * 8 + 2 * 3 ** 4) == 26960
    assert lomo_layout() == {"hsv": slice(0, 20480), "siltp_r3": slice(20480, 23720), "siltp_r5": slice(23720, 26960)}
    # another setting: 2 levels, 64x32 and 32x16 (11 + 5 rows), 4x4x4 colour bins, one 8-point radius
    assert lomo_dim(size=(64, 32), num_scales=2, hsv_bins=(4, 4, 4), radii=(2,), num_points=8) == 16 * (64 + 3 ** 8)
    feats = lomo_features(torch.zeros(2, 3, 64, 32), size=(64, 32), num_scales=2, hsv_bins=(4, 4, 4), radii=(2,),
                          num_points=8)
    assert feats.shape == (2, 16 * (64 + 3 ** 8))


def test_features_have_unit_norm_with_unit_colour_and_texture_parts():
    feats = lomo_features(to_library(torch.stack([noisy_background(0), noisy_background(1)])))
    assert feats.shape == (2, LOMO_DIM) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(2))
    for name in ("hsv", "siltp_r3", "siltp_r5"):  # each part normalised on its own, then / sqrt(3)
        torch.testing.assert_close(part(feats, name).norm(dim=1), torch.full((2,), 3 ** -0.5))
    assert (feats >= 0).all()


# ------------------------------------------------------------------ building blocks on hand-checked values


def test_siltp_code_of_a_hand_made_neighbourhood():
    grey = torch.full((1, 5, 5), 1.0)
    grey[0, 2, 3] = 1.5  # right: above (1 + tau) * centre -> digit 2, weight 1
    grey[0, 1, 2] = 0.5  # up:    below (1 - tau) * centre -> digit 1, weight 3
    grey[0, 2, 1] = 1.1  # left:  within tau               -> digit 0, weight 9
    grey[0, 3, 2] = 0.2  # down:  below                    -> digit 1, weight 27
    assert siltp_codes(grey, tau=0.3, radius=1)[0, 2, 2].item() == 2 + 3 + 27
    assert siltp_codes(torch.full((1, 7, 7), 0.4), tau=0.3, radius=3).eq(0).all()  # flat image: all zero
    assert siltp_codes(torch.rand(2, 9, 9), radius=2, num_points=8).max() < 3 ** 8


def test_max_occurrence_equals_explicit_window_histograms():
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 6, (2, 22, 17), generator=g)
    out = max_occurrence(codes, num_bins=6, block_size=6, block_step=4)
    rows, cols = (22 - 6) // 4 + 1, (17 - 6) // 4 + 1
    assert out.shape == (2, rows, 6)
    for n in range(2):
        for r in range(rows):
            hists = [torch.bincount(codes[n, 4 * r:4 * r + 6, 4 * c:4 * c + 6].flatten(), minlength=6)
                     for c in range(cols)]
            assert torch.equal(out[n, r], torch.stack(hists).amax(0).float())


def test_hsv_conversion_matches_matplotlib():
    rgb = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    rgb[0, :, 0, 0] = 0.5  # grey pixel: hue 0, saturation 0
    rgb[0, :, 0, 1] = 0.0  # black pixel
    expected = mpl_rgb_to_hsv(rgb.permute(0, 2, 3, 1).double().numpy())
    np.testing.assert_allclose(rgb_to_hsv(rgb).permute(0, 2, 3, 1).numpy(), expected, atol=1e-6)


def test_retinex_keeps_hue_and_saturation_and_stays_in_range():
    rgb = torch.rand(3, 3, 64, 32, generator=torch.Generator().manual_seed(2)) * 0.6 + 0.05
    out = multiscale_retinex(rgb)
    assert out.min() >= 0 and out.max() <= 1
    before, after = rgb_to_hsv(rgb), rgb_to_hsv(out)
    lit = after[:, 2] > 0.01  # the darkest 1 % are clipped to black, where hue is undefined
    assert lit.float().mean() > 0.97
    hue_gap = (after[:, 0] - before[:, 0]).abs()
    hue_gap = torch.minimum(hue_gap, 1 - hue_gap)  # hue is circular
    assert hue_gap[lit].max() < 1e-4
    assert (after[:, 1] - before[:, 1]).abs()[lit].max() < 1e-4
    assert (after[:, 2] - before[:, 2]).abs().mean() > 0.05  # the value channel does change


# ------------------------------------------------------------------ invariances


def test_horizontal_shift_inside_a_row_leaves_the_maximal_occurrence_unchanged():
    g = torch.Generator().manual_seed(3)
    patch = torch.rand(3, 30, 10, generator=g) * 0.8 + 0.1
    left, right, lower = (uniform((0.2, 0.5, 0.3)) for _ in range(3))
    left[:, 40:70, 10:20] = patch
    right[:, 40:70, 30:40] = patch  # 20 px to the right: same window rows, a whole number of strides at every level
    lower[:, 60:90, 10:20] = patch  # 20 px down: other window rows
    images = to_library(torch.stack([left, right, lower]))

    # One level: exactly the same histograms, colour and texture.
    one_level = lomo_features(images, num_scales=1, retinex=False)
    torch.testing.assert_close(one_level[0], one_level[1], atol=1e-6, rtol=0)
    assert (one_level[0] - one_level[2]).norm() > 0.3

    # The full pyramid: the colour part is still exact; the texture at the coarse levels sees the patch's
    # right edge fall outside the last window column, so the whole descriptor moves a little, far less
    # than for a vertical shift.
    for retinex in (False, True):
        feats = lomo_features(images, retinex=retinex)
        if not retinex:
            torch.testing.assert_close(part(feats[0], "hsv"), part(feats[1], "hsv"), atol=1e-6, rtol=0)
        assert (feats[0] - feats[1]).norm() < 0.25 * (feats[0] - feats[2]).norm()


def test_brighter_copy_gives_the_same_texture_histograms():
    dark = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(4)) * 0.4 + 0.05
    images = to_library(torch.cat([dark, dark * 2.0]))
    grey = images.mean(1).add(1).double()
    assert torch.equal(siltp_codes(grey[:1] * 2.0, radius=3), siltp_codes(grey[:1], radius=3))
    colour_gap = {}
    for retinex in (True, False):
        feats = lomo_features(images, retinex=retinex)
        for name in ("siltp_r3", "siltp_r5"):
            torch.testing.assert_close(part(feats[0], name), part(feats[1], name), atol=1e-6, rtol=0)
        colour_gap[retinex] = (part(feats[0], "hsv") - part(feats[1], "hsv")).norm()
    # Retinex is what makes the colour part robust to the same change.
    assert colour_gap[True] < 0.25 * colour_gap[False]


def test_identical_images_give_identical_features():
    image = to_library(noisy_background(5)).unsqueeze(0)
    feats = lomo_features(torch.cat([image, image.clone()]))
    assert torch.equal(feats[0], feats[1])


def test_recolouring_the_person_moves_the_colour_part_far_more_than_the_texture():
    background = noisy_background(6)
    red, blue = background.clone(), background.clone()
    red[:, 20:110, 16:48] = torch.tensor([0.8, 0.15, 0.1]).view(3, 1, 1)
    blue[:, 20:110, 16:48] = torch.tensor([0.1, 0.3, 0.85]).view(3, 1, 1)
    feats = lomo_features(to_library(torch.stack([red, blue])))
    diff = feats[0] - feats[1]
    colour = part(diff, "hsv").norm()
    texture = max(part(diff, "siltp_r3").norm(), part(diff, "siltp_r5").norm())
    assert colour > 0.1
    assert colour > 3 * texture


# ------------------------------------------------------------------ batches, sizes, module


def test_batch_and_one_by_one_give_the_same_features():
    images = to_library(torch.stack([noisy_background(s) for s in range(4)]))
    together = lomo_features(images, batch_size=3)  # two chunks of unequal size
    alone = torch.cat([lomo_features(images[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)


def test_other_image_sizes_are_resized_to_the_descriptor_size():
    images = to_library(torch.rand(2, 3, 256, 128, generator=torch.Generator().manual_seed(7)))
    feats = lomo_features(images)
    assert feats.shape == (2, LOMO_DIM)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(2))
    same_size = lomo_features(torch.rand(1, 3, H, W) * 2 - 1)
    assert same_size.shape == (1, LOMO_DIM)


def test_lomo_module_is_a_parameter_free_feature_network():
    net = LOMO()
    assert net.feat_dim == LOMO_DIM and list(net.parameters()) == []
    assert net.layout == lomo_layout()
    images = to_library(torch.stack([noisy_background(8), noisy_background(9)]))
    expected = lomo_features(images)
    torch.testing.assert_close(net(images), expected, atol=0, rtol=0)
    torch.testing.assert_close(net.eval()(images), expected, atol=0, rtol=0)
    torch.testing.assert_close(net.extract(images), expected, atol=0, rtol=0)
    small = LOMO(size=(64, 24), num_scales=2, retinex=False)
    assert small(images).shape == (2, small.feat_dim) == (2, lomo_dim(size=(64, 24), num_scales=2))


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("shape", [(3, 128, 64), (2, 1, 128, 64), (2, 4, 128, 64), (1, 2, 3, 128, 64)])
def test_wrong_image_shapes_raise_config_error_naming_the_shape(shape):
    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)") as info:
        lomo_features(torch.zeros(shape))
    assert str(tuple(shape)) in str(info.value)
    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)"):
        LOMO(retinex=False)(torch.zeros(shape))


def test_non_float_images_raise_config_error():
    with pytest.raises(ConfigError, match="uint8"):
        lomo_features(torch.zeros(1, 3, H, W, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="ndarray"):
        lomo_features(np.zeros((1, 3, H, W), dtype=np.float32))


@pytest.mark.parametrize("options, message", [
    (dict(tau=0.0), "tau=0.0"),
    (dict(num_points=6), "num_points=6"),
    (dict(num_scales=5), "top pyramid level"),
    (dict(size=(128,)), "size="),
    (dict(hsv_bins=(8, 8)), "hsv_bins="),
    (dict(radii=()), "radii="),
    (dict(retinex_clip=0.7), "retinex_clip=0.7"),
    (dict(retinex_sigmas=(5.0, -1.0)), "retinex_sigmas="),
    (dict(size=128), "size=128"),
    (dict(batch_size=0), "batch_size=0"),
])
def test_bad_options_raise_config_error_when_the_module_is_built(options, message):
    with pytest.raises(ConfigError, match=message):
        LOMO(**options)


# ------------------------------------------------------------------ a tiny ranking


def test_nearest_neighbour_of_every_query_is_its_own_identity():
    colours = [(0.8, 0.1, 0.1), (0.1, 0.7, 0.1), (0.15, 0.2, 0.85), (0.85, 0.8, 0.1), (0.6, 0.1, 0.7)]

    def person(colour, background_seed: int, x0: int, gain: float) -> torch.Tensor:
        image = noisy_background(background_seed)  # one background per camera, shared by all identities
        image[:, 24:112, x0:x0 + 24] = torch.tensor(colour).view(3, 1, 1)
        return to_library(image * gain)

    query = torch.stack([person(c, background_seed=10, x0=20, gain=1.0) for c in colours])
    # The gallery camera: another background, the person moved left and 30 % darker. Without Retinex the
    # exposure change moves every value bin and the colour part alone no longer ranks the right identity first.
    gallery = torch.stack([person(c, background_seed=11, x0=12, gain=0.7) for c in colours])
    net = LOMO()
    dist = compute_distance(net(query), net(gallery), metric="euclidean")
    assert (dist.argmin(axis=1) == np.arange(len(colours))).all()
    cosine = compute_distance(net(query), net(gallery), metric="cosine")
    np.testing.assert_allclose(dist ** 2, 2 * cosine, atol=1e-4)  # unit norm: the same ranking
