"""CR-GAN's choices measured on the embedded pair: which judge, which generator, which streaming.

For each seed, trains (through the same LightningCLI and configs a user runs, the demo's
schedule) the direct-transfer re-id model, the CR-GAN generators of the chosen variants and the
streaming re-id models of the chosen rows, tests each on synth_b, and prints per row the
recipe mAP, the LMP mAP and rank-1 (mean ± sd over the seeds, and per seed), and each
generator's judge curve (``epoch/judge_id_ratio``: identity accuracy of the judge on renderings
over its accuracy on real source images).

    python benchmarks/bench_crgan_options.py --seeds 0 1 2 --out runs/options [--rows ...]

Generators (``--rows`` names them as ``generator+streaming``):

* ``scratch1``: the judge is a classifier trained from scratch beside the generator, 1 epoch;
* ``judge1``: the frozen direct-transfer re-id network judges (a camera head is trained), 1 epoch;
* ``judge70``: the same, trained until renderings keep the identity at 70 % of the real accuracy
  (at most 4 epochs);
* ``judge70noskip``: ``judge70`` without target skips (the decoder sees the target only through
  the fused bottleneck);
* ``cut``: cut-and-paste with the benchmark's masks (no generator).

Streaming: ``old`` (whole identities rendered in place of their source images, contexts from the
batch, the loader's pad-and-crop before rendering) or ``inv`` (half of each identity's images
rendered, one triplet over source and rendered images, contexts from the whole target set, the
pad-and-crop after rendering).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from crgan_lightning.demo import CONFIGS, run_stage, write_config  # noqa: E402

GENERATORS = {
    "scratch1": (1, {}),
    "judge1": (1, {"judge": True}),
    "judge70": (4, {"judge": True, "model.init_args.target_id_ratio": 0.7}),
    "judge70noskip": (4, {"judge": True, "model.init_args.target_id_ratio": 0.7,
                          "model.init_args.g_target_skips": False}),
}
STREAMING = {
    "old": ({}, {}),
    "inv": ({"within_identity": True, "contexts_from": "dataset", "pad": 4},
            {"data.pad": 0, "model.init_args.joint_triplet": True}),
}


def judge_curve(run: Path) -> list[float]:
    rows = []
    for metrics in sorted(run.glob("logs/version_*/metrics.csv")):
        rows += [r for r in csv.DictReader(metrics.open()) if r.get("epoch/judge_id_ratio")]
    return [round(float(r["epoch/judge_id_ratio"]), 3) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--root", default="data")
    parser.add_argument("--out", default="runs/options")
    parser.add_argument("--rows", nargs="+", default=["scratch1+old", "judge70+old", "judge70+inv"])
    parser.add_argument("--reid-epochs", type=int, default=10)
    args = parser.parse_args()
    results: dict[str, dict[int, dict]] = {"direct": {}}
    curves: dict[str, dict[int, list]] = {}
    for seed in args.seeds:
        run = Path(args.out) / f"seed{seed}"
        direct = run / "reid_direct"
        results["direct"][seed] = run_stage(
            "direct transfer", write_config("reid_direct.yaml", CONFIGS, direct, seed, args.root, args.reid_epochs),
            direct, True)
        direct_ckpt = str(direct / "checkpoints" / "last.ckpt")
        for row in args.rows:
            gen, streaming = row.split("+")
            if gen == "cut":
                translator = "cut_and_paste"
            else:
                epochs, overrides = GENERATORS[gen]
                overrides = dict(overrides)
                if overrides.pop("judge", False):
                    overrides["model.init_args.judge"] = direct_ckpt
                gan = run / f"crgan_{gen}"
                run_stage(f"CR-GAN {gen}", write_config("crgan.yaml", CONFIGS, gan, seed, args.root, epochs,
                                                        overrides=overrides), gan, False)
                curves.setdefault(gen, {})[seed] = judge_curve(gan)
                translator = str(gan / "checkpoints" / "last.ckpt")
            callback, reid = STREAMING[streaming]
            reid = dict(reid)
            if gen == "cut":
                reid["data.masks"] = "auto"
            stage = run / f"reid_{gen}_{streaming}"
            results.setdefault(row, {})[seed] = run_stage(
                row, write_config("reid_crgan.yaml", CONFIGS, stage, seed, args.root, args.reid_epochs,
                                  {"ContextRenderingCallback": {"translator": translator, **callback}}, reid),
                stage, True)
    print(f"\nsynth_a -> synth_b, seeds {args.seeds}, re-id {args.reid_epochs} epochs")
    print(f"{'row':<24}{'mAP':>16}{'LMP mAP':>16}{'rank-1':>16}   per seed (mAP)")
    for row, per_seed in results.items():
        cells = []
        for key in ("mAP", "lmp_mAP", "rank1"):
            values = [per_seed[s][key] for s in args.seeds if key in per_seed[s]]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):6.1f} ± {sd:4.1f}" if values else "-")
        print(f"{row:<24}" + "".join(f"{c:>16}" for c in cells) + "   "
              + ", ".join(f"{per_seed[s]['mAP']:.1f}" for s in args.seeds))
    for gen, per_seed in curves.items():
        print(f"judge id ratio per epoch, {gen}: " + "; ".join(f"seed {s}: {c}" for s, c in per_seed.items()))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "options.json").write_text(json.dumps({"results": results, "curves": curves}, indent=1))


if __name__ == "__main__":
    main()
