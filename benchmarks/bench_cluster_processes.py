"""Does clustering on the target depend on the number of processes? (docs/clustering.md)

For each seed, trains the clustering stage (``reid_cluster``) from the seed's direct-transfer model
of a ``crgan compare`` run folder with N processes (DDP; gloo on the CPU) at the same global batch:
each process gets ``1/N`` of the source and target batches of the 1-process recipe, so a step sees
the same number of images, the memory update gathers them all and an epoch has the same number of
steps. Each run is tested on one process. Printed beside the 1-process rows that ``crgan compare``
trained (``direct -> clustering``, same seeds, same schedule): mAP per seed, mean ± sd, and the
difference against the seed spread. ``--batchnorm local`` trains the N-process runs with batch
norm per process (``--trainer.sync_batchnorm=false``) instead of the shipped batch norm over the
global batch (``sync_batchnorm: true`` in the clustering configs,
:class:`~crgan_lightning.models.batchnorm.GlobalBatchNorm`), to show what the latter is for.

    crgan compare --source synth_a --target synth_b --root data --out runs/compare --seeds 0 1 2 \\
        --methods 'direct -> clustering' --no-quality
    python benchmarks/bench_cluster_processes.py --runs runs/compare --root data --seeds 0 1 2 --processes 2
    python benchmarks/bench_cluster_processes.py --runs runs/compare --root data --seeds 0 1 2 --processes 2 \
        --batchnorm local

The 2-process runs take each 1 CPU thread (OMP_NUM_THREADS=1 unless set): on a 2-core machine the
two processes use both cores, as the 1-process run's two threads do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from crgan_lightning.app.compare import INIT_KEY  # noqa: E402
from crgan_lightning.app.demo import fit_finished, saved_config, stage_command  # noqa: E402
from crgan_lightning.app.lightning import resolved_config, run_lightning_cli  # noqa: E402
from crgan_lightning.app.stages import last_checkpoint  # noqa: E402

STAGE = "reid_cluster"
ROW = "direct -> clustering"


def train(run: Path, seed: int, root: str, epochs: int, processes: int, init: str, source: str, target: str,
          global_batchnorm: bool = True) -> dict:
    """Fit the clustering stage with ``processes`` DDP processes (resumed when interrupted), test it on one."""
    base = resolved_config(["--stage", STAGE, "--source", source, "--target", target])["data"]
    per_rank = {}
    for key in ("batch_size", "target_batch_size"):
        if base[key] % processes:
            raise SystemExit(f"data.{key}={base[key]} does not split over {processes} processes")
        per_rank[f"data.{key}"] = base[key] // processes
    args = stage_command(STAGE, run, seed, root, epochs, {INIT_KEY: init}, source=source, target=target)
    ddp = [f"--trainer.devices={processes}", "--trainer.accelerator=cpu",
           f"--trainer.strategy={'ddp' if processes > 1 else 'auto'}",
           *(f"--{k}={v}" for k, v in per_rank.items()), f"--trainer.sync_batchnorm={str(global_batchnorm).lower()}"]
    ckpt = last_checkpoint(run)
    if not (ckpt.is_file() and fit_finished(ckpt, epochs)):
        resume = ["--ckpt_path", str(ckpt)] if ckpt.is_file() else []
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        print(f"[bench] {STAGE}, seed {seed}, {processes} processes -> {run}", flush=True)
        subprocess.run([sys.executable, "-m", "crgan_lightning.app.cli", "fit", *args, *ddp, *resume],
                       check=True, env=env)
    cli = run_lightning_cli(["test", *args, "--ckpt_path", str(last_checkpoint(run))])
    metrics = {k.split("/", 1)[1]: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}
    metrics["batches_per_rank"] = per_rank
    metrics["epochs"] = saved_config(run)["trainer"]["max_epochs"]
    return metrics


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/compare", help="a crgan compare run folder (seed<N>/reid_direct)")
    parser.add_argument("--root", default="data")
    parser.add_argument("--source", default="synth_a")
    parser.add_argument("--target", default="synth_b")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batchnorm", choices=["global", "local"], default="global",
                        help="batch norm over the global batch (the shipped sync_batchnorm) or per process")
    parser.add_argument("--epochs", type=int, default=10,
                        help="the clustering schedule (crgan compare's --reid-epochs)")
    args = parser.parse_args()
    runs = Path(args.runs)
    compare = json.loads((runs / "compare.json").read_text()) if (runs / "compare.json").is_file() else {}
    reference = compare.get("table2", {}).get(ROW, {}).get("seeds", {})
    local = args.batchnorm == "local"
    name = f"{args.processes} processes" + (", batch norm per process" if local else "")
    rows: dict[str, dict[int, float]] = {"1 process (crgan compare)": {}, name: {}}
    record = {"seeds": args.seeds, "processes": args.processes, "epochs": args.epochs, "batchnorm": args.batchnorm,
              "runs": {}}
    for seed in args.seeds:
        run = runs / f"seed{seed}"
        init = str(last_checkpoint(run / "reid_direct"))
        folder = f"{STAGE}_p{args.processes}" + ("_localbn" if local else "")
        metrics = train(run / folder, seed, args.root, args.epochs, args.processes, init, args.source, args.target,
                        global_batchnorm=not local)
        record["runs"][seed] = metrics
        rows[name][seed] = metrics["mAP"]
        if str(seed) in reference:
            rows["1 process (crgan compare)"][seed] = reference[str(seed)]["mAP"]
    print(f"\n{args.source} -> {args.target}, {ROW}, {args.epochs} epochs, same global batch; target mAP")
    for row, per_seed in rows.items():
        if per_seed:
            print(f"{row:<28}{mean_sd(list(per_seed.values())):>14}   per seed: "
                  + ", ".join(f"{s}: {v:.1f}" for s, v in per_seed.items()))
    both = [s for s in args.seeds if s in rows["1 process (crgan compare)"]]
    if both:
        diffs = [rows[name][s] - rows["1 process (crgan compare)"][s] for s in both]
        print(f"{name} - 1 process: {mean_sd(diffs)} mAP (per seed "
              + ", ".join(f"{d:+.1f}" for d in diffs) + ")")
        record["difference"] = diffs
    (runs / f"cluster_processes_p{args.processes}_{args.batchnorm}.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
