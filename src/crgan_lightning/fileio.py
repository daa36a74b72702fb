"""Writing files so that an interrupted run never leaves one that looks complete, and reading
weight files safely.

Every file the library writes (images, masks, plots, exported datasets) goes through
:func:`atomic_write_bytes`: the bytes are written to a hidden ``.NAME.PID.part`` file beside the
target and renamed over it, so a reader sees either the old file, no file, or the whole new
one. The temporary name ends in ``.part``, not in an image extension, so dataset parsers never
mistake a leftover for an image.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import WeightsError

PART_SUFFIX = ".part"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file renamed into place; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{PART_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def encode_image(image: np.ndarray, suffix: str, jpeg_quality: int = 95) -> bytes:
    """Encode a uint8 RGB (H, W, 3) or grayscale (H, W) array as ``.jpg`` or ``.png`` bytes."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise OSError(f"could not encode a {image.shape} image as {suffix}")
    return buf.tobytes()


def atomic_save_image(path: str | os.PathLike, image: np.ndarray, jpeg_quality: int = 95) -> Path:
    """Save a uint8 RGB or grayscale array atomically; the format follows the file's suffix."""
    path = Path(path)
    return atomic_write_bytes(path, encode_image(image, path.suffix, jpeg_quality))


def remove_leftovers(folder: str | os.PathLike) -> int:
    """Delete temporary ``.part`` files an interrupted writer left under ``folder``; returns how many."""
    count = 0
    for tmp in Path(folder).rglob(f".*{PART_SUFFIX}"):
        tmp.unlink()
        count += 1
    return count


def read_state_dict(path: str | os.PathLike, what: str = "weight file") -> dict[str, torch.Tensor]:
    """Read a state dict (``.pth``/``.pt``/``.bin``/``.ckpt`` or ``.safetensors``) without running
    pickled code (``torch.load(weights_only=True)``). A ``{"state_dict": ...}`` or ``{"model": ...}``
    wrapper is unwrapped. A missing, unreadable or non-state-dict file raises
    :class:`~crgan_lightning.errors.WeightsError` naming it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{what} {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, wrong format, pickled objects
        raise WeightsError(f"cannot read {what} {path}: {exc}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{what} {path} does not hold a state dict of tensors")
    return state
