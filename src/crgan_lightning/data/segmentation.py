"""Person masks for real datasets from a torchvision semantic-segmentation model.

:class:`TorchvisionPersonSegmenter` runs one of torchvision's segmentation networks trained on
COCO with the 21 Pascal VOC labels (background + 20 classes, ``person`` = class 15) and turns
its output into a person probability per pixel. :func:`write_masks` writes the ``masks/`` tree
of a dataset with it (one PNG per image, see :mod:`crgan_lightning.data.masks`), which the
context loss then reads through :class:`~crgan_lightning.data.masks.FolderMasks`::

    from crgan_lightning.data.segmentation import write_masks
    folder, written = write_masks("market", "data/")                      # online: torchvision's download
    folder, written = write_masks("market", "data/", model="lraspp_mobilenet_v3_large",
                                  weights_path="lraspp_mobilenet_v3_large-d234d4ea.pth")  # offline

Weights: with ``weights_path=None`` the COCO-with-VOC-labels weights come from torchvision's
own download (cached under ``$TORCH_HOME/hub/checkpoints``). Offline, ``weights_path`` names a
local copy of that file, i.e. a plain ``state_dict`` of the same torchvision model; it is
loaded strictly, and a file that is missing or belongs to another model is an error naming it.
A random initialisation is never used in place of the requested weights.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models import segmentation as tv_seg

from ..checkpoints import read_torch_file
from ..errors import ConfigError, WeightsError
from .datasets import load_reid_dataset
from .masks import MASKS_DIR, SegmentationMaskWriter

log = logging.getLogger(__name__)

PERSON_CLASS = 15
"""Index of ``person`` among the 21 Pascal VOC labels the COCO-with-VOC-labels weights predict."""

NUM_CLASSES = 21

DEFAULT_INPUT_HEIGHT = 256
"""Rows the network sees: re-id crops (Market-1501: 128 x 64) are scaled to this height first."""


@dataclass(frozen=True)
class _Architecture:
    builder: Callable[..., nn.Module]
    weights: type[WeightsEnum]
    has_aux: bool  # whether the published checkpoint carries an auxiliary head (aux_classifier.*)

    @property
    def default_weights(self) -> WeightsEnum:
        return self.weights.COCO_WITH_VOC_LABELS_V1


_ARCHITECTURES: dict[str, _Architecture] = {
    "deeplabv3_mobilenet_v3_large": _Architecture(
        tv_seg.deeplabv3_mobilenet_v3_large, tv_seg.DeepLabV3_MobileNet_V3_Large_Weights, True
    ),
    "deeplabv3_resnet50": _Architecture(tv_seg.deeplabv3_resnet50, tv_seg.DeepLabV3_ResNet50_Weights, True),
    "fcn_resnet50": _Architecture(tv_seg.fcn_resnet50, tv_seg.FCN_ResNet50_Weights, True),
    "lraspp_mobilenet_v3_large": _Architecture(
        tv_seg.lraspp_mobilenet_v3_large, tv_seg.LRASPP_MobileNet_V3_Large_Weights, False
    ),
}

SEGMENTATION_MODELS: tuple[str, ...] = tuple(_ARCHITECTURES)
"""Names accepted as ``model``: torchvision builders with COCO-with-VOC-labels weights."""


def _architecture(model: str) -> _Architecture:
    arch = _ARCHITECTURES.get(model)
    if arch is None:
        raise ConfigError(
            f"model={model!r} is not a supported segmentation model; "
            f"expected one of {', '.join(SEGMENTATION_MODELS)}"
        )
    return arch


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _examples(keys: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return shown + (", ..." if len(keys) > n else "")


def build_segmentation_model(
    model: str, state_dict: Mapping[str, torch.Tensor], source: str
) -> nn.Module:
    """Build torchvision's ``model`` (21 classes, no pretrained parts) and load ``state_dict`` strictly.

    The auxiliary head is built when the state dict carries ``aux_classifier.*`` keys (as the
    published DeepLabV3 and FCN checkpoints do), so those keys are checked too, and then dropped:
    it is a training-time head that inference does not use. A state dict that does not fit the
    model raises :class:`WeightsError` naming ``source`` and the first mismatching keys.
    """
    arch = _architecture(model)
    if not isinstance(state_dict, Mapping):
        what = f"a {type(state_dict).__name__}"
    else:
        not_tensors = [str(k) for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
        what = f"non-tensor entries ({_examples(not_tensors)})" if not_tensors else ""
    if what:
        raise WeightsError(
            f"{source} is not a state dict of torchvision's {model} (it holds {what}); "
            f"expected the file torchvision downloads for {arch.default_weights!r}, or model.state_dict()"
        )
    aux = any(k.startswith("aux_classifier.") for k in state_dict)
    kwargs = {"aux_loss": True} if aux and arch.has_aux else {}
    net = arch.builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES, **kwargs)

    expected = net.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys ({_examples(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys ({_examples(unexpected)})")
        if mismatched:
            problems.append(f"{len(mismatched)} shapes differ, file vs model ({_examples(mismatched, 2)})")
        raise WeightsError(
            f"{source} does not fit torchvision's {model} with {NUM_CLASSES} classes: "
            f"{'; '.join(problems)}; "
            f"pass a state dict of that model (the file torchvision downloads for {arch.default_weights!r})"
        )
    net.load_state_dict(state_dict, strict=True)
    if aux:
        net.aux_classifier = None
    return net


def load_weights_file(path: str | os.PathLike, model: str) -> dict[str, torch.Tensor]:
    """Read a local state dict for ``model`` (tensors only, mapped to the CPU); errors name ``path``."""
    url = _architecture(model).default_weights.url
    return read_torch_file(
        path, missing=f"weights file {{path}} does not exist; weights_path must name a local copy of the {model} "
                      f"checkpoint {url} (or be None to download it)",
        unreadable="weights file {path} cannot be read as a PyTorch state dict ({reason}); "
                   "weights_path expects a file saved with torch.save(model.state_dict(), path)")


def download_weights(model: str) -> dict[str, torch.Tensor]:
    """The COCO-with-VOC-labels state dict of ``model`` through torchvision's download and cache."""
    weights = _architecture(model).default_weights
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # no network, HTTP error, hash mismatch, truncated file...
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise WeightsError(
            f"could not download the {model} weights {weights!r} from {weights.url} ({_first_line(exc)}); "
            f"offline, fetch that file elsewhere and pass it as weights_path=<file> (or put it in {cache})"
        ) from None


class TorchvisionPersonSegmenter(SegmentationMaskWriter):
    """Person probability maps from a torchvision segmentation network (COCO weights, VOC labels).

    Args:
        model: one of :data:`SEGMENTATION_MODELS` (``deeplabv3_mobilenet_v3_large`` is a good
            speed / quality balance on the CPU; ``deeplabv3_resnet50`` gives the cleanest masks).
        weights_path: a local state dict of that model (the ``.pth`` file torchvision downloads);
            ``None`` downloads it through torchvision (or uses its cached copy).
        device: where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
        input_height: rows each image is scaled to (keeping its aspect ratio) before the network
            sees it; re-id crops are small (Market-1501: 128 x 64) and the networks were trained
            on much larger images. ``None`` runs every image at its own size. Probabilities are
            always resized back to the image's own size.

    :meth:`predict` maps uint8 RGB images (H, W, 3) to float32 person probabilities (H, W) in
    [0, 1] (the softmax over the 21 classes, channel ``person``); images that share a size are
    run as one batch. :meth:`write_tree` (inherited) writes a dataset's ``masks/`` tree.
    """

    name = "torchvision"

    def __init__(
        self,
        model: str = "deeplabv3_mobilenet_v3_large",
        weights_path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        input_height: int | None = DEFAULT_INPUT_HEIGHT,
    ) -> None:
        arch = _architecture(model)
        if input_height is not None and (isinstance(input_height, bool) or int(input_height) < 1
                                         or int(input_height) != input_height):
            raise ConfigError(f"input_height={input_height!r} must be a positive number of rows or None")
        try:
            self.device = torch.device(device)
        except (RuntimeError, ValueError, TypeError):
            raise ConfigError(f"device={device!r} is not a torch device such as 'cpu' or 'cuda:0'") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                f"device={device!r} was asked for but CUDA is not available here; use device='cpu'"
            )

        weights = arch.default_weights
        categories = weights.meta["categories"]
        self.person_class = categories.index("person")
        assert self.person_class == PERSON_CLASS and len(categories) == NUM_CLASSES
        preset = weights.transforms()
        self.mean = torch.tensor(preset.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(preset.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

        self.model_name = model
        self.input_height = None if input_height is None else int(input_height)
        self.weights_path = None if weights_path is None else Path(weights_path).expanduser()
        if self.weights_path is None:
            state_dict = download_weights(model)
            source = f"the downloaded {model} weights {weights!r}"
        else:
            state_dict = load_weights_file(self.weights_path, model)
            source = f"weights file {self.weights_path}"
        self.model = build_segmentation_model(model, state_dict, source).to(self.device).eval()
        self.model.requires_grad_(False)
        log.info("person segmentation: %s from %s on %s", model, self.weights_path or weights.url,
                 self.device)

    def _network_size(self, height: int, width: int) -> tuple[int, int]:
        if self.input_height is None:
            return height, width
        return self.input_height, max(1, round(width * self.input_height / height))

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Person probability (H, W) float32 in [0, 1] for each uint8 RGB image (H, W, 3)."""
        groups: dict[tuple[int, int, int, int], list[int]] = {}
        for i, image in enumerate(images):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
                raise ValueError(
                    f"image {i} is {image.dtype} {image.shape}; expected uint8 RGB of shape (H, W, 3)"
                )
            h, w = image.shape[:2]
            groups.setdefault((h, w, *self._network_size(h, w)), []).append(i)

        self.model.eval()
        out: list[np.ndarray | None] = [None] * len(images)
        for (h, w, net_h, net_w), idx in groups.items():
            batch = torch.from_numpy(np.stack([images[i] for i in idx])).to(self.device)
            x = batch.permute(0, 3, 1, 2).float().div_(255.0)
            if (net_h, net_w) != (h, w):
                x = F.interpolate(x, size=(net_h, net_w), mode="bilinear", align_corners=False,
                                  antialias=True)
            x = (x - self.mean) / self.std
            logits = self.model(x)["out"]  # (B, 21, net_h, net_w)
            prob = logits.float().softmax(dim=1)[:, self.person_class:self.person_class + 1]
            if (net_h, net_w) != (h, w):
                prob = F.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False,
                                     antialias=net_h > h)
            prob = prob.clamp_(0.0, 1.0)[:, 0].cpu().numpy().astype(np.float32, copy=False)
            for j, i in enumerate(idx):
                out[i] = prob[j]
        return out  # type: ignore[return-value]


def write_masks(
    dataset_name: str,
    root: str | os.PathLike,
    model: str = "deeplabv3_mobilenet_v3_large",
    weights_path: str | os.PathLike | None = None,
    batch_size: int = 16,
    threshold: float | None = 0.5,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    input_height: int | None = DEFAULT_INPUT_HEIGHT,
) -> tuple[Path, int]:
    """Write the person mask of every image of a dataset; return the ``masks/`` folder and the count.

    ``dataset_name`` and ``root`` are as for :func:`~crgan_lightning.data.load_reid_dataset`
    (``"market"``, ``"data/"``). Masks that already exist are kept unless ``overwrite``, so an
    interrupted run resumes where it stopped. ``threshold`` binarises the person probability
    (stored as 0 / 255); ``None`` stores it soft (0..255). The other arguments are those of
    :class:`TorchvisionPersonSegmenter`.
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise ConfigError(f"threshold={threshold!r} must lie in [0, 1] (or be None for soft masks)")
    dataset = load_reid_dataset(dataset_name, root)
    segmenter = TorchvisionPersonSegmenter(model, weights_path=weights_path, device=device,
                                           input_height=input_height)
    written = segmenter.write_tree(dataset, batch_size=int(batch_size), overwrite=overwrite,
                                   progress=progress, threshold=threshold)
    folder = dataset.root / MASKS_DIR
    log.info("%s: wrote %d masks under %s", dataset.name, written, folder)
    return folder, written
