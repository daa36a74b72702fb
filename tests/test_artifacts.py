"""Pictures reach the run folder and every image-taking logger (TensorBoard, W&B offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from PIL import Image
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger

from crgan_lightning.artifacts import log_image_file, run_dir


def picture(tmp_path: Path) -> Path:
    path = tmp_path / "grid.png"
    Image.fromarray(np.full((8, 4, 3), 200, np.uint8)).save(path)
    return path


def test_run_dir_is_the_first_loggers_folder(tmp_path):
    trainer = pl.Trainer(logger=CSVLogger(tmp_path, name="exp"), default_root_dir=tmp_path / "root")
    assert run_dir(trainer) == tmp_path / "exp" / "version_0"
    assert run_dir(pl.Trainer(logger=False, default_root_dir=tmp_path / "root")) == tmp_path / "root"


def test_image_goes_to_tensorboard(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="tb")
    trainer = pl.Trainer(logger=logger, default_root_dir=tmp_path)
    log_image_file(trainer, "samples/grid", picture(tmp_path))
    logger.experiment.flush()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(Path(logger.log_dir)), size_guidance={"images": 0})
    events.Reload()
    assert "samples/grid" in events.Tags()["images"]
    assert events.Images("samples/grid")[0].width == 4


def test_image_goes_to_wandb_in_offline_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(project="crgan-tests", save_dir=str(tmp_path), offline=True)
    trainer = pl.Trainer(logger=logger, default_root_dir=tmp_path)
    try:
        log_image_file(trainer, "samples/grid", picture(tmp_path))
        run_files = Path(logger.experiment.dir)
    finally:
        logger.experiment.finish()
    media = list(run_files.rglob("*.png"))
    assert any("samples" in str(p) for p in media), media
