"""The rendering-fidelity table on the embedded benchmark, with cut-and-paste under every mask quality
(and any translator checkpoints given), measured against the benchmark's true renderings.

    python benchmarks/bench_fidelity.py [--root runs/fidelity/data] [--ids 500 --test-ids 500] \\
        [--pairs 200] [CKPT ...]

Writes the benchmark (if missing) once per mask quality under ``--root`` (``exact/``,
``segmentation/``, ``small-pedestrian/``: the same images with other masks, and the mean IoU of
each), then prints the table of :func:`crgan_lightning.app.fidelity.fidelity_table`: the noise-
redrawn truth (what a perfect renderer scores) and the unrendered source image as references,
cut-and-paste with each mask quality, and one row per checkpoint (masks of the exact root). The
time of each step is printed too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from crgan_lightning.app.fidelity import fidelity_table, format_fidelity_table
from crgan_lightning.data.mask_quality import MASK_QUALITIES
from crgan_lightning.data.synthetic import generate_benchmark
from crgan_lightning.translators import NAMED_TRANSLATORS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpts", nargs="*", help="CR-GAN / SPGAN checkpoints to score as well")
    parser.add_argument("--root", default="runs/fidelity/data")
    parser.add_argument("--ids", type=int, default=500, help="training identities per domain (default 500)")
    parser.add_argument("--test-ids", type=int, default=500, help="test identities per domain (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    roots = {}
    for quality in MASK_QUALITIES:
        start = time.perf_counter()
        roots[quality] = Path(args.root) / quality
        generate_benchmark(roots[quality], seed=args.seed, num_train_ids=args.ids, num_test_ids=args.test_ids,
                           mask_quality=quality, progress=False)
        iou = json.loads((roots[quality] / "synth_a" / "meta.json").read_text())["mask_iou"]
        print(f"{quality:>16} masks: {roots[quality]} ({time.perf_counter() - start:.1f} s), mean IoU to the "
              f"exact masks: synth_a {1.0 if iou is None else iou:.3f}")
    start = time.perf_counter()
    renderers = [(named, roots[q]) for q in MASK_QUALITIES for named in NAMED_TRANSLATORS]
    renderers += list(args.ckpts)
    table = fidelity_table(renderers, roots["exact"], num_pairs=args.pairs)
    print(f"\n{format_fidelity_table(table)}\n({time.perf_counter() - start:.1f} s for the table, "
          f"{len(renderers)} renderers, {args.ids} + {args.test_ids} identities per domain)")


if __name__ == "__main__":
    main()
