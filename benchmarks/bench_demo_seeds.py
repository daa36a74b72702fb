"""Does CR-GAN streaming beat direct transfer on the embedded benchmark, beyond the seed spread?

Runs the demo (``crgan demo``: CR-GAN synth_a -> synth_b, then re-id (a) direct transfer and
(b) with CR-GAN streaming, both tested on synth_b) once per seed with the shipped configs and
prints, per seed, the target rank-1/5/10 and mAP of both runs, the gain (b) - (a) and the
minutes the seed took; then the mean and sample standard deviation over seeds of each
method and of the gain. Every seed's runs stay under ``--out/seed<N>/`` and a seed that has
finished is read back rather than trained again, so an interrupted benchmark resumes.

    python benchmarks/bench_demo_seeds.py [--seeds 0 1 2] [--root data] [--out runs/demo]

The figures (with the machine's load noted) are the ones reported in the README.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from crgan_lightning.app.compare import KEYS, summarize
from crgan_lightning.data.synthetic import generate_benchmark
from crgan_lightning.app.demo import add_run_arguments, run_demo

METHODS = ("direct transfer", "CR-GAN streaming")


def mean_sd(row: dict, key: str) -> str:
    """``mean ± sd`` of one metric of a :func:`crgan_lightning.app.compare.summarize` row."""
    return f"{row['mean'][key]:6.1f} ± {row['sd'][key]:4.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, seeds=True)
    args = parser.parse_args()
    generate_benchmark(args.root, seed=0, progress=False)  # kept when already there
    rows = []
    for seed in args.seeds:
        record = Path(args.out) / f"seed{seed}" / "results.json"
        if record.is_file():
            row = json.loads(record.read_text())
        else:
            start = time.perf_counter()
            results = run_demo(root=args.root, out=args.out, seed=seed, crgan_epochs=args.crgan_epochs,
                               reid_epochs=args.reid_epochs)
            row = {"seed": seed, "minutes": (time.perf_counter() - start) / 60, **results}
            record.write_text(json.dumps(row, indent=1))
        rows.append(row)

    print(f"\nsynth_a -> synth_b, tested on synth_b; CR-GAN {args.crgan_epochs} epochs, "
          f"re-id {args.reid_epochs} epochs")
    print(f"{'seed':>4} {'min':>5}  " + "  ".join(f"{m[:6]} {k:>6}" for m in ("direct", "CR-GAN") for k in KEYS)
          + "   gain mAP  gain r1")
    for row in rows:
        a, b = row[METHODS[0]], row[METHODS[1]]
        print(f"{row['seed']:>4} {row['minutes']:5.1f}  " + "  ".join(f"{r[k]:13.1f}" for r in (a, b) for k in KEYS)
              + f"   {b['mAP'] - a['mAP']:8.1f} {b['rank1'] - a['rank1']:8.1f}")
    print(f"\nmean ± sd over {len(rows)} seeds")
    for method in METHODS:
        summary = summarize({r["seed"]: r[method] for r in rows})
        print(f"  {method:<18}" + "".join(f"  {k} {mean_sd(summary, k)}" for k in KEYS))
    gains = {r["seed"]: {k: r[METHODS[1]][k] - r[METHODS[0]][k] for k in KEYS} for r in rows}
    summary = summarize(gains)
    for key in ("mAP", "rank1"):
        per_seed = ", ".join(f"{g[key]:+.1f}" for g in gains.values())
        print(f"  gain (b) - (a) {key:<6} {mean_sd(summary, key)}   per seed: {per_seed}")
    print(f"  minutes per seed {mean_sd(summarize({r['seed']: r for r in rows}, keys=['minutes']), 'minutes')}")


if __name__ == "__main__":
    main()
