"""What a person looks like: the clothing, hair, skin and shoe palettes and the fixed
:class:`Appearance` of one identity, drawn by :func:`sample_appearance` (the same distribution
serves both domains)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]

# =========================================================================== palettes

# name, colour, weight as upper-body clothing, weight as lower-body clothing
_CLOTHING: tuple[tuple[str, RGB, float, float], ...] = (
    ("black", (28, 28, 30), 3.0, 4.0),
    ("charcoal", (62, 62, 68), 2.0, 2.5),
    ("grey", (125, 125, 128), 2.0, 2.0),
    ("light_grey", (188, 188, 190), 1.5, 1.0),
    ("white", (232, 232, 228), 2.5, 0.6),
    ("navy", (32, 40, 88), 1.8, 2.0),
    ("blue", (45, 85, 175), 1.5, 0.8),
    ("light_blue", (125, 170, 215), 1.2, 0.8),
    ("denim", (70, 95, 140), 0.8, 3.0),
    ("red", (185, 35, 40), 1.5, 0.4),
    ("dark_red", (110, 25, 35), 1.0, 0.5),
    ("pink", (230, 145, 175), 1.0, 0.3),
    ("orange", (230, 125, 35), 0.8, 0.2),
    ("yellow", (230, 200, 55), 0.9, 0.2),
    ("green", (45, 135, 65), 1.0, 0.4),
    ("olive", (100, 110, 55), 0.8, 0.8),
    ("dark_green", (30, 70, 45), 0.8, 0.5),
    ("khaki", (190, 170, 120), 0.8, 1.5),
    ("beige", (215, 195, 160), 1.0, 1.0),
    ("brown", (110, 72, 42), 0.8, 1.0),
    ("purple", (105, 55, 135), 0.8, 0.3),
    ("teal", (35, 130, 130), 0.7, 0.3),
)
_CLOTHING_RGB = tuple(c[1] for c in _CLOTHING)
_HAIR: tuple[tuple[RGB, float], ...] = (
    ((20, 18, 18), 0.40), ((55, 38, 28), 0.25), ((100, 68, 40), 0.14),
    ((200, 170, 110), 0.10), ((150, 150, 150), 0.07), ((140, 60, 30), 0.04),
)
_SKIN_ANCHORS = np.array([(245, 214, 190), (225, 185, 150), (190, 140, 100), (140, 95, 65), (90, 60, 42)],
                         dtype=np.float64)
_SHOES: tuple[tuple[RGB | None, float], ...] = (
    ((25, 25, 25), 0.35), ((235, 235, 235), 0.25), ((90, 60, 40), 0.15), ((130, 130, 135), 0.10),
    (None, 0.15),  # a clothing colour
)
PATTERNS = ("solid", "hstripes", "vstripes", "checker", "twotone")
CARRIED = ("none", "bag", "backpack", "handbag")


# =========================================================================== one identity's look


@dataclass(frozen=True)
class Appearance:
    """The fixed look of one identity (colours are RGB 0-255, scales are relative to average)."""

    upper: RGB
    upper2: RGB
    pattern: str
    stripe_period: float  # pattern period, fraction of body height
    long_sleeves: bool
    coat: bool
    lower: RGB
    lower_kind: str  # trousers | shorts | skirt
    legwear: RGB  # skin or tights under shorts / skirts
    skin: RGB
    hair: RGB
    hair_style: str  # short | long | shaved
    hat: RGB | None
    shoes: RGB
    height_scale: float
    width_scale: float
    carry: str  # none | bag | backpack | handbag
    carry_colour: RGB
    carry_side: int  # +1: on the person's left, -1: on the right


_LUMA = np.array([0.299, 0.587, 0.114])


def _weighted_index(rng: np.random.Generator, weights: Sequence[float]) -> int:
    """An index drawn with probability proportional to ``weights``."""
    w = np.asarray(weights, dtype=np.float64)
    return int(rng.choice(len(w), p=w / w.sum()))


def _jitter_colour(rng: np.random.Generator, rgb: Sequence[float], amount: float = 10.0) -> RGB:
    """``rgb`` with a random overall brightness and per-channel noise (std ``amount``)."""
    scale = rng.uniform(0.88, 1.12)
    c = np.asarray(rgb, dtype=np.float64) * scale + rng.normal(0.0, amount, 3)
    return tuple(int(v) for v in np.clip(np.round(c), 0, 255))  # type: ignore[return-value]


def _clothing_colour(rng: np.random.Generator, lower: bool = False, avoid: int | None = None,
                     dark_bias: float = 0.0) -> tuple[int, RGB]:
    """A clothing palette entry (upper- or ``lower``-body weights, never ``avoid``): its index and
    jittered colour. ``dark_bias`` > 0 favours dark colours (weight times ``exp(-dark_bias * luma)``,
    luma in [0, 1]): a shift of the clothing distribution, such as winter clothes."""
    weights = [(c[3] if lower else c[2]) * math.exp(-dark_bias * float(np.dot(_LUMA, c[1])) / 255.0)
               for c in _CLOTHING]
    if avoid is not None:
        weights[avoid] = 0.0
    i = _weighted_index(rng, weights)
    return i, _jitter_colour(rng, _CLOTHING[i][1])


def _skin_tone(rng: np.random.Generator) -> RGB:
    """A skin colour interpolated between two neighbouring anchors of the palette."""
    t = rng.uniform(0.0, 1.0) * (len(_SKIN_ANCHORS) - 1)
    k = min(int(t), len(_SKIN_ANCHORS) - 2)
    return _jitter_colour(rng, _SKIN_ANCHORS[k] * (1 - (t - k)) + _SKIN_ANCHORS[k + 1] * (t - k), 5.0)


def sample_appearance(rng: np.random.Generator, dark_bias: float = 0.0) -> Appearance:
    """Draw one identity's look. The same distribution serves both domains unless ``dark_bias``
    shifts one domain's clothing towards dark colours (see :func:`_clothing_colour`)."""
    iu, upper = _clothing_colour(rng, dark_bias=dark_bias)
    _, upper2 = _clothing_colour(rng, avoid=iu, dark_bias=dark_bias)
    pattern = PATTERNS[_weighted_index(rng, (0.40, 0.15, 0.15, 0.15, 0.15))]
    stripe_period = float(rng.uniform(0.04, 0.075))
    long_sleeves = bool(rng.random() < 0.55)
    coat = bool(rng.random() < 0.15 + 0.1 * dark_bias)
    _, lower = _clothing_colour(rng, lower=True, dark_bias=dark_bias)
    lower_kind = ("trousers", "shorts", "skirt")[_weighted_index(rng, (0.65, 0.15, 0.20))]
    skin = _skin_tone(rng)
    legwear = skin if rng.random() < 0.6 else _jitter_colour(rng, (30, 30, 34), 6.0)
    hair = _jitter_colour(rng, _HAIR[_weighted_index(rng, [h[1] for h in _HAIR])][0], 6.0)
    hair_style = ("short", "long", "shaved")[_weighted_index(rng, (0.55, 0.37, 0.08))]
    hat = _clothing_colour(rng)[1] if rng.random() < 0.1 else None
    shoe = _SHOES[_weighted_index(rng, [s[1] for s in _SHOES])][0]
    shoes = _clothing_colour(rng)[1] if shoe is None else _jitter_colour(rng, shoe, 6.0)
    height_scale = float(np.clip(rng.normal(1.0, 0.045), 0.9, 1.1))
    width_scale = float(rng.uniform(0.85, 1.2))
    carry = CARRIED[_weighted_index(rng, (0.45, 0.20, 0.25, 0.10))]
    carry_colour = _jitter_colour(rng, (22, 22, 24), 5.0) if rng.random() < 0.35 else _clothing_colour(rng)[1]
    carry_side = 1 if rng.random() < 0.5 else -1
    return Appearance(upper, upper2, pattern, stripe_period, long_sleeves, coat, lower, lower_kind, legwear,
                      skin, hair, hair_style, hat, shoes, height_scale, width_scale, carry, carry_colour,
                      carry_side)
