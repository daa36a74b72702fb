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
* ``judge70masked``: ``judge70`` encoding the target with its own person blanked out;
* ``judge70srcnorm0`` / ``judge70decbn``: ``judge70`` with no normalisation in the source path /
  batch norm in the decoder;
* ``judge70bn``: ``judge70`` with batch norm throughout the generator (instance norm removes each
  image's absolute colour, which the context and the person are rendered in); ``judge3bn``: the
  same for a fixed 3 epochs, without the 70 % stop;
* ``judge70vanilla`` / ``judge70l2``: ``judge70`` with the poster's log-loss adversarial term / L2
  context term;
* ``judge70x8``: the judge, 8 epochs without the early stop (longer training);
* ``cut``: cut-and-paste with the benchmark's masks (no generator).

Streaming: ``old`` (whole identities rendered in place of their source images, contexts from the
batch, the loader's pad-and-crop before rendering), ``inv`` (the shipped choices: half of each
identity's images rendered, one triplet over source and rendered images, contexts from the whole
target set, the pad-and-crop after rendering), or ``old`` plus one of them: ``half``, ``joint``,
``ctx``, ``padafter``.
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

from crgan_lightning.app.demo import JUDGE_KEY, TRANSLATOR_KEY, run_stage, stage_command  # noqa: E402
from crgan_lightning.app.stages import last_checkpoint  # noqa: E402

_JUDGE70 = {"judge": True, "model.init_args.target_id_ratio": 0.7}
GENERATORS = {
    "scratch1": (1, {}),
    "judge1": (1, {"judge": True}),
    "judge70": (4, _JUDGE70),
    "judge70noskip": (4, {**_JUDGE70, "model.init_args.generator.init_args.target_skips": False}),
    "judge70masked": (4, {**_JUDGE70, "model.init_args.generator.init_args.target_input": "masked"}),
    "judge70srcnorm0": (4, {**_JUDGE70, "model.init_args.generator.init_args.source_norm": "none"}),
    "judge70decbn": (4, {**_JUDGE70, "model.init_args.generator.init_args.decoder_norm": "batch"}),
    "judge70bn": (4, {**_JUDGE70, "model.init_args.generator.init_args.norm": "batch"}),
    "judge3bn": (3, {"judge": True, "model.init_args.target_id_ratio": 0.0,
                     "model.init_args.generator.init_args.norm": "batch"}),
    "judge70vanilla": (4, {**_JUDGE70, "model.init_args.gan_mode": "vanilla"}),
    "judge70l2": (4, {**_JUDGE70, "model.init_args.context_reduction": "l2"}),
    "judge70x8": (8, {**_JUDGE70, "model.init_args.target_id_ratio": 0.0}),
}
#: Streaming: (rendering callback arguments, re-id overrides). ``old``: whole identities rendered in
#: place of their source images, contexts from the batch, the loader's pad-and-crop before
#: rendering; ``inv``: the shipped choices, all four; the others: ``old`` plus one choice.
_OLD = ({"within_identity": False, "contexts_from": "batch", "pad": 0},
        {"data.pad": 4, "model.init_args.joint_triplet": False})
STREAMING = {
    "old": _OLD,
    "inv": ({"within_identity": True, "contexts_from": "dataset", "pad": 4},
            {"data.pad": 0, "model.init_args.joint_triplet": True}),
    "half": ({**_OLD[0], "within_identity": True}, _OLD[1]),
    "joint": (_OLD[0], {**_OLD[1], "model.init_args.joint_triplet": True}),
    "ctx": ({**_OLD[0], "contexts_from": "dataset"}, _OLD[1]),
    "padafter": ({**_OLD[0], "pad": 4}, {**_OLD[1], "data.pad": 0}),
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
            "direct transfer", stage_command("reid_direct", direct, seed, args.root, args.reid_epochs), direct, True)
        direct_ckpt = str(last_checkpoint(direct))
        for row in args.rows:
            gen, streaming = row.split("+")
            if gen == "cut":
                translator = "cut_and_paste"
            else:
                epochs, overrides = GENERATORS[gen]
                overrides = dict(overrides)
                overrides[JUDGE_KEY] = direct_ckpt if overrides.pop("judge", False) else None
                gan = run / f"crgan_{gen}"
                run_stage(f"CR-GAN {gen}", stage_command("crgan", gan, seed, args.root, epochs, overrides), gan, False)
                curves.setdefault(gen, {})[seed] = judge_curve(gan)
                translator = str(last_checkpoint(gan))
            callback, reid = STREAMING[streaming]
            reid = dict(reid)
            if gen == "cut":
                reid["data.masks"] = "auto"
            stage = run / f"reid_{gen}_{streaming}"
            reid.update({TRANSLATOR_KEY: translator, **{f"rendering.init_args.{k}": v for k, v in callback.items()}})
            results.setdefault(row, {})[seed] = run_stage(
                row, stage_command("reid_crgan", stage, seed, args.root, args.reid_epochs, reid), stage, True)
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
