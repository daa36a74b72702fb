"""Leave no empty run folder behind a run that failed before it logged anything."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytorch_lightning as pl

log = logging.getLogger(__name__)

#: Files a logger's version folder holds before the run has logged anything of its own.
SET_UP_ONLY = frozenset({"config.yaml", "hparams.yaml"})


def holds_nothing_logged(folder: Path) -> bool:
    """True when ``folder`` holds no file but the configuration the run started with."""
    return all(p.is_dir() or p.name in SET_UP_ONLY for p in folder.rglob("*"))


class RemoveEmptyRunFolder(pl.Callback):
    """When a run stops on an error (a missing translator, an unreadable dataset, Ctrl-C during
    set-up), remove the logger's ``version_N`` folder if nothing was logged into it (no metrics,
    plots or checkpoints; only ``config.yaml``/``hparams.yaml``), and its parent if that is left
    empty, so the next run does not count past empty folders. A folder with anything logged in it
    is kept. The ``crgan`` command adds this callback to every run."""

    @staticmethod
    def _folders(trainer: pl.Trainer) -> list[Path]:
        folders = []
        for logger in trainer.loggers:
            log_dir = getattr(logger, "log_dir", None)
            if log_dir and getattr(logger, "version", None) is not None:
                folders.append(Path(log_dir))
        return folders

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.global_rank != 0:
            return
        for folder in self._folders(trainer):
            if folder.is_dir() and holds_nothing_logged(folder):
                shutil.rmtree(folder, ignore_errors=True)
                log.info("removed %s: the run stopped before it logged anything", folder)
                if folder.parent.is_dir() and not any(folder.parent.iterdir()):
                    folder.parent.rmdir()
