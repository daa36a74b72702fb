"""The shipped configs: package data, composed per stage, every stage of every pair parses."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import yaml
from conftest import shipped_config

from crgan_lightning.app.cli import main
from crgan_lightning.app.lightning import resolved_config
from crgan_lightning.app.stages import (STAGES, config_root, config_value, expand_stage, pair_name, stage_arguments,
                                        stage_configs)
from crgan_lightning.callbacks.rendering import ContextRenderingCallback
from crgan_lightning.errors import ConfigError, DatasetError

PAIRS = ("duke2market", "market2duke", "synth_a2synth_b")
SAME = object()  # the class's own default is the documented value
#: The settings docs/method.md names as the library's choices: (stage, dotted key, the value the paper-scale
#: configs give it, the default of the class it configures where the configs depart from it).
DOCUMENTED_DEFAULTS = [
    ("crgan", "model.init_args.gan_mode", "lsgan", SAME),
    ("crgan", "model.init_args.context_reduction", "l1", SAME),
    ("crgan", "model.init_args.lambda_context", 10.0, SAME),
    ("crgan", "model.init_args.target_id_ratio", 0.7, 0.0),
    ("crgan", "model.init_args.generator.init_args.target_skips", True, False),
    ("crgan", "model.init_args.generator.init_args.norm", "instance", SAME),
    ("crgan", "model.init_args.generator.init_args.fuse", "concat", SAME),
    ("crgan", "model.init_args.generator.init_args.target_input", "image", "masked"),
    ("crgan", "model.init_args.stop_min_epochs", 3, 1),
    ("crgan", "model.init_args.stop_window", 2, 1),
    ("spgan", "model.init_args.gan_mode", "lsgan", SAME),
    ("spgan", "model.init_args.lambda_cycle", 10.0, SAME),
    ("spgan", "model.init_args.lambda_identity", 5.0, SAME),
    ("spgan", "model.init_args.margin", 2.0, SAME),
    ("reid_crgan", "rendering.init_args.within_identity", True, False),
    ("reid_crgan", "rendering.init_args.contexts_from", "dataset", "batch"),
    ("reid_crgan", "rendering.init_args.pad", 10, 0),
    ("reid_crgan", "model.init_args.joint_triplet", True, False),
    ("reid_crgan", "model.init_args.batch_erasing_p", 0.5, 0.0),
    ("reid_crgan", "model.init_args.synthetic_weight", 1.0, SAME),
    ("reid_crgan", "data.erasing_p", 0.0, 0.5),
    ("reid_crgan", "data.pad", 0, 10),
    ("reid_crgan", "data.masks", "auto", SAME),
    ("reid_crgan_taudl", "data.masks", "auto", SAME),
    ("reid_taudl", "data.masks", "none", "auto"),
    ("reid_taudl", "model.init_args.taudl_lambda", 0.7, SAME),
    ("reid_taudl", "model.init_args.source_weight", 0.0, 1.0),
]
MODULES = {"crgan": "crgan.CRGANModule", "spgan": "spgan.SPGANModule", "reid_direct": "reid.ReIDModule",
           "reid_crgan": "reid.ReIDModule", "reid_taudl": "taudl.TAUDLModule",
           "reid_crgan_taudl": "taudl.TAUDLModule", "reid_spgan_taudl": "taudl.TAUDLModule",
           "reid_cluster": "cluster.ClusterModule", "reid_crgan_cluster": "cluster.ClusterModule",
           "reid_crgan_cluster_joint": "cluster.ClusterModule"}


def test_the_configs_are_package_data_with_one_file_per_shipped_pair():
    root = config_root()
    assert root == Path(__import__("crgan_lightning").__file__).parent / "configs"
    assert sorted(p.stem for p in (root / "pairs").glob("*.yaml")) == list(PAIRS)
    assert set(STAGES) == set(MODULES)
    for pair in PAIRS:  # a pair file holds the names of the pair only
        assert set(yaml.safe_load((root / "pairs" / f"{pair}.yaml").read_text())) == {"data"}


@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("stage", sorted(MODULES))
def test_every_stage_of_every_pair_parses_into_its_module_and_run_folder(stage, pair):
    cfg = shipped_config(stage, pair)
    assert cfg["model"]["class_path"] == f"crgan_lightning.modules.{MODULES[stage]}"
    source, target = pair.split("2")
    assert (cfg["data"]["source"], cfg["data"]["target"]) == (source, target)
    assert cfg["trainer"]["default_root_dir"] == f"runs/{pair}/{stage}"
    assert cfg["trainer"]["logger"]["init_args"] == {**cfg["trainer"]["logger"]["init_args"],
                                                     "save_dir": f"runs/{pair}", "name": stage}
    assert cfg["checkpoint"]["save_last"] is True and cfg["checkpoint"]["dirpath"] is None
    embedded = pair == "synth_a2synth_b"
    assert (cfg["data"]["height"], cfg["trainer"]["precision"]) == ((64, "32-true") if embedded else (256, "16-mixed"))
    translator = STAGES[stage].translator
    assert (cfg["rendering"] is not None) == (translator is not None)
    if translator:
        ContextRenderingCallback(**cfg["rendering"]["init_args"])  # its arguments are valid together
        assert cfg["rendering"]["init_args"]["translator"] == f"runs/{pair}/{translator}/checkpoints/last.ckpt"
    if STAGES[stage].init:  # the clustering stages start from a re-id run of the pair
        assert cfg["model"]["init_args"]["init_checkpoint"] == f"runs/{pair}/{STAGES[stage].init}/checkpoints/last.ckpt"
    if stage == "crgan":  # judged by the pair's direct-transfer run
        assert cfg["model"]["init_args"]["judge"] == f"runs/{pair}/reid_direct/checkpoints/last.ckpt"


def _class_default(stage: str, dotted: str):
    """The ``__init__`` default of the argument ``dotted`` names, in the class the stage's config builds
    there (the DataModule for ``data.*``)."""
    parts = dotted.split(".")
    if parts[0] == "data":
        class_path = "crgan_lightning.data.datamodule.CrossDomainDataModule"
    else:
        at = max(i for i, part in enumerate(parts) if part == "init_args")
        class_path = config_value(stage, ".".join(parts[:at] + ["class_path"]), "market2duke")
    module, _, name = class_path.rpartition(".")
    for cls in getattr(importlib.import_module(module), name).__mro__:
        params = inspect.signature(cls.__init__).parameters if "__init__" in vars(cls) else {}
        if parts[-1] in params:
            return params[parts[-1]].default
    raise AssertionError(f"{class_path} takes no {parts[-1]}")


@pytest.mark.parametrize("stage, dotted, value, class_default", DOCUMENTED_DEFAULTS,
                         ids=[f"{s}:{k.rsplit('.', 1)[-1]}" for s, k, _, _ in DOCUMENTED_DEFAULTS])
def test_the_base_configs_state_every_default_the_docs_name(stage, dotted, value, class_default):
    # the paper-scale pair reads base/ only: the value is stated there, not left to the class
    assert config_value(stage, dotted, "market2duke") == value
    assert _class_default(stage, dotted) == (value if class_default is SAME else class_default)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "method.md").read_text()
    assert re.search(rf"\b{dotted.rsplit('.', 1)[-1]}\b", docs)  # the docs name it


def test_a_stage_is_its_pieces_in_order_with_the_embedded_recipe_after_each():
    names = [f"{p.parent.name}/{p.stem}" for p in stage_configs("reid_crgan", "synth_a2synth_b")]
    assert names == ["base/trainer", "embedded/trainer", "base/reid", "embedded/reid", "base/streaming",
                     "embedded/streaming", "pairs/synth_a2synth_b"]
    names = [f"{p.parent.name}/{p.stem}" for p in stage_configs("reid_crgan", source="market", target="msmt17")]
    assert names == ["base/trainer", "base/reid", "base/streaming"]  # a pair without file: its names only


def test_a_new_pair_needs_no_file_or_a_short_one(tmp_path):
    args = stage_arguments("reid_crgan", source="market", target="msmt17")
    assert "--data.source=market" in args and "--data.target=msmt17" in args
    assert "--trainer.default_root_dir=runs/market2msmt/reid_crgan" in args
    assert "--rendering.init_args.translator=runs/market2msmt/crgan/checkpoints/last.ckpt" in args
    own = tmp_path / "cuhk2duke.yaml"  # the user's own pair file
    own.write_text("data:\n  source: cuhk03np\n  target: duke\n")
    assert stage_configs("crgan", str(own))[-1] == own
    assert "--trainer.default_root_dir=runs/cuhk2duke/crgan" in stage_arguments("crgan", str(own))


def test_pair_names_are_the_registrys_whatever_alias_is_typed():
    assert pair_name("msmt17", "duke") == pair_name("MSMT", "dukemtmc-reid") == "msmt2duke"
    assert pair_name("market1501", "dukemtmcreid") == "market2duke"
    assert pair_name("cuhk03", "market-1501") == "cuhk03np2market"
    # an alias pair reads the shipped pair file and runs in the canonical pair's folders
    args = stage_arguments("crgan", source="Market-1501", target="dukemtmc")
    assert str(config_root() / "pairs" / "market2duke.yaml") in args
    assert "--trainer.default_root_dir=runs/market2duke/crgan" in args
    assert "--model.init_args.judge=runs/market2duke/reid_direct/checkpoints/last.ckpt" in args
    names = [f"{p.parent.name}/{p.stem}" for p in stage_configs("reid_direct", source="syntha", target="synthb")]
    assert names == ["base/trainer", "embedded/trainer", "base/reid", "embedded/reid", "pairs/synth_a2synth_b"]
    with pytest.raises(DatasetError, match="unknown dataset 'viper'"):
        stage_arguments("crgan", source="viper", target="duke")


def test_runs_flag_moves_every_run_folder_of_the_pair():
    argv = expand_stage(["fit", "--stage", "reid_crgan", "--pair", "market2duke", "--runs", "/scratch/runs"])
    assert "--trainer.default_root_dir=/scratch/runs/market2duke/reid_crgan" in argv
    assert "--rendering.init_args.translator=/scratch/runs/market2duke/crgan/checkpoints/last.ckpt" in argv


def test_a_pair_setting_in_a_stage_file_reaches_that_stage_only(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("data:\n  source: synth_a\n  target: synth_b\n  num_workers: 0\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "crgan.yaml").write_text("trainer:\n  max_epochs: 80\n")
    (tmp_path / "mine" / "reid.yaml").write_text("trainer:\n  max_epochs: 7\n")  # every re-id stage
    (tmp_path / "mine" / "reid_direct.yaml").write_text("data:\n  batch_size: 32\n")  # that stage alone
    names = [p.name for p in stage_configs("reid_direct", str(own))]
    assert names[-3:] == ["mine.yaml", "reid.yaml", "reid_direct.yaml"]
    crgan = resolved_config(["--stage", "crgan", "--pair", str(own)])
    direct = resolved_config(["--stage", "reid_direct", "--pair", str(own)])
    streaming = resolved_config(["--stage", "reid_crgan", "--pair", str(own)])
    assert crgan["trainer"]["max_epochs"] == 80
    assert direct["trainer"]["max_epochs"] == streaming["trainer"]["max_epochs"] == 7
    assert direct["data"]["batch_size"] == 32 and streaming["data"]["batch_size"] != 32
    assert crgan["data"]["num_workers"] == direct["data"]["num_workers"] == 0  # the pair file: every stage
    shipped = shipped_config("reid_direct")
    assert shipped["trainer"]["max_epochs"] != 7 and shipped["data"]["batch_size"] != 32


def test_a_pair_file_with_settings_beyond_data_or_a_stray_stage_file_is_refused(tmp_path, capsys):
    own = tmp_path / "mine.yaml"
    own.write_text("data:\n  source: market\n  target: duke\ntrainer:\n  max_epochs: 80\n")
    assert main(["fit", "--stage", "crgan", "--pair", str(own)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"pair file {own} sets trainer, which would apply to every stage" in err
    assert f"{tmp_path / 'mine'}/crgan.yaml" in err
    own.write_text("data:\n  source: market\n  target: duke\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "cr_gan.yaml").write_text("trainer:\n  max_epochs: 80\n")
    assert main(["configs", "--stage", "crgan", "--pair", str(own)]) == 2
    assert f"{tmp_path / 'mine' / 'cr_gan.yaml'}: no piece or stage of that name" in capsys.readouterr().err


def test_stage_flags_expand_before_the_users_own_arguments():
    argv = expand_stage(["fit", "--trainer.max_epochs=2", "--stage=reid_direct", "--pair", "market2duke"])
    assert argv[0] == "fit" and argv[-1] == "--trainer.max_epochs=2"  # the user's flag comes last: it wins
    assert argv[1:3] == ["--config", str(config_root() / "base" / "trainer.yaml")]
    assert expand_stage(["fit", "--config", "a.yaml"]) == ["fit", "--config", "a.yaml"]


@pytest.mark.parametrize("argv, message", [
    (["fit", "--stage", "nope"], "unknown stage 'nope'; expected one of reid_direct"),
    (["fit", "--stage", "crgan", "--pair", "viper2duke"], "unknown pair 'viper2duke'; expected one of duke2market"),
    (["fit", "--pair", "market2duke"], "--pair need --stage"),
    (["fit", "--stage", "crgan", "--source", "market"], "--source and --target go together"),
])
def test_a_wrong_stage_or_pair_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crgan: error:") and message in err and "\n" not in err


def test_a_pair_file_without_its_names_is_refused(tmp_path, capsys):
    bad = tmp_path / "mine.yaml"
    bad.write_text("data:\n  root: /datasets\n")
    assert main(["fit", "--stage", "crgan", "--pair", str(bad)]) == 2
    assert f"pair file {bad} sets no data.source and data.target" in capsys.readouterr().err


def test_crgan_configs_lists_stages_and_pairs_and_expands_a_stage(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert str(config_root()) in out and "reid_crgan_taudl" in out and "synth_a2synth_b" in out
    assert main(["configs", "--stage", "crgan", "--pair", "market2duke"]) == 0
    assert capsys.readouterr().out.split() == stage_arguments("crgan", "market2duke")
    # a pair without a file of its own: the shared recipe and the two dataset names
    assert main(["configs", "--stage", "reid_direct", "--source", "msmt17", "--target", "duke"]) == 0
    words = capsys.readouterr().out.split()
    assert "--data.source=msmt17" in words and "--data.target=duke" in words
    assert "--trainer.default_root_dir=runs/msmt2duke/reid_direct" in words
    assert not any(w.endswith(".yaml") and "pairs" in w for w in words)


def test_torch_threads_is_a_setting_of_every_run(capsys):
    import torch

    before = torch.get_num_threads()
    from crgan_lightning.app.lightning import set_torch_threads

    try:
        set_torch_threads(1)
        assert torch.get_num_threads() == 1
        set_torch_threads(None)  # null leaves it
        assert torch.get_num_threads() == 1
        with pytest.raises(ConfigError, match="torch_threads=0"):
            set_torch_threads(0)
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        main(["fit", "--stage", "reid_direct", "--pair", "synth_a2synth_b", "--torch_threads=1", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["torch_threads"] == 1


@pytest.mark.parametrize("pair", PAIRS)
def test_the_shipped_generator_composites_and_streaming_reads_the_masks_it_needs(pair):
    assert config_value("crgan", "model.init_args.generator.class_path", pair) == \
        "crgan_lightning.models.compositor.CompositingGenerator"
    # the compositor cuts the person out with the source mask
    for stage in ("reid_crgan", "reid_crgan_taudl", "reid_spgan_taudl", "reid_crgan_cluster_joint"):
        assert config_value(stage, "data.masks", pair) == "auto"
