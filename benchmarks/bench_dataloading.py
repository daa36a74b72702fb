"""Decode + augment throughput (images/s) of the library's training pipeline at 256x128.

What it measures: how many training images per second reach a batch, at 256x128, batch 32,
through a torch ``DataLoader``, for

* the library: :class:`crgan_lightning.data.datamodule.ReIDImageDataset` (cv2 decode through
  ``read_image``, the foreground mask read from a PNG ``masks/`` tree, the albumentations train
  pipeline of ``build_transforms(256, 128, train=True)`` applied to image AND mask with
  ``apply_transforms``), exactly as the DataModule builds its source/target training sets;
* the reference: the same work in torchvision.transforms.v2 (PIL decode of image and mask,
  Resize(256, 128), RandomHorizontalFlip, Pad(10) + RandomCrop, ToImage/ToDtype, Normalize(0.5,
  0.5) applied jointly to the image and a ``tv_tensors.Mask``, then RandomErasing on the image
  only, as the library erases the image only). One difference remains: v2 always resizes a Mask
  with nearest neighbour, the library's mask is resized bilinearly (slightly more work);
* for context, the classic torchvision v1 pipeline (same steps, image only: v1 has no joint mask
  path, so it does less work than the other two).

The source images are JPEGs written with numpy/cv2 into a temporary folder: re-id crop sizes
(128x64 as in Market-1501 and 256x128 as in larger detectors), smooth backgrounds, a blurred
person-like figure and mild sensor noise, so that their file sizes and decode cost are those of
real crops rather than of pure noise. Each has a PNG mask of the figure.

How to read the output: one line per loader with the best (and median) images/s over
``--repeats`` full passes after one warm-up pass; then ``library / torchvision`` ratios (above 1:
the library is faster). Single-process lines (``num_workers=0``) compare the pipelines' CPU cost
per image; the ``num_workers=2`` lines show what the DataModule's loader reaches with its worker
processes, with and without ``cv2.setNumThreads(1)`` in each worker (what the DataModule's
``worker_init_fn`` does). The figures are CPU-bound and shared-machine noise moves them; the
ratios, measured interleaved in one process, are the stable part.

Threads: the ``num_workers=0`` runs use ``--torch-threads`` (default 1, what torch gives each
DataLoader worker). With torch's default (one thread per core) the tensor ops of the torchvision
v2 pipeline pay an OpenMP hand-off per call on small images, and on a busy machine that costs
more than the work itself (``--torch-threads 0`` shows it). cv2 must not have started its thread
pool in a process that then forks loader workers: a forked worker hangs in its first cv2 call,
``cv2.setNumThreads`` included. This script writes its images with cv2, so it calls
``cv2.setNumThreads(1)`` (which stops the pool) before the persistent workers fork.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from torchvision import tv_tensors
from torchvision.transforms import v2

from crgan_lightning.data.datamodule import ReIDImageDataset
from crgan_lightning.data.datasets import ReIDSample
from crgan_lightning.data.masks import FolderMasks, PriorMask, mask_path, prior_mask
from crgan_lightning.data.transforms import build_transforms

SPLIT = "bounding_box_train"


# --------------------------------------------------------------------------- source images


def _person_crop(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A re-id-like crop (uint8 RGB, H x W x 3) and its person mask (uint8 0/255, H x W)."""
    top, bottom = rng.integers(40, 220, size=3), rng.integers(40, 220, size=3)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    img = (top * (1 - t) + bottom * t).repeat(width, axis=1)  # vertical gradient background
    floor = int(height * rng.uniform(0.75, 0.9))
    img[floor:] = img[floor:] * 0.6 + rng.integers(60, 160, size=3) * 0.4
    img = np.ascontiguousarray(img.astype(np.uint8))
    for _ in range(int(rng.integers(1, 4))):  # background clutter
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(5, width // 2)), y0 + int(rng.integers(5, height // 3))
        cv2.rectangle(img, (x0, y0), (x1, y1), [int(c) for c in rng.integers(0, 255, 3)], -1)
    mask = np.zeros((height, width), np.uint8)
    cx, s = width // 2 + int(rng.integers(-width // 10, width // 10 + 1)), height / 128.0
    parts = [  # head, torso, legs
        ("ellipse", (cx, int(18 * s)), (int(7 * s), int(9 * s))),
        ("rect", (cx - int(13 * s), int(27 * s)), (cx + int(13 * s), int(70 * s))),
        ("rect", (cx - int(11 * s), int(70 * s)), (cx + int(11 * s), int(122 * s))),
    ]
    for kind, a, b in parts:
        color = [int(c) for c in rng.integers(0, 255, 3)]
        if kind == "ellipse":
            cv2.ellipse(img, a, b, 0, 0, 360, color, -1)
            cv2.ellipse(mask, a, b, 0, 0, 360, 255, -1)
        else:
            cv2.rectangle(img, a, b, color, -1)
            cv2.rectangle(mask, a, b, 255, -1)
    img = cv2.GaussianBlur(img, (3, 3), 0)
    noise = rng.normal(0.0, 4.0, img.shape)  # sensor noise: real crops are not flat colour
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    return img, mask


def write_images(root: Path, count: int, sizes: list[tuple[int, int]], seed: int) -> list[ReIDSample]:
    """``count`` JPEG crops (sizes cycled) under ``root/bounding_box_train`` and PNG masks under
    ``root/masks/bounding_box_train``; returns them as samples."""
    rng = np.random.default_rng(seed)
    (root / SPLIT).mkdir(parents=True)
    samples = []
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        img, mask = _person_crop(rng, h, w)
        pid, cam = i // 8 + 1, i % 6 + 1
        path = root / SPLIT / f"{pid:04d}_c{cam}s1_{i:06d}_01.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        mpath = mask_path(root, path)
        mpath.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(mpath), mask)
        samples.append(ReIDSample(str(path), pid, cam - 1))
    return samples


# --------------------------------------------------------------------------- torchvision reference


class TorchvisionV2Dataset(Dataset):
    """PIL decode + torchvision.transforms.v2, image and mask carried jointly (tv_tensors.Mask)."""

    def __init__(self, samples: list[ReIDSample], root: Path, height: int, width: int,
                 masks: str, pad: int = 10, erasing_p: float = 0.5) -> None:
        self.samples, self.root, self.masks = samples, root, masks
        self.height, self.width = height, width
        self.joint = v2.Compose([
            v2.Resize((height, width), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.Pad(pad, fill=0),
            v2.RandomCrop((height, width)),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),  # images only; the Mask keeps its dtype
            v2.Normalize([0.5] * 3, [0.5] * 3),
        ])
        self.erase = v2.RandomErasing(p=erasing_p, scale=(0.02, 0.4), ratio=(0.3, 3.3), value="random")

    def __len__(self) -> int:
        return len(self.samples)

    def _mask(self, path: str, height: int, width: int) -> torch.Tensor:
        if self.masks == "png":
            with Image.open(mask_path(self.root, path)) as m:
                arr = np.asarray(m.convert("L"))
            return torch.from_numpy(arr.astype(np.float32) / 255.0)
        return torch.from_numpy(prior_mask(height, width).copy())

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        sample = self.samples[index]
        with Image.open(sample.path) as im:
            image = im.convert("RGB")
        mask = tv_tensors.Mask(self._mask(sample.path, image.height, image.width).unsqueeze(0))
        image, mask = self.joint(image, mask)
        return {"image": self.erase(image).as_subclass(torch.Tensor), "mask": mask.as_subclass(torch.Tensor),
                "camid": sample.camid, "pid": sample.pid}


class TorchvisionV1Dataset(Dataset):
    """PIL decode + the classic v1 transforms (image only: v1 has no joint mask path)."""

    def __init__(self, samples: list[ReIDSample], height: int, width: int, pad: int = 10,
                 erasing_p: float = 0.5) -> None:
        self.samples = samples
        self.transform = T.Compose([
            T.Resize((height, width)),
            T.RandomHorizontalFlip(),
            T.Pad(pad),
            T.RandomCrop((height, width)),
            T.ToTensor(),
            T.Normalize([0.5] * 3, [0.5] * 3),
            T.RandomErasing(p=erasing_p, scale=(0.02, 0.4), ratio=(0.3, 3.3), value="random"),
        ])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        sample = self.samples[index]
        with Image.open(sample.path) as im:
            image = im.convert("RGB")
        return {"image": self.transform(image), "camid": sample.camid, "pid": sample.pid}


# --------------------------------------------------------------------------- timing

CV2_DEFAULT_THREADS = cv2.getNumThreads()  # before anything here changes it


def _cv2_one_thread(_: int) -> None:
    cv2.setNumThreads(1)  # what CrossDomainDataModule's worker_init_fn does


def _cv2_default_threads(_: int) -> None:
    cv2.setNumThreads(CV2_DEFAULT_THREADS)  # what a worker forked from a cv2-untouched parent would have


def _loader(dataset: Dataset, batch_size: int, workers: int,
            worker_init: Callable[[int], None] | None = None) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                      persistent_workers=workers > 0, worker_init_fn=worker_init)


def _epoch(loader: DataLoader, parent_cv2_threads: int | None) -> float:
    """Seconds for one full pass; ``parent_cv2_threads`` sets this process's cv2 threads first."""
    if parent_cv2_threads is not None:
        cv2.setNumThreads(parent_cv2_threads)
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - t0


LIB0 = "library cv2+albumentations, image+mask"
LIB0_1T = "library, cv2.setNumThreads(1)"
TV2 = "torchvision v2 PIL, image+Mask (reference)"
TV1 = "torchvision v1 PIL, image only (context)"
LIBW = "library, workers cv2.setNumThreads(1)"
LIBW_DEF = "library, workers cv2 default threads"
TVW = "torchvision v2 (reference)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=400, help="JPEG crops to write (default 400)")
    p.add_argument("--sizes", default="128x64,256x128",
                   help="source crop sizes HxW, cycled over the images (default 128x64,256x128)")
    p.add_argument("--height", type=int, default=256, help="network input height (default 256)")
    p.add_argument("--width", type=int, default=128, help="network input width (default 128)")
    p.add_argument("--batch-size", type=int, default=32, help="loader batch size (default 32)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per loader after warm-up (default 5)")
    p.add_argument("--workers", type=int, default=2, help="processes of the parallel loaders (default 2)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads of this process for the num_workers=0 runs (default 1, as in "
                        "DataLoader workers; 0 keeps torch's default)")
    p.add_argument("--masks", choices=("png", "prior"), default="png",
                   help="png: read each image's PNG mask (both pipelines); prior: the soft prior mask")
    p.add_argument("--seed", type=int, default=0, help="seed of the images and augmentations (default 0)")
    args = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    torch.manual_seed(args.seed)

    with tempfile.TemporaryDirectory(prefix="bench_dataloading_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        samples = write_images(root, args.images, sizes, args.seed)
        kb = np.mean([os.path.getsize(s.path) for s in samples]) / 1024
        print(f"wrote {len(samples)} JPEG crops ({', '.join(args.sizes.split(','))}; mean {kb:.1f} KB) "
              f"and PNG masks in {time.perf_counter() - t0:.1f} s")
        if args.torch_threads > 0:
            torch.set_num_threads(args.torch_threads)
        print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, cv2 {cv2.__version__}, "
              f"albumentations {A.__version__}; {os.cpu_count()} CPUs")
        mask_kind = "a PNG per image" if args.masks == "png" else "the soft prior"
        print(f"output {args.height}x{args.width}, batch {args.batch_size}, masks: {mask_kind}; "
              f"num_workers=0 runs: torch threads {torch.get_num_threads()}, "
              f"cv2 threads {CV2_DEFAULT_THREADS} unless the label says 1")

        provider = FolderMasks(root) if args.masks == "png" else PriorMask()
        library = ReIDImageDataset(samples, build_transforms(args.height, args.width, train=True),
                                   mask_provider=provider)
        tv2 = TorchvisionV2Dataset(samples, root, args.height, args.width, args.masks)
        tv1 = TorchvisionV1Dataset(samples, args.height, args.width)
        bs, w = args.batch_size, args.workers
        # label -> (loader, workers, cv2 threads of this process during its passes)
        worker_runs = {
            LIBW: (_loader(library, bs, w, _cv2_one_thread), w, None),
            LIBW_DEF: (_loader(library, bs, w, _cv2_default_threads), w, None),
            TVW: (_loader(tv2, bs, w), w, None),
        }
        single_runs = {
            LIB0: (_loader(library, bs, 0), 0, CV2_DEFAULT_THREADS),
            LIB0_1T: (_loader(library, bs, 0), 0, 1),
            TV2: (_loader(tv2, bs, 0), 0, CV2_DEFAULT_THREADS),
            TV1: (_loader(tv1, bs, 0), 0, CV2_DEFAULT_THREADS),
        }
        # Writing the images started cv2's thread pool in this process; a worker forked from it then
        # hangs in its first cv2 call (cv2.setNumThreads included). Stopping the pool before the
        # (persistent) workers fork avoids that; the single-process runs restore the threads after.
        cv2.setNumThreads(1)
        runs = {**worker_runs, **single_runs}
        warm = {label: _epoch(loader, threads) for label, (loader, _, threads) in runs.items()}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.repeats):  # interleaved, so background load hits every loader alike
            for label, (loader, _, threads) in runs.items():
                times[label].append(_epoch(loader, threads))
        n = len(samples)
        rate = {k: n / min(v) for k, v in times.items()}

        print(f"\n{n} images per pass, best / median of {args.repeats} passes after one warm-up pass "
              "(warm-up includes worker start-up)")
        print(f"  {'loader':<44}{'workers':>8}{'best img/s':>12}{'median':>9}{'warm-up s':>11}")
        for label in (LIB0, LIB0_1T, TV2, TV1, LIBW, LIBW_DEF, TVW):
            _, workers, _ = runs[label]
            med = n / statistics.median(times[label])
            print(f"  {label:<44}{workers:>8}{rate[label]:>12,.0f}{med:>9,.0f}{warm[label]:>11.2f}")

        print("\nratios of best img/s (above 1: the library is faster)")
        for text, num, den in (
            ("library / torchvision v2 (image+mask), num_workers=0", LIB0, TV2),
            ("library (1 cv2 thread) / torchvision v2, num_workers=0", LIB0_1T, TV2),
            ("library / torchvision v1 (image only), num_workers=0", LIB0, TV1),
            (f"library / torchvision v2 (image+mask), num_workers={w}", LIBW, TVW),
            (f"library num_workers={w} / library num_workers=0", LIBW, LIB0),
            ("library workers: cv2.setNumThreads(1) / default threads", LIBW, LIBW_DEF),
        ):
            print(f"  {text:<58}{rate[num] / rate[den]:>6.2f}x")


if __name__ == "__main__":
    main()
