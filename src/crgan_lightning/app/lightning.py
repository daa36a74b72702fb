"""The LightningCLI behind ``crgan fit|validate|test|predict``.

Beside the ``trainer``, ``model`` and ``data`` groups every LightningCLI has, it holds two named
callback groups, so that a setting reaches its callback whatever the order of
``trainer.callbacks``:

* ``checkpoint``: the run's :class:`~pytorch_lightning.callbacks.ModelCheckpoint`, saving
  ``<trainer.default_root_dir>/checkpoints/last.ckpt`` at every epoch end (the resume point);
  ``--checkpoint.save_top_k=3`` ...;
* ``rendering`` (optional): the
  :class:`~crgan_lightning.callbacks.rendering.ContextRenderingCallback` that streams renderings
  into the re-id batches; ``--rendering.translator=CKPT`` ...

The numbers the data decides (source identities, target cameras, queries) are linked from the
DataModule into the module, and ``--stage S --pair P`` stands for the stage's shipped configs
(:mod:`crgan_lightning.app.stages`).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import Optional

from ..errors import ConfigError, CRGANError
from .stages import CHECKPOINTS, LAST_CKPT, expand_stage

#: The Lightning subcommands ``crgan`` passes to LightningCLI.
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
#: What each does, in one line (``crgan --help`` and the first line of ``crgan COMMAND --help``).
LIGHTNING_HELP = {
    "fit": "train a stage of a pair: crgan fit --stage STAGE --pair PAIR [--data.root=DIR ...]",
    "validate": "a checkpoint's validation metrics on the target: crgan validate --stage S --pair P --ckpt_path C",
    "test": "test a re-id checkpoint on the target (rank-1/5/10, mAP, mINP, CMC plot): crgan test --stage S "
            "--pair P --ckpt_path C",
    "predict": "a re-id checkpoint's features of the target query and gallery: crgan predict --stage S --pair P "
               "--ckpt_path C",
}
#: DataModule properties linked into the module's __init__ argument of the same name, for the modules
#: that take it (a link to an argument the chosen module does not have is skipped).
DATA_LINKS = ("num_source_pids", "num_query", "num_target_cameras")
#: The ``checkpoint`` group's defaults: last.ckpt rewritten at every epoch end, never a last-v1.ckpt.
CHECKPOINT_DEFAULTS = {"save_last": True, "save_top_k": 1, "save_on_train_epoch_end": True,
                       "enable_version_counter": False}

_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
_BOILERPLATE = ("Expected a ", "Does not validate", "Not a valid", "a class path", "a dict", "a string",
                "Given value", "Problem with given class_path", "Type ", "Import path")


def _intro_formatter():
    """jsonargparse's help formatter, keeping the line breaks of the description (the first section)."""
    import argparse

    from jsonargparse import DefaultHelpFormatter

    class IntroHelpFormatter(DefaultHelpFormatter):
        _fill_text = argparse.RawDescriptionHelpFormatter._fill_text

    return IntroHelpFormatter


def help_intro(command: str) -> str:
    """The first section of ``crgan COMMAND --help``: the stage and pair options, the settings users
    change, and where the rest is (``--print_config``, ``crgan configs``); LightningCLI's list of every
    option follows it."""
    from .stages import STAGES, config_root

    pairs = ", ".join(sorted(p.stem for p in (config_root() / "pairs").glob("*.yaml")))
    rows = [
        ("stage and pair (they stand for the stage's shipped --config files and its run folder):", None),
        ("--stage STAGE", ", ".join(STAGES)),
        ("--pair PAIR", f"a shipped pair ({pairs}) or the path of your own pair file"),
        ("--source A --target B", "instead of --pair: any two registered datasets (market, duke, msmt17, cuhk03np, "
                                  "synth_a ...; aliases accepted)"),
        ("--runs DIR", "the folder of the run folders DIR/<pair>/<stage> (default: runs)"),
        ("the settings most runs change:", None),
        ("--data.root=DIR", "the data root holding both datasets (default: data)"),
    ]
    if command == "fit":
        rows += [
            ("--trainer.max_epochs=N", "the schedule (the configs' own: --print_config)"),
            ("--seed_everything=N", "the seed (default: 0)"),
            ("--ckpt_path last", "continue this run from its last.ckpt (a fit refuses to train over a run's "
                                 "checkpoints otherwise)"),
        ]
    else:
        rows += [
            ("--ckpt_path C", "the checkpoint to evaluate (last: the run's own last.ckpt; --untrained true: the "
                              "network as built)"),
        ]
    rows += [
        ("--trainer.devices=N", "GPUs (or processes); with --trainer.strategy=ddp for several"),
        ("--trainer.precision=P", "16-mixed or bf16-mixed on GPUs, 32-true on the CPU"),
        ("--torch_threads=N", "torch's CPU threads (two runs on one machine: cores / 2 each)"),
        ("the rest:", None),
        ("--print_config", f"print the whole merged config of the run (crgan {command} --stage S --pair P "
                           "--print_config): every key below, with its value"),
        ("crgan configs", "the stages, pairs and config files; --stage S --pair P: what they stand for"),
    ]
    import textwrap

    lines = [*textwrap.wrap(LIGHTNING_HELP[command][0].upper() + LIGHTNING_HELP[command][1:] + ".", 100), ""]
    for flag, text in rows:
        lines += ["", flag] if text is None else textwrap.wrap(text, 100, initial_indent=f"  {flag:<24}",
                                                               subsequent_indent=" " * 26)
    lines += ["", *textwrap.wrap("LightningCLI's list of every option follows (--stage, --pair, --source, --target "
                                 "and --runs are crgan's own).", 100)]
    return "\n".join(lines)


def help_settings(command: str) -> dict:
    """The parser settings of ``crgan COMMAND``'s help: a short usage line and :func:`help_intro` (kept as
    written by :func:`_intro_formatter`, which jsonargparse takes from the main parser)."""
    usage = (f"crgan {command} --stage STAGE (--pair PAIR | --source A --target B) [--runs DIR] [OPTIONS]\n"
             f"       crgan {command} --config FILE [--config FILE ...] [OPTIONS]")
    return {"usage": usage, "description": help_intro(command), "formatter_class": _intro_formatter()}


def one_line(exc: BaseException) -> str:
    """One line for a LightningCLI parsing or instantiation error: the library's own message when
    one caused it (jsonargparse wraps it in a report on every type it tried), else the report's
    first specific line."""
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, CRGANError):
            return str(cause)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    specific = [line[2:] for line in lines if line.startswith("- ") and not line[2:].startswith(_BOILERPLATE)]
    head = lines[0] if lines else type(exc).__name__
    refused = [line.split("'")[1] for line in lines if line.startswith("Option '") and line.endswith("is not accepted")]
    if refused:  # a key the class does not take (misspelt, or a re-id argument that moved into net/optimizer/...)
        from ..modules.reid import MOVED_ARGUMENTS

        moved = MOVED_ARGUMENTS.get(refused[0]) if head.startswith('Parser key "model"') else None
        return (f"{head.rstrip(':')}: option '{refused[0]}' is not accepted"
                + (f"; it moved to model.init_args.{moved}" if moved else ""))
    key = re.fullmatch(r'Parser key "([^"]+)":', head)
    if key and not specific and len(lines) > 1:  # a value of the wrong type: the flag, the value, the type
        wrong = re.fullmatch(r"Expected a <class '(\w+)'>\. Got value: (.*)", lines[1])
        if wrong:
            return f"--{key.group(1)}={wrong.group(2)}: expected {_TYPE_NAMES.get(wrong.group(1), wrong.group(1))}"
        return f"--{key.group(1)}: {lines[1]}"
    return f"{head.rstrip(':')}: {specific[0]}" if specific and specific[0] not in head else head


def checkpoint_dir_under_root(config) -> None:
    """A ``checkpoint.dirpath`` left null saves to ``<trainer.default_root_dir>/checkpoints``
    (Lightning's own default would be a per-version folder of the logger), so
    ``--trainer.default_root_dir=DIR`` alone moves a run and ``DIR/checkpoints/last.ckpt`` is where
    an interrupted run resumes from."""
    trainer = config.get("trainer") if config is not None else None
    root = trainer.get("default_root_dir") if trainer is not None else None
    checkpoint = config.get("checkpoint")
    if root and checkpoint is not None and checkpoint.get("dirpath") is None:
        checkpoint["dirpath"] = os.path.join(str(root), CHECKPOINTS)


def ddp_strategy_for_the_model(config) -> None:
    """``trainer.strategy: ddp`` becomes the strategy the model class asks for under DDP (the GAN
    modules' ``ddp_strategy``: ``ddp_find_unused_parameters_true``); other strategies and models
    are left as they are."""
    trainer, model = config.get("trainer"), config.get("model")
    class_path = model.get("class_path") if model is not None else None
    if trainer is None or trainer.get("strategy") != "ddp" or not class_path:
        return
    module, _, name = str(class_path).rpartition(".")
    if not module:
        return
    wanted = getattr(getattr(importlib.import_module(module), name, None), "ddp_strategy", None)
    if wanted:
        trainer["strategy"] = wanted


def set_torch_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in torch's operators (None: leave torch's default)."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"torch_threads={threads}; expected a number of threads >= 1 (or null)")
    import torch

    torch.set_num_threads(threads)


def _dotted_keys(node, name: str, prefix: str) -> list[str]:
    """The dotted config keys under ``prefix`` whose last part is ``name`` (depth first)."""
    if hasattr(node, "as_dict"):
        node = node.as_dict()
    if not isinstance(node, dict):
        return []
    found = [f"{prefix}.{name}"] if name in node else []
    for key, value in node.items():
        found += _dotted_keys(value, name, f"{prefix}.{key}")
    return found


def with_flag_names(message: str, config) -> str:
    """A library message that names the Python arguments ``pretrained_path=FILE`` and
    ``pretrained=False`` rewritten with the command-line flags that set them in this config
    (``--model.init_args.pretrained_path=FILE``)."""
    keys = _dotted_keys(config.get("model"), "pretrained_path", "model")
    if not keys:
        return message
    flag = keys[0]
    message = re.sub(r"(?<![\w.-])pretrained_path=", f"--{flag}=", message)
    return re.sub(r"(?<![\w.-])pretrained=False", f"--{flag.removesuffix('_path')}=false", message)


def check_seed(config) -> None:
    """``seed_everything`` must be a seed numpy accepts (0 to 2**32 - 1), or true/false."""
    seed = config.get("seed_everything")
    if isinstance(seed, bool) or seed is None:
        return
    if not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1:
        raise ConfigError(f"--seed_everything={seed}: expected a seed from 0 to {2**32 - 1} "
                          "(or true for a random one, false for none)")


def resolve_last(ckpt_path: str | None, config) -> str | None:
    """``--ckpt_path last`` names the run's own ``<checkpoint.dirpath>/last.ckpt`` (the epoch-end
    checkpoint an interrupted or finished fit left); a run without one is refused in one line
    instead of Lightning's warning and a fresh start. Any other value is returned as it is."""
    if ckpt_path != "last":
        return ckpt_path
    checkpoint = config.get("checkpoint")
    dirpath = checkpoint.get("dirpath") if checkpoint is not None else None
    if not dirpath:
        raise ConfigError("--ckpt_path last needs the run's checkpoint folder: set --trainer.default_root_dir=DIR "
                          "(or --checkpoint.dirpath=DIR)")
    path = os.path.join(str(dirpath), LAST_CKPT)
    if not os.path.isfile(path):
        raise ConfigError(f"--ckpt_path last: {path} does not exist, so there is no earlier fit to continue in "
                          f"{dirpath}; drop --ckpt_path to start one")
    return path


def refuse_untrained(subcommand: str, ckpt_path: str | None, untrained: bool) -> None:
    """``crgan test|validate|predict`` evaluate the network a checkpoint holds; without
    ``--ckpt_path`` they would report the numbers of an untrained network, so that needs
    ``--untrained true``."""
    if subcommand in ("validate", "test", "predict") and not ckpt_path and not untrained:
        raise ConfigError(f"crgan {subcommand} without --ckpt_path would evaluate an untrained network; give the "
                          "weights to evaluate (--ckpt_path last, or --ckpt_path runs/<pair>/<stage>/checkpoints/"
                          "last.ckpt), or --untrained true to evaluate the network as built")


def check_checkpoint_kind(ckpt_path: str, expected: str | None) -> None:
    """Refuse a ``--ckpt_path`` that is missing, unreadable or truncated, or whose module (re-id,
    CR-GAN, SPGAN: the ``_class_path`` the CLI saved in its hyperparameters) is not ``expected``."""
    from ..checkpoints import hyperparameters, read_checkpoint

    path = os.fspath(ckpt_path)
    ckpt = read_checkpoint(path, what="--ckpt_path", expected="a .ckpt of this run written by crgan fit",
                           error=ConfigError)
    found = hyperparameters(ckpt).get("_class_path")
    if expected and found and found != expected:
        raise ConfigError(f"--ckpt_path {path} is a {found.rsplit('.', 1)[-1]} checkpoint; this config trains "
                          f"a {expected.rsplit('.', 1)[-1]} (give a checkpoint of the same stage)")


def run_lightning_cli(argv: Sequence[str]):
    """Run the LightningCLI over the library's modules (``argv`` starts with the subcommand);
    returns the LightningCLI object (its ``trainer``, ``model``, ``datamodule``)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.cli import LightningCLI

    from ..callbacks.rendering import ContextRenderingCallback
    from ..callbacks.runs import AtomicCheckpointIO, RunGuard
    from ..callbacks.tidy import RemoveEmptyRunFolder
    from ..data.datamodule import CrossDomainDataModule

    class CRGANLightningCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            for name in DATA_LINKS:
                parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({f"checkpoint.{k}": v for k, v in CHECKPOINT_DEFAULTS.items()})
            # not a Lightning callback key: an absent group must not reach the Trainer as None
            parser.add_subclass_arguments(ContextRenderingCallback, "rendering", required=False,
                                          fail_untyped=False)
            parser.add_argument("--torch_threads", type=Optional[int], default=None,
                                help="torch's CPU threads for this run (null: torch's default, one per core); "
                                     "two runs on one machine: give each cores / 2")
            parser.add_argument("--untrained", type=bool, default=False,
                                help="validate/test/predict without --ckpt_path: evaluate the network as built "
                                     "(random or ImageNet weights); refused unless this is true")

        def parse_arguments(self, parser, args) -> None:
            """``--ckpt_path`` brings weights and training state, not settings: the config and the
            command line decide every module argument (LightningCLI would otherwise replace them,
            and even the module class, with the checkpoint's hyperparameters, so the path is held
            back until the classes are built). A file that is not a checkpoint, or a checkpoint of
            another module, is refused in one line."""
            super().parse_arguments(parser, args)
            subcommand = self.config.get("subcommand")
            config = self.config.get(subcommand) if subcommand else None
            self._held_ckpt_path = config.get("ckpt_path") if config is not None else None
            if config is not None:
                check_seed(config)
                checkpoint_dir_under_root(config)
                self._held_ckpt_path = resolve_last(self._held_ckpt_path, config)
                refuse_untrained(subcommand, self._held_ckpt_path, bool(config.get("untrained")))
            if self._held_ckpt_path:
                model = config.get("model")
                check_checkpoint_kind(self._held_ckpt_path, model.get("class_path") if model is not None else None)
                config["ckpt_path"] = None

        def before_instantiate_classes(self) -> None:
            config = self.config.get(self.subcommand) if self.subcommand else self.config
            if config is not None:
                set_torch_threads(config.get("torch_threads"))
                ddp_strategy_for_the_model(config)
                checkpoint_dir_under_root(config)
                if self._held_ckpt_path:
                    config["ckpt_path"] = self._held_ckpt_path

        def before_fit(self) -> None:
            """Before Lightning starts any process: the run's folders writable, its lock taken, no
            earlier run's checkpoints overwritten (:class:`~crgan_lightning.callbacks.runs.RunGuard`).
            The other ranks of a DDP run (started again by Lightning) skip this."""
            if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
                return
            for callback in self.trainer.callbacks:
                if isinstance(callback, RunGuard):
                    callback.start(self.trainer, self._held_ckpt_path, command=" ".join(sys.argv[1:]))

        def instantiate_classes(self) -> None:
            """A user error met while building the model, data or callbacks reaches ``main`` as
            the library's own one-line error, not as jsonargparse's report on every type it tried,
            with the Python arguments it names written as the flags to type."""
            try:
                super().instantiate_classes()
            except (CRGANError, ValueError, TypeError) as exc:
                config = self.config.get(self.subcommand) if self.subcommand else self.config
                message = with_flag_names(str(exc) if isinstance(exc, CRGANError) else one_line(exc), config)
                raise (type(exc) if isinstance(exc, CRGANError) else ConfigError)(message) from exc

        def instantiate_trainer(self, **kwargs):
            """The Trainer with the ``rendering`` group's callback, when one is configured, after
            ``trainer.callbacks``, and checkpoints written by
            :class:`~crgan_lightning.callbacks.runs.AtomicCheckpointIO` (unless ``trainer.plugins`` is set).
            ``trainer.sync_batchnorm: true`` gets the library's batch norm over the global batch
            (:class:`~crgan_lightning.models.batchnorm.GlobalBatchNormSync`), which runs on CPUs (gloo)
            as on GPUs, where torch's SyncBatchNorm runs on GPUs only."""
            init = self.config_init.get(self.subcommand) if self.subcommand else self.config_init
            plugins = init["trainer"].get("plugins")
            plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins] if plugins else []
            if not plugins:  # checkpoints written atomically, unless plugins are chosen
                plugins = [AtomicCheckpointIO()]
            if init["trainer"].get("sync_batchnorm"):
                from ..models.batchnorm import GlobalBatchNormSync

                kwargs["sync_batchnorm"] = False
                plugins.append(GlobalBatchNormSync())
            kwargs.setdefault("plugins", plugins)
            rendering = init.get("rendering")
            if rendering is not None:
                callbacks = init["trainer"].get("callbacks") or []
                callbacks = list(callbacks) if isinstance(callbacks, list) else [callbacks]
                kwargs["callbacks"] = callbacks + [rendering]
            return super().instantiate_trainer(**kwargs)

    # The command is parsed from sys.argv, set to exactly this command: DDP starts the other ranks
    # with sys.argv, and the demo and the comparison run several commands in one process.
    argv = expand_stage(list(argv))
    command_line, sys.argv = sys.argv, [sys.argv[0], *argv]
    try:
        raise_errors = {"exit_on_error": False}  # main() prints one line instead of jsonargparse's report
        return CRGANLightningCLI(
            model_class=pl.LightningModule,
            subclass_mode_model=True,
            datamodule_class=CrossDomainDataModule,
            args=None,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [RemoveEmptyRunFolder(), RunGuard()]},
            parser_kwargs={**raise_errors, "formatter_class": _intro_formatter(),  # the subcommands take it
                           **{command: {**raise_errors, **help_settings(command)} for command in LIGHTNING_COMMANDS}},
        )
    finally:
        sys.argv = command_line


def resolved_config(argv: Sequence[str]) -> dict:
    """The config LightningCLI resolves for a ``fit`` command line (``argv`` after ``fit``, e.g.
    ``["--stage", "reid_crgan", "--pair", "synth_a2synth_b"]``) as one dict, every default filled in:
    what ``crgan fit ... --print_config`` prints. Nothing is built or run."""
    import contextlib
    import io

    import yaml

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            run_lightning_cli(["fit", *argv, "--print_config"])
        except SystemExit as exc:
            if exc.code:
                raise ConfigError(f"the config of {' '.join(argv)} does not parse (exit {exc.code})") from None
    return yaml.safe_load(out.getvalue())
