"""The shipped configs: package data, composed per stage, every stage of every pair parses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import shipped_config

from crgan_lightning.app.cli import main
from crgan_lightning.app.stages import STAGES, config_root, expand_stage, stage_arguments, stage_configs
from crgan_lightning.callbacks.rendering import ContextRenderingCallback
from crgan_lightning.errors import ConfigError

PAIRS = ("duke2market", "market2duke", "synth_a2synth_b")
MODULES = {"crgan": "crgan.CRGANModule", "spgan": "spgan.SPGANModule", "reid_direct": "reid.ReIDModule",
           "reid_crgan": "reid.ReIDModule", "reid_taudl": "taudl.TAUDLModule",
           "reid_crgan_taudl": "taudl.TAUDLModule", "reid_spgan_taudl": "taudl.TAUDLModule",
           "reid_cluster": "cluster.ClusterModule", "reid_crgan_cluster": "cluster.ClusterModule"}


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


def test_a_stage_is_its_pieces_in_order_with_the_embedded_recipe_after_each():
    names = [f"{p.parent.name}/{p.stem}" for p in stage_configs("reid_crgan", "synth_a2synth_b")]
    assert names == ["base/trainer", "embedded/trainer", "base/reid", "embedded/reid", "base/streaming",
                     "embedded/streaming", "pairs/synth_a2synth_b"]
    names = [f"{p.parent.name}/{p.stem}" for p in stage_configs("reid_crgan", source="market", target="msmt17")]
    assert names == ["base/trainer", "base/reid", "base/streaming"]  # a pair without file: its names only


def test_a_new_pair_needs_no_file_or_a_short_one(tmp_path):
    args = stage_arguments("reid_crgan", source="market", target="msmt17")
    assert "--data.source=market" in args and "--data.target=msmt17" in args
    assert "--trainer.default_root_dir=runs/market2msmt17/reid_crgan" in args
    assert "--rendering.init_args.translator=runs/market2msmt17/crgan/checkpoints/last.ckpt" in args
    own = tmp_path / "cuhk2duke.yaml"  # the user's own pair file
    own.write_text("data:\n  source: cuhk03np\n  target: duke\n")
    assert stage_configs("crgan", str(own))[-1] == own
    assert "--trainer.default_root_dir=runs/cuhk2duke/crgan" in stage_arguments("crgan", str(own))


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
    assert "--trainer.default_root_dir=runs/msmt172duke/reid_direct" in words
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
