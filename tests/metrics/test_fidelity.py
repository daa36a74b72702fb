"""Rendering-fidelity metrics on known cases."""

from __future__ import annotations

import math

import pytest
import torch

from crgan_lightning.metrics.fidelity import (
    GRID_PERIODS, ciede2000, delta_e, fidelity_scores, grid_excess, grid_peak_bins, grid_prominence, hf_energy,
    hf_excess, power_spectrum, psnr, rgb_to_lab, spectral_prominence, ssim,
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
    assert torch.equal(scores["hf_db"], torch.zeros(3))


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


def test_the_context_figure_counts_only_where_the_context_person_stood_outside_the_person():
    """Noise under the rendered person or outside the context person's mask leaves ``psnr_context``
    infinite; noise where the context person stood and the rendered person does not, lowers it to
    the PSNR of that noise over that region."""
    x, m = smooth_images(), person_mask()
    context = torch.zeros_like(m)
    context[:, :, 8:40, 18:30] = 1.0  # overlaps the person (rows 16-47, columns 10-21) in columns 18-21
    region = context * (1 - m)
    gen = torch.Generator().manual_seed(3)
    elsewhere = x + 0.05 * torch.randn(x.shape, generator=gen) * (1 - region)
    assert torch.isinf(fidelity_scores(elsewhere, x, m, context_person=context)["psnr_context"]).all()
    noise = 0.05 * torch.randn(x.shape, generator=gen) * region
    inside = (noise.double() ** 2).sum(dim=(1, 2, 3)) / (region.sum(dim=(1, 2, 3)).double() * 3)
    scores = fidelity_scores(x + noise, x, m, context_person=context)
    assert torch.allclose(scores["psnr_context"].double(), 10 * torch.log10(4.0 / inside), atol=1e-4)
    assert "psnr_context" not in fidelity_scores(x + noise, x, m)


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


def test_hf_energy_of_a_pure_period_4_pattern_sits_at_period_4():
    pattern = (0.5 * checkerboard(64, 32, 4)).expand(1, 3, 64, 32)
    energy = hf_energy(pattern)[0]
    assert energy[1] > 100 * energy[0] and energy[1] > 100 * energy[2]


def test_a_smooth_change_of_tone_does_not_count_as_a_grid():
    x = smooth_images()
    assert (hf_excess(0.9 * x + 0.05, x).abs() < 1.0).all()  # 20 log10(0.9) = -0.9 dB
    assert (grid_excess(0.9 * x + 0.05, x).abs() < 0.01).all()  # a prominence has no level (float32 rounding)


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
    assert torch.allclose(scores["hf_db"], hf_excess(y, x).mean(dim=1))
    assert torch.equal(scores["hf_db_p4"], hf_excess(y, x)[:, 1])


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
    assert (hf_excess(deconv, truth)[:, 0] > 10.0).all()  # the high-frequency figure sees it too


# --------------------------------------------------------------------------- grid, not blur


def natural_images(n: int = 8, h: int = 64, w: int = 32, seed: int = 0, noise: float = 0.01) -> torch.Tensor:
    """Images with a natural (1/f amplitude) spectrum and no periodic pattern, in about [-0.65, 0.65]:
    a random-phase 1/f luminance field plus fainter 1/f colour fields, and white sensor noise of sd
    ``noise``."""
    g = torch.Generator().manual_seed(seed)
    fy, fx = torch.fft.fftfreq(h)[:, None], torch.fft.fftfreq(w)[None, :]
    amplitude = 1.0 / torch.sqrt(fy ** 2 + fx ** 2).clamp_min(1.0 / h)

    def field(channels: int) -> torch.Tensor:
        z = torch.randn(n, channels, h, w, generator=g) + 1j * torch.randn(n, channels, h, w, generator=g)
        return torch.fft.ifft2(z * amplitude).real

    x = field(1) + 0.3 * field(3)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    x = 0.6 * x / x.abs().amax(dim=(1, 2, 3), keepdim=True)
    return x + noise * torch.randn(x.shape, generator=g)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 3, H, W) images, reflected at the borders."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(x.dtype)
    x = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)


def test_the_grid_figure_of_the_truth_itself_is_zero():
    x = natural_images()
    assert torch.equal(grid_excess(x, x.clone()), torch.zeros(8, len(GRID_PERIODS)))


def test_a_blurred_truth_reads_no_grid_where_the_high_frequency_figure_reads_a_large_loss():
    x = natural_images()
    blurred = gaussian_blur(x, 0.5)
    grid, hf = grid_excess(blurred, x).mean(dim=0), hf_excess(blurred, x).mean(dim=0)
    assert (grid.abs() < 0.5).all(), grid              # measured: -0.3, +0.1, +0.1 dB at periods 2, 4, 8
    assert hf[0] < -5.0 and hf[1] < -2.0, hf           # measured: -6.1, -2.5 dB
    # a strong blur bends the spectrum's far end down: period 2 then reads low (never high)
    strong = grid_excess(gaussian_blur(x, 1.0), x).mean(dim=0)
    assert -7.0 < strong[0] < -3.0 and (strong[1:].abs() < 1.5).all(), strong  # measured: -5.1, +0.9, +0.7


def test_sharpening_reads_no_grid_where_the_high_frequency_figure_reads_a_gain():
    x = natural_images()
    sharpened = x + (x - gaussian_blur(x, 1.0))  # unsharp mask, amount 1
    assert (grid_excess(sharpened, x).abs().mean(dim=0) < 0.5).all()
    assert (hf_excess(sharpened, x).mean(dim=0)[:2] > 4.0).all()  # measured: +6.0, +4.9 dB


@pytest.mark.parametrize("period, amplitude, at_least", [(2, 0.03, 7.0), (4, 0.03, 6.0), (8, 0.05, 4.0)])
def test_a_faint_checkerboard_raises_the_grid_figure_at_its_period_only(period, amplitude, at_least):
    """Measured means over the 8 images: 9.2 (period 2), 8.0 (period 4), 5.7 dB (period 8, whose
    peak bins sit where natural images have 20 dB more power)."""
    x = natural_images()
    excess = grid_excess(x + amplitude * checkerboard(64, 32, period), x)
    i = GRID_PERIODS.index(period)
    assert excess[:, i].mean() > at_least, excess[:, i]
    assert (excess[:, i] > 0.0).all()
    others = [j for j in range(len(GRID_PERIODS)) if j != i]
    assert excess[:, others].abs().max() < 0.1  # a checkerboard has no energy at the other periods' bins


def test_stripes_along_one_axis_count_at_their_period():
    x = natural_images()
    ys, xs = torch.meshgrid(torch.arange(64), torch.arange(32), indexing="ij")
    rows = ((ys // 2) % 2).float() * 2 - 1  # horizontal bands of period 4: one peak bin of four
    columns = (xs % 2).float() * 2 - 1      # vertical stripes of period 2: one peak bin of three
    assert grid_excess(x + 0.03 * rows, x)[:, 1].mean() > 2.5     # measured 3.7 dB
    assert grid_excess(x + 0.03 * columns, x)[:, 0].mean() > 5.0  # measured 8.3 dB


def test_white_noise_of_the_checkerboards_amplitude_reads_far_below_them():
    x = natural_images()
    g = torch.Generator().manual_seed(5)
    noise = grid_excess(x + 0.03 * torch.randn(x.shape, generator=g), x).mean(dim=0)
    checker = torch.stack([grid_excess(x + 0.03 * checkerboard(64, 32, p), x)[:, i].mean()
                           for i, p in enumerate(GRID_PERIODS)])
    assert (noise.abs() < 1.0).all(), noise  # measured: -0.1, +0.4, -0.0 dB
    assert (checker[:2] > noise[:2] + 5.0).all() and checker[2] > noise[2] + 2.0


def test_a_grid_in_the_colours_alone_counts_though_the_luminance_is_unchanged():
    x = natural_images()
    pattern = checkerboard(64, 32, 4)
    y = x.clone()
    y[:, 0] += 0.03 * pattern
    y[:, 1] -= 0.03 * 0.299 / 0.587 * pattern  # the luminance 0.299 R + 0.587 G + 0.114 B is unchanged
    assert grid_excess(y, x)[:, 1].mean() > 4.0  # measured 6.5 dB
    assert hf_excess(y, x).abs().max() < 1e-4   # the luminance-only figure is blind to it


def test_peak_bins_are_the_distinct_fundamentals_and_a_pure_pattern_is_a_peak():
    assert grid_peak_bins(64, 32, 2) == [(0, 16), (32, 0), (32, 16)]
    assert sorted(grid_peak_bins(64, 32, 4)) == [(0, 8), (16, 0), (16, 8), (16, 24)]
    pattern = (0.5 * checkerboard(64, 32, 4)).expand(1, 3, 64, 32) + 0.01 * natural_images(1, noise=0.0)
    prominence = spectral_prominence(power_spectrum(pattern))[0]
    assert prominence[16, 8] > 30.0 and prominence[16, 8] > prominence.max() - 1e-9  # ties its mirror bin
    assert grid_prominence(pattern)[0, 1] > 30.0


def test_a_bad_period_or_ring_is_an_error():
    x = natural_images(1)
    with pytest.raises(ValueError, match="period"):
        grid_prominence(x, periods=(1,))
    with pytest.raises(ValueError, match="ring"):
        grid_prominence(x, ring=(0, 2))
