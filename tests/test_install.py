"""`pip install .` into a fresh virtualenv: the package, its configs and the `crgan` command work
without the source tree (nothing is read from a checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from ddp_helpers import run_bounded

REPO = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return run_bounded(cmd, timeout, cwd=cwd, env=env)


@pytest.mark.slow
def test_pip_install_gives_a_crgan_that_runs_a_shipped_config_outside_the_checkout(tmp_path, synth_root):
    source = tmp_path / "source"  # a copy: the build writes build/ and *.egg-info beside the sources
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(REPO / name, source / name)
    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)], tmp_path).returncode == 0
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path)
    # torch and the other dependencies come from this interpreter's site-packages (no download)
    Path(purelib.stdout.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(source)], tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    crgan = str(venv / "bin" / "crgan")
    where = run([str(python), "-c", "import crgan_lightning; print(crgan_lightning.__file__)"], work)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # the installed copy, not the checkout
    demo = run([crgan, "demo", "--help"], work)
    assert demo.returncode == 0 and "--reid-epochs" in demo.stdout, demo.stderr[-2000:]
    configs = run([crgan, "configs"], work)
    assert configs.returncode == 0 and f"configs: {venv}" in configs.stdout, configs.stdout + configs.stderr
    fit = run([crgan, "fit", "--stage", "reid_direct", "--pair", "synth_a2synth_b", f"--data.root={synth_root}",
               "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=0",
               "--data.batch_size=16", "--data.eval_batch_size=64", "--data.num_workers=0",
               "--trainer.enable_progress_bar=false"], work)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert (work / "runs" / "synth_a2synth_b" / "reid_direct" / "checkpoints" / "last.ckpt").is_file()
