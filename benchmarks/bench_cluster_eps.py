"""Which DBSCAN radius suits a network's target features: the label-free rho rule against the true
identities (a diagnostic of the embedded benchmark, never a training input).

Extracts the BN-neck features of the target's training images with a re-id checkpoint (no
augmentation), computes the k-reciprocal Jaccard distance for each ``--k1``, and prints the eps
of MMT's rule (:func:`crgan_lightning.clustering.eps_from_rho`, the mean of the smallest ``rho``
share of the pairs' distances) beside, for each eps of ``--eps``, DBSCAN's cluster count, outlier
share and agreement with the true identities (ARI, pairwise precision / recall / F-score):

    python benchmarks/bench_cluster_eps.py runs/synth_a2synth_b/reid_direct/checkpoints/last.ckpt \\
        --root data [--target synth_b] [--k1 30 20] [--eps 0.4 0.5 0.6]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from crgan_lightning.clustering import dbscan_labels, eps_from_rho, jaccard_distance, label_agreement  # noqa: E402
from crgan_lightning.modules.reid import ReIDModule  # noqa: E402


@torch.no_grad()
def target_features(ckpt: Path, folder: Path, batch: int = 256) -> tuple[torch.Tensor, np.ndarray]:
    """``(N, D)`` features of every image of ``folder`` (sorted) and their identities (file names)."""
    module = ReIDModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise SystemExit(f"{folder}: no .jpg images; expected a bounding_box_train folder of crgan synth")
    pids = np.array([int(f.name.split("_")[0]) for f in files])
    feats = []
    for i in range(0, len(files), batch):
        x = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) for f in files[i:i + batch]])
        x = torch.from_numpy(x).permute(0, 3, 1, 2) / 127.5 - 1  # the DataModule's normalisation
        feats.append(module.net.extract(x, pooling=module.net.pooling).float())
    return torch.cat(feats), pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", type=Path)
    parser.add_argument("--root", type=Path, default=Path("data"))
    parser.add_argument("--target", default="synth_b")
    parser.add_argument("--k1", type=int, nargs="+", default=[30])
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--rho", type=float, default=1.6e-3)
    parser.add_argument("--min-samples", type=int, default=4)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7])
    args = parser.parse_args()
    torch.set_num_threads(1)
    feats, pids = target_features(args.ckpt, args.root / args.target / "bounding_box_train")
    same = sum(c * (c - 1) / 2 for c in np.unique(pids, return_counts=True)[1]) / (len(pids) * (len(pids) - 1) / 2)
    print(f"{len(pids)} images of {len(set(pids))} identities; same-identity pairs: {same:.2e} of all pairs")
    for k1 in args.k1:
        start = time.perf_counter()
        distance = jaccard_distance(feats, k1, args.k2)
        print(f"k1={k1}: rho={args.rho:g} gives eps {eps_from_rho(distance, args.rho):.3f} "
              f"({time.perf_counter() - start:.0f} s)")
        for eps in args.eps:
            labels = dbscan_labels(distance, eps, args.min_samples)
            scores = " ".join(f"{k} {v:.3f}" for k, v in label_agreement(labels, pids).items())
            print(f"  eps {eps:.2f}: {labels.max() + 1} clusters, outliers {(labels < 0).mean():.2f}, {scores}")


if __name__ == "__main__":
    main()
