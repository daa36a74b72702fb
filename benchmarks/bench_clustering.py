"""Speed and memory of the clustering step (Jaccard distance + DBSCAN) at DukeMTMC-reID scale.

16,522 features of 2,048 dimensions (the size of DukeMTMC-reID's training split and of a
ResNet-50 feature), random but clustered: 702 identity centres with 2 to 60 images each (noise of
the centres' scale in every dimension) plus 3 % of images drawn from no identity. Two
implementations cluster them with the same settings (SpCL's: k1=30, k2=6, DBSCAN eps=0.6,
min_samples=4), each in a process of its own so that its peak resident memory is its own:

* ``library``: :func:`crgan_lightning.clustering.jaccard_distance` (exact kNN block by block, the
  products through numpy's BLAS on the CPU, sparse encoding and sparse distances, entries beyond
  eps dropped) and DBSCAN on the sparse matrix;
* ``reference``: the algorithm as SpCL's ``compute_jaccard_distance`` writes it, dense numpy over the
  kNN lists (an ``N x N`` encoding, its query expansion and the ``N x N`` distance, one image at a
  time; exact kNN by numpy blocks in place of faiss), then DBSCAN on the dense matrix.

The script prints each one's time (features already in memory; process start and imports not
counted), its peak resident memory (``ru_maxrss``) and the part above the resident memory before the
work, the clusters found, the adjusted Rand index between the two labelings (1.0: the same
clusters) and the speed ratio.

Usage: ``python benchmarks/bench_clustering.py [--num 16522] [--dim 2048] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K1, K2, EPS, MIN_SAMPLES = 30, 6, 0.6, 4


def make_features(num: int, dim: int, seed: int = 0) -> np.ndarray:
    """``(num, dim)`` float32 features: identities of 2-60 images around random centres, and 3 %
    of images from no identity."""
    rng = np.random.default_rng(seed)
    num_free = int(0.03 * num)
    sizes = rng.integers(2, 61, size=num)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), num - num_free)) + 1]
    sizes[-1] -= sizes.sum() - (num - num_free)
    sizes = sizes[sizes > 0]
    centres = rng.standard_normal((len(sizes), dim), dtype=np.float32)
    feats = np.repeat(centres, sizes, axis=0)
    feats += rng.standard_normal(feats.shape, dtype=np.float32) * np.float32(1.0)
    free = rng.standard_normal((num_free, dim), dtype=np.float32) * np.float32(np.sqrt(2.0))
    return np.concatenate([feats, free])[rng.permutation(num)]


def rss_mb() -> float:
    """Current resident memory of this process in MB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- the two implementations

def library(features: np.ndarray) -> np.ndarray:
    import torch

    from crgan_lightning.clustering import dbscan_labels, jaccard_distance

    dist = jaccard_distance(torch.from_numpy(features), K1, K2, max_distance=EPS)
    return dbscan_labels(dist, EPS, MIN_SAMPLES)


def reference_knn(feat: np.ndarray, k: int, rows: int = 1024) -> np.ndarray:
    """Exact kNN of normalised features by blocks of numpy distances (what faiss' flat index gives)."""
    out = np.empty((len(feat), k), dtype=np.int64)
    for start in range(0, len(feat), rows):
        dist = 2 - 2 * feat[start:start + rows] @ feat.T
        part = np.argpartition(dist, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(dist, part, 1), axis=1, kind="stable")
        out[start:start + rows] = np.take_along_axis(part, order, 1)
    return out


def reference(features: np.ndarray) -> np.ndarray:
    """SpCL's compute_jaccard_distance written as it is (dense float32 numpy), then dense DBSCAN."""
    from sklearn.cluster import DBSCAN

    feat = features / np.linalg.norm(features, axis=1, keepdims=True)
    num = len(feat)
    initial_rank = reference_knn(feat, K1)

    def k_reciprocal_neigh(i: int, k1: int) -> np.ndarray:
        forward = initial_rank[i, :k1 + 1]
        backward = initial_rank[forward, :k1 + 1]
        return forward[np.where(backward == i)[0]]

    nn_k1 = [k_reciprocal_neigh(i, K1) for i in range(num)]
    nn_k1_half = [k_reciprocal_neigh(i, int(np.around(K1 / 2))) for i in range(num)]
    V = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        k_recip = nn_k1[i]
        expansion = k_recip
        for candidate in k_recip:
            cand = nn_k1_half[candidate]
            if len(np.intersect1d(cand, k_recip)) > 2 / 3 * len(cand):
                expansion = np.append(expansion, cand)
        expansion = np.unique(expansion)
        dist = 2 - 2 * feat[i] @ feat[expansion].T
        weight = np.exp(-(dist - dist.min()))
        V[i, expansion] = weight / weight.sum()
    V_qe = np.zeros_like(V)
    for i in range(num):
        V_qe[i] = np.mean(V[initial_rank[i, :K2]], axis=0)
    V = V_qe
    del V_qe
    inv_index = [np.where(V[:, i] != 0)[0] for i in range(num)]
    jaccard = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        temp_min = np.zeros(num, dtype=np.float32)
        nonzero = np.where(V[i] != 0)[0]
        for col in nonzero:
            rows = inv_index[col]
            temp_min[rows] += np.minimum(V[i, col], V[rows, col])
        jaccard[i] = 1 - temp_min / (2 - temp_min)
    del inv_index, V
    jaccard[jaccard < 0] = 0.0
    return DBSCAN(eps=EPS, min_samples=MIN_SAMPLES, metric="precomputed", n_jobs=1).fit_predict(jaccard)


# --------------------------------------------------------------------------- driver

def run_part(part: str, num: int, dim: int, out: Path) -> None:
    """In a child process: make the features, run one implementation, write labels and figures."""
    features = make_features(num, dim)
    import torch  # noqa: F401  (imported before the baseline, as by both parts)
    import sklearn.cluster  # noqa: F401

    base = rss_mb()
    start = time.perf_counter()
    labels = (library if part == "library" else reference)(features)
    seconds = time.perf_counter() - start
    np.save(out / f"{part}.npy", labels)
    record = {"seconds": seconds, "peak_mb": peak_rss_mb(), "base_mb": base}
    (out / f"{part}.json").write_text(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num", type=int, default=16522)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2, help="torch / BLAS threads of each part")
    parser.add_argument("--part", choices=("library", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--skip-reference", action="store_true", help="time the library alone")
    args = parser.parse_args()
    if args.part:
        run_part(args.part, args.num, args.dim, Path(args.out))
        return

    from sklearn.metrics import adjusted_rand_score

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    parts = ("library",) if args.skip_reference else ("library", "reference")
    print(f"{args.num} features x {args.dim} dims, k1={K1} k2={K2} eps={EPS} min_samples={MIN_SAMPLES}, "
          f"{args.threads} thread(s)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            subprocess.run([sys.executable, __file__, "--part", part, "--out", tmp, "--num", str(args.num),
                            "--dim", str(args.dim)], env=env, check=True)
            record = json.loads((Path(tmp) / f"{part}.json").read_text())
            labels = np.load(Path(tmp) / f"{part}.npy")
            results[part] = (record, labels)
            clusters = len(set(labels.tolist()) - {-1})
            print(f"{part:>9}: {record['seconds']:7.1f} s, peak resident {record['peak_mb'] / 1024:5.2f} GB "
                  f"({(record['peak_mb'] - record['base_mb']) / 1024:5.2f} GB above the {record['base_mb'] / 1024:.2f} "
                  f"GB before the work); {clusters} clusters, {np.mean(labels < 0) * 100:.1f} % outliers")
    if "reference" in results:
        (lib, lib_labels), (ref, ref_labels) = results["library"], results["reference"]
        print(f"ARI(library, reference) = {adjusted_rand_score(ref_labels, lib_labels):.6f}; "
              f"labels identical: {bool(np.array_equal(lib_labels, ref_labels))}; "
              f"speed-up {ref['seconds'] / lib['seconds']:.1f}x, "
              f"memory above baseline {(ref['peak_mb'] - ref['base_mb']) / max(lib['peak_mb'] - lib['base_mb'], 1):.1f}"
              "x less")


if __name__ == "__main__":
    main()
