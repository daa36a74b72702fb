"""Albumentations pipelines that turn a decoded image and its mask into tensors.

Both pipelines end in the library's one image convention: an RGB float tensor (3, H, W) in
[-1, 1]; the mask comes out as a float tensor (1, H, W) in [0, 1], transformed with exactly the
same geometry as the image (resize, flip, pad and crop are applied to both in one call).

Training: resize -> horizontal flip -> zero-pad and random crop back -> random erasing
(erasing touches the image only: the mask still says where the person is).
Testing: resize.

:func:`random_erasing` is the same erasing on a batch tensor, for training code that must erase
after another step: the re-id module erases after the rendering callback has used the clean
source images (the generator was trained on unerased persons).
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from ..errors import ConfigError
from .keys import IMAGE, MASK


def build_transforms(
    height: int,
    width: int,
    train: bool,
    flip_p: float = 0.5,
    pad: int = 10,
    erasing_p: float = 0.5,
) -> A.Compose:
    """The albumentations pipeline for training (``train=True``) or testing.

    ``pad`` pixels of zero padding on every side before the random crop (0 disables it);
    ``erasing_p`` is the probability of random erasing (Zhong et al.) with random pixel values.
    """
    if height < 8 or width < 8:
        raise ConfigError(f"image size {height}x{width} is too small; expected at least 8x8")
    for name, p in (("flip_p", flip_p), ("erasing_p", erasing_p)):
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"{name}={p} is not a probability; expected a value in [0, 1]")
    if pad < 0:
        raise ConfigError(f"pad={pad} must be >= 0")
    ops: list = [A.Resize(height, width, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_LINEAR)]
    if train:
        if flip_p > 0:
            ops.append(A.HorizontalFlip(p=flip_p))
        if pad > 0:
            ops += [
                A.PadIfNeeded(min_height=height + 2 * pad, min_width=width + 2 * pad,
                              border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
                A.RandomCrop(height, width),
            ]
        if erasing_p > 0:
            ops.append(A.Erasing(scale=(0.02, 0.4), ratio=(0.3, 3.3), fill="random", p=erasing_p))
    ops += [A.Normalize(mean=0.5, std=0.5, max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(ops, strict=True)


def _random_parts(pipeline) -> list:
    """The pipeline and every transform in it: each holds its own random generators."""
    parts = [pipeline]
    for transform in getattr(pipeline, "transforms", []):
        parts += _random_parts(transform)
    return parts


def pipeline_random_state(pipeline: A.Compose) -> list:
    """The state of every random generator of an albumentations pipeline (for checkpoints)."""
    return [(part.random_generator.bit_generator.state, part.py_random.getstate())
            for part in _random_parts(pipeline)]


def set_pipeline_random_state(pipeline: A.Compose, state: list) -> None:
    """Restore what :func:`pipeline_random_state` returned (the same pipeline layout)."""
    parts = _random_parts(pipeline)
    if len(parts) != len(state):
        raise ConfigError(f"augmentation state of {len(state)} transforms does not fit a pipeline of {len(parts)}")
    for part, (numpy_state, python_state) in zip(parts, state):
        part.random_generator.bit_generator.state = numpy_state
        part.py_random.setstate(python_state)


def apply_transforms(pipeline: A.Compose, image: np.ndarray, mask: np.ndarray | None) -> dict[str, torch.Tensor]:
    """Run ``pipeline`` on a uint8 RGB image (H, W, 3) and an optional float mask (H, W).

    Returns ``{"image": (3, h, w) float in [-1, 1]}`` plus ``"mask": (1, h, w) float in [0, 1]``
    when a mask was given.
    """
    if mask is None:
        out = pipeline(image=image)
        return {IMAGE: out["image"].float()}
    if mask.shape[:2] != image.shape[:2]:
        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    out = pipeline(image=image, mask=mask.astype(np.float32))
    return {IMAGE: out["image"].float(), MASK: out["mask"].float().clamp_(0, 1).unsqueeze(0)}


def random_erasing(
    images: torch.Tensor,
    p: float,
    scale: tuple[float, float] = (0.02, 0.4),
    ratio: tuple[float, float] = (0.3, 3.3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random erasing (Zhong et al.) of a batch: each image (B, C, H, W), with probability ``p``,
    gets one rectangle of ``scale`` x its area and aspect ratio (h / w) in ``ratio`` (log-uniform)
    filled with uniform noise in [-1, 1], the value range of the library's images. Returns a new
    tensor; ``generator`` (a CPU ``torch.Generator``) makes the draws reproducible (the noise of
    a batch on a GPU comes from that device's global generator)."""
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"erasing_p={p} is not a probability; expected a value in [0, 1]")
    if p == 0.0 or len(images) == 0:
        return images
    b, _, h, w = images.shape
    draw = torch.rand(b, 5, generator=generator)
    area = (scale[0] + (scale[1] - scale[0]) * draw[:, 1]) * h * w
    log_lo, log_hi = np.log(ratio[0]), np.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * draw[:, 2])
    eh = (area * aspect).sqrt().round().clamp(1, h).long()
    ew = (area / aspect).sqrt().round().clamp(1, w).long()
    top = (draw[:, 3] * (h - eh + 1)).long()
    left = (draw[:, 4] * (w - ew + 1)).long()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = ((rows >= top.view(b, 1, 1)) & (rows < (top + eh).view(b, 1, 1))
              & (cols >= left.view(b, 1, 1)) & (cols < (left + ew).view(b, 1, 1)))
    inside &= (draw[:, 0] < p).view(b, 1, 1)
    inside = inside.unsqueeze(1).to(images.device)
    if images.device.type == "cpu":
        noise = torch.rand(images.shape, generator=generator, dtype=images.dtype)
    else:  # noise drawn where the batch lives (the global RNG of that device)
        noise = torch.rand(images.shape, device=images.device, dtype=images.dtype)
    noise = noise * 2 - 1
    return torch.where(inside, noise, images)
