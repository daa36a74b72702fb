"""How fast the library parses a Market-1501-size dataset folder.

What it does: writes a tree of EMPTY files with real Market-1501 names into a temporary folder
(``Market-1501-v15.09.15/bounding_box_train`` 12,936 images over 751 ids, ``query`` 3,368 over
750 ids, ``bounding_box_test`` 15,913 kept images of the 750 test ids plus 0000 distractors, and
3,819 junk ``-1_c..`` files), then times

* ``crgan_lightning.data.load_reid_dataset("market", root)``, the library's parser, and
* a naive parser of the same tree, as older re-id scripts wrote it: ``glob.glob`` per split,
  ``re.search`` with a pattern string per file and ``os.path.exists`` per file,

each as the best of ``--repeats`` runs after one warm-up run, in this process.

How to read the output: the dataset summary table shows that the tree parsed to the published
Market-1501 statistics; then one line per parser with the best time, files per second and the
first (warm-up) time; then the ratio naive / library (above 1 means the library is faster);
then a verdict line for the target (Market-size folders parse well under a second). The files
were just written, so the directory entries are in the OS cache: these are warm-cache figures.
A first parse on a cold disk adds the directory reads, which no parser can avoid.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from crgan_lightning.data import load_reid_dataset

MARKET_DIR = "Market-1501-v15.09.15"


def _assign(rng: np.random.Generator, pids: np.ndarray, count: int) -> np.ndarray:
    """``count`` person ids drawn from ``pids``, each id used at least once."""
    if count < len(pids):
        raise SystemExit(f"cannot spread {count} images over {len(pids)} ids; give at least one image per id")
    return np.concatenate([pids, rng.choice(pids, size=count - len(pids))])


def _write_split(folder: Path, pids: np.ndarray, rng: np.random.Generator) -> int:
    """Empty files ``<pid>_c<cam>s<seq>_<frame>_<box>.jpg``, unique names, cameras c1..c6."""
    folder.mkdir(parents=True, exist_ok=True)
    cams = rng.integers(1, 7, size=len(pids))
    seqs = rng.integers(1, 7, size=len(pids))
    frames = rng.integers(0, 200_000, size=len(pids))
    seen: set[str] = set()
    for pid, cam, seq, frame in zip(pids.tolist(), cams.tolist(), seqs.tolist(), frames.tolist()):
        box = 1
        pid_str = "-1" if pid == -1 else f"{pid:04d}"
        name = f"{pid_str}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg"
        while name in seen:  # same person, camera and frame: the next detection box
            box += 1
            name = f"{pid_str}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg"
        seen.add(name)
        open(folder / name, "wb").close()
    return len(pids)


def build_market_tree(root: Path, args: argparse.Namespace) -> tuple[Path, int]:
    """Write the Market-1501 tree under ``root``; return the dataset folder and the file count."""
    rng = np.random.default_rng(args.seed)
    ids = rng.permutation(np.arange(1, 1502))
    train_ids = np.sort(ids[: args.train_ids])
    test_ids = np.sort(ids[args.train_ids: args.train_ids + args.test_ids])
    dataset = root / MARKET_DIR
    gallery_real = args.gallery - args.distractors
    gallery = np.concatenate([
        _assign(rng, test_ids, gallery_real),
        np.zeros(args.distractors, dtype=np.int64),  # 0000: distractors, kept by the protocol
        np.full(args.junk, -1, dtype=np.int64),  # -1: junk, dropped by every parser
    ])
    n = _write_split(dataset / "bounding_box_train", _assign(rng, train_ids, args.train), rng)
    n += _write_split(dataset / "query", _assign(rng, test_ids, args.query), rng)
    n += _write_split(dataset / "bounding_box_test", gallery, rng)
    return dataset, n


def naive_parse(dataset: Path) -> dict[str, list[tuple[str, int, int]]]:
    """The way older re-id scripts parsed Market-1501: glob, a regex search and an exists() per file."""
    out = {}
    splits = (("train", "bounding_box_train"), ("query", "query"), ("gallery", "bounding_box_test"))
    for split, folder in splits:
        img_paths = sorted(glob.glob(os.path.join(str(dataset), folder, "*.jpg")))
        data = []
        for img_path in img_paths:
            pid, camid = map(int, re.search(r"([-\d]+)_c(\d)", img_path).groups())
            if pid == -1:
                continue  # junk images are just ignored
            if not os.path.exists(img_path) or not 1 <= camid <= 6:
                raise RuntimeError(f"bad image {img_path}")
            data.append((img_path, pid, camid - 1))
        out[split] = data
    return out


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(first-call time, best of ``repeats`` further calls, last result)."""
    t0 = time.perf_counter()
    result = fn()
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return first, best, result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed runs per parser after a warm-up (default 5)")
    p.add_argument("--train", type=int, default=12936, help="bounding_box_train images (default 12936)")
    p.add_argument("--train-ids", type=int, default=751, help="training identities (default 751)")
    p.add_argument("--query", type=int, default=3368, help="query images (default 3368)")
    p.add_argument("--test-ids", type=int, default=750, help="test ids, query + gallery (default 750)")
    p.add_argument("--gallery", type=int, default=15913,
                   help="kept bounding_box_test images, distractors included (default 15913)")
    p.add_argument("--distractors", type=int, default=2793, help="0000 distractors among them (default 2793)")
    p.add_argument("--junk", type=int, default=3819, help="-1 junk files in the gallery (default 3819)")
    p.add_argument("--target", type=float, default=1.0, help="target parse time in seconds (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the file names (default 0)")
    args = p.parse_args(argv)
    if args.train_ids + args.test_ids > 1501:
        raise SystemExit("--train-ids + --test-ids must be at most 1501 (ids 0001..1501)")

    with tempfile.TemporaryDirectory(prefix="bench_parsing_") as tmp:
        t0 = time.perf_counter()
        dataset_dir, n_files = build_market_tree(Path(tmp), args)
        print(f"wrote {n_files:,} empty files in {time.perf_counter() - t0:.2f} s under {dataset_dir}")

        lib_first, lib_best, ds = best_time(lambda: load_reid_dataset("market", tmp), args.repeats)
        naive_first, naive_best, naive = best_time(lambda: naive_parse(dataset_dir), args.repeats)

        kept = len(ds.train) + len(ds.query) + len(ds.gallery)
        naive_kept = sum(len(v) for v in naive.values())
        print(ds.summary())
        if naive_kept != kept:
            print(f"WARNING: the naive parser kept {naive_kept:,} images, the library {kept:,}")

        print(f"\n{n_files:,} files scanned, {kept:,} images kept (junk dropped); "
              f"best of {args.repeats} after one warm-up")
        print(f"  {'parser':<34}{'best':>9}{'files/s':>13}{'first call':>12}")
        for label, first, best in (
            ("library  load_reid_dataset", lib_first, lib_best),
            ("naive    glob+re.search+exists", naive_first, naive_best),
        ):
            print(f"  {label:<34}{best:>8.3f}s{n_files / best:>13,.0f}{first:>11.3f}s")
        print(f"ratio naive / library: {naive_best / lib_best:.2f}x (above 1: the library is faster)")
        verdict = "met" if lib_best < args.target else "NOT met"
        print(f"parse {n_files:,} files: {lib_best:.2f} s (target < {args.target:g} s: {verdict})")


if __name__ == "__main__":
    main()
