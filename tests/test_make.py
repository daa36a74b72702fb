"""The Makefile's training targets build what they depend on, in order (checked with ``make -n``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from crgan_lightning.app.stages import dataset_pair_name, last_checkpoint, run_folder, stage_arguments
from crgan_lightning.data.datasets import REGISTRY

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


@pytest.fixture()
def venv(tmp_path) -> Path:
    """An installed-looking virtualenv, so that ``make -n`` plans no ``pip install``."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".installed").touch()
    return venv


def make(*args: str, venv: Path, runs: Path) -> list[str]:
    """The lines ``make -n`` would run for ``args`` with ``venv`` and the run folders under ``runs``."""
    out = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(REPO), f"VENV={venv}", f"RUNS={runs}",
                          *args], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def fits(lines: list[str], venv: Path) -> list[list[str]]:
    """The ``crgan fit`` invocations among ``lines``, in order, as argument lists (what follows ``fit``,
    up to a ``||``)."""
    crgan = f"{venv}/bin/crgan fit "
    return [line[len(crgan):].split("||")[0].split() for line in lines if line.startswith(crgan)]


def stages(lines: list[str], venv: Path) -> list[str]:
    return [args[args.index("--stage") + 1] for args in fits(lines, venv)]


def touch_checkpoint(runs: Path, pair: str, stage: str) -> Path:
    path = last_checkpoint(run_folder(stage, pair, runs))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"a finished run")
    return path


def test_train_crgan_on_a_fresh_checkout_trains_the_judge_first_with_its_own_arguments(tmp_path, venv):
    runs = tmp_path / "runs"
    lines = make("train-crgan", "SRC=market", "TGT=duke", "ARGS=--trainer.max_epochs=3",
                 "REID_ARGS=--model.init_args.pretrained_path=r50.pth", venv=venv, runs=runs)
    assert stages(lines, venv) == ["reid_direct", "crgan"]
    judge, crgan = fits(lines, venv)
    assert judge[-1] == "--model.init_args.pretrained_path=r50.pth" and "--trainer.max_epochs=3" not in judge
    assert crgan[-1] == "--trainer.max_epochs=3" and "--model.init_args.pretrained_path=r50.pth" not in crgan
    # the judge make trains is the checkpoint crgan's stage reads
    assert f"--model.init_args.judge={runs}/market2duke/reid_direct/checkpoints/last.ckpt" in stage_arguments(
        "crgan", source="market", target="duke", runs=runs)
    assert any(f"{runs}/market2duke/reid_direct/checkpoints/last.ckpt" in line and "missing" in line
               for line in lines)


def test_train_crgan_uses_an_existing_judge_and_one_named_in_args(tmp_path, venv):
    runs = tmp_path / "runs"
    touch_checkpoint(runs, "market2duke", "reid_direct")
    assert stages(make("train-crgan", "SRC=market", "TGT=duke", venv=venv, runs=runs), venv) == ["crgan"]
    # aliases name the same pair, so the same judge
    assert stages(make("train-crgan", "SRC=market1501", "TGT=dukemtmc-reid", venv=venv, runs=runs), venv) == ["crgan"]
    fresh = tmp_path / "fresh"
    lines = make("train-crgan", "SRC=market", "TGT=duke", "ARGS=--model.init_args.judge=null", venv=venv, runs=fresh)
    assert stages(lines, venv) == ["crgan"]  # no judge wanted: none trained


def test_train_reid_with_crgan_builds_the_judge_then_the_generator_then_streams(tmp_path, venv):
    runs = tmp_path / "runs"
    generator = f"{runs}/synth_a2synth_b/crgan/checkpoints/last.ckpt"
    for switch in ("CRGAN=1", f"CRGAN_CKPT={generator}"):
        lines = make("train-reid", switch, "CRGAN_ARGS=--trainer.max_epochs=2", venv=venv, runs=runs)
        assert stages(lines, venv) == ["reid_direct", "crgan", "reid_crgan"], switch
        assert fits(lines, venv)[1][-1] == "--trainer.max_epochs=2"
        assert f"--rendering.init_args.translator={generator}" in fits(lines, venv)[2]
    lines = make("train-reid", "CRGAN=1", "TAUDL=1", venv=venv, runs=runs)
    assert stages(lines, venv) == ["reid_direct", "crgan", "reid_crgan_taudl"]
    touch_checkpoint(runs, "synth_a2synth_b", "reid_direct")
    assert stages(make("train-reid", "CRGAN=1", venv=venv, runs=runs), venv) == ["crgan", "reid_crgan"]
    touch_checkpoint(runs, "synth_a2synth_b", "crgan")
    assert stages(make("train-reid", "CRGAN=1", venv=venv, runs=runs), venv) == ["reid_crgan"]


def test_train_reid_without_crgan_or_with_another_generator_builds_nothing_first(tmp_path, venv):
    runs = tmp_path / "runs"
    assert stages(make("train-reid", venv=venv, runs=runs), venv) == ["reid_direct"]
    # CRGAN=1 with SPGAN_CKPT is refused by the recipe before any training: no generator is built for it
    lines = make("train-reid", "CRGAN=1", f"SPGAN_CKPT={tmp_path}/spgan.ckpt", venv=venv, runs=runs)
    assert stages(lines, venv) == ["reid_crgan"] and any("not both" in line for line in lines)
    lines = make("train-reid", f"CRGAN_CKPT={tmp_path}/elsewhere.ckpt", venv=venv, runs=runs)
    assert stages(lines, venv) == ["reid_crgan"]
    assert f"--rendering.init_args.translator={tmp_path}/elsewhere.ckpt" in fits(lines, venv)[0]


def test_make_names_every_pair_as_crgan_does(tmp_path, venv):
    names = sorted(REGISTRY)
    out = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO), "--eval",
                          "print-pair-names: ; @$(foreach n," + " ".join(names)
                          + r",echo $(n) $(call pair_name,$(n));)",
                          "print-pair-names"], capture_output=True, text=True, check=True).stdout
    made = dict(line.split() for line in out.splitlines())
    assert made == {name: dataset_pair_name(name) for name in names}
    assert made["market1501"] == "market" and made["msmt17"] == "msmt" and made["dukemtmc"] == "duke"
