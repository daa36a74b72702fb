"""Nothing wrong is silent: each mistake a new user makes through ``crgan`` ends in one line naming
the value and what to type instead (exit 2), or in the documented exit status (130 for Ctrl-C),
never in numbers of random weights, a benchmark generated at a mistyped path, or a traceback."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from crgan_lightning.app.cli import main
from crgan_lightning.callbacks.runs import LOCK_FILE

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "modules"))
from test_reid_module import small_config  # noqa: E402

STAGE = ["--stage", "reid_direct", "--pair", "synth_a2synth_b"]


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("crgan: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0].removeprefix("crgan: error: ")


# ----------------------------------------------------------------------------- data roots


def test_a_mistyped_data_root_is_refused_and_no_benchmark_is_generated_there(tmp_path, capsys):
    typo = tmp_path / "dtaa"
    assert main(["fit", *STAGE, f"--data.root={typo}", f"--trainer.default_root_dir={tmp_path / 'run'}"]) == 2
    line = error_line(capsys)
    assert line.startswith(f"data root {typo} (--data.root) does not exist (synth_a, synth_b missing)")
    assert f"crgan synth --out {typo}" in line
    assert not typo.exists() and not (tmp_path / "run").exists()
    home = tmp_path / "home"  # a folder of the user's that holds anything else
    home.mkdir()
    (home / "thesis.tex").write_text("x")
    assert main(["fit", *STAGE, f"--data.root={home}", f"--trainer.default_root_dir={tmp_path / 'run'}"]) == 2
    assert "holds no embedded benchmark" in error_line(capsys)
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]


def test_the_benchmark_is_generated_into_an_empty_folder_or_beside_its_other_domain(
        tmp_path, synth_root, monkeypatch):
    import crgan_lightning.data.synthetic as synthetic
    from crgan_lightning.data.datamodule import CrossDomainDataModule

    calls = []
    monkeypatch.setattr(synthetic, "generate_benchmark", lambda root, seed, domains: calls.append((root, domains)))
    empty = tmp_path / "empty"
    empty.mkdir()
    CrossDomainDataModule(root=str(empty))._ensure_synthetic()
    half = tmp_path / "half"
    half.mkdir()
    shutil.copytree(synth_root / "synth_a", half / "synth_a")
    CrossDomainDataModule(root=str(half))._ensure_synthetic()
    assert calls == [(empty, ["synth_a", "synth_b"]), (half, ["synth_b"])]


# ----------------------------------------------------------------------------- evaluating without weights


def test_test_without_a_checkpoint_is_refused_unless_the_untrained_network_is_asked_for(
        tmp_path, synth_root, capsys):
    cfg = small_config(tmp_path, synth_root)
    for command in ("test", "validate"):
        assert main([command, "--config", str(cfg)]) == 2
        line = error_line(capsys)
        assert line.startswith(f"crgan {command} without --ckpt_path would evaluate an untrained network")
        assert "--ckpt_path last" in line and "--untrained true" in line
    assert main(["test", "--config", str(cfg), "--untrained", "true"]) == 0
    assert main(["test", "--config", str(cfg), "--ckpt_path", "last"]) == 2
    assert "there is no earlier fit to continue" in error_line(capsys)


# ----------------------------------------------------------------------------- the real error, not the logger's


def test_a_corrupt_image_in_the_first_batch_is_named_and_leaves_no_version_folder(synth_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    for image in (root / "synth_a" / "bounding_box_train").glob("*.jpg"):
        image.write_bytes(b"not a jpeg")
    cfg = small_config(tmp_path, root)
    assert main(["fit", "--config", str(cfg), "--data.num_workers=0"]) == 2
    line = error_line(capsys)
    assert line.startswith(f"cannot read image {root / 'synth_a' / 'bounding_box_train'}")
    assert "not a decodable image" in line and "metrics.csv" not in line
    assert not (tmp_path / "run").exists()  # no version_N, no lock, no empty run folder


def test_ctrl_c_during_training_exits_130_with_the_resume_command(tmp_path, synth_root):
    cfg = small_config(tmp_path, synth_root)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "crgan_lightning.app.cli", "fit", "--config", str(cfg),
                             "--trainer.max_epochs=1000", "--trainer.limit_train_batches=1000",
                             "--trainer.limit_val_batches=0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and not list(run.glob("reid_direct/version_0/hparams.yaml")):
        time.sleep(0.2)  # the hyperparameters are logged when training starts
    time.sleep(1.0)
    assert proc.poll() is None and (run / LOCK_FILE).is_file()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == ("crgan: interrupted; resume with the same command and --ckpt_path last "
                                            "(it continues from the last epoch-end checkpoint)")
    assert not (run / LOCK_FILE).exists()


# ----------------------------------------------------------------------------- one line, the real cause


def test_a_symlink_loop_in_a_split_folder_is_one_line(tmp_path, capsys):
    market = tmp_path / "Market-1501-v15.09.15"
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        (market / split).mkdir(parents=True)
    train = market / "bounding_box_train"
    (train / "0001_c1s1_000001_00.jpg").symlink_to(train / "0002_c1s1_000001_00.jpg")
    (train / "0002_c1s1_000001_00.jpg").symlink_to(train / "0001_c1s1_000001_00.jpg")
    assert main(["summary", "--dataset", "market", "--root", str(tmp_path)]) == 2
    line = error_line(capsys)
    assert "Too many levels of symbolic links" in line and str(train) in line


@pytest.mark.parametrize("override, expected", [
    ("--seed_everything=-3", "--seed_everything=-3: expected a seed from 0 to 4294967295"),
    ("--trainer.max_steps=abc", "--trainer.max_steps=abc: expected an integer"),
])
def test_a_bad_trainer_value_names_the_flag_and_the_reason(override, expected, tmp_path, synth_root, capsys):
    assert main(["fit", *STAGE, f"--data.root={synth_root}", f"--trainer.default_root_dir={tmp_path}", override]) == 2
    assert error_line(capsys).startswith(expected)


def test_offline_imagenet_weights_fail_at_once_and_name_the_flags(tmp_path, synth_root, capsys, monkeypatch):
    """Offline, the hub is asked once (no minute of retries): timm reads its local cache only, and
    the message names the flags of this command."""
    import timm
    from huggingface_hub import constants

    import crgan_lightning.models.reid as reid

    seen = []
    create = timm.create_model

    def create_model(name, pretrained=False, **kw):
        if pretrained:
            seen.append(constants.HF_HUB_OFFLINE)
            raise RuntimeError("not in the local cache")
        return create(name, pretrained=False, **kw)

    monkeypatch.setattr(reid, "reachable", lambda url, timeout=3.0: False)
    monkeypatch.setattr(reid.timm, "create_model", create_model)
    assert main(["fit", *STAGE, f"--data.root={synth_root}", f"--trainer.default_root_dir={tmp_path}",
                 "--model.init_args.net.init_args.pretrained=true"]) == 2
    assert seen == [True] and constants.HF_HUB_OFFLINE is False  # offline for that call only
    line = error_line(capsys)
    assert "huggingface.co cannot be reached" in line
    assert "pretrained_path=FILE" in line and "--model" in line and "pretrained=false" in line
    assert "pretrained=False" not in line


def test_a_missing_judge_says_how_to_train_without_one(tmp_path, synth_root, capsys):
    missing = tmp_path / "reid_direct" / "last.ckpt"
    assert main(["fit", "--stage", "crgan", "--pair", "synth_a2synth_b", f"--data.root={synth_root}",
                 f"--trainer.default_root_dir={tmp_path / 'run'}", f"--model.init_args.judge={missing}"]) == 2
    line = error_line(capsys)
    assert line.startswith(f"judge {missing}: no such re-id checkpoint")
    assert "--stage reid_direct" in line and "--model.init_args.judge=null" in line


def test_files_that_are_not_checkpoints_say_what_they_are(tmp_path, synth_root, capsys):
    cfg = small_config(tmp_path, synth_root)
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=1)}, pickled)
    text = tmp_path / "notes.ckpt"
    text.write_text("epoch 3 looked good")
    whole = tmp_path / "whole.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, whole)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[:2000])
    reasons = {}
    for path in (pickled, text, truncated):
        assert main(["test", "--config", str(cfg), "--ckpt_path", str(path)]) == 2
        reasons[path.name] = error_line(capsys)
    assert "pickled Python objects (argparse.Namespace)" in reasons["pickled.ckpt"]
    assert "weights_only" not in reasons["pickled.ckpt"]  # not torch's advice to load it anyway
    assert "not a PyTorch file" in reasons["notes.ckpt"] and "mmap" not in reasons["notes.ckpt"]
    assert "a truncated or damaged PyTorch file" in reasons["truncated.ckpt"]
    assert all(os.path.basename(name) in line for name, line in reasons.items())
