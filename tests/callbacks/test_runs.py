"""A fit never destroys another run (issue: nothing a user has is lost): refusing to train over an
earlier run's checkpoints, continuing it with ``--ckpt_path last``, the lock of a running fit,
atomic checkpoints under a file-size limit, and write access checked before training. Through the
real ``crgan`` entry point on the test benchmark."""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crgan_lightning.app.cli import main
from crgan_lightning.callbacks.runs import (LOCK_FILE, AtomicCheckpointIO, acquire_lock, atomic_torch_save,
                                            lock_is_stale, read_lock, release_lock)
from crgan_lightning.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "modules"))
from test_reid_module import small_config  # noqa: E402


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("crgan: error: "), err
    return lines[-1]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def one_epoch(tmp_path, synth_root) -> tuple[Path, Path]:
    """A finished one-epoch re-id fit: its config and run folder."""
    cfg = small_config(tmp_path, synth_root)
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
                 "--trainer.limit_val_batches=0"]) == 0
    return cfg, tmp_path / "run"


def test_a_second_fit_into_a_finished_run_is_refused_and_changes_nothing(one_epoch, capsys):
    cfg, run = one_epoch
    before = tree(run / "checkpoints")
    assert set(before) == {"last.ckpt", "epoch=0-step=1.ckpt"}
    capsys.readouterr()
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
                 "--trainer.limit_val_batches=0"]) == 2
    line = error_line(capsys)
    assert f"{run / 'checkpoints'} holds the checkpoints of an earlier fit" in line
    assert "--ckpt_path last" in line and "--trainer.default_root_dir" in line
    assert tree(run / "checkpoints") == before
    assert sorted(p.name for p in (run / "reid_direct").iterdir()) == ["version_0"]  # no new empty version
    assert not (run / LOCK_FILE).exists()


def test_ckpt_path_last_continues_the_run_in_its_own_folder(one_epoch):
    cfg, run = one_epoch
    first = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=2", "--trainer.limit_train_batches=1",
                 "--trainer.limit_val_batches=0", "--ckpt_path", "last"]) == 0
    second = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert (first["epoch"], second["epoch"]) == (0, 1)
    assert second["global_step"] == first["global_step"] + 1


def test_ckpt_path_last_without_an_earlier_run_is_one_line(tmp_path, synth_root, capsys):
    cfg = small_config(tmp_path, synth_root)
    assert main(["fit", "--config", str(cfg), "--ckpt_path", "last"]) == 2
    line = error_line(capsys)
    assert line.startswith(f"crgan: error: --ckpt_path last: {tmp_path / 'run' / 'checkpoints' / 'last.ckpt'} "
                           "does not exist")
    assert not (tmp_path / "run").exists()


def test_a_fit_into_a_folder_locked_by_a_running_fit_is_refused(tmp_path, synth_root, capsys):
    cfg = small_config(tmp_path, synth_root)
    run = tmp_path / "run"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.mkdir()
        (run / LOCK_FILE).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                                 "started": "2026-01-01 00:00:00", "command": "fit ..."}))
        assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=1"]) == 2
        line = error_line(capsys)
        assert f"another fit is running in {run} (process {other.pid} on {socket.gethostname()}" in line
        assert read_lock(run)["pid"] == other.pid  # the running fit's lock is left alone
        assert not (run / "checkpoints").exists()
    finally:
        other.kill()
        other.wait()
    # the process has died: its lock is stale, and the next fit takes it over, then gives it up
    assert lock_is_stale(read_lock(run))
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
                 "--trainer.limit_val_batches=0"]) == 0
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not (run / LOCK_FILE).exists()


def test_the_lock_is_held_while_the_fit_runs_and_names_this_process(tmp_path):
    path = acquire_lock(tmp_path / "run", command="fit --stage reid_direct")
    lock = read_lock(tmp_path / "run")
    assert (lock["pid"], lock["host"]) == (os.getpid(), socket.gethostname())
    assert lock["command"] == "fit --stage reid_direct"
    assert not lock_is_stale({**lock, "pid": os.getppid()})  # a live process of this machine holds it
    assert not lock_is_stale({**lock, "host": "another-machine"})  # another machine's lock is never stale
    release_lock(path)
    assert not path.exists()
    path.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(ConfigError, match="another fit is running"):
        acquire_lock(tmp_path / "run")
    release_lock(path)  # not this process's lock: kept
    assert path.exists()


def _limited_file_size(limit_bytes: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return preexec


def test_a_checkpoint_that_cannot_be_written_whole_leaves_no_file_named_like_one(tmp_path, synth_root):
    """A full disk, seen through a file-size limit (the same failed write): one line, exit 2, and no
    truncated ``*.ckpt`` (nor a temporary file) in the checkpoint folder."""
    cfg = small_config(tmp_path, synth_root)
    proc = subprocess.run([sys.executable, "-m", "crgan_lightning.app.cli", "fit", "--config", str(cfg),
                           "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
                           "--trainer.limit_val_batches=0"],
                          capture_output=True, text=True, timeout=300, preexec_fn=_limited_file_size(4 << 20))
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("crgan: error: File too large: ") and "checkpoints" in last and "free some space" in last
    folder = tmp_path / "run" / "checkpoints"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_atomic_save_keeps_the_previous_complete_file_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"w": torch.ones(3)}, path)
    import builtins

    real_open = builtins.open

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(bytes(data)[:10])
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(builtins, "open", lambda p, mode="r", *a, **k: Full(real_open(p, mode, *a, **k))
                        if str(p).endswith(".part") else real_open(p, mode, *a, **k))
    with pytest.raises(OSError) as info:
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert info.value.errno == 28 and info.value.filename == str(path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_unwritable_checkpoint_folder_is_refused_before_training(tmp_path, synth_root):
    from test_user_mistakes import without_write_permission

    cfg = small_config(tmp_path, synth_root)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        proc = subprocess.run(without_write_permission(
            [sys.executable, "-m", "crgan_lightning.app.cli", "fit", "--config", str(cfg), "--trainer.max_epochs=1",
             f"--checkpoint.dirpath={locked / 'checkpoints'}"]), capture_output=True, text=True, timeout=300)
    finally:
        locked.chmod(0o755)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"crgan: error: Permission denied: {locked / 'checkpoints'} (check the path and its permissions, "
        "or choose another folder)")
    assert "Epoch 0" not in proc.stderr + proc.stdout  # refused before the first epoch
    assert not (tmp_path / "run" / "reid_direct").exists()
