"""The end-to-end demo on the embedded benchmark (``make demo`` / ``crgan demo``).

1. generate ``synth_a`` and ``synth_b`` under the data root (kept when already there);
2. train re-id by direct transfer (stage ``reid_direct``): the baseline, and CR-GAN's judge;
3. train CR-GAN ``synth_a -> synth_b`` (stage ``crgan``), its identity judge the frozen
   direct-transfer network;
4. train re-id with the CR-GAN generator streaming renderings into every batch (``reid_crgan``);
5. test both re-id models on ``synth_b`` and print one table plus the paths of the pictures.

Every stage goes through the same LightningCLI a user runs, with the shipped configs of the stage
(``crgan fit --stage S --pair synth_a2synth_b``) and command-line overrides for the schedules
(``crgan_epochs``, ``reid_epochs``), the seed and the run folders (``<out>/seed<N>/<stage>/``,
each holding its logs with the exact config, checkpoints and pictures). A stage whose checkpoint
exists is reused, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..checkpoints import fit_progress
from ..errors import ConfigError
from ..fileio import META_FILE, claim_run_folder
from .lightning import run_lightning_cli
from .stages import last_checkpoint, pair_datasets, pair_file, stage_arguments

#: The demo's pair, and its schedule (the README gives its measured time); CR-GAN stops earlier,
#: once renderings keep the identity at the config's target_id_ratio (epoch 3 on seed 0).
PAIR = "synth_a2synth_b"
CRGAN_EPOCHS, REID_EPOCHS = 4, 10
#: A CR-GAN stage's judge: the demo and the comparison point it at the seed's direct-transfer run.
JUDGE_KEY = "model.init_args.judge"
#: The translator a streaming stage renders with.
TRANSLATOR_KEY = "rendering.init_args.translator"
log = logging.getLogger(__name__)


def add_run_arguments(parser, seeds: bool = False) -> None:
    """The demo's options on an ``argparse`` parser: ``--root``, ``--out``, ``--seed`` (or, with
    ``seeds``, ``--seeds`` for one run per seed), ``--crgan-epochs`` and ``--reid-epochs``. Shared by
    ``crgan demo`` and the benchmarks that run or read the demo's runs, so their defaults agree."""
    parser.add_argument("--root", default="data", help="data root of the embedded benchmark (default: data)")
    parser.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo); a rerun continues there")
    if seeds:
        parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed (default: 0 1 2)")
    else:
        parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crgan-epochs", type=int, default=CRGAN_EPOCHS)
    parser.add_argument("--reid-epochs", type=int, default=REID_EPOCHS)


def _value(value) -> str:
    """A command-line value as LightningCLI reads it (YAML: ``false``, ``0.7``, ``null``, ``[1, 2]``)."""
    return value if isinstance(value, str) else json.dumps(value)


def stage_command(stage: str, run: Path, seed: int, root: str, epochs: int | None = None,
                  overrides: dict | None = None, pair: str | None = PAIR,
                  source: str | None = None, target: str | None = None) -> list[str]:
    """The LightningCLI arguments (after the subcommand) of one stage of a demo or comparison run:
    the stage's shipped configs for the pair (``pair``, or ``source`` and ``target``), then the
    run's seed, data root, run folder ``run`` (logs with the saved config under ``run/logs``,
    checkpoints under ``run/checkpoints``), schedule (``epochs``; None keeps the config's) and
    ``overrides`` (dotted keys: ``{"model.init_args.net.init_args.backbone": "resnet10t"}``). Re-id
    stages skip validation: they are tested once at the end."""
    args = stage_arguments(stage, None if source else pair, source=source, target=target)
    args += [f"--seed_everything={seed}", f"--data.root={root}", f"--trainer.default_root_dir={run}",
             f"--trainer.logger.init_args.save_dir={run}", "--trainer.logger.init_args.name=logs"]
    if epochs is not None:
        args.append(f"--trainer.max_epochs={epochs}")
    if stage.startswith("reid"):
        args.append("--trainer.limit_val_batches=0")
    return args + [f"--{key}={_value(value)}" for key, value in (overrides or {}).items()]


def saved_config(run: Path) -> dict:
    """The config a run was last started with (``run/logs/version_N/config.yaml``, the newest N)."""
    import yaml

    versions = sorted(run.glob("logs/version_*/config.yaml"), key=lambda p: int(p.parent.name.split("_")[-1]))
    if not versions:
        raise ConfigError(f"{run} holds no saved config (logs/version_*/config.yaml); was it started by crgan fit?")
    return yaml.safe_load(versions[-1].read_text())


def fit_finished(ckpt: Path, max_epochs: int | None) -> bool:
    """Whether the checkpoint ends a fit of ``max_epochs`` epochs: a CR-GAN run stopped by its
    ``target_id_ratio``, or all ``max_epochs`` epochs processed (read from the checkpoint's loop
    state, memory-mapped)."""
    processed, reached = fit_progress(ckpt)
    if reached:  # a CR-GAN run that stopped once renderings kept identities
        return True
    return processed is not None and max_epochs is not None and processed >= max_epochs


def run_stage(name: str, args: list[str], run: Path, test: bool) -> dict[str, float]:
    """Fit one stage (``args``: :func:`stage_command`) through the LightningCLI, continuing from
    ``<run>/checkpoints/last.ckpt`` when an earlier run got there (a finished stage is not fitted
    again) and, with ``test``, test it; returns the test metrics (``rank1``, ``mAP``, ... in percent)."""
    ckpt = last_checkpoint(run)
    max_epochs = next((int(a.split("=", 1)[1]) for a in reversed(args) if a.startswith("--trainer.max_epochs=")),
                      None)
    if ckpt.is_file() and max_epochs is None:
        max_epochs = saved_config(run)["trainer"].get("max_epochs")  # the config's schedule, as it ran
    if ckpt.is_file() and fit_finished(ckpt, max_epochs):  # nothing to train: its checkpoint stays as it is
        print(f"[demo] {name}: finished earlier ({ckpt})", flush=True)
    elif ckpt.is_file():  # an earlier run got here: resume
        print(f"[demo] {name}: continuing from {ckpt}", flush=True)
        run_lightning_cli(["fit", *args, "--ckpt_path", str(ckpt)])
    else:
        print(f"[demo] {name} -> {run}", flush=True)
        run_lightning_cli(["fit", *args])
    if not test:
        return {}
    cli = run_lightning_cli(["test", *args, "--ckpt_path", str(ckpt)])
    return {k.split("/", 1)[1]: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}


def run_demo(
    root: str = "data",
    out: str = "runs/demo",
    seed: int = 0,
    crgan_epochs: int = CRGAN_EPOCHS,
    reid_epochs: int = REID_EPOCHS,
    crgan_overrides: dict | None = None,
    reid_overrides: dict | None = None,
) -> dict[str, dict[str, float]]:
    """Run the demo; returns ``{"direct transfer": metrics, "CR-GAN streaming": metrics}`` in percent.

    ``crgan_overrides`` / ``reid_overrides`` change config entries by dotted key
    (``{"model.init_args.net.init_args.backbone": "resnet10t", "data.height": 64}``) in every stage of that kind.
    """
    from ..data.synthetic import generate_benchmark

    out_dir = claim_run_folder(out, "crgan demo") / f"seed{seed}"
    start = time.perf_counter()
    if not all((Path(root) / d / META_FILE).is_file() for d in pair_datasets(pair_file(PAIR))):
        print(f"[demo] generating the embedded benchmark under {root}", flush=True)
        generate_benchmark(root, seed=0, progress=True)
    direct, streamed, crgan_run = out_dir / "reid_direct", out_dir / "reid_crgan", out_dir / "crgan"
    results = {"direct transfer": run_stage(
        "re-id, direct transfer", stage_command("reid_direct", direct, seed, root, reid_epochs, reid_overrides),
        direct, True)}
    crgan_overrides = {JUDGE_KEY: str(last_checkpoint(direct)), **(crgan_overrides or {})}  # direct transfer judges
    run_stage("CR-GAN synth_a -> synth_b", stage_command("crgan", crgan_run, seed, root, crgan_epochs, crgan_overrides),
              crgan_run, test=False)
    reid_overrides = {TRANSLATOR_KEY: str(last_checkpoint(crgan_run)), **(reid_overrides or {})}
    results["CR-GAN streaming"] = run_stage(
        "re-id with CR-GAN streaming", stage_command("reid_crgan", streamed, seed, root, reid_epochs, reid_overrides),
        streamed, True)
    print(format_results(results, out_dir, time.perf_counter() - start))
    return results


def calibration_rows() -> dict[str, tuple[float, float]]:
    """The calibration rows of the embedded benchmark at the demo's schedule, ``{name: (rank-1,
    mAP)}``, read from the shipped ``configs/measured/calibration.yaml`` (the one place they are
    kept; ``python benchmarks/bench_calibration.py`` measured them). The demo prints them beside
    its own rows."""
    import yaml

    from .stages import config_root

    rows = yaml.safe_load((config_root() / "measured" / "calibration.yaml").read_text())["rows"]
    return {row["name"]: (float(row["rank1"]), float(row["mAP"])) for row in rows}


def format_results(results: dict[str, dict[str, float]], out_dir: Path, seconds: float) -> str:
    """The demo's table (recipe features and LMP mAP), the gain, the calibration rows and the pictures."""
    lines = [f"\nsynth_a -> synth_b, tested on synth_b ({seconds / 60:.1f} min)",
             f"{'method':<22}{'rank-1':>8}{'rank-5':>8}{'rank-10':>8}{'mAP':>8}{'LMP mAP':>9}"]
    for name, m in results.items():
        lmp = f"{m['lmp_mAP']:>9.1f}" if "lmp_mAP" in m else ""
        lines.append(f"{name:<22}{m['rank1']:>8.1f}{m['rank5']:>8.1f}{m['rank10']:>8.1f}{m['mAP']:>8.1f}{lmp}")
    if len(results) == 2:
        (_, a), (_, b) = results.items()
        lines.append(f"{'gain':<22}{b['rank1'] - a['rank1']:>+8.1f}{'':>16}{b['mAP'] - a['mAP']:>+8.1f}")
    lines += ["", "for reference, the benchmark's calibration rows (configs/measured/calibration.yaml; 3 seeds, "
              "same schedule):"]
    for name, (rank1, mean_ap) in calibration_rows().items():
        lines.append(f"  {name:<22}{rank1:>6.1f}{'':>16}{mean_ap:>8.1f}")
    pictures = sorted(out_dir.glob("crgan/logs/*/samples/*.png"))[-1:]
    pictures += sorted(out_dir.glob("reid_*/logs/*/plots/*.png"))
    lines += ["", "pictures:"] + [f"  {p}" for p in pictures]
    return "\n".join(lines)
