"""CR-GAN against the alternatives on the data at hand: the paper's two tables (``make compare``).

For a source -> target pair and each seed, :func:`run_compare` trains, through the same
LightningCLI and shipped configs a user runs (``crgan fit --stage S --source A --target B``):

* the translators: CR-GAN (stage ``crgan``) and SPGAN (``spgan``);
* LOMO (Liao et al. 2015) on the target, training-free (:mod:`crgan_lightning.descriptors`);
* five re-id models, each tested on the target: direct transfer (``reid_direct``) and, from
  ``reid_crgan`` with the rendering group's translator swapped, re-id with cut-and-paste,
  cut-and-fill (cut-and-paste onto the target with its own person filled in: the compositing
  CR-GAN before training), SPGAN and CR-GAN renderings streamed into every batch (LMP test
  features, as the configs set them);
* the TAUDL rows (``reid_taudl``, ``reid_spgan_taudl``, ``reid_crgan_taudl``);
* the clustering rows (:data:`CLUSTER_METHODS`): clustering on the target from the seed's
  direct-transfer model (``reid_cluster``) and from its CR-GAN streaming model
  (``reid_crgan_cluster``), and the joint hybrid (``reid_crgan_cluster_joint``: clustering with
  source labels and streamed CR-GAN renderings in the same batches, from the CR-GAN streaming model).

Then it prints Table 2 (target rank-1/5/10 and mAP of each method, mean and sample standard
deviation over the seeds, and per seed) and Table 1 (LPIPS diversity and FID/KID of the real
source images, cut-and-paste, cut-and-fill, SPGAN and CR-GAN, for the first seed's
translators). Table 1 needs the AlexNet (LPIPS) and Inception (FID) weights: downloaded online,
or given as local files; without them it says which file is missing and Table 2 still stands.
On the embedded pair, Table 1 has a second part that needs no weights: the rendering-fidelity
table (:mod:`.fidelity`), each translator's renderings against the benchmark's true renderings.

Every stage lives in ``<out>/seed<N>/<stage>/`` (logs with its config, checkpoints, pictures) and
a finished stage is read back rather than trained again, so an interrupted comparison resumes.
The stage names are the demo's (``crgan``, ``reid_direct``, ``reid_crgan``), so a comparison on
the embedded pair pointed at the demo's run folder reuses the demo's runs.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from ..errors import CRGANError, WeightsError
from ..fileio import META_FILE, claim_run_folder
from ..translators import CUT_AND_FILL, CUT_AND_PASTE, named_translator
from .demo import JUDGE_KEY, TRANSLATOR_KEY, run_stage, saved_config, stage_command
from .stages import config_value, last_checkpoint

KEYS = ("rank1", "rank5", "rank10", "mAP")
ORACLE = "oracle rendering"
#: The oracle domain of a pair: its source people drawn by the benchmark itself in the target's
#: cameras and contexts (``crgan synth --oracle``), trained on as the source of ``reid_direct``.
ORACLES = {("synth_a", "synth_b"): "synth_a_in_b"}
# Table 2 rows: (method, re-id stage folder, translator: None | a translator stage | a named translator).
# cut-and-fill is the compositing CR-GAN's rendering before training: the row that tells what the
# four losses add to removing the context's person.
METHODS = (
    ("direct transfer", "reid_direct", None),
    ("cut-and-paste", "reid_cut_and_paste", CUT_AND_PASTE),
    ("cut-and-fill", "reid_cut_and_fill", CUT_AND_FILL),
    ("SPGAN+LMP", "reid_spgan", "spgan"),
    ("CR-GAN+LMP", "reid_crgan", "crgan"),
)
#: The poster's TAUDL rows (re-id stage; translator: None or a translator stage):
#: the target's within-camera tracklets alone, and beside source labels and streamed renderings.
TAUDL_METHODS = (
    ("TAUDL", "reid_taudl", None),
    ("SPGAN+TAUDL", "reid_spgan_taudl", "spgan"),
    ("CR-GAN+TAUDL", "reid_crgan_taudl", "crgan"),
)
#: The clustering rows (re-id stage; the re-id stage of the same seed whose last.ckpt starts it; translator:
#: None or a translator stage). A row that starts from ``reid_crgan`` needs the CR-GAN+LMP row's run, which
#: is then trained (and reported) too.
CLUSTER_METHODS = (
    ("direct -> clustering", "reid_cluster", "reid_direct", None),
    ("CR-GAN -> clustering", "reid_crgan_cluster", "reid_crgan", None),
    ("joint hybrid", "reid_crgan_cluster_joint", "reid_crgan", "crgan"),
)
#: The row whose run a clustering row starting from ``reid_crgan`` reads.
INIT_ROWS = {"reid_crgan": "CR-GAN+LMP"}
INIT_KEY = "model.init_args.init_checkpoint"


def lomo_row(source: str, target: str, root: str, seeds: Sequence[int], out: Path) -> dict:
    """The training-free LOMO row: LOMO on the target's test split at the re-id configs' image size
    (the same for every seed: nothing is trained), kept in ``<out>/lomo.json``."""
    from ..descriptors import evaluate_descriptor

    record = out / "lomo.json"
    if record.is_file():
        metrics = json.loads(record.read_text())
    else:
        size = [config_value("reid_direct", f"data.{key}", source=source, target=target) for key in ("height", "width")]
        metrics = evaluate_descriptor(target, root, height=size[0], width=size[1])
        record.write_text(json.dumps(metrics))
    return summarize({seed: metrics for seed in seeds})


def run_compare(
    source: str,
    target: str,
    root: str = "data",
    out: str = "runs/compare",
    seeds: Sequence[int] = (0, 1, 2),
    crgan_epochs: int | None = None,
    spgan_epochs: int | None = None,
    reid_epochs: int | None = None,
    translator_overrides: dict[str, dict] | None = None,
    reid_overrides: dict | None = None,
    quality: dict | None = None,
    mask_roots: dict[str, str] | None = None,
    taudl: bool = True,
    fidelity_pairs: int = 200,
    methods: Sequence[str] | None = None,
    clustering: bool = True,
) -> dict:
    """Train and test every method for every seed; print and return both tables.

    Args:
        source, target: registered dataset names; root: the data root holding both.
        out: run folder (``<out>/seed<N>/<stage>/``); a rerun continues there.
        seeds: one full run (translators and re-id models) per seed.
        crgan_epochs, spgan_epochs, reid_epochs: schedules (None keeps the configs').
        translator_overrides: ``{"crgan": {...}, "spgan": {...}}`` dotted config overrides.
        reid_overrides: dotted config overrides of every re-id stage.
        quality: keyword arguments of :func:`crgan_lightning.app.reports.quality_table` for Table 1
            (``lpips_path``, ``inception_path``, ``num_fid`` ...); ``{"skip": True}`` skips it.
            Its ``reid_ckpt`` (the offline stand-ins) defaults to the first seed's direct-transfer
            checkpoint.
        mask_roots: further mask qualities, ``{"segmentation": "data_seg"}``: a data root holding
            the same images with other person masks (``crgan synth --mask-quality segmentation``).
            The rows that use masks (cut-and-paste, cut-and-fill, CR-GAN, whose context loss reads them) are
            trained again on each and reported as ``"<method> [<quality> masks]"``; the others do
            not read masks and are not repeated.
        taudl: also train the TAUDL rows (:data:`TAUDL_METHODS`).
        clustering: also train the clustering rows (:data:`CLUSTER_METHODS`), after every other row
            of the seed, with the same ``reid_epochs`` and ``reid_overrides``; each starts from the
            ``last.ckpt`` of its seed's init row (``model.init_args.init_checkpoint``).
        methods: train only these rows of :data:`METHODS`, :data:`TAUDL_METHODS` and
            :data:`CLUSTER_METHODS` (by name, e.g. ``["cut-and-paste", "CR-GAN+LMP"]``, or by stage,
            ``reid_cluster``); None trains every row (less those ``taudl`` and ``clustering`` turn off).
            Direct transfer is always trained (it is CR-GAN's judge), the CR-GAN+LMP row when a chosen
            clustering row starts from it, and a translator only when a trained row streams it.
        fidelity_pairs: on the embedded pair, the evaluation pairs of the rendering-fidelity table
            (:func:`crgan_lightning.app.fidelity.fidelity_table`: cut-and-paste and cut-and-fill with
            each mask quality, the first seed's SPGAN and CR-GAN translators against the true renderings);
            0 skips it, and so does ``quality={"skip": True}``.

    The direct-transfer model of a seed is trained first: it is CR-GAN's judge (the frozen
    source-trained re-id network). When the pair has an oracle domain (:data:`ORACLES`) under
    ``root`` (the embedded pair after ``crgan synth --oracle``), the oracle rendering row is added:
    re-id trained on the source people drawn by the benchmark itself in the target's contexts, the
    ceiling of every translator.

    Returns:
        ``{"table2": {method: {"seeds": {seed: metrics}, "mean": ..., "sd": ...}}, "table1": dict | None,
        "table1_missing": reason | None, "fidelity": dict | None, "fidelity_missing": reason | None}``,
        also written to ``<out>/compare.json``.
    """
    chosen = _chosen_methods(methods, taudl, clustering)
    claim_run_folder(out, "crgan compare", reuses=("crgan demo",))  # the demo's runs are its first rows
    translator_overrides = translator_overrides or {}
    needed = {translator for method, _, translator in (*METHODS, *TAUDL_METHODS) if method in chosen}
    needed |= {translator for method, _, _, translator in CLUSTER_METHODS if method in chosen}
    qualities = [("", root)] + [(name, mask_root) for name, mask_root in (mask_roots or {}).items()]
    oracle_dataset = ORACLES.get((source, target))
    oracle = oracle_dataset is not None and (Path(root) / oracle_dataset / META_FILE).is_file()
    names = [METHODS[0][0], *([ORACLE] if oracle else []),
             *(method for method, _, _ in METHODS[1:] if method in chosen)]
    results: dict[str, dict[int, dict]] = {name: {} for name in names}  # the table's row order

    def train(name: str, stage: str, folder: str, seed: int, data_root: str, epochs: int | None,
              overrides: dict, test: bool) -> dict:
        run = Path(out) / f"seed{seed}" / folder
        args = stage_command(stage, run, seed, data_root, epochs, overrides, source=source, target=target)
        return run_stage(f"{name} (seed {seed})", args, run, test)

    for seed in seeds:
        run = Path(out) / f"seed{seed}"
        reid = dict(reid_overrides or {})
        results["direct transfer"][seed] = train("direct transfer", "reid_direct", "reid_direct", seed, root,
                                                 reid_epochs, reid, test=True)
        judge = str(last_checkpoint(run / "reid_direct"))
        if oracle:
            results[ORACLE][seed] = train(ORACLE, "reid_direct", "reid_oracle", seed, root, reid_epochs,
                                          {**reid, "data.source": oracle_dataset}, test=True)
        for quality_name, data_root in qualities:
            suffix = f"_{quality_name}" if quality_name else ""
            ckpts = {}
            for stage, epochs in (("crgan", crgan_epochs), ("spgan", spgan_epochs)):
                if stage not in needed or (suffix and stage == "spgan"):  # SPGAN reads no masks: one run serves
                    continue                                                # every mask quality
                stage_overrides = dict(translator_overrides.get(stage, {}))
                if stage == "crgan":
                    stage_overrides = {JUDGE_KEY: judge, **stage_overrides}
                train(f"{stage}{suffix} {source} -> {target}", stage, f"{stage}{suffix}", seed, data_root, epochs,
                      stage_overrides, test=False)
                ckpts[stage] = str(last_checkpoint(run / f"{stage}{suffix}"))
            for method, stage, translator in METHODS:
                if translator is None or method not in chosen or (suffix and translator == "spgan"):
                    continue
                name = f"{method} [{quality_name} masks]" if suffix else method
                stage_overrides = {TRANSLATOR_KEY: ckpts.get(translator, translator), **reid}
                if named_translator(translator):
                    stage_overrides["data.masks"] = "auto"  # the person masks cut the person out (and fill)
                results.setdefault(name, {})[seed] = train(name, "reid_crgan", f"{stage}{suffix}", seed, data_root,
                                                           reid_epochs, stage_overrides, test=True)
            if not suffix:
                translators = ckpts  # the TAUDL hybrids stream the renderings of the benchmark's own masks
        for method, stage, translator in (row for row in TAUDL_METHODS if row[0] in chosen):
            stage_overrides = {TRANSLATOR_KEY: translators[translator], **reid} if translator else reid
            results.setdefault(method, {})[seed] = train(method, stage, stage, seed, root, reid_epochs,
                                                         stage_overrides, test=True)
        for method, stage, init, translator in (row for row in CLUSTER_METHODS if row[0] in chosen):
            stage_overrides = {INIT_KEY: str(last_checkpoint(run / init)), **reid}
            if translator:
                stage_overrides[TRANSLATOR_KEY] = translators[translator]
            results.setdefault(method, {})[seed] = train(method, stage, stage, seed, root, reid_epochs,
                                                         stage_overrides, test=True)

    table2 = {"LOMO": lomo_row(source, target, root, seeds, Path(out)),
              **{method: summarize(per_seed) for method, per_seed in results.items() if per_seed}}
    quality = dict(quality or {})
    skip_quality = quality.pop("skip", False)
    table1, missing = None, ("skipped (--no-quality)" if skip_quality else None)
    if not skip_quality:
        from .reports import quality_table

        first = Path(out) / f"seed{seeds[0]}"
        data = saved_config(first / "crgan")["data"]
        quality.setdefault("height", data["height"])  # the size the generators were trained at
        quality.setdefault("width", data["width"])
        quality.setdefault("reid_ckpt", str(last_checkpoint(first / "reid_direct")))
        try:
            named = [CUT_AND_PASTE] + ([CUT_AND_FILL] if CUT_AND_FILL in needed else [])
            table1 = quality_table(named + [str(last_checkpoint(first / s)) for s in ("spgan", "crgan") if s in needed],
                                   source, target, root, **quality)
        except WeightsError as exc:
            missing = str(exc)
    record = {"source": source, "target": target, "seeds": list(seeds), "table2": table2, "table1": table1,
              "table1_missing": missing,
              "fidelity": None, "fidelity_missing": None}
    if not skip_quality:
        try:
            record["fidelity"] = _fidelity(Path(out) / f"seed{seeds[0]}", root, qualities, fidelity_pairs, source,
                                           target, needed)
        except CRGANError as exc:  # a broken truth or mask root must not lose the tables trained for
            record["fidelity_missing"] = str(exc)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "compare.json").write_text(json.dumps(record, indent=1))
    print(format_compare(record))
    return record


def _chosen_methods(methods: Sequence[str] | None, taudl: bool = True, clustering: bool = True) -> set[str]:
    """The row names to train: ``methods`` (row names, or the rows' stage names) or every row less the
    families turned off, plus the rows a chosen clustering row starts from (:data:`INIT_ROWS`). An
    unknown name is refused with the known ones."""
    rows = [(method, stage) for method, stage, _ in METHODS[1:]]
    rows += [(method, stage) for method, stage, _ in TAUDL_METHODS]
    rows += [(method, stage) for method, stage, _, _ in CLUSTER_METHODS]
    every = [method for method, _ in rows]
    by_stage = {stage: method for method, stage in rows}
    if methods is None:
        off = ({m for m, _, _ in TAUDL_METHODS} if not taudl else set()) | \
              ({m for m, _, _, _ in CLUSTER_METHODS} if not clustering else set())
        chosen = {m for m in every if m not in off}
    else:
        unknown = [m for m in methods if m not in every and m not in by_stage]
        if unknown:
            raise CRGANError(f"--methods {' '.join(unknown)}: no such row; expected some of {', '.join(every)} "
                             "(or their stages, e.g. reid_cluster; direct transfer is always trained)")
        chosen = {by_stage.get(m, m) for m in methods}
    chosen |= {INIT_ROWS[init] for method, _, init, _ in CLUSTER_METHODS if method in chosen and init in INIT_ROWS}
    return chosen


def _fidelity(run: Path, root: str, qualities: list[tuple[str, str]], num_pairs: int, source: str,
              target: str, translators: set) -> dict | None:
    """The rendering-fidelity table of the first seed's translators (None off the embedded pair):
    cut-and-paste, cut-and-fill (when its row is trained) and CR-GAN with each mask quality's masks
    (CR-GAN trained on them), SPGAN once."""
    from .fidelity import fidelity_available, fidelity_table

    if not num_pairs or not fidelity_available(source, target, root):
        return None
    renderers: list = []
    for quality_name, data_root in qualities:
        suffix = f"_{quality_name}" if quality_name else ""
        renderers.append((CUT_AND_PASTE, data_root))
        if CUT_AND_FILL in translators:
            renderers.append((CUT_AND_FILL, data_root))
        if not suffix and "spgan" in translators:
            renderers.append((str(last_checkpoint(run / "spgan")), data_root))
        if "crgan" in translators:
            renderers.append((str(last_checkpoint(run / f"crgan{suffix}")), data_root))
    return fidelity_table(renderers, root, num_pairs=num_pairs)


def summarize(per_seed: dict[int, dict[str, float]], keys: Sequence[str] = (*KEYS, "lmp_mAP")) -> dict:
    """Mean and sample standard deviation (0 for one seed) of each metric over the seeds."""
    keys = [k for k in keys if all(k in m for m in per_seed.values())]
    values = {k: [m[k] for m in per_seed.values()] for k in keys}
    return {"seeds": per_seed, "mean": {k: statistics.mean(v) for k, v in values.items()},
            "sd": {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in values.items()}}


def format_compare(record: dict) -> str:
    """Table 2 (mean ± sd over seeds, then per seed) and Table 1 (or why it is missing). Beside the
    configs' test features (rank-1/5/10, mAP), the LMP mAP column is the poster's LMP test pooling
    of the same model (``also_test``; ``-`` where a row has none, e.g. LOMO)."""
    seeds = record["seeds"]
    table = record["table2"]
    width = max(18, *(len(method) + 2 for method in table))
    columns = [*KEYS, "lmp_mAP"]

    def cell(row: dict, key: str) -> str:
        if key not in row["mean"]:
            return f"{'-':>15}"
        return f"{row['mean'][key]:>8.1f} ± {row['sd'][key]:<4.1f}"

    lines = [f"\nTable 2: {record['source']} -> {record['target']}, tested on {record['target']} "
             f"(mean ± sd over {len(seeds)} seed{'s' * (len(seeds) > 1)}: {', '.join(map(str, seeds))})",
             f"{'method':<{width}}" + "".join(f"{k.replace('lmp_mAP', 'LMP mAP'):>15}" for k in columns)]
    for method, row in table.items():
        lines.append(f"{method:<{width}}" + "".join(cell(row, k) for k in columns))
    lines.append("\nper seed (rank-1 / mAP)")
    lines.append(f"{'method':<{width}}" + "".join(f"{'seed ' + str(s):>14}" for s in seeds))
    for method, row in table.items():
        cells = [row["seeds"][s] if s in row["seeds"] else row["seeds"][str(s)] for s in seeds]
        lines.append(f"{method:<{width}}" + "".join(f"{m['rank1']:>7.1f} /{m['mAP']:>5.1f}" for m in cells))
    lines.append("")
    if record["table1"] is not None:
        from .reports import format_quality_table

        lines += ["Table 1: visual quality (first seed's translators)", format_quality_table(record["table1"])]
    else:
        lines.append(f"Table 1 not measured: {record['table1_missing']}")
    if record.get("fidelity"):
        from .fidelity import format_fidelity_table

        lines += ["", "Table 1, rendering fidelity (first seed's translators)",
                  format_fidelity_table(record["fidelity"])]
    elif record.get("fidelity_missing"):
        lines.append(f"Rendering fidelity not measured: {record['fidelity_missing']}")
    return "\n".join(lines)
