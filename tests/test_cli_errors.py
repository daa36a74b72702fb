"""Mistakes at the ``crgan`` command line end in one line and exit status 2; Ctrl-C in one line
that says how to resume, with nothing half-written left looking complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crgan_lightning.app.cli import main

REPO = Path(__file__).resolve().parents[1]


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_crgan_alone_names_every_command_and_exits_2(capsys):
    assert main([]) == 2
    err = one_line(capsys)
    assert "a command is required" in err
    for command in ("fit", "validate", "test", "predict", "synth", "render", "demo", "compare"):
        assert command in err


def test_a_misspelt_command_is_named_with_the_lightning_commands_listed(capsys):
    assert main(["fitt", "--config", "x.yaml"]) == 2
    err = one_line(capsys)
    assert "'fitt'" in err and "fit, validate, test, predict" in err


def test_a_missing_split_folder_is_named(tmp_path, capsys):
    market = tmp_path / "Market-1501-v15.09.15"
    (market / "bounding_box_train").mkdir(parents=True)
    (market / "query").mkdir()
    assert main(["summary", "--dataset", "market", "--root", str(tmp_path)]) == 2
    err = one_line(capsys)
    assert str(market / "bounding_box_test") in err and "query" not in err.split("expected")[0].split("has no")[1]


def test_ctrl_c_ends_in_one_line_with_how_to_resume_and_no_complete_looking_folder(tmp_path):
    out = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "crgan_lightning.app.cli", "synth", "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # a shell's `&` ignores it
    deadline = time.time() + 120
    while time.time() < deadline and not (out.is_dir() and any(out.glob(".synth_a.tmp-*/bounding_box_train/*"))):
        time.sleep(0.2)  # wait until images are being written
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert err.strip().splitlines() == [
        "crgan: interrupted; run the same command again to continue where it stopped"]
    assert sorted(os.listdir(out)) == []  # the work folder is gone, no synth_a/ appeared


@pytest.mark.parametrize("argv", [["fit", "--config", "c.yaml"], ["synth"]])
def test_the_resume_hint_fits_the_command(argv):
    from crgan_lightning.app.cli import _resume_hint

    hint = _resume_hint(argv)
    assert ("--ckpt_path" in hint) == (argv[0] == "fit")


STAGE = ["--stage", "reid_crgan", "--pair", "synth_a2synth_b"]


@pytest.mark.parametrize("override, named", [
    ("--model.init_args.net.init_args.backbone=nope", "backbone 'nope'"),
    ("--model.init_args.optimizer.init_args.lr=-1", "optimizer: Invalid learning rate: -1"),
    ("--model.init_args.lr=1e-3", "it moved to model.init_args.optimizer.init_args.lr"),
    ("--data.eval_batch_size=-1", "eval_batch_size=-1"),
    ("--rendering.init_args.ratio=5", "ratio=5"),
])
def test_a_bad_value_met_while_the_cli_builds_objects_is_one_line(tmp_path, synth_root, capsys, override, named):
    argv = ["fit", *STAGE, f"--data.root={synth_root}", f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_epochs=1", override]
    assert main(argv) == 2
    err = one_line(capsys)
    assert err.startswith("crgan: error:") and named in err, err
    assert "Does not validate" not in err and "Traceback" not in err


@pytest.fixture(scope="module")
def reid_run(synth_root, tmp_path_factory):
    """A finished 1-epoch re-id run (direct transfer config, tiny) and its checkpoint."""
    sys.path.insert(0, str(REPO / "tests" / "modules"))
    from test_reid_module import small_config

    tmp = tmp_path_factory.mktemp("reid_run")
    cfg = small_config(tmp, synth_root)
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=1", "--trainer.check_val_every_n_epoch=5"]) == 0
    return cfg, tmp / "run" / "checkpoints" / "last.ckpt"


def test_the_command_line_wins_over_the_checkpoint_for_test_options(reid_run):
    from crgan_lightning.app.cli import run_lightning_cli

    cfg, ckpt = reid_run
    cli = run_lightning_cli(["test", "--config", str(cfg), "--ckpt_path", str(ckpt), "--model.init_args.rerank=true",
                             "--model.init_args.net.init_args.pretrained=false"])
    assert cli.model.hparams.rerank is True and cli.model.metric.rerank is True
    assert "test/mAP" in cli.trainer.callback_metrics


def test_a_checkpoint_of_another_stage_or_no_checkpoint_is_one_line(reid_run, tmp_path, capsys):
    cfg, ckpt = reid_run
    assert main(["fit", "--stage", "crgan", "--pair", "synth_a2synth_b", "--ckpt_path", str(ckpt)]) == 2
    err = one_line(capsys)
    assert "is a ReIDModule checkpoint; this config trains a CRGANModule" in err and str(ckpt) in err
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:4096])
    notes = tmp_path / "notes.ckpt"
    notes.write_text("not a checkpoint")
    for bad in (truncated, notes, tmp_path / "missing.ckpt"):
        assert main(["test", "--config", str(cfg), "--ckpt_path", str(bad)]) == 2
        assert str(bad) in one_line(capsys)


def test_output_into_a_closed_pipe_ends_quietly():
    """``crgan configs | head -1``: when the reader has gone, no BrokenPipeError traceback."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "crgan_lightning.app.cli", "configs"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 1 and proc.stderr == ""
