"""Scene objects in front of a person: one painter per kind, registered in :data:`OCCLUDERS`.

An occluder painter draws a scene object on the (transparent) occluder layer of size (w, h);
everything it draws hides the person. ``u`` holds uniform numbers in [0, 1) chosen per image
(see :class:`~crgan_lightning.data.synthetic.shots.Occluder`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from PIL import ImageDraw

from .appearance import _CLOTHING_RGB, _HAIR
from .scenes import _BARK, _CARS, _GREENS, _SIGNS, _shaded


def _paint_car(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    top = h * (1 - (0.18 + 0.15 * u[0]))
    reach = w * (0.45 + 0.4 * u[1])
    x0, x1 = (-w * 0.2, reach) if u[2] < 0.5 else (w - reach, w * 1.2)
    body = _CARS[int(u[3] * len(_CARS))]
    d.rounded_rectangle([x0, top, x1, h * 1.1], radius=h * 0.05, fill=body)
    d.rectangle([x0, top + (h - top) * 0.15, x1, top + (h - top) * 0.5], fill=(55, 65, 75))
    d.line([x0, top + (h - top) * 0.7, x1, top + (h - top) * 0.7], fill=_shaded(body, 0.7), width=3)
    wx = x1 - w * 0.3 if u[2] < 0.5 else x0 + w * 0.3
    r = (h - top) * 0.45
    d.ellipse([wx - r, h - r * 0.9, wx + r, h + r * 1.1], fill=(20, 20, 22))


def _paint_bin(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    bw, bh, cx = w * (0.28 + 0.15 * u[0]), h * (0.18 + 0.14 * u[1]), w * (0.15 + 0.7 * u[2])
    col = ((40, 90, 50), (60, 60, 65), (25, 25, 28), (150, 110, 40))[int(u[3] * 4)]
    d.rounded_rectangle([cx - bw / 2, h - bh, cx + bw / 2, h * 1.05], radius=w * 0.03, fill=col)
    d.rectangle([cx - bw * 0.55, h - bh - h * 0.02, cx + bw * 0.55, h - bh + h * 0.01], fill=_shaded(col, 0.7))
    for k in (0.25, 0.5, 0.75):
        x = cx - bw / 2 + bw * k
        d.line([x, h - bh + h * 0.03, x, h], fill=_shaded(col, 0.75), width=2)


def _paint_pole(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    pw, cx = w * (0.06 + 0.06 * u[0]), w * (0.2 + 0.6 * u[1])
    col = ((110, 112, 115), (40, 60, 45), (30, 30, 32))[int(u[2] * 3)]
    d.rectangle([cx - pw / 2, -1, cx + pw / 2, h + 1], fill=col)
    d.rectangle([cx - pw / 4, -1, cx - pw / 8, h + 1], fill=_shaded(col, 1.4))


def _paint_sign(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    _paint_pole(d, (0.2 * u[0], u[1], 0.0), w, h)
    cx, cy = w * (0.2 + 0.6 * u[1]), h * (0.25 + 0.3 * u[2])
    sw, sh = w * (0.3 + 0.2 * u[3]), h * (0.1 + 0.06 * u[4])
    col = _SIGNS[int(u[5] * len(_SIGNS))]
    d.rectangle([cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2], fill=(240, 240, 240))
    d.rectangle([cx - sw / 2 + 3, cy - sh / 2 + 3, cx + sw / 2 - 3, cy + sh / 2 - 3], fill=col)


def _paint_pedestrian(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
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


def _paint_bush(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    cx, span, top = w * (0.2 + 0.6 * u[0]), w * (0.5 + 0.4 * u[1]), h * (1 - (0.2 + 0.12 * u[2]))
    base = _GREENS[int(u[3] * len(_GREENS))]
    n = 5 + int(4 * u[4])
    r = w * 0.17
    for k in range(n):
        t = k / max(n - 1, 1)
        x = cx - span / 2 + span * t
        y = top + r * (0.6 + 0.5 * math.sin(7.0 * t + 10 * u[5]) ** 2)
        tone = 0.8 + 0.4 * ((k * 37 + int(u[6] * 100)) % 7) / 7
        d.ellipse([x - r, y - r, x + r, y + r], fill=_shaded(base, tone))
    d.rectangle([cx - span / 2, top + r * 1.2, cx + span / 2, h + 1], fill=_shaded(base, 0.85))


def _paint_bench(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    y0 = h * (0.6 + 0.12 * u[0])
    wood = ((120, 80, 45), (40, 80, 50), (90, 90, 95))[int(u[1] * 3)]
    x0, x1 = (-w * 0.1, w * (0.6 + 0.5 * u[2])) if u[3] < 0.5 else (w * (0.4 - 0.5 * u[2]), w * 1.1)
    for k in range(3):
        y = y0 + k * h * 0.04
        d.rectangle([x0, y, x1, y + h * 0.025], fill=_shaded(wood, 1.0 - 0.1 * k))
    seat = y0 + h * 0.15
    d.rectangle([x0, seat, x1, seat + h * 0.03], fill=wood)
    for x in (x0 + w * 0.1, x1 - w * 0.14):
        d.rectangle([x, y0, x + w * 0.05, h + 1], fill=_shaded(wood, 0.6))


def _paint_bicycle(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
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


def _paint_trunk(d: ImageDraw.ImageDraw, u: Sequence[float], w: int, h: int) -> None:
    tw, cx = w * (0.12 + 0.1 * u[0]), w * (0.15 + 0.7 * u[1])
    bark = _BARK[int(u[2] * len(_BARK))]
    d.rectangle([cx - tw / 2, -1, cx + tw / 2, h + 1], fill=bark)
    for k in range(4):
        x = cx - tw / 2 + tw * (0.15 + 0.22 * k)
        d.line([x, 0, x + tw * 0.05, h], fill=_shaded(bark, 0.65), width=max(1, int(tw * 0.06)))


OCCLUDERS: dict[str, Callable[[ImageDraw.ImageDraw, Sequence[float], int, int], None]] = {
    "car": _paint_car,
    "bin": _paint_bin,
    "pole": _paint_pole,
    "sign": _paint_sign,
    "pedestrian": _paint_pedestrian,
    "bush": _paint_bush,
    "bench": _paint_bench,
    "bicycle": _paint_bicycle,
    "trunk": _paint_trunk,
}
