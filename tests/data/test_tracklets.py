"""TAUDL's tracklet view of the target: ids, the P x K tracklet sampler, the data module option,
and the leak test (identities relabelled at random across cameras change nothing)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.datasets import ReIDSample, load_reid_dataset
from crgan_lightning.data.keys import CAMERA_TRACKLET, CAMID, IMAGE, PID, SOURCE, TARGET, TRACKLET
from crgan_lightning.data.samplers import RandomTrackletSampler
from crgan_lightning.data.tracklets import build_tracklet_view
from crgan_lightning.errors import ConfigError, DatasetError
from crgan_lightning.losses import CrossCameraAssociationLoss, per_camera_tracklet_loss


def make_samples(groups):
    """(pid, camid, number of images) -> ReIDSample list in that order."""
    return [ReIDSample(f"img_{i}_{j}.jpg", pid, cam) for i, (pid, cam, n) in enumerate(groups) for j in range(n)]


def relabel_across_cameras(samples, seed):
    """New random pids, drawn independently per camera: the grouping inside each camera is kept,
    every cross-camera link is scrambled (two people of two cameras may now share a pid, and one
    person's images in two cameras now carry different pids)."""
    rng = np.random.default_rng(seed)
    mapping = {}
    for cam in sorted({s.camid for s in samples}):
        pids = sorted({s.pid for s in samples if s.camid == cam})
        new = rng.choice(60, size=len(pids), replace=False)
        mapping.update({(cam, p): int(n) for p, n in zip(pids, new)})
    return [dataclasses.replace(s, pid=mapping[(s.camid, s.pid)]) for s in samples]


def pid_sorted_numbering(samples):
    """The naive numbering a leaky implementation would use: tracklets sorted by pid per camera."""
    keys = sorted({(s.camid, s.pid) for s in samples})
    return [keys.index((s.camid, s.pid)) for s in samples]


# ------------------------------------------------------------------ the view


def test_one_tracklet_per_person_and_camera_numbered_per_camera_then_globally():
    samples = make_samples([(5, 0, 2), (7, 0, 1), (5, 1, 1), (9, 1, 2), (7, 2, 3), (5, 0, 1)])
    view = build_tracklet_view(samples, num_cameras=4)
    assert view.tracklets_per_camera == (2, 2, 1, 0) and view.num_tracklets == 5 and view.num_cameras == 4
    assert view.camera_offsets == (0, 2, 4, 5) and view.tracklet_cameras == (0, 0, 1, 1, 2)
    assert view.camids == tuple(s.camid for s in samples)
    for cam, count in enumerate(view.tracklets_per_camera):
        ids = {t for t, c in zip(view.camera_tracklets, view.camids) if c == cam}
        assert ids == set(range(count))
    # same (pid, camera) <=> same tracklet; global = offset + per-camera id
    for a, sa in enumerate(samples):
        for b, sb in enumerate(samples):
            assert ((sa.pid, sa.camid) == (sb.pid, sb.camid)) == (view.tracklets[a] == view.tracklets[b])
        assert view.tracklets[a] == view.camera_offsets[sa.camid] + view.camera_tracklets[a]
    # pid 5 in camera 0 and pid 5 in camera 1 are two tracklets, whatever their pid says
    assert view.tracklets[0] != view.tracklets[3]


def test_tracklet_ids_do_not_depend_on_identity_values(synth_root):
    train = load_reid_dataset("synth_b", synth_root).train
    view = build_tracklet_view(train, 8)
    assert view.num_tracklets == len({(s.pid, s.camid) for s in train}) == 40
    for seed in range(3):
        relabelled = relabel_across_cameras(train, seed)
        assert pid_sorted_numbering(relabelled) != pid_sorted_numbering(train)  # the relabelling bites
        assert build_tracklet_view(relabelled, 8) == view


def test_per_camera_numbers_do_not_line_up_across_cameras():
    # 40 people, each seen by cameras 0 and 1, listed in pid order as a dataset's file names are:
    # numbering by first appearance alone would give every person the same number in both cameras
    samples = make_samples([(pid, cam, 2) for cam in (0, 1) for pid in range(40)])
    view = build_tracklet_view(samples, 2)
    number = {(s.pid, s.camid): t for s, t in zip(samples, view.camera_tracklets)}
    same = sum(number[(pid, 0)] == number[(pid, 1)] for pid in range(40))
    assert same <= 3  # a random match rate (1 in 40 per person), not 40
    assert build_tracklet_view(samples, 2, seed=1).camera_tracklets != view.camera_tracklets


def test_bad_splits_raise_dataset_errors():
    with pytest.raises(DatasetError, match="empty split"):
        build_tracklet_view([], 2)
    with pytest.raises(DatasetError, match=r"camera id 3 of img_1_0.jpg is out of range; expected 0..1"):
        build_tracklet_view(make_samples([(1, 0, 1), (2, 3, 1)]), 2)
    with pytest.raises(ConfigError, match="num_cameras=0"):
        build_tracklet_view(make_samples([(1, 0, 1)]), 0)


# ------------------------------------------------------------------ the sampler


def tracklet_ids(num_tracklets=30, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 10, num_tracklets)  # some tracklets have fewer than K images
    return [t for t, n in enumerate(counts) for _ in range(n)]


def split(indices, batch_size):
    assert len(indices) % batch_size == 0
    return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]


def test_every_batch_is_p_tracklets_times_k_images():
    ids = tracklet_ids()
    sampler = RandomTrackletSampler(ids, batch_size=16, num_instances=4, seed=1)
    assert isinstance(sampler, DistributedSampler)
    indices = list(sampler)
    assert len(indices) == len(sampler) > 0
    for batch in split(indices, 16):
        counts = Counter(ids[i] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {4}


def test_tracklet_epochs_are_reproducible_and_differ():
    ids = tracklet_ids()
    a, b = RandomTrackletSampler(ids, 16, 4, seed=3), RandomTrackletSampler(ids, 16, 4, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


def test_tracklet_ddp_shards_are_disjoint_whole_tracklets_and_equal_length():
    ids = tracklet_ids(60)
    shards = [RandomTrackletSampler(ids, 16, 4, seed=0, num_replicas=2, rank=r) for r in range(2)]
    a, b = (list(s) for s in shards)
    assert len(a) == len(b) == len(shards[0]) > 0
    many = {i for i, t in enumerate(ids) if Counter(ids)[t] >= 4}  # not drawn with replacement
    assert not (set(a) & set(b) & many)
    for shard in (a, b):
        for batch in split(shard, 16):
            assert set(Counter(ids[i] for i in batch).values()) == {4}
    single = RandomTrackletSampler(ids, 16, 4, seed=0)
    assert sorted(split(a, 16) + split(b, 16)) == sorted(split(list(single), 16)[: 2 * len(a) // 16])


def test_num_batches_sets_the_epoch_length_over_several_passes():
    ids = tracklet_ids(8)  # one pass makes at most a few batches of P = 4
    one_pass = RandomTrackletSampler(ids, 16, 4, seed=0)
    long = RandomTrackletSampler(ids, 16, 4, seed=0, num_batches=25)
    indices = list(long)
    assert len(indices) == len(long) == 25 * 16 > len(one_pass)
    for batch in split(indices, 16):
        assert set(Counter(ids[i] for i in batch).values()) == {4}
    assert split(indices, 16)[: len(one_pass) // 16] == split(list(one_pass), 16)


def test_tracklet_sampler_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="batch_size=10 must be a positive multiple of num_instances=4"):
        RandomTrackletSampler([0, 1, 2], 10, 4)
    with pytest.raises(ConfigError, match="needs at least P=4 tracklets .* the data has 3"):
        RandomTrackletSampler([0, 1, 2], 16, 4)
    with pytest.raises(ConfigError, match="num_batches=0"):
        RandomTrackletSampler([0, 1, 2, 3], 16, 4, num_batches=0)


# ------------------------------------------------------------------ the data module


def tracklet_dm(root, cls=CrossDomainDataModule, **kwargs):
    dm = cls("synth_a", "synth_b", root=str(root), batch_size=16, num_instances=4, target_batch_size=16,
             num_workers=0, masks="none", target_tracklets=True, **kwargs)
    dm.setup("fit")
    return dm


def test_data_module_tracklet_batches_carry_tracklets_and_no_identity(synth_root):
    dm = tracklet_dm(synth_root)
    assert dm.num_target_tracklets == 40 and sum(dm.num_target_tracklets_per_camera) == 40
    assert len(dm.num_target_tracklets_per_camera) == dm.num_target_cameras == 8
    view = dm.target_tracklet_view
    offsets = torch.tensor(view.camera_offsets)
    n = 0
    for batch, _, _ in iter(dm.train_dataloader()):
        tgt = batch[TARGET]
        assert set(tgt) == {IMAGE, CAMID, TRACKLET, CAMERA_TRACKLET} and PID not in tgt
        assert tgt[IMAGE].shape == (16, 3, 128, 64)
        assert torch.equal(tgt[TRACKLET], offsets[tgt[CAMID]] + tgt[CAMERA_TRACKLET])
        assert sorted(Counter(tgt[TRACKLET].tolist()).values()) == [4, 4, 4, 4]
        n += 1
    assert n == len(dm.source_loader()) > 0


def test_tracklet_option_is_off_by_default_and_checked(synth_root):
    dm = CrossDomainDataModule("synth_a", "synth_b", root=str(synth_root), batch_size=16, num_workers=0,
                               masks="none")
    dm.setup("fit")
    batch, _, _ = next(iter(dm.train_dataloader()))
    assert TRACKLET not in batch[TARGET] and CAMERA_TRACKLET not in batch[TARGET]
    with pytest.raises(ConfigError, match="target_tracklets=true needs .* data.with_target=true"):
        CrossDomainDataModule(root=str(synth_root), with_target=False, target_tracklets=True)
    with pytest.raises(ConfigError, match="data.target_batch_size=10 must be a multiple of data.num_instances=4"):
        CrossDomainDataModule(root=str(synth_root), target_batch_size=10, target_tracklets=True)


# ------------------------------------------------------------------ the leak test


class RelabelledTarget(CrossDomainDataModule):
    """The same data module, with the target's training identities relabelled at random across cameras."""

    @property
    def target_dataset(self):
        original = super().target_dataset
        if getattr(self, "_relabelled", None) is None:
            self._relabelled = dataclasses.replace(original, train=relabel_across_cameras(original.train, seed=7))
        return self._relabelled


class TinyNet(nn.Module):
    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 5, stride=4)
        self.fc = nn.Linear(4, dim)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def taudl_steps(dm, steps=5):
    """A few TAUDL steps on target batches: 0.3 * PCTD + 0.7 * CCTA (the official weighting)."""
    torch.manual_seed(0)
    net = TinyNet()
    heads = nn.ModuleList(nn.Linear(8, n) for n in dm.num_target_tracklets_per_camera)
    ccta = CrossCameraAssociationLoss(dm.num_target_tracklets_per_camera, 8, temperature=0.5)
    params = list(net.parameters()) + list(heads.parameters())
    optimiser = torch.optim.SGD(params, lr=0.1)
    record = {"tracklets": [], "losses": []}
    for step, (batch, _, _) in enumerate(iter(dm.train_dataloader())):
        if step == steps:
            break
        tgt = batch[TARGET]
        features = net(tgt[IMAGE])
        pctd = per_camera_tracklet_loss(features, tgt[CAMID], tgt[CAMERA_TRACKLET], heads)
        cross = ccta(features, tgt[TRACKLET], tgt[CAMID])
        optimiser.zero_grad()
        (0.3 * pctd + 0.7 * cross).backward()
        optimiser.step()
        record["tracklets"].append(torch.stack([tgt[TRACKLET], tgt[CAMERA_TRACKLET], tgt[CAMID]]))
        record["losses"].append((pctd.item(), cross.item()))
    record["params"] = [p.detach().clone() for p in params]
    record["memory"] = ccta.memory.features.clone()
    record["source_pids"] = batch[SOURCE][PID].clone()
    return record


def test_relabelling_identities_across_cameras_changes_nothing(synth_root):
    plain, relabelled = tracklet_dm(synth_root), tracklet_dm(synth_root, RelabelledTarget)
    before = [s.pid for s in plain.target_dataset.train]
    after = [s.pid for s in relabelled.target_dataset.train]
    assert before != after and pid_sorted_numbering(plain.target_dataset.train) != pid_sorted_numbering(
        relabelled.target_dataset.train)
    # people seen by several cameras no longer share a pid after the relabelling
    assert len(set(after)) > len(set(before))

    assert relabelled.target_tracklet_view == plain.target_tracklet_view
    assert list(relabelled.train_dataloader().iterables[TARGET].sampler) == list(
        plain.train_dataloader().iterables[TARGET].sampler)

    a, b = taudl_steps(plain), taudl_steps(relabelled)
    assert len(a["losses"]) == 5
    assert a["losses"][-1][1] > 0  # the association loss was active (memory filled)
    assert a["losses"] == b["losses"]
    for x, y in zip(a["tracklets"], b["tracklets"]):
        assert torch.equal(x, y)
    for x, y in zip(a["params"], b["params"]):
        assert torch.equal(x, y)
    assert torch.equal(a["memory"], b["memory"])
