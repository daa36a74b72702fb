"""Rendering-fidelity metrics on known cases."""

from __future__ import annotations

import math

import pytest
import torch

from crgan_lightning.metrics.fidelity import (
    ciede2000, delta_e, fidelity_scores, grid_energy, grid_excess, psnr, rgb_to_lab, ssim,
)


def smooth_images(n: int = 3, h: int = 64, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Natural-looking test images in [-0.6, 0.6]: low-resolution noise upsampled bilinearly."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, h // 8, w // 8, generator=g) * 1.2 - 0.6
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)


def person_mask(n: int = 3, h: int = 64, w: int = 32) -> torch.Tensor:
    m = torch.zeros(n, 1, h, w)
    m[:, :, 16:48, 10:22] = 1.0
    return m


def test_identical_images_give_infinite_psnr_ssim_one_zero_delta_e_and_no_grid_excess():
    x, m = smooth_images(), person_mask()
    scores = fidelity_scores(x, x.clone(), m)
    for key in ("psnr", "psnr_person", "psnr_background"):
        assert torch.isinf(scores[key]).all()
    for key in ("ssim", "ssim_person", "ssim_background"):
        assert torch.allclose(scores[key], torch.ones(3), atol=1e-6)
    assert torch.equal(scores["delta_e_person"], torch.zeros(3))
    assert torch.equal(scores["grid_db"], torch.zeros(3))


def test_psnr_of_gaussian_noise_is_the_one_computed_by_hand():
    x = smooth_images()
    noise = 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    y = x + noise  # stays in [-1, 1]: |x| <= 0.6
    by_hand = 10 * torch.log10(4.0 / (noise.double() ** 2).mean(dim=(1, 2, 3)))
    assert torch.allclose(psnr(y, x).double(), by_hand, atol=1e-4)
    assert by_hand.mean().item() == pytest.approx(10 * math.log10(4 / 0.05 ** 2), abs=0.1)  # 32.04 dB


def test_noise_on_the_person_only_leaves_the_background_exact():
    x, m = smooth_images(), person_mask()
    noise = 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2)) * m
    y = x + noise
    inside = (noise.double() ** 2).sum(dim=(1, 2, 3)) / (m.sum(dim=(1, 2, 3)).double() * 3)
    assert torch.allclose(psnr(y, x, m).double(), 10 * torch.log10(4.0 / inside), atol=1e-4)
    assert torch.isinf(psnr(y, x, 1 - m)).all()
    assert (ssim(y, x, 1 - m) > ssim(y, x, m)).all()
    assert (ssim(y, x, m) < 0.95).all()


def test_an_empty_region_gives_nan_not_a_number_that_looks_measured():
    x = smooth_images()
    assert torch.isnan(psnr(x + 0.1, x, torch.zeros(3, 1, 64, 32))).all()


# --------------------------------------------------------------------------- colour


def test_lab_of_white_black_and_srgb_red_are_the_published_values():
    colours = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).view(3, 3, 1, 1) * 2 - 1
    lab = rgb_to_lab(colours).view(3, 3)
    assert torch.allclose(lab[0], torch.tensor([100.0, 0.0, 0.0]), atol=0.01)
    assert torch.allclose(lab[1], torch.tensor([0.0, 0.0, 0.0]), atol=0.01)
    assert torch.allclose(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=0.02)


# Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference formula", Table 1: pairs 1, 4, 7, 9,
# 17 and 25 (Lab 1, Lab 2, Delta E 2000).
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.4900, -0.0010), (50.0, -2.4900, 0.0009), 7.1792),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
]


def test_ciede2000_reproduces_the_published_test_pairs():
    lab1 = torch.tensor([p[0] for p in SHARMA], dtype=torch.float64).view(-1, 3, 1)
    lab2 = torch.tensor([p[1] for p in SHARMA], dtype=torch.float64).view(-1, 3, 1)
    expected = torch.tensor([p[2] for p in SHARMA], dtype=torch.float64)
    assert torch.allclose(ciede2000(lab1, lab2).view(-1), expected, atol=1e-4)
    assert torch.allclose(ciede2000(lab2, lab1).view(-1), expected, atol=1e-4)  # symmetric


def _grey_lightness(g: float) -> float:
    """CIE L of an sRGB grey of value g in [0, 1], by hand."""
    linear = g / 12.92 if g <= 0.04045 else ((g + 0.055) / 1.055) ** 2.4
    return 116 * linear ** (1 / 3) - 16


def test_a_uniform_grey_shift_gives_the_lightness_difference_over_sl():
    g1, g2 = 0.45, 0.55
    x = torch.full((2, 3, 64, 32), 2 * g1 - 1)
    y = torch.full((2, 3, 64, 32), 2 * g2 - 1)
    L1, L2 = _grey_lightness(g1), _grey_lightness(g2)
    mean = (L1 + L2) / 2
    s_l = 1 + 0.015 * (mean - 50) ** 2 / math.sqrt(20 + (mean - 50) ** 2)
    expected = abs(L2 - L1) / s_l  # greys have no chroma: only the lightness term is left
    assert torch.allclose(delta_e(y, x, person_mask(2)), torch.full((2,), expected), atol=1e-4)


def test_delta_e_of_a_coloured_person_counts_only_the_person_region():
    x, m = smooth_images(), person_mask()
    tint = torch.tensor([0.1, -0.05, 0.0]).view(1, 3, 1, 1)
    y = x + tint * m
    assert (delta_e(y, x, m) > 2.0).all()
    assert torch.equal(delta_e(y, x, 1 - m), torch.zeros(3))


# --------------------------------------------------------------------------- grid artefacts


def checkerboard(h: int, w: int, period: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (((ys // (period // 2)) + (xs // (period // 2))) % 2).float() * 2 - 1  # +-1


def test_an_added_period_2_checkerboard_raises_the_grid_figure_at_period_2():
    x = smooth_images()
    y = x + 0.03 * checkerboard(64, 32, 2)
    excess = grid_excess(y, x)
    assert (excess[:, 0] > 10.0).all()            # period 2: far above the truth's level
    assert (excess[:, 2].abs() < 1.0).all()      # period 8 hardly moves
    assert (grid_excess(x + 0.03 * checkerboard(64, 32, 4), x)[:, 1] > 10.0).all()


def test_grid_energy_of_a_pure_period_4_pattern_sits_at_period_4():
    pattern = (0.5 * checkerboard(64, 32, 4)).expand(1, 3, 64, 32)
    energy = grid_energy(pattern)[0]
    assert energy[1] > 100 * energy[0] and energy[1] > 100 * energy[2]


def test_a_smooth_change_of_tone_does_not_count_as_a_grid():
    x = smooth_images()
    assert (grid_excess(0.9 * x + 0.05, x).abs() < 1.0).all()  # 20 log10(0.9) = -0.9 dB


def test_shape_mismatches_are_errors():
    with pytest.raises(ValueError, match="one shape"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 4))
    with pytest.raises(ValueError, match="mask"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_fidelity_scores_agree_with_the_single_figures():
    x, m = smooth_images(), person_mask()
    y = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    scores = fidelity_scores(y, x, m)
    for key, fn, region in (("psnr", psnr, None), ("psnr_person", psnr, m), ("psnr_background", psnr, 1 - m),
                            ("ssim", ssim, None), ("ssim_person", ssim, m), ("ssim_background", ssim, 1 - m),
                            ("delta_e_person", delta_e, m)):
        assert torch.allclose(scores[key], fn(y, x, region), atol=1e-5), key
    assert torch.allclose(scores["grid_db"], grid_excess(y, x).mean(dim=1))
    assert torch.equal(scores["grid_db_p2"], grid_excess(y, x)[:, 0])
    assert torch.equal(scores["grid_db_p8"], grid_excess(y, x)[:, 2])


def test_a_stride_2_transposed_convolution_leaves_a_grid_that_bilinear_upsampling_does_not():
    """Uneven kernel overlap (kernel 3, stride 2) is the classic source of checkerboard artefacts."""
    low = smooth_images(h=32, w=16)
    truth = torch.nn.functional.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
    weight = torch.zeros(3, 3, 3, 3)
    for c in range(3):
        weight[c, c] = 0.5  # each input pixel spread over a 3 x 3 output patch: overlaps count twice
    deconv = torch.nn.functional.conv_transpose2d(low, weight, stride=2, padding=1, output_padding=1)
    excess = grid_excess(deconv, truth)
    assert (excess[:, 0] > 10.0).all()  # period 2
    assert (grid_excess(truth * 0.98, truth).abs() < 0.5).all()
