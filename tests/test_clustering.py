"""The clustering step: the sparse Jaccard distance against a dense reference written the way
SpCL's compute_jaccard_distance is, DBSCAN labels on hand-made distances, outlier handling,
centroids and the agreement scores of pseudo-labels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from crgan_lightning.clustering import (
    assign_outliers, cluster_centroids, dbscan_labels, eps_from_rho, jaccard_distance, label_agreement,
    nearest_neighbours,
)
from crgan_lightning.errors import ConfigError


def dense_jaccard(features: np.ndarray, k1: int = 30, k2: int = 6) -> np.ndarray:
    """SpCL's compute_jaccard_distance as dense numpy over the kNN lists (float64): the k1 nearest
    images (itself included) by squared distance of the normalised features, the k-reciprocal sets
    and their expansion, V by a softmax of -d over each set, the mean of V over the k2 nearest,
    and 1 - s / (2 - s) for every pair."""
    feat = features.astype(np.float64)
    feat = feat / np.linalg.norm(feat, axis=1, keepdims=True)
    num = len(feat)
    dist = np.maximum(2 - 2 * feat @ feat.T, 0)
    initial_rank = np.argsort(dist, axis=1, kind="stable")[:, :k1]  # faiss' search of k1 neighbours

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = initial_rank[i, :k + 1]
        backward = initial_rank[forward, :k + 1]
        return forward[np.where(backward == i)[0]]

    nn_k1 = [reciprocal(i, k1) for i in range(num)]
    nn_half = [reciprocal(i, int(np.around(k1 / 2))) for i in range(num)]
    V = np.zeros((num, num))
    for i in range(num):
        expansion = nn_k1[i]
        for cand in nn_k1[i]:
            cand_set = nn_half[cand]
            if len(np.intersect1d(cand_set, nn_k1[i])) > 2 / 3 * len(cand_set):
                expansion = np.append(expansion, cand_set)
        expansion = np.unique(expansion)
        weight = np.exp(-dist[i, expansion])
        V[i, expansion] = weight / weight.sum()
    if k2 != 1:
        V = np.stack([V[initial_rank[i, :k2]].mean(axis=0) for i in range(num)])
    inv_index = [np.where(V[:, c] != 0)[0] for c in range(num)]
    jaccard = np.zeros((num, num))
    for i in range(num):
        temp_min = np.zeros(num)
        for c in np.where(V[i] != 0)[0]:
            temp_min[inv_index[c]] += np.minimum(V[i, c], V[inv_index[c], c])
        jaccard[i] = 1 - temp_min / (2 - temp_min)
    return np.maximum(jaccard, 0)


def clustered_features(num_ids: int, per_id: int, dim: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    feats = np.repeat(centres, per_id, axis=0) + noise * rng.normal(size=(num_ids * per_id, dim))
    return feats[rng.permutation(len(feats))]


def as_dense(distance: sp.csr_matrix) -> np.ndarray:
    """A sparse Jaccard distance with its missing pairs at distance 1."""
    dense = np.ones(distance.shape)
    coo = distance.tocoo()
    dense[coo.row, coo.col] = coo.data
    return dense


@pytest.mark.parametrize("num_ids,per_id,dim,k1,k2,chunk", [
    (8, 6, 16, 30, 6, 1 << 23),
    (10, 5, 8, 10, 3, 200),      # small blocks: many chunks everywhere
    (6, 7, 32, 6, 1, 1 << 23),   # no local query expansion
    (3, 4, 4, 30, 6, 1 << 23),   # fewer images than k1
])
def test_jaccard_distance_matches_dense_spcl_reference(num_ids, per_id, dim, k1, k2, chunk):
    feats = clustered_features(num_ids, per_id, dim, noise=0.6)
    expected = dense_jaccard(feats, k1, k2)
    got = jaccard_distance(torch.from_numpy(feats), k1, k2, chunk_elements=chunk)
    assert got.shape == expected.shape
    np.testing.assert_allclose(as_dense(got), expected, rtol=0, atol=1e-12)
    # every pair at distance < 1 is stored (some at distance 0: identical encodings)
    coo = got.tocoo()
    assert set(zip(coo.row.tolist(), coo.col.tolist())) >= set(zip(*np.nonzero(expected < 1 - 1e-12)))


def test_jaccard_distance_float32_agrees_with_the_reference_to_float_rounding():
    feats = clustered_features(12, 5, 64, noise=0.5, seed=3).astype(np.float32)
    got = jaccard_distance(feats, k1=20, k2=6)
    assert got.dtype == np.float32
    np.testing.assert_allclose(as_dense(got), dense_jaccard(feats, 20, 6), rtol=0, atol=2e-6)


def test_jaccard_distance_max_distance_keeps_only_close_pairs():
    feats = clustered_features(8, 6, 16, noise=0.6, seed=1)
    full = as_dense(jaccard_distance(feats, 20, 6))
    cut = jaccard_distance(feats, 20, 6, max_distance=0.6)
    assert cut.data.max() <= 0.6
    assert cut.nnz == int((full <= 0.6).sum())
    np.testing.assert_allclose(cut.toarray()[full <= 0.6], full[full <= 0.6])


def test_jaccard_distance_is_zero_on_the_diagonal_and_small_within_identities():
    rng = np.random.default_rng(2)
    truth = np.repeat(np.arange(6), 8)
    feats = rng.normal(size=(6, 32))[truth] + 0.3 * rng.normal(size=(48, 32))
    dense = as_dense(jaccard_distance(feats, 10, 4))
    np.testing.assert_allclose(np.diag(dense), 0.0, atol=1e-6)
    same = truth[:, None] == truth[None, :]
    assert dense[same].max() < 0.5 < dense[~same].min()


@pytest.mark.parametrize("num,dim,k,chunk", [
    (50, 7, 5, 60), (300, 16, 31, 5000), (1000, 32, 30, 1 << 23),
    (40, 3, 40, 100), (7, 3, 30, 10)])
def test_nearest_neighbours_are_exact_in_blocks_with_ties_in_stable_order(num, dim, k, chunk):
    feats = torch.randn(num, dim, generator=torch.Generator().manual_seed(num))
    feats[5] = feats[3]  # a duplicate: rows near it see two equal distances
    dist = (feats[:, None] - feats[None]).pow(2).sum(-1)
    expected = torch.argsort(dist, dim=1, stable=True)[:, :min(k, num)]
    assert torch.equal(nearest_neighbours(feats, k, chunk_elements=chunk), expected)


def test_dbscan_labels_on_a_hand_made_case():
    # points on a line: two groups of 4 within 0.1 of each other, one far point
    points = np.array([0.0, 0.05, 0.1, 0.15, 5.0, 5.05, 5.1, 5.12, 10.0])
    dense = np.abs(points[:, None] - points[None, :])
    labels = dbscan_labels(dense, eps=0.2, min_samples=3)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, -1]
    # the same from a sparse matrix holding only the pairs within eps (and the diagonal)
    sparse = sp.csr_matrix(np.where(dense <= 0.2, dense, 0.0))
    sparse.setdiag(0.0)
    assert dbscan_labels(sparse, eps=0.2, min_samples=3).tolist() == labels.tolist()
    # a larger min_samples turns the groups into outliers
    assert dbscan_labels(dense, eps=0.2, min_samples=5).tolist() == [-1] * 9


def test_dbscan_on_the_jaccard_distance_finds_well_separated_identities():
    rng = np.random.default_rng(0)
    num_ids, per_id = 10, 8
    centres = rng.normal(size=(num_ids, 64))
    truth = np.repeat(np.arange(num_ids), per_id)
    feats = centres[truth] + 0.2 * rng.normal(size=(len(truth), 64))
    labels = dbscan_labels(jaccard_distance(feats, 20, 6, max_distance=0.6), eps=0.6, min_samples=4)
    assert label_agreement(labels, truth)["ari"] == pytest.approx(1.0)


def test_dbscan_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="eps=0"):
        dbscan_labels(np.zeros((3, 3)), eps=0)
    with pytest.raises(ConfigError, match="square"):
        dbscan_labels(np.zeros((3, 2)))


def test_assign_outliers_drops_or_numbers_them_after_the_clusters():
    labels = np.array([1, -1, 0, 1, -1, 0])
    dropped, n = assign_outliers(labels, "drop")
    assert dropped.tolist() == [1, -1, 0, 1, -1, 0] and n == 2
    kept, n = assign_outliers(labels, "instances")
    assert kept.tolist() == [1, 2, 0, 1, 3, 0] and n == 4
    all_out, n = assign_outliers(np.array([-1, -1]), "instances")
    assert all_out.tolist() == [0, 1] and n == 2
    with pytest.raises(ConfigError, match="outliers='keep'"):
        assign_outliers(labels, "keep")


def test_cluster_centroids_are_normalised_means_of_normalised_features():
    feats = torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, -1.0], [5.0, 5.0]])
    labels = torch.tensor([0, 0, 1, -1])
    cents = cluster_centroids(feats, labels, 2)
    s = float(1 / np.sqrt(2))
    assert torch.allclose(cents, torch.tensor([[s, s], [0.0, -1.0]]))


def test_label_agreement_by_hand():
    true = [0, 0, 0, 1, 1, 2]
    perfect = label_agreement([5, 5, 5, 7, 7, 9], true)
    assert perfect == {"ari": pytest.approx(1.0), "precision": 1.0, "recall": 1.0, "fscore": 1.0}
    # predicted pairs (0,1) (3,4) (3,5) (4,5): 2 of 4 correct; true pairs (0,1) (0,2) (1,2) (3,4): 2 of 4 found
    scores = label_agreement([0, 0, -1, 1, 1, 1], true)
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["fscore"] == pytest.approx(0.5)
    # image 2 joins cluster 0: 6 predicted pairs, all 4 true pairs among them
    scores = label_agreement([0, 0, 0, 1, 1, 1], true)
    assert (scores["precision"], scores["recall"]) == (pytest.approx(4 / 6), pytest.approx(1.0))
    # every image an outlier: no predicted pair
    assert label_agreement([-1] * 6, true)["recall"] == 0.0


def test_eps_from_rho_is_the_mean_of_the_smallest_share_of_the_pairs():
    # 5 images: 10 distinct pairs; stored (upper and lower) 0.1, 0.2, 0.4, the other 7 pairs at distance 1
    dense = np.ones((5, 5))
    np.fill_diagonal(dense, 0)
    for (i, j), d in {(0, 1): 0.1, (2, 3): 0.4, (1, 4): 0.2}.items():
        dense[i, j] = dense[j, i] = d
    distance = sp.csr_matrix(np.where(dense < 1, dense, 0) + np.eye(5) * 0)  # 1s not stored, as jaccard_distance
    assert eps_from_rho(distance, 0.2) == pytest.approx((0.1 + 0.2) / 2)  # 2 of the 10 pairs
    assert eps_from_rho(distance, 0.3) == pytest.approx((0.1 + 0.2 + 0.4) / 3)
    assert eps_from_rho(distance, 0.5) == pytest.approx((0.1 + 0.2 + 0.4 + 1 + 1) / 5)  # unstored pairs count as 1
    assert eps_from_rho(distance, 0.01) == pytest.approx(0.1)  # at least one pair
    for bad in (0, 1, -0.1):
        with pytest.raises(ConfigError, match=f"eps_rho={bad}"):
            eps_from_rho(distance, bad)


def test_eps_from_rho_separates_identities_from_the_jaccard_distance():
    # 6 identities of 8 images: same-identity pairs are 6 * 28 / 1128 = 15 % of the pairs; with a share
    # a little above it the rule lands between the identities' distances, and DBSCAN at it finds them
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 32))
    feats = np.repeat(centres, 8, axis=0) + 0.05 * rng.normal(size=(48, 32))
    distance = jaccard_distance(feats, k1=10, k2=3)
    eps = eps_from_rho(distance, 0.2)
    dense = distance.toarray()
    dense[distance.toarray() == 0] = 1.0
    np.fill_diagonal(dense, 0.0)
    same = np.repeat(np.arange(6), 8)[:, None] == np.repeat(np.arange(6), 8)[None]
    assert 0 < eps < dense[~same].min()  # below every distance between two identities
    labels = dbscan_labels(distance, eps, 4)
    assert label_agreement(labels, np.repeat(np.arange(6), 8))["ari"] == pytest.approx(1.0)
