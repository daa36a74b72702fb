"""Samplers for training loaders, distributed-aware and reproducible.

:class:`RandomIdentitySampler` yields P x K batches (P identities, K images each) for the
triplet loss; :class:`ShardedRandomSampler` yields a fixed number of random indices per epoch
(the unlabelled target images). Both subclass :class:`torch.utils.data.DistributedSampler`
so that Lightning leaves them in place under DDP instead of wrapping them: each reads the
process group itself, gives every rank its own disjoint share, and is reseeded each epoch
through ``set_epoch`` (which Lightning calls), so that epochs are reproducible for a seed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler

from ..errors import ConfigError


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    if num_replicas is None or rank is None:
        if dist.is_available() and dist.is_initialized():
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        else:
            num_replicas = 1 if num_replicas is None else num_replicas
            rank = 0 if rank is None else rank
    if not 0 <= rank < num_replicas:
        raise ConfigError(f"rank {rank} is out of range for {num_replicas} processes")
    return num_replicas, rank


class _EpochSampler(DistributedSampler):
    """Common state: process-group shape, seed and epoch (not DistributedSampler's own logic)."""

    def __init__(self, seed: int, num_replicas: int | None, rank: int | None) -> None:
        Sampler.__init__(self)
        self.num_replicas, self.rank = _world(num_replicas, rank)
        self.seed = int(seed)
        self.epoch = 0
        self.shuffle = True
        self.drop_last = True

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])


class RandomIdentitySampler(_EpochSampler):
    """P x K identity sampling: every ``batch_size`` consecutive indices hold ``batch_size // K``
    distinct identities with ``K = num_instances`` images each.

    Each epoch, every identity's images are shuffled and cut into chunks of K (an identity
    with fewer than K images is sampled with replacement to one chunk); batches are built by
    drawing P identities at random and taking one chunk of each, until the chunks run out.
    The batches are then dealt to the ranks, so a rank always receives whole identity chunks
    and no two ranks share an image (except an identity with fewer than K images, which is
    repeated inside its own chunk). Every rank yields the same number of batches.

    Args:
        pids: the identity of each dataset item (any hashable ints).
        batch_size: P * K, images per batch on one rank.
        num_instances: K.
        seed: base seed; the epoch (from ``set_epoch``) is mixed in.
        num_replicas, rank: taken from the process group when not given.
    """

    def __init__(
        self,
        pids: Sequence[int],
        batch_size: int = 64,
        num_instances: int = 4,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__(seed, num_replicas, rank)
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ConfigError(
                f"batch_size={batch_size} must be a positive multiple of num_instances={num_instances}"
            )
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.index_by_pid: dict[int, list[int]] = defaultdict(list)
        for idx, pid in enumerate(pids):
            self.index_by_pid[int(pid)].append(idx)
        self.pids = sorted(self.index_by_pid)
        if len(self.pids) < self.num_pids_per_batch:
            raise ConfigError(
                f"P x K sampling needs at least P={self.num_pids_per_batch} identities "
                f"(batch_size / num_instances); the data has {len(self.pids)}"
            )
        k = num_instances
        num_chunks = sum(max(len(v), k) // k for v in self.index_by_pid.values())
        self.batches_per_rank = (num_chunks // self.num_pids_per_batch) // self.num_replicas
        if self.batches_per_rank == 0:
            raise ConfigError(
                f"too little data for {self.num_replicas} process(es) at batch_size={batch_size}: "
                f"{num_chunks} chunks of K={k} images make no full batch per process"
            )

    def _all_batches(self) -> list[list[int]]:
        rng = self._rng()
        k, p = self.num_instances, self.num_pids_per_batch
        chunks: dict[int, list[list[int]]] = {}
        for pid in self.pids:
            idxs = np.asarray(self.index_by_pid[pid])
            if len(idxs) < k:
                idxs = rng.choice(idxs, size=k, replace=True)
            else:
                idxs = rng.permutation(idxs)
            n = len(idxs) // k
            chunks[pid] = [idxs[i * k:(i + 1) * k].tolist() for i in range(n)]
        needed = self.batches_per_rank * self.num_replicas
        batches: list[list[int]] = []
        available = [pid for pid in self.pids if chunks[pid]]
        while len(batches) < needed and len(available) >= p:
            chosen = rng.choice(len(available), size=p, replace=False)
            batch: list[int] = []
            for j in sorted(chosen):
                batch += chunks[available[j]].pop()
            batches.append(batch)
            available = [pid for pid in available if chunks[pid]]
        while len(batches) < needed:  # few identities left with many images: refill at random
            chosen = rng.choice(len(self.pids), size=p, replace=False)
            batch = []
            for j in chosen:
                batch += rng.choice(self.index_by_pid[self.pids[j]], size=k, replace=True).tolist()
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[int]:
        batches = self._all_batches()
        for batch in batches[self.rank::self.num_replicas]:
            yield from batch

    def __len__(self) -> int:
        return self.batches_per_rank * self.batch_size


class ShardedRandomSampler(_EpochSampler):
    """``num_samples`` random indices per rank and epoch, drawn from ``range(num_items)``
    without repetition while possible (successive permutations are concatenated); ranks get
    interleaved, disjoint slices of the same stream."""

    def __init__(
        self,
        num_items: int,
        num_samples: int,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__(seed, num_replicas, rank)
        if num_items < 1 or num_samples < 1:
            raise ConfigError(f"num_items={num_items} and num_samples={num_samples} must be positive")
        self.num_items = num_items
        self.num_samples = num_samples

    def __iter__(self) -> Iterator[int]:
        rng = self._rng()
        total = self.num_samples * self.num_replicas
        reps = -(-total // self.num_items)
        stream = np.concatenate([rng.permutation(self.num_items) for _ in range(reps)])[:total]
        return iter(stream[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


class RandomTrackletSampler(_EpochSampler):
    """P x K tracklet sampling for TAUDL: every ``batch_size`` consecutive indices hold
    ``P = batch_size // K`` distinct tracklets with ``K = num_instances`` images each.

    ``tracklets`` gives the global tracklet id of each dataset item
    (:func:`crgan_lightning.data.tracklets.build_tracklet_view`); tracklets of all cameras are
    drawn alike, so a batch mixes cameras in proportion to their tracklets. One pass over the
    data cuts each tracklet's shuffled images into chunks of K (a tracklet with fewer than K
    images is drawn with replacement to one chunk) and builds batches from P random tracklets
    that still have chunks, until fewer than P have; the next pass reshuffles. Batches are dealt
    to the ranks as in :class:`RandomIdentitySampler`, so a rank receives whole tracklet chunks,
    no two ranks share an image within a pass, and every rank yields the same number of batches.

    Args:
        tracklets: the global tracklet id of each dataset item.
        batch_size: P * K, images per batch on one rank.
        num_instances: K.
        seed: base seed; the epoch (from ``set_epoch``) is mixed in.
        num_batches: batches per rank and epoch. ``None``: one pass over the chunks. Given (the
            data module passes the length of the source loader, so that both loaders of a
            ``min_size`` CombinedLoader end together), as many passes as needed, cut to length.
        num_replicas, rank: taken from the process group when not given.
    """

    def __init__(
        self,
        tracklets: Sequence[int],
        batch_size: int = 64,
        num_instances: int = 4,
        seed: int = 0,
        num_batches: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__(seed, num_replicas, rank)
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ConfigError(
                f"tracklet batch_size={batch_size} must be a positive multiple of num_instances={num_instances}"
            )
        if num_batches is not None and num_batches < 1:
            raise ConfigError(f"num_batches={num_batches} must be >= 1 (or None for one pass)")
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_tracklets_per_batch = batch_size // num_instances
        self.index_by_tracklet: dict[int, list[int]] = defaultdict(list)
        for idx, tracklet in enumerate(tracklets):
            self.index_by_tracklet[int(tracklet)].append(idx)
        self.tracklets = sorted(self.index_by_tracklet)
        if len(self.tracklets) < self.num_tracklets_per_batch:
            raise ConfigError(
                f"P x K tracklet sampling needs at least P={self.num_tracklets_per_batch} tracklets "
                f"(batch_size / num_instances = {batch_size} / {num_instances}); the data has {len(self.tracklets)}"
            )
        if num_batches is None:
            k = num_instances
            num_chunks = sum(max(len(v), k) // k for v in self.index_by_tracklet.values())
            num_batches = (num_chunks // self.num_tracklets_per_batch) // self.num_replicas
            if num_batches == 0:
                raise ConfigError(
                    f"too little data for {self.num_replicas} process(es) at tracklet batch_size={batch_size}: "
                    f"{num_chunks} chunks of K={k} images make no full batch per process"
                )
        self.batches_per_rank = num_batches

    def _one_pass(self, rng: np.random.Generator) -> list[list[int]]:
        k, p = self.num_instances, self.num_tracklets_per_batch
        chunks: dict[int, list[list[int]]] = {}
        for tracklet in self.tracklets:
            idxs = np.asarray(self.index_by_tracklet[tracklet])
            idxs = rng.choice(idxs, size=k, replace=True) if len(idxs) < k else rng.permutation(idxs)
            chunks[tracklet] = [idxs[i * k:(i + 1) * k].tolist() for i in range(len(idxs) // k)]
        batches: list[list[int]] = []
        available = list(self.tracklets)
        while len(available) >= p:  # every tracklet has >= 1 chunk, so a pass makes >= 1 batch
            batch: list[int] = []
            for j in sorted(rng.choice(len(available), size=p, replace=False)):
                batch += chunks[available[j]].pop()
            batches.append(batch)
            available = [t for t in available if chunks[t]]
        return batches

    def _all_batches(self) -> list[list[int]]:
        rng = self._rng()
        needed = self.batches_per_rank * self.num_replicas
        batches: list[list[int]] = []
        while len(batches) < needed:
            batches += self._one_pass(rng)
        return batches[:needed]

    def __iter__(self) -> Iterator[int]:
        batches = self._all_batches()
        for batch in batches[self.rank::self.num_replicas]:
            yield from batch

    def __len__(self) -> int:
        return self.batches_per_rank * self.batch_size
