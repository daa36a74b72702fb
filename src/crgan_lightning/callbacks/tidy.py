"""Leave no empty run folder behind a run that failed before it logged anything."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytorch_lightning as pl

log = logging.getLogger(__name__)

#: Files a logger's version folder holds before the run has logged anything of its own.
SET_UP_ONLY = frozenset({"config.yaml", "hparams.yaml"})
#: The CSV logger's metrics file.
METRICS_FILE = "metrics.csv"


def holds_nothing_logged(folder: Path, before_first_step: bool = False) -> bool:
    """True when ``folder`` holds no file but the configuration the run started with (and, for a
    run that stopped before its first optimiser step, the metrics of its set-up)."""
    kept = SET_UP_ONLY | ({METRICS_FILE} if before_first_step else set())
    return all(p.is_dir() or p.name in kept for p in folder.rglob("*"))


class RemoveEmptyRunFolder(pl.Callback):
    """When a run stops on an error (a missing translator, an unreadable dataset, Ctrl-C during
    set-up), remove the logger's ``version_N`` folder if nothing was logged into it (no metrics,
    plots or checkpoints; only ``config.yaml``/``hparams.yaml``, and the metrics of a run that
    stopped before its first training step, such as a corrupt image in the first batch), and its
    parent if that is left empty, so the next run does not count past empty folders. A folder with anything logged in it
    is kept. The ``crgan`` command adds this callback to every run."""

    @staticmethod
    def _drop_pending_metrics(logger) -> None:
        """Forget the metrics a logger holds but has not written yet (CSVLogger writes them when it
        is finalised, after this callback: into a folder that is gone, which would end in an error
        that hides the one that stopped the run)."""
        pending = getattr(getattr(logger, "_experiment", None), "metrics", None)
        if isinstance(pending, list):
            pending.clear()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.global_rank != 0:
            return
        before_first_step = trainer.global_step == 0
        for logger in trainer.loggers:
            log_dir = getattr(logger, "log_dir", None)
            if not log_dir or getattr(logger, "version", None) is None:
                continue
            folder = Path(log_dir)
            if folder.is_dir() and holds_nothing_logged(folder, before_first_step):
                self._drop_pending_metrics(logger)
                shutil.rmtree(folder, ignore_errors=True)
                log.info("removed %s: the run stopped before it logged anything", folder)
                if folder.parent.is_dir() and not any(folder.parent.iterdir()):
                    folder.parent.rmdir()
