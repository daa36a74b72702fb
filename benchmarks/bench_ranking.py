"""Speed and memory of ``evaluate_rank`` at real scale.

Market-1501 scale (3368 queries x 15913 gallery images, 751 identities, 6 cameras, ~2800
distractors with pid 0): the plain per-query loop (the reference protocol, copied below) and
``evaluate_rank`` run on the same distance matrix in this process; the script checks that the
numbers are identical and prints both times and the ratio. Two distance matrices are timed:

* model-like: distances of synthetic features (an identity centre plus noise per image and a
  camera shift), giving a Rank-1 / mAP in the range of a cross-domain re-id model;
* uniform: random distances, as from an untrained network (the slowest case for
  ``evaluate_rank``, which only sorts the images not farther than each query's hardest match).

``--msmt`` also evaluates MSMT17 scale (11659 x 82161, 3060 identities, 15 cameras) with
``evaluate_rank`` alone and prints the peak resident memory before and after it, to show that
its working memory is bounded (the float32 distance matrix itself takes 3.8 GB).

Usage: ``python benchmarks/bench_ranking.py [--msmt] [--matches-per-id N]``
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from crgan_lightning.metrics import compute_distance, evaluate_rank


def reference_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The protocol written the obvious way, one query at a time (torchreid's loop)."""
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        remove = (g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i])
        raw_cmc = (g_pids[order] == q_pids[i])[~remove].astype(np.int64)
        if not raw_cmc.any():
            continue
        cmc = raw_cmc.cumsum()
        last = np.where(raw_cmc == 1)[0].max()
        all_inp.append(cmc[last] / (last + 1.0))
        cmc = (cmc > 0).astype(np.float64)
        if cmc.size < max_rank:
            cmc = np.concatenate([cmc, np.full(max_rank - cmc.size, cmc[-1])])
        all_cmc.append(cmc[:max_rank])
        precision = raw_cmc.cumsum() / (np.arange(raw_cmc.size) + 1.0)
        all_ap.append((precision * raw_cmc).sum() / raw_cmc.sum())
    return np.asarray(all_cmc).sum(0) / len(all_cmc), float(np.mean(all_ap)), float(np.mean(all_inp))


def make_split(rng, num_q, num_g, num_ids, num_cams, num_distractors, matches_per_id=None):
    """Labels with a re-id structure: every query identity has gallery images under several cameras."""
    q_pids = np.concatenate([np.arange(1, num_ids + 1), rng.integers(1, num_ids + 1, num_q - num_ids)])
    q_camids = rng.integers(0, num_cams, num_q)
    num_labelled = num_g - num_distractors
    if matches_per_id is not None:
        num_labelled = min(num_labelled, matches_per_id * num_ids)
        num_distractors = num_g - num_labelled
    g_pids = np.concatenate([np.arange(1, num_ids + 1), rng.integers(1, num_ids + 1, num_labelled - num_ids),
                             np.zeros(num_distractors, dtype=np.int64)])
    g_camids = rng.integers(0, num_cams, num_g)
    return q_pids, g_pids, q_camids, g_camids


def model_like_distances(rng, q_pids, g_pids, q_camids, g_camids, num_cams, dim=128, noise=1.1):
    """Euclidean distances of features = identity centre + camera shift + per-image noise."""
    num_ids = int(max(q_pids.max(), g_pids.max()))
    centres = torch.from_numpy(rng.normal(size=(num_ids + 1, dim)).astype(np.float32))
    cams = torch.from_numpy(rng.normal(scale=0.5, size=(num_cams, dim)).astype(np.float32))

    def features(pids, camids):
        base = centres[torch.from_numpy(pids)] + cams[torch.from_numpy(camids)]
        base[torch.from_numpy(pids == 0)] = torch.from_numpy(  # distractors: their own random centres
            rng.normal(size=(int((pids == 0).sum()), dim)).astype(np.float32))
        return base + noise * torch.from_numpy(rng.normal(size=(len(pids), dim)).astype(np.float32))

    return compute_distance(features(q_pids, q_camids), features(g_pids, g_camids))


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def current_rss_gb() -> float:
    """Resident memory now (Linux /proc; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 1024**3
    except OSError:
        return float("nan")


def best_time(fn, repeat):
    """Smallest wall time of ``repeat`` calls (the machine may be shared) and the last result."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(name, dist, labels, repeat):
    q_pids, g_pids, q_camids, g_camids = labels
    valid = [(g_pids == p) & (g_camids != c) for p, c in zip(q_pids[:200], q_camids[:200])]
    print(f"\n[{name}] {dist.shape[0]} x {dist.shape[1]}, "
          f"~{np.mean([v.sum() for v in valid]):.1f} valid gallery matches per query")
    t_ref, ref = best_time(lambda: reference_rank(dist, *labels), repeat)
    t_fast, (cmc, m_ap, m_inp) = best_time(lambda: evaluate_rank(dist, *labels, return_minp=True), repeat)
    same = (np.array_equal(cmc, ref[0]) and abs(m_ap - ref[1]) < 1e-12 and abs(m_inp - ref[2]) < 1e-12)
    print(f"  Rank-1 {cmc[0]:.4f}  Rank-5 {cmc[4]:.4f}  mAP {m_ap:.4f}  mINP {m_inp:.4f}")
    print(f"  numbers identical to the per-query reference: {same} "
          f"(|dmAP| = {abs(m_ap - ref[1]):.1e}, |dmINP| = {abs(m_inp - ref[2]):.1e})")
    print(f"  per-query reference: {t_ref:8.3f} s   (best of {repeat})")
    print(f"  evaluate_rank:       {t_fast:8.3f} s")
    print(f"  speed-up:            {t_ref / t_fast:8.1f} x")
    if not same:
        raise SystemExit("evaluate_rank disagrees with the reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--msmt", action="store_true", help="also evaluate MSMT17 scale (needs ~6 GB)")
    parser.add_argument("--matches-per-id", type=int, default=None,
                        help="gallery images per identity (default: Market-1501's ~17.5); "
                             "the rest of the gallery are distractors")
    parser.add_argument("--repeat", type=int, default=2, help="timings are the best of this many runs")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    labels = make_split(rng, 3368, 15913, 751, 6, 2793, args.matches_per_id)
    dist = model_like_distances(rng, *labels, num_cams=6)
    compare("Market-1501 scale, model-like distances", dist, labels, args.repeat)
    dist = rng.random(dist.shape, dtype=np.float32)
    compare("Market-1501 scale, uniform random distances (worst case)", dist, labels, args.repeat)
    del dist

    if args.msmt:
        labels = make_split(rng, 11659, 82161, 3060, 15, 0)
        print(f"\n[MSMT17 scale] 11659 x 82161, peak RSS so far: {peak_rss_gb():.2f} GB")
        start = time.perf_counter()
        dist = model_like_distances(rng, *labels, num_cams=15)
        built = time.perf_counter() - start
        print(f"  distance matrix {dist.nbytes / 1024**3:.2f} GB built in {built:.1f} s, "
              f"peak RSS {peak_rss_gb():.2f} GB")
        for kind in ("model-like", "uniform random"):
            if kind == "uniform random":
                rng.random(out=dist, dtype=np.float32)
            before = current_rss_gb()
            start = time.perf_counter()
            cmc, m_ap, m_inp = evaluate_rank(dist, *labels, return_minp=True)
            print(f"  evaluate_rank, {kind} distances: {time.perf_counter() - start:.2f} s  "
                  f"Rank-1 {cmc[0]:.4f}  mAP {m_ap:.4f}  mINP {m_inp:.4f}")
            peak = peak_rss_gb()
            print(f"    resident memory before {before:.2f} GB, peak RSS after {peak:.2f} GB: evaluate_rank "
                  f"used at most {max(peak - before, 0.0):.2f} GB on top of the matrix")


if __name__ == "__main__":
    main()
