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
* :func:`grid_prominence` and :func:`grid_excess` -- the grid / checkerboard artefact figure. A
  generator that upsamples by 2 leaves patterns of period 2, 4, 8 ... pixels; a pattern of period
  ``p`` puts its energy at the frequencies whose coordinates are each ``0`` or ``+-1/p`` cycles per
  pixel (the *peak bins*; exactly on FFT bins when ``p`` divides the image size). A grid is a
  *peak* there: more power than the spectrum around it. Blur and sharpening are not peaks: they
  raise or lower a whole neighbourhood of the spectrum together. So the figure is a prominence:

  1. the power spectrum of the image: each RGB channel in [0, 1], its mean removed, times a 2-D
     Hann window, FFT, ``|.|^2`` summed over the three channels (so a grid in one colour counts
     as much as a grey one), normalised by the window's energy (:func:`power_spectrum`);
  2. at every peak bin, ``10 log10`` of its power minus the mean of ``10 log10`` power over its
     *ring*: the bins at Chebyshev distance 2 or 3 (``|dy|, |dx| <= 3``, not both ``<= 1``); for
     a peak bin on an axis of the spectrum (zero frequency in y or in x, where the image's
     horizontal and vertical edges and streaks put a ridge of power), the 4 bins on that axis at
     distance 2 or 3, so that a stronger or weaker ridge is not read as a peak. Distance 1 is left
     out because the Hann window spreads a pure peak over its +-1 neighbours (-6 dB there), and
     every bin where a ``p``-periodic pattern could put energy (the zero frequency, the other peak
     bins and their harmonics) is left out of the ring. The ring is a geometric mean, so a smooth
     change of spectral slope (blur, sharpening, a change of contrast) moves the peak and its
     ring together and cancels to first order;
  3. :func:`grid_prominence` averages step 2 over the period's distinct peak bins (3 for period 2,
     whose peaks sit at the Nyquist frequency; 4 for the others), per image and period;
     :func:`grid_excess` is the rendering's prominence minus the truth's, in dB: 0 where the
     rendering has the truth's peaks, > 0 where it adds a periodic pattern.

  Known limits: a strong blur lowers the period-2 figure (its peak bins are the spectrum's
  highest frequencies, where the log spectrum of a blurred image bends down most: on the tests'
  natural images a Gaussian blur of sigma 1 pixel reads about -5 dB at period 2 and +1 dB at
  periods 4 and 8, sigma 0.5 within +-0.3 dB), so blur can hide a faint period-2 grid but not
  fake one. A pattern along one axis only (bands, stripes) lights one peak bin of the three or
  four it is averaged over. A texture that is streaky or blotchy without being periodic is no
  peak and is not counted.
* :func:`hf_energy` and :func:`hf_excess` -- the high-frequency level at the same frequencies:
  the (Hann-windowed, mean-removed) luminance power summed over the peak bins of each period,
  output over truth, in dB. It reads a grid too, but also every loss or gain of fine detail (a
  blurred rendering reads strongly negative), so it is the table's *high-frequency loss* figure,
  not its grid figure. The spread of both figures between the truth and another equally true
  image (the same scene with another draw of the sensor noise; see ``crgan quality``) is the
  reference for "no grid" and "as sharp as the truth".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

__all__ = ["psnr", "ssim", "rgb_to_lab", "ciede2000", "delta_e", "power_spectrum", "spectral_prominence",
           "grid_peak_bins", "grid_harmonic_mask", "grid_prominence", "grid_excess", "hf_energy", "hf_excess",
           "fidelity_scores", "GRID_PERIODS", "GRID_RING"]

GRID_PERIODS = (2, 4, 8)
"""Periods (pixels) of the artefact figures: three 2x upsamplings (a generator's decoder, a patch
discriminator's three stride-2 layers)."""

GRID_RING = (2, 3)
"""Inner and outer Chebyshev distance (FFT bins) of the ring a peak bin is compared with."""

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


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an (N, 3, H, W) image batch; got {tuple(x.shape)}")


def _hann_2d(h: int, w: int, device: torch.device) -> torch.Tensor:
    """The (H, W) product of two symmetric Hann windows, float64."""
    return (torch.hann_window(h, periodic=False, dtype=torch.float64, device=device)[:, None]
            * torch.hann_window(w, periodic=False, dtype=torch.float64, device=device)[None, :])


def power_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Power spectrum of each image, summed over its colour channels: ``x`` (N, 3, H, W) in [-1, 1]
    -> ``(N, H, W)`` float64 in FFT order (bin ``[0, 0]`` is the zero frequency).

    Each channel, rescaled to [0, 1], has its mean removed and is multiplied by a 2-D Hann window
    (so that the image's borders do not leak into every frequency); power is normalised by the
    window's energy."""
    _check_batch(x)
    h, w = x.shape[-2:]
    y = (x.double() + 1.0) / 2.0
    y = y - y.mean(dim=(-2, -1), keepdim=True)
    window = _hann_2d(h, w, x.device)
    return (torch.fft.fft2(y * window).abs() ** 2).sum(dim=1) / (window ** 2).sum()


def _ring_offsets(ring: Sequence[int]) -> list[tuple[int, int]]:
    inner, outer = ring
    if not 1 <= inner <= outer:
        raise ValueError(f"ring={tuple(ring)}; expected (inner, outer) with 1 <= inner <= outer")
    return [(dy, dx) for dy in range(-outer, outer + 1) for dx in range(-outer, outer + 1)
            if max(abs(dy), abs(dx)) >= inner]


def spectral_prominence(power: torch.Tensor, ring: Sequence[int] = GRID_RING,
                        excluded: torch.Tensor | None = None, floor: float = 1e-10) -> torch.Tensor:
    """How far each bin of a power spectrum stands above its surroundings, in dB: ``power`` (N, H, W)
    (:func:`power_spectrum`) -> ``(N, H, W)``: ``10 log10`` of the bin's power minus the mean of
    ``10 log10`` power over its ring (cyclically: the spectrum is periodic), leaving out the bins
    of ``excluded`` ((H, W) bool; the zero frequency when None).

    The ring of a bin is the bins at Chebyshev distance ``ring[0]`` to ``ring[1]`` around it;
    for a bin on an axis of the spectrum (zero frequency in x or in y) it is the bins on that
    axis at distance ``ring[0]`` to ``ring[1]``: edges and streaks aligned with the image's
    rows or columns put a ridge of power along the axes, which a ring that left the axis would
    read as a peak. ``floor``, relative to each image's mean power, is added to every bin: it
    keeps a flat image finite and makes the figure independent of the image's contrast (bins
    100 dB below the mean read as that floor rather than as rounding noise)."""
    inner, outer = ring
    h, w = power.shape[-2:]
    level = floor * power.mean(dim=(-2, -1), keepdim=True) + torch.finfo(power.dtype).tiny
    log_power = 10.0 * torch.log10(power + level)
    if excluded is None:
        excluded = torch.zeros(h, w, dtype=torch.bool, device=power.device)
        excluded[0, 0] = True
    keep = (~excluded).to(log_power.dtype)
    kept_log = log_power * keep

    def ring_mean(offsets: list[tuple[int, int]]) -> torch.Tensor:
        total = torch.zeros_like(log_power)
        count = torch.zeros(h, w, dtype=log_power.dtype, device=power.device)
        for dy, dx in offsets:  # the value at bin k + (dy, dx), brought to bin k
            total += torch.roll(kept_log, shifts=(-dy, -dx), dims=(-2, -1))
            count += torch.roll(keep, shifts=(-dy, -dx), dims=(-2, -1))
        return total / count.clamp_min(1.0)

    along = [d for d in range(-outer, outer + 1) if abs(d) >= inner]
    surroundings = ring_mean(_ring_offsets(ring))
    surroundings[..., 0, :] = ring_mean([(0, d) for d in along])[..., 0, :]  # the x axis (zero y frequency)
    surroundings[..., :, 0] = ring_mean([(d, 0) for d in along])[..., :, 0]  # the y axis
    return log_power - surroundings


def grid_peak_bins(height: int, width: int, period: int) -> list[tuple[int, int]]:
    """The distinct peak bins of a ``period``-periodic pattern in an ``height x width`` spectrum:
    ``(row, col)`` FFT indices whose frequencies are each 0 or +-1/period cycles per pixel, the
    zero frequency left out, one of each pair ``k, -k`` (a real image has equal power at both)."""
    bins: list[tuple[int, int]] = []
    for r in _fundamental_bins(height, period):
        for c in _fundamental_bins(width, period):
            mirror = ((height - r) % height, (width - c) % width)
            if (r, c) != (0, 0) and mirror not in bins:
                bins.append((r, c))
    return bins


def grid_harmonic_mask(height: int, width: int, period: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W) bool: every bin where a ``period``-periodic pattern may put energy (all multiples
    of 1/period on both axes, the zero frequency included)."""
    ky, kx = max(1, int(round(height / period))), max(1, int(round(width / period)))
    rows = torch.arange(height, device=device) % ky == 0
    cols = torch.arange(width, device=device) % kx == 0
    return rows[:, None] & cols[None, :]


def grid_prominence(x: torch.Tensor, periods: Sequence[int] = GRID_PERIODS,
                    ring: Sequence[int] = GRID_RING) -> torch.Tensor:
    """Prominence in dB of each image's spectrum at the peak bins of each period (see the module
    docstring), averaged over the period's peak bins: ``x`` (N, 3, H, W) in [-1, 1] ->
    ``(N, len(periods))``. About 0 for an image without periodic patterns and for every natural
    image alike; read it against the truth's (:func:`grid_excess`)."""
    power = power_spectrum(x)
    h, w = power.shape[-2:]
    out = []
    for p in periods:
        if not isinstance(p, int) or p < 2:
            raise ValueError(f"grid period {p!r}; expected an integer >= 2 (pixels)")
        prominence = spectral_prominence(power, ring, grid_harmonic_mask(h, w, p, power.device))
        bins = grid_peak_bins(h, w, p)
        out.append(torch.stack([prominence[:, r, c] for r, c in bins], dim=1).mean(dim=1))
    return torch.stack(out, dim=1).to(x.dtype)


def grid_excess(x: torch.Tensor, truth: torch.Tensor, periods: Sequence[int] = GRID_PERIODS,
                ring: Sequence[int] = GRID_RING) -> torch.Tensor:
    """The grid artefact figure: ``x``'s :func:`grid_prominence` minus the truth's, per image and
    period, ``(N, len(periods))`` in dB (0: the truth's peaks; > 0: a periodic pattern the truth
    does not have). Insensitive to blur, sharpening and contrast (module docstring)."""
    _check(x, truth, None)
    return grid_prominence(x, periods, ring) - grid_prominence(truth, periods, ring)


def hf_energy(x: torch.Tensor, periods: Sequence[int] = GRID_PERIODS) -> torch.Tensor:
    """Spectral power of each image's luminance at the peak bins of each period (see the module
    docstring): ``x`` (N, 3, H, W) in [-1, 1] -> ``(N, len(periods))``.

    The luminance (in [0, 1]) has its mean removed and is multiplied by a 2-D Hann window before
    the FFT; power is normalised by the window's energy."""
    _check_batch(x)
    n, _, h, w = x.shape
    luma = torch.tensordot(torch.tensor(_LUMA, dtype=torch.float64, device=x.device), (x.double() + 1) / 2,
                           dims=([0], [1]))
    luma = luma - luma.mean(dim=(-2, -1), keepdim=True)
    window = _hann_2d(h, w, x.device)
    power = torch.fft.fft2(luma * window).abs() ** 2 / (window ** 2).sum()
    out = []
    for p in periods:
        rows, cols = _fundamental_bins(h, p), _fundamental_bins(w, p)
        sel = torch.zeros(h, w, dtype=torch.bool, device=x.device)
        sel[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = True
        sel[0, 0] = False
        out.append(power[:, sel].sum(dim=1))
    return torch.stack(out, dim=1).to(x.dtype)


def hf_excess(x: torch.Tensor, truth: torch.Tensor, periods: Sequence[int] = GRID_PERIODS,
              floor: float = 1e-8) -> torch.Tensor:
    """The high-frequency level figure: ``10 log10`` of ``x``'s :func:`hf_energy` over the truth's,
    per image and period, ``(N, len(periods))`` in dB (0: the truth's level; < 0: less fine detail
    than the truth, as a blurred rendering has; > 0: more, from sharpening, noise or a grid).
    ``floor`` keeps a flat image finite."""
    _check(x, truth, None)
    return 10.0 * torch.log10((hf_energy(x, periods) + floor) / (hf_energy(truth, periods) + floor))


def fidelity_scores(rendered: torch.Tensor, truth: torch.Tensor, person: torch.Tensor,
                    periods: Sequence[int] = GRID_PERIODS,
                    context_person: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every figure of a rendering against its truth: ``psnr`` and ``ssim`` on the whole image,
    ``psnr_person`` / ``ssim_person`` on the person (``person`` mask, (N, 1, H, W) in [0, 1]) and
    ``psnr_background`` / ``ssim_background`` on the rest, ``delta_e_person`` (CIEDE2000 on the
    person), ``grid_db`` (:func:`grid_excess` averaged over the periods; ``grid_db_p<period>``
    each period's) and ``hf_db`` (:func:`hf_excess` likewise, ``hf_db_p<period>``), each ``(N,)``.

    With ``context_person``, the mask of the person the context image showed, also
    ``psnr_context``: PSNR where that person stood and the rendered person does not
    (``context_person * (1 - person)``), where the truth shows the scene behind them: how much of
    the context's own person a translator leaves (NaN where the region is empty)."""
    _check(rendered, truth, person)
    if context_person is not None:
        _check(rendered, truth, context_person)
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
    if context_person is not None:
        mse = _region_mean(squared, (context_person * background).double())
        scores["psnr_context"] = (10.0 * torch.log10(4.0 / mse)).to(dtype)
    scores["delta_e_person"] = delta_e(rendered, truth, person)
    for key, figure in (("grid_db", grid_excess), ("hf_db", hf_excess)):
        excess = figure(rendered, truth, periods)
        scores[key] = excess.mean(dim=1)
        scores.update({f"{key}_p{p}": excess[:, i] for i, p in enumerate(periods)})
    return scores
