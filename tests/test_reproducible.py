"""Runs are reproducible: the same seed gives the same augmentation and the same weights, with
loader workers or without, and a resumed run (loading in the main process) ends with the same
weights as an uninterrupted one."""

from __future__ import annotations

import functools

import pytorch_lightning as pl
import pytest
import torch

from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.keys import IMAGE, SOURCE
from crgan_lightning.modules.reid import DEFAULT_OPTIMIZER, ReIDModule

TINY_NET = {"backbone": "resnet10t", "pretrained": False}


def fit(root, out, seed: int, workers: int, max_epochs: int = 1, ckpt_path=None) -> dict[str, torch.Tensor]:
    pl.seed_everything(seed, workers=True, verbose=False)
    dm = CrossDomainDataModule(root=str(root), height=64, width=32, batch_size=8, num_instances=2, num_workers=workers,
                               with_target=False, erasing_p=0.5)
    dm.setup("fit")
    module = ReIDModule(num_source_pids=dm.num_source_pids, num_query=dm.num_query, net=TINY_NET,
                        optimizer=functools.partial(DEFAULT_OPTIMIZER, lr=1e-3), batch_erasing_p=0.5)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=max_epochs, limit_train_batches=3, limit_val_batches=0,
                         logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
                         callbacks=[pl.callbacks.ModelCheckpoint(dirpath=out, save_last=True)])
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return {k: v.clone() for k, v in module.state_dict().items()}


def first_batch(root, seed: int, workers: int) -> torch.Tensor:
    pl.seed_everything(seed, workers=True, verbose=False)
    dm = CrossDomainDataModule(root=str(root), height=64, width=32, batch_size=8, num_instances=2, num_workers=workers,
                               with_target=False, erasing_p=1.0)
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))[0][SOURCE][IMAGE]


@pytest.mark.parametrize("workers", [0, 1])
def test_the_same_seed_gives_the_same_augmentation(synth_root, workers):
    a, b = first_batch(synth_root, 3, workers), first_batch(synth_root, 3, workers)
    assert torch.equal(a, b)
    assert not torch.equal(a, first_batch(synth_root, 4, workers))  # and another seed another one


@pytest.mark.slow
def test_two_identical_runs_end_with_identical_weights(synth_root, tmp_path):
    a = fit(synth_root, tmp_path / "a", 0, workers=1)
    b = fit(synth_root, tmp_path / "b", 0, workers=1)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_resumed_run_matches_an_uninterrupted_one(synth_root, tmp_path):
    whole = fit(synth_root, tmp_path / "whole", 0, workers=0, max_epochs=2)
    fit(synth_root, tmp_path / "part", 0, workers=0, max_epochs=1)
    ckpt = tmp_path / "part" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)  # the random states read safely
    assert {"torch", "numpy", "python"} <= set(saved["random_states"])
    resumed = fit(synth_root, tmp_path / "part", 0, workers=0, max_epochs=2, ckpt_path=ckpt)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def fit_streaming(root, out, translator, max_epochs: int, ckpt_path=None, workers: int = 0) -> dict[str, torch.Tensor]:
    """A re-id run with the invariance streaming options: contexts drawn from the target set in the
    main process, half of each identity rendered, pad-and-crop after rendering, joint triplet."""
    from crgan_lightning.callbacks.rendering import ContextRenderingCallback

    pl.seed_everything(0, workers=True, verbose=False)
    dm = CrossDomainDataModule(root=str(root), height=64, width=32, batch_size=8, num_instances=4,
                               num_workers=workers, with_target=False, masks="none", erasing_p=0.0, pad=0)
    dm.setup("fit")
    module = ReIDModule(num_source_pids=dm.num_source_pids, num_query=dm.num_query, net=TINY_NET,
                        optimizer=functools.partial(DEFAULT_OPTIMIZER, lr=1e-3), batch_erasing_p=0.5,
                        joint_triplet=True)
    rendering = ContextRenderingCallback(str(translator), ratio=0.5, replace_source=True, within_identity=True,
                                         contexts_from="dataset", pad=2)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=max_epochs, limit_train_batches=3, limit_val_batches=0,
                         logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
                         callbacks=[rendering, pl.callbacks.ModelCheckpoint(dirpath=out, save_last=True)])
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.slow
def test_a_resumed_streaming_run_matches_an_uninterrupted_one(synth_root, tmp_path, tiny_crgan_ckpt):
    whole = fit_streaming(synth_root, tmp_path / "whole", tiny_crgan_ckpt, max_epochs=2)
    fit_streaming(synth_root, tmp_path / "part", tiny_crgan_ckpt, max_epochs=1)
    resumed = fit_streaming(synth_root, tmp_path / "part", tiny_crgan_ckpt, max_epochs=2,
                            ckpt_path=tmp_path / "part" / "last.ckpt")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    once = fit_streaming(synth_root, tmp_path / "once", tiny_crgan_ckpt, max_epochs=1)
    assert not all(torch.equal(whole[k], once[k]) for k in whole)  # the second epoch did change the weights


@pytest.mark.slow
def test_two_identical_streaming_runs_with_loader_workers_end_with_identical_weights(synth_root, tmp_path,
                                                                                     tiny_crgan_ckpt):
    """The contexts drawn from the target set are read in the training process, with a pipeline of
    the callback's own seeded at every step: identical runs stay identical although the loaders'
    pipelines are seeded only inside their workers (the embedded configs' num_workers: 1)."""
    a = fit_streaming(synth_root, tmp_path / "a", tiny_crgan_ckpt, max_epochs=1, workers=1)
    b = fit_streaming(synth_root, tmp_path / "b", tiny_crgan_ckpt, max_epochs=1, workers=1)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
