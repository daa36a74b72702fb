"""How a camera renders a clean image: colour tone, light, optics (vignette, blur) and sensor
noise, as set by its :class:`~crgan_lightning.data.synthetic.styles.CameraStyle`."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

from .styles import CameraStyle

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@lru_cache(maxsize=8)
def _squared_radius(h: int, w: int) -> np.ndarray:
    """Read-only (h, w, 1) squared distance of each pixel from the image centre (1 at the corners)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((ys + 0.5) / h - 0.5) ** 2 * 2 + ((xs + 0.5) / w - 0.5) ** 2 * 2
    r2.setflags(write=False)
    return r2[..., None]


def _colour_matrix(cam: CameraStyle) -> np.ndarray:
    """The 3 x 3 matrix applying the camera's saturation around the luminance, then its gains."""
    s = cam.saturation
    return np.diag(np.asarray(cam.gains, np.float32)) @ (
        s * np.eye(3, dtype=np.float32) + (1 - s) * np.ones((3, 1), np.float32) * _LUMA[None, :])


def _tone(img: np.ndarray, cam: CameraStyle, light: float,
          tone: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Colour, illumination (times the image's ``light`` and per-channel ``tone``), gamma, haze
    and vignette: RGB uint8 in, float32 in [0, 1] out."""
    h, w = img.shape[:2]
    matrix = np.diag(np.asarray(tone, np.float32)) @ _colour_matrix(cam)
    x = img.astype(np.float32) / 255.0
    x = x @ matrix.T.astype(np.float32)
    x *= cam.brightness * light
    np.clip(x, 0.0, 1.0, out=x)
    if cam.gamma != 1.0:
        x **= cam.gamma
    if cam.haze:
        x = x * (1 - cam.haze) + cam.haze * np.asarray(cam.haze_colour, np.float32)
    if cam.vignette:
        x *= 1.0 - cam.vignette * _squared_radius(h, w)
    return x


def _add_noise(y: np.ndarray, cam: CameraStyle, noise_seed: int) -> np.ndarray:
    """Per-channel plus grey sensor noise of the camera's std, drawn from ``noise_seed``."""
    h, w = y.shape[:2]
    rng = np.random.default_rng(noise_seed)
    return y + rng.standard_normal((h, w, 3), dtype=np.float32) * cam.noise \
        + rng.standard_normal((h, w, 1), dtype=np.float32) * (cam.noise * 0.5)


def _lower_resolution(out: Image.Image, resolution: float) -> Image.Image:
    """The image as a sensor of ``resolution`` times its size sees it, scaled back up."""
    if resolution >= 1.0:
        return out
    w, h = out.size
    small = out.resize((max(1, round(w * resolution)), max(1, round(h * resolution))), Image.BILINEAR)
    return small.resize((w, h), Image.BILINEAR)


def _apply_camera(img: np.ndarray, cam: CameraStyle, light: float, noise_seed: int,
                  tone: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Render a clean RGB uint8 image as camera ``cam`` sees it (tone, light, resolution, optics, noise)."""
    h = img.shape[0]
    x = _tone(img, cam, light, tone)
    out = _lower_resolution(Image.fromarray((np.clip(x, 0, 1) * 255.0 + 0.5).astype(np.uint8)), cam.resolution)
    if cam.blur > 0:
        out = out.filter(ImageFilter.GaussianBlur(cam.blur * h / 128.0))
    y = np.asarray(out, np.float32)
    if cam.noise > 0:
        y = _add_noise(y, cam, noise_seed)
    return (np.clip(y, 0, 255) + 0.5).astype(np.uint8)
