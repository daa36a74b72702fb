"""Why the embedded benchmark is 64 x 32: the cost of a re-id training step at both candidate sizes.

Times training steps of the embedded re-id recipe (ResNet-10t, last stride 1, BN-neck,
CE + triplet, AdamW; P x K = 16 x 4) on random images at 64 x 32 and at 128 x 64, in one
process, and prints the time per step, the ratio, and what one epoch of the default benchmark
(500 identities, about 4,500 training images) and the demo's schedule cost at each size.

    python benchmarks/bench_resolution.py [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from crgan_lightning.losses import batch_hard_triplet_loss, cross_entropy_label_smooth
from crgan_lightning.models.reid import ReIDNet

BATCH, IDS, TRAIN_IMAGES = 64, 500, 4500


def step_time(height: int, width: int, steps: int) -> float:
    torch.manual_seed(0)
    net = ReIDNet(backbone="resnet10t", pretrained=False, last_stride=1, num_classes=IDS)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.rand(BATCH, 3, height, width) * 2 - 1
    pids = torch.arange(BATCH) // 4
    net.train()
    for i in range(steps + 3):  # 3 warm-up steps
        if i == 3:
            start = time.perf_counter()
        logits, feats = net(x)
        loss = cross_entropy_label_smooth(logits, pids, 0.1) + batch_hard_triplet_loss(feats, pids, 0.3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10, help="the demo's re-id epochs")
    args = parser.parse_args()
    small = step_time(64, 32, args.steps)
    large = step_time(128, 64, args.steps)
    per_epoch = TRAIN_IMAGES / BATCH
    print(f"re-id step (batch {BATCH}), {torch.get_num_threads()} threads")
    for name, t in (("64 x 32", small), ("128 x 64", large)):
        print(f"  {name:<9} {t:6.3f} s/step  {t * per_epoch:6.1f} s/epoch  "
              f"{t * per_epoch * args.epochs / 60:5.1f} min for {args.epochs} epochs")
    print(f"  128 x 64 / 64 x 32: {large / small:.2f}x")


if __name__ == "__main__":
    main()
