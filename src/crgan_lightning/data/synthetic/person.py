"""Drawing a person: the body layout of one shot (:class:`_Figure`), the joints of legs and
arms, and the parts drawn back to front for a side, front or back view."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from .appearance import RGB, Appearance
from .scenes import _shaded
from .shots import Shot

Point = tuple[float, float]

_FAR = 0.78  # shade of the far limbs in side views


# =========================================================================== drawing helpers


def _limb(d: ImageDraw.ImageDraw, a: Point, b: Point, wa: float, wb: float, fill: RGB) -> None:
    """A tapered segment from ``a`` (width ``wa``) to ``b`` (width ``wb``) with round ends."""
    (x0, y0), (x1, y1) = a, b
    length = math.hypot(x1 - x0, y1 - y0) or 1e-6
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    d.polygon([(x0 + nx * wa / 2, y0 + ny * wa / 2), (x1 + nx * wb / 2, y1 + ny * wb / 2),
               (x1 - nx * wb / 2, y1 - ny * wb / 2), (x0 - nx * wa / 2, y0 - ny * wa / 2)], fill=fill)
    d.ellipse([x0 - wa / 2, y0 - wa / 2, x0 + wa / 2, y0 + wa / 2], fill=fill)
    d.ellipse([x1 - wb / 2, y1 - wb / 2, x1 + wb / 2, y1 + wb / 2], fill=fill)


def _ordered_box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    """The box spanned by two corners given in any order, as PIL wants it (x0 <= x1, y0 <= y1)."""
    return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


@lru_cache(maxsize=8)
def _pixel_centres(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only (h, w) arrays of the y and x coordinates of pixel centres."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    ys.setflags(write=False)
    xs.setflags(write=False)
    return ys, xs


def _pattern(app: Appearance, box: tuple[int, int, int, int], top: float, bottom: float, cx: float,
             body: float) -> Image.Image:
    """The upper-garment fabric over the canvas region ``box`` = (x0, y0, x1, y1), to be pasted
    through the torso shape."""
    x0, y0, x1, y1 = box
    if app.pattern == "solid":
        return Image.new("RGB", (x1 - x0, y1 - y0), app.upper)
    ys, xs = _pixel_centres(y1 - y0, x1 - x0)
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


# =========================================================================== layout and joints


@dataclass(frozen=True)
class _Figure:
    """Where the parts of one person go on the (w, h) canvas, in pixels.

    ``height`` (P in the formulas) is the person's height; every other size is a fraction of it.
    ``facing`` is the direction the person faces in x (+1 right, -1 left, 0 in front and back
    views); ``left_dir`` the image x-direction of the person's left (+1 seen from the front, -1
    from the back). The ``*_w`` are half widths of the torso at the shoulders, waist, hips and
    hem; ``head_*`` the centre and radii of the head.
    """

    w: int
    h: int
    view: str
    side: bool
    facing: int
    left_dir: int
    height: float
    centre_x: float
    top: float
    feet: float
    width_scale: float
    limb_scale: float  # sqrt(width_scale): limbs thicken less than the body
    sin_phase: float  # sine of the walking phase
    shoulder_y: float
    waist_y: float
    hip_y: float
    hem_y: float
    shoulder_w: float
    waist_w: float
    hip_w: float
    hem_w: float
    head_x: float
    head_y: float
    head_rx: float
    head_ry: float


class _Leg(NamedTuple):
    hip: Point
    knee: Point
    ankle: Point
    shade: float


class _Arm(NamedTuple):
    shoulder: Point
    elbow: Point
    wrist: Point
    shade: float
    image_side: int  # -1 / +1: the arm's side of the body in the image (front / back views)


def _layout(app: Appearance, shot: Shot, w: int, h: int) -> _Figure:
    """The body layout of ``app`` framed as ``shot`` on a (w, h) canvas."""
    feet = shot.feet_y * h
    P = min(shot.person_height * app.height_scale * h, feet - 0.01 * h) if shot.feet_y <= 1.0 else \
        shot.person_height * app.height_scale * h
    cx = (0.5 + shot.dx) * w
    top = feet - P
    ws = app.width_scale
    side = shot.view in ("left", "right")
    f = 1 if shot.view == "right" else -1 if shot.view == "left" else 0
    hw = (0.075 if side else 0.105) * P * ws
    return _Figure(
        w=w, h=h, view=shot.view, side=side, facing=f, left_dir=1 if shot.view == "front" else -1,
        height=P, centre_x=cx, top=top, feet=feet, width_scale=ws, limb_scale=math.sqrt(ws),
        sin_phase=math.sin(shot.phase),
        shoulder_y=top + 0.18 * P, waist_y=top + 0.42 * P, hip_y=top + 0.50 * P,
        hem_y=top + (0.66 if app.coat else 0.53) * P,
        shoulder_w=(0.075 if side else 0.125) * P * ws, waist_w=(0.068 if side else 0.10) * P * ws,
        hip_w=hw, hem_w=hw * (1.15 if app.coat else 1.0),
        head_x=cx + f * 0.012 * P, head_y=top + 0.075 * P, head_rx=0.058 * P, head_ry=0.07 * P,
    )


def _leg_joints(fig: _Figure, shot: Shot) -> list[_Leg]:
    """Hip, knee and ankle of both legs, far leg first in side views."""
    P, cx, f, sinp = fig.height, fig.centre_x, fig.facing, fig.sin_phase
    legs = []
    for sgn in ((1, -1) if fig.side else (-1, 1)):
        if fig.side:
            hip = (cx - f * 0.01 * P, fig.hip_y)
            fx = cx + f * sgn * shot.stride * P * sinp
            lift = max(0.0, -sgn * sinp) * 0.035 * P
            shade = _FAR if sgn == 1 else 1.0
        else:
            hip = (cx + sgn * 0.05 * P * fig.width_scale, fig.hip_y)
            fx = hip[0] + sgn * (0.01 + shot.spread) * P
            lift = max(0.0, sgn * sinp) * 0.025 * P
            shade = 1.0
        ankle = (fx, fig.feet - 0.03 * P - lift)
        knee = ((hip[0] + fx) / 2 + f * 0.02 * P, (hip[1] + ankle[1]) / 2)
        legs.append(_Leg(hip, knee, ankle, shade))
    return legs


def _side_arm(fig: _Figure, shot: Shot, k: int, sgn: int) -> _Arm:
    """Arm ``k`` in a side view, swinging against the legs (``sgn`` = 1: the far arm)."""
    P, cx, f = fig.height, fig.centre_x, fig.facing
    l1, l2 = 0.16 * P, 0.15 * P
    sh = (cx - f * 0.01 * P, fig.shoulder_y + 0.03 * P)
    a = math.radians(shot.swing) * sgn * -fig.sin_phase * f
    e = math.radians(shot.elbow[k])
    el = (sh[0] + l1 * math.sin(a), sh[1] + l1 * math.cos(a))
    b = a + f * e
    wr = (el[0] + l2 * math.sin(b), el[1] + l2 * math.cos(b))
    return _Arm(sh, el, wr, _FAR if sgn == 1 else 1.0, sgn)


def _front_arm(fig: _Figure, shot: Shot, k: int, sgn: int) -> _Arm:
    """Arm ``k`` in a front or back view, held out from the body on image side ``sgn``."""
    P = fig.height
    l1, l2 = 0.16 * P, 0.15 * P
    sh = (fig.centre_x + sgn * (fig.shoulder_w - 0.03 * P), fig.shoulder_y + 0.025 * P)
    a = math.radians(shot.abduct[k])
    e = math.radians(shot.elbow[k])
    l1 *= 1.0 - 0.12 * abs(math.sin(math.radians(shot.swing)) * fig.sin_phase)
    el = (sh[0] + sgn * l1 * math.sin(a), sh[1] + l1 * math.cos(a))
    b = a - 0.6 * e
    l2 *= math.cos(0.7 * e)
    wr = (el[0] + sgn * l2 * math.sin(b), el[1] + l2 * math.cos(b))
    return _Arm(sh, el, wr, 1.0, sgn)


def _arm_joints(fig: _Figure, shot: Shot) -> list[_Arm]:
    """Shoulder, elbow and wrist of both arms, far arm first in side views."""
    arm = _side_arm if fig.side else _front_arm
    return [arm(fig, shot, k, sgn) for k, sgn in enumerate((1, -1) if fig.side else (-1, 1))]


# =========================================================================== body parts


def _draw_shoe(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure, ankle: Point, shade: float) -> None:
    P, f = fig.height, fig.facing
    fx, fy = ankle
    shoe = _shaded(app.shoes, shade)
    if fig.side:
        d.ellipse(_ordered_box(fx - f * 0.03 * P, fy - 0.005 * P, fx + f * 0.065 * P, fy + 0.035 * P), fill=shoe)
    else:
        d.ellipse([fx - 0.036 * P, fy - 0.005 * P, fx + 0.036 * P, fy + 0.035 * P], fill=shoe)


def _draw_leg(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure, leg: _Leg) -> None:
    """Shin, thigh and shoe, in the colours of the lower garment and what is worn under it."""
    P, ws, sq = fig.height, fig.width_scale, fig.limb_scale
    hip, knee, ankle, shade = leg
    lw0, lw1, lw2 = 0.085 * P * ws, 0.065 * P * ws, 0.045 * P * sq
    if app.lower_kind == "trousers":
        thigh = shin = app.lower
    elif app.lower_kind == "shorts":
        thigh, shin = app.lower, app.legwear
    else:
        thigh = shin = app.legwear
    _limb(d, knee, ankle, lw1 * 0.9, lw2, _shaded(shin, shade))
    _limb(d, hip, knee, lw0 * (1.08 if app.lower_kind == "shorts" else 1.0), lw1, _shaded(thigh, shade))
    _draw_shoe(d, app, fig, ankle, shade)


def _draw_arm(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure, arm: _Arm) -> None:
    """Forearm, upper arm (sleeve) and hand."""
    P, sq = fig.height, fig.limb_scale
    sh, el, wr, shade, _ = arm
    aw0, aw1 = 0.058 * P * sq, 0.046 * P * sq
    sleeve = _shaded(app.upper, shade)
    fore = sleeve if app.long_sleeves else _shaded(app.skin, shade)
    _limb(d, el, wr, aw1, aw1 * 0.9, fore)
    _limb(d, sh, el, aw0, aw1, sleeve)
    r = 0.024 * P
    hx, hy = wr[0] + (wr[0] - el[0]) * 0.15, wr[1] + (wr[1] - el[1]) * 0.15
    d.ellipse([hx - r, hy - r, hx + r, hy + r], fill=_shaded(app.skin, shade))


def _torso_outline(fig: _Figure) -> list[Point]:
    P, cx, f = fig.height, fig.centre_x, fig.facing
    sw, ww, hwb = fig.shoulder_w, fig.waist_w, fig.hem_w
    s_y, w_y, t_y = fig.shoulder_y, fig.waist_y, fig.hem_y
    if fig.side:
        return [(cx - sw, s_y - 0.02 * P), (cx + sw, s_y - 0.02 * P), (cx + ww + f * 0.01 * P, w_y),
                (cx + hwb, t_y), (cx - hwb, t_y), (cx - ww + f * 0.01 * P, w_y)]
    return [(cx - sw * 0.8, s_y - 0.025 * P), (cx + sw * 0.8, s_y - 0.025 * P),
            (cx + sw, s_y + 0.02 * P), (cx + ww, w_y), (cx + hwb, t_y), (cx - hwb, t_y),
            (cx - ww, w_y), (cx - sw, s_y + 0.02 * P)]


def _draw_torso(layer: Image.Image, app: Appearance, fig: _Figure) -> None:
    """The upper garment: its fabric pasted onto ``layer`` through the torso outline."""
    pts = _torso_outline(fig)
    x0 = max(0, int(min(p[0] for p in pts)) - 1)
    y0 = max(0, int(min(p[1] for p in pts)) - 1)
    x1 = min(fig.w, int(max(p[0] for p in pts)) + 2)
    y1 = min(fig.h, int(max(p[1] for p in pts)) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    shape = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(shape).polygon([(x - x0, y - y0) for x, y in pts], fill=255)
    fabric = _pattern(app, (x0, y0, x1, y1), fig.shoulder_y, fig.hem_y, fig.centre_x, fig.height)
    layer.paste(fabric, (x0, y0), shape)


def _draw_lower_garment(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure) -> None:
    """The top of trousers or shorts between waist and hips, or a skirt."""
    P, cx, top = fig.height, fig.centre_x, fig.top
    ww, hw, w_y = fig.waist_w, fig.hip_w, fig.waist_y
    if app.lower_kind == "skirt":
        d.polygon([(cx - ww, w_y), (cx + ww, w_y), (cx + hw * 1.4, top + 0.70 * P),
                   (cx - hw * 1.4, top + 0.70 * P)], fill=app.lower)
    else:
        d.polygon([(cx - ww, w_y), (cx + ww, w_y), (cx + hw, fig.hip_y + 0.03 * P),
                   (cx - hw, fig.hip_y + 0.03 * P)], fill=app.lower)


def _draw_neck(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure) -> None:
    P, cx = fig.height, fig.centre_x
    d.rectangle([cx - 0.024 * P, fig.head_y, cx + 0.024 * P, fig.shoulder_y + 0.01 * P], fill=app.skin)


def _draw_hat(d: ImageDraw.ImageDraw, hat: RGB, fig: _Figure) -> None:
    """A cap of colour ``hat``, its brim towards the camera or the facing direction."""
    hx, hy, rx, ry, f = fig.head_x, fig.head_y, fig.head_rx, fig.head_ry, fig.facing
    brim = _shaded(hat, 0.8)
    d.pieslice([hx - rx * 1.12, hy - ry * 1.2, hx + rx * 1.12, hy + ry * 0.55], 180, 360, fill=hat)
    if fig.view == "front":
        d.rectangle([hx - rx * 1.15, hy - ry * 0.38, hx + rx * 1.15, hy - ry * 0.18], fill=brim)
    elif fig.side:
        d.rectangle(_ordered_box(hx, hy - ry * 0.4, hx + f * rx * 1.7, hy - ry * 0.22), fill=brim)


def _draw_head(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure) -> None:
    """Neck, hair, the face where the view shows it, and the hat."""
    _draw_neck(d, app, fig)
    hx, hy, rx, ry, f = fig.head_x, fig.head_y, fig.head_rx, fig.head_ry, fig.facing
    hair = app.hair if app.hair_style != "shaved" else _shaded(
        tuple((a + b) / 2 for a, b in zip(app.hair, app.skin)), 1.0)
    d.ellipse([hx - rx * 1.06, hy - ry * 1.08, hx + rx * 1.06, hy + ry * 0.95], fill=hair)
    if fig.view == "front":
        cut = {"short": 0.7, "long": 0.62, "shaved": 0.95}[app.hair_style]
        d.ellipse([hx - rx * 0.92, hy - ry * cut, hx + rx * 0.92, hy + ry], fill=app.skin)
    elif fig.side:
        fx = hx + f * rx * 0.18
        d.ellipse([fx - rx * 0.82, hy - ry * 0.7, fx + rx * 0.82, hy + ry], fill=app.skin)
        d.ellipse(_ordered_box(hx - f * rx * 1.05, hy - ry * 1.06, hx - f * rx * 0.05, hy + ry * 0.5), fill=hair)
    if app.hat is not None:
        _draw_hat(d, app.hat, fig)


def _draw_long_hair(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure, over_back: bool) -> None:
    """Long hair falling to the shoulders: behind the body, or ``over_back`` in back views."""
    if app.hair_style != "long":
        return
    P, f, s_y = fig.height, fig.facing, fig.shoulder_y
    hx, hy, rx = fig.head_x, fig.head_y, fig.head_rx
    if over_back:
        d.rounded_rectangle([hx - rx * 1.05, hy, hx + rx * 1.05, s_y + 0.12 * P], radius=rx * 0.5,
                            fill=app.hair)
    elif fig.side:
        d.rectangle(_ordered_box(hx - f * rx * 1.05, hy, hx - f * rx * 0.1, s_y + 0.08 * P), fill=app.hair)
    else:
        d.rectangle([hx - rx * 1.12, hy, hx + rx * 1.12, s_y + 0.06 * P], fill=app.hair)


# =========================================================================== carried things


def _draw_shoulder_bag(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure) -> None:
    """A bag at the hip on the carrying side, its strap across the body."""
    P, cx, f, s_y, top = fig.height, fig.centre_x, fig.facing, fig.shoulder_y, fig.top
    bag_top, bag_bot = top + 0.45 * P, top + 0.58 * P
    dark = _shaded(app.carry_colour, 0.7)
    carry_x = cx + app.carry_side * fig.left_dir * (fig.hem_w + 0.035 * P)  # front / back views
    bx = carry_x if not fig.side else cx - f * 0.02 * P
    other = (cx - (bx - cx) * 0.8, s_y - 0.01 * P) if not fig.side else (cx - f * 0.02 * P, s_y)
    d.line([other, (bx, bag_top)], fill=dark, width=max(1, int(0.016 * P)))
    d.rounded_rectangle([bx - 0.05 * P, bag_top, bx + 0.05 * P, bag_bot], radius=0.01 * P,
                        fill=app.carry_colour)
    d.line([bx - 0.05 * P, bag_top + 0.03 * P, bx + 0.05 * P, bag_top + 0.03 * P], fill=dark,
           width=max(1, int(0.008 * P)))


def _draw_handbag(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure, arms: list[_Arm]) -> None:
    """A handbag hanging from the wrist of the carrying arm (the near arm in side views)."""
    P = fig.height
    dark = _shaded(app.carry_colour, 0.7)
    arm = next((a for a in arms if a.image_side == app.carry_side * fig.left_dir), arms[-1]) \
        if not fig.side else arms[-1]
    wx, wy = arm.wrist
    d.line([(wx - 0.02 * P, wy + 0.04 * P), (wx, wy), (wx + 0.02 * P, wy + 0.04 * P)], fill=dark,
           width=max(1, int(0.01 * P)))
    d.rounded_rectangle([wx - 0.04 * P, wy + 0.035 * P, wx + 0.04 * P, wy + 0.11 * P], radius=0.008 * P,
                        fill=app.carry_colour)


def _draw_side_backpack(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure) -> None:
    P, cx, f, sw = fig.height, fig.centre_x, fig.facing, fig.shoulder_w
    d.rounded_rectangle(_ordered_box(cx - f * (sw * 0.6), fig.shoulder_y, cx - f * (sw + 0.09 * P),
                                     fig.top + 0.46 * P),
                        radius=0.02 * P, fill=app.carry_colour)


def _draw_backpack_behind_body(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure) -> None:
    """In front views, the edges of the backpack showing around the body."""
    P, cx, sw = fig.height, fig.centre_x, fig.shoulder_w
    d.rounded_rectangle([cx - sw * 1.08, fig.shoulder_y - 0.005 * P, cx + sw * 1.08, fig.top + 0.46 * P],
                        radius=0.02 * P, fill=app.carry_colour)


def _draw_backpack_straps(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure) -> None:
    P, cx, sw, s_y = fig.height, fig.centre_x, fig.shoulder_w, fig.shoulder_y
    dark = _shaded(app.carry_colour, 0.7)
    for sgn in (-1, 1):
        d.line([(cx + sgn * sw * 0.55, s_y - 0.02 * P), (cx + sgn * sw * 0.62, fig.top + 0.40 * P)],
               fill=dark, width=max(1, int(0.025 * P)))


def _draw_backpack_on_back(d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure) -> None:
    P, cx, top = fig.height, fig.centre_x, fig.top
    dark = _shaded(app.carry_colour, 0.7)
    bw = 0.10 * P * fig.width_scale
    d.rounded_rectangle([cx - bw, fig.shoulder_y + 0.005 * P, cx + bw, top + 0.47 * P], radius=0.025 * P,
                        fill=app.carry_colour)
    d.rounded_rectangle([cx - bw * 0.7, top + 0.36 * P, cx + bw * 0.7, top + 0.45 * P],
                        radius=0.01 * P, fill=dark)


# =========================================================================== whole person, back to front


def _draw_side_view(layer: Image.Image, d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure,
                    legs: list[_Leg], arms: list[_Arm]) -> None:
    _draw_arm(d, app, fig, arms[0])
    _draw_leg(d, app, fig, legs[0])
    _draw_leg(d, app, fig, legs[1])
    _draw_lower_garment(d, app, fig)
    if app.carry == "backpack":
        _draw_side_backpack(d, app, fig)
    _draw_long_hair(d, app, fig, over_back=False)
    _draw_torso(layer, app, fig)
    _draw_head(d, app, fig)
    if app.carry == "bag":
        _draw_shoulder_bag(d, app, fig)
    _draw_arm(d, app, fig, arms[1])
    if app.carry == "handbag":
        _draw_handbag(d, app, fig, arms)


def _draw_front_or_back_view(layer: Image.Image, d: ImageDraw.ImageDraw, app: Appearance, fig: _Figure,
                             legs: list[_Leg], arms: list[_Arm]) -> None:
    front = fig.view == "front"
    if front and app.carry == "backpack":
        _draw_backpack_behind_body(d, app, fig)
    if front:
        _draw_long_hair(d, app, fig, over_back=False)
    for leg in legs:
        _draw_leg(d, app, fig, leg)
    _draw_lower_garment(d, app, fig)
    _draw_torso(layer, app, fig)
    if not front:
        _draw_neck(d, app, fig)
    for arm in arms:
        _draw_arm(d, app, fig, arm)
    _draw_head(d, app, fig)
    if not front:
        _draw_long_hair(d, app, fig, over_back=True)
    if app.carry == "backpack":
        if front:
            _draw_backpack_straps(d, app, fig)
        else:
            _draw_backpack_on_back(d, app, fig)
    elif app.carry == "bag":
        _draw_shoulder_bag(d, app, fig)
    elif app.carry == "handbag":
        _draw_handbag(d, app, fig, arms)


def _draw_person(layer: Image.Image, app: Appearance, shot: Shot) -> None:
    """Draw a pedestrian on the transparent RGBA ``layer`` (every drawn pixel is opaque)."""
    w, h = layer.size
    fig = _layout(app, shot, w, h)
    legs, arms = _leg_joints(fig, shot), _arm_joints(fig, shot)
    d = ImageDraw.Draw(layer)
    if fig.side:
        _draw_side_view(layer, d, app, fig, legs, arms)
    else:
        _draw_front_or_back_view(layer, d, app, fig, legs, arms)
