"""Samplers for training loaders, distributed-aware and reproducible.

:class:`RandomIdentitySampler` yields P x K batches (P identities, K images each) for the
triplet loss, :class:`RandomTrackletSampler` the same over the target's within-camera tracklets
(TAUDL), both from one P x K chunking; :class:`ShardedRandomSampler` yields a fixed number of
random indices per epoch (the unlabelled target images). All subclass :class:`torch.utils.data.DistributedSampler`
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


class _PKSampler(_EpochSampler):
    """P x K sampling over groups of items (identities, tracklets): one pass over the data cuts
    every group's shuffled items into chunks of K (a group with fewer than K items is drawn with
    replacement to one chunk) and builds batches of P random groups that still have chunks; the
    batches are dealt to the ranks, so a rank receives whole chunks. ``what`` names the groups in
    messages."""

    what = "groups"

    def __init__(self, groups: Sequence[int], batch_size: int, num_instances: int, seed: int,
                 num_replicas: int | None, rank: int | None) -> None:
        super().__init__(seed, num_replicas, rank)
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ConfigError(
                f"batch_size={batch_size} must be a positive multiple of num_instances={num_instances}"
            )
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.per_batch = batch_size // num_instances
        self.index_by_group: dict[int, list[int]] = defaultdict(list)
        for idx, group in enumerate(groups):
            self.index_by_group[int(group)].append(idx)
        self.groups = sorted(self.index_by_group)
        if len(self.groups) < self.per_batch:
            raise ConfigError(
                f"P x K sampling needs at least P={self.per_batch} {self.what} "
                f"(batch_size / num_instances = {batch_size} / {num_instances}); the data has {len(self.groups)}"
            )

    def _batches_in_one_pass(self) -> int:
        """Full batches per rank that the chunks of one pass hold (a ConfigError when none)."""
        k = self.num_instances
        num_chunks = sum(max(len(v), k) // k for v in self.index_by_group.values())
        batches = (num_chunks // self.per_batch) // self.num_replicas
        if batches == 0:
            raise ConfigError(
                f"too little data for {self.num_replicas} process(es) at batch_size={self.batch_size}: "
                f"{num_chunks} chunks of K={k} images make no full batch per process"
            )
        return batches

    def _one_pass(self, rng: np.random.Generator, limit: int | None = None) -> list[list[int]]:
        """The batches of one pass over every group's chunks (at most ``limit``)."""
        k, p = self.num_instances, self.per_batch
        chunks: dict[int, list[list[int]]] = {}
        for group in self.groups:
            idxs = np.asarray(self.index_by_group[group])
            idxs = rng.choice(idxs, size=k, replace=True) if len(idxs) < k else rng.permutation(idxs)
            chunks[group] = [idxs[i * k:(i + 1) * k].tolist() for i in range(len(idxs) // k)]
        batches: list[list[int]] = []
        available = [group for group in self.groups if chunks[group]]
        while (limit is None or len(batches) < limit) and len(available) >= p:
            batch: list[int] = []
            for j in sorted(rng.choice(len(available), size=p, replace=False)):
                batch += chunks[available[j]].pop()
            batches.append(batch)
            available = [group for group in available if chunks[group]]
        return batches

    def _all_batches(self) -> list[list[int]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        batches = self._all_batches()
        for batch in batches[self.rank::self.num_replicas]:
            yield from batch

    def __len__(self) -> int:
        return self.batches_per_rank * self.batch_size


class RandomIdentitySampler(_PKSampler):
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

    what = "identities"

    def __init__(
        self,
        pids: Sequence[int],
        batch_size: int = 64,
        num_instances: int = 4,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__(pids, batch_size, num_instances, seed, num_replicas, rank)
        self.batches_per_rank = self._batches_in_one_pass()

    def _all_batches(self) -> list[list[int]]:
        rng = self._rng()
        needed = self.batches_per_rank * self.num_replicas
        batches = self._one_pass(rng, limit=needed)
        k, p = self.num_instances, self.per_batch
        while len(batches) < needed:  # few identities left with many images: refill at random
            chosen = rng.choice(len(self.groups), size=p, replace=False)
            batch: list[int] = []
            for j in chosen:
                batch += rng.choice(self.index_by_group[self.groups[j]], size=k, replace=True).tolist()
            batches.append(batch)
        return batches


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


class RandomTrackletSampler(_PKSampler):
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

    what = "tracklets"

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
        if num_batches is not None and num_batches < 1:
            raise ConfigError(f"num_batches={num_batches} must be >= 1 (or None for one pass)")
        super().__init__(tracklets, batch_size, num_instances, seed, num_replicas, rank)
        self.batches_per_rank = self._batches_in_one_pass() if num_batches is None else num_batches

    def _all_batches(self) -> list[list[int]]:
        rng = self._rng()
        needed = self.batches_per_rank * self.num_replicas
        batches: list[list[int]] = []
        while len(batches) < needed:  # every tracklet has a chunk, so a pass makes at least one batch
            batches += self._one_pass(rng)
        return batches[:needed]


class PseudoLabels:
    """The current pseudo-identity of every target training image, shared by the module that
    clusters and the sampler that draws batches from it (both in the main process of a rank).

    ``labels``: ``(N,)`` int64 numpy array (-1: an image left out of training), or None before the
    first clustering."""

    def __init__(self) -> None:
        self.labels: np.ndarray | None = None

    def set(self, labels) -> None:
        self.labels = np.asarray(labels, dtype=np.int64).copy()


class PseudoIdentitySampler(_PKSampler):
    """P x K sampling over pseudo-identities that change every epoch (the clustering stage).

    The groups are read from ``pseudo_labels`` when an epoch's iteration starts (after the module's
    ``on_train_epoch_start``, where it clusters), so the loader is built once and each epoch follows
    the latest clustering. Images labelled -1 (dropped outliers) are never drawn. Otherwise as
    :class:`RandomTrackletSampler`: every ``batch_size`` consecutive indices hold
    ``P = batch_size // K`` distinct pseudo-identities with ``K = num_instances`` images each (a
    pseudo-identity with fewer than K images is drawn with replacement), whole chunks are dealt to
    the ranks, and every rank yields ``num_batches`` batches per epoch.

    Args:
        pseudo_labels: the shared :class:`PseudoLabels`.
        batch_size: P * K, images per batch on one rank.
        num_instances: K.
        seed: base seed; the epoch (from ``set_epoch``) is mixed in.
        num_batches: batches per rank and epoch (fixed, so that the loader's length does not depend
            on the clustering).
        num_items: the number of images. Before the first clustering, Lightning may iterate the
            loader (to count its batches; loader workers then prefetch some): with ``num_items``
            given, every image is then its own group, so such a pass yields valid batches; the
            module's ``on_train_epoch_start`` sets the labels before any batch is trained on.
            Without it, iterating before the first clustering is a :class:`ConfigError`.
        num_replicas, rank: taken from the process group when not given.
    """

    what = "pseudo-identities"

    def __init__(
        self,
        pseudo_labels: PseudoLabels,
        batch_size: int = 64,
        num_instances: int = 4,
        seed: int = 0,
        num_batches: int = 1,
        num_items: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        _EpochSampler.__init__(self, seed, num_replicas, rank)
        self.num_items = num_items
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ConfigError(
                f"batch_size={batch_size} must be a positive multiple of num_instances={num_instances}"
            )
        if num_batches < 1:
            raise ConfigError(f"num_batches={num_batches} must be >= 1")
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.per_batch = batch_size // num_instances
        self.pseudo_labels = pseudo_labels
        self.batches_per_rank = num_batches

    def _all_batches(self) -> list[list[int]]:
        labels = self.pseudo_labels.labels
        if labels is None and self.num_items:
            labels = np.arange(self.num_items)  # before the first clustering: a pass Lightning only counts
        if labels is None:
            raise ConfigError("no pseudo-labels to sample from: the clustering stage sets them at the start of "
                              "every training epoch")
        self.index_by_group = defaultdict(list)
        for idx, group in enumerate(labels.tolist()):
            if group >= 0:
                self.index_by_group[group].append(idx)
        self.groups = sorted(self.index_by_group)
        if len(self.groups) < self.per_batch:
            raise ConfigError(
                f"P x K sampling needs at least P={self.per_batch} pseudo-identities (batch_size / num_instances = "
                f"{self.batch_size} / {self.num_instances}); the clustering gave {len(self.groups)}: raise eps, "
                "lower min_samples, or keep outliers as instances")
        rng = self._rng()
        needed = self.batches_per_rank * self.num_replicas
        batches: list[list[int]] = []
        while len(batches) < needed:  # every pseudo-identity has a chunk, so a pass makes at least one batch
            batches += self._one_pass(rng)
        return batches[:needed]
