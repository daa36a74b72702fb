"""LOMO: the training-free Local Maximal Occurrence descriptor of Liao et al. (CVPR 2015).

"Person Re-identification by Local Maximal Occurrence Representation and Metric Learning"
describes a pedestrian image by how often each colour and each local texture pattern occurs in
small windows, keeping for every horizontal stripe of windows the *maximal* occurrence of each
pattern over the windows of that stripe. The maximum makes the descriptor stable under the
left-right position changes of a person seen from different viewpoints, while the stripes keep
the vertical layout (head, torso, legs).

The descriptor, as in the paper and in the authors' MATLAB release (``LOMO.m``):

1. The image is resized to 128x48 (``size``).
2. Colour: optional multi-scale Retinex (see below), conversion to HSV and a joint 8x8x8 HSV
   histogram (512 bins) per window.
3. Texture: the grey image (``0.2989 R + 0.5870 G + 0.1140 B``, without Retinex, as in the
   authors' code) is coded with the Scale Invariant Local Ternary Pattern (SILTP, Liao et al.,
   CVPR 2010) with ``tau = 0.3`` at two radii, ``R = 3`` and ``R = 5``, comparing each pixel with
   its 4 neighbours at distance ``R`` (right, up, left, down): a neighbour above ``(1 + tau)``
   times the centre, below ``(1 - tau)`` times it, or in between gives one ternary digit, so
   ``3 ** 4 = 81`` codes per radius. Each radius has its own 81-bin histogram per window.
4. Windows of 10x10 pixels with a stride of 5; for each row of windows each bin keeps its
   maximum over the windows of that row (the "maximal occurrence").
5. A 3-level pyramid: the colour image and the grey image are reduced by 2x2 average pooling
   (an odd last row or column is dropped) and steps 2-4 are repeated at 64x24 and 32x12.
6. The rows of all levels are concatenated, ``log(1 + x)`` is applied, and the colour part and
   each texture part (one per radius) are L2-normalised separately.

At 128x48 there are 24 + 11 + 5 = 40 window rows, hence ``40 * (512 + 2 * 81) = 26960``
dimensions (:data:`LOMO_DIM`, :func:`lomo_dim` for other settings); :func:`lomo_layout` gives
the slice of each part.

Departures from the published pipeline, all deliberate:

- **No metric learning.** The paper pairs LOMO with XQDA, a metric (a projection and a kernel
  matrix) learned on labelled source images. This library's LOMO row is training-free: the
  descriptor is compared with a plain distance. Use the Euclidean distance on the returned
  features (``metrics.ranking.compute_distance(..., metric="euclidean")``): every feature has
  unit L2 norm, so ``||q - g||^2 = 2 - 2 cos(q, g)`` and cosine distance gives the same ranking.
  Expect much lower accuracy than the paper's LOMO+XQDA numbers.
- **Overall unit norm.** After the per-part normalisation of the authors' code the vector has
  norm ``sqrt(num_parts)``; it is divided by that constant, which changes no ranking.
- **Colour pyramid.** The authors' code average-pools the *quantised* HSV bin indices (so that
  hue bins 0 and 7, both red, average to a green-ish 3). Here the (Retinex) RGB image is pooled
  and converted and quantised again at each level, which is what the paper's text describes.
- **Retinex.** The paper uses multi-scale Retinex with colour restoration (MSRCR, Jobson et al.)
  with Gaussian surrounds sigma = 5 and 20. The default here (``retinex=True``) is the simpler
  multi-scale Retinex with chromaticity preservation (MSRCP, Petro et al., IPOL 2014) at the
  same two sigmas: Retinex on the intensity ``(R + G + B) / 3`` only, a "simplest colour balance"
  stretch of the result (1 % of the pixels clipped at each end), and every pixel's RGB scaled by
  its intensity gain. It keeps hue and saturation exactly (the two axes of the HSV histogram that
  carry most of a person's colour) and normalises the value axis against the illumination and
  exposure differences between cameras, which is what the paper uses Retinex for; it blurs one
  channel instead of three and cannot shift hues as MSRCR's colour restoration can in large
  uniform regions. It is on by default because the paper uses Retinex; ``retinex=False`` turns
  it off (the HSV histogram of the raw colours).
- **Continuous grey levels.** The authors' code reads 8-bit images; here the grey image is not
  rounded, so SILTP is exactly invariant to scaling the intensity.

Input is the library's image convention (float RGB in [-1, 1], NCHW); any size is accepted and
resized (bilinear, antialiased) to ``size``. Nothing here is learned, so the descriptor needs no
checkpoint and computes the same result in ``train()`` and ``eval()`` modes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError

LOMO_SIZE: tuple[int, int] = (128, 48)
GREY_WEIGHTS: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)

# (dy, dx) of the SILTP neighbours, in the order of the authors' code: right, up, left, down,
# then (8 points) the four corners of the (2R+1)x(2R+1) square.
_NEIGHBOURS_4 = ((0, 1), (-1, 0), (0, -1), (1, 0))
_NEIGHBOURS_8 = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


# --------------------------------------------------------------------------- options


def _int_pair(value: object, name: str) -> tuple[int, int]:
    if (not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ConfigError(f"LOMO {name}={value!r}; expected two positive integers (height, width)")
    return int(value[0]), int(value[1])


def _positive_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"LOMO {name}={value!r}; expected an integer >= 1")
    return value


def _check_options(
    size: Sequence[int],
    num_scales: int,
    block_size: int,
    block_step: int,
    hsv_bins: Sequence[int],
    radii: Sequence[int],
    num_points: int,
) -> tuple[tuple[int, int], tuple[int, int, int], tuple[int, ...]]:
    """Validates the layout options; returns ``size``, ``hsv_bins`` and ``radii`` as int tuples."""
    height, width = _int_pair(size, "size")
    _positive_int(num_scales, "num_scales")
    _positive_int(block_size, "block_size")
    _positive_int(block_step, "block_step")
    if (not isinstance(hsv_bins, Sequence) or len(hsv_bins) != 3
            or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in hsv_bins)):
        raise ConfigError(f"LOMO hsv_bins={hsv_bins!r}; expected three positive integers (H, S, V)")
    if (not isinstance(radii, Sequence) or len(radii) == 0
            or not all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in radii)):
        raise ConfigError(f"LOMO radii={radii!r}; expected a non-empty list of positive integers")
    if num_points not in (4, 8):
        raise ConfigError(f"LOMO num_points={num_points!r}; expected 4 or 8")
    low_h, low_w = height >> (num_scales - 1), width >> (num_scales - 1)
    if min(low_h, low_w) < block_size:
        raise ConfigError(
            f"LOMO size={height}x{width} with num_scales={num_scales} gives a {low_h}x{low_w} top pyramid "
            f"level, smaller than block_size={block_size}; expected fewer scales, a larger size or smaller blocks"
        )
    return (height, width), (int(hsv_bins[0]), int(hsv_bins[1]), int(hsv_bins[2])), tuple(int(r) for r in radii)


def _window_rows(height: int, num_scales: int, block_size: int, block_step: int) -> list[int]:
    """Rows of windows at each pyramid level (the level's height halves, rounding down)."""
    rows = []
    for _ in range(num_scales):
        rows.append((height - block_size) // block_step + 1)
        height //= 2
    return rows


def lomo_layout(
    size: Sequence[int] = LOMO_SIZE,
    num_scales: int = 3,
    block_size: int = 10,
    block_step: int = 5,
    hsv_bins: Sequence[int] = (8, 8, 8),
    radii: Sequence[int] = (3, 5),
    num_points: int = 4,
) -> dict[str, slice]:
    """Where each part of the descriptor lies: ``{"hsv": slice, "siltp_r3": slice, ...}`` in order.

    Each part is its histograms for every window row of every pyramid level (level 1 first, rows
    top to bottom, bins fastest) and is L2-normalised on its own.
    """
    (height, _), bins, radii = _check_options(size, num_scales, block_size, block_step, hsv_bins, radii, num_points)
    num_rows = sum(_window_rows(height, num_scales, block_size, block_step))
    widths = [("hsv", bins[0] * bins[1] * bins[2])] + [(f"siltp_r{r}", 3 ** num_points) for r in radii]
    layout, start = {}, 0
    for name, bins_per_row in widths:
        layout[name] = slice(start, start + num_rows * bins_per_row)
        start += num_rows * bins_per_row
    return layout


def lomo_dim(
    size: Sequence[int] = LOMO_SIZE,
    num_scales: int = 3,
    block_size: int = 10,
    block_step: int = 5,
    hsv_bins: Sequence[int] = (8, 8, 8),
    radii: Sequence[int] = (3, 5),
    num_points: int = 4,
) -> int:
    """Descriptor length: ``sum over levels of rows * (prod(hsv_bins) + len(radii) * 3 ** num_points)``.

    26960 with the defaults (40 window rows times 512 + 2 * 81 bins).
    """
    layout = lomo_layout(size, num_scales, block_size, block_step, hsv_bins, radii, num_points)
    return next(reversed(layout.values())).stop


LOMO_DIM: int = lomo_dim()


# --------------------------------------------------------------------------- image operations


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """HSV of RGB images, as MATLAB's ``rgb2hsv``: (N, 3, H, W) in [0, 1] -> (N, 3, H, W) in [0, 1].

    Hue is 0 for red, 1/3 for green, 2/3 for blue, and 0 for grey pixels; saturation is
    ``(max - min) / max`` (0 for black); value is ``max``.
    """
    r, g, b = rgb.unbind(1)
    value, argmax = rgb.max(dim=1)
    delta = value - rgb.min(dim=1).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(argmax == 0, torch.remainder((g - b) / safe, 6.0),
                      torch.where(argmax == 1, (b - r) / safe + 2.0, (r - g) / safe + 4.0)) / 6.0
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    sat = torch.where(value > 0, delta / torch.where(value > 0, value, torch.ones_like(value)), torch.zeros_like(value))
    return torch.stack((hue, sat, value), dim=1)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with replicated borders, radius ``ceil(3 sigma)``: (N, C, H, W) -> same."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"), horizontal, groups=channels)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), vertical, groups=channels)


def multiscale_retinex(
    rgb: torch.Tensor, sigmas: Sequence[float] = (5.0, 20.0), clip: float = 0.01
) -> torch.Tensor:
    """Multi-scale Retinex with chromaticity preservation (MSRCP): (N, 3, H, W) in [0, 1] -> same.

    The intensity ``I = (R + G + B) / 3`` (in 0..255 units, plus 1 to keep the log finite) gives
    ``MSR = mean over sigmas of log(I) - log(gaussian_blur(I, sigma))``; the MSR of each image is
    stretched to [0, 1] with the ``clip`` fraction of its pixels saturated at each end (the
    "simplest colour balance"), and each pixel's RGB is multiplied by ``new_I / I`` (capped so
    that no channel exceeds 1). Hue and saturation are unchanged; black pixels become grey.
    """
    intensity = rgb.mean(dim=1, keepdim=True)
    scaled = intensity * 255.0 + 1.0
    log_i = torch.log(scaled)
    msr = torch.stack([log_i - torch.log(gaussian_blur(scaled, s)) for s in sigmas]).mean(0)
    flat = msr.flatten(1)
    if clip > 0:
        bounds = torch.quantile(flat, torch.tensor([clip, 1.0 - clip], dtype=flat.dtype, device=flat.device), dim=1)
        low, high = bounds[0], bounds[1]
    else:
        low, high = flat.amin(1), flat.amax(1)
    low, high = low.view(-1, 1, 1, 1), high.view(-1, 1, 1, 1)
    new_i = ((msr - low) / (high - low).clamp_min(1e-6)).clamp(0.0, 1.0)
    max_c = rgb.amax(dim=1, keepdim=True)
    lit = intensity > 1e-6
    gain = torch.minimum(new_i / torch.where(lit, intensity, torch.ones_like(intensity)),
                         1.0 / torch.where(lit, max_c, torch.ones_like(max_c)))
    return torch.where(lit, rgb * gain, new_i.expand_as(rgb)).clamp(0.0, 1.0)


def siltp_codes(grey: torch.Tensor, tau: float = 0.3, radius: int = 3, num_points: int = 4) -> torch.Tensor:
    """Scale Invariant Local Ternary Pattern codes: (N, H, W) grey images -> (N, H, W) int64 codes.

    Neighbour ``k`` (at distance ``radius``, borders replicated) contributes the ternary digit
    ``1`` if it is below ``(1 - tau) * centre``, ``2`` if above ``(1 + tau) * centre``, else ``0``,
    weighted by ``3 ** k``: codes lie in ``[0, 3 ** num_points)``. Multiplying the image by any
    positive constant leaves every code unchanged.
    """
    neighbours = _NEIGHBOURS_4 if num_points == 4 else _NEIGHBOURS_8
    height, width = grey.shape[-2:]
    padded = F.pad(grey.unsqueeze(1), (radius,) * 4, mode="replicate").squeeze(1)
    lower, upper = (1.0 - tau) * grey, (1.0 + tau) * grey
    codes = torch.zeros(grey.shape, dtype=torch.int64, device=grey.device)
    for k, (dy, dx) in enumerate(neighbours):
        y0, x0 = radius + dy * radius, radius + dx * radius
        nb = padded[:, y0:y0 + height, x0:x0 + width]
        digit = (nb < lower).long() + 2 * (nb > upper).long()
        codes += digit * 3 ** k
    return codes


def max_occurrence(codes: torch.Tensor, num_bins: int, block_size: int, block_step: int) -> torch.Tensor:
    """Histogram of ``codes`` in every ``block_size`` window (stride ``block_step``), maximised over
    the windows of each row: (N, H, W) int codes in ``[0, num_bins)`` -> (N, rows, num_bins) float.

    ``rows = (H - block_size) // block_step + 1``; the windows of a row are the
    ``(W - block_size) // block_step + 1`` windows at the same height.
    """
    n, height, width = codes.shape
    rows = (height - block_size) // block_step + 1
    cols = (width - block_size) // block_step + 1
    # (N, block_size**2, rows * cols): the codes of each window (exact in float up to 2**24).
    windows = F.unfold(codes.unsqueeze(1).float(), kernel_size=block_size, stride=block_step).long()
    offsets = torch.arange(n * rows * cols, device=codes.device).view(n, 1, rows * cols) * num_bins
    counts = torch.bincount((windows + offsets).flatten(), minlength=n * rows * cols * num_bins)
    return counts.view(n, rows, cols, num_bins).amax(dim=2).float()


# --------------------------------------------------------------------------- descriptor


def _check_values(tau: float, retinex: bool, retinex_sigmas: Sequence[float], retinex_clip: float,
                  batch_size: int) -> None:
    """Validates the numeric options that :func:`_check_options` (the layout) does not cover."""
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or not tau > 0:
        raise ConfigError(f"LOMO tau={tau!r}; expected a number > 0")
    if not isinstance(retinex, bool):
        raise ConfigError(f"LOMO retinex={retinex!r}; expected True or False")
    if (not isinstance(retinex_sigmas, Sequence) or len(retinex_sigmas) == 0
            or not all(isinstance(v, (int, float)) and v > 0 for v in retinex_sigmas)):
        raise ConfigError(f"LOMO retinex_sigmas={retinex_sigmas!r}; expected a non-empty list of numbers > 0")
    if not isinstance(retinex_clip, (int, float)) or not 0 <= retinex_clip < 0.5:
        raise ConfigError(f"LOMO retinex_clip={retinex_clip!r}; expected a fraction in [0, 0.5)")
    _positive_int(batch_size, "batch_size")


def _check_images(images: object) -> None:
    if not isinstance(images, torch.Tensor):
        raise ConfigError(f"LOMO images: got {type(images).__name__}; expected a float tensor (N, 3, H, W) in [-1, 1]")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ConfigError(
            f"LOMO images have shape {tuple(images.shape)}; expected (N, 3, H, W) RGB images in [-1, 1]"
        )
    if not images.is_floating_point():
        raise ConfigError(f"LOMO images have dtype {images.dtype}; expected a float tensor in [-1, 1]")


def _describe(
    rgb: torch.Tensor,
    num_scales: int,
    block_size: int,
    block_step: int,
    hsv_bins: tuple[int, int, int],
    tau: float,
    radii: tuple[int, ...],
    num_points: int,
    retinex: bool,
    retinex_sigmas: Sequence[float],
    retinex_clip: float,
) -> torch.Tensor:
    """LOMO of RGB images already at the descriptor's size: (N, 3, H, W) in [0, 1] -> (N, D)."""
    bins = torch.tensor(hsv_bins, device=rgb.device).view(1, 3, 1, 1)
    strides = torch.tensor((1, hsv_bins[0], hsv_bins[0] * hsv_bins[1]), device=rgb.device).view(1, 3, 1, 1)
    colour = multiscale_retinex(rgb, retinex_sigmas, retinex_clip) if retinex else rgb
    grey = torch.einsum("nchw,c->nhw", rgb, torch.tensor(GREY_WEIGHTS, dtype=rgb.dtype, device=rgb.device))
    hsv_rows: list[torch.Tensor] = []
    siltp_rows: list[list[torch.Tensor]] = [[] for _ in radii]
    for level in range(num_scales):
        if level > 0:
            colour = F.avg_pool2d(colour, 2)
            grey = F.avg_pool2d(grey.unsqueeze(1), 2).squeeze(1)
        quantised = torch.minimum((rgb_to_hsv(colour) * bins).long(), bins - 1)
        hsv_codes = (quantised * strides).sum(dim=1)
        hsv_rows.append(max_occurrence(hsv_codes, hsv_bins[0] * hsv_bins[1] * hsv_bins[2], block_size, block_step))
        for i, radius in enumerate(radii):
            codes = siltp_codes(grey, tau, radius, num_points)
            siltp_rows[i].append(max_occurrence(codes, 3 ** num_points, block_size, block_step))
    parts = [torch.cat([h.flatten(1) for h in rows], dim=1) for rows in [hsv_rows, *siltp_rows]]
    parts = [F.normalize(torch.log1p(p), dim=1) for p in parts]
    return torch.cat(parts, dim=1) / math.sqrt(len(parts))


@torch.no_grad()
def lomo_features(
    images: torch.Tensor,
    size: Sequence[int] = LOMO_SIZE,
    num_scales: int = 3,
    block_size: int = 10,
    block_step: int = 5,
    hsv_bins: Sequence[int] = (8, 8, 8),
    tau: float = 0.3,
    radii: Sequence[int] = (3, 5),
    num_points: int = 4,
    retinex: bool = True,
    retinex_sigmas: Sequence[float] = (5.0, 20.0),
    retinex_clip: float = 0.01,
    batch_size: int = 64,
) -> torch.Tensor:
    """LOMO descriptors of a batch of images.

    Args:
        images: (N, 3, H, W) float RGB in [-1, 1], any size (resized to ``size``), any device.
        size: (height, width) at which the descriptor is computed (the paper's 128x48).
        num_scales: pyramid levels (2x2 average pooling between levels).
        block_size, block_step: window side and stride, in pixels of each level.
        hsv_bins: bins of the joint H, S, V histogram.
        tau: SILTP tolerance (> 0).
        radii: SILTP radii, one texture part each.
        num_points: SILTP neighbours, 4 (right, up, left, down) or 8 (plus the square's corners).
        retinex: apply :func:`multiscale_retinex` before the colour histogram.
        retinex_sigmas, retinex_clip: its Gaussian surrounds and clipped fraction at each end.
        batch_size: images described together (bounds the memory: about 1 MB per image).

    Returns:
        (N, D) float32 features on the input's device, unit L2 norm, ``D = lomo_dim(...)``
        (26960 with the defaults). Compare them with the Euclidean (or, equivalently, cosine)
        distance.

    Raises:
        ConfigError: the images are not an (N, 3, H, W) float tensor, or an option is out of range.
    """
    size, bins, radii = _check_options(size, num_scales, block_size, block_step, hsv_bins, radii, num_points)
    _check_values(tau, retinex, retinex_sigmas, retinex_clip, batch_size)
    _check_images(images)
    dim = lomo_dim(size, num_scales, block_size, block_step, bins, radii, num_points)
    out = torch.empty(images.shape[0], dim, dtype=torch.float32, device=images.device)
    for start in range(0, images.shape[0], batch_size):
        rgb = (images[start:start + batch_size].float().clamp(-1.0, 1.0) + 1.0) * 0.5
        if tuple(rgb.shape[-2:]) != size:
            rgb = F.interpolate(rgb, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0.0, 1.0)
        out[start:start + rgb.shape[0]] = _describe(rgb, num_scales, block_size, block_step, bins, float(tau), radii,
                                                    num_points, retinex, retinex_sigmas, retinex_clip)
    return out


class LOMO(nn.Module):
    """LOMO as a feature network: ``forward(images) -> (N, feat_dim)``, nothing to train.

    Takes the same options as :func:`lomo_features` (checked here, once) and can stand where a
    re-id network's feature extractor is expected: ``forward`` and :meth:`extract` both return
    the descriptor, in ``train()`` and ``eval()`` mode alike, and there are no parameters.

    Shapes: (N, 3, H, W) float RGB in [-1, 1] (any H, W) -> (N, feat_dim) float32, unit L2 norm;
    ``feat_dim`` is 26960 with the defaults.
    """

    def __init__(
        self,
        size: Sequence[int] = LOMO_SIZE,
        num_scales: int = 3,
        block_size: int = 10,
        block_step: int = 5,
        hsv_bins: Sequence[int] = (8, 8, 8),
        tau: float = 0.3,
        radii: Sequence[int] = (3, 5),
        num_points: int = 4,
        retinex: bool = True,
        retinex_sigmas: Sequence[float] = (5.0, 20.0),
        retinex_clip: float = 0.01,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        _check_values(tau, retinex, retinex_sigmas, retinex_clip, batch_size)
        self.layout = lomo_layout(size, num_scales, block_size, block_step, hsv_bins, radii, num_points)
        self.feat_dim = next(reversed(self.layout.values())).stop
        self.options = dict(size=tuple(size), num_scales=num_scales, block_size=block_size, block_step=block_step,
                            hsv_bins=tuple(hsv_bins), tau=tau, radii=tuple(radii), num_points=num_points,
                            retinex=retinex, retinex_sigmas=tuple(retinex_sigmas), retinex_clip=retinex_clip,
                            batch_size=batch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float RGB in [-1, 1] -> (N, feat_dim) LOMO descriptors (see :func:`lomo_features`)."""
        return lomo_features(images, **self.options)

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`forward` (the name re-id networks use for their evaluation features)."""
        return lomo_features(images, **self.options)

    def extra_repr(self) -> str:
        shown = [f"{k}={v}" for k, v in self.options.items() if k != "batch_size"]
        return ", ".join(shown + [f"feat_dim={self.feat_dim}"])
