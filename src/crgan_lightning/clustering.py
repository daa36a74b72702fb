"""Pseudo-identities for the unlabelled target: the k-reciprocal Jaccard distance of its features,
DBSCAN on it, and how well the result agrees with true identities (a diagnostic).

This is the clustering step of SpCL (Ge et al., NeurIPS 2020) and cluster contrast (Dai et al.):
once an epoch, the features of every target training image are clustered and each cluster
becomes a pseudo-identity.

* :func:`jaccard_distance`: the Jaccard distance between the k-reciprocal encodings of all
  ``N`` images (Zhong et al., CVPR 2017), as SpCL's ``compute_jaccard_distance`` defines it, but
  exact nearest neighbours in torch, block by block, and a sparse result: memory grows with
  ``N`` times the neighbourhood sizes, never with ``N x N``. Pairs whose encodings share no image
  are at distance exactly 1 and are not stored.
* :func:`dbscan_labels`: scikit-learn's DBSCAN on precomputed (sparse or dense) distances.
* :func:`assign_outliers`: outliers dropped (label -1) or kept as clusters of one image.
* :func:`cluster_centroids`: the L2-normalised mean feature of each pseudo-identity.
* :func:`label_agreement`: adjusted Rand index and pairwise precision / recall / F-score of the
  pseudo-labels against true identities; for diagnostics on a benchmark, never for training.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from .errors import ConfigError
from .metrics.ranking import CHUNK_ELEMENTS, ArrayLike
from .metrics.rerank import _check_features, _row_chunks, k_reciprocal_encoding

#: What happens to the images DBSCAN leaves out of every cluster (see :func:`assign_outliers`).
OUTLIER_MODES = ("drop", "instances")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def nearest_neighbours(features: torch.Tensor, k: int, chunk_elements: int = CHUNK_ELEMENTS,
                       return_distances: bool = False):
    """Exact ``k`` nearest neighbours of each of ``N`` features among all of them, by squared
    Euclidean distance, computed block by block (``chunk_elements`` distances at a time).

    On the CPU the block products go through numpy's BLAS (on this project's 2-core AMD test machine
    1.6x faster than torch's for these shapes; both are float32 or float64 products of the same
    values). Each block keeps its rows' ``k + 1`` nearest (one ``topk``). A row whose ``k + 1`` nearest hold
    two distances equal up to rounding gets its ``2 (k + 1)`` nearest re-sorted (stable, in index
    order) by distances summed from coordinate differences, so that identical features are at
    identical distances and ties come in index order, as in a stable argsort of exact distances.

    Args:
        features: ``(N, D)`` float tensor.
        k: neighbours per image (the image itself, at distance 0, is normally the first).
        return_distances: also return each image's ``2 (k + 1)`` nearest and their distances.

    Returns:
        ``(N, k)`` int64 indices, nearest first; ties in index order. With ``return_distances``:
        ``(indices, (wide_indices (N, W), wide_distances (N, W)))``, ``W = min(2 (k + 1), N)``.
    """
    num = features.shape[0]
    k = min(k, num)
    keep, width = min(k + 1, num), min(2 * (k + 1), num)
    sq = (features * features).sum(1)
    out = torch.empty(num, k, dtype=torch.int64, device=features.device)
    wide_i = torch.empty(num, width, dtype=torch.int64, device=features.device) if return_distances else None
    wide_v = torch.empty(num, width, dtype=features.dtype, device=features.device) if return_distances else None
    rows = max(1, chunk_elements // num)
    as_numpy = features.detach().contiguous().numpy() if features.device.type == "cpu" else None
    for start in range(0, num, rows):
        stop = min(start + rows, num)
        if as_numpy is not None:
            block = torch.from_numpy(as_numpy[start:stop] @ as_numpy.T).mul_(-2.0).add_(sq[None, :])
        else:
            block = torch.addmm(sq[None, :], features[start:stop], features.T, alpha=-2.0)
        block.add_(sq[start:stop, None])
        values, index = torch.topk(block.clamp_min_(0.0), width, dim=1, largest=False, sorted=True)
        del block
        out[start:stop] = index[:, :k]
        if return_distances:
            wide_i[start:stop], wide_v[start:stop] = index, values
        # (near-)ties among the k + 1 nearest: identical features may differ by rounding in a product
        near = values[:, :keep]
        slack = 8 * torch.finfo(near.dtype).eps * near[:, -1:].clamp_min(torch.finfo(near.dtype).tiny)
        tied = ((near[:, 1:] - near[:, :-1]) <= slack).any(1).nonzero().flatten()
        if len(tied):
            cand = torch.sort(index[tied], dim=1).values
            exact = (features[cand] - features[tied + start, None, :]).pow_(2).sum(2)
            out[tied + start] = cand.gather(1, torch.sort(exact, dim=1, stable=True).indices[:, :k])
    return (out, (wide_i, wide_v)) if return_distances else out


def jaccard_distance(
    features: ArrayLike,
    k1: int = 30,
    k2: int = 6,
    max_distance: float | None = None,
    *,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> sp.csr_matrix:
    """The k-reciprocal Jaccard distance between all ``N`` images, sparse.

    The definition is SpCL's ``compute_jaccard_distance`` (its k1=30, k2=6 are the defaults):
    features are L2-normalised; each image's forward list is its ``k1`` nearest images, itself
    included (Zhong et al.'s ``k1 - 1``); its k-reciprocal set is expanded by the sets of half
    size (forward lists of ``round(k1 / 2) + 1``) of members that share more than two thirds
    of their set with it; the encoding ``V[i, j] = exp(-d(i, j)) / sum`` over the expanded set,
    with ``d`` the squared Euclidean distance of the normalised features (``2 - 2 cos``), is
    averaged over the ``k2`` nearest images; and
    ``jaccard(i, j) = 1 - s / (2 - s)`` with ``s = sum_c min(V[i, c], V[j, c])``, clipped at 0.

    Args:
        features: ``(N, D)`` features, numpy or torch on any device (computed there, in float32,
            or float64 for float64 features).
        k1, k2: as above.
        max_distance: keep only entries ``<= max_distance`` (e.g. DBSCAN's ``eps``: farther pairs
            cannot be neighbours); None keeps every pair whose encodings overlap.
        chunk_elements: size of the blocks of values computed at once (the result does not depend
            on it).

    Returns:
        ``(N, N)`` scipy CSR matrix of distances in [0, 1]: the stored entries are the pairs whose
        encodings share an image (the diagonal included, at 0); every other pair is at distance 1.
        Pass it to :func:`dbscan_labels` (or ``.toarray()`` after filling the rest with 1 for a
        dense matrix).
    """
    k1 = _positive_int(k1, "k1")
    k2 = _positive_int(k2, "k2")
    feats = _check_features(features, "features")
    dtype = torch.float64 if feats.dtype == torch.float64 else torch.float32
    feats = F.normalize(feats.to(dtype), dim=1)
    num, device = feats.shape[0], feats.device

    # 1-3. Exact nearest neighbours and the sparse k-reciprocal encoding V (rows sorted).
    k = min(k1, num)
    neighbours, known = nearest_neighbours(feats, k, chunk_elements, return_distances=True)
    num_half = min(int(np.around(k1 / 2)) + 1, k)
    rows_v, cols_v, vals_v = k_reciprocal_encoding(feats, neighbours, k, num_half, min(k2, k),
                                                   torch.ones(num, dtype=dtype, device=device), chunk_elements, known)
    del neighbours, known, feats

    # 4. s(i, j) = sum_c min(V[i, c], V[j, c]) through the inverted index (by column) of V.
    order = torch.argsort(cols_v, stable=True)
    inv_rows, inv_vals = rows_v[order], vals_v[order]
    col_counts = torch.bincount(cols_v, minlength=num)
    col_ptr = torch.cumsum(col_counts, 0) - col_counts
    pairs_per_entry = col_counts[cols_v]
    pairs_per_row = torch.zeros(num, dtype=torch.int64, device=device).index_add_(0, rows_v, pairs_per_entry)
    entry_ptr = torch.cumsum(torch.bincount(rows_v, minlength=num), 0)
    # the smallest s a pair within max_distance can have: 1 - s / (2 - s) <= m  <=>  s >= 2 (1 - m) / (2 - m)
    s_min = 0.0 if max_distance is None else 2.0 * (1.0 - max_distance) / (2.0 - max_distance)
    out_rows, out_cols, out_vals = [], [], []
    bounds = _row_chunks(pairs_per_row, max(chunk_elements, num), max(1, chunk_elements // num))
    for start, stop in zip(bounds[:-1], bounds[1:]):
        e0 = int(entry_ptr[start - 1]) if start > 0 else 0
        e1 = int(entry_ptr[stop - 1])
        counts = pairs_per_entry[e0:e1]
        total = int(counts.sum())
        # entry (i, c, v) of the chunk -> every (j, V[j, c]) of column c: positions in the inverted index
        first = col_ptr[cols_v[e0:e1]] - (torch.cumsum(counts, 0) - counts)
        idx = torch.arange(total, device=device) + torch.repeat_interleave(first, counts, output_size=total)
        contrib = torch.minimum(torch.repeat_interleave(vals_v[e0:e1], counts, output_size=total),
                                inv_vals.index_select(0, idx))
        flat = torch.repeat_interleave((rows_v[e0:e1] - start) * num, counts, output_size=total)
        flat += inv_rows.index_select(0, idx)
        del idx
        shared = torch.zeros((stop - start) * num, dtype=dtype, device=device).index_add_(0, flat, contrib)
        del flat, contrib
        where = (shared > s_min - 1e-4).nonzero().squeeze(1) if s_min > 0 else shared.nonzero().squeeze(1)
        s = shared.index_select(0, where)
        dist = (1.0 - s / (2.0 - s)).clamp_min_(0.0)
        if max_distance is not None:  # s > s_min is the same test up to rounding: apply the exact one
            keep = dist <= max_distance
            where, dist = where[keep], dist[keep]
        out_rows.append(torch.div(where, num, rounding_mode="floor") + start)
        out_cols.append(where % num)
        out_vals.append(dist)
        del shared
    rows = torch.cat(out_rows).cpu().numpy()
    cols = torch.cat(out_cols).cpu().numpy()
    vals = torch.cat(out_vals).cpu().numpy()
    index_dtype = np.int32 if num < 2**31 else np.int64
    indptr = np.zeros(num + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=num), out=indptr[1:])
    # entries come row by row, columns ascending inside a row: CSR as it is
    return sp.csr_matrix((vals, cols.astype(index_dtype), indptr.astype(index_dtype)), shape=(num, num))


def eps_from_rho(distance: sp.spmatrix, rho: float = 1.6e-3) -> float:
    """DBSCAN's ``eps`` from the distances alone: the mean of the smallest ``rho`` share of the
    ``N (N - 1) / 2`` distinct pairs' distances (Song et al.'s rule, used by MMT with
    ``rho = 1.6e-3``; no label is read).

    Args:
        distance: ``(N, N)`` symmetric sparse distances as :func:`jaccard_distance` returns them
            (pairs not stored are at distance 1).
        rho: share of the pairs, in (0, 1). On DukeMTMC-reID the pairs of the same identity are
            about 1.4e-3 of all pairs; on the embedded benchmark 1.8e-3.
    """
    if not 0 < rho < 1:
        raise ConfigError(f"eps_rho={rho}; expected a share of the image pairs in (0, 1) (MMT: 0.0016)")
    upper = sp.triu(distance, k=1).tocoo()
    num = distance.shape[0]
    count = max(1, int(round(rho * num * (num - 1) / 2)))
    stored = np.sort(upper.data)[:count]
    return float((stored.sum() + (count - stored.size)) / count)  # pairs not stored count at distance 1


def dbscan_labels(distance, eps: float = 0.6, min_samples: int = 4) -> np.ndarray:
    """DBSCAN (scikit-learn, ``metric="precomputed"``) on a distance matrix.

    Args:
        distance: ``(N, N)`` distances, a dense array or a scipy sparse matrix whose missing
            entries are pairs too far apart to be neighbours (what :func:`jaccard_distance` gives).
        eps: neighbourhood radius (SpCL: 0.6 on the Jaccard distance).
        min_samples: images within ``eps`` (the image itself included) that make a core image.

    Returns:
        ``(N,)`` int64 cluster ids ``0..C-1``, -1 for outliers.
    """
    from sklearn.cluster import DBSCAN

    if not eps > 0:
        raise ConfigError(f"eps={eps}; expected a neighbourhood radius > 0")
    min_samples = _positive_int(min_samples, "min_samples")
    shape = distance.shape
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ConfigError(f"DBSCAN needs a square (N, N) distance matrix, got shape {tuple(shape)}")
    # n_jobs=1: the neighbourhoods of all images at once with n_jobs=-1 run out of memory at scale
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed", n_jobs=1).fit_predict(distance)
    return labels.astype(np.int64)


def assign_outliers(labels: np.ndarray, mode: str = "drop") -> tuple[np.ndarray, int]:
    """Pseudo-identities from DBSCAN labels.

    Args:
        labels: ``(N,)`` cluster ids, -1 for outliers.
        mode: ``"drop"``: outliers keep -1 and do not train (cluster contrast); ``"instances"``:
            each outlier becomes a pseudo-identity of its own, numbered after the clusters (SpCL's
            un-clustered instances).

    Returns:
        ``(labels, num_classes)``: ``(N,)`` int64 labels (``-1`` only in ``"drop"`` mode) and the
        number of pseudo-identities.
    """
    if mode not in OUTLIER_MODES:
        raise ConfigError(f"outliers={mode!r}; expected one of {', '.join(OUTLIER_MODES)}")
    labels = np.asarray(labels, dtype=np.int64).copy()
    num_clusters = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    if mode == "drop":
        return labels, num_clusters
    outliers = np.flatnonzero(labels < 0)
    labels[outliers] = num_clusters + np.arange(len(outliers))
    return labels, num_clusters + len(outliers)


def cluster_centroids(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The L2-normalised mean of the L2-normalised features of each pseudo-identity.

    Args:
        features: ``(N, D)`` features.
        labels: ``(N,)`` labels in ``0..num_classes-1``, or -1 (ignored).

    Returns:
        ``(num_classes, D)`` float32 centroids (a class without images gets zeros).
    """
    feats = F.normalize(features.float(), dim=1)
    keep = labels >= 0
    sums = torch.zeros(num_classes, feats.shape[1], device=feats.device).index_add_(0, labels[keep], feats[keep])
    return F.normalize(sums, dim=1)


def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def label_agreement(pred: ArrayLike, true: ArrayLike) -> dict[str, float]:
    """How well pseudo-labels match true identities: the adjusted Rand index and the pairwise
    precision, recall and F-score (over pairs of images: a pair is predicted positive when both
    images share a pseudo-label, truly positive when they share an identity). Outliers (-1 in
    ``pred``) count as clusters of one image.

    Args:
        pred: ``(N,)`` pseudo-labels, -1 for outliers.
        true: ``(N,)`` true identities.

    Returns:
        ``{"ari", "precision", "recall", "fscore"}`` floats (precision is 1 when no pair is
        predicted, recall 1 when no pair is true).
    """
    from sklearn.metrics import adjusted_rand_score

    pred = np.asarray(pred, dtype=np.int64).copy()
    true = np.asarray(true, dtype=np.int64)
    if pred.shape != true.shape or pred.ndim != 1:
        raise ConfigError(f"pseudo-labels {pred.shape} and true identities {true.shape} must be two (N,) arrays")
    outliers = np.flatnonzero(pred < 0)
    pred[outliers] = (pred.max(initial=-1) + 1) + np.arange(len(outliers))
    _, pred_ids = np.unique(pred, return_inverse=True)
    _, true_ids = np.unique(true, return_inverse=True)
    joint = sp.coo_matrix((np.ones(len(pred)), (pred_ids, true_ids))).tocsr()
    both = _pairs(joint.data)
    predicted = _pairs(np.bincount(pred_ids))
    actual = _pairs(np.bincount(true_ids))
    precision = both / predicted if predicted else 1.0
    recall = both / actual if actual else 1.0
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"ari": float(adjusted_rand_score(true, pred)), "precision": precision, "recall": recall,
            "fscore": fscore}
