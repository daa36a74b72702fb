"""``ReIDMetric``: CMC / mAP / mINP of a re-id model as a torchmetrics ``Metric``.

The metric collects the features of the evaluation set (query followed by gallery) batch by
batch, gathers them from every process under DDP, and ranks the gallery for every query with
the Market-1501 protocol of :func:`~crgan_lightning.metrics.evaluate_rank`.

Every sample carries its index in the evaluation set: indices ``0 .. num_query - 1`` are the
queries, the following ones the gallery. The index makes the result independent of the
number of processes: a ``DistributedSampler`` pads the last batches by repeating samples,
and the repeats are dropped before ranking, so 1 and N processes give the same numbers.
When samples are missing (an evaluation cut short by ``limit_val_batches``) the ones present
are ranked, with a warning; with no gallery image at all (Lightning's sanity check usually
sees only the first query batches) ``compute()`` raises :class:`ConfigError`, so skip it there.

Use in a LightningModule::

    self.val_reid = ReIDMetric(num_query=datamodule.num_query)
    # validation_step
    self.val_reid.update(features, batch["pid"], batch["camid"], batch["index"])
    # on_validation_epoch_end
    scores = self.val_reid.compute()
    cmc = scores.pop("cmc")            # the full curve, for a plot
    self.log_dict({f"val/{k}": v for k, v in scores.items()})
    self.val_reid.reset()
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from crgan_lightning.errors import ConfigError
from crgan_lightning.metrics.ranking import DISTANCE_METRICS, compute_distance, evaluate_rank
from crgan_lightning.metrics.rerank import re_ranking


class ReIDMetric(Metric):
    """Rank-1/5/10, mAP, mINP and the CMC curve of query and gallery features.

    Args:
        num_query: number of query images; samples with index ``< num_query`` are queries.
        max_rank: length of the CMC curve (at least 10, for ``rank10``).
        metric: ``"euclidean"`` or ``"cosine"`` distance of the features
            (see :func:`~crgan_lightning.metrics.compute_distance`).
        rerank: apply k-reciprocal re-ranking (:func:`~crgan_lightning.metrics.re_ranking`).
        k1, k2, lambda_value: re-ranking parameters.
        ranked_queries: also return the ranked lists of this many queries, spread evenly over
            the query set (for a ranked-list picture); 0 returns none.
        ranked_topk: length of those ranked lists.
        **kwargs: passed to ``torchmetrics.Metric`` (``process_group``, ``dist_sync_fn``, ...).

    ``update(features, pids, camids, indices)`` takes ``(B, D)`` features and ``(B,)`` integer
    identities, cameras and evaluation-set indices. ``compute()`` returns a dict of float32
    tensors: scalars ``rank1``, ``rank5``, ``rank10``, ``mAP``, ``mINP`` in [0, 1] and the
    ``(max_rank,)`` curve ``cmc``. With ``ranked_queries > 0`` it also holds int64 tensors
    ``ranked_queries`` ``(n,)``, the evaluation-set indices of the chosen queries, and
    ``ranked_gallery`` ``(n, k)``, the evaluation-set indices of their first ``k`` gallery images
    in ranking order, junk (same identity and camera) left out as in the metrics; ``k`` is
    ``ranked_topk`` or less when a list is shorter.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        num_query: int,
        max_rank: int = 50,
        metric: str = "euclidean",
        rerank: bool = False,
        k1: int = 20,
        k2: int = 6,
        lambda_value: float = 0.3,
        ranked_queries: int = 0,
        ranked_topk: int = 10,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(num_query, bool) or not isinstance(num_query, (int, np.integer)) or num_query < 1:
            raise ConfigError(f"num_query must be a positive integer, got {num_query!r}")
        if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 10:
            raise ConfigError(f"max_rank must be an integer >= 10 (rank10 is reported), got {max_rank!r}")
        if metric not in DISTANCE_METRICS:
            raise ConfigError(f"metric must be one of {DISTANCE_METRICS}, got {metric!r}")
        for name, value in (("k1", k1), ("k2", k2)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name, value, low in (("ranked_queries", ranked_queries, 0), ("ranked_topk", ranked_topk, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= float(lambda_value) <= 1.0:
            raise ConfigError(f"lambda_value must be in [0, 1], got {lambda_value!r}")
        self.num_query = int(num_query)
        self.max_rank = int(max_rank)
        self.metric = metric
        self.rerank = bool(rerank)
        self.k1, self.k2, self.lambda_value = int(k1), int(k2), float(lambda_value)
        self.ranked_queries, self.ranked_topk = int(ranked_queries), int(ranked_topk)
        self.add_state("features", default=[], dist_reduce_fx="cat")
        self.add_state("pids", default=[], dist_reduce_fx="cat")
        self.add_state("camids", default=[], dist_reduce_fx="cat")
        self.add_state("indices", default=[], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor, pids: torch.Tensor, camids: torch.Tensor,
               indices: torch.Tensor) -> None:
        """Store a batch: ``(B, D)`` features and ``(B,)`` pids, camids and dataset indices."""
        if features.ndim != 2:
            raise ConfigError(f"features must be (batch, dim), got shape {tuple(features.shape)}")
        batch = features.shape[0]
        labels = {"pids": pids, "camids": camids, "indices": indices}
        for name, value in labels.items():
            value = torch.as_tensor(value)
            if value.shape != (batch,):
                raise ConfigError(
                    f"{name} must have shape ({batch},) like the features, got {tuple(value.shape)}"
                )
            labels[name] = value.to(device=self.device, dtype=torch.int64)
        self.features.append(features.detach())
        self.pids.append(labels["pids"])
        self.camids.append(labels["camids"])
        self.indices.append(labels["indices"])

    def compute(self) -> dict[str, torch.Tensor]:
        """Rank the gallery for every query; the states are already gathered from all ranks."""
        if isinstance(self.indices, list) and not self.indices:
            raise ConfigError("ReIDMetric.compute() called before any update()")
        features = dim_zero_cat(self.features)
        pids = dim_zero_cat(self.pids).long()
        camids = dim_zero_cat(self.camids).long()
        indices = dim_zero_cat(self.indices).long()

        # Drop repeated samples (DistributedSampler padding) and restore the dataset order.
        order = torch.argsort(indices, stable=True)
        sorted_idx = indices[order]
        first = torch.ones_like(sorted_idx, dtype=torch.bool)
        first[1:] = sorted_idx[1:] != sorted_idx[:-1]
        order, sorted_idx = order[first], sorted_idx[first]
        num_q = int((sorted_idx < self.num_query).sum())
        num_seen, lowest, highest = sorted_idx.numel(), int(sorted_idx[0]), int(sorted_idx[-1])
        if num_q == 0 or num_q == num_seen or lowest < 0:
            raise ConfigError(
                f"ReIDMetric needs queries (indices 0..{self.num_query - 1}) and gallery images (indices "
                f">= {self.num_query}); got {num_seen} distinct indices from {lowest} to {highest}. "
                f"Check num_query and the 'index' of the evaluation batches; a run limited to a few "
                f"batches (sanity check, limit_val_batches) may see no gallery at all"
            )
        if num_q != self.num_query or highest != num_seen - 1:
            warnings.warn(
                f"ReIDMetric: {num_seen} distinct samples ({num_q} of {self.num_query} queries) with "
                f"indices up to {highest}: some samples of the evaluation set are missing; ranking the "
                f"ones present",
                stacklevel=2,
            )
        features, pids, camids = features[order], pids[order].cpu(), camids[order].cpu()
        qf, gf = features[:num_q], features[num_q:]
        if self.rerank:
            distmat = re_ranking(qf, gf, k1=self.k1, k2=self.k2, lambda_value=self.lambda_value,
                                 metric=self.metric)
        else:
            distmat = compute_distance(qf, gf, metric=self.metric)
        cmc, m_ap, m_inp = evaluate_rank(distmat, pids[:num_q], pids[num_q:], camids[:num_q], camids[num_q:],
                                         max_rank=self.max_rank, return_minp=True)

        def scalar(value: float) -> torch.Tensor:
            return torch.tensor(value, dtype=torch.float32, device=self.device)

        scores = {
            "rank1": scalar(cmc[0]),
            "rank5": scalar(cmc[4]),
            "rank10": scalar(cmc[9]),
            "mAP": scalar(m_ap),
            "mINP": scalar(m_inp),
            "cmc": torch.as_tensor(cmc, dtype=torch.float32, device=self.device),
        }
        if self.ranked_queries > 0:
            scores.update(self._ranked_lists(distmat, pids.numpy(), camids.numpy(), sorted_idx.cpu()))
        return scores

    def _ranked_lists(self, distmat: np.ndarray, pids: np.ndarray, camids: np.ndarray,
                      dataset_index: torch.Tensor) -> dict[str, torch.Tensor]:
        """First ``ranked_topk`` gallery images of ``ranked_queries`` evenly spread queries."""
        num_q = distmat.shape[0]
        count = min(self.ranked_queries, num_q)
        rows = np.unique(np.linspace(0, num_q - 1, count).round().astype(np.int64))
        lists = []
        for row in rows:
            order = np.argsort(distmat[row], kind="stable")
            junk = (pids[num_q:][order] == pids[row]) & (camids[num_q:][order] == camids[row])
            lists.append(order[~junk][: self.ranked_topk])
        k = min(len(ranked) for ranked in lists)
        gallery = torch.from_numpy(np.stack([ranked[:k] for ranked in lists]))
        return {
            "ranked_queries": dataset_index[torch.from_numpy(rows)].to(self.device),
            "ranked_gallery": dataset_index[num_q:][gallery].to(self.device),
        }
