"""The shipped configs and how a stage of a pair is composed from them.

The configs are package data (``crgan_lightning/configs/``, found with :mod:`importlib.resources`,
so they work after ``pip install`` as from a clone):

* ``base/<piece>.yaml``: each piece of a stage at the paper's scale (``trainer``, ``reid``,
  ``streaming``, ``taudl``, ``taudl_alone``, ``cluster``, ``cluster_joint``, ``crgan``, ``spgan``);
* ``embedded/<piece>.yaml``: what the embedded benchmark's recipe (64x32 images, small networks
  trained from scratch on a CPU) changes in a piece; read when both datasets of the pair are
  embedded ones;
* ``pairs/<pair>.yaml``: a pair's ``data:`` section, shared by every stage of the pair (its
  names ``data.source`` and ``data.target``, and data settings such as ``num_workers``);
* ``pairs/<pair>/<name>.yaml`` (optional): settings of some stages of the pair only, in a file
  named after a piece (``reid.yaml``: every re-id stage; ``crgan.yaml``; ``trainer.yaml``: every
  stage) or after a stage (``reid_direct.yaml``: that stage alone).

A pair is named ``<source>2<target>`` after its datasets' pair names (:func:`dataset_pair_name`:
``market``, ``duke``, ``msmt``, else the registry's name), whatever alias the user typed
(``--source market1501 --target dukemtmc`` is ``market2duke``).

A stage is a list of pieces (:data:`STAGES`); LightningCLI merges the files in order
(``--config A --config B``: later files override earlier keys). ``crgan fit --stage S --pair P``
expands to those ``--config`` files plus the run layout of the pair (:func:`stage_arguments`):
the run folder ``runs/<P>/<S>``, and for the stages that read another stage's checkpoint (the
CR-GAN judge, the streamed translator) that stage's ``last.ckpt`` under ``runs/<P>``. Anything
given after them on the command line overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..data.datasets import EMBEDDED_DATASETS, get_spec
from ..errors import ConfigError

#: Where a run's checkpoints go below its run folder, and the checkpoint a later stage reads.
CHECKPOINTS = "checkpoints"
LAST_CKPT = "last.ckpt"
#: The run folder of every stage of a pair: ``<RUNS>/<pair>/<stage>``.
RUNS = "runs"


@dataclass(frozen=True)
class Stage:
    """A stage: its config pieces, and the stages whose checkpoints it reads by default
    (``judge``: the CR-GAN identity judge; ``translator``: the streamed renderer; ``init``: the
    re-id run the clustering stage starts from)."""

    pieces: tuple[str, ...]
    judge: str | None = None
    translator: str | None = None
    init: str | None = None


STAGES: dict[str, Stage] = {
    "reid_direct": Stage(("trainer", "reid")),
    "crgan": Stage(("trainer", "crgan"), judge="reid_direct"),
    "spgan": Stage(("trainer", "spgan")),
    "reid_crgan": Stage(("trainer", "reid", "streaming"), translator="crgan"),
    "reid_taudl": Stage(("trainer", "reid", "taudl", "taudl_alone")),
    "reid_crgan_taudl": Stage(("trainer", "reid", "streaming", "taudl"), translator="crgan"),
    "reid_spgan_taudl": Stage(("trainer", "reid", "streaming", "taudl"), translator="spgan"),
    "reid_cluster": Stage(("trainer", "reid", "cluster"), init="reid_direct"),
    "reid_crgan_cluster": Stage(("trainer", "reid", "cluster"), init="reid_crgan"),
    "reid_crgan_cluster_joint": Stage(("trainer", "reid", "streaming", "cluster", "cluster_joint"),
                                      translator="crgan", init="reid_crgan"),
}


def config_root() -> Path:
    """The folder of the shipped configs (inside the installed package)."""
    return Path(str(resources.files("crgan_lightning") / "configs"))


#: The name a dataset goes by in pair names and run folders (``market2duke``), by its registry name:
#: short names for the datasets of the published pairs; any other dataset goes by its registry name.
PAIR_NAMES = {"market1501": "market", "dukemtmcreid": "duke", "msmt17": "msmt"}


def dataset_pair_name(name: str) -> str:
    """The pair name of a dataset given by its registry name or any alias (``market1501``,
    ``Market-1501`` -> ``market``); an unknown dataset is refused in one line."""
    spec = get_spec(name)
    return PAIR_NAMES.get(spec.name, spec.name)


def pair_name(source: str, target: str) -> str:
    """The canonical name of the pair ``source -> target``: ``<source>2<target>`` in pair names
    (``pair_name("market1501", "dukemtmc") == "market2duke"``)."""
    return f"{dataset_pair_name(source)}2{dataset_pair_name(target)}"


def pair_file(pair: str) -> Path:
    """The pair file of ``pair``: a shipped ``pairs/<pair>.yaml``, or a path to the user's own."""
    shipped = config_root() / "pairs" / f"{pair}.yaml"
    if shipped.is_file():
        return shipped
    own = Path(pair)
    if own.suffix in (".yaml", ".yml") and own.is_file():
        return own
    known = ", ".join(sorted(p.stem for p in (config_root() / "pairs").glob("*.yaml")))
    raise ConfigError(f"unknown pair {pair!r}; expected one of {known}, or the path of a pair file "
                      "(a YAML file with data.source and data.target)")


def pair_folder(path: Path) -> Path:
    """The folder of a pair's per-stage files, beside its pair file: ``pairs/<pair>/``."""
    return path.with_suffix("")


def pair_datasets(path: Path) -> tuple[str, str]:
    """``(data.source, data.target)`` of a pair file. A pair file holds ``data:`` only (it applies
    to every stage); any other key is refused, naming the per-stage files it belongs in."""
    import yaml

    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ConfigError(f"pair file {path} is not a YAML mapping; expected e.g.\n"
                          "data:\n  source: market\n  target: duke")
    other = sorted(str(key) for key in content if key != "data")
    if other:
        folder = pair_folder(path)
        raise ConfigError(f"pair file {path} sets {', '.join(other)}, which would apply to every stage of the pair; "
                          f"it holds data: only. Put a stage's settings in {folder}/<piece or stage>.yaml "
                          f"(e.g. {folder}/crgan.yaml, {folder}/reid.yaml: every re-id stage, "
                          f"{folder}/trainer.yaml: every stage)")
    data = content.get("data") or {}
    if not (isinstance(data.get("source"), str) and isinstance(data.get("target"), str)):
        raise ConfigError(f"pair file {path} sets no data.source and data.target; expected e.g.\n"
                          "data:\n  source: market\n  target: duke")
    return data["source"], data["target"]


def resolve_pair(pair: str | None = None, source: str | None = None,
                 target: str | None = None) -> tuple[str | None, Path | None, tuple[str, str] | None]:
    """``(name, pair file or None, (source, target) or None)`` from ``--pair`` or ``--source`` and
    ``--target``. A pair without a shipped file (``--source market --target msmt17``) is named
    ``<source>2<target>``; its datasets are then set on the command line."""
    if pair and (source or target):
        raise ConfigError("give --pair, or --source and --target, not both")
    if pair:
        path = pair_file(pair)
        return path.stem, path, pair_datasets(path)
    if bool(source) != bool(target):
        raise ConfigError("--source and --target go together (or give --pair)")
    if not source:
        return None, None, None
    name = pair_name(source, target)
    shipped = config_root() / "pairs" / f"{name}.yaml"
    return name, shipped if shipped.is_file() else None, (source, target)


def pair_stage_files(path: Path, stage: str) -> list[Path]:
    """The per-stage files of the pair file ``path`` that ``stage`` reads, in merge order: one per
    piece of the stage (``<pair>/reid.yaml`` ...), then the stage's own (``<pair>/reid_direct.yaml``).
    A file in the folder named after no piece or stage is refused (it would never be read)."""
    folder = pair_folder(path)
    if not folder.is_dir():
        return []
    names = {piece for spec in STAGES.values() for piece in spec.pieces} | set(STAGES)
    for file in sorted(f for f in folder.iterdir() if f.suffix in (".yaml", ".yml")):
        if file.stem not in names:
            raise ConfigError(f"{file}: no piece or stage of that name, so no stage would read it; expected "
                              f"<name>.yaml, name one of {', '.join(sorted(names))}")
    wanted = list(dict.fromkeys([*STAGES[stage].pieces, stage]))
    return [folder / f"{name}{ext}" for name in wanted for ext in (".yaml", ".yml")
            if (folder / f"{name}{ext}").is_file()]


def stage_configs(stage: str, pair: str | None = None, source: str | None = None,
                  target: str | None = None) -> list[Path]:
    """The config files of ``stage`` for a pair, in merge order: every piece's ``base/`` file,
    each followed by its ``embedded/`` file when both datasets of the pair are embedded ones, then
    the pair file (when the pair has one) and its per-stage files (:func:`pair_stage_files`), so
    that the pair's own settings win."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    root = config_root()
    _, path, datasets = resolve_pair(pair, source, target)
    embedded = datasets is not None and {get_spec(d).name for d in datasets} <= set(EMBEDDED_DATASETS)
    files = []
    for piece in STAGES[stage].pieces:
        files.append(root / "base" / f"{piece}.yaml")
        if embedded and (root / "embedded" / f"{piece}.yaml").is_file():
            files.append(root / "embedded" / f"{piece}.yaml")
    return files + ([path, *pair_stage_files(path, stage)] if path else [])


def run_folder(stage: str, pair: str | None = None, runs: str | Path = RUNS) -> Path:
    """Where ``stage`` of ``pair`` runs: ``runs/<pair>/<stage>`` (``runs/<stage>`` without pair)."""
    return Path(runs) / Path(pair).stem / stage if pair else Path(runs) / stage


def last_checkpoint(run: str | Path) -> Path:
    """The checkpoint a run leaves (and resumes from): ``<run>/checkpoints/last.ckpt``."""
    return Path(run) / CHECKPOINTS / LAST_CKPT


def stage_arguments(stage: str, pair: str | None = None, runs: str | Path = RUNS, source: str | None = None,
                    target: str | None = None) -> list[str]:
    """The LightningCLI arguments of ``stage`` for a pair (``pair``, or ``source`` and ``target``):
    its ``--config`` files, the datasets of a pair without pair file, then its run layout (run
    folder and logger under ``runs/<pair>/<stage>``; the judge and translator checkpoints of the
    same pair). Later arguments override all of them."""
    spec = STAGES.get(stage)
    args = [arg for path in stage_configs(stage, pair, source, target) for arg in ("--config", str(path))]
    name, path, datasets = resolve_pair(pair, source, target)
    if datasets is not None and path is None:
        args += [f"--data.source={datasets[0]}", f"--data.target={datasets[1]}"]
    pair = name
    run = run_folder(stage, pair, runs)
    args += [f"--trainer.default_root_dir={run}", f"--trainer.logger.init_args.save_dir={run.parent}",
             f"--trainer.logger.init_args.name={stage}"]
    if spec.judge:
        args.append(f"--model.init_args.judge={last_checkpoint(run_folder(spec.judge, pair, runs))}")
    if spec.translator:
        args.append(f"--rendering.init_args.translator={last_checkpoint(run_folder(spec.translator, pair, runs))}")
    if spec.init:
        args.append(f"--model.init_args.init_checkpoint={last_checkpoint(run_folder(spec.init, pair, runs))}")
    return args


#: The flags :func:`expand_stage` reads (``--runs DIR``: the folder of the pairs' run folders, default ``runs``).
STAGE_FLAGS = ("--stage", "--pair", "--source", "--target", "--runs")


def expand_stage(argv: list[str]) -> list[str]:
    """Replace ``--stage S`` with ``--pair P`` or ``--source A --target B`` (also ``--stage=S``;
    ``--runs DIR`` moves the run folders) in a Lightning command line by :func:`stage_arguments`,
    placed right after the subcommand so that the user's own arguments override them."""
    found: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        key = arg.split("=", 1)[0]
        if key in STAGE_FLAGS:
            if "=" in arg:
                found[key] = arg.split("=", 1)[1]
            elif i + 1 < len(argv):
                found[key] = argv[i + 1]
                i += 1
            else:
                raise ConfigError(f"{key} needs a value")
        else:
            rest.append(arg)
        i += 1
    if not found:
        return argv
    if "--stage" not in found:
        raise ConfigError(f"{' and '.join(found)} need --stage (one of {', '.join(STAGES)})")
    return rest[:1] + stage_arguments(found["--stage"], found.get("--pair"), runs=found.get("--runs", RUNS),
                                      source=found.get("--source"), target=found.get("--target")) + rest[1:]


def config_value(stage: str, dotted: str, pair: str | None = None, source: str | None = None,
                 target: str | None = None):
    """The value a stage's shipped configs give a dotted key (``"data.height"``): that of the last
    file that sets it, as LightningCLI merges them (None when none does)."""
    import yaml

    value = None
    for path in stage_configs(stage, pair, source, target):
        node = yaml.safe_load(path.read_text()) or {}
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            value = node
    return value
