"""Mean IoU of each degraded mask quality to the exact masks, the figures its calibration rests on.

    python benchmarks/bench_mask_quality.py [--silhouettes 100 500] [--benchmark-masks 200]

For every quality of :data:`crgan_lightning.data.mask_quality.MASK_QUALITIES` but ``exact``, it
degrades the procedurally drawn pedestrian silhouettes of ``tests/data/test_mask_quality.py``
(seed 1 for the degradation, as the tests) at 128 x 64, 64 x 32 and 256 x 128, and the benchmark's
own synth_a masks (``render_sample``, no context mask), and prints the mean per-mask IoU (with the
5th / 95th percentiles and the IoU pooled over pixels, as Cityscapes counts it) beside the target.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "data"))

from crgan_lightning.data.mask_quality import (  # noqa: E402
    MASK_QUALITIES, SEGMENTATION_TARGET_IOU, SMALL_PEDESTRIAN_TARGET_IOU, degrade_mask, mask_iou,
)
from crgan_lightning.data.synthetic import render_sample  # noqa: E402
from test_mask_quality import silhouettes  # noqa: E402

TARGETS = {"segmentation": SEGMENTATION_TARGET_IOU, "small-pedestrian": SMALL_PEDESTRIAN_TARGET_IOU}
SIZES = [(128, 64), (64, 32), (256, 128)]


def measure(exact: list[np.ndarray], name: str) -> str:
    rng = np.random.default_rng(1)
    degraded = [degrade_mask(m, MASK_QUALITIES[name], rng) for m in exact]
    ious = np.array([mask_iou(a, b) for a, b in zip(exact, degraded)])
    inter = sum(int(((a >= 128) & (b >= 128)).sum()) for a, b in zip(exact, degraded))
    union = sum(int(((a >= 128) | (b >= 128)).sum()) for a, b in zip(exact, degraded))
    return (f"{ious.mean():.3f} (p5 {np.percentile(ious, 5):.2f}, p95 {np.percentile(ious, 95):.2f}, "
            f"pooled {inter / union:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--silhouettes", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--benchmark-masks", type=int, default=200, help="synth_a masks (pairs of cameras 0, 1)")
    args = parser.parse_args()
    start = time.perf_counter()
    for name, target in TARGETS.items():
        print(f"{name}: target mean IoU {target}")
        for n in args.silhouettes:
            for size in SIZES:
                print(f"  {n} silhouettes at {size[0]}x{size[1]}: {measure(silhouettes(n, size), name)}")
        for h, w in SIZES[:2]:
            exact = [render_sample("synth_a", pid, cam, height=h, width=w)[1]
                     for pid in range(1, args.benchmark_masks // 2 + 1) for cam in (0, 1)]
            print(f"  {len(exact)} synth_a masks at {h}x{w}: {measure(exact, name)}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
