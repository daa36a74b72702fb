"""Validation mAP of TAUDL alone over the epochs, for several CCTA schedules, and its plot.

Trains the ``reid_taudl`` stage of ``synth_a2synth_b`` (the embedded benchmark, trained from
scratch) once per schedule, with a validation pass every epoch, through the ``crgan`` command
line (so exactly the shipped recipe plus the schedule's arguments), and writes:

* ``<out>/curves.json``: per schedule, the epochs and the validation mAP / rank-1 after each;
  runs already in that file are kept (so schedules can be run one at a time, ``--schedules``);
* ``docs/taudl_curve.png`` (``--plot``): mAP over epochs, one line per schedule.

Schedules (``--schedules``, any of):

* ``shipped``: the ``reid_taudl`` config as shipped (its ``ccta_start_epoch`` / ``ccta_ramp_epochs``);
* ``ramp1``: no warm-up, CCTA ramped in over the first epoch (the base configs' schedule, and the
  embedded one before the warm-up);
* ``official``: CCTA at full weight from the first step (the official recipe, without its ImageNet start);
* ``pctd``: PCTD only (``taudl_lambda: 0``);
* ``warmup``: a PCTD-only warm-up of ``--warmup-epochs`` then a CCTA ramp over ``--ramp-epochs``.

One run of 10 epochs takes several minutes of CPU; run it on an idle machine, with ``nice``:

    nice python benchmarks/taudl_curve.py --root data --out runs/taudl_curve --epochs 10 \\
        --schedules warmup pctd --warmup-epochs 5 --ramp-epochs 2 --plot
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE, PAIR = "reid_taudl", "synth_a2synth_b"


def schedule_arguments(name: str, args) -> list[str]:
    """The command-line arguments of schedule ``name``."""
    prefix = "--model.init_args."
    if name == "shipped":
        return []
    if name == "ramp1":
        return [f"{prefix}ccta_start_epoch=0", f"{prefix}ccta_ramp_epochs=1"]
    if name == "official":
        return [f"{prefix}ccta_start_epoch=0", f"{prefix}ccta_ramp_epochs=0"]
    if name == "pctd":
        return [f"{prefix}taudl_lambda=0"]
    if name == "warmup":
        return [f"{prefix}ccta_start_epoch={args.warmup_epochs}", f"{prefix}ccta_ramp_epochs={args.ramp_epochs}"]
    raise SystemExit(f"unknown schedule {name!r}; expected shipped, ramp1, official, pctd or warmup")


def label(name: str, args) -> str:
    if name == "warmup":
        return f"warm-up {args.warmup_epochs:g} + ramp {args.ramp_epochs:g} epochs"
    return {"shipped": "shipped config", "ramp1": "CCTA ramped in over epoch 1", "official": "CCTA from step 1",
            "pctd": "PCTD only"}[name]


def validation_curve(metrics_csv: Path) -> dict[str, list[float]]:
    """Epochs (1-based) and validation mAP / rank-1 from a CSVLogger file."""
    epochs, mAP, rank1 = [], [], []
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            if row.get("val/mAP"):
                epochs.append(int(row["epoch"]) + 1)
                mAP.append(float(row["val/mAP"]))
                rank1.append(float(row["val/rank1"]))
    return {"epoch": epochs, "mAP": mAP, "rank1": rank1}


def run(name: str, args, out: Path) -> dict:
    runs = out / name
    cmd = [sys.executable, "-m", "crgan_lightning.app.cli", "fit", "--stage", STAGE, "--pair", PAIR,
           "--runs", str(runs), f"--data.root={args.root}", f"--seed_everything={args.seed}",
           f"--trainer.max_epochs={args.epochs}", "--trainer.check_val_every_n_epoch=1",
           "--trainer.enable_progress_bar=false", *schedule_arguments(name, args)]
    if args.limit_batches:  # a smoke test of the script, not a curve
        cmd += [f"--trainer.limit_train_batches={args.limit_batches}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    if proc.returncode:
        raise SystemExit(f"{name}: the run failed\n{proc.stderr[-3000:]}")
    curve = validation_curve(runs / PAIR / STAGE / "version_0" / "metrics.csv")
    curve.update(label=label(name, args), seconds=round(time.perf_counter() - start, 1), seed=args.seed,
                 arguments=schedule_arguments(name, args))
    return curve


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for curve in curves.values():
        ax.plot(curve["epoch"], curve["mAP"], marker="o", label=curve["label"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mAP (%)")
    ax.set_title(f"TAUDL alone, {PAIR}, from scratch")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="data", help="data root of the embedded benchmark (made if missing)")
    parser.add_argument("--out", default="runs/taudl_curve")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--schedules", nargs="+", default=["warmup"])
    parser.add_argument("--warmup-epochs", type=float, default=5.0)
    parser.add_argument("--ramp-epochs", type=float, default=2.0)
    parser.add_argument("--limit-batches", type=int, default=0, help="training batches per epoch (smoke test)")
    parser.add_argument("--plot", action="store_true", help="draw docs/taudl_curve.png from curves.json")
    args = parser.parse_args()
    args.root = str(Path(args.root).resolve())
    from crgan_lightning.data.synthetic import generate_benchmark

    generate_benchmark(args.root, seed=0, progress=False)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    store = out / "curves.json"
    curves = json.loads(store.read_text()) if store.is_file() else {}
    for name in args.schedules:
        key = label(name, args)
        curves[key] = run(name, args, out)
        store.write_text(json.dumps(curves, indent=1))
        c = curves[key]
        print(f"{key}: mAP by epoch {dict(zip(c['epoch'], c['mAP']))} ({c['seconds']} s)", flush=True)
    if args.plot:
        plot(curves, REPO / "docs" / "taudl_curve.png")
        print(f"wrote {REPO / 'docs' / 'taudl_curve.png'}")


if __name__ == "__main__":
    main()
