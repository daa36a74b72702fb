"""The paper's two tables on the embedded pair: direct transfer, cut-and-paste, SPGAN+LMP and
CR-GAN+LMP, synth_a -> synth_b, each the mean of 3 seeds with its spread.

Runs :func:`crgan_lightning.app.compare.run_compare` with the shipped configs of the pair
``synth_a2synth_b`` and the demo's schedules (``crgan demo``'s defaults; SPGAN the config's) in the demo's
run folder (``runs/demo``): the stages the demo has already trained for a seed
(``crgan``, ``reid_direct``, ``reid_crgan``) are read back, and the benchmark adds SPGAN,
cut-and-paste and SPGAN re-id runs beside them. It resumes when interrupted.

Table 1 (LPIPS, FID/KID) needs the AlexNet and Inception weights: pass the files offline
(``--lpips-weights``, ``--inception-weights``); without them (and without a network) the
script says which file is missing and prints Table 2.

    python benchmarks/bench_compare.py [--seeds 0 1 2] [--root data] [--out runs/demo]
"""

from __future__ import annotations

import argparse
import time

from crgan_lightning.app.compare import run_compare
from crgan_lightning.data.synthetic import generate_benchmark
from crgan_lightning.app.demo import add_run_arguments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, seeds=True)
    parser.add_argument("--lpips-weights", default=None)
    parser.add_argument("--inception-weights", default=None)
    parser.add_argument("--num-fid", type=int, default=1000)
    args = parser.parse_args()
    generate_benchmark(args.root, seed=0, progress=False)  # kept when already there
    start = time.perf_counter()
    run_compare("synth_a", "synth_b", root=args.root, out=args.out, seeds=args.seeds, crgan_epochs=args.crgan_epochs,
                reid_epochs=args.reid_epochs,
                quality={"lpips_path": args.lpips_weights, "inception_path": args.inception_weights,
                         "num_fid": args.num_fid, "progress": False})
    print(f"\n{(time.perf_counter() - start) / 60:.1f} min (stages already trained are read back)")


if __name__ == "__main__":
    main()
