"""A fit never destroys another run: checkpoints written atomically, a lock on a running fit, a
refusal to train over a finished run's checkpoints, and output folders checked before training.

* :class:`AtomicCheckpointIO` (a Lightning ``CheckpointIO`` plugin) writes each checkpoint to a
  hidden temporary file beside its target and renames it into place: a save that fails (a full
  disk, a file-size limit, Ctrl-C) leaves no file named like a good checkpoint.
* :class:`RunGuard` (a callback) holds ``<trainer.default_root_dir>/.crgan-fit.lock`` while a fit
  runs (the lock of a process that has died is taken over), and before the first step refuses, in
  one line, a fit into a folder whose checkpoint folder already holds checkpoints unless the fit
  continues from one of them (``--ckpt_path last``), and a folder the user may not write.

``crgan fit`` adds both to every run; in Python, pass ``plugins=[AtomicCheckpointIO()]`` and
``callbacks=[RunGuard()]`` to the Trainer.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from ..errors import ConfigError

log = logging.getLogger(__name__)

#: The lock file of a running fit, in its ``trainer.default_root_dir``.
LOCK_FILE = ".crgan-fit.lock"


# ----------------------------------------------------------------------------- atomic checkpoints


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through a hidden ``.NAME.PID.part`` file in the same folder,
    flushed to disk and renamed over ``path``; on any failure the temporary file is removed and
    ``path`` is left as it was (absent, or the previous complete file). A write that fails (a full
    disk, a file-size limit) raises the ``OSError`` met, naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()  # serialised first, so that a failed write surfaces as the OS error it is
    torch.save(obj, buffer)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        try:
            with open(tmp, "wb") as fh:
                fh.write(buffer.getbuffer())
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno or errno.EIO), str(path)) from None
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer with an atomic local save (:func:`atomic_torch_save`).
    Remote paths (``s3://...``) keep Lightning's own transaction."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, path)


# ----------------------------------------------------------------------------- the run lock


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def read_lock(folder: str | os.PathLike) -> dict | None:
    """The lock of the fit running in ``folder`` (``pid``, ``host``, ``started``, ``command``), or
    None when there is none (an unreadable lock file reads as ``{}``)."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return None
    try:
        lock = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return lock if isinstance(lock, dict) else {}


def lock_is_stale(lock: dict) -> bool:
    """Whether a lock was left by a fit that no longer runs: its process on this machine has died
    (or is this very process: an earlier fit of it that stopped on an error). A lock of another
    machine is never taken for stale."""
    if not lock or lock.get("host") != socket.gethostname():
        return not lock  # an unreadable lock file is stale; another machine's lock is not
    pid = lock.get("pid")
    return not isinstance(pid, int) or pid == os.getpid() or not _process_alive(pid)


def acquire_lock(folder: str | os.PathLike, command: str = "") -> Path:
    """Create ``folder/LOCK_FILE`` for this process (the folder is created if needed); a stale lock
    is replaced, a live one refused with a :class:`~crgan_lightning.errors.ConfigError` that names
    the running fit. Returns the lock file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command}).encode()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            lock = read_lock(folder)
            if lock is None:
                continue  # removed meanwhile: try again
            if not lock_is_stale(lock):
                started = f", started {lock['started']}" if lock.get("started") else ""
                raise ConfigError(
                    f"another fit is running in {folder} (process {lock.get('pid')} on {lock.get('host')}{started}); "
                    f"wait for it to end, or give this run its own folder (--trainer.default_root_dir=DIR). "
                    f"If that run is not running any more, remove {path}") from None
            log.warning("taking over the lock %s of a fit that no longer runs (process %s)", path, lock.get("pid"))
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(record)
        return path
    raise ConfigError(f"could not take the lock {path}; another fit is starting in {folder}")


def release_lock(path: str | os.PathLike) -> None:
    """Remove a lock file this process holds (another process's lock is left alone)."""
    path = Path(path)
    lock = read_lock(path.parent)
    if lock is not None and lock.get("pid") == os.getpid() and lock.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- checks before a fit


def check_writable(folder: str | os.PathLike, what: str) -> None:
    """Raise ``PermissionError`` (or the OS error met) naming ``folder`` when this process cannot
    create files in it, or in its nearest existing parent when it does not exist yet. Nothing is
    left behind."""
    folder = Path(folder).expanduser().absolute()
    probe_in = folder
    while not probe_in.exists():
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise ConfigError(f"{what} {folder}: {probe_in} is a file; expected a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".crgan-write-test-", dir=probe_in)
    except OSError as exc:
        raise type(exc)(exc.errno, os.strerror(exc.errno or errno.EACCES), str(folder)) from None
    os.close(fd)
    os.unlink(name)


def existing_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """The ``*.ckpt`` files directly in ``folder`` (none when it does not exist)."""
    folder = Path(folder)
    return sorted(folder.glob("*.ckpt")) if folder.is_dir() else []


def check_no_earlier_run(checkpoint_dirs: list[Path], ckpt_path: str | os.PathLike | None) -> None:
    """Refuse a fit whose checkpoint folders hold another run's checkpoints, unless it continues
    from one of them (``ckpt_path`` inside one of ``checkpoint_dirs``): it would replace
    ``last.ckpt`` at its first epoch end and overwrite same-named ``epoch=...`` files."""
    resume_dir = Path(ckpt_path).expanduser().resolve().parent if ckpt_path else None
    for folder in checkpoint_dirs:
        found = existing_checkpoints(folder)
        if not found or (resume_dir is not None and resume_dir == Path(folder).expanduser().resolve()):
            continue
        names = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
        raise ConfigError(
            f"{folder} holds the checkpoints of an earlier fit ({names}); this fit would overwrite them. "
            f"Continue that run with --ckpt_path last, or start a new one in another folder "
            f"(--trainer.default_root_dir=DIR); nothing was changed")


class RunGuard(pl.Callback):
    """Check a fit's folders and hold its lock (see the module docstring). ``crgan fit`` calls
    :meth:`start` before Lightning starts any process; used in plain Python, the checks run in
    ``setup`` (a single process)."""

    def __init__(self) -> None:
        self._lock: Path | None = None
        self._created: Path | None = None  # the run folder, when this fit created it
        self._started = False

    def start(self, trainer: pl.Trainer, ckpt_path: str | os.PathLike | None, command: str = "") -> None:
        """Check that the run's folders can be written, take the lock of ``default_root_dir`` and
        refuse to train over an earlier run's checkpoints. Raises before anything is written."""
        root = Path(trainer.default_root_dir)
        checkpoint_dirs = [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
        folders = {"trainer.default_root_dir": root}
        folders.update({"checkpoint.dirpath": d for d in checkpoint_dirs})
        for logger in trainer.loggers:
            save_dir = getattr(logger, "save_dir", None)
            if save_dir and "://" not in str(save_dir):
                folders["trainer.logger.init_args.save_dir"] = Path(save_dir)
        for what, folder in folders.items():
            check_writable(folder, what)
        self._created = None if root.exists() else root
        self._lock = acquire_lock(root, command)
        try:
            check_no_earlier_run(checkpoint_dirs, ckpt_path)
        except ConfigError:
            self.release(failed=True)
            raise
        self._started = True

    def release(self, failed: bool = False) -> None:
        """Give the lock up; after a failed fit, also remove the run folder this fit created if
        nothing is left in it."""
        if self._lock is not None:
            release_lock(self._lock)
            self._lock = None
        if failed and self._created is not None and self._created.is_dir() and not any(self._created.iterdir()):
            self._created.rmdir()
        self._created = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and not self._started and trainer.world_size == 1:
            self.start(trainer, trainer.ckpt_path)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.release()
            self._started = False

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.release(failed=True)
        self._started = False
