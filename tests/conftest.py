"""Shared fixtures: real-format dataset trees and the embedded benchmark at test size."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# The tests run tiny networks on tiny batches: a second intra-op thread gains little there, and on a
# machine whose cores are busy (other runs, a shared CI host) threads waiting on each other make every
# step several times slower. One thread per process, for this one and for the runs it starts
# (subprocesses and loader workers read OMP_NUM_THREADS); set OMP_NUM_THREADS to choose another count.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# The whole suite, two workers, used at most 3.7 GB under the temporary folder (a clean clone,
# 2026-12-06; passing tests' folders are removed as they end: pyproject's tmp_path_retention_policy).
# CRGAN_TEST_MIN_FREE_GB sets another floor.
MIN_FREE_GB = os.environ.get("CRGAN_TEST_MIN_FREE_GB", "5")


def free_space_problem(folder: Path, need_gb: float) -> str | None:
    """One line saying what is missing when ``folder``'s file system has less than ``need_gb`` GB
    free, else None: a full disk otherwise shows up as scattered setup errors and stalled runs."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:  # pytest creates --basetemp's folders
        existing = existing.parent
    free_gb = shutil.disk_usage(existing).free / 1e9
    if free_gb >= need_gb:
        return None
    return (f"the tests need about {need_gb:g} GB free under {folder} and {free_gb:.1f} GB is free: "
            f"free some space (old pytest-of-* folders there are safe to remove), point TMPDIR or "
            f"--basetemp elsewhere, or set CRGAN_TEST_MIN_FREE_GB")


def pytest_sessionstart(session):
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller has checked
        return
    basetemp = session.config.option.basetemp
    temproot = os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()
    folder = Path(basetemp).parent if basetemp else Path(temproot)
    try:
        need = float(MIN_FREE_GB)
    except ValueError:
        pytest.exit(f"CRGAN_TEST_MIN_FREE_GB={MIN_FREE_GB!r}: expected a number of GB", returncode=1)
    problem = free_space_problem(folder, need)
    if problem:
        pytest.exit(problem, returncode=1)


def write_images(folder: Path, names, size=(16, 8), empty: bool = False) -> None:
    """Create image files with the given names (tiny real JPEG/PNG, or empty files for parsing)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        if empty:
            (folder / name).touch()
            continue
        arr = rng.integers(0, 255, (size[0], size[1], 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / name)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """The embedded two-domain benchmark at a small test size (generated once per session)."""
    from crgan_lightning.data.synthetic import generate_benchmark

    root = tmp_path_factory.mktemp("synth")
    generate_benchmark(root, seed=0, num_train_ids=12, num_test_ids=8, height=128, width=64, progress=False)
    return root


TINY_CRGAN = dict(generator=dict(base_channels=8, num_down=3, max_channels=32, num_res_blocks=1),
                  discriminator=dict(base_channels=16, n_layers=2), classifier=dict(backbone="resnet10t"),
                  cls_warmup_steps=0, pool_size=4)


def set_module_args(init_args: dict, module_args: dict) -> None:
    """Set module arguments in a loaded config's ``model.init_args`` (a network's dict of arguments
    into its ``init_args``, under the class_path the config gives)."""
    for key, value in module_args.items():
        if isinstance(value, dict):
            init_args[key]["init_args"].update(value)
        else:
            init_args[key] = value


def as_overrides(module_args: dict, prefix: str = "model.init_args") -> dict:
    """Module arguments as the dotted config keys of a LightningCLI command (a network's dict of
    arguments goes under its ``init_args``, the shipped config giving its class_path)."""
    out = {}
    for key, value in module_args.items():
        if isinstance(value, dict):
            out.update({f"{prefix}.{key}.init_args.{k}": v for k, v in value.items()})
        else:
            out[f"{prefix}.{key}"] = value
    return out


@pytest.fixture(scope="session")
def tiny_crgan_ckpt(synth_root, tmp_path_factory) -> Path:
    """A CR-GAN checkpoint of tiny networks trained for two batches on the test benchmark (64x32)."""
    import pytorch_lightning as pl

    from crgan_lightning.data.datamodule import CrossDomainDataModule
    from crgan_lightning.modules.crgan import CRGANModule

    out = tmp_path_factory.mktemp("crgan")
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, num_workers=0)
    dm.setup("fit")
    module = CRGANModule(num_source_pids=dm.num_source_pids, num_target_cameras=dm.num_target_cameras, **TINY_CRGAN)
    trainer = pl.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=out)
    trainer.fit(module, datamodule=dm)
    path = out / "crgan.ckpt"
    trainer.save_checkpoint(path)
    return path


_RESOLVED: dict[tuple[str, str], dict] = {}


def shipped_config(stage: str, pair: str = "synth_a2synth_b") -> dict:
    """The shipped config of a stage for a pair as one dict: what ``crgan fit --stage STAGE --pair
    PAIR --print_config`` prints (the composed configs and the run layout, every default filled in).
    Tests change it and write it back as one ``--config`` file."""
    import copy

    from crgan_lightning.app.lightning import resolved_config

    if (stage, pair) not in _RESOLVED:
        _RESOLVED[stage, pair] = resolved_config(["--stage", stage, "--pair", pair])
    return copy.deepcopy(_RESOLVED[stage, pair])
