"""The crgan command: data and tool sub-commands, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import torchvision.models.segmentation as tv_seg

from crgan_lightning.app.cli import main
from crgan_lightning.data import load_reid_dataset


def test_synth_writes_both_domains_and_prints_their_tables(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--ids", "4", "--test-ids", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "=> synth_a loaded from" in out and "=> synth_b loaded from" in out
    assert load_reid_dataset("synth_b", tmp_path).num_train_pids == 4
    assert main(["summary", "--dataset", "synth_a", "--root", str(tmp_path)]) == 0
    assert "train    |       4 |" in capsys.readouterr().out


def test_user_errors_end_in_one_line_and_exit_2(tmp_path, capsys):
    assert main(["summary", "--dataset", "market", "--root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"crgan: error: market1501: data root {tmp_path / 'nowhere'} does not exist"]
    assert main(["summary", "--dataset", "viper", "--root", str(tmp_path)]) == 2
    assert "unknown dataset 'viper'" in capsys.readouterr().err


def test_masks_command_writes_a_tree_from_a_local_weight_file(tmp_path, capsys):
    main(["synth", "--out", str(tmp_path), "--ids", "3", "--test-ids", "2", "--quiet"])
    net = tv_seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    weights = tmp_path / "lraspp.pth"
    torch.save(net.state_dict(), weights)
    shutil.rmtree(tmp_path / "synth_a" / "masks")  # as a real dataset: no masks yet
    capsys.readouterr()
    argv = ["masks", "--dataset", "synth_a", "--root", str(tmp_path), "--model", "lraspp_mobilenet_v3_large",
            "--weights", str(weights), "--batch-size", "8", "--quiet"]
    assert main(argv) == 0
    ds = load_reid_dataset("synth_a", tmp_path)
    total = len(ds.train) + len(ds.query) + len(ds.gallery)
    assert capsys.readouterr().out.strip() == f"{total} masks written under {tmp_path / 'synth_a' / 'masks'}"
    assert len(list((tmp_path / "synth_a" / "masks").rglob("*.png"))) == total
    assert main(argv) == 0 and capsys.readouterr().out.startswith("0 masks written")  # resumed: nothing left
    assert main(["masks", "--dataset", "synth_a", "--root", str(tmp_path), "--weights", str(tmp_path / "x.pth"),
                 "--quiet"]) == 2
    assert "x.pth" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["synth", "--help"], ["masks", "--help"]])
def test_help_pages(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0 and "usage: crgan" in capsys.readouterr().out


def test_render_exports_a_market_layout_dataset_and_resumes(tmp_path, synth_root, tiny_crgan_ckpt, capsys):
    out = tmp_path / "rendered_a2b"
    argv = ["render", "--ckpt", str(tiny_crgan_ckpt), "--source", "synth_a", "--target", "synth_b",
            "--root", str(synth_root), "--out", str(out), "--height", "64", "--width", "32", "--contexts", "2",
            "--quiet"]
    assert main(argv) == 0
    src, tgt = load_reid_dataset("synth_a", synth_root), load_reid_dataset("synth_b", synth_root)
    ds = load_reid_dataset("rendered", out)
    assert len(ds.train) == 2 * len(src.train) and ds.num_cameras == tgt.num_cameras
    assert sorted({s.pid for s in ds.train}) == src.train_pids  # source identities
    assert {s.camid for s in ds.train} <= {s.camid for s in tgt.train}  # target cameras
    assert len(ds.query) == len(tgt.query) and len(ds.gallery) == len(tgt.gallery)
    assert not (tmp_path / "rendered_a2b.partial").exists()
    assert "=> rendered loaded from" in capsys.readouterr().out
    assert main(argv) == 2 and "already holds a complete export" in capsys.readouterr().err  # nothing overwritten
    # an interrupted export: the partial folder is completed, finished images are not redone
    partial = tmp_path / "again.partial"
    shutil.copytree(out, partial)
    (partial / "meta.json").unlink()
    kept = sorted((partial / "bounding_box_train").iterdir())[:5]
    for extra in sorted((partial / "bounding_box_train").iterdir())[5:]:
        extra.unlink()
    stamp = {p.name: p.stat().st_mtime_ns for p in kept}
    argv[argv.index(str(out))] = str(tmp_path / "again")
    assert main(argv) == 0
    again = tmp_path / "again" / "bounding_box_train"
    assert len(list(again.iterdir())) == len(ds.train)
    assert {p.name: (again / p.name).stat().st_mtime_ns for p in kept} == stamp


def test_render_resume_discards_leftovers_and_partials_of_other_settings(tmp_path, synth_root, tiny_crgan_ckpt):
    out = tmp_path / "r"
    argv = ["render", "--ckpt", str(tiny_crgan_ckpt), "--source", "synth_a", "--target", "synth_b",
            "--root", str(synth_root), "--out", str(out), "--height", "64", "--width", "32", "--quiet"]
    assert main(argv) == 0
    expected = sorted(p.name for p in (out / "bounding_box_train").iterdir())
    # an export killed mid-write: a temporary file is left beside finished images
    partial = tmp_path / "r.partial"
    shutil.move(out, partial)
    (partial / "meta.json").unlink()
    (partial / "bounding_box_train" / f".{expected[0]}.999.part").write_bytes(b"half an image")
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "bounding_box_train").iterdir()) == expected
    assert load_reid_dataset("rendered", out).train
    # a partial export started with other settings is not mixed in
    shutil.move(out, partial)
    (partial / "meta.json").unlink()
    stale = partial / "bounding_box_train" / expected[0]
    stale.write_bytes(b"from another run")
    assert main(argv[:-1] + ["--seed", "7", "--quiet"]) == 0
    assert all(p.read_bytes() != b"from another run" for p in (out / "bounding_box_train").iterdir())
    assert load_reid_dataset("rendered", out).train


def test_null_checkpoint_dirpath_follows_the_run_folder():
    from jsonargparse import Namespace

    from crgan_lightning.app.lightning import checkpoint_dir_under_root

    def config(dirpath):
        return Namespace(trainer=Namespace(default_root_dir="runs/x"), checkpoint=Namespace(dirpath=dirpath),
                         rendering=Namespace(class_path="crgan_lightning.callbacks.rendering.ContextRenderingCallback",
                                             init_args=Namespace(translator="g.ckpt")))

    c = config(None)
    checkpoint_dir_under_root(c)
    assert c.checkpoint.dirpath == os.path.join("runs/x", "checkpoints")
    assert "dirpath" not in c.rendering.init_args
    c = config("elsewhere")  # a folder the user gave is kept
    checkpoint_dir_under_root(c)
    assert c.checkpoint.dirpath == "elsewhere"


def test_ddp_becomes_the_strategy_the_gan_modules_need_and_plain_ddp_is_refused_in_one_line():
    from jsonargparse import Namespace
    from torch import distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from crgan_lightning.app.lightning import ddp_strategy_for_the_model
    from crgan_lightning.errors import ConfigError
    from crgan_lightning.modules.crgan import CRGANModule
    from crgan_lightning.modules.reid import ReIDModule
    from conftest import TINY_CRGAN
    from ddp_helpers import free_port

    def config(model, strategy):
        return Namespace(trainer=Namespace(strategy=strategy), model=Namespace(class_path=model))

    for model, strategy, expected in [
        ("crgan_lightning.modules.crgan.CRGANModule", "ddp", "ddp_find_unused_parameters_true"),
        ("crgan_lightning.modules.spgan.SPGANModule", "ddp", "ddp_find_unused_parameters_true"),
        ("crgan_lightning.modules.reid.ReIDModule", "ddp", "ddp"),  # every backward reaches all its weights
        ("crgan_lightning.modules.crgan.CRGANModule", "auto", "auto"),
        ("crgan_lightning.modules.crgan.CRGANModule", "ddp_spawn", "ddp_spawn"),  # the user's own choice is kept
    ]:
        c = config(model, strategy)
        ddp_strategy_for_the_model(c)
        assert c.trainer.strategy == expected, (model, strategy)
    assert not hasattr(ReIDModule, "ddp_strategy")

    # a Trainer built in a notebook with plain DDP: the GAN module says what to use instead
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        module = CRGANModule(num_source_pids=3, num_target_cameras=2, **TINY_CRGAN)
        for unused, fails in [(False, True), (True, False)]:
            wrapped = DistributedDataParallel(torch.nn.Linear(2, 2), find_unused_parameters=unused)
            module.trainer = Namespace(strategy=Namespace(model=wrapped))
            if fails:
                with pytest.raises(ConfigError, match="CR-GAN under DDP needs find_unused_parameters=True.*"
                                                      "ddp_find_unused_parameters_true"):
                    module.on_fit_start()
            else:
                module.on_fit_start()
    finally:
        dist.destroy_process_group()


def test_render_writes_every_split_at_the_size_the_generator_was_trained_at(
        tmp_path, synth_root, tiny_crgan_ckpt, capsys):
    """The test benchmark's images are 128x64, the tiny generator was trained on 64x32: the export's
    training, query and gallery images are all 64x32; another size is refused in one line."""
    from PIL import Image

    out = tmp_path / "rendered"
    base = ["render", "--ckpt", str(tiny_crgan_ckpt), "--source", "synth_a", "--target", "synth_b",
            "--root", str(synth_root), "--quiet"]
    assert main(base + ["--out", str(out)]) == 0
    sizes = {Image.open(p).size for split in ("bounding_box_train", "query", "bounding_box_test")
             for p in (out / split).glob("*.jpg")}
    assert sizes == {(32, 64)}
    assert json.loads((out / "meta.json").read_text())["height"] == 64
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "big"), "--height", "128", "--width", "64"]) == 2
    err = capsys.readouterr().err
    assert "was trained on 64x32 images" in err and not (tmp_path / "big").exists()


PAIR_FILES = Path(__file__).resolve().parents[1] / "src" / "crgan_lightning" / "configs" / "pairs"


@pytest.mark.parametrize("pair", sorted(p.stem for p in PAIR_FILES.glob("*.yaml")))
def test_render_size_is_the_training_size_of_each_pair_configs_generator(pair, tmp_path):
    """A generator trained by ``crgan fit --stage crgan --pair P`` saves P's data size in its
    checkpoint (the data module's hyperparameters), and ``crgan render`` takes it from there."""
    import torch

    from crgan_lightning.app.export import render_size
    from crgan_lightning.app.stages import config_value

    height, width = config_value("crgan", "data.height", pair), config_value("crgan", "data.width", pair)
    assert isinstance(height, int) and isinstance(width, int)
    ckpt = tmp_path / "crgan.ckpt"
    torch.save({"state_dict": {"generator.w": torch.zeros(1)},
                "datamodule_hyper_parameters": {"height": height, "width": width}}, ckpt)
    assert render_size(ckpt, []) == (height, width)
    assert render_size("cut_and_paste", [], 48, 24) == (48, 24)
