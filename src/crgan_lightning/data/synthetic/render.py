"""Rendering one image and its person mask: the seeded random streams, the cached camera
backgrounds and identity appearances, and :func:`render_sample`.

Every random draw comes from a Generator seeded by (seed, domain code, stream tag, ...), so
each identity / image / camera is independent of the order in which the others are drawn and
of the number of identities asked for.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ...errors import ConfigError
from .appearance import Appearance, sample_appearance
from .arguments import HEIGHT, MIN_HEIGHT, MIN_WIDTH, WIDTH, _check_int, _domain
from .camera import _LUMA, _apply_camera
from .occluders import OCCLUDERS
from .person import _draw_person
from .scenes import SCENES
from .shots import Shot, sample_shot
from .styles import DOMAINS, DomainStyle

# Random stream tags
_STREAM_APPEARANCE = 1
_STREAM_SCHEDULE = 2
_STREAM_SHOT = 3
_STREAM_BACKGROUND = 4
_STREAM_DISTRACTOR_APPEARANCE = 6
_STREAM_DISTRACTOR_SHOT = 7
_STREAM_BYSTANDER_APPEARANCE = 8
_STREAM_MASK = 9
_STREAM_TRUTH = 10


def _domain_code(domain: str) -> int:
    return zlib.crc32(domain.encode("utf-8"))


def _rng(seed: int, domain: str, stream: int, *key: int) -> np.random.Generator:
    """The random stream ``stream`` of ``domain`` for ``key`` (e.g. pid, camera, image number)."""
    return np.random.default_rng([int(seed), _domain_code(domain), stream, *(int(k) for k in key)])


def _muted(bg: np.ndarray, contrast: float, saturation: float, height: int) -> np.ndarray:
    """Scenery as muted as in real footage: local contrast kept at ``contrast`` around a blurred
    copy, colour saturation at ``saturation`` around the luminance."""
    if contrast == 1.0 and saturation == 1.0:
        return bg
    x = bg.astype(np.float32)
    smooth = np.asarray(Image.fromarray(bg).filter(ImageFilter.GaussianBlur(0.15 * height)), np.float32)
    x = smooth + contrast * (x - smooth)
    luma = x @ _LUMA[:, None]
    x = luma + saturation * (x - luma)
    return (np.clip(x, 0, 255) + 0.5).astype(np.uint8)


def _as_style(domain: DomainStyle | str) -> DomainStyle:
    """A domain's style, given as itself or by name."""
    return DOMAINS[domain] if isinstance(domain, str) else domain


@lru_cache(maxsize=256)
def _camera_background(domain: DomainStyle | str, seed: int, cam: int, height: int, width: int,
                       place: int = 0) -> np.ndarray:
    """The scene camera ``cam`` of ``domain`` looks at from spot ``place``, drawn at twice the
    image size plus room to pan, and muted as the domain says."""
    style = _as_style(domain)
    key = (cam, place) if place else (cam,)
    rng = _rng(seed, style.name, _STREAM_BACKGROUND, *key)
    bg = SCENES[style.cameras[cam].scene](rng, int(round(2 * height * 1.15)), 4 * width)
    bg = _muted(bg, style.background_contrast, style.background_saturation, 2 * height)
    bg.setflags(write=False)
    return bg


@lru_cache(maxsize=8192)
def _appearance(people: str, seed: int, pid: int, distractor_index: int = -1, dark_bias: float = 0.0,
                stream: int = _STREAM_APPEARANCE) -> Appearance:
    """The look of identity ``pid`` of ``people``, or of distractor number ``distractor_index``
    when >= 0 (``stream`` picks another set of people, e.g. the passers-by)."""
    if distractor_index >= 0:
        return sample_appearance(_rng(seed, people, _STREAM_DISTRACTOR_APPEARANCE, distractor_index), dark_bias)
    return sample_appearance(_rng(seed, people, stream, pid), dark_bias)


# =========================================================================== one image


def _background_window(domain: DomainStyle, seed: int, shot: Shot, height: int, width: int) -> Image.Image:
    """The shot's (2 * height, 2 * width) crop of its camera's background at its place."""
    ch, cw = 2 * height, 2 * width
    bg = _camera_background(domain, seed, shot.cam, height, width, shot.place)
    oy = int(round(shot.crop[1] * (bg.shape[0] - ch)))
    ox = int(round(shot.crop[0] * (bg.shape[1] - cw)))
    return Image.fromarray(np.ascontiguousarray(bg[oy:oy + ch, ox:ox + cw]))


def _draw_contact_shadow(canvas: Image.Image, app: Appearance, shot: Shot) -> None:
    """A soft shadow under the feet (part of the background, not of the person)."""
    cw, ch = canvas.size
    feet = shot.feet_y * ch
    cx = (0.5 + shot.dx) * cw
    P = shot.person_height * app.height_scale * ch
    shadow = [cx - 0.16 * P, feet - 0.02 * P, cx + 0.16 * P, feet + 0.025 * P]
    ImageDraw.Draw(canvas, "RGBA").ellipse(shadow, fill=(0, 0, 0, 70))


def _occluder_layer(shot: Shot, body: np.ndarray, cw: int, ch: int) -> tuple[Image.Image | None, np.ndarray]:
    """The shot's occluder layer and the visible part of the person's pixels ``body`` (boolean,
    canvas size); no occluder when the shot has none or when it would hide most of the person."""
    if shot.occluder is None:
        return None, body
    occ_layer = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    OCCLUDERS[shot.occluder.kind](ImageDraw.Draw(occ_layer), shot.occluder.u, cw, ch)
    hidden = np.asarray(occ_layer.getchannel("A")) > 0
    visible = body & ~hidden
    if visible.sum() < 0.5 * body.sum():  # never hide most of the person
        return None, body
    return occ_layer, visible


def _half_size_mask(visible: np.ndarray) -> np.ndarray:
    """The boolean canvas mask reduced to the image size, as uint8 in {0, 255}."""
    mask2 = Image.fromarray((visible * np.uint8(255)).astype(np.uint8))
    return np.where(np.asarray(mask2.reduce(2)) >= 128, 255, 0).astype(np.uint8)


def _draw_bystander(canvas: Image.Image, style: DomainStyle, seed: int, shot: Shot, dark_bias: float) -> np.ndarray:
    """Paint the shot's passer-by (behind the person) and return their pixels (boolean, canvas size)."""
    cw, ch = canvas.size
    if shot.bystander is None:
        return np.zeros((ch, cw), bool)
    app = _appearance(style.name, seed, shot.bystander_id, -1, dark_bias, _STREAM_BYSTANDER_APPEARANCE)
    _draw_contact_shadow(canvas, app, shot.bystander)
    layer = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    _draw_person(layer, app, shot.bystander)
    canvas.paste(layer, (0, 0), layer)
    return np.asarray(layer.getchannel("A")) > 0


def _render(domain: DomainStyle | str, seed: int, app: Appearance, shot: Shot, height: int, width: int,
            person: bool = True, dark_bias: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one image of ``app`` in ``domain``'s camera and context (a style, or a domain's name):
    (H, W, 3) uint8 RGB, the person's mask and the mask of everything else in front (passer-by,
    occluder), both (H, W) uint8 in {0, 255}."""
    style = _as_style(domain)
    ch, cw = 2 * height, 2 * width
    canvas = _background_window(style, seed, shot, height, width)
    others = _draw_bystander(canvas, style, seed, shot, dark_bias)
    _draw_contact_shadow(canvas, app, shot)
    layer = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    _draw_person(layer, app, shot)
    alpha = np.asarray(layer.getchannel("A")) > 0
    occ_layer, visible = _occluder_layer(shot, alpha, cw, ch)
    if person:
        canvas.paste(layer, (0, 0), layer)
    if occ_layer is not None:
        canvas.paste(occ_layer, (0, 0), occ_layer)
        others = others | (np.asarray(occ_layer.getchannel("A")) > 0)
    img = np.asarray(canvas.reduce(2))
    mask = _half_size_mask(visible)
    context = _half_size_mask(others & ~visible)
    img = _apply_camera(img, style.cameras[shot.cam], shot.light, shot.noise_seed, shot.tone)
    return img, mask, context


def render_sample(domain: str, pid: int, cam: int, index: int = 0, seed: int = 0, height: int = HEIGHT,
                  width: int = WIDTH, person: bool = True) -> tuple[np.ndarray, np.ndarray]:
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
    img, mask, _ = _render(domain, seed, _appearance(domain, seed, pid), shot, height, width, person)
    return img, mask
