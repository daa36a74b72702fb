"""P x K identity sampler and the sharded random sampler, on one and several ranks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from torch.utils.data import DistributedSampler

from crgan_lightning.data.samplers import RandomIdentitySampler, ShardedRandomSampler
from crgan_lightning.errors import ConfigError


def pids_fixture(num_ids=20, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 12, num_ids)  # some identities have fewer than K images
    return [pid for pid, n in zip(range(100, 100 + num_ids), counts) for _ in range(n)]


def batches(sampler, batch_size):
    idx = list(sampler)
    assert len(idx) == len(sampler) and len(idx) % batch_size == 0
    return [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]


def test_every_batch_is_p_identities_times_k_images():
    pids = pids_fixture()
    s = RandomIdentitySampler(pids, batch_size=16, num_instances=4, seed=1)
    assert isinstance(s, DistributedSampler)  # Lightning leaves it in place under DDP
    for b in batches(s, 16):
        counts = Counter(pids[i] for i in b)
        assert len(counts) == 4 and set(counts.values()) == {4}


def test_epochs_are_reproducible_and_differ():
    pids = pids_fixture()
    a = RandomIdentitySampler(pids, 16, 4, seed=3)
    b = RandomIdentitySampler(pids, 16, 4, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


def test_ddp_shards_are_disjoint_whole_identities_and_equal_length():
    pids = pids_fixture(40)
    shards = [RandomIdentitySampler(pids, 16, 4, seed=0, num_replicas=2, rank=r) for r in range(2)]
    for s in shards:
        s.set_epoch(5)
    a, b = (list(s) for s in shards)
    assert len(a) == len(b) == len(shards[0]) > 0
    # images with >= K copies of their identity are never shared between ranks
    many = {i for i, p in enumerate(pids) if Counter(pids)[p] >= 4}
    assert not (set(a) & set(b) & many)
    for shard in (a, b):
        for batch in [shard[i:i + 16] for i in range(0, len(shard), 16)]:
            assert set(Counter(pids[i] for i in batch).values()) == {4}
    single = RandomIdentitySampler(pids, 16, 4, seed=0)
    assert len(a) + len(b) <= len(single) + 16


def test_too_few_identities_is_a_clear_error():
    with pytest.raises(ConfigError, match="at least P=8 identities"):
        RandomIdentitySampler([1, 1, 2, 2], batch_size=32, num_instances=4)
    with pytest.raises(ConfigError, match="multiple of num_instances"):
        RandomIdentitySampler([1, 2], batch_size=10, num_instances=4)


def test_sharded_random_sampler_covers_items_without_repeats_then_cycles():
    s0 = ShardedRandomSampler(10, 5, seed=0, num_replicas=2, rank=0)
    s1 = ShardedRandomSampler(10, 5, seed=0, num_replicas=2, rank=1)
    a, b = list(s0), list(s1)
    assert len(a) == len(b) == 5 and sorted(a + b) == list(range(10))
    long = list(ShardedRandomSampler(4, 10, seed=1))
    assert len(long) == 10 and sorted(long[:4]) == [0, 1, 2, 3]
