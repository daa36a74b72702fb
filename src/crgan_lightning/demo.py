"""The end-to-end demo on the embedded benchmark (``make demo`` / ``crgan demo``).

1. generate ``synth_a`` and ``synth_b`` under the data root (kept when already there);
2. train re-id by direct transfer (``reid_direct.yaml``): the baseline, and CR-GAN's judge;
3. train CR-GAN ``synth_a -> synth_b`` with ``experiments/synth_a2synth_b/crgan.yaml``, its
   identity judge the frozen direct-transfer network;
4. train re-id with the CR-GAN generator streaming renderings into every batch (``reid_crgan.yaml``);
5. test both re-id models on ``synth_b`` and print one table plus the paths of the pictures.

Every stage goes through the same LightningCLI a user runs, with copies of the shipped configs
in which the demo sets the schedules (``crgan_epochs``, ``reid_epochs``), the seed and the run
folders (``<out>/seed<N>/<stage>/``, each holding its config, logs, checkpoints and pictures).
A stage whose checkpoint exists is reused, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .errors import ConfigError
from .fileio import claim_run_folder

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"  # the configs of a checkout
CONFIGS = EXPERIMENTS / "synth_a2synth_b"
CRGAN_EPOCHS, REID_EPOCHS = 4, 10  # the demo's schedule (the README gives its measured time); CR-GAN
# stops earlier, once renderings keep the identity at the config's target_id_ratio (epoch 3 on seed 0)
#: A CR-GAN config's judge: the demo and the comparison point it at the seed's direct-transfer run.
JUDGE_KEY = "model.init_args.judge"
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


def _set(cfg: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        cfg = cfg.setdefault(key, {})
    cfg[keys[-1]] = value


def write_config(name: str, configs: Path, run: Path, seed: int, root: str, epochs: int | None,
                 callback_args: dict[str, dict] | None = None, overrides: dict | None = None,
                 save_as: str | None = None) -> Path:
    """A copy of a shipped config with the run folder, data root, seed and schedule (``epochs``;
    None keeps the config's) of the run, saved as ``<run>/<save_as or name>`` so the exact
    configuration of every stage stays beside its results. Re-id stages skip validation: they
    are tested once at the end."""
    import yaml

    source = configs / name
    if not source.is_file():
        raise ConfigError(f"config {source} is missing; run from a checkout of crgan-lightning")
    cfg = yaml.safe_load(source.read_text())
    cfg["seed_everything"] = seed
    trainer = cfg["trainer"]
    trainer["default_root_dir"] = str(run)
    if epochs is not None:
        trainer["max_epochs"] = epochs
    if "check_val_every_n_epoch" in trainer:
        trainer.update(limit_val_batches=0)
    trainer["logger"]["init_args"].update(save_dir=str(run), name="logs")
    for callback in trainer.get("callbacks", []):
        short = callback["class_path"].rsplit(".", 1)[-1]
        if short == "ModelCheckpoint":
            callback["init_args"]["dirpath"] = str(run / "checkpoints")
        callback["init_args"].update((callback_args or {}).get(short, {}))
    cfg["data"]["root"] = str(root)
    for dotted, value in (overrides or {}).items():  # e.g. {"model.init_args.backbone": "resnet10t"}
        _set(cfg, dotted, value)
    run.mkdir(parents=True, exist_ok=True)
    path = run / (save_as or name)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def config_value(config: Path, dotted: str):
    """The value at a dotted key of a YAML config (None when absent)."""
    import yaml

    value = yaml.safe_load(Path(config).read_text())
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def fit_finished(ckpt: Path, config: Path) -> bool:
    """Whether the checkpoint ends a fit of ``config``: a CR-GAN run stopped by its
    ``target_id_ratio``, or all of its ``trainer.max_epochs`` epochs processed (read from the
    checkpoint's loop state, memory-mapped; an epoch-end checkpoint counts its epoch as processed
    before Lightning marks it completed)."""
    import torch
    import yaml

    max_epochs = yaml.safe_load(config.read_text())["trainer"].get("max_epochs")
    state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    if state.get("reached_target_id_ratio"):  # a CR-GAN run that stopped once renderings kept identities
        return True
    try:
        processed = state["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]
    except (KeyError, TypeError):
        return False
    return max_epochs is not None and processed >= max_epochs


def run_stage(name: str, config: Path, run: Path, test: bool) -> dict[str, float]:
    """Fit one stage through the LightningCLI (continuing from ``<run>/checkpoints/last.ckpt``
    when an earlier run got there; a finished stage is not fitted again) and, with ``test``, test
    it; returns the test metrics (``rank1``, ``mAP``, ... in percent)."""
    from .cli import run_lightning_cli

    ckpt = run / "checkpoints" / "last.ckpt"
    if ckpt.is_file() and fit_finished(ckpt, config):  # nothing to train: its checkpoint stays as it is
        print(f"[demo] {name}: finished earlier ({ckpt})", flush=True)
    elif ckpt.is_file():  # an earlier run got here: resume
        print(f"[demo] {name}: continuing from {ckpt}", flush=True)
        run_lightning_cli(["fit", "--config", str(config), "--ckpt_path", str(ckpt)])
    else:
        print(f"[demo] {name} -> {run}", flush=True)
        run_lightning_cli(["fit", "--config", str(config)])
    if not test:
        return {}
    cli = run_lightning_cli(["test", "--config", str(config), "--ckpt_path", str(ckpt)])
    return {k.split("/", 1)[1]: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}


def run_demo(
    root: str = "data",
    out: str = "runs/demo",
    seed: int = 0,
    crgan_epochs: int = CRGAN_EPOCHS,
    reid_epochs: int = REID_EPOCHS,
    configs: str | None = None,
    crgan_overrides: dict | None = None,
    reid_overrides: dict | None = None,
) -> dict[str, dict[str, float]]:
    """Run the demo; returns ``{"direct transfer": metrics, "CR-GAN streaming": metrics}`` in percent.

    ``crgan_overrides`` / ``reid_overrides`` change config entries by dotted key
    (``{"model.init_args.backbone": "resnet10t", "data.height": 64}``) in every stage of that kind.
    """
    from .data.synthetic import generate_benchmark

    cfg = Path(configs) if configs else CONFIGS
    out_dir = claim_run_folder(out, "crgan demo") / f"seed{seed}"
    start = time.perf_counter()
    if not all((Path(root) / d / "meta.json").is_file() for d in ("synth_a", "synth_b")):
        print(f"[demo] generating the embedded benchmark under {root}", flush=True)
        generate_benchmark(root, seed=0, progress=True)
    direct, streamed, crgan_run = out_dir / "reid_direct", out_dir / "reid_crgan", out_dir / "crgan"
    results = {"direct transfer": run_stage(
        "re-id, direct transfer",
        write_config("reid_direct.yaml", cfg, direct, seed, root, reid_epochs, overrides=reid_overrides),
        direct, True)}
    crgan_overrides = dict(crgan_overrides or {})
    if config_value(cfg / "crgan.yaml", JUDGE_KEY) and JUDGE_KEY not in crgan_overrides:
        crgan_overrides[JUDGE_KEY] = str(direct / "checkpoints" / "last.ckpt")  # direct transfer judges renderings
    run_stage("CR-GAN synth_a -> synth_b",
              write_config("crgan.yaml", cfg, crgan_run, seed, root, crgan_epochs, overrides=crgan_overrides),
              crgan_run, test=False)
    crgan_ckpt = crgan_run / "checkpoints" / "last.ckpt"
    results["CR-GAN streaming"] = run_stage(
        "re-id with CR-GAN streaming",
        write_config("reid_crgan.yaml", cfg, streamed, seed, root, reid_epochs,
                     {"ContextRenderingCallback": {"translator": str(crgan_ckpt)}}, reid_overrides),
        streamed, True)
    print(format_results(results, out_dir, time.perf_counter() - start))
    return results


#: The calibration rows of the embedded benchmark at the demo's schedule (README, *The embedded
#: two-domain benchmark*; ``python benchmarks/bench_calibration.py``, mean over seeds 0, 1, 2):
#: (rank-1, mAP) with the recipe's test features. The demo prints them beside its own rows.
CALIBRATION = {
    "LOMO, no training": (32.5, 18.0),
    "supervised on synth_b": (80.4, 64.5),
    "direct transfer": (32.3, 20.2),
    "oracle rendering": (78.1, 62.9),
}


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
    lines += ["", "for reference, the benchmark's calibration rows (README; 3 seeds, same schedule):"]
    for name, (rank1, mean_ap) in CALIBRATION.items():
        lines.append(f"  {name:<22}{rank1:>6.1f}{'':>16}{mean_ap:>8.1f}")
    pictures = sorted(out_dir.glob("crgan/logs/*/samples/*.png"))[-1:]
    pictures += sorted(out_dir.glob("reid_*/logs/*/plots/*.png"))
    lines += ["", "pictures:"] + [f"  {p}" for p in pictures]
    return "\n".join(lines)
