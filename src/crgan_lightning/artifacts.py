"""Where a run writes its pictures, and how they reach whichever loggers are on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from PIL import Image


def run_dir(trainer: pl.Trainer) -> Path:
    """The run folder: the first logger's log directory, else the trainer's root directory."""
    for logger in trainer.loggers:
        log_dir = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
        if log_dir:
            return Path(log_dir)
    return Path(trainer.default_root_dir)


def log_image_file(trainer: pl.Trainer, key: str, path: Path) -> None:
    """Send a saved PNG to every logger that takes images (W&B, TensorBoard); CSV keeps the file."""
    for logger in trainer.loggers:
        name = type(logger).__name__
        if name == "WandbLogger":
            logger.log_image(key=key, images=[str(path)], step=trainer.global_step)
        elif name == "TensorBoardLogger":
            arr = np.asarray(Image.open(path).convert("RGB"))
            logger.experiment.add_image(key, arr, global_step=trainer.global_step, dataformats="HWC")
