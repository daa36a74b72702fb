"""The embedded two-domain benchmark: procedurally drawn pedestrians in two sets of contexts.

No real re-id dataset ships with the library, so every demo and test trains on two small
synthetic domains written by this module:

* ``synth_a`` -- an urban street seen by 6 cameras (building facades with windows, shop fronts,
  a zebra crossing, an arcade; pavement and asphalt), near-neutral daylight cameras.
* ``synth_b`` -- a campus / park seen by 8 cameras (lawns, trees, brick buildings, hedges,
  gravel and flagstone paths), each camera with a strong colour cast, its own illumination
  level and gamma, more blur and more sensor noise.

Both domains draw their people from the *same* appearance distribution (clothing colours and
patterns, body shape, hair, skin tone, shoes, carried bags) but from different random streams,
so they hold different people and differ only by *context*: background scenes, colour tone,
light, blur and noise. That is the gap CR-GAN closes by rendering source people into target
contexts. A re-id model trained on one domain does clearly worse on the other than a model
trained there.

Every identity has a fixed appearance and is seen by at least two cameras, with a new pose
(walking phase, leg spread, arm swing, front / back / side view), scale, position and crop in
every image, and sometimes partly hidden behind a scene object (a car, a bin, a pole, a bush, a
bench, another pedestrian...). Images are drawn at twice the output size and downsampled, so
edges are anti-aliased.

Each domain folder uses the Market-1501 layout and names, plus the ground-truth person masks::

    <out>/synth_a/bounding_box_train/0001_c1s3_412345_00.jpg
                  query/             ...
                  bounding_box_test/ ...   (pid 0000 = distractor)
                  masks/bounding_box_train/0001_c1s3_412345_00.png   (255 on the person)
                  masks/query/...  masks/bounding_box_test/...
                  meta.json

Use::

    from crgan_lightning.data.synthetic import generate_benchmark
    paths = generate_benchmark("data")        # {"synth_a": Path("data/synth_a"), "synth_b": ...}

or ``crgan synth --out data`` on the command line. Output is byte-for-byte reproducible for a
seed and set of arguments. A domain is built in a hidden temporary folder beside its final
place and renamed into place only when complete (``meta.json`` is written last), so an
interrupted run never leaves a folder that looks complete.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from numbers import Integral
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from ..errors import ConfigError
from .datasets import SPLIT_FOLDERS
from .masks import MASKS_DIR

log = logging.getLogger(__name__)

__all__ = [
    "CameraStyle",
    "DomainStyle",
    "DOMAINS",
    "SPLIT_FOLDERS",
    "MASKS_DIR",
    "generate_benchmark",
    "generate_domain",
    "render_sample",
]

META_FILE = "meta.json"
JPEG_QUALITY = 95
GENERATOR_VERSION = 1
MIN_HEIGHT = 32
MIN_WIDTH = 16
MAX_PID = 9999  # four digits in the file names

RGB = tuple[int, int, int]

# Random stream tags: every random draw comes from a Generator seeded by
# (seed, domain code, stream tag, ...), so each identity / image / camera is independent of the
# order in which the others are drawn and of the number of identities asked for.
_STREAM_APPEARANCE = 1
_STREAM_SCHEDULE = 2
_STREAM_SHOT = 3
_STREAM_BACKGROUND = 4
_STREAM_DISTRACTOR_APPEARANCE = 6
_STREAM_DISTRACTOR_SHOT = 7


# =========================================================================== domain definitions


@dataclass(frozen=True)
class CameraStyle:
    """The context of one camera: the scene behind people and how the camera renders colour.

    The image processing, in order: colour matrix (``saturation`` around the luminance, then
    per-channel ``gains``, i.e. white balance), ``brightness`` (illumination level), ``gamma``
    (output = input ** gamma on [0, 1]), ``haze`` (blend towards ``haze_colour``), ``vignette``
    (darkening towards the corners), Gaussian ``blur`` (radius in pixels at 128-pixel image
    height, scaled with the image size) and additive sensor ``noise`` (std on the 0-255 scale).
    """

    scene: str
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    brightness: float = 1.0
    gamma: float = 1.0
    haze: float = 0.0
    haze_colour: tuple[float, float, float] = (0.5, 0.5, 0.5)
    vignette: float = 0.0
    blur: float = 0.0
    noise: float = 0.0


@dataclass(frozen=True)
class DomainStyle:
    """One synthetic domain: its cameras (scene + tone each), occluding objects and how often
    they appear in front of people, and the per-image illumination jitter (log-normal std)."""

    name: str
    description: str
    cameras: tuple[CameraStyle, ...]
    occluders: tuple[str, ...]
    occlusion_prob: float = 0.25
    light_jitter: float = 0.06

    def __post_init__(self) -> None:
        if not 1 <= len(self.cameras) <= 9:
            raise ConfigError(f"domain {self.name!r} has {len(self.cameras)} cameras; expected 1..9 "
                              "(one digit in Market-1501 file names)")
        for cam in self.cameras:
            if cam.scene not in SCENES:
                raise ConfigError(f"domain {self.name!r}: unknown scene {cam.scene!r}; "
                                  f"expected one of {', '.join(sorted(SCENES))}")
        for kind in self.occluders:
            if kind not in OCCLUDERS:
                raise ConfigError(f"domain {self.name!r}: unknown occluder {kind!r}; "
                                  f"expected one of {', '.join(sorted(OCCLUDERS))}")

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)


# =========================================================================== appearance

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
VIEWS = ("front", "back", "left", "right")


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


def _weighted(rng: np.random.Generator, weights: Sequence[float]) -> int:
    w = np.asarray(weights, dtype=np.float64)
    return int(rng.choice(len(w), p=w / w.sum()))


def _jitter(rng: np.random.Generator, rgb: Sequence[float], amount: float = 10.0) -> RGB:
    scale = rng.uniform(0.88, 1.12)
    c = np.asarray(rgb, dtype=np.float64) * scale + rng.normal(0.0, amount, 3)
    return tuple(int(v) for v in np.clip(np.round(c), 0, 255))  # type: ignore[return-value]


def _clothing(rng: np.random.Generator, lower: bool = False, avoid: int | None = None) -> tuple[int, RGB]:
    weights = [c[3] if lower else c[2] for c in _CLOTHING]
    if avoid is not None:
        weights[avoid] = 0.0
    i = _weighted(rng, weights)
    return i, _jitter(rng, _CLOTHING[i][1])


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draw one identity's look. The same distribution serves both domains."""
    iu, upper = _clothing(rng)
    _, upper2 = _clothing(rng, avoid=iu)
    pattern = PATTERNS[_weighted(rng, (0.40, 0.15, 0.15, 0.15, 0.15))]
    stripe_period = float(rng.uniform(0.04, 0.075))
    long_sleeves = bool(rng.random() < 0.55)
    coat = bool(rng.random() < 0.15)
    _, lower = _clothing(rng, lower=True)
    lower_kind = ("trousers", "shorts", "skirt")[_weighted(rng, (0.65, 0.15, 0.20))]
    t = rng.uniform(0.0, 1.0) * (len(_SKIN_ANCHORS) - 1)
    k = min(int(t), len(_SKIN_ANCHORS) - 2)
    skin = _jitter(rng, _SKIN_ANCHORS[k] * (1 - (t - k)) + _SKIN_ANCHORS[k + 1] * (t - k), 5.0)
    legwear = skin if rng.random() < 0.6 else _jitter(rng, (30, 30, 34), 6.0)
    hair = _jitter(rng, _HAIR[_weighted(rng, [h[1] for h in _HAIR])][0], 6.0)
    hair_style = ("short", "long", "shaved")[_weighted(rng, (0.55, 0.37, 0.08))]
    hat = _clothing(rng)[1] if rng.random() < 0.1 else None
    shoe = _SHOES[_weighted(rng, [s[1] for s in _SHOES])][0]
    shoes = _clothing(rng)[1] if shoe is None else _jitter(rng, shoe, 6.0)
    height_scale = float(np.clip(rng.normal(1.0, 0.045), 0.9, 1.1))
    width_scale = float(rng.uniform(0.85, 1.2))
    carry = CARRIED[_weighted(rng, (0.45, 0.20, 0.25, 0.10))]
    carry_colour = _jitter(rng, (22, 22, 24), 5.0) if rng.random() < 0.35 else _clothing(rng)[1]
    carry_side = 1 if rng.random() < 0.5 else -1
    return Appearance(upper, upper2, pattern, stripe_period, long_sleeves, coat, lower, lower_kind, legwear,
                      skin, hair, hair_style, hat, shoes, height_scale, width_scale, carry, carry_colour,
                      carry_side)


# =========================================================================== shots (one image)


@dataclass(frozen=True)
class Occluder:
    """A scene object in front of the person: its kind and 10 uniform numbers that its painter
    turns into position, size and colour."""

    kind: str
    u: tuple[float, ...]


@dataclass(frozen=True)
class Shot:
    """Everything that varies from one image of an identity to the next.

    Sizes and positions are fractions of the image: ``person_height`` of the image height, the
    feet at ``feet_y`` (1 = bottom edge), the body centre ``dx`` off the middle; ``crop`` picks
    the window into the camera's background. ``light`` multiplies the camera's illumination.
    """

    cam: int
    view: str
    phase: float
    stride: float
    spread: float
    swing: float
    abduct: tuple[float, float]
    elbow: tuple[float, float]
    person_height: float
    feet_y: float
    dx: float
    crop: tuple[float, float]
    occluder: Occluder | None
    light: float
    noise_seed: int


def sample_shot(rng: np.random.Generator, style: DomainStyle, cam: int, distractor: bool = False) -> Shot:
    """Draw the pose, framing, occlusion and light jitter of one image taken by camera ``cam``.

    Distractors (pid 0) are badly framed detections: a person far too small or too close.
    """
    view = VIEWS[_weighted(rng, (0.38, 0.38, 0.12, 0.12))]
    phase = float(rng.uniform(0.0, 2.0 * math.pi))
    stride = float(rng.uniform(0.06, 0.2))
    spread = float(rng.uniform(0.0, 0.035))
    swing = float(rng.uniform(8.0, 35.0))
    abduct = (float(rng.uniform(3.0, 16.0)), float(rng.uniform(3.0, 16.0)))
    elbow = (float(rng.uniform(0.0, 60.0)), float(rng.uniform(0.0, 60.0)))
    person_height = float(rng.uniform(0.80, 0.90))
    feet_y = float(rng.uniform(0.955, 0.99))
    dx = float(rng.uniform(-0.07, 0.07))
    crop = (float(rng.random()), float(rng.random()))
    occluder = None
    if rng.random() < style.occlusion_prob:
        kind = style.occluders[int(rng.integers(len(style.occluders)))]
        occluder = Occluder(kind, tuple(float(v) for v in rng.random(10)))
    light = float(math.exp(rng.normal(0.0, style.light_jitter)))
    noise_seed = int(rng.integers(0, 2**63 - 1))
    if distractor:
        if rng.random() < 0.5:  # far away, small in the box
            person_height = float(rng.uniform(0.45, 0.62))
            feet_y = float(rng.uniform(0.75, 0.98))
            dx = float(rng.uniform(-0.2, 0.2))
        else:  # too close: the box holds part of a body
            person_height = float(rng.uniform(1.15, 1.5))
            feet_y = float(rng.uniform(1.0, 1.35))
            dx = float(rng.uniform(-0.3, 0.3))
    return Shot(cam, view, phase, stride, spread, swing, abduct, elbow, person_height, feet_y, dx, crop,
                occluder, light, noise_seed)


# =========================================================================== drawing helpers


def _texture(rng: np.random.Generator, h: int, w: int, base: Sequence[float], smooth: float = 10.0,
             fine: float = 5.0, cell: int = 16, tint: float = 0.0) -> np.ndarray:
    """A (h, w, 3) float array: ``base`` colour with smooth blotches and fine grain."""
    if h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0), 3), np.float32)
    lo = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    lo = np.asarray(Image.fromarray(lo, "F").resize((w, h), Image.BILINEAR))
    hi = rng.standard_normal((h, w)).astype(np.float32)
    v = (lo * smooth + hi * fine)[..., None]
    out = np.asarray(base, np.float32)[None, None, :] + v
    if tint:
        out = out + rng.standard_normal((h, w, 3)).astype(np.float32) * tint
    return np.clip(out, 0, 255)


def _vary(rng: np.random.Generator, rgb: Sequence[float], amount: float = 12.0) -> RGB:
    return tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.normal(0, amount, 3), 0, 255))  # type: ignore


def _pick(rng: np.random.Generator, colours: Sequence[Sequence[float]], amount: float = 10.0) -> RGB:
    return _vary(rng, colours[int(rng.integers(len(colours)))], amount)


def _shade(rgb: Sequence[float], f: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * f)))) for c in rgb)  # type: ignore[return-value]


def _limb(d: ImageDraw.ImageDraw, a: tuple[float, float], b: tuple[float, float], wa: float, wb: float,
          fill: RGB) -> None:
    """A tapered segment from ``a`` (width ``wa``) to ``b`` (width ``wb``) with round ends."""
    (x0, y0), (x1, y1) = a, b
    length = math.hypot(x1 - x0, y1 - y0) or 1e-6
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    d.polygon([(x0 + nx * wa / 2, y0 + ny * wa / 2), (x1 + nx * wb / 2, y1 + ny * wb / 2),
               (x1 - nx * wb / 2, y1 - ny * wb / 2), (x0 - nx * wa / 2, y0 - ny * wa / 2)], fill=fill)
    d.ellipse([x0 - wa / 2, y0 - wa / 2, x0 + wa / 2, y0 + wa / 2], fill=fill)
    d.ellipse([x1 - wb / 2, y1 - wb / 2, x1 + wb / 2, y1 + wb / 2], fill=fill)


def _box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    ys.setflags(write=False)
    xs.setflags(write=False)
    return ys, xs


# =========================================================================== background scenes
#
# A scene painter draws one camera's view at (h, w) -- wider and taller than an image, so that
# each image crops its own window -- and returns an RGB uint8 array.

_FACADES = ((205, 190, 165), (180, 175, 170), (150, 95, 75), (225, 215, 195), (120, 125, 135),
            (195, 160, 120))
_GLASS = ((55, 70, 85), (80, 100, 120), (40, 45, 55), (150, 170, 185), (210, 190, 120))
_SIGNS = ((180, 30, 35), (30, 110, 60), (30, 70, 150), (230, 190, 40), (40, 40, 45), (200, 90, 30))
_CARS = ((200, 200, 205), (30, 30, 35), (150, 20, 25), (40, 60, 120), (120, 125, 130), (230, 230, 230))
_GREENS = ((60, 110, 45), (45, 90, 40), (85, 130, 55), (35, 70, 35), (100, 140, 70))
_BRICKS = ((150, 65, 45), (130, 55, 40), (170, 80, 55), (115, 50, 40))
_BARK = ((85, 65, 45), (70, 55, 40), (110, 90, 70), (95, 90, 80))


def _scene_street(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Building facade with rows of windows and a shop floor, over a tiled pavement."""
    hz = int(h * rng.uniform(0.56, 0.68))
    arr = np.empty((h, w, 3), np.float32)
    arr[:hz] = _texture(rng, hz, w, _pick(rng, _FACADES, 8), 9, 5)
    arr[hz:] = _texture(rng, h - hz, w, _vary(rng, (150, 148, 145), 10), 8, 8, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    ww, wh = w * rng.uniform(0.07, 0.1), h * rng.uniform(0.07, 0.1)
    px, py = ww * rng.uniform(1.6, 2.3), wh * rng.uniform(1.5, 1.9)
    frame = _vary(rng, (230, 230, 225), 10)
    shop_top = hz - h * 0.17
    y = rng.uniform(0.0, py * 0.5)
    while y + wh < shop_top:
        x = rng.uniform(-px * 0.5, 0.0)
        while x < w:
            glass = _pick(rng, _GLASS, 8)
            d.rectangle([x - 2, y - 2, x + ww + 2, y + wh + 2], fill=frame)
            d.rectangle([x, y, x + ww, y + wh], fill=glass)
            d.line([x + ww / 2, y, x + ww / 2, y + wh], fill=frame, width=2)
            d.rectangle([x - 4, y + wh + 2, x + ww + 4, y + wh + 5], fill=_shade(frame, 0.8))
            x += px
        y += py
    d.rectangle([0, shop_top, w, shop_top + h * 0.03], fill=_pick(rng, _SIGNS, 10))
    x = rng.uniform(-w * 0.1, 0.0)
    while x < w:
        sw = w * rng.uniform(0.12, 0.25)
        d.rectangle([x, shop_top + h * 0.045, x + sw, hz], fill=_pick(rng, _GLASS, 10))
        x += sw + w * rng.uniform(0.03, 0.08)
    d.rectangle([0, hz - 3, w, hz + 3], fill=_vary(rng, (110, 108, 105), 8))
    tile = h * rng.uniform(0.05, 0.08)
    grout = _vary(rng, (105, 103, 100), 6)
    y = hz + tile * 0.6
    while y < h:
        d.line([0, y, w, y], fill=grout, width=2)
        tile *= 1.18
        y += tile
    for x in np.arange(rng.uniform(0, 30), w, h * 0.12):
        d.line([x, hz, x + (x - w / 2) * 0.6, h], fill=grout, width=2)
    for _ in range(int(rng.integers(1, 3))):  # lamp posts
        x = rng.uniform(0, w)
        d.rectangle([x, h * 0.1, x + w * 0.012, hz + h * 0.08], fill=(45, 48, 50))
    return np.asarray(img)


def _scene_shopfront(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Shop sign, striped awning and big display windows with reflections, over light floor tiles."""
    arr = np.empty((h, w, 3), np.float32)
    sign_h, awn_h, floor = int(h * 0.16), int(h * 0.25), int(h * rng.uniform(0.7, 0.78))
    arr[:sign_h] = _texture(rng, sign_h, w, _pick(rng, _SIGNS, 10), 6, 4)
    arr[sign_h:floor] = _texture(rng, floor - sign_h, w, _pick(rng, _GLASS[:4], 10), 14, 4, cell=24)
    light, dark = _vary(rng, (205, 205, 200), 8), _vary(rng, (150, 150, 148), 8)
    arr[floor:] = _texture(rng, h - floor, w, light, 5, 5, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img, "RGBA")
    for x in np.arange(rng.uniform(0, w * 0.1), w, w * 0.09):  # lettering
        if rng.random() < 0.7:
            d.rectangle([x, sign_h * 0.3, x + w * 0.05, sign_h * 0.75], fill=(245, 245, 240))
    c1, c2 = _pick(rng, _SIGNS, 10), _vary(rng, (235, 235, 230), 8)
    stripe = w * rng.uniform(0.04, 0.07)
    for i, x in enumerate(np.arange(0, w, stripe)):
        d.rectangle([x, sign_h, x + stripe, awn_h], fill=c1 if i % 2 else c2)
        d.ellipse([x, awn_h - stripe / 2, x + stripe, awn_h + stripe / 2], fill=c1 if i % 2 else c2)
    for _ in range(int(rng.integers(3, 7))):  # goods on display
        x, y = rng.uniform(0, w), rng.uniform(awn_h + h * 0.08, floor - h * 0.05)
        s = h * rng.uniform(0.03, 0.08)
        d.rectangle([x, y, x + s, floor - h * 0.03], fill=_pick(rng, _CLOTHING_RGB, 20))
    for _ in range(int(rng.integers(2, 5))):  # reflections
        x = rng.uniform(0, w)
        d.polygon([(x, awn_h), (x + w * 0.08, awn_h), (x - w * 0.1, floor), (x - w * 0.18, floor)],
                  fill=(255, 255, 255, 40))
    mull = _vary(rng, (50, 50, 55), 8)
    for x in np.arange(rng.uniform(0, w * 0.3), w, w * rng.uniform(0.28, 0.4)):
        d.rectangle([x, awn_h, x + w * 0.025, floor], fill=mull)
    d.rectangle([0, floor - h * 0.025, w, floor], fill=mull)
    cell = h * rng.uniform(0.05, 0.08)
    for i, y in enumerate(np.arange(floor, h, cell)):
        for j, x in enumerate(np.arange(-cell * (i % 2) / 2, w, cell * 1.4)):
            if (i + j) % 2:
                d.rectangle([x, y, x + cell * 1.4, y + cell], fill=dark + (120,))
    return np.asarray(img.convert("RGB"))


def _scene_crossing(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Pale sky, a row of distant buildings and parked cars, asphalt with zebra stripes."""
    sky, road = int(h * rng.uniform(0.12, 0.2)), int(h * rng.uniform(0.45, 0.55))
    arr = np.empty((h, w, 3), np.float32)
    arr[:sky] = _texture(rng, sky, w, _vary(rng, (200, 210, 220), 8), 4, 2)
    arr[sky:road] = _texture(rng, road - sky, w, _vary(rng, (140, 140, 140), 10), 6, 4)
    arr[road:] = _texture(rng, h - road, w, _vary(rng, (75, 75, 78), 6), 7, 9, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    x = rng.uniform(-w * 0.2, 0)
    while x < w:
        bw, top = w * rng.uniform(0.15, 0.35), rng.uniform(sky * 0.3, sky * 1.6)
        col = _pick(rng, _FACADES, 12)
        d.rectangle([x, top, x + bw, road], fill=col)
        for yy in np.arange(top + h * 0.02, road - h * 0.04, h * 0.045):
            for xx in np.arange(x + bw * 0.08, x + bw - w * 0.03, w * 0.06):
                d.rectangle([xx, yy, xx + w * 0.025, yy + h * 0.02], fill=_shade(col, 0.55))
        x += bw
    for _ in range(int(rng.integers(1, 4))):
        cx, cw, ch = rng.uniform(0, w), w * rng.uniform(0.2, 0.3), h * rng.uniform(0.06, 0.09)
        car = _pick(rng, _CARS, 10)
        d.rounded_rectangle([cx, road - ch, cx + cw, road + ch * 0.2], radius=ch * 0.3, fill=car)
        d.rectangle([cx + cw * 0.2, road - ch * 0.95, cx + cw * 0.75, road - ch * 0.55], fill=(60, 70, 80))
    white = _vary(rng, (225, 225, 220), 6)
    band = h * 0.035
    y = road + band
    while y < h:
        d.rectangle([0, y, w, y + band], fill=white)
        y += band * 2.0
        band *= 1.15
    for _ in range(int(rng.integers(1, 3))):  # traffic-light poles
        x = rng.uniform(0, w)
        d.rectangle([x, sky * 0.5, x + w * 0.015, road + h * 0.1], fill=(40, 42, 45))
        d.rectangle([x - w * 0.02, sky * 0.5, x + w * 0.035, sky * 0.5 + h * 0.1], fill=(25, 25, 28))
    return np.asarray(img)


def _scene_arcade(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A covered passage: dim back wall, concrete pillars with posters, lights, polished floor."""
    floor = int(h * rng.uniform(0.66, 0.74))
    arr = np.empty((h, w, 3), np.float32)
    arr[:floor] = _texture(rng, floor, w, _vary(rng, (95, 88, 80), 10), 10, 5)
    arr[floor:] = _texture(rng, h - floor, w, _vary(rng, (165, 160, 150), 8), 6, 3, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img, "RGBA")
    d.rectangle([0, 0, w, h * 0.1], fill=_vary(rng, (70, 68, 65), 6))
    for x in np.arange(rng.uniform(0, w * 0.2), w, w * 0.22):
        d.rectangle([x, h * 0.035, x + w * 0.12, h * 0.065], fill=(250, 245, 225))
    concrete = _vary(rng, (185, 182, 175), 8)
    pitch = w * rng.uniform(0.3, 0.42)
    for x in np.arange(rng.uniform(-pitch * 0.5, 0), w, pitch):
        pw = w * rng.uniform(0.1, 0.14)
        d.rectangle([x, h * 0.1, x + pw, floor], fill=concrete)
        d.rectangle([x + pw * 0.75, h * 0.1, x + pw, floor], fill=_shade(concrete, 0.8))
        if rng.random() < 0.7:
            py = rng.uniform(h * 0.2, h * 0.4)
            d.rectangle([x + pw * 0.1, py, x + pw * 0.7, py + h * 0.15], fill=_pick(rng, _SIGNS, 20))
            d.rectangle([x + pw * 0.15, py + h * 0.03, x + pw * 0.6, py + h * 0.08], fill=(240, 240, 235))
        d.rectangle([x, floor, x + pw, floor + (h - floor) * 0.6], fill=concrete + (60,))
    for y in np.arange(floor, h, h * 0.06):
        d.line([0, y, w, y], fill=(120, 115, 110, 120), width=1)
    return np.asarray(img.convert("RGB"))


def _canopy(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, r: float) -> None:
    base = _pick(rng, _GREENS, 10)
    for _ in range(14):
        ox, oy, rr = rng.normal(0, r * 0.45), rng.normal(0, r * 0.35), r * rng.uniform(0.35, 0.65)
        d.ellipse([cx + ox - rr, cy + oy - rr, cx + ox + rr, cy + oy + rr],
                  fill=_shade(base, rng.uniform(0.7, 1.3)))


def _grass(rng: np.random.Generator, h: int, w: int, base: RGB) -> np.ndarray:
    return _texture(rng, h, w, base, 10, 12, cell=10, tint=4.0)


def _scene_park(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Trees against a bright sky, lawn, and a gravel path across the bottom."""
    sky, grass = int(h * rng.uniform(0.15, 0.28)), int(h * rng.uniform(0.45, 0.55))
    path = int(h * rng.uniform(0.7, 0.8))
    arr = np.empty((h, w, 3), np.float32)
    arr[:grass] = _texture(rng, grass, w, _vary(rng, (190, 210, 230), 10), 6, 2)
    arr[grass:] = _grass(rng, h - grass, w, _pick(rng, _GREENS, 10))
    arr[path:] = _texture(rng, h - path, w, _vary(rng, (190, 170, 130), 10), 8, 14, cell=6)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 6))):
        x = rng.uniform(0, w)
        d.rectangle([x, sky, x + w * rng.uniform(0.03, 0.06), grass + h * 0.05], fill=_pick(rng, _BARK, 8))
    for _ in range(int(rng.integers(4, 8))):
        _canopy(d, rng, rng.uniform(0, w), rng.uniform(h * 0.05, sky + h * 0.12), w * rng.uniform(0.12, 0.22))
    for _ in range(250):  # grass blades
        x, y = rng.uniform(0, w), rng.uniform(grass, path)
        d.line([x, y, x + rng.normal(0, 2), y - rng.uniform(3, 8)], fill=_pick(rng, _GREENS, 15), width=1)
    for _ in range(120):  # gravel
        x, y, r = rng.uniform(0, w), rng.uniform(path, h), rng.uniform(1, 3)
        d.ellipse([x - r, y - r, x + r, y + r], fill=_vary(rng, (150, 135, 110), 20))
    return np.asarray(img)


def _scene_campus(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Red-brick building with white-framed windows, a hedge, and a flagstone path."""
    wall, hedge, path = int(h * rng.uniform(0.55, 0.65)), int(h * 0.05), int(h * rng.uniform(0.72, 0.8))
    arr = np.empty((h, w, 3), np.float32)
    mortar = _vary(rng, (185, 175, 160), 8)
    arr[:wall] = np.asarray(mortar, np.float32)
    arr[wall:path] = _grass(rng, path - wall, w, _pick(rng, _GREENS, 10))
    arr[path:] = _texture(rng, h - path, w, _vary(rng, (175, 170, 160), 10), 8, 6, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    bh = h * rng.uniform(0.025, 0.035)
    bw = bh * rng.uniform(2.2, 2.8)
    brick = _pick(rng, _BRICKS, 8)
    for i, y in enumerate(np.arange(0, wall, bh)):
        for x in np.arange(-(i % 2) * bw / 2, w, bw):
            d.rectangle([x + 1, y + 1, x + bw - 1, y + bh - 1], fill=_vary(rng, brick, 10))
    for x in np.arange(rng.uniform(0, w * 0.2), w, w * rng.uniform(0.3, 0.45)):
        y0 = h * rng.uniform(0.08, 0.18)
        d.rectangle([x, y0, x + w * 0.16, y0 + h * 0.22], fill=(235, 235, 230))
        d.rectangle([x + 3, y0 + 3, x + w * 0.16 - 3, y0 + h * 0.22 - 3], fill=_pick(rng, _GLASS[:3], 8))
        d.line([x + w * 0.08, y0, x + w * 0.08, y0 + h * 0.22], fill=(235, 235, 230), width=3)
    base = _pick(rng, _GREENS[1:4], 8)
    for x in np.arange(-10, w + 10, w * 0.05):
        r = h * rng.uniform(0.04, 0.06)
        y = wall - hedge + rng.normal(0, 2)
        d.ellipse([x - r, y - r, x + r, y + r], fill=_shade(base, rng.uniform(0.7, 1.2)))
    d.rectangle([0, wall - hedge, w, wall + hedge], fill=_shade(base, 0.85))
    joint = _vary(rng, (120, 115, 110), 8)
    slab = h * rng.uniform(0.07, 0.1)
    for i, y in enumerate(np.arange(path, h, slab)):
        d.line([0, y, w, y], fill=joint, width=2)
        for x in np.arange((i % 2) * slab * 0.7, w, slab * 1.4):
            d.line([x, y, x, y + slab], fill=joint, width=2)
    return np.asarray(img)


def _scene_lawn(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Wide mown lawn with stripes, a treeline, flower beds and a bench."""
    line = int(h * rng.uniform(0.22, 0.32))
    arr = np.empty((h, w, 3), np.float32)
    arr[:line] = _texture(rng, line, w, _pick(rng, _GREENS[1:4], 8), 16, 6)
    g = _pick(rng, _GREENS, 8)
    arr[line:] = _grass(rng, h - line, w, g)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img, "RGBA")
    d.rectangle([0, 0, w, line * rng.uniform(0.2, 0.45)], fill=_vary(rng, (200, 215, 230), 8))
    for _ in range(int(rng.integers(5, 9))):
        _canopy(d, rng, rng.uniform(0, w), rng.uniform(line * 0.3, line * 0.8), w * rng.uniform(0.08, 0.15))
    stripe = w * rng.uniform(0.12, 0.2)
    for i, x in enumerate(np.arange(-w, 2 * w, stripe)):
        if i % 2:
            d.polygon([(x, line), (x + stripe, line), (x + stripe * 2.5, h), (x + stripe * 1.5, h)],
                      fill=(255, 255, 230, 28))
    bed_y = rng.uniform(line + h * 0.05, line + h * 0.2)
    for _ in range(160):
        x, y, r = rng.uniform(0, w), bed_y + rng.normal(0, h * 0.02), rng.uniform(1.5, 3.5)
        col = ((200, 40, 50), (240, 200, 50), (150, 60, 170), (240, 240, 240))[int(rng.integers(4))]
        d.ellipse([x - r, y - r, x + r, y + r], fill=col)
    bx, by = rng.uniform(0, w * 0.6), line + h * rng.uniform(0.08, 0.15)
    wood = _vary(rng, (120, 80, 45), 10)
    for k in range(3):
        d.rectangle([bx, by + k * h * 0.015, bx + w * 0.35, by + k * h * 0.015 + h * 0.008], fill=wood)
    d.rectangle([bx + w * 0.02, by, bx + w * 0.035, by + h * 0.07], fill=_shade(wood, 0.6))
    d.rectangle([bx + w * 0.31, by, bx + w * 0.325, by + h * 0.07], fill=_shade(wood, 0.6))
    return np.asarray(img.convert("RGB"))


def _scene_woods(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Dense tree trunks before dark foliage, over ground strewn with fallen leaves."""
    ground = int(h * rng.uniform(0.58, 0.68))
    arr = np.empty((h, w, 3), np.float32)
    arr[:ground] = _texture(rng, ground, w, _pick(rng, _GREENS[1:4], 6), 18, 10, cell=8)
    arr[ground:] = _texture(rng, h - ground, w, _vary(rng, (110, 80, 50), 10), 12, 12, cell=6)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(60):
        x, y, r = rng.uniform(0, w), rng.uniform(0, ground), w * rng.uniform(0.02, 0.06)
        d.ellipse([x - r, y - r, x + r, y + r], fill=_pick(rng, _GREENS, 18))
    for _ in range(int(rng.integers(6, 11))):
        x, tw = rng.uniform(-10, w), w * rng.uniform(0.03, 0.09)
        bark = _pick(rng, _BARK, 10)
        bottom = ground + h * rng.uniform(0.0, 0.08)
        d.rectangle([x, 0, x + tw, bottom], fill=bark)
        d.rectangle([x + tw * 0.65, 0, x + tw, bottom], fill=_shade(bark, 0.7))
    leaves = ((190, 110, 40), (160, 70, 30), (210, 170, 60), (120, 80, 40))
    for _ in range(300):
        x, y = rng.uniform(0, w), rng.uniform(ground, h)
        rx, ry = rng.uniform(1.5, 4), rng.uniform(1, 2.5)
        d.ellipse([x - rx, y - ry, x + rx, y + ry], fill=_pick(rng, leaves, 15))
    return np.asarray(img)


_CLOTHING_RGB = tuple(c[1] for c in _CLOTHING)

SCENES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "street": _scene_street,
    "shopfront": _scene_shopfront,
    "crossing": _scene_crossing,
    "arcade": _scene_arcade,
    "park": _scene_park,
    "campus": _scene_campus,
    "lawn": _scene_lawn,
    "woods": _scene_woods,
}


# =========================================================================== occluders
#
# An occluder painter draws a scene object on the (transparent) occluder layer; everything it
# draws hides the person. ``u`` holds uniform numbers in [0, 1) chosen per image.


def _occ_car(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    top = h * (1 - (0.18 + 0.15 * u[0]))
    reach = w * (0.45 + 0.4 * u[1])
    x0, x1 = (-w * 0.2, reach) if u[2] < 0.5 else (w - reach, w * 1.2)
    body = _CARS[int(u[3] * len(_CARS))]
    d.rounded_rectangle([x0, top, x1, h * 1.1], radius=h * 0.05, fill=body)
    d.rectangle([x0, top + (h - top) * 0.15, x1, top + (h - top) * 0.5], fill=(55, 65, 75))
    d.line([x0, top + (h - top) * 0.7, x1, top + (h - top) * 0.7], fill=_shade(body, 0.7), width=3)
    wx = x1 - w * 0.3 if u[2] < 0.5 else x0 + w * 0.3
    r = (h - top) * 0.45
    d.ellipse([wx - r, h - r * 0.9, wx + r, h + r * 1.1], fill=(20, 20, 22))


def _occ_bin(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    bw, bh, cx = w * (0.28 + 0.15 * u[0]), h * (0.18 + 0.14 * u[1]), w * (0.15 + 0.7 * u[2])
    col = ((40, 90, 50), (60, 60, 65), (25, 25, 28), (150, 110, 40))[int(u[3] * 4)]
    d.rounded_rectangle([cx - bw / 2, h - bh, cx + bw / 2, h * 1.05], radius=w * 0.03, fill=col)
    d.rectangle([cx - bw * 0.55, h - bh - h * 0.02, cx + bw * 0.55, h - bh + h * 0.01], fill=_shade(col, 0.7))
    for k in (0.25, 0.5, 0.75):
        x = cx - bw / 2 + bw * k
        d.line([x, h - bh + h * 0.03, x, h], fill=_shade(col, 0.75), width=2)


def _occ_pole(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    pw, cx = w * (0.06 + 0.06 * u[0]), w * (0.2 + 0.6 * u[1])
    col = ((110, 112, 115), (40, 60, 45), (30, 30, 32))[int(u[2] * 3)]
    d.rectangle([cx - pw / 2, -1, cx + pw / 2, h + 1], fill=col)
    d.rectangle([cx - pw / 4, -1, cx - pw / 8, h + 1], fill=_shade(col, 1.4))


def _occ_sign(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    _occ_pole(d, (0.2 * u[0], u[1], 0.0), w, h)
    cx, cy = w * (0.2 + 0.6 * u[1]), h * (0.25 + 0.3 * u[2])
    sw, sh = w * (0.3 + 0.2 * u[3]), h * (0.1 + 0.06 * u[4])
    col = _SIGNS[int(u[5] * len(_SIGNS))]
    d.rectangle([cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2], fill=(240, 240, 240))
    d.rectangle([cx - sw / 2 + 3, cy - sh / 2 + 3, cx + sw / 2 - 3, cy + sh / 2 - 3], fill=col)


def _occ_pedestrian(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    reach = w * (0.18 + 0.17 * u[0])
    top = h * (0.22 + 0.12 * u[1])
    coat = _CLOTHING_RGB[int(u[2] * len(_CLOTHING_RGB))]
    if u[3] < 0.5:
        x0, x1, hx = -w * 0.35, reach, reach - w * 0.25
    else:
        x0, x1, hx = w - reach, w * 1.35, w - reach + w * 0.25
    d.rounded_rectangle([x0, top, x1, h * 1.1], radius=w * 0.15, fill=coat)
    r = w * 0.16
    d.ellipse([hx - r, top - r * 2.1, hx + r, top + r * 0.1], fill=_HAIR[int(u[4] * len(_HAIR))][0])


def _occ_bush(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    cx, span, top = w * (0.2 + 0.6 * u[0]), w * (0.5 + 0.4 * u[1]), h * (1 - (0.2 + 0.12 * u[2]))
    base = _GREENS[int(u[3] * len(_GREENS))]
    n = 5 + int(4 * u[4])
    r = w * 0.17
    for k in range(n):
        t = k / max(n - 1, 1)
        x = cx - span / 2 + span * t
        y = top + r * (0.6 + 0.5 * math.sin(7.0 * t + 10 * u[5]) ** 2)
        tone = 0.8 + 0.4 * ((k * 37 + int(u[6] * 100)) % 7) / 7
        d.ellipse([x - r, y - r, x + r, y + r], fill=_shade(base, tone))
    d.rectangle([cx - span / 2, top + r * 1.2, cx + span / 2, h + 1], fill=_shade(base, 0.85))


def _occ_bench(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    y0 = h * (0.6 + 0.12 * u[0])
    wood = ((120, 80, 45), (40, 80, 50), (90, 90, 95))[int(u[1] * 3)]
    x0, x1 = (-w * 0.1, w * (0.6 + 0.5 * u[2])) if u[3] < 0.5 else (w * (0.4 - 0.5 * u[2]), w * 1.1)
    for k in range(3):
        y = y0 + k * h * 0.04
        d.rectangle([x0, y, x1, y + h * 0.025], fill=_shade(wood, 1.0 - 0.1 * k))
    seat = y0 + h * 0.15
    d.rectangle([x0, seat, x1, seat + h * 0.03], fill=wood)
    for x in (x0 + w * 0.1, x1 - w * 0.14):
        d.rectangle([x, y0, x + w * 0.05, h + 1], fill=_shade(wood, 0.6))


def _occ_bicycle(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    r = w * (0.3 + 0.1 * u[0])
    cy = h - r * 1.02
    cx = w * (0.2 + 0.6 * u[1])
    frame = _SIGNS[int(u[2] * len(_SIGNS))]
    lw = max(2, int(w * 0.03))
    a, b = (cx - r * 1.1, cy), (cx + r * 1.1, cy)
    for x, y in (a, b):
        d.ellipse([x - r, y - r, x + r, y + r], outline=(25, 25, 25), width=lw)
    seat, bar = (cx - r * 0.3, cy - r * 1.1), (cx + r * 0.8, cy - r * 1.2)
    pedal = (cx, cy)
    for p, q in ((a, pedal), (pedal, seat), (seat, a), (seat, bar), (bar, b), (pedal, bar)):
        d.line([p, q], fill=frame, width=lw)


def _occ_trunk(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    tw, cx = w * (0.12 + 0.1 * u[0]), w * (0.15 + 0.7 * u[1])
    bark = _BARK[int(u[2] * len(_BARK))]
    d.rectangle([cx - tw / 2, -1, cx + tw / 2, h + 1], fill=bark)
    for k in range(4):
        x = cx - tw / 2 + tw * (0.15 + 0.22 * k)
        d.line([x, 0, x + tw * 0.05, h], fill=_shade(bark, 0.65), width=max(1, int(tw * 0.06)))


OCCLUDERS: dict[str, Callable[[ImageDraw.ImageDraw, Sequence[float], int, int], None]] = {
    "car": _occ_car,
    "bin": _occ_bin,
    "pole": _occ_pole,
    "sign": _occ_sign,
    "pedestrian": _occ_pedestrian,
    "bush": _occ_bush,
    "bench": _occ_bench,
    "bicycle": _occ_bicycle,
    "trunk": _occ_trunk,
}


# =========================================================================== the two domains


def _cam(scene: str, gains: tuple[float, float, float], saturation: float, brightness: float, gamma: float,
         haze: float, vignette: float, blur: float, noise: float,
         haze_colour: tuple[float, float, float] = (0.5, 0.5, 0.5)) -> CameraStyle:
    return CameraStyle(scene, gains, saturation, brightness, gamma, haze, haze_colour, vignette, blur, noise)


DOMAINS: dict[str, DomainStyle] = {
    "synth_a": DomainStyle(
        name="synth_a",
        description="urban street: facades, shop fronts, a crossing, an arcade; "
                    "near-neutral daylight cameras",
        cameras=(
            _cam("street", (1.00, 1.00, 1.00), 1.00, 1.00, 1.00, 0.00, 0.05, 0.35, 2.0),
            _cam("shopfront", (1.06, 1.00, 0.92), 1.05, 1.05, 0.95, 0.00, 0.10, 0.40, 2.0),
            _cam("crossing", (0.94, 1.00, 1.07), 0.95, 0.97, 1.05, 0.03, 0.05, 0.35, 2.5),
            _cam("arcade", (1.04, 1.02, 0.96), 1.10, 1.08, 0.92, 0.00, 0.15, 0.45, 3.0),
            _cam("street", (0.97, 1.00, 1.03), 1.00, 0.93, 1.08, 0.00, 0.05, 0.50, 2.5),
            _cam("shopfront", (1.02, 0.98, 1.00), 0.92, 1.00, 1.00, 0.04, 0.10, 0.40, 2.0),
        ),
        occluders=("car", "bin", "pole", "sign", "pedestrian"),
        occlusion_prob=0.2,
        light_jitter=0.05,
    ),
    "synth_b": DomainStyle(
        name="synth_b",
        description="campus / park: lawns, trees, brick buildings, paths; per-camera colour casts, "
                    "varied light, more blur and noise than synth_a",
        cameras=(
            _cam("park", (0.88, 0.97, 1.15), 0.92, 0.92, 1.05, 0.00, 0.20, 0.60, 3.5),
            _cam("campus", (1.15, 1.00, 0.82), 1.00, 0.85, 1.08, 0.04, 0.25, 0.70, 4.0, (0.6, 0.4, 0.2)),
            _cam("lawn", (0.93, 1.12, 0.93), 0.92, 0.97, 1.00, 0.00, 0.20, 0.60, 3.0),
            _cam("woods", (1.10, 0.90, 1.08), 1.05, 1.00, 0.95, 0.00, 0.20, 0.65, 3.5),
            _cam("campus", (1.00, 1.00, 1.05), 0.80, 0.78, 1.12, 0.00, 0.30, 0.80, 5.0),
            _cam("park", (1.08, 1.03, 0.94), 1.00, 1.15, 0.90, 0.10, 0.10, 0.70, 3.0, (0.95, 0.9, 0.8)),
            _cam("woods", (0.88, 1.04, 1.12), 0.95, 0.88, 1.03, 0.00, 0.25, 0.75, 4.0),
            _cam("lawn", (1.10, 1.08, 0.85), 1.08, 1.00, 1.00, 0.04, 0.20, 0.65, 3.5, (0.7, 0.65, 0.3)),
        ),
        occluders=("bush", "bench", "bicycle", "trunk", "pedestrian"),
        occlusion_prob=0.3,
        light_jitter=0.08,
    ),
}


# =========================================================================== person


def _pattern(app: Appearance, box: tuple[int, int, int, int], top: float, bottom: float, cx: float,
             body: float) -> Image.Image:
    """The upper-garment fabric over the canvas region ``box`` = (x0, y0, x1, y1), to be pasted
    through the torso shape."""
    x0, y0, x1, y1 = box
    if app.pattern == "solid":
        return Image.new("RGB", (x1 - x0, y1 - y0), app.upper)
    ys, xs = _grid(y1 - y0, x1 - x0)
    ys, xs = ys + y0, xs + x0
    period = max(app.stripe_period * body, 2.0)
    if app.pattern == "hstripes":
        sel = np.floor((ys - top) / (period / 2)) % 2 == 1
    elif app.pattern == "vstripes":
        sel = np.floor((xs - cx) / (period / 2)) % 2 == 1
    elif app.pattern == "checker":
        sel = (np.floor((ys - top) / (period * 0.6)) + np.floor((xs - cx) / (period * 0.6))) % 2 == 1
    else:  # two-tone: a band of the second colour across the chest
        sel = (ys > top + 0.25 * (bottom - top)) & (ys < top + 0.6 * (bottom - top))
    arr = np.where(sel[..., None], np.asarray(app.upper2, np.uint8), np.asarray(app.upper, np.uint8))
    return Image.fromarray(arr.astype(np.uint8))


def _draw_person(layer: Image.Image, app: Appearance, shot: Shot) -> None:
    """Draw a pedestrian on the transparent RGBA ``layer`` (every drawn pixel is opaque)."""
    w, h = layer.size
    d = ImageDraw.Draw(layer)
    feet = shot.feet_y * h
    P = min(shot.person_height * app.height_scale * h, feet - 0.01 * h) if shot.feet_y <= 1.0 else \
        shot.person_height * app.height_scale * h
    cx = (0.5 + shot.dx) * w
    top = feet - P
    ws = app.width_scale
    side = shot.view in ("left", "right")
    f = 1 if shot.view == "right" else -1 if shot.view == "left" else 0  # facing direction (x)
    # image x-direction of the person's left: +x seen from the front, -x from the back
    left_dir = 1 if shot.view == "front" else -1
    s_y, w_y, hip_y = top + 0.18 * P, top + 0.42 * P, top + 0.50 * P
    t_y = top + (0.66 if app.coat else 0.53) * P
    sw = (0.075 if side else 0.125) * P * ws
    ww = (0.068 if side else 0.10) * P * ws
    hw = (0.075 if side else 0.105) * P * ws
    hwb = hw * (1.15 if app.coat else 1.0)
    sinp = math.sin(shot.phase)
    sq = math.sqrt(ws)
    far = 0.78  # shade of the far limbs in side views

    # --- joints -----------------------------------------------------------------------------
    legs = []  # (hip, knee, ankle, shade)
    for sgn in ((1, -1) if side else (-1, 1)):
        if side:
            hip = (cx - f * 0.01 * P, hip_y)
            fx = cx + f * sgn * shot.stride * P * sinp
            lift = max(0.0, -sgn * sinp) * 0.035 * P
            shade = far if sgn == 1 else 1.0
        else:
            hip = (cx + sgn * 0.05 * P * ws, hip_y)
            fx = hip[0] + sgn * (0.01 + shot.spread) * P
            lift = max(0.0, sgn * sinp) * 0.025 * P
            shade = 1.0
        ankle = (fx, feet - 0.03 * P - lift)
        knee = ((hip[0] + fx) / 2 + f * 0.02 * P, (hip[1] + ankle[1]) / 2)
        legs.append((hip, knee, ankle, shade))
    arms = []  # (shoulder, elbow, wrist, shade, image side)
    for k, sgn in enumerate((1, -1) if side else (-1, 1)):
        l1, l2 = 0.16 * P, 0.15 * P
        if side:
            sh = (cx - f * 0.01 * P, s_y + 0.03 * P)
            a = math.radians(shot.swing) * sgn * -sinp * f
            e = math.radians(shot.elbow[k])
            el = (sh[0] + l1 * math.sin(a), sh[1] + l1 * math.cos(a))
            b = a + f * e
            wr = (el[0] + l2 * math.sin(b), el[1] + l2 * math.cos(b))
            shade = far if sgn == 1 else 1.0
        else:
            sh = (cx + sgn * (sw - 0.03 * P), s_y + 0.025 * P)
            a = math.radians(shot.abduct[k])
            e = math.radians(shot.elbow[k])
            l1 *= 1.0 - 0.12 * abs(math.sin(math.radians(shot.swing)) * sinp)
            el = (sh[0] + sgn * l1 * math.sin(a), sh[1] + l1 * math.cos(a))
            b = a - 0.6 * e
            l2 *= math.cos(0.7 * e)
            wr = (el[0] + sgn * l2 * math.sin(b), el[1] + l2 * math.cos(b))
            shade = 1.0
        arms.append((sh, el, wr, shade, sgn))

    def draw_leg(leg: tuple) -> None:
        hip, knee, ankle, shade = leg
        lw0, lw1, lw2 = 0.085 * P * ws, 0.065 * P * ws, 0.045 * P * sq
        if app.lower_kind == "trousers":
            thigh = shin = app.lower
        elif app.lower_kind == "shorts":
            thigh, shin = app.lower, app.legwear
        else:
            thigh = shin = app.legwear
        _limb(d, knee, ankle, lw1 * 0.9, lw2, _shade(shin, shade))
        _limb(d, hip, knee, lw0 * (1.08 if app.lower_kind == "shorts" else 1.0), lw1, _shade(thigh, shade))
        fx, fy = ankle
        shoe = _shade(app.shoes, shade)
        if side:
            d.ellipse(_box(fx - f * 0.03 * P, fy - 0.005 * P, fx + f * 0.065 * P, fy + 0.035 * P), fill=shoe)
        else:
            d.ellipse([fx - 0.036 * P, fy - 0.005 * P, fx + 0.036 * P, fy + 0.035 * P], fill=shoe)

    def draw_arm(arm: tuple) -> None:
        sh, el, wr, shade, _ = arm
        aw0, aw1 = 0.058 * P * sq, 0.046 * P * sq
        sleeve = _shade(app.upper, shade)
        fore = sleeve if app.long_sleeves else _shade(app.skin, shade)
        _limb(d, el, wr, aw1, aw1 * 0.9, fore)
        _limb(d, sh, el, aw0, aw1, sleeve)
        r = 0.024 * P
        hx, hy = wr[0] + (wr[0] - el[0]) * 0.15, wr[1] + (wr[1] - el[1]) * 0.15
        d.ellipse([hx - r, hy - r, hx + r, hy + r], fill=_shade(app.skin, shade))

    def carry_x() -> float:  # image x of the carried bag's side (front / back views)
        return cx + app.carry_side * left_dir * (hwb + 0.035 * P)

    def draw_torso() -> None:
        if side:
            pts = [(cx - sw, s_y - 0.02 * P), (cx + sw, s_y - 0.02 * P), (cx + ww + f * 0.01 * P, w_y),
                   (cx + hwb, t_y), (cx - hwb, t_y), (cx - ww + f * 0.01 * P, w_y)]
        else:
            pts = [(cx - sw * 0.8, s_y - 0.025 * P), (cx + sw * 0.8, s_y - 0.025 * P),
                   (cx + sw, s_y + 0.02 * P), (cx + ww, w_y), (cx + hwb, t_y), (cx - hwb, t_y),
                   (cx - ww, w_y), (cx - sw, s_y + 0.02 * P)]
        x0 = max(0, int(min(p[0] for p in pts)) - 1)
        y0 = max(0, int(min(p[1] for p in pts)) - 1)
        x1 = min(w, int(max(p[0] for p in pts)) + 2)
        y1 = min(h, int(max(p[1] for p in pts)) + 2)
        if x1 <= x0 or y1 <= y0:
            return
        shape = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(shape).polygon([(x - x0, y - y0) for x, y in pts], fill=255)
        layer.paste(_pattern(app, (x0, y0, x1, y1), s_y, t_y, cx, P), (x0, y0), shape)

    def draw_lower() -> None:
        if app.lower_kind == "skirt":
            d.polygon([(cx - ww, w_y), (cx + ww, w_y), (cx + hw * 1.4, top + 0.70 * P),
                       (cx - hw * 1.4, top + 0.70 * P)], fill=app.lower)
        else:
            d.polygon([(cx - ww, w_y), (cx + ww, w_y), (cx + hw, hip_y + 0.03 * P),
                       (cx - hw, hip_y + 0.03 * P)], fill=app.lower)

    hx, hy = cx + f * 0.012 * P, top + 0.075 * P
    rx, ry = 0.058 * P, 0.07 * P

    def draw_head() -> None:
        d.rectangle([cx - 0.024 * P, hy, cx + 0.024 * P, s_y + 0.01 * P], fill=app.skin)  # neck
        hair = app.hair if app.hair_style != "shaved" else _shade(
            tuple((a + b) / 2 for a, b in zip(app.hair, app.skin)), 1.0)
        d.ellipse([hx - rx * 1.06, hy - ry * 1.08, hx + rx * 1.06, hy + ry * 0.95], fill=hair)
        if shot.view == "front":
            cut = {"short": 0.7, "long": 0.62, "shaved": 0.95}[app.hair_style]
            d.ellipse([hx - rx * 0.92, hy - ry * cut, hx + rx * 0.92, hy + ry], fill=app.skin)
        elif side:
            fx = hx + f * rx * 0.18
            d.ellipse([fx - rx * 0.82, hy - ry * 0.7, fx + rx * 0.82, hy + ry], fill=app.skin)
            d.ellipse(_box(hx - f * rx * 1.05, hy - ry * 1.06, hx - f * rx * 0.05, hy + ry * 0.5), fill=hair)
        if app.hat is not None:
            brim = _shade(app.hat, 0.8)
            d.pieslice([hx - rx * 1.12, hy - ry * 1.2, hx + rx * 1.12, hy + ry * 0.55], 180, 360,
                       fill=app.hat)
            if shot.view == "front":
                d.rectangle([hx - rx * 1.15, hy - ry * 0.38, hx + rx * 1.15, hy - ry * 0.18], fill=brim)
            elif side:
                d.rectangle(_box(hx, hy - ry * 0.4, hx + f * rx * 1.7, hy - ry * 0.22), fill=brim)

    def long_hair(over_back: bool) -> None:
        if app.hair_style != "long":
            return
        if over_back:
            d.rounded_rectangle([hx - rx * 1.05, hy, hx + rx * 1.05, s_y + 0.12 * P], radius=rx * 0.5,
                                fill=app.hair)
        elif side:
            d.rectangle(_box(hx - f * rx * 1.05, hy, hx - f * rx * 0.1, s_y + 0.08 * P), fill=app.hair)
        else:
            d.rectangle([hx - rx * 1.12, hy, hx + rx * 1.12, s_y + 0.06 * P], fill=app.hair)

    bag_top, bag_bot = top + 0.45 * P, top + 0.58 * P
    dark = _shade(app.carry_colour, 0.7)

    def draw_shoulder_bag() -> None:
        bx = carry_x() if not side else cx - f * 0.02 * P
        other = (cx - (bx - cx) * 0.8, s_y - 0.01 * P) if not side else (cx - f * 0.02 * P, s_y)
        d.line([other, (bx, bag_top)], fill=dark, width=max(1, int(0.016 * P)))
        d.rounded_rectangle([bx - 0.05 * P, bag_top, bx + 0.05 * P, bag_bot], radius=0.01 * P,
                            fill=app.carry_colour)
        d.line([bx - 0.05 * P, bag_top + 0.03 * P, bx + 0.05 * P, bag_top + 0.03 * P], fill=dark,
               width=max(1, int(0.008 * P)))

    def draw_handbag() -> None:
        arm = next((a for a in arms if a[4] == app.carry_side * left_dir), arms[-1]) if not side else arms[-1]
        wx, wy = arm[2]
        d.line([(wx - 0.02 * P, wy + 0.04 * P), (wx, wy), (wx + 0.02 * P, wy + 0.04 * P)], fill=dark,
               width=max(1, int(0.01 * P)))
        d.rounded_rectangle([wx - 0.04 * P, wy + 0.035 * P, wx + 0.04 * P, wy + 0.11 * P], radius=0.008 * P,
                            fill=app.carry_colour)

    # --- drawing order, back to front ----------------------------------------------------------
    if side:
        draw_arm(arms[0])
        draw_leg(legs[0])
        draw_leg(legs[1])
        draw_lower()
        if app.carry == "backpack":
            d.rounded_rectangle(_box(cx - f * (sw * 0.6), s_y, cx - f * (sw + 0.09 * P), top + 0.46 * P),
                                radius=0.02 * P, fill=app.carry_colour)
        long_hair(False)
        draw_torso()
        draw_head()
        if app.carry == "bag":
            draw_shoulder_bag()
        draw_arm(arms[1])
        if app.carry == "handbag":
            draw_handbag()
        return
    front = shot.view == "front"
    if front and app.carry == "backpack":
        d.rounded_rectangle([cx - sw * 1.08, s_y - 0.005 * P, cx + sw * 1.08, top + 0.46 * P],
                            radius=0.02 * P, fill=app.carry_colour)
    if front:
        long_hair(False)
    for leg in legs:
        draw_leg(leg)
    draw_lower()
    draw_torso()
    if not front:
        d.rectangle([cx - 0.024 * P, hy, cx + 0.024 * P, s_y + 0.01 * P], fill=app.skin)
    for arm in arms:
        draw_arm(arm)
    draw_head()
    if not front:
        long_hair(True)
    if app.carry == "backpack":
        if front:
            for sgn in (-1, 1):
                d.line([(cx + sgn * sw * 0.55, s_y - 0.02 * P), (cx + sgn * sw * 0.62, top + 0.40 * P)],
                       fill=dark, width=max(1, int(0.025 * P)))
        else:
            bw = 0.10 * P * ws
            d.rounded_rectangle([cx - bw, s_y + 0.005 * P, cx + bw, top + 0.47 * P], radius=0.025 * P,
                                fill=app.carry_colour)
            d.rounded_rectangle([cx - bw * 0.7, top + 0.36 * P, cx + bw * 0.7, top + 0.45 * P],
                                radius=0.01 * P, fill=dark)
    elif app.carry == "bag":
        draw_shoulder_bag()
    elif app.carry == "handbag":
        draw_handbag()


# =========================================================================== camera


@lru_cache(maxsize=8)
def _radius2(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((ys + 0.5) / h - 0.5) ** 2 * 2 + ((xs + 0.5) / w - 0.5) ** 2 * 2
    r2.setflags(write=False)
    return r2[..., None]


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _apply_camera(img: np.ndarray, cam: CameraStyle, light: float, noise_seed: int) -> np.ndarray:
    """Render a clean RGB uint8 image as camera ``cam`` sees it (tone, light, optics, noise)."""
    h, w = img.shape[:2]
    s = cam.saturation
    matrix = np.diag(np.asarray(cam.gains, np.float32)) @ (
        s * np.eye(3, dtype=np.float32) + (1 - s) * np.ones((3, 1), np.float32) * _LUMA[None, :])
    x = img.astype(np.float32) / 255.0
    x = x @ matrix.T.astype(np.float32)
    x *= cam.brightness * light
    np.clip(x, 0.0, 1.0, out=x)
    if cam.gamma != 1.0:
        x **= cam.gamma
    if cam.haze:
        x = x * (1 - cam.haze) + cam.haze * np.asarray(cam.haze_colour, np.float32)
    if cam.vignette:
        x *= 1.0 - cam.vignette * _radius2(h, w)
    out = Image.fromarray((np.clip(x, 0, 1) * 255.0 + 0.5).astype(np.uint8))
    if cam.blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(cam.blur * h / 128.0))
    y = np.asarray(out, np.float32)
    if cam.noise > 0:
        rng = np.random.default_rng(noise_seed)
        y = y + rng.standard_normal((h, w, 3), dtype=np.float32) * cam.noise \
            + rng.standard_normal((h, w, 1), dtype=np.float32) * (cam.noise * 0.5)
    return (np.clip(y, 0, 255) + 0.5).astype(np.uint8)


# =========================================================================== rendering


def _domain_code(domain: str) -> int:
    return zlib.crc32(domain.encode("utf-8"))


def _rng(seed: int, domain: str, stream: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _domain_code(domain), stream, *(int(k) for k in key)])


@lru_cache(maxsize=32)
def _camera_background(domain: str, seed: int, cam: int, height: int, width: int) -> np.ndarray:
    """The scene camera ``cam`` looks at, drawn at twice the image size plus room to pan."""
    style = DOMAINS[domain]
    rng = _rng(seed, domain, _STREAM_BACKGROUND, cam)
    bg = SCENES[style.cameras[cam].scene](rng, int(round(2 * height * 1.15)), 4 * width)
    bg.setflags(write=False)
    return bg


@lru_cache(maxsize=4096)
def _appearance(domain: str, seed: int, pid: int, distractor_index: int = -1) -> Appearance:
    if distractor_index >= 0:
        return sample_appearance(_rng(seed, domain, _STREAM_DISTRACTOR_APPEARANCE, distractor_index))
    return sample_appearance(_rng(seed, domain, _STREAM_APPEARANCE, pid))


def _render(domain: str, seed: int, app: Appearance, shot: Shot, height: int, width: int,
            person: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image and its mask: (H, W, 3) uint8 RGB and (H, W) uint8 in {0, 255}."""
    style = DOMAINS[domain]
    ch, cw = 2 * height, 2 * width
    bg = _camera_background(domain, seed, shot.cam, height, width)
    oy = int(round(shot.crop[1] * (bg.shape[0] - ch)))
    ox = int(round(shot.crop[0] * (bg.shape[1] - cw)))
    canvas = Image.fromarray(np.ascontiguousarray(bg[oy:oy + ch, ox:ox + cw]))
    # contact shadow (part of the background, not of the person)
    feet = shot.feet_y * ch
    cx = (0.5 + shot.dx) * cw
    P = shot.person_height * app.height_scale * ch
    shadow = [cx - 0.16 * P, feet - 0.02 * P, cx + 0.16 * P, feet + 0.025 * P]
    ImageDraw.Draw(canvas, "RGBA").ellipse(shadow, fill=(0, 0, 0, 70))
    layer = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    _draw_person(layer, app, shot)
    alpha = np.asarray(layer.getchannel("A")) > 0
    visible = alpha
    occ_layer = None
    if shot.occluder is not None:
        occ_layer = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
        OCCLUDERS[shot.occluder.kind](ImageDraw.Draw(occ_layer), shot.occluder.u, cw, ch)
        hidden = np.asarray(occ_layer.getchannel("A")) > 0
        visible = alpha & ~hidden
        if visible.sum() < 0.5 * alpha.sum():  # never hide most of the person
            occ_layer, visible = None, alpha
    if person:
        canvas.paste(layer, (0, 0), layer)
    if occ_layer is not None:
        canvas.paste(occ_layer, (0, 0), occ_layer)
    img = np.asarray(canvas.reduce(2))
    mask2 = Image.fromarray((visible * np.uint8(255)).astype(np.uint8))
    mask = np.where(np.asarray(mask2.reduce(2)) >= 128, 255, 0).astype(np.uint8)
    img = _apply_camera(img, style.cameras[shot.cam], shot.light, shot.noise_seed)
    return img, mask


def render_sample(domain: str, pid: int, cam: int, index: int = 0, seed: int = 0, height: int = 128,
                  width: int = 64, person: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Render one image of identity ``pid`` (>= 1) seen by camera ``cam`` (0-based) as the
    generator does: returns ``(image, mask)``, RGB uint8 (H, W, 3) and uint8 (H, W) with 255 on
    the visible person.

    ``index`` is the image's number among that identity's images in that camera (in the files,
    train images and then for test ids the query image followed by the gallery images). With
    ``person=False`` the same shot is rendered with the person left out -- same background,
    crop, occluder, light and noise -- which shows exactly what the mask covers.
    """
    style = _domain(domain)
    _check_int("height", height, MIN_HEIGHT)
    _check_int("width", width, MIN_WIDTH)
    _check_int("pid", pid, 1)
    if not 0 <= int(cam) < style.num_cameras:
        raise ConfigError(f"cam={cam!r} is out of range; {domain} has cameras "
                          f"0..{style.num_cameras - 1} (0-based)")
    shot = sample_shot(_rng(seed, domain, _STREAM_SHOT, pid, cam, index), style, int(cam))
    return _render(domain, seed, _appearance(domain, seed, pid), shot, height, width, person)


# =========================================================================== planning


@dataclass(frozen=True)
class _Job:
    split: str
    name: str  # file stem
    pid: int
    cam: int
    index: int  # per (pid, cam) image number, or distractor number for pid 0


def _file_stem(pid: int, cam: int, seq: int, frame: int) -> str:
    return f"{pid:04d}_c{cam + 1}s{seq}_{frame:06d}_00"


def _counts_per_camera(rng: np.random.Generator, cams: list[int], total: int) -> dict[int, int]:
    counts = {c: 1 for c in cams}
    for c in rng.choice(cams, size=max(total - len(cams), 0), replace=True):
        counts[int(c)] += 1
    return counts


def _plan(domain: str, seed: int, num_train_ids: int, num_test_ids: int) -> list[_Job]:
    """Which images a domain holds: pid, camera, split and file name of each."""
    style = DOMAINS[domain]
    C = style.num_cameras
    jobs: list[_Job] = []

    def frames(rng: np.random.Generator) -> tuple[int, int]:
        base = int(rng.integers(0, 900_000))
        return base, 1 + (base // 150_000)

    for pid in range(1, num_train_ids + num_test_ids + 1):
        rng = _rng(seed, domain, _STREAM_SCHEDULE, pid)
        k = int(rng.integers(2, min(C, 5) + 1)) if C >= 2 else 1
        cams = sorted(int(c) for c in rng.choice(C, size=k, replace=False))
        test = pid > num_train_ids
        n = int(rng.integers(6, 11)) if test else int(rng.integers(8, 13))
        counts = _counts_per_camera(rng, cams, max(n, k))
        for cam in cams:
            base, seq = frames(rng)
            splits = (["query"] + ["gallery"] * counts[cam]) if test else ["train"] * counts[cam]
            for j, split in enumerate(splits):
                jobs.append(_Job(split, _file_stem(pid, cam, seq, base + 25 * j), pid, cam, j))
    if num_test_ids:
        rng = _rng(seed, domain, _STREAM_SCHEDULE, 0)
        num_distractors = max(3, round(0.1 * num_test_ids))
        per_cam: dict[int, int] = {}
        for i in range(num_distractors):
            cam = int(rng.integers(C))
            j = per_cam.get(cam, 0)
            per_cam[cam] = j + 1
            base, seq = frames(rng)
            jobs.append(_Job("gallery", _file_stem(0, cam, seq, base + 7 * j), 0, cam, i))
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):  # cannot happen with the numbering above; guard anyway
        raise RuntimeError(f"{domain}: duplicate file names in the plan")
    return jobs


def _render_job(domain: str, seed: int, job: _Job, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    style = DOMAINS[domain]
    if job.pid == 0:
        app = _appearance(domain, seed, 0, job.index)
        rng = _rng(seed, domain, _STREAM_DISTRACTOR_SHOT, job.index)
        shot = sample_shot(rng, style, job.cam, distractor=True)
    else:
        app = _appearance(domain, seed, job.pid)
        shot = sample_shot(_rng(seed, domain, _STREAM_SHOT, job.pid, job.cam, job.index), style, job.cam)
    return _render(domain, seed, app, shot, height, width)


# =========================================================================== arguments


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigError(f"{name}={value!r} is not an integer; expected an integer >= {minimum}")
    if value < minimum or (maximum is not None and value > maximum):
        rng = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ConfigError(f"{name}={value!r} is out of range; expected an integer {rng}")
    return int(value)


def _domain(name: object) -> DomainStyle:
    style = DOMAINS.get(name) if isinstance(name, str) else None
    if style is None:
        raise ConfigError(f"unknown synthetic domain {name!r}; expected one of {', '.join(DOMAINS)}")
    return style


def _check_args(seed: object, num_train_ids: object, num_test_ids: object, height: object,
                width: object) -> None:
    _check_int("seed", seed, 0)
    total = _check_int("num_train_ids", num_train_ids, 1) + _check_int("num_test_ids", num_test_ids, 1)
    if total > MAX_PID:
        raise ConfigError(f"num_train_ids + num_test_ids = {total} is too large; "
                          f"expected at most {MAX_PID} (four-digit person ids)")
    _check_int("height", height, MIN_HEIGHT)
    _check_int("width", width, MIN_WIDTH)


# =========================================================================== writing


def _meta(domain: str, seed: int, num_train_ids: int, num_test_ids: int, height: int, width: int,
          jobs: list[_Job]) -> dict:
    style = DOMAINS[domain]
    counts = {split: sum(1 for j in jobs if j.split == split) for split in SPLIT_FOLDERS}
    return {
        "name": domain,
        "description": style.description,
        "num_cameras": style.num_cameras,
        "seed": seed,
        "height": height,
        "width": width,
        "num_train_ids": num_train_ids,
        "num_test_ids": num_test_ids,
        "num_distractors": sum(1 for j in jobs if j.pid == 0),
        "num_images": counts,
        "splits": dict(SPLIT_FOLDERS),
        "masks": MASKS_DIR,
        "cameras": [asdict(c) for c in style.cameras],
        "generator": __name__,
        "generator_version": GENERATOR_VERSION,
        "jpeg_quality": JPEG_QUALITY,
    }


_REQUESTED_KEYS = ("seed", "height", "width", "num_train_ids", "num_test_ids")


def _write_domain(folder: Path, domain: str, seed: int, num_train_ids: int, num_test_ids: int, height: int,
                  width: int, progress: bool) -> None:
    jobs = _plan(domain, seed, num_train_ids, num_test_ids)
    for sub in SPLIT_FOLDERS.values():
        (folder / sub).mkdir(parents=True)
        (folder / MASKS_DIR / sub).mkdir(parents=True)
    for job in tqdm(jobs, desc=f"synth {domain}", unit="img", disable=not progress):
        img, mask = _render_job(domain, seed, job, height, width)
        sub = SPLIT_FOLDERS[job.split]
        Image.fromarray(img).save(folder / sub / f"{job.name}.jpg", "JPEG", quality=JPEG_QUALITY)
        Image.fromarray(mask).save(folder / MASKS_DIR / sub / f"{job.name}.png", "PNG")
    meta = _meta(domain, seed, num_train_ids, num_test_ids, height, width, jobs)
    # meta.json last: its presence marks the folder complete
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _owner_alive(name: str) -> bool:
    """Whether the process that made the hidden work folder ``name`` may still be running."""
    m = re.match(r"^\.[^.]+\.(?:tmp|old)-(.+)-(\d+)-[^-]+$", name)
    if m is None or m.group(1) != _host():
        return False if m is None else True  # another machine's work folder: leave it alone
    pid = int(m.group(2))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _clean_stale(out_dir: Path, domain: str) -> None:
    """Remove work folders left by interrupted runs; restore a dataset moved aside by an
    interrupted swap if nothing replaced it."""
    final = out_dir / domain
    for entry in sorted(out_dir.glob(f".{domain}.*")):
        if not entry.is_dir() or _owner_alive(entry.name):
            continue
        if ".old-" in entry.name and not final.exists() and (entry / META_FILE).is_file():
            try:
                os.rename(entry, final)
                log.info("restored %s from the interrupted replacement %s", final, entry.name)
                continue
            except OSError:
                pass
        log.info("removing %s left by an interrupted run", entry)
        shutil.rmtree(entry, ignore_errors=True)


def _check_existing(final: Path, requested: dict) -> None:
    try:
        meta = json.loads((final / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {final / META_FILE} ({exc}); "
                          "pass overwrite=True to regenerate it") from None
    differ = [f"{k}={meta.get(k)!r} (asked {requested[k]!r})"
              for k in _REQUESTED_KEYS if meta.get(k) != requested[k]]
    if differ:
        raise ConfigError(f"{final} already holds a benchmark generated with {', '.join(differ)}; "
                          "pass overwrite=True (crgan synth --overwrite) to replace it, "
                          "or choose another folder")


_OURS = set(SPLIT_FOLDERS.values()) | {MASKS_DIR}


def _swap_into_place(tmp: Path, final: Path, domain: str, overwrite: bool) -> None:
    """Rename the finished ``tmp`` folder to ``final``; an existing ``final`` is first moved aside
    (only when ``overwrite``, or when it is an incomplete leftover) and deleted afterwards."""
    old = None
    if final.exists():
        if (final / META_FILE).is_file() and not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)  # another run finished first
            return
        old = final.parent / f".{domain}.old-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(final, old)
    try:
        os.rename(tmp, final)
    except OSError:
        if old is not None and not final.exists():
            os.rename(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate_domain(out_dir: str | os.PathLike, domain: str, seed: int = 0, num_train_ids: int = 120,
                    num_test_ids: int = 100, height: int = 128, width: int = 64, overwrite: bool = False,
                    progress: bool = True) -> Path:
    """Write one synthetic domain to ``<out_dir>/<domain>`` and return that path.

    Args:
        out_dir: the data root; the domain is written to its sub-folder named ``domain``.
        domain: ``"synth_a"`` or ``"synth_b"`` (see :data:`DOMAINS`).
        seed: generation seed (>= 0); the same seed and arguments give the same bytes.
        num_train_ids: training identities (pids ``1..num_train_ids``).
        num_test_ids: test identities (the next pids), each with one query per camera it is seen
            in and gallery images in all those cameras; plus a few distractors (pid 0).
        height, width: image size in pixels (at least 32 x 16).
        overwrite: replace an existing complete folder. Without it, an existing complete folder
            (one with ``meta.json``) is kept as it is, and an error is raised if it was generated
            with other arguments.
        progress: show a progress bar.

    The domain is built in a hidden work folder ``<out_dir>/.<domain>.tmp-...`` and renamed to
    its final name only once complete; work folders left by interrupted runs are removed.
    """
    style = _domain(domain)
    _check_args(seed, num_train_ids, num_test_ids, height, width)
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output folder {out_dir} is a file; expected a folder (or a path to create)")
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / style.name
    _clean_stale(out_dir, style.name)
    requested = {"seed": seed, "height": height, "width": width, "num_train_ids": num_train_ids,
                 "num_test_ids": num_test_ids}
    if (final / META_FILE).is_file() and not overwrite:
        _check_existing(final, requested)
        log.info("keeping the existing %s (pass overwrite=True to regenerate it)", final)
        return final
    if final.exists() and not (final / META_FILE).is_file():
        if not final.is_dir() or not {p.name for p in final.iterdir()} <= _OURS:
            raise ConfigError(f"{final} exists and is not a generated {style.name} folder (no {META_FILE}); "
                              "move it away or choose another output folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{style.name}.tmp-{_host()}-{os.getpid()}-", dir=out_dir))
    try:
        _write_domain(tmp, style.name, int(seed), int(num_train_ids), int(num_test_ids), int(height),
                      int(width), progress)
        _swap_into_place(tmp, final, style.name, True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def generate_benchmark(out: str | os.PathLike, seed: int = 0, num_train_ids: int = 120,
                       num_test_ids: int = 100, height: int = 128, width: int = 64,
                       domains: Sequence[str] = ("synth_a", "synth_b"), overwrite: bool = False,
                       progress: bool = True) -> dict[str, Path]:
    """Write the embedded benchmark (both domains by default) under the data root ``out``.

    Returns ``{domain: path}``, e.g. ``{"synth_a": Path("data/synth_a"), "synth_b": ...}``; read a
    domain back with ``load_reid_dataset("synth_a", out)``. See :func:`generate_domain` for the
    arguments. At the default size (128 x 64, 120 + 100 ids) each domain holds about 2,400 images.
    """
    if isinstance(domains, str):
        domains = (domains,)
    names = list(dict.fromkeys(domains))
    if not names:
        raise ConfigError(f"domains={domains!r} is empty; expected some of {', '.join(DOMAINS)}")
    for name in names:
        _domain(name)
    _check_args(seed, num_train_ids, num_test_ids, height, width)
    return {
        name: generate_domain(out, name, seed, num_train_ids, num_test_ids, height, width, overwrite,
                              progress)
        for name in names
    }
