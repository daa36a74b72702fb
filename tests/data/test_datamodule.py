"""One full pass of the shared DataModule over the embedded benchmark."""

from __future__ import annotations

import pytest
import torch

from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.keys import CAMID, IMAGE, INDEX, MASK, PID, SOURCE, TARGET
from crgan_lightning.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def dm(synth_root):
    dm = CrossDomainDataModule("synth_a", "synth_b", root=str(synth_root), batch_size=16, num_instances=4,
                               target_batch_size=8, eval_batch_size=20, num_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_linked_numbers_come_from_the_datasets(dm):
    assert dm.num_source_pids == 12
    assert dm.num_source_cameras == 6 and dm.num_target_cameras == 8
    assert dm.num_query == len(dm.target_dataset.query) > 0


def test_full_training_epoch_yields_source_and_target_batches(dm):
    loader = dm.train_dataloader()
    n = 0
    for batch, _, _ in iter(loader):
        src, tgt = batch[SOURCE], batch[TARGET]
        assert src[IMAGE].shape == (16, 3, 128, 64) and src[MASK].shape == (16, 1, 128, 64)
        assert tgt[IMAGE].shape == (8, 3, 128, 64) and tgt[MASK].shape == (8, 1, 128, 64)
        assert PID not in tgt and tgt[CAMID].max() < 8
        assert src[IMAGE].min() >= -1 and src[IMAGE].max() <= 1
        assert 0 <= src[MASK].min() and src[MASK].max() <= 1 and src[MASK].mean() > 0.05
        assert src[PID].max() < 12 and sorted(torch.bincount(src[PID]).tolist())[-4:] == [4, 4, 4, 4]
        n += 1
    assert n == len(dm.source_loader()) > 0


def test_eval_loader_is_query_then_gallery_with_indices(dm):
    items = [b for b in dm.val_dataloader()]
    index = torch.cat([b[INDEX] for b in items])
    pids = torch.cat([b[PID] for b in items])
    assert index.tolist() == list(range(dm.num_query + len(dm.target_dataset.gallery)))
    assert pids[: dm.num_query].tolist() == [s.pid for s in dm.target_dataset.query]
    assert MASK not in items[0] and items[0][IMAGE].shape[1:] == (3, 128, 64)


def test_direct_transfer_mode_has_no_target_batches(synth_root):
    dm = CrossDomainDataModule("synth_a", "synth_b", root=str(synth_root), batch_size=16, with_target=False,
                               num_workers=0)
    dm.setup("fit")
    batch, _, _ = next(iter(dm.train_dataloader()))
    assert set(batch) == {SOURCE}


def test_bad_arguments_fail_before_any_work(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'market2'"):
        CrossDomainDataModule("market2", "duke", root=str(tmp_path))
    with pytest.raises(ConfigError, match="masks='sam'"):
        CrossDomainDataModule(masks="sam", root=str(tmp_path))
    dm = CrossDomainDataModule("market", "duke", root=str(tmp_path))
    with pytest.raises(DatasetError, match="market1501: no dataset found at"):
        dm.num_source_pids
