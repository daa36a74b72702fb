"""Rendering fidelity: how far a rendering is from the true rendering, region by region.

Every function takes image batches ``(N, 3, H, W)`` in [-1, 1] (RGB, the library's convention)
and, where a region is asked for, the person mask ``(N, 1, H, W)`` in [0, 1] (1 on the person;
the background is ``1 - mask``). Each returns one value per image, ``(N,)``, so that a table can
average over images and give a spread.

* :func:`psnr` -- peak signal-to-noise ratio in dB over a region (data range 2: [-1, 1]); ``inf``
  where the images are equal there.
* :func:`ssim` -- SSIM (Wang et al. 2004; torchmetrics' Gaussian 11 x 11, sigma 1.5, on the
  three channels) averaged over a region of its per-pixel map.
* :func:`delta_e` -- mean colour difference **CIEDE2000** (Sharma, Wu and Dalal 2005, with
  kL = kC = kH = 1) over a region, in CIE Lab (sRGB, D65 white); 1 is about a just noticeable
  difference. :func:`rgb_to_lab` and :func:`ciede2000` are the two steps.
* :func:`grid_energy` and :func:`grid_excess` -- the grid / checkerboard artefact figure. A
  generator that upsamples by 2 three times leaves patterns of period 2, 4 and 8 pixels; their
  energy sits at the spectrum's frequencies 1/2, 1/4 and 1/8 cycles per pixel. For each period
  ``p`` :func:`grid_energy` sums the power of the (Hann-windowed, mean-removed) luminance at
  the fundamental frequencies of a ``p``-periodic pattern -- ``(fy, fx)`` with each of ``fy``,
  ``fx`` in ``{0, +-1/p}``, the zero frequency left out -- and :func:`grid_excess` gives the
  output's energy over the truth's, in dB, per image and period. Natural images have energy
  there too, so the figure is read against the truth: 0 dB is the truth's own level, and the
  spread of the figure between the truth and another equally true image (the same scene with
  another draw of the sensor noise; see ``crgan quality``) is the reference for "no grid".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

__all__ = ["psnr", "ssim", "rgb_to_lab", "ciede2000", "delta_e", "grid_energy", "grid_excess",
           "fidelity_scores", "GRID_PERIODS"]

GRID_PERIODS = (2, 4, 8)
"""Periods (pixels) of the artefact figure: the generator's three 2x upsamplings."""

_LUMA = (0.299, 0.587, 0.114)


def _check(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> None:
    if x.ndim != 4 or x.shape[1] != 3 or x.shape != y.shape:
        raise ValueError(f"expected two (N, 3, H, W) image batches of one shape; got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if mask is not None and (mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != x.shape[0]
                             or mask.shape[-2:] != x.shape[-2:]):
        raise ValueError(f"expected a (N, 1, H, W) mask for images of shape {tuple(x.shape)}; "
                         f"got {tuple(mask.shape)}")


def _region_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (N, C, H, W) over channels and the pixels weighted by ``weight`` (N, 1, H, W)
    (all pixels when None); NaN for an image whose region is empty."""
    if weight is None:
        return values.mean(dim=(1, 2, 3))
    weight = weight.to(values.dtype)
    total = (values * weight).sum(dim=(1, 2, 3))
    area = weight.sum(dim=(1, 2, 3)) * values.shape[1]
    return torch.where(area > 0, total / area.clamp_min(1e-12), torch.full_like(total, math.nan))


def psnr(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PSNR in dB of ``x`` against ``y`` ((N, 3, H, W) in [-1, 1], data range 2) over the pixels
    of ``mask`` ((N, 1, H, W) weights in [0, 1]; the whole image when None): ``(N,)``, ``inf``
    where equal, NaN where the region is empty."""
    _check(x, y, mask)
    mse = _region_mean((x.double() - y.double()) ** 2, None if mask is None else mask.double())
    return (10.0 * torch.log10(4.0 / mse)).to(x.dtype)


def ssim(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """SSIM of ``x`` against ``y`` ((N, 3, H, W) in [-1, 1]) averaged over the pixels of ``mask``
    (the whole image when None) of its per-pixel map: ``(N,)``, 1 where the images are equal."""
    _check(x, y, mask)
    return _region_mean(_ssim_map(x, y), None if mask is None else mask.float()).to(x.dtype)


def _ssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The per-pixel SSIM map (N, 3, H, W) of two image batches in [-1, 1]."""
    _, full = structural_similarity_index_measure(x.float(), y.float(), data_range=2.0, reduction="none",
                                                  return_full_image=True)
    return full


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65 white) of sRGB images ``(N, 3, H, W)`` in [-1, 1]: ``(N, 3, H, W)`` with
    L in [0, 100] and a, b roughly in [-128, 127]."""
    rgb = ((x.double() + 1.0) / 2.0).clamp(0.0, 1.0)
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    matrix = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                           [0.2126729, 0.7151522, 0.0721750],
                           [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64, device=x.device)
    xyz = torch.einsum("ij,njhw->nihw", matrix, linear)
    white = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    t = xyz / white
    delta = 6.0 / 29.0
    f = torch.where(t > delta ** 3, t.clamp_min(1e-12) ** (1.0 / 3.0), t / (3 * delta ** 2) + 4.0 / 29.0)
    L = 116.0 * f[:, 1] - 16.0
    a = 500.0 * (f[:, 0] - f[:, 1])
    b = 200.0 * (f[:, 1] - f[:, 2])
    return torch.stack([L, a, b], dim=1).to(x.dtype if x.is_floating_point() else torch.float32)


def ciede2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference (kL = kC = kH = 1) between Lab colours stacked on dimension 1
    (``(N, 3, ...)`` each): ``(N, ...)``. Follows Sharma, Wu and Dalal (2005), whose test pairs
    it reproduces to 1e-4."""
    L1, a1, b1 = lab1.double().unbind(1)
    L2, a2, b2 = lab2.double().unbind(1)
    C1, C2 = torch.hypot(a1, b1), torch.hypot(a2, b2)
    C_mean7 = ((C1 + C2) / 2.0) ** 7
    G = 0.5 * (1.0 - torch.sqrt(C_mean7 / (C_mean7 + 25.0 ** 7)))
    a1p, a2p = (1.0 + G) * a1, (1.0 + G) * a2
    C1p, C2p = torch.hypot(a1p, b1), torch.hypot(a2p, b2)
    h1p = torch.rad2deg(torch.atan2(b1, a1p)) % 360.0
    h2p = torch.rad2deg(torch.atan2(b2, a2p)) % 360.0
    h1p = torch.where(C1p == 0, torch.zeros_like(h1p), h1p)
    h2p = torch.where(C2p == 0, torch.zeros_like(h2p), h2p)
    dLp = L2 - L1
    dCp = C2p - C1p
    dh = h2p - h1p
    dh = torch.where(dh > 180.0, dh - 360.0, torch.where(dh < -180.0, dh + 360.0, dh))
    dh = torch.where(C1p * C2p == 0, torch.zeros_like(dh), dh)
    dHp = 2.0 * torch.sqrt(C1p * C2p) * torch.sin(torch.deg2rad(dh) / 2.0)
    Lp_mean = (L1 + L2) / 2.0
    Cp_mean = (C1p + C2p) / 2.0
    hsum = h1p + h2p
    hp_mean = torch.where(torch.abs(h1p - h2p) <= 180.0, hsum / 2.0,
                          torch.where(hsum < 360.0, (hsum + 360.0) / 2.0, (hsum - 360.0) / 2.0))
    hp_mean = torch.where(C1p * C2p == 0, hsum, hp_mean)
    T = (1.0 - 0.17 * torch.cos(torch.deg2rad(hp_mean - 30.0)) + 0.24 * torch.cos(torch.deg2rad(2.0 * hp_mean))
         + 0.32 * torch.cos(torch.deg2rad(3.0 * hp_mean + 6.0)) - 0.20 * torch.cos(torch.deg2rad(4.0 * hp_mean - 63.0)))
    d_theta = 30.0 * torch.exp(-(((hp_mean - 275.0) / 25.0) ** 2))
    Cp_mean7 = Cp_mean ** 7
    R_C = 2.0 * torch.sqrt(Cp_mean7 / (Cp_mean7 + 25.0 ** 7))
    S_L = 1.0 + 0.015 * (Lp_mean - 50.0) ** 2 / torch.sqrt(20.0 + (Lp_mean - 50.0) ** 2)
    S_C = 1.0 + 0.045 * Cp_mean
    S_H = 1.0 + 0.015 * Cp_mean * T
    R_T = -torch.sin(torch.deg2rad(2.0 * d_theta)) * R_C
    dE = torch.sqrt((dLp / S_L) ** 2 + (dCp / S_C) ** 2 + (dHp / S_H) ** 2 + R_T * (dCp / S_C) * (dHp / S_H))
    return dE.to(lab1.dtype)


def delta_e(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean CIEDE2000 colour difference between ``x`` and ``y`` ((N, 3, H, W) sRGB in [-1, 1])
    over the pixels of ``mask`` (the whole image when None): ``(N,)``, 0 where equal."""
    _check(x, y, mask)
    dE = ciede2000(rgb_to_lab(x.double()), rgb_to_lab(y.double())).unsqueeze(1)
    return _region_mean(dE, None if mask is None else mask.double()).to(x.dtype)


def _fundamental_bins(size: int, period: int) -> list[int]:
    """FFT indices of the frequencies 0 and +-1/period cycles per pixel along an axis of ``size``."""
    k = int(round(size / period))
    return sorted({0, k % size, (size - k) % size})


def grid_energy(x: torch.Tensor, periods: Sequence[int] = GRID_PERIODS) -> torch.Tensor:
    """Spectral power of each image's luminance at the fundamental frequencies of patterns of each
    period (see the module docstring): ``x`` (N, 3, H, W) in [-1, 1] -> ``(N, len(periods))``.

    The luminance (in [0, 1]) has its mean removed and is multiplied by a 2-D Hann window (so
    that the image's borders do not leak into every frequency) before the FFT; power is
    normalised by the window's energy."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an (N, 3, H, W) image batch; got {tuple(x.shape)}")
    n, _, h, w = x.shape
    luma = torch.tensordot(torch.tensor(_LUMA, dtype=torch.float64, device=x.device), (x.double() + 1) / 2,
                           dims=([0], [1]))
    luma = luma - luma.mean(dim=(-2, -1), keepdim=True)
    window = (torch.hann_window(h, periodic=False, dtype=torch.float64, device=x.device)[:, None]
              * torch.hann_window(w, periodic=False, dtype=torch.float64, device=x.device)[None, :])
    power = torch.fft.fft2(luma * window).abs() ** 2 / (window ** 2).sum()
    out = []
    for p in periods:
        rows, cols = _fundamental_bins(h, p), _fundamental_bins(w, p)
        sel = torch.zeros(h, w, dtype=torch.bool, device=x.device)
        sel[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = True
        sel[0, 0] = False
        out.append(power[:, sel].sum(dim=1))
    return torch.stack(out, dim=1).to(x.dtype)


def grid_excess(x: torch.Tensor, truth: torch.Tensor, periods: Sequence[int] = GRID_PERIODS,
                floor: float = 1e-8) -> torch.Tensor:
    """The grid artefact figure: ``10 log10`` of ``x``'s :func:`grid_energy` over the truth's, per
    image and period, ``(N, len(periods))`` in dB (0: the truth's level; > 0: more periodic
    energy than the truth has). ``floor`` keeps a flat image finite."""
    _check(x, truth, None)
    return 10.0 * torch.log10((grid_energy(x, periods) + floor) / (grid_energy(truth, periods) + floor))


def fidelity_scores(rendered: torch.Tensor, truth: torch.Tensor, person: torch.Tensor,
                    periods: Sequence[int] = GRID_PERIODS) -> dict[str, torch.Tensor]:
    """Every figure of a rendering against its truth: ``psnr`` and ``ssim`` on the whole image,
    ``psnr_person`` / ``ssim_person`` on the person (``person`` mask, (N, 1, H, W) in [0, 1]) and
    ``psnr_background`` / ``ssim_background`` on the rest, ``delta_e_person`` (CIEDE2000 on the
    person) and ``grid_db`` (:func:`grid_excess` averaged over the periods; ``grid_db_p<period>``
    each period's), each ``(N,)``."""
    _check(rendered, truth, person)
    background = 1.0 - person
    squared = (rendered.double() - truth.double()) ** 2
    ssim_map = _ssim_map(rendered, truth)
    dtype = rendered.dtype
    scores = {}
    for suffix, region in (("", None), ("_person", person), ("_background", background)):
        mse = _region_mean(squared, None if region is None else region.double())
        scores[f"psnr{suffix}"] = (10.0 * torch.log10(4.0 / mse)).to(dtype)
        scores[f"ssim{suffix}"] = _region_mean(ssim_map, None if region is None else region.float()).to(dtype)
    scores = {k: scores[k] for k in ("psnr", "psnr_person", "psnr_background", "ssim", "ssim_person",
                                     "ssim_background")}
    scores["delta_e_person"] = delta_e(rendered, truth, person)
    excess = grid_excess(rendered, truth, periods)
    scores["grid_db"] = excess.mean(dim=1)
    scores.update({f"grid_db_p{p}": excess[:, i] for i, p in enumerate(periods)})
    return scores
