"""Background scenes: one painter per kind of view a camera looks at, registered in
:data:`SCENES`, with the palettes and small drawing helpers they share.

A scene painter draws one camera's view at (h, w) -- wider and taller than an image, so that
each image crops its own window -- and returns an RGB uint8 array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .appearance import _CLOTHING_RGB, RGB

# =========================================================================== palettes

_FACADES = ((205, 190, 165), (180, 175, 170), (150, 95, 75), (225, 215, 195), (120, 125, 135),
            (195, 160, 120))
_GLASS = ((55, 70, 85), (80, 100, 120), (40, 45, 55), (150, 170, 185), (210, 190, 120))
_SIGNS = ((180, 30, 35), (30, 110, 60), (30, 70, 150), (230, 190, 40), (40, 40, 45), (200, 90, 30))
_CARS = ((200, 200, 205), (30, 30, 35), (150, 20, 25), (40, 60, 120), (120, 125, 130), (230, 230, 230))
_GREENS = ((60, 110, 45), (45, 90, 40), (85, 130, 55), (35, 70, 35), (100, 140, 70))
_BRICKS = ((150, 65, 45), (130, 55, 40), (170, 80, 55), (115, 50, 40))
_BARK = ((85, 65, 45), (70, 55, 40), (110, 90, 70), (95, 90, 80))


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


def _vary_colour(rng: np.random.Generator, rgb: Sequence[float], amount: float = 12.0) -> RGB:
    """``rgb`` plus per-channel noise of std ``amount``."""
    return tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.normal(0, amount, 3), 0, 255))  # type: ignore


def _pick_colour(rng: np.random.Generator, colours: Sequence[Sequence[float]], amount: float = 10.0) -> RGB:
    """One of ``colours`` at random, varied by :func:`_vary_colour`."""
    return _vary_colour(rng, colours[int(rng.integers(len(colours)))], amount)


def _shaded(rgb: Sequence[float], f: float) -> RGB:
    """``rgb`` darkened (``f`` < 1) or lightened (``f`` > 1), clipped to 0..255."""
    return tuple(int(min(255, max(0, round(c * f)))) for c in rgb)  # type: ignore[return-value]


def _draw_canopy(d: ImageDraw.ImageDraw, rng: np.random.Generator, cx: float, cy: float, r: float) -> None:
    """A tree crown of radius ``r`` around (cx, cy): overlapping blobs of one green."""
    base = _pick_colour(rng, _GREENS, 10)
    for _ in range(14):
        ox, oy, rr = rng.normal(0, r * 0.45), rng.normal(0, r * 0.35), r * rng.uniform(0.35, 0.65)
        d.ellipse([cx + ox - rr, cy + oy - rr, cx + ox + rr, cy + oy + rr],
                  fill=_shaded(base, rng.uniform(0.7, 1.3)))


def _grass_texture(rng: np.random.Generator, h: int, w: int, base: RGB) -> np.ndarray:
    return _texture(rng, h, w, base, 10, 12, cell=10, tint=4.0)


# =========================================================================== street


def _draw_facade_windows(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int,
                         shop_top: float) -> None:
    """Rows of framed windows down to the shop floor."""
    ww, wh = w * rng.uniform(0.07, 0.1), h * rng.uniform(0.07, 0.1)
    px, py = ww * rng.uniform(1.6, 2.3), wh * rng.uniform(1.5, 1.9)
    frame = _vary_colour(rng, (230, 230, 225), 10)
    y = rng.uniform(0.0, py * 0.5)
    while y + wh < shop_top:
        x = rng.uniform(-px * 0.5, 0.0)
        while x < w:
            glass = _pick_colour(rng, _GLASS, 8)
            d.rectangle([x - 2, y - 2, x + ww + 2, y + wh + 2], fill=frame)
            d.rectangle([x, y, x + ww, y + wh], fill=glass)
            d.line([x + ww / 2, y, x + ww / 2, y + wh], fill=frame, width=2)
            d.rectangle([x - 4, y + wh + 2, x + ww + 4, y + wh + 5], fill=_shaded(frame, 0.8))
            x += px
        y += py


def _draw_shop_floor(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, shop_top: float,
                     hz: int) -> None:
    """A sign band over a row of shop windows, and the kerb at the horizon ``hz``."""
    d.rectangle([0, shop_top, w, shop_top + h * 0.03], fill=_pick_colour(rng, _SIGNS, 10))
    x = rng.uniform(-w * 0.1, 0.0)
    while x < w:
        sw = w * rng.uniform(0.12, 0.25)
        d.rectangle([x, shop_top + h * 0.045, x + sw, hz], fill=_pick_colour(rng, _GLASS, 10))
        x += sw + w * rng.uniform(0.03, 0.08)
    d.rectangle([0, hz - 3, w, hz + 3], fill=_vary_colour(rng, (110, 108, 105), 8))


def _draw_pavement(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, hz: int) -> None:
    """Tile joints below the horizon ``hz``, in perspective, and one or two lamp posts."""
    tile = h * rng.uniform(0.05, 0.08)
    grout = _vary_colour(rng, (105, 103, 100), 6)
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


def _scene_street(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Building facade with rows of windows and a shop floor, over a tiled pavement."""
    hz = int(h * rng.uniform(0.56, 0.68))
    arr = np.empty((h, w, 3), np.float32)
    arr[:hz] = _texture(rng, hz, w, _pick_colour(rng, _FACADES, 8), 9, 5)
    arr[hz:] = _texture(rng, h - hz, w, _vary_colour(rng, (150, 148, 145), 10), 8, 8, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    shop_top = hz - h * 0.17
    _draw_facade_windows(d, rng, h, w, shop_top)
    _draw_shop_floor(d, rng, h, w, shop_top, hz)
    _draw_pavement(d, rng, h, w, hz)
    return np.asarray(img)


# =========================================================================== shop front


def _draw_sign_and_awning(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, sign_h: int,
                          awn_h: int) -> None:
    """White lettering on the shop sign, then a striped awning with a scalloped edge below it."""
    for x in np.arange(rng.uniform(0, w * 0.1), w, w * 0.09):  # lettering
        if rng.random() < 0.7:
            d.rectangle([x, sign_h * 0.3, x + w * 0.05, sign_h * 0.75], fill=(245, 245, 240))
    c1, c2 = _pick_colour(rng, _SIGNS, 10), _vary_colour(rng, (235, 235, 230), 8)
    stripe = w * rng.uniform(0.04, 0.07)
    for i, x in enumerate(np.arange(0, w, stripe)):
        d.rectangle([x, sign_h, x + stripe, awn_h], fill=c1 if i % 2 else c2)
        d.ellipse([x, awn_h - stripe / 2, x + stripe, awn_h + stripe / 2], fill=c1 if i % 2 else c2)


def _draw_display_window(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, awn_h: int,
                         floor: int) -> None:
    """Goods on display, reflections on the glass and the window frame."""
    for _ in range(int(rng.integers(3, 7))):  # goods on display
        x, y = rng.uniform(0, w), rng.uniform(awn_h + h * 0.08, floor - h * 0.05)
        s = h * rng.uniform(0.03, 0.08)
        d.rectangle([x, y, x + s, floor - h * 0.03], fill=_pick_colour(rng, _CLOTHING_RGB, 20))
    for _ in range(int(rng.integers(2, 5))):  # reflections
        x = rng.uniform(0, w)
        d.polygon([(x, awn_h), (x + w * 0.08, awn_h), (x - w * 0.1, floor), (x - w * 0.18, floor)],
                  fill=(255, 255, 255, 40))
    mull = _vary_colour(rng, (50, 50, 55), 8)
    for x in np.arange(rng.uniform(0, w * 0.3), w, w * rng.uniform(0.28, 0.4)):
        d.rectangle([x, awn_h, x + w * 0.025, floor], fill=mull)
    d.rectangle([0, floor - h * 0.025, w, floor], fill=mull)


def _draw_checked_floor(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, floor: int,
                        dark: RGB) -> None:
    """Every other floor tile below ``floor`` in a translucent ``dark``."""
    cell = h * rng.uniform(0.05, 0.08)
    for i, y in enumerate(np.arange(floor, h, cell)):
        for j, x in enumerate(np.arange(-cell * (i % 2) / 2, w, cell * 1.4)):
            if (i + j) % 2:
                d.rectangle([x, y, x + cell * 1.4, y + cell], fill=dark + (120,))


def _scene_shopfront(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Shop sign, striped awning and big display windows with reflections, over light floor tiles."""
    arr = np.empty((h, w, 3), np.float32)
    sign_h, awn_h, floor = int(h * 0.16), int(h * 0.25), int(h * rng.uniform(0.7, 0.78))
    arr[:sign_h] = _texture(rng, sign_h, w, _pick_colour(rng, _SIGNS, 10), 6, 4)
    arr[sign_h:floor] = _texture(rng, floor - sign_h, w, _pick_colour(rng, _GLASS[:4], 10), 14, 4, cell=24)
    light, dark = _vary_colour(rng, (205, 205, 200), 8), _vary_colour(rng, (150, 150, 148), 8)
    arr[floor:] = _texture(rng, h - floor, w, light, 5, 5, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img, "RGBA")
    _draw_sign_and_awning(d, rng, w, sign_h, awn_h)
    _draw_display_window(d, rng, h, w, awn_h, floor)
    _draw_checked_floor(d, rng, h, w, floor, dark)
    return np.asarray(img.convert("RGB"))


# =========================================================================== crossing


def _draw_distant_buildings(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, sky: int,
                            road: int) -> None:
    """A row of buildings of random widths and heights, with a grid of dark windows each."""
    x = rng.uniform(-w * 0.2, 0)
    while x < w:
        bw, top = w * rng.uniform(0.15, 0.35), rng.uniform(sky * 0.3, sky * 1.6)
        col = _pick_colour(rng, _FACADES, 12)
        d.rectangle([x, top, x + bw, road], fill=col)
        for yy in np.arange(top + h * 0.02, road - h * 0.04, h * 0.045):
            for xx in np.arange(x + bw * 0.08, x + bw - w * 0.03, w * 0.06):
                d.rectangle([xx, yy, xx + w * 0.025, yy + h * 0.02], fill=_shaded(col, 0.55))
        x += bw


def _draw_parked_cars(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, road: int) -> None:
    for _ in range(int(rng.integers(1, 4))):
        cx, cw, ch = rng.uniform(0, w), w * rng.uniform(0.2, 0.3), h * rng.uniform(0.06, 0.09)
        car = _pick_colour(rng, _CARS, 10)
        d.rounded_rectangle([cx, road - ch, cx + cw, road + ch * 0.2], radius=ch * 0.3, fill=car)
        d.rectangle([cx + cw * 0.2, road - ch * 0.95, cx + cw * 0.75, road - ch * 0.55], fill=(60, 70, 80))


def _draw_zebra_stripes(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, road: int) -> None:
    """White bands across the road, wider towards the camera."""
    white = _vary_colour(rng, (225, 225, 220), 6)
    band = h * 0.035
    y = road + band
    while y < h:
        d.rectangle([0, y, w, y + band], fill=white)
        y += band * 2.0
        band *= 1.15


def _draw_traffic_lights(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, sky: int,
                         road: int) -> None:
    for _ in range(int(rng.integers(1, 3))):  # traffic-light poles
        x = rng.uniform(0, w)
        d.rectangle([x, sky * 0.5, x + w * 0.015, road + h * 0.1], fill=(40, 42, 45))
        d.rectangle([x - w * 0.02, sky * 0.5, x + w * 0.035, sky * 0.5 + h * 0.1], fill=(25, 25, 28))


def _scene_crossing(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Pale sky, a row of distant buildings and parked cars, asphalt with zebra stripes."""
    sky, road = int(h * rng.uniform(0.12, 0.2)), int(h * rng.uniform(0.45, 0.55))
    arr = np.empty((h, w, 3), np.float32)
    arr[:sky] = _texture(rng, sky, w, _vary_colour(rng, (200, 210, 220), 8), 4, 2)
    arr[sky:road] = _texture(rng, road - sky, w, _vary_colour(rng, (140, 140, 140), 10), 6, 4)
    arr[road:] = _texture(rng, h - road, w, _vary_colour(rng, (75, 75, 78), 6), 7, 9, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    _draw_distant_buildings(d, rng, h, w, sky, road)
    _draw_parked_cars(d, rng, h, w, road)
    _draw_zebra_stripes(d, rng, h, w, road)
    _draw_traffic_lights(d, rng, h, w, sky, road)
    return np.asarray(img)


# =========================================================================== arcade


def _draw_ceiling_lights(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int) -> None:
    d.rectangle([0, 0, w, h * 0.1], fill=_vary_colour(rng, (70, 68, 65), 6))
    for x in np.arange(rng.uniform(0, w * 0.2), w, w * 0.22):
        d.rectangle([x, h * 0.035, x + w * 0.12, h * 0.065], fill=(250, 245, 225))


def _draw_pillars(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, floor: int) -> None:
    """Shaded concrete pillars, most with a poster, each mirrored faintly in the polished floor."""
    concrete = _vary_colour(rng, (185, 182, 175), 8)
    pitch = w * rng.uniform(0.3, 0.42)
    for x in np.arange(rng.uniform(-pitch * 0.5, 0), w, pitch):
        pw = w * rng.uniform(0.1, 0.14)
        d.rectangle([x, h * 0.1, x + pw, floor], fill=concrete)
        d.rectangle([x + pw * 0.75, h * 0.1, x + pw, floor], fill=_shaded(concrete, 0.8))
        if rng.random() < 0.7:
            py = rng.uniform(h * 0.2, h * 0.4)
            d.rectangle([x + pw * 0.1, py, x + pw * 0.7, py + h * 0.15], fill=_pick_colour(rng, _SIGNS, 20))
            d.rectangle([x + pw * 0.15, py + h * 0.03, x + pw * 0.6, py + h * 0.08], fill=(240, 240, 235))
        d.rectangle([x, floor, x + pw, floor + (h - floor) * 0.6], fill=concrete + (60,))


def _scene_arcade(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A covered passage: dim back wall, concrete pillars with posters, lights, polished floor."""
    floor = int(h * rng.uniform(0.66, 0.74))
    arr = np.empty((h, w, 3), np.float32)
    arr[:floor] = _texture(rng, floor, w, _vary_colour(rng, (95, 88, 80), 10), 10, 5)
    arr[floor:] = _texture(rng, h - floor, w, _vary_colour(rng, (165, 160, 150), 8), 6, 3, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img, "RGBA")
    _draw_ceiling_lights(d, rng, h, w)
    _draw_pillars(d, rng, h, w, floor)
    for y in np.arange(floor, h, h * 0.06):
        d.line([0, y, w, y], fill=(120, 115, 110, 120), width=1)
    return np.asarray(img.convert("RGB"))


# =========================================================================== park


def _scene_park(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Trees against a bright sky, lawn, and a gravel path across the bottom."""
    sky, grass = int(h * rng.uniform(0.15, 0.28)), int(h * rng.uniform(0.45, 0.55))
    path = int(h * rng.uniform(0.7, 0.8))
    arr = np.empty((h, w, 3), np.float32)
    arr[:grass] = _texture(rng, grass, w, _vary_colour(rng, (190, 210, 230), 10), 6, 2)
    arr[grass:] = _grass_texture(rng, h - grass, w, _pick_colour(rng, _GREENS, 10))
    arr[path:] = _texture(rng, h - path, w, _vary_colour(rng, (190, 170, 130), 10), 8, 14, cell=6)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 6))):
        x = rng.uniform(0, w)
        d.rectangle([x, sky, x + w * rng.uniform(0.03, 0.06), grass + h * 0.05], fill=_pick_colour(rng, _BARK, 8))
    for _ in range(int(rng.integers(4, 8))):
        _draw_canopy(d, rng, rng.uniform(0, w), rng.uniform(h * 0.05, sky + h * 0.12), w * rng.uniform(0.12, 0.22))
    for _ in range(250):  # grass blades
        x, y = rng.uniform(0, w), rng.uniform(grass, path)
        d.line([x, y, x + rng.normal(0, 2), y - rng.uniform(3, 8)], fill=_pick_colour(rng, _GREENS, 15), width=1)
    for _ in range(120):  # gravel
        x, y, r = rng.uniform(0, w), rng.uniform(path, h), rng.uniform(1, 3)
        d.ellipse([x - r, y - r, x + r, y + r], fill=_vary_colour(rng, (150, 135, 110), 20))
    return np.asarray(img)


# =========================================================================== campus


def _draw_brick_wall(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, wall: int) -> None:
    """Staggered courses of bricks, each a little different, over the mortar down to ``wall``."""
    bh = h * rng.uniform(0.025, 0.035)
    bw = bh * rng.uniform(2.2, 2.8)
    brick = _pick_colour(rng, _BRICKS, 8)
    for i, y in enumerate(np.arange(0, wall, bh)):
        for x in np.arange(-(i % 2) * bw / 2, w, bw):
            d.rectangle([x + 1, y + 1, x + bw - 1, y + bh - 1], fill=_vary_colour(rng, brick, 10))


def _draw_framed_windows(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int) -> None:
    for x in np.arange(rng.uniform(0, w * 0.2), w, w * rng.uniform(0.3, 0.45)):
        y0 = h * rng.uniform(0.08, 0.18)
        d.rectangle([x, y0, x + w * 0.16, y0 + h * 0.22], fill=(235, 235, 230))
        d.rectangle([x + 3, y0 + 3, x + w * 0.16 - 3, y0 + h * 0.22 - 3], fill=_pick_colour(rng, _GLASS[:3], 8))
        d.line([x + w * 0.08, y0, x + w * 0.08, y0 + h * 0.22], fill=(235, 235, 230), width=3)


def _draw_hedge(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, wall: int, hedge: int) -> None:
    """A row of round bushes along the foot of the wall, on a band of the same green."""
    base = _pick_colour(rng, _GREENS[1:4], 8)
    for x in np.arange(-10, w + 10, w * 0.05):
        r = h * rng.uniform(0.04, 0.06)
        y = wall - hedge + rng.normal(0, 2)
        d.ellipse([x - r, y - r, x + r, y + r], fill=_shaded(base, rng.uniform(0.7, 1.2)))
    d.rectangle([0, wall - hedge, w, wall + hedge], fill=_shaded(base, 0.85))


def _draw_flagstones(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, path: int) -> None:
    """Joints of staggered slabs from ``path`` to the bottom."""
    joint = _vary_colour(rng, (120, 115, 110), 8)
    slab = h * rng.uniform(0.07, 0.1)
    for i, y in enumerate(np.arange(path, h, slab)):
        d.line([0, y, w, y], fill=joint, width=2)
        for x in np.arange((i % 2) * slab * 0.7, w, slab * 1.4):
            d.line([x, y, x, y + slab], fill=joint, width=2)


def _scene_campus(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Red-brick building with white-framed windows, a hedge, and a flagstone path."""
    wall, hedge, path = int(h * rng.uniform(0.55, 0.65)), int(h * 0.05), int(h * rng.uniform(0.72, 0.8))
    arr = np.empty((h, w, 3), np.float32)
    mortar = _vary_colour(rng, (185, 175, 160), 8)
    arr[:wall] = np.asarray(mortar, np.float32)
    arr[wall:path] = _grass_texture(rng, path - wall, w, _pick_colour(rng, _GREENS, 10))
    arr[path:] = _texture(rng, h - path, w, _vary_colour(rng, (175, 170, 160), 10), 8, 6, cell=8)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    _draw_brick_wall(d, rng, h, w, wall)
    _draw_framed_windows(d, rng, h, w)
    _draw_hedge(d, rng, h, w, wall, hedge)
    _draw_flagstones(d, rng, h, w, path)
    return np.asarray(img)


# =========================================================================== lawn


def _draw_mowing_stripes(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, line: int) -> None:
    """Light diagonal stripes on the lawn below the treeline ``line``."""
    stripe = w * rng.uniform(0.12, 0.2)
    for i, x in enumerate(np.arange(-w, 2 * w, stripe)):
        if i % 2:
            d.polygon([(x, line), (x + stripe, line), (x + stripe * 2.5, h), (x + stripe * 1.5, h)],
                      fill=(255, 255, 230, 28))


def _draw_flower_bed(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, line: int) -> None:
    bed_y = rng.uniform(line + h * 0.05, line + h * 0.2)
    for _ in range(160):
        x, y, r = rng.uniform(0, w), bed_y + rng.normal(0, h * 0.02), rng.uniform(1.5, 3.5)
        col = ((200, 40, 50), (240, 200, 50), (150, 60, 170), (240, 240, 240))[int(rng.integers(4))]
        d.ellipse([x - r, y - r, x + r, y + r], fill=col)


def _draw_lawn_bench(d: ImageDraw.ImageDraw, rng: np.random.Generator, h: int, w: int, line: int) -> None:
    """A wooden bench of three slats on two legs."""
    bx, by = rng.uniform(0, w * 0.6), line + h * rng.uniform(0.08, 0.15)
    wood = _vary_colour(rng, (120, 80, 45), 10)
    for k in range(3):
        d.rectangle([bx, by + k * h * 0.015, bx + w * 0.35, by + k * h * 0.015 + h * 0.008], fill=wood)
    d.rectangle([bx + w * 0.02, by, bx + w * 0.035, by + h * 0.07], fill=_shaded(wood, 0.6))
    d.rectangle([bx + w * 0.31, by, bx + w * 0.325, by + h * 0.07], fill=_shaded(wood, 0.6))


def _scene_lawn(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Wide mown lawn with stripes, a treeline, flower beds and a bench."""
    line = int(h * rng.uniform(0.22, 0.32))
    arr = np.empty((h, w, 3), np.float32)
    arr[:line] = _texture(rng, line, w, _pick_colour(rng, _GREENS[1:4], 8), 16, 6)
    g = _pick_colour(rng, _GREENS, 8)
    arr[line:] = _grass_texture(rng, h - line, w, g)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img, "RGBA")
    d.rectangle([0, 0, w, line * rng.uniform(0.2, 0.45)], fill=_vary_colour(rng, (200, 215, 230), 8))
    for _ in range(int(rng.integers(5, 9))):
        _draw_canopy(d, rng, rng.uniform(0, w), rng.uniform(line * 0.3, line * 0.8), w * rng.uniform(0.08, 0.15))
    _draw_mowing_stripes(d, rng, h, w, line)
    _draw_flower_bed(d, rng, h, w, line)
    _draw_lawn_bench(d, rng, h, w, line)
    return np.asarray(img.convert("RGB"))


# =========================================================================== woods


def _scene_woods(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Dense tree trunks before dark foliage, over ground strewn with fallen leaves."""
    ground = int(h * rng.uniform(0.58, 0.68))
    arr = np.empty((h, w, 3), np.float32)
    arr[:ground] = _texture(rng, ground, w, _pick_colour(rng, _GREENS[1:4], 6), 18, 10, cell=8)
    arr[ground:] = _texture(rng, h - ground, w, _vary_colour(rng, (110, 80, 50), 10), 12, 12, cell=6)
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(60):
        x, y, r = rng.uniform(0, w), rng.uniform(0, ground), w * rng.uniform(0.02, 0.06)
        d.ellipse([x - r, y - r, x + r, y + r], fill=_pick_colour(rng, _GREENS, 18))
    for _ in range(int(rng.integers(6, 11))):
        x, tw = rng.uniform(-10, w), w * rng.uniform(0.03, 0.09)
        bark = _pick_colour(rng, _BARK, 10)
        bottom = ground + h * rng.uniform(0.0, 0.08)
        d.rectangle([x, 0, x + tw, bottom], fill=bark)
        d.rectangle([x + tw * 0.65, 0, x + tw, bottom], fill=_shaded(bark, 0.7))
    leaves = ((190, 110, 40), (160, 70, 30), (210, 170, 60), (120, 80, 40))
    for _ in range(300):
        x, y = rng.uniform(0, w), rng.uniform(ground, h)
        rx, ry = rng.uniform(1.5, 4), rng.uniform(1, 2.5)
        d.ellipse([x - rx, y - ry, x + rx, y + ry], fill=_pick_colour(rng, leaves, 15))
    return np.asarray(img)


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
