"""Mask quality for the embedded benchmark: exact person masks, or masks degraded the way a
person-segmentation model's output is.

The synthetic benchmark knows the exact mask of every person it draws (uint8 (H, W), 255 on the
person, 0 elsewhere). Real re-id data has no such masks: they come from a segmentation network,
and CR-GAN's case against cut-and-paste rendering rests on those masks being incomplete. This
module turns an exact mask into a plausible network mask, so that the benchmark can be run with
either and the gap measured::

    from crgan_lightning.data.mask_quality import degrade_mask, mask_quality, mean_iou

    quality = mask_quality("segmentation")            # or "exact", or a MaskQuality(...)
    rng = np.random.default_rng(seed)
    noisy = degrade_mask(mask, quality, rng, context=other_objects)   # uint8 (H, W) in {0, 255}
    mean_iou(exact_masks, noisy_masks)                 # ~0.78 for the default

Settings (:class:`MaskQuality`), applied in this order. Every length is in pixels *at an image
height of 128*: sizes of structures (thin-part width, smoothness, reach, blob and hole radii) are
scaled by ``height / 128``, pixel errors (boundary offset, erosions, outline blur) by
``(height / 128) ** ERROR_EXPONENT`` (see there), so that a setting gives the same mean IoU at
64 x 32, 128 x 64 and 256 x 128. A mask under 128 rows is smoothly upsampled by a whole factor
to at least 128 rows, degraded there and area-reduced back, because a pixel is too coarse for
errors of a pixel or two:

* ``thin_width`` / ``thin_drop_prob`` -- thin parts missing. The parts of the mask that a
  morphological opening with a disc of diameter ``thin_width`` removes (arms held away from the
  body, lower legs, bag straps, hands) are split into connected pieces and each piece is
  dropped with probability ``thin_drop_prob``. The torso and the thighs are wider than the disc
  and are kept.
* ``feet_erosion`` / ``hair_erosion`` -- the shoes (dark, on a dark ground and its shadow) and
  the hair (against a dark background) are the parts a network most often misses: the lowest
  ``FEET_BAND`` and highest ``HAIR_BAND`` fractions of the person are eroded by a radius drawn
  uniformly from ``[0, feet_erosion]`` and ``[0, hair_erosion]``.
* ``merge_prob`` / ``merge_reach`` / ``merge_extent`` -- neighbours merged in. With an optional
  ``context`` mask (other foreground objects in the image: a passer-by, an occluder, a bag on
  the ground), if some of it lies within ``merge_reach`` of the person, then with probability
  ``merge_prob`` the part of it within a distance drawn from ``[merge_extent / 2, merge_extent]``
  of the person is added to the mask.
* ``blob_prob`` / ``blob_radius`` -- without a context mask, the same failure on unseen
  surroundings (the ground shadow, a patch of background of the clothes' colour): with
  probability ``blob_prob`` an ellipse of radii up to ``blob_radius`` is added, centred on a
  random point of the person's outline.
* ``hole_prob`` / ``hole_radius`` -- occasionally a hole: with probability ``hole_prob`` an
  ellipse of radii about ``hole_radius`` is cut out of the body, away from its outline.
* ``outline_blur`` -- networks predict at 1/8 to 1/16 resolution and upsample their logits, so
  outlines come out rounded: the mask is blurred with a Gaussian of this sigma and
  re-thresholded at one half (corners rounded, one-pixel notches filled).
* ``boundary_bias`` / ``boundary_amplitude`` / ``boundary_smoothness`` -- the outline is off by a
  few pixels, smoothly and with spatial correlation (never salt and pepper): a random field with
  mean ``boundary_bias``, standard deviation ``boundary_amplitude`` and correlation length about
  ``boundary_smoothness`` (bicubic upsampling of Gaussian noise on a grid of that spacing) is
  read as a signed radius; the new mask is the set of pixels whose signed distance to the
  outline (positive inside) exceeds it. Positive values shrink the mask there, negative values
  grow it.

Calibration. The default, :meth:`MaskQuality.segmentation`, aims at a mean IoU of
``SEGMENTATION_TARGET_IOU = 0.776`` to the exact masks: the person-class IoU of 77.6231 % that
the Cityscapes benchmark reports for "Scale invariant CNN + CRF" (I. Kreso, D. Causevic,
J. Krapac, S. Segvic, "Convolutional Scale Invariance for Semantic Segmentation", GCPR 2016) on
the Cityscapes test set (pixel-level semantic labeling, fine annotations;
https://www.cityscapes-dataset.com/method-details/?submissionID=81; the same entry lists an
instance-weighted person iIoU of 58.96 %, i.e. small, distant pedestrians fare worse). It is a
pedestrian-in-street-scene figure for a 2016 network of the FCN / DeepLab generation, the kind of
model that gives re-id crops their masks, which makes it the right order of quality for "masks
from a segmentation model". Two differences are worth knowing: Cityscapes pools pixels over the
whole test set while :func:`mean_iou` averages per-crop IoUs, and its people are seen at every
scale while re-id crops hold one person at a fixed height.

The default is tuned on the procedurally drawn front-view pedestrian silhouettes of
``tests/data/test_mask_quality.py`` (head, neck, torso, two legs with shoes, two arms at random
abduction and elbow bend, a shoulder bag on one in three; no context mask). Its mean IoU there:

=============  ==================  ==================
size           100 silhouettes     500 silhouettes
=============  ==================  ==================
128 x 64       0.774               0.776
64 x 32        0.775               0.773
256 x 128      0.775               0.771
=============  ==================  ==================

(5th to 95th percentile of the per-mask IoU: about 0.70 to 0.84; pooled over pixels as
Cityscapes does: +0.002.) On the benchmark's own masks (``render_sample`` of
:mod:`crgan_lightning.data.synthetic`, 200 images of ``synth_a``) it gives 0.783 at 128 x 64 and
0.784 at 64 x 32. The error budget at 128 x 64, each setting alone: outline error ~0.19 of IoU,
shoes and hair ~0.045, thin parts ~0.04, outline blur, blobs and holes ~0.015 together. It uses
numpy and OpenCV only, so degrading masks costs little beside decoding the images.
:meth:`MaskQuality.exact` returns every mask unchanged (IoU 1).

Small pedestrians. :meth:`MaskQuality.small_pedestrian` aims at
``SMALL_PEDESTRIAN_TARGET_IOU = 0.5896``: the instance-weighted person iIoU (58.96 %) of the same
Cityscapes entry. iIoU weighs each pixel by the inverse of its instance's size, so small, distant
pedestrians -- what re-id crops hold -- count as much as near ones; the network's masks of them
are that much worse. The setting is the segmentation one with every error about 1.9 times larger
(outline offset 2.85 with a shrinking bias of 0.55, outline blur 1.9, shoes 5.7, hair 4.75, blobs
13.3, holes 5.7 pixels), thin parts opened with a 9-pixel disc and dropped with probability 0.7,
surroundings merged more often and farther (0.8, 18 pixels) and blobs and holes twice as often.
Its mean IoU on the silhouettes of ``tests/data/test_mask_quality.py`` (seed 1):

=============  ==================  ==================
size           100 silhouettes     500 silhouettes
=============  ==================  ==================
128 x 64       0.594               0.595
64 x 32        0.587               0.586
256 x 128      0.597               0.588
=============  ==================  ==================

(5th to 95th percentile of the per-mask IoU at 128 x 64: about 0.49 to 0.69; pooled over pixels:
+0.002.) On 200 masks of ``synth_a`` (``render_sample``) it gives 0.596 at 128 x 64 and 0.594 at
64 x 32; the benchmark's written masks, where passers-by and occluders can be merged in, 0.575
(synth_a) and 0.571 (synth_b) at 64 x 32. ``python benchmarks/bench_mask_quality.py`` prints these
figures for every quality.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType

import cv2
import numpy as np

from ..errors import ConfigError

__all__ = [
    "MaskQuality",
    "MASK_QUALITIES",
    "SEGMENTATION_TARGET_IOU",
    "SMALL_PEDESTRIAN_TARGET_IOU",
    "REFERENCE_HEIGHT",
    "degrade_mask",
    "mask_quality",
    "mask_iou",
    "mean_iou",
]

REFERENCE_HEIGHT = 128
"""Image height at which the pixel lengths of a :class:`MaskQuality` are given."""

SEGMENTATION_TARGET_IOU = 0.776
"""Mean IoU the default degradation is calibrated to: the Cityscapes test-set person-class IoU
(77.6231 %) of "Scale invariant CNN + CRF" (Kreso et al., GCPR 2016); see the module docstring."""

SMALL_PEDESTRIAN_TARGET_IOU = 0.5896
"""Mean IoU :meth:`MaskQuality.small_pedestrian` is calibrated to: the instance-weighted person
iIoU (58.96 %) of the same Cityscapes entry as :data:`SEGMENTATION_TARGET_IOU`; see the module
docstring."""

FEET_BAND = 0.08
"""Fraction of the person's height, from the bottom, eroded by ``feet_erosion``."""

HAIR_BAND = 0.12
"""Fraction of the person's height, from the top, eroded by ``hair_erosion``."""

ERROR_EXPONENT = 0.7
"""In a mask ``H`` rows high the pixel *errors* (boundary offset, shoe and hair erosion, outline
blur) are ``(H / 128) ** ERROR_EXPONENT`` times their setting, not ``H / 128`` as for the sizes of
structures (thin-part width, smoothness, reach, blobs, holes). A mask of fewer pixels rounds away
more of a sub-pixel error and merges a thin arm into the torso more often, so with plain
``H / 128`` scaling the default gives a mean IoU 0.027 higher at 64 x 32 than at 128 x 64 and 0.031
lower at 256 x 128 (500 silhouettes). The exponent was fitted so that the default's mean IoU is
the same, within 0.005, at all three sizes."""

_PROBABILITIES = ("thin_drop_prob", "merge_prob", "blob_prob", "hole_prob")
_DIST = (cv2.DIST_L2, 5)


@dataclass(frozen=True)
class MaskQuality:
    """How far a mask is from the exact one; lengths in pixels at an image height of 128 (see the
    module docstring for what each setting does). All zeros (:meth:`exact`) leaves masks as they
    are."""

    boundary_bias: float = 0.0
    boundary_amplitude: float = 0.0
    boundary_smoothness: float = 16.0
    outline_blur: float = 0.0
    thin_width: float = 0.0
    thin_drop_prob: float = 0.0
    feet_erosion: float = 0.0
    hair_erosion: float = 0.0
    merge_prob: float = 0.0
    merge_reach: float = 0.0
    merge_extent: float = 0.0
    blob_prob: float = 0.0
    blob_radius: float = 0.0
    hole_prob: float = 0.0
    hole_radius: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"MaskQuality.{f.name}={value!r}; expected a finite number")
            if f.name in _PROBABILITIES and not 0.0 <= value <= 1.0:
                raise ConfigError(f"MaskQuality.{f.name}={value!r}; expected a probability in [0, 1]")
            if f.name == "boundary_smoothness" and value <= 0.0:
                raise ConfigError(f"MaskQuality.boundary_smoothness={value!r}; expected a length > 0 pixels")
            if f.name not in _PROBABILITIES and f.name not in ("boundary_bias", "boundary_smoothness") \
                    and value < 0.0:
                raise ConfigError(f"MaskQuality.{f.name}={value!r}; expected a length >= 0 pixels")

    @classmethod
    def exact(cls) -> MaskQuality:
        """The exact masks: :func:`degrade_mask` returns its input unchanged."""
        return cls()

    @classmethod
    def segmentation(cls) -> MaskQuality:
        """Masks as a 2016-generation person-segmentation network gives them, calibrated to a mean
        IoU of :data:`SEGMENTATION_TARGET_IOU` (0.776) to the exact masks."""
        return cls(boundary_bias=0.0, boundary_amplitude=1.5, boundary_smoothness=16.0, outline_blur=1.0,
                   thin_width=7.0, thin_drop_prob=0.5, feet_erosion=3.0, hair_erosion=2.5,
                   merge_prob=0.6, merge_reach=3.0, merge_extent=14.0, blob_prob=0.3, blob_radius=7.0,
                   hole_prob=0.1, hole_radius=3.0)

    @classmethod
    def small_pedestrian(cls) -> MaskQuality:
        """Masks of small, distant pedestrians, calibrated to a mean IoU of
        :data:`SMALL_PEDESTRIAN_TARGET_IOU` (0.5896) to the exact masks: the segmentation setting
        with every error scaled up (a wider, more shrunk outline, blurrier edges, more thin parts
        lost, more of the surroundings merged in, larger shoe, hair, blob and hole errors)."""
        return cls(boundary_bias=0.55, boundary_amplitude=2.85, boundary_smoothness=16.0, outline_blur=1.9,
                   thin_width=9.0, thin_drop_prob=0.7, feet_erosion=5.7, hair_erosion=4.75,
                   merge_prob=0.8, merge_reach=3.0, merge_extent=18.0, blob_prob=0.5, blob_radius=13.3,
                   hole_prob=0.2, hole_radius=5.7)

    @property
    def is_exact(self) -> bool:
        """Whether this setting leaves every mask unchanged."""
        return (self.boundary_bias == 0.0 and self.boundary_amplitude == 0.0 and self.outline_blur == 0.0
                and (self.thin_width == 0.0 or self.thin_drop_prob == 0.0) and self.feet_erosion == 0.0
                and self.hair_erosion == 0.0 and self.merge_prob == 0.0 and self.blob_prob == 0.0
                and self.hole_prob == 0.0)


MASK_QUALITIES: Mapping[str, MaskQuality] = MappingProxyType({
    "exact": MaskQuality.exact(),
    "segmentation": MaskQuality.segmentation(),
    "small-pedestrian": MaskQuality.small_pedestrian(),
})
"""The named settings, for configs and the command line."""


def mask_quality(name_or_obj: str | MaskQuality) -> MaskQuality:
    """The :class:`MaskQuality` named ``name_or_obj`` in :data:`MASK_QUALITIES` (or the object itself)."""
    if isinstance(name_or_obj, MaskQuality):
        return name_or_obj
    if isinstance(name_or_obj, str) and name_or_obj in MASK_QUALITIES:
        return MASK_QUALITIES[name_or_obj]
    raise ConfigError(f"unknown mask quality {name_or_obj!r}; expected one of "
                      f"{', '.join(sorted(MASK_QUALITIES))} or a MaskQuality")


# =========================================================================== helpers


def _check_mask(mask: object, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.uint8:
        desc = (f"shape {mask.shape} dtype {mask.dtype}" if isinstance(mask, np.ndarray)
                else type(mask).__name__)
        raise ConfigError(f"{what} must be a uint8 (H, W) array with 255 on the foreground; got {desc}")
    if shape is not None and mask.shape != shape:
        raise ConfigError(f"{what} has shape {mask.shape}; expected {shape}, the shape of the mask")
    return mask


def _dist(zero_where: np.ndarray) -> np.ndarray:
    """Euclidean distance (float32 (H, W)) of every pixel to the nearest pixel where ``zero_where``
    is True (0 there); a large value everywhere if there is no such pixel."""
    if not zero_where.any():
        return np.full(zero_where.shape, 1e6, np.float32)
    return cv2.distanceTransform((~zero_where).view(np.uint8), *_DIST)


def _smooth_field(rng: np.random.Generator, height: int, width: int, spacing: float) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (float32 (H, W)): bicubic upsampling of Gaussian
    noise on a grid with ``spacing`` pixels between its points."""
    gh = max(2, int(math.ceil(height / spacing)) + 1)
    gw = max(2, int(math.ceil(width / spacing)) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    field = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    field -= field.mean()
    std = float(field.std())
    return field / std if std > 1e-6 else field


def _random_point(rng: np.random.Generator, where: np.ndarray) -> tuple[int, int] | None:
    """A uniformly drawn (x, y) among the True pixels of ``where``, or None if there is none."""
    idx = np.flatnonzero(where)
    if idx.size == 0:
        return None
    k = int(idx[int(rng.integers(idx.size))])
    return k % where.shape[1], k // where.shape[1]


def _ellipse(fg: np.ndarray, centre: tuple[int, int], axes: tuple[float, float], value: bool) -> None:
    """Fill an axis-aligned ellipse (radii in pixels) of the bool mask ``fg`` with ``value``, in place."""
    canvas = np.zeros(fg.shape, np.uint8)
    ax = (max(1, int(round(axes[0]))), max(1, int(round(axes[1]))))
    cv2.ellipse(canvas, centre, ax, 0.0, 0.0, 360.0, 1, -1)
    fg[canvas.view(bool)] = value


# =========================================================================== degradation


def degrade_mask(mask: np.ndarray, quality: MaskQuality, rng: np.random.Generator,
                 context: np.ndarray | None = None) -> np.ndarray:
    """Degrade an exact person mask as ``quality`` says.

    ``mask`` is uint8 (H, W) with 255 on the person (pixels >= 128 count as foreground);
    ``context``, optional, is a uint8 (H, W) mask of other foreground objects in the same image
    (a passer-by, an occluder) that a network may merge into the person. Returns a new uint8
    (H, W) mask in {0, 255}. Deterministic given the state of ``rng``; with
    :meth:`MaskQuality.exact` the result equals the (binarised) input.
    """
    mask = _check_mask(mask, "mask")
    if context is not None:
        context = _check_mask(context, "context", mask.shape)
    if not isinstance(quality, MaskQuality):
        raise ConfigError(f"quality must be a MaskQuality (see mask_quality()); got {type(quality).__name__}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    fg = mask >= 128
    if quality.is_exact or not fg.any():
        return np.where(fg, np.uint8(255), np.uint8(0))
    other = None if context is None else context >= 128
    h, w = fg.shape
    if h < REFERENCE_HEIGHT:
        # Below the reference height a pixel is too coarse for lengths of a pixel or two: work on
        # the mask smoothly upsampled by a whole factor to at least the reference height, and
        # area-average the result back (a whole factor makes the round trip alone exact).
        k = -(-REFERENCE_HEIGHT // h)
        size = (w * k, h * k)
        fg = _resize(fg, size, cv2.INTER_LINEAR)
        other = None if other is None else _resize(other, size, cv2.INTER_LINEAR)
        return np.where(_resize(_degrade(fg, other, quality, rng, h), (w, h), cv2.INTER_AREA),
                        np.uint8(255), np.uint8(0))
    return np.where(_degrade(fg, other, quality, rng, h), np.uint8(255), np.uint8(0))


def _resize(fg: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """A bool mask resized to ``size`` = (width, height): interpolated, then thresholded at one half."""
    return cv2.resize(fg.astype(np.float32), size, interpolation=interpolation) >= 0.5


def _degrade(fg: np.ndarray, other: np.ndarray | None, q: MaskQuality, rng: np.random.Generator,
             out_height: int) -> np.ndarray:
    """The degradation of :func:`degrade_mask` on a bool (H, W) person mask (H >= 128) and an
    optional bool mask of other objects, for an output ``out_height`` rows high; returns a bool mask."""
    h, w = fg.shape
    s = h / REFERENCE_HEIGHT
    # pixel errors: scaled like structures, corrected for the rounding at the output resolution
    e = s * (out_height / REFERENCE_HEIGHT) ** (ERROR_EXPONENT - 1.0)

    # --- thin parts (arms, lower legs, straps) dropped piece by piece ----------------------------
    if q.thin_width > 0.0 and q.thin_drop_prob > 0.0:
        r = 0.5 * q.thin_width * s
        core = _dist(~fg) > r                      # centres of discs of radius r that fit inside
        opened = fg & (_dist(core) <= r)           # union of those discs = opening of fg
        thin = (fg & ~opened).view(np.uint8)
        n, labels = cv2.connectedComponents(thin, connectivity=8)
        drop = rng.random(n) < q.thin_drop_prob
        drop[0] = False
        fg = fg & ~drop[labels]

    inside = _dist(~fg) - 0.5                      # distance of each person pixel to the outline
    rows = np.flatnonzero(fg.any(axis=1))
    if rows.size:
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        tall = bottom - top

        # --- shoes and hair eroded ------------------------------------------------------------
        for band, radius in ((slice(bottom - max(1, int(round(FEET_BAND * tall))), bottom), q.feet_erosion),
                             (slice(top, top + max(1, int(round(HAIR_BAND * tall)))), q.hair_erosion)):
            if radius > 0.0:
                rr = float(rng.uniform(0.0, radius)) * e
                fg[band] &= inside[band] > rr

        # --- a hole ---------------------------------------------------------------------------
        if q.hole_prob > 0.0 and rng.random() < q.hole_prob:
            hr = q.hole_radius * s
            centre = _random_point(rng, inside > hr + 0.5)
            if centre is not None:
                _ellipse(fg, centre, (hr * rng.uniform(0.7, 1.3), hr * rng.uniform(0.7, 1.3)), False)

        # --- a blob of surroundings attached to the outline -------------------------------------
        if q.blob_prob > 0.0 and rng.random() < q.blob_prob:
            centre = _random_point(rng, fg & (inside <= 1.0))
            if centre is not None:
                br = q.blob_radius * s
                _ellipse(fg, centre, (br * rng.uniform(0.5, 1.0), br * rng.uniform(0.5, 1.0)), True)

    # --- neighbours (context) merged in -----------------------------------------------------------
    if other is not None and q.merge_prob > 0.0:
        other = other & ~fg
        if other.any():
            merge = rng.random() < q.merge_prob
            extent = float(rng.uniform(0.5, 1.0)) * q.merge_extent * s
            outside = _dist(fg) - 0.5
            if merge and (other & (outside <= max(q.merge_reach * s, 1.0))).any():
                fg |= other & (outside <= max(extent, q.merge_reach * s, 1.0))

    # --- rounded outline (upsampled low-resolution logits) ----------------------------------------
    if q.outline_blur > 0.0:
        blurred = cv2.GaussianBlur(fg.astype(np.float32), (0, 0), q.outline_blur * e)
        fg = blurred >= 0.5

    # --- smooth, spatially correlated boundary error -----------------------------------------------
    if q.boundary_amplitude > 0.0 or q.boundary_bias != 0.0:
        # signed distance of each pixel centre to the outline, +-0.5 next to it: > 0 inside, < 0 outside
        signed = np.where(fg, _dist(~fg) - 0.5, 0.5 - _dist(fg))
        radius = (q.boundary_bias + q.boundary_amplitude * _smooth_field(
            rng, h, w, max(q.boundary_smoothness * s, 1.0))) * e
        fg = signed > radius
    return fg


# =========================================================================== measuring


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of the foregrounds (pixels >= 128) of two uint8 (H, W) masks; 1.0
    when both are empty."""
    a = _check_mask(a, "mask a")
    b = _check_mask(b, "mask b", a.shape)
    fa, fb = a >= 128, b >= 128
    union = int(np.count_nonzero(fa | fb))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(fa & fb)) / union


def mean_iou(exact_masks: Sequence[np.ndarray], degraded_masks: Sequence[np.ndarray]) -> float:
    """Mean over pairs of :func:`mask_iou` between each exact mask and its degraded version."""
    if len(exact_masks) != len(degraded_masks):
        raise ConfigError(f"mean_iou got {len(exact_masks)} exact masks and {len(degraded_masks)} degraded "
                          "masks; expected the same number")
    if len(exact_masks) == 0:
        raise ConfigError("mean_iou got no masks; expected at least one pair")
    return float(np.mean([mask_iou(a, b) for a, b in zip(exact_masks, degraded_masks)]))
