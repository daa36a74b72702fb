"""k-reciprocal re-ranking against a dense, line-by-line version of the authors' code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crgan_lightning.errors import ConfigError
from crgan_lightning.metrics import compute_distance, evaluate_rank, re_ranking


def dense_re_ranking(qf, gf, k1=20, k2=6, lambda_value=0.3):
    """The reference algorithm (Zhong et al.'s code) with dense N x N matrices, in float64."""
    feat = np.concatenate([qf, gf]).astype(np.float64)
    num, num_q = feat.shape[0], qf.shape[0]
    sq = (feat ** 2).sum(1)
    original = np.maximum(sq[:, None] + sq[None, :] - 2 * feat @ feat.T, 0)
    original = np.transpose(original / np.max(original, axis=0))
    initial_rank = np.argsort(original, axis=1, kind="stable")
    V = np.zeros_like(original)
    half = int(np.around(k1 / 2))
    for i in range(num):
        forward = initial_rank[i, :k1 + 1]
        backward = initial_rank[forward, :k1 + 1]
        k_recip = forward[np.where(backward == i)[0]]
        expansion = k_recip
        for cand in k_recip:
            c_forward = initial_rank[cand, :half + 1]
            c_backward = initial_rank[c_forward, :half + 1]
            c_recip = c_forward[np.where(c_backward == cand)[0]]
            if len(np.intersect1d(c_recip, k_recip)) > 2 / 3 * len(c_recip):
                expansion = np.append(expansion, c_recip)
        expansion = np.unique(expansion)
        weight = np.exp(-original[i, expansion])
        V[i, expansion] = weight / np.sum(weight)
    if k2 != 1:
        V = np.stack([V[initial_rank[i, :k2]].mean(axis=0) for i in range(num)])
    jaccard = np.zeros((num_q, num))
    for i in range(num_q):
        shared = np.minimum(V[i][None, :], V).sum(1)
        jaccard[i] = 1 - shared / (2 - shared)
    final = jaccard * (1 - lambda_value) + original[:num_q] * lambda_value
    return final[:, num_q:]


@pytest.mark.parametrize(
    "num_q, num_g, dim, k1, k2, lambda_value, chunk_elements",
    [
        (12, 40, 8, 20, 6, 0.3, 1 << 20),
        (12, 40, 8, 20, 6, 0.3, 50),  # tiny blocks: every step runs in many chunks
        (7, 30, 4, 5, 1, 0.0, 100),   # round(5 / 2) = 2 (banker's rounding, as np.around)
        (20, 25, 16, 7, 3, 1.0, 1000),
        (5, 9, 3, 20, 6, 0.5, 1 << 20),  # k1 + 1 larger than the 14 images
    ],
)
def test_re_ranking_matches_dense_reference(num_q, num_g, dim, k1, k2, lambda_value, chunk_elements):
    rng = np.random.default_rng(num_q * 100 + k1)
    centres = rng.normal(size=(6, dim))
    qf = centres[rng.integers(0, 6, num_q)] + 0.7 * rng.normal(size=(num_q, dim))
    gf = centres[rng.integers(0, 6, num_g)] + 0.7 * rng.normal(size=(num_g, dim))
    expected = dense_re_ranking(qf, gf, k1, k2, lambda_value)
    got = re_ranking(qf, gf, k1=k1, k2=k2, lambda_value=lambda_value, chunk_elements=chunk_elements)
    assert got.shape == (num_q, num_g) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_re_ranking_float32_and_cosine():
    rng = np.random.default_rng(1)
    qf = rng.normal(size=(10, 12))
    gf = rng.normal(size=(30, 12))
    got = re_ranking(torch.from_numpy(qf).float(), torch.from_numpy(gf).float(), k1=6, k2=2)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, dense_re_ranking(qf, gf, 6, 2), rtol=0, atol=1e-5)
    # cosine = squared Euclidean distance of L2-normalised features
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    np.testing.assert_allclose(re_ranking(qf, gf, k1=6, k2=2, metric="cosine"),
                               dense_re_ranking(qn, gn, 6, 2), rtol=0, atol=1e-10)


def test_lambda_one_gives_the_normalised_original_distance():
    rng = np.random.default_rng(2)
    qf, gf = rng.normal(size=(4, 5)), rng.normal(size=(9, 5))
    feat = np.concatenate([qf, gf])
    sq_dist = ((feat[:, None] - feat[None]) ** 2).sum(-1)
    expected = (sq_dist / sq_dist.max(1, keepdims=True))[:4, 4:]
    np.testing.assert_allclose(re_ranking(qf, gf, k1=3, k2=1, lambda_value=1.0), expected, atol=1e-12)


def test_re_ranking_improves_map_on_clustered_identities():
    rng = np.random.default_rng(0)
    num_ids, dim = 40, 32
    centres = rng.normal(size=(num_ids, dim))

    def images(per_id):
        pids = np.repeat(np.arange(num_ids), per_id)
        return centres[pids] + 1.0 * rng.normal(size=(len(pids), dim)), pids

    qf, q_pids = images(2)
    gf, g_pids = images(8)
    q_cams = np.zeros(len(q_pids), dtype=int)
    g_cams = np.ones(len(g_pids), dtype=int)
    _, map_plain = evaluate_rank(compute_distance(qf, gf), q_pids, g_pids, q_cams, g_cams)
    _, map_rerank = evaluate_rank(re_ranking(qf, gf), q_pids, g_pids, q_cams, g_cams)
    assert 0.6 < map_plain < 0.8  # 0.719 with this seed
    assert map_rerank > map_plain + 0.1  # 0.882


def test_bad_arguments_raise_config_error():
    qf, gf = np.zeros((2, 3)), np.ones((4, 3))
    with pytest.raises(ConfigError, match="k1"):
        re_ranking(qf, gf, k1=0)
    with pytest.raises(ConfigError, match="lambda_value"):
        re_ranking(qf, gf, lambda_value=1.5)
    with pytest.raises(ConfigError, match="feature dimensions"):
        re_ranking(qf, gf[:, :2])
    with pytest.raises(ConfigError, match="gf"):
        re_ranking(qf, np.zeros((0, 3)))
    with pytest.raises(ConfigError, match="metric"):
        re_ranking(qf, gf, metric="l1")
