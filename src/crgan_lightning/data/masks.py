"""Foreground (person) masks for the context loss and for cut-and-paste rendering.

A mask is a float array (H, W) in [0, 1]: 1 on the person, 0 on the background. Providers:

* :class:`FolderMasks`: masks stored beside a dataset in a ``masks/`` tree, one PNG per image
  at the same path relative to the dataset folder
  (``<dataset>/masks/bounding_box_train/0002_c1s1_000451_03.png``). The embedded benchmark
  ships its ground truth this way; :class:`SegmentationMaskWriter` writes it for real data.
* :class:`PriorMask`: a soft prior of where a pedestrian stands in a detection box (an
  elliptical blob centred in the crop). It is the fallback when a dataset has no ``masks/``
  tree, and is named as such in the logs: it knows nothing about the actual image.
"""

from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..errors import ConfigError, DatasetError
from ..fileio import META_FILE, atomic_save_image, atomic_write_bytes, written_by
from .datasets import ReIDDataset
from .images import read_image, read_mask

log = logging.getLogger(__name__)

MASKS_DIR = "masks"
#: The ``written_by`` of a ``masks/`` folder that :class:`SegmentationMaskWriter` made.
MASK_WRITER = "crgan masks"
MASK_SOURCES = ("auto", "folder", "prior", "none")


def mask_path(dataset_root: str | os.PathLike, image_path: str | os.PathLike) -> Path:
    """Where the mask of ``image_path`` lives: ``<dataset_root>/masks/<relative path>.png``."""
    root = Path(dataset_root)
    try:
        rel = Path(image_path).relative_to(root)
    except ValueError:
        raise DatasetError(f"image {image_path} is not inside the dataset folder {root}") from None
    return root / MASKS_DIR / rel.with_suffix(".png")


class MaskProvider(ABC):
    """Gives the foreground mask of a dataset image."""

    name: str = "mask"

    @abstractmethod
    def __call__(self, image_path: str, height: int, width: int) -> np.ndarray:
        """Mask (height, width) float32 in [0, 1] for the image at ``image_path``."""


class FolderMasks(MaskProvider):
    """Masks read from ``<dataset_root>/masks/``."""

    name = "folder"

    def __init__(self, dataset_root: str | os.PathLike) -> None:
        self.root = Path(dataset_root)
        if not (self.root / MASKS_DIR).is_dir():
            raise DatasetError(
                f"no mask folder {self.root / MASKS_DIR}; write one with `crgan masks` "
                "or use masks='prior'"
            )

    def __call__(self, image_path: str, height: int, width: int) -> np.ndarray:
        """The mask of ``image_path`` at ``height`` x ``width``. The file must have its image's size
        (a mask of another size belongs to another crop or resolution, and is refused); it is then
        resized to the size asked for (the network's, when exporting)."""
        path = mask_path(self.root, image_path)
        mask = read_mask(path)
        if mask.shape != (height, width):
            with Image.open(image_path) as image:  # reads the header only
                image_size = (image.height, image.width)
            if mask.shape != image_size:
                raise DatasetError(f"mask {path} is {mask.shape[0]}x{mask.shape[1]} but its image {image_path} is "
                                   f"{image_size[0]}x{image_size[1]}; expected a mask of the image's size "
                                   "(rewrite it with `crgan masks`)")
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
        return mask


@lru_cache(maxsize=16)
def prior_mask(height: int, width: int) -> np.ndarray:
    """The soft pedestrian prior: an ellipse centred horizontally, spanning most of the box height
    (rows 4%..98%) and about 45% of its width, with a smooth fall-off at the border."""
    y = (np.arange(height, dtype=np.float32) + 0.5) / height
    x = (np.arange(width, dtype=np.float32) + 0.5) / width
    dy = (y[:, None] - 0.51) / 0.47
    dx = (x[None, :] - 0.5) / 0.25
    r = np.sqrt(dx**2 + dy**2)
    mask = np.clip((1.15 - r) / 0.3, 0.0, 1.0)
    mask.setflags(write=False)
    return mask


class PriorMask(MaskProvider):
    """The fallback mask: the same soft pedestrian prior for every image (see :func:`prior_mask`)."""

    name = "prior"

    def __call__(self, image_path: str, height: int, width: int) -> np.ndarray:
        return prior_mask(height, width).copy()


def check_mask_source(kind: str) -> str:
    if kind not in MASK_SOURCES:
        raise ConfigError(f"masks={kind!r} is not a mask source; expected one of {', '.join(MASK_SOURCES)}")
    return kind


def build_mask_provider(kind: str, dataset: ReIDDataset) -> MaskProvider | None:
    """``"folder"``: the dataset's ``masks/`` tree (an error if missing); ``"prior"``: the soft
    prior; ``"auto"``: the tree when present, else the prior, with a warning naming the fallback;
    ``"none"``: no masks (stages that do not use them)."""
    check_mask_source(kind)
    if kind == "none":
        return None
    if kind == "folder":
        return FolderMasks(dataset.root)
    if kind == "prior":
        return PriorMask()
    if kind == "auto":
        if (dataset.root / MASKS_DIR).is_dir():
            return FolderMasks(dataset.root)
        log.warning(
            "%s has no %s/ folder: using the soft prior mask (fallback). "
            "Write real masks with `crgan masks --dataset %s`.", dataset.root, MASKS_DIR, dataset.name
        )
    return PriorMask()


class SegmentationMaskWriter(ABC):
    """Writes a ``masks/`` tree for a dataset from a person-segmentation model.

    Subclasses implement :meth:`predict`; :meth:`write_tree` walks every split, skips masks that
    already exist (so an interrupted run resumes), and writes each PNG through a temporary file
    renamed into place, so a mask on disk is always complete. A ``masks/`` folder it starts carries
    a ``meta.json`` naming its writer; ``overwrite`` rewrites only such a folder, never masks that
    came from elsewhere (a dataset's own ground truth, another segmenter's).
    """

    @abstractmethod
    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Person probability (H, W) float in [0, 1] for each uint8 RGB image (H, W, 3)."""

    def write_tree(
        self,
        dataset: ReIDDataset,
        batch_size: int = 32,
        overwrite: bool = False,
        progress: bool = True,
        threshold: float | None = None,
    ) -> int:
        """Write the masks of all splits of ``dataset``; return how many were written.

        ``threshold`` binarises the probabilities (None keeps them soft, stored as 0..255).
        """
        folder = dataset.root / MASKS_DIR
        holds_files = folder.is_dir() and any(folder.iterdir())
        if overwrite and holds_files and written_by(folder) != MASK_WRITER:
            raise ConfigError(f"{folder} holds masks that `{MASK_WRITER}` did not write (its {META_FILE} does not "
                              "say so); --overwrite replaces only masks it wrote: move that folder aside first")
        if not holds_files:  # a folder of our own: mark it, so that --overwrite may replace it later
            atomic_write_bytes(folder / META_FILE, json.dumps(
                {"written_by": MASK_WRITER, "writer": type(self).__name__, "threshold": threshold}, indent=2).encode())
        paths = sorted({s.path for split in ("train", "query", "gallery") for s in dataset.split(split)})
        todo = [p for p in paths if overwrite or not mask_path(dataset.root, p).exists()]
        written = 0
        bar = tqdm(total=len(todo), desc=f"masks {dataset.name}", unit="img", disable=not progress)
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            images = [read_image(p) for p in chunk]
            for path, image, prob in zip(chunk, images, self.predict(images)):
                if prob.shape != image.shape[:2]:
                    raise ValueError(
                        f"{type(self).__name__}.predict returned a {prob.shape} mask for a "
                        f"{image.shape[:2]} image ({path})"
                    )
                if threshold is not None:
                    prob = (prob >= threshold).astype(np.float32)
                out = mask_path(dataset.root, path)
                atomic_save_image(out, np.round(np.clip(prob, 0, 1) * 255).astype(np.uint8))
                written += 1
            bar.update(len(chunk))
        bar.close()
        return written
