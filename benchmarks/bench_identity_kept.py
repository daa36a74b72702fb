"""Do renderings keep the person? The frozen source-trained re-id network as the judge, after training.

For each CR-GAN (or SPGAN) checkpoint given, renders ``--num`` source training images into
random target training contexts (the same images and contexts for every checkpoint) and prints
the judge's identity accuracy on the real source images, on the renderings, and their ratio
(the ``epoch/judge_id_ratio`` that ``target_id_ratio`` stops CR-GAN training on, here measured
after training and for any generator, also one trained with a classifier from scratch), plus
cut-and-paste with the dataset's masks as a reference.

    python benchmarks/bench_identity_kept.py --judge runs/options/seed0/reid_direct/checkpoints/last.ckpt \\
        --ckpt runs/options/seed0/crgan_scratch1/checkpoints/last.ckpt runs/options/seed0/crgan_judge70/... \\
        [--root data] [--num 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from crgan_lightning.data.datamodule import CrossDomainDataModule, ReIDImageDataset  # noqa: E402
from crgan_lightning.data.keys import IMAGE, MASK, PID  # noqa: E402
from crgan_lightning.data.masks import build_mask_provider  # noqa: E402
from crgan_lightning.models.discriminator import ReIDJudge  # noqa: E402
from crgan_lightning.models.reid import load_reid_net  # noqa: E402
from crgan_lightning.translators import load_translator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--judge", required=True, help="re-id checkpoint trained on the source")
    parser.add_argument("--ckpt", nargs="+", default=[],
                        help="translators: CR-GAN / SPGAN checkpoints, cut_and_paste, cut_and_fill")
    parser.add_argument("--root", default="data")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    dm = CrossDomainDataModule(root=args.root, height=64, width=32, num_workers=0)
    dm.setup("fit")
    src, tgt = dm.source_dataset, dm.target_dataset
    sources = ReIDImageDataset(src.train, dm.test_transform, labels=dm.source_train.labels,
                               mask_provider=build_mask_provider("auto", src))
    contexts = ReIDImageDataset(tgt.train, dm.test_transform, with_pid=False,
                                mask_provider=build_mask_provider("auto", tgt))
    rng = np.random.default_rng(0)
    pick = rng.choice(len(sources), min(args.num, len(sources)), replace=False)
    ctx = rng.integers(0, len(contexts), len(pick))
    judge = ReIDJudge(load_reid_net(args.judge), tgt.num_cameras).eval()

    def accuracy(spec: str | None) -> float:
        translator = load_translator(spec) if spec else None
        correct = 0
        for start in range(0, len(pick), args.batch_size):
            items = [sources[int(i)] for i in pick[start:start + args.batch_size]]
            x_s = torch.stack([it[IMAGE] for it in items])
            pids = torch.tensor([it[PID] for it in items])
            if translator is not None:
                c_items = [contexts[int(i)] for i in ctx[start:start + args.batch_size]]
                x_t = torch.stack([it[IMAGE] for it in c_items])
                masks = torch.stack([it[MASK] for it in items]) if translator.needs_masks else None
                m_t = torch.stack([it[MASK] for it in c_items]) if translator.needs_target_masks else None
                x_s = translator.render(x_s, x_t, masks, m_t)
            logits = judge(x_s)[0]  # as the judge scores renderings during CR-GAN training
            correct += int((logits.argmax(1) == pids).sum())
        return correct / len(pick)

    real = accuracy(None)
    print(f"judge {args.judge}: identity accuracy on {len(pick)} real source training images {100 * real:.1f} %")
    print(f"{'renderings of':<70}{'accuracy':>10}{'ratio':>8}")
    for spec in ["cut_and_paste", *args.ckpt]:
        acc = accuracy(spec)
        print(f"{spec:<70}{100 * acc:>9.1f}%{acc / real:>8.2f}")


if __name__ == "__main__":
    main()
