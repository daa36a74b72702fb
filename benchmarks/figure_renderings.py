"""A figure of renderings side by side: the same source people in the same target contexts, one
block per translator (CR-GAN and cut-and-paste under each mask quality, SPGAN ...).

    python benchmarks/figure_renderings.py --out docs/renderings_synth.png \\
        "CR-GAN, exact masks=runs/compare_v3/seed0/crgan/checkpoints/last.ckpt@data" \\
        "cut-and-paste, segmentation masks=cut_and_paste@data_seg" ...

Each block is LABEL=TRANSLATOR@DATA_ROOT: the translator spec (a CR-GAN or SPGAN checkpoint, or
``cut_and_paste``) and the data root whose masks it reads (the images are the same in every
root of one benchmark); the spec ``truth`` draws the benchmark's true renderings (the source
person in the target's scene without its own person, see
:mod:`crgan_lightning.data.synthetic.truth`), e.g. ``"truth=truth@data"`` as the first block.
Every block shows the target contexts in its first row and then one row per source person: the
source image, then its renderings into those contexts. The people and contexts are drawn with
``--seed`` from the source and target test splits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from crgan_lightning.callbacks.images import sample_grid  # noqa: E402
from crgan_lightning.data.datamodule import CrossDomainDataModule, ReIDImageDataset  # noqa: E402
from crgan_lightning.data.keys import IMAGE, MASK  # noqa: E402
from crgan_lightning.data.masks import build_mask_provider  # noqa: E402
from crgan_lightning.data.synthetic.truth import truth_of_files  # noqa: E402
from crgan_lightning.fileio import atomic_save_image  # noqa: E402
from crgan_lightning.translators import load_translator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("blocks", nargs="+", help="LABEL=TRANSLATOR@DATA_ROOT")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--contexts", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=2, help="pixel repetition of the 64x32 images")
    parser.add_argument("--columns", type=int, default=2, help="blocks side by side")
    parser.add_argument("--jpeg-quality", type=int, default=80, help="for a .jpg --out")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    rng = np.random.default_rng(args.seed)
    picked = None
    grids = []
    for block in args.blocks:
        label, _, rest = block.partition("=")
        spec, _, root = rest.partition("@")
        dm = CrossDomainDataModule(root=root or "data", height=64, width=32, num_workers=0)
        src, tgt = dm.source_dataset, dm.target_dataset
        sources = ReIDImageDataset(src.query, dm.test_transform, mask_provider=build_mask_provider("auto", src))
        contexts = ReIDImageDataset(tgt.query, dm.test_transform, mask_provider=build_mask_provider("auto", tgt))
        if picked is None:  # the same people and contexts in every block
            by_pid: dict[int, int] = {}
            for i, sample in enumerate(src.query):
                by_pid.setdefault(sample.pid, i)
            people = rng.choice(sorted(by_pid.values()), args.sources, replace=False)
            picked = (people, rng.choice(len(contexts), args.contexts, replace=False))
        s_items = [sources[int(i)] for i in picked[0]]
        t_items = [contexts[int(i)] for i in picked[1]]
        x_s = torch.stack([it[IMAGE] for it in s_items])
        x_t = torch.stack([it[IMAGE] for it in t_items])
        m_s = torch.stack([it[MASK] for it in s_items])
        m_t = torch.stack([it[MASK] for it in t_items])
        s, t = len(x_s), len(x_t)
        if spec == "truth":
            truth = truth_of_files(root or "data", [src.query[int(i)].path for i in picked[0]],
                                   [tgt.query[int(i)].path for i in picked[1]])
            rendered = torch.from_numpy(truth).float().permute(0, 1, 4, 2, 3) / 127.5 - 1.0
            if rendered.shape[-2:] != (64, 32):  # a benchmark written at another size
                rendered = torch.nn.functional.interpolate(rendered.flatten(0, 1), size=(64, 32), mode="area")
            rendered = rendered.reshape(s, t, 3, 64, 32)
        else:
            translator = load_translator(spec)
            rendered = translator.render(x_s.repeat_interleave(t, 0), x_t.repeat(s, 1, 1, 1),
                                         m_s.repeat_interleave(t, 0), m_t.repeat(s, 1, 1, 1)).view(s, t, 3, 64, 32)
        grid = sample_grid(x_s, x_t, rendered).repeat(args.scale, 0).repeat(args.scale, 1)
        strip = Image.new("RGB", (grid.shape[1], 14), "white")
        ImageDraw.Draw(strip).text((2, 1), label, fill="black")
        grids.append(np.concatenate([np.asarray(strip), grid]))
    cells = [np.pad(g, ((0, 6), (0, 6), (0, 0)), constant_values=255) for g in grids]
    cells += [np.full_like(cells[0], 255)] * (-len(cells) % args.columns)  # fill the last row
    figure = np.concatenate([np.concatenate(cells[i:i + args.columns], axis=1)
                             for i in range(0, len(cells), args.columns)])
    atomic_save_image(args.out, figure, jpeg_quality=args.jpeg_quality)
    print(f"{args.out}: {figure.shape[1]}x{figure.shape[0]} px, {len(grids)} blocks")


if __name__ == "__main__":
    main()
