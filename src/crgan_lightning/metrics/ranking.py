"""The re-id ranking protocol: distances, CMC, mAP and mINP.

:func:`evaluate_rank` implements the standard Market-1501 evaluation protocol used by
torchreid, fast-reid and OpenUnReID, number for number:

* every query ranks the whole gallery by increasing distance (ties broken by gallery index,
  as a stable sort does);
* gallery images of the query's identity taken by the query's camera are removed from that
  query's list ("junk": the same person seen from the same viewpoint is too easy);
* a query whose list keeps no image of its identity is skipped;
* CMC at rank ``k`` is the fraction of queries with a correct match among the first ``k``
  images, AP is the mean precision at the position of each correct match, and INP is the
  number of correct matches divided by the position of the hardest (last) one.

It never sorts a full gallery row. Only the gallery images not farther than a query's hardest
correct match can come before one of its matches, so for each block of queries it either
sorts just those candidates (a useful model: a few hundred images out of tens of thousands),
or, when they are most of the gallery (a weak model), counts them in a per-query histogram
and sorts only the histogram bins that hold a correct match, so MSMT17 (11659 x 82161) is
evaluated in bounded memory. The numbers are exactly those of the plain per-query loop; its speed
against that loop is measured by ``benchmarks/bench_ranking.py`` (figures in the README).

:func:`compute_distance` turns query and gallery features into the distance matrix that
:func:`evaluate_rank` reads.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

from crgan_lightning.errors import ConfigError

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Number of distance-matrix elements handled at once. The working memory of one block is a
#: small multiple of this (a boolean mask and, in the worst case, a few index arrays), so it
#: stays in the hundreds of megabytes whatever the size of the matrix.
CHUNK_ELEMENTS = 1 << 23

#: A block switches from sorting its candidates to the histogram of ``_hits_by_histogram``
#: when more than this fraction of its distances lies before the hardest correct matches.
DENSE_FRACTION = 0.12

#: Bins of that histogram, per query.
HISTOGRAM_BINS = 4096

_NAN_MESSAGE = "distmat contains NaN distances; check the features (NaN or infinite values)"

DISTANCE_METRICS = ("euclidean", "cosine")


def _as_tensor(value: ArrayLike, name: str) -> torch.Tensor:
    """A torch view of a numpy array or tensor (no copy when possible, gradients dropped)."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ConfigError(f"{name} must be a numeric numpy array or torch tensor, got {type(value).__name__}")
    return torch.from_numpy(array)


def _label_vector(value: ArrayLike, name: str, length: int, axis_name: str) -> np.ndarray:
    """Validate a 1-D vector of integer labels (identities or cameras) of the expected length."""
    tensor = _as_tensor(value, name)
    if tensor.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D vector, got shape {tuple(tensor.shape)}")
    if tensor.shape[0] != length:
        raise ConfigError(
            f"{name} has {tensor.shape[0]} entries but distmat has {length} {axis_name} "
            f"(distmat is num_query x num_gallery)"
        )
    if tensor.is_floating_point() and not torch.equal(tensor, tensor.round()):
        raise ConfigError(f"{name} must hold integer labels, got non-integer values")
    return tensor.cpu().to(torch.int64).numpy()


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _numpy_block(dist: torch.Tensor, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` as a C-contiguous numpy array whose order is exactly that of the input.

    float32 and float64 are kept, half precision is widened to float32 and integer or boolean
    distances to float64 (exact: the conversions are monotone and, below 2**53, injective).
    """
    block = dist[start:stop]
    if block.dtype in (torch.float16, torch.bfloat16):
        block = block.float()
    elif not block.is_floating_point():
        block = block.double()
    return np.ascontiguousarray(block.cpu().numpy())


def _order_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys < 2**32 that sort like ``values`` (equal values get equal keys)."""
    if values.dtype == np.float32:
        bits = (values + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into 0.0
        negative = (bits >> np.uint32(31)).astype(bool)
        keys = np.where(negative, ~bits, bits | np.uint32(0x80000000))
        return keys.astype(np.uint64)
    _, ranks = np.unique(values, return_inverse=True)  # dense ranks: exact for any dtype
    return ranks.reshape(-1).astype(np.uint64)


def _column_bits(num_g: int) -> int:
    return max(1, (num_g - 1).bit_length())


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _sorted_by_distance(dist: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the elements ``flat`` (flat indices into ``dist``), sorted by
    (row, distance, column): one unique uint64 key per element, one sort."""
    num_g = dist.shape[1]
    col_bits = _column_bits(num_g)
    row, col = np.divmod(flat, num_g)
    keys = _order_keys(dist.reshape(-1)[flat]) << np.uint64(col_bits)
    keys |= row.astype(np.uint64) << np.uint64(32 + col_bits)
    keys |= col.astype(np.uint64)
    del row, col
    keys.sort()
    row_s = (keys >> np.uint64(32 + col_bits)).astype(np.intp)
    col_s = (keys & np.uint64((1 << col_bits) - 1)).astype(np.intp)
    return row_s, col_s


def _hits_by_candidates(
    dist: np.ndarray, cand: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray,
    g_pids: np.ndarray, g_camids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Row and 1-based filtered position of every correct match, from the candidate mask
    (images not farther than the row's hardest match): the candidates are sorted, the rest
    of the row is never looked at. Cost grows with the number of candidates."""
    flat = np.flatnonzero(cand)
    row_c, col_c = np.divmod(flat, dist.shape[1])
    if np.isnan(dist.reshape(-1)[flat]).any():
        raise ConfigError(_NAN_MESSAGE)
    junk = (g_pids[col_c] == q_pids[row_c]) & (g_camids[col_c] == q_camids[row_c])
    flat = flat[~junk]
    del row_c, col_c, junk
    row_s, col_s = _sorted_by_distance(dist, flat)
    del flat
    hit_idx = np.flatnonzero(g_pids[col_s] == q_pids[row_s])
    row_start = _segment_starts(np.bincount(row_s, minlength=dist.shape[0]))
    hit_row = row_s[hit_idx]
    return hit_row, hit_idx - row_start[hit_row] + 1


def _hits_by_histogram(
    dist: np.ndarray, lo: np.ndarray, scale: np.ndarray, row_m: np.ndarray, col_m: np.ndarray,
    row_j: np.ndarray, col_j: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray,
    g_pids: np.ndarray, g_camids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Row and 1-based filtered position of every correct match, for rows where most of the
    gallery comes before the hardest match (a weak model).

    Every row is cut into ``HISTOGRAM_BINS`` equal bins between its smallest distance ``lo``
    and its hardest match (``bin = floor((d - lo) * scale)``, a monotone function of ``d``,
    computed identically for every element), one histogram counts the images of each bin, and
    only the bins that hold a correct match are sorted, together with the junk images: the
    number of images before a match is the count of the lower bins plus its rank in its bin.

    Args:
        dist: ``(R, G)`` distances of the rows handled here (finite ``lo`` and ``scale``).
        lo, scale: ``(R,)`` row minimum and ``HISTOGRAM_BINS / (hardest - lo)``, in ``dist``'s dtype.
        row_m, col_m: the correct matches under other cameras; ``row_j, col_j``: the junk images.
    """
    num_rows, num_g = dist.shape
    num_bins = HISTOGRAM_BINS + 2  # bin HISTOGRAM_BINS + 1 collects everything farther

    def bin_of(values: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
        t = np.subtract(values, lo[rows])
        np.multiply(t, scale[rows], out=t)
        np.minimum(t, num_bins - 1, out=t)
        return t.astype(np.int32)

    bins = bin_of(dist, (slice(None), None))
    bins += (np.arange(num_rows, dtype=np.int32) * num_bins)[:, None]  # flat (row, bin) index
    before_bin = np.bincount(bins.reshape(-1), minlength=num_rows * num_bins)
    before_bin = np.cumsum(before_bin) - before_bin  # images in lower bins, + previous rows

    # Bins holding a correct match, and the junk images, are ranked exactly.
    match_bins = bin_of(dist[row_m, col_m], row_m) + row_m.astype(np.int32) * num_bins
    exact = np.zeros(num_rows * num_bins, dtype=bool)
    exact[match_bins] = True
    exact = exact[bins]
    exact[row_j, col_j] = True
    row_s, col_s = _sorted_by_distance(dist, np.flatnonzero(exact))
    del exact
    flat_bin = bins[row_s, col_s]
    del bins
    positive = g_pids[col_s] == q_pids[row_s]
    junk = positive & (g_camids[col_s] == q_camids[row_s])
    junk_before = np.cumsum(junk) - junk
    hit_idx = np.flatnonzero(positive & ~junk)
    hit_row = row_s[hit_idx]
    row_first = np.searchsorted(row_s, hit_row, side="left")
    bin_first = np.searchsorted(flat_bin, flat_bin[hit_idx], side="left")
    images_before = (before_bin[flat_bin[hit_idx]] - before_bin[hit_row * num_bins]) + (hit_idx - bin_first)
    return hit_row, images_before - (junk_before[hit_idx] - junk_before[row_first]) + 1


def _rank_block(
    dist: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
    g_by_pid: np.ndarray,
    seg_start: np.ndarray,
    seg_len: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate one block of queries.

    Args:
        dist: ``(B, G)`` C-contiguous distances of the block's queries to the whole gallery.
        q_pids, q_camids: ``(B,)`` labels of the block's queries.
        g_pids, g_camids: ``(G,)`` gallery labels.
        g_by_pid: ``(G,)`` gallery indices sorted by identity.
        seg_start, seg_len: ``(B,)`` where each query's identity lies in ``g_by_pid``.

    Returns:
        ``valid`` (bool), ``first`` (1-based position of the first correct match), ``ap`` and
        ``inp`` (float64), each ``(B,)``; entries of queries without a valid match are 0.
    """
    num_rows = dist.shape[0]
    first = np.zeros(num_rows, dtype=np.int64)
    ap = np.zeros(num_rows, dtype=np.float64)
    inp = np.zeros(num_rows, dtype=np.float64)

    # Images of the query's identity, read from the identity index without touching the block.
    row_p = np.repeat(np.arange(num_rows), seg_len)
    col_p = g_by_pid[np.repeat(seg_start - _segment_starts(seg_len), seg_len) + np.arange(row_p.size)]
    other_cam = g_camids[col_p] != q_camids[row_p]
    row_m, col_m = row_p[other_cam], col_p[other_cam]  # correct matches
    row_j, col_j = row_p[~other_cam], col_p[~other_cam]  # junk
    num_matches = np.bincount(row_m, minlength=num_rows)
    valid = num_matches > 0
    if not valid.any():
        return valid, first, ap, inp
    match_dist = dist[row_m, col_m]
    if np.isnan(match_dist).any():
        raise ConfigError(_NAN_MESSAGE)

    # Distance of each query's hardest correct match (-inf for queries without one).
    hardest = np.full(num_rows, -np.inf, dtype=dist.dtype)
    hardest[valid] = np.maximum.reduceat(match_dist, _segment_starts(num_matches)[valid])

    # Candidates: images not farther than the hardest match, the only ones that can come
    # before a match. NaN distances pass this test on purpose, so that they are caught.
    cand = np.greater(dist, hardest[:, None])
    np.logical_not(cand, out=cand)
    dense = np.zeros(num_rows, dtype=bool)
    if np.count_nonzero(cand) > DENSE_FRACTION * cand.size:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            lo = dist.min(axis=1)  # NaN when the row holds one: such rows stay with the candidates
            scale = (HISTOGRAM_BINS / (hardest.astype(np.float64) - lo)).astype(dist.dtype)
        dense = valid & np.isfinite(lo) & (hardest > lo) & np.isfinite(scale) & (scale > 0)
    hit_rows, hit_positions = [], []
    if dense.any():
        cand[dense] = False
        local = np.cumsum(dense) - 1  # row number among the dense rows
        in_m, in_j = dense[row_m], dense[row_j]
        rows = np.flatnonzero(dense)
        hit_row, hit_pos = _hits_by_histogram(
            dist[dense], lo[dense], scale[dense], local[row_m[in_m]], col_m[in_m], local[row_j[in_j]],
            col_j[in_j], q_pids[dense], q_camids[dense], g_pids, g_camids,
        )
        hit_rows.append(rows[hit_row])
        hit_positions.append(hit_pos)
    if not dense.all():
        cand[~valid] &= np.isnan(dist[~valid])  # rows without a match: only look for NaN there
        hit_row, hit_pos = _hits_by_candidates(dist, cand, q_pids, q_camids, g_pids, g_camids)
        hit_rows.append(hit_row)
        hit_positions.append(hit_pos)
    del cand
    hit_row, hit_pos = np.concatenate(hit_rows), np.concatenate(hit_positions)
    order = np.lexsort((hit_pos, hit_row))
    hit_row, hit_pos = hit_row[order], hit_pos[order].astype(np.float64)

    if not np.array_equal(np.bincount(hit_row, minlength=num_rows), num_matches):  # pragma: no cover
        raise RuntimeError("evaluate_rank: correct matches lost while ranking")
    hit_start = _segment_starts(num_matches)
    hit_rank = np.arange(1, hit_row.size + 1) - hit_start[hit_row]
    m = num_matches[valid].astype(np.float64)
    starts = hit_start[valid]
    ap[valid] = np.add.reduceat(hit_rank / hit_pos, starts) / m
    first[valid] = hit_pos[starts]
    inp[valid] = m / hit_pos[starts + num_matches[valid] - 1]
    return valid, first, ap, inp


def evaluate_rank(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    return_minp: bool = False,
    *,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, float] | tuple[np.ndarray, float, float]:
    """CMC, mAP (and mINP) of a query x gallery distance matrix, Market-1501 protocol.

    ``distmat`` holds DISTANCES: smaller means more similar. For a similarity matrix pass its
    negation. For each query the gallery is ranked by increasing distance, ties broken by
    gallery index (the order of ``np.argsort(row, kind="stable")``); gallery images with the
    query's identity AND the query's camera are removed from that query's list; queries left
    without any correct match are skipped. Gallery images of other identities, including
    distractors (for example pid 0 in Market-1501), stay in every list.

    Args:
        distmat: ``(num_query, num_gallery)`` numpy array or torch tensor on any device (the
            work is done on the CPU, block by block). float32 is the fastest; float64 is exact
            too; half precision is read as float32 and integers as float64. NaN is rejected.
        q_pids, q_camids: ``(num_query,)`` integer identities and cameras of the queries.
        g_pids, g_camids: ``(num_gallery,)`` integer identities and cameras of the gallery.
        max_rank: length of the returned CMC curve. When a query's list (the gallery minus its
            junk images) is shorter, the curve is padded with its last value, which is 1:
            every counted query has found its match by the end of its list.
        return_minp: also return the mean inverse negative penalty.
        chunk_size: queries evaluated together; by default as many as fit in
            :data:`CHUNK_ELEMENTS` distances. The results do not depend on it.

    Returns:
        ``(cmc, mAP)`` or ``(cmc, mAP, mINP)``: ``cmc`` a float64 numpy array of length
        ``max_rank`` (``cmc[k]`` is the fraction of valid queries with a correct match within
        the first ``k + 1`` images), ``mAP`` and ``mINP`` Python floats in [0, 1], all
        averaged over the valid queries.

    Raises:
        ConfigError: on mismatched shapes, NaN distances, a bad ``max_rank``, or when no query
            has a correct match in the gallery under another camera.
    """
    dist = _as_tensor(distmat, "distmat")
    if dist.ndim != 2:
        raise ConfigError(
            f"distmat must be a 2-D num_query x num_gallery matrix, got shape {tuple(dist.shape)}"
        )
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise ConfigError(
            f"distmat is empty (shape {tuple(dist.shape)}): need at least one query and one gallery image"
        )
    if num_g >= 1 << 31:
        raise ConfigError(f"a gallery of {num_g} images is more than evaluate_rank handles (2**31 - 1)")
    max_rank = _check_positive_int(max_rank, "max_rank")
    q_pid = _label_vector(q_pids, "q_pids", num_q, "rows (queries)")
    g_pid = _label_vector(g_pids, "g_pids", num_g, "columns (gallery images)")
    q_cam = _label_vector(q_camids, "q_camids", num_q, "rows (queries)")
    g_cam = _label_vector(g_camids, "g_camids", num_g, "columns (gallery images)")
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // num_g)
    # a block's sort keys pack (row, distance, column) in 64 bits: rows get 32 - column bits
    chunk_size = min(_check_positive_int(chunk_size, "chunk_size"), 1 << (32 - _column_bits(num_g)))

    # Where each query's identity sits in the gallery sorted by identity.
    g_by_pid = np.argsort(g_pid, kind="stable")
    g_pid_sorted = g_pid[g_by_pid]
    seg_start = np.searchsorted(g_pid_sorted, q_pid, side="left")
    seg_len = np.searchsorted(g_pid_sorted, q_pid, side="right") - seg_start

    valid = np.zeros(num_q, dtype=bool)
    first = np.zeros(num_q, dtype=np.int64)
    ap = np.zeros(num_q, dtype=np.float64)
    inp = np.zeros(num_q, dtype=np.float64)
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        rows = slice(start, stop)
        valid[rows], first[rows], ap[rows], inp[rows] = _rank_block(
            _numpy_block(dist, start, stop), q_pid[rows], q_cam[rows], g_pid, g_cam,
            g_by_pid, seg_start[rows], seg_len[rows],
        )

    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ConfigError(
            "no query has a correct match in the gallery: every query's identity is missing from the "
            "gallery or only seen by the query's own camera (check q_pids/g_pids and q_camids/g_camids)"
        )
    hits = np.bincount(np.minimum(first[valid], max_rank + 1) - 1, minlength=max_rank + 1)[:max_rank]
    cmc = np.cumsum(hits).astype(np.float64) / num_valid
    m_ap = float(np.mean(ap[valid]))
    if return_minp:
        return cmc, m_ap, float(np.mean(inp[valid]))
    return cmc, m_ap


def compute_distance(
    qf: ArrayLike,
    gf: ArrayLike,
    metric: str = "euclidean",
    *,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Query x gallery distance matrix of feature vectors, as :func:`evaluate_rank` reads it.

    Args:
        qf: ``(num_query, dim)`` query features (numpy or torch, any device; the products are
            computed there, in float32, or float64 when a feature matrix is float64).
        gf: ``(num_gallery, dim)`` gallery features.
        metric: ``"euclidean"``: the Euclidean distance ``||q - g||`` (computed as
            ``sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0))``); ``"cosine"``: ``1 - cos(q, g)``, in
            [0, 2] (features are L2-normalised first).
        chunk_size: queries computed together; by default as many as fit in
            :data:`CHUNK_ELEMENTS` distances.

    Returns:
        ``(num_query, num_gallery)`` float32 numpy array of distances (smaller = more similar).
    """
    if metric not in DISTANCE_METRICS:
        raise ConfigError(f"metric must be one of {DISTANCE_METRICS}, got {metric!r}")
    q = _as_tensor(qf, "qf")
    g = _as_tensor(gf, "gf")
    for name, feats in (("qf", q), ("gf", g)):
        if feats.ndim != 2:
            raise ConfigError(
                f"{name} must be a 2-D (num_images, dim) feature matrix, got shape {tuple(feats.shape)}"
            )
    if q.shape[1] != g.shape[1]:
        raise ConfigError(f"qf has {q.shape[1]} feature dimensions but gf has {g.shape[1]}")
    dtype = torch.float64 if torch.float64 in (q.dtype, g.dtype) else torch.float32
    g = g.to(device=q.device, dtype=dtype)
    q = q.to(dtype=dtype)
    num_q, num_g = q.shape[0], g.shape[0]
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // max(num_g, 1))
    out = np.empty((num_q, num_g), dtype=np.float32)
    if metric == "cosine":
        g = F.normalize(g, dim=1)
    else:
        g_sq = (g * g).sum(1)
    for start in range(0, num_q, chunk_size):
        block = q[start:start + chunk_size]
        if metric == "cosine":
            dist = 1.0 - F.normalize(block, dim=1) @ g.T
        else:
            dist = (block * block).sum(1, keepdim=True) + g_sq[None, :] - 2.0 * (block @ g.T)
            dist = dist.clamp_min_(0.0).sqrt_()
        out[start:start + block.shape[0]] = dist.to(torch.float32).cpu().numpy()
    return out
