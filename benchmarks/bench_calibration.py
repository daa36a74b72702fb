"""Calibration rows of the embedded benchmark: how it compares with the real Market <-> Duke pair.

The rows do not depend on any translator, so the benchmark is calibrated on them alone and
never on a translator's result. For synth_a -> synth_b, tested on synth_b:

* **LOMO** on synth_b, no training at all (training-free; the same for every seed);
* **supervised** on synth_b's own labels (the upper reference), ``reid_supervised.yaml``;
* **direct transfer**: trained on synth_a, ``reid_direct.yaml``;
* **oracle rendering**: trained on synth_a's people drawn by the benchmark generator itself in
  synth_b's cameras and contexts (``synth_a_in_b``), ``reid_oracle.yaml``: what a perfect
  context renderer would give, the ceiling of every translator.

Each trained row runs once per seed with the shipped config and the demo's re-id schedule and is
tested with the recipe's features (BN-neck, cosine) and the poster's LMP features in the same
pass. It prints every seed, then mean ± sd, and checks the targets of the benchmark's issue.
Every run stays under ``--out/seed<N>/<row>/``; a finished run is read back, so an interrupted
calibration resumes.

    python benchmarks/bench_calibration.py [--seeds 0 1 2] [--root data] [--out runs/calibration]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from crgan_lightning.app.compare import summarize
from crgan_lightning.data.synthetic import generate_benchmark
from crgan_lightning.app.demo import REID_EPOCHS, run_stage, stage_command
from crgan_lightning.descriptors import evaluate_descriptor

#: The rows: (name, run folder, source dataset of the reid_direct stage).
ROWS = (("supervised", "reid_supervised", "synth_b"), ("direct transfer", "reid_direct", "synth_a"),
        ("oracle rendering", "reid_oracle", "synth_a_in_b"))
KEYS = ("rank1", "mAP", "lmp_rank1", "lmp_mAP")


def run_row(name: str, folder: str, source: str, seed: int, root: str, out: Path, epochs: int) -> dict:
    """Train and test one row for one seed (read back when finished earlier): the demo's direct
    transfer recipe with ``source`` as the training set."""
    record = out / f"seed{seed}" / f"{folder}.json"
    if record.is_file():
        return json.loads(record.read_text())
    run = out / f"seed{seed}" / folder
    start = time.perf_counter()
    args = stage_command("reid_direct", run, seed, root, epochs, {"data.source": source})
    metrics = run_stage(f"{name} (seed {seed})", args, run, True)
    metrics["minutes"] = (time.perf_counter() - start) / 60
    record.write_text(json.dumps(metrics, indent=1))
    return metrics


def fmt(row: dict, key: str) -> str:
    return f"{row['mean'][key]:5.1f} ± {row['sd'][key]:3.1f}"


def check(label: str, ok: bool, measured: str) -> str:
    return f"  [{'met' if ok else 'MISSED'}] {label}: {measured}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data")
    parser.add_argument("--out", default="runs/calibration")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--reid-epochs", type=int, default=REID_EPOCHS)
    args = parser.parse_args()
    generate_benchmark(args.root, seed=0, oracle=True)  # kept when already there
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((Path(args.root) / "synth_b" / "meta.json").read_text())
    lomo_file = out / "lomo.json"
    if not lomo_file.is_file():
        lomo_file.write_text(json.dumps(evaluate_descriptor("synth_b", args.root, height=meta["height"],
                                                            width=meta["width"])))
    lomo = json.loads(lomo_file.read_text())
    results = {name: {s: run_row(name, folder, source, s, args.root, out, args.reid_epochs) for s in args.seeds}
               for name, folder, source in ROWS}

    print(f"\nsynth_a -> synth_b (benchmark v{meta['generator_version']}, {meta['height']}x{meta['width']}, "
          f"{meta['num_train_ids']} + {meta['num_test_ids']} ids), tested on synth_b; re-id "
          f"{args.reid_epochs} epochs; seeds {args.seeds}")
    print(f"{'row':<18}{'rank-1':>14}{'mAP':>14}{'LMP rank-1':>14}{'LMP mAP':>14}   per-seed mAP        min/seed")
    print(f"{'LOMO (no training)':<18}{lomo['rank1']:>14.1f}{lomo['mAP']:>14.1f}")
    summary = {}
    for name, _, _ in ROWS:
        summary[name] = s = summarize(results[name], keys=(*KEYS, "minutes"))
        per_seed = ", ".join(f"{results[name][seed]['mAP']:.1f}" for seed in args.seeds)
        print(f"{name:<18}" + "".join(f"{fmt(s, k):>14}" for k in KEYS)
              + f"   {per_seed:<20}{s['mean']['minutes']:5.1f}")
    sup, direct, oracle = (summary[n]["mean"]["mAP"] for n, _, _ in ROWS)
    print("\ntargets")
    print(check("LOMO rank-1 in 10..40", 10 <= lomo["rank1"] <= 40, f"{lomo['rank1']:.1f}"))
    print(check("supervised mAP >= 60", sup >= 60, f"{sup:.1f}"))
    print(check("direct mAP in 15..35 and <= supervised / 2", 15 <= direct <= 35 and direct <= sup / 2,
                f"{direct:.1f} (half of supervised: {sup / 2:.1f})"))
    print(check("oracle mAP >= direct + 15", oracle >= direct + 15, f"{oracle:.1f} (direct + 15: {direct + 15:.1f})"))
    sd = summary["direct transfer"]["sd"]["mAP"]
    print(check("sd of direct mAP <= 1.5", sd <= 1.5, f"{sd:.2f}"))
    (out / "calibration.json").write_text(json.dumps({"lomo": lomo, "rows": summary, "meta": meta}, indent=1))


if __name__ == "__main__":
    main()
