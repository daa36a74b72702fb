"""The grid ablation: the shipped generator without each suspect of grid-like textures.

Rows (each a change to the shipped CR-GAN config, judged by the frozen direct-transfer network and
trained under the shipped stop rule: 70 % on the mean of the last 2 epochs' judge ratios, not
before 3 epochs, at most 4):

* ``adv0`` / ``id0`` / ``cam0``: without the adversarial / identity / camera term;
* ``sn``: a spectrally normalised discriminator (no norm layers); ``sninst``: spectral and instance
  norm; ``d2``: a discriminator of 2 stride-2 layers instead of 3; ``r1``: an R1 gradient penalty
  of 1 on real target images;
* ``bilinear`` / ``pixelshuffle``: the decoder's upsampling;
* ``paint``: the poster's painting decoder (:class:`~crgan_lightning.models.generator.DualPathGenerator`)
  in place of the compositor; ``channel``: the compositor's per-colour gain instead of a 3x3 matrix;
  ``free``: the context loss's background term leaving out 2 pixels around the source mask
  (``context_free_border``), so the matte may complete a poor mask;
* ``stop70plain``: the shipped generator under the first stop rule (the first epoch past 70 %).

``--fidelity`` (the ablation of issue 23's point 3): trains only the generators, the shipped one
(``crgan``) among them, and scores their renderings against the benchmark's true renderings
(:func:`crgan_lightning.app.fidelity.fidelity_table`, the grid figure beside the truth's own
spread), one table per seed, also written to ``<out>/grid_ablation.json``:

    python benchmarks/bench_grid_ablation.py --fidelity --seeds 0 --out runs/grid --rows adv0 id0 cam0 sn r1 d2 bilinear

Without it, the rows are rows of bench_crgan_options.py (``generator+streaming``, e.g.
``sn+inv``): the generator, then re-id streaming its renderings, tested on the target.
A run folder of ``crgan compare`` or ``crgan demo`` (``--out runs/demo``) lends its direct-transfer
model and shipped generator: finished stages are read back, not trained again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_crgan_options  # noqa: E402

_SHIPPED = {"judge": True, "model.init_args.target_id_ratio": 0.7}
_G = "model.init_args.generator"
_D = "model.init_args.discriminator.init_args"
PAINTER = "crgan_lightning.models.generator.DualPathGenerator"

ROWS = {
    "stop70plain": (4, {**_SHIPPED, "model.init_args.stop_min_epochs": 1, "model.init_args.stop_window": 1}),
    "paint": (4, {**_SHIPPED, f"{_G}.class_path": PAINTER}),
    "channel": (4, {**_SHIPPED, f"{_G}.init_args.tone": "channel"}),
    "free": (4, {**_SHIPPED, "model.init_args.context_free_border": 2}),
    "adv0": (4, {**_SHIPPED, "model.init_args.lambda_adv": 0.0}),
    "id0": (4, {**_SHIPPED, "model.init_args.lambda_id": 0.0}),
    "cam0": (4, {**_SHIPPED, "model.init_args.lambda_cam": 0.0}),
    "sn": (4, {**_SHIPPED, f"{_D}.norm": "spectral"}),
    "sninst": (4, {**_SHIPPED, f"{_D}.spectral": True}),
    "d2": (4, {**_SHIPPED, f"{_D}.n_layers": 2}),
    "r1": (4, {**_SHIPPED, "model.init_args.r1_gamma": 1.0}),
    "bilinear": (4, {**_SHIPPED, f"{_G}.init_args.upsample": "bilinear"}),
    "pixelshuffle": (4, {**_SHIPPED, f"{_G}.init_args.upsample": "pixelshuffle"}),
}


def fidelity_ablation(argv: list[str]) -> dict:
    """Train the chosen generators (and the shipped one) per seed and score them against the truth."""
    from crgan_lightning.app.demo import JUDGE_KEY, run_stage, stage_command
    from crgan_lightning.app.fidelity import fidelity_table, format_fidelity_table
    from crgan_lightning.app.stages import last_checkpoint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fidelity", action="store_true", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--root", default="data")
    parser.add_argument("--out", default="runs/grid")
    parser.add_argument("--rows", nargs="+", default=["adv0", "id0", "cam0", "sn", "r1", "d2", "bilinear"],
                        choices=sorted(ROWS))
    parser.add_argument("--reid-epochs", type=int, default=10, help="the direct-transfer judge's schedule")
    parser.add_argument("--crgan-epochs", type=int, default=4, help="the shipped generator's schedule")
    parser.add_argument("--pairs", type=int, default=200, help="evaluation pairs of the fidelity table")
    args = parser.parse_args(argv)
    record: dict = {"rows": ["crgan", *args.rows], "seeds": {}}
    for seed in args.seeds:
        run = Path(args.out) / f"seed{seed}"
        direct = run / "reid_direct"
        run_stage("direct transfer", stage_command("reid_direct", direct, seed, args.root, args.reid_epochs),
                  direct, True)
        judge = str(last_checkpoint(direct))
        shipped = run / "crgan"
        run_stage("CR-GAN (shipped)", stage_command("crgan", shipped, seed, args.root, args.crgan_epochs,
                                                    {JUDGE_KEY: judge}), shipped, False)
        checkpoints = [str(last_checkpoint(shipped))]
        for row in args.rows:
            epochs, overrides = ROWS[row]
            overrides = {k: v for k, v in overrides.items() if k != "judge"}
            overrides[JUDGE_KEY] = judge
            gan = run / f"crgan_{row}"
            run_stage(f"CR-GAN {row}", stage_command("crgan", gan, seed, args.root, epochs, overrides), gan, False)
            checkpoints.append(str(last_checkpoint(gan)))
        table = fidelity_table(checkpoints, root=args.root, num_pairs=args.pairs)
        for row, name in zip(table["rows"][2:], record["rows"]):
            row["row"] = name
        print(f"\nseed {seed}: rows in order: {', '.join(record['rows'])}")
        print(format_fidelity_table(table))
        record["seeds"][seed] = table
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "grid_ablation.json").write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    if "--fidelity" in sys.argv[1:]:
        fidelity_ablation(sys.argv[1:])
    else:
        clash = set(ROWS) & set(bench_crgan_options.GENERATORS)
        if clash:
            raise SystemExit(f"rows {sorted(clash)} exist in bench_crgan_options.py already")
        bench_crgan_options.GENERATORS.update(ROWS)
        bench_crgan_options.main()
