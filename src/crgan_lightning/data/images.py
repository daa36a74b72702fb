"""Reading images and masks from disk with clear errors.

Images come back as uint8 RGB arrays of shape (H, W, 3), whatever their stored mode
(grayscale, RGBA and palette files are converted to RGB); masks as float32 arrays (H, W) in
[0, 1]. A missing, truncated or undecodable file raises
:class:`~crgan_lightning.errors.ImageReadError` naming the path.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import ImageReadError


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to a uint8 RGB array (H, W, 3)."""
    data = np.fromfile(str(path), dtype=np.uint8) if os.path.isfile(path) else None
    if data is None or data.size == 0:
        raise ImageReadError(f"cannot read image {path}: the file is missing or empty")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # grayscale / RGBA / palette -> 3-channel BGR
    if img is None:
        raise ImageReadError(f"cannot read image {path}: not a decodable image (corrupt or unsupported format)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Decode a mask file to float32 (H, W) in [0, 1]: an 8-bit single-channel image, 0 = background,
    255 = person. An RGB(A) file whose colour channels are equal is read as its grey channel; a
    colour mask (a class-colour segmentation map, say) or a 16-bit file is refused, since no grey
    level of it is a person probability."""
    data = np.fromfile(str(path), dtype=np.uint8) if os.path.isfile(path) else None
    if data is None or data.size == 0:
        raise ImageReadError(f"cannot read mask {path}: the file is missing or empty")
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ImageReadError(f"cannot read mask {path}: not a decodable image")
    if mask.dtype != np.uint8:
        raise ImageReadError(f"mask {path} is {mask.dtype}; expected an 8-bit single-channel PNG "
                             "(0 background, 255 person)")
    if mask.ndim == 3:
        colour = mask[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise ImageReadError(f"mask {path} has {mask.shape[2]} channels of different values (a colour image); "
                                 "expected a single-channel PNG (0 background, 255 person)")
        mask = colour[..., 0]
    return mask.astype(np.float32) / 255.0
