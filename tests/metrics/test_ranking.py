"""evaluate_rank against a plain per-query implementation of the Market-1501 protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crgan_lightning.errors import ConfigError
from crgan_lightning.metrics import compute_distance, evaluate_rank, ranking

# evaluate_rank ranks each block either by sorting the images before the hardest match or, when
# they are most of the gallery, with a per-query histogram; every strategy must give the same numbers.
STRATEGIES = {
    "auto": None,
    "candidates": (2.0, 4096),  # (DENSE_FRACTION, HISTOGRAM_BINS)
    "histogram": (-1.0, 4096),
    "histogram-2-bins": (-1.0, 2),  # most images share a bin with a match: the exact part does it all
}


@pytest.fixture(params=list(STRATEGIES))
def strategy(request, monkeypatch):
    if STRATEGIES[request.param] is not None:
        fraction, bins = STRATEGIES[request.param]
        monkeypatch.setattr(ranking, "DENSE_FRACTION", fraction)
        monkeypatch.setattr(ranking, "HISTOGRAM_BINS", bins)
    return request.param


def reference_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """The protocol written the obvious way: one query at a time (torchreid's loop)."""
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        remove = (g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i])
        raw_cmc = (g_pids[order] == q_pids[i])[~remove].astype(np.int64)
        if not raw_cmc.any():
            continue
        cmc = raw_cmc.cumsum()
        last = np.where(raw_cmc == 1)[0].max()
        all_inp.append(cmc[last] / (last + 1.0))
        cmc = (cmc > 0).astype(np.float64)
        if cmc.size < max_rank:
            cmc = np.concatenate([cmc, np.full(max_rank - cmc.size, cmc[-1])])
        all_cmc.append(cmc[:max_rank])
        precision = raw_cmc.cumsum() / (np.arange(raw_cmc.size) + 1.0)
        all_ap.append((precision * raw_cmc).sum() / raw_cmc.sum())
    if not all_cmc:
        raise ValueError("no valid query")
    return np.asarray(all_cmc).sum(0) / len(all_cmc), float(np.mean(all_ap)), float(np.mean(all_inp))


def random_case(rng, num_q, num_g, num_ids, num_cams, integer=False, distractors=0.0, good=0.0,
                dtype=np.float32):
    """Random labels and distances; ``good`` pulls correct matches closer (model-like)."""
    q_pids = rng.integers(1, num_ids + 1, num_q)
    g_pids = rng.integers(1, num_ids + 1, num_g)
    g_pids[rng.random(num_g) < distractors] = 0
    q_camids = rng.integers(0, num_cams, num_q)
    g_camids = rng.integers(0, num_cams, num_g)
    if integer:
        dist = rng.integers(0, 4, (num_q, num_g)).astype(dtype)
    else:
        dist = rng.random((num_q, num_g)).astype(dtype)
    dist = dist - good * (q_pids[:, None] == g_pids[None, :])
    return dist, q_pids, g_pids, q_camids, g_camids


def assert_same_as_reference(dist, q_pids, g_pids, q_camids, g_camids, max_rank, chunk_size=None):
    cmc, m_ap, m_inp = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank,
                                     return_minp=True, chunk_size=chunk_size)
    ref_cmc, ref_ap, ref_inp = reference_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank)
    assert cmc.shape == (max_rank,)
    np.testing.assert_allclose(cmc, ref_cmc, rtol=0, atol=1e-12)
    assert m_ap == pytest.approx(ref_ap, rel=0, abs=1e-12)
    assert m_inp == pytest.approx(ref_inp, rel=0, abs=1e-12)
    return cmc, m_ap, m_inp


@pytest.mark.parametrize("seed", range(40))
def test_evaluate_rank_matches_per_query_reference_on_random_cases(seed, strategy):
    rng = np.random.default_rng(seed)
    num_q = int(rng.integers(1, 40))
    num_g = int(rng.integers(1, 120))
    num_ids = int(rng.integers(1, 12))
    num_cams = int(rng.integers(1, 4))  # 1 camera: every same-identity image is junk
    case = random_case(rng, num_q, num_g, num_ids, num_cams, integer=bool(seed % 2),
                       distractors=0.2 * (seed % 3 == 0), good=0.5 * (seed % 4 == 1),
                       dtype=np.float64 if seed % 3 == 2 else np.float32)
    max_rank = int(rng.choice([1, 5, 50, num_g + 7]))
    chunk_size = int(rng.integers(1, num_q + 1)) if seed % 5 == 0 else None
    try:
        reference_rank(*case, max_rank)
    except ValueError:
        with pytest.raises(ConfigError, match="no query has a correct match"):
            evaluate_rank(*case, max_rank=max_rank)
        return
    assert_same_as_reference(*case, max_rank, chunk_size)


def test_evaluate_rank_matches_reference_with_heavy_ties_and_small_chunks(strategy):
    rng = np.random.default_rng(123)
    for _ in range(10):
        dist, q_pids, g_pids, q_camids, g_camids = random_case(rng, 25, 200, 6, 3, integer=True,
                                                               distractors=0.3)
        dist = np.floor(dist / 2)  # only values 0 and 1: enormous ties, broken by gallery index
        assert_same_as_reference(dist, q_pids, g_pids, q_camids, g_camids, 20, chunk_size=3)
        assert_same_as_reference(dist.astype(np.float64) - 0.5, q_pids, g_pids, q_camids, g_camids, 20)


def test_signed_zeros_and_infinities_are_ordered_like_numpy(strategy):
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        dist, q_pids, g_pids, q_camids, g_camids = random_case(rng, 20, 60, 5, 3, dtype=dtype)
        choice = rng.integers(0, 5, dist.shape)
        dist[choice == 0] = 0.0
        dist[choice == 1] = -0.0
        dist[choice == 2] = np.inf
        dist[(choice == 3) & (rng.random(dist.shape) < 0.3)] = -np.inf
        assert_same_as_reference(dist, q_pids, g_pids, q_camids, g_camids, 10)


def test_queries_without_a_match_are_skipped(strategy):
    g_pids = np.array([1, 1, 2, 3])
    g_camids = np.array([0, 1, 0, 0])
    dist = np.array([[0.1, 0.2, 0.3, 0.4],
                     [0.4, 0.3, 0.2, 0.1],   # pid 1, camera 1: gallery 0 is its only valid match
                     [0.1, 0.2, 0.3, 0.4]])  # pid 7: not in the gallery
    q_pids = np.array([2, 1, 7])
    q_camids = np.array([1, 1, 1])
    cmc, m_ap, m_inp = assert_same_as_reference(dist, q_pids, g_pids, q_camids, g_camids, 4)
    # query 0: gallery 2 at position 3 -> AP 1/3; query 1: list [3, 2, 0] -> AP 1/3; query 2 skipped
    np.testing.assert_allclose(cmc, [0.0, 0.0, 1.0, 1.0])
    assert m_ap == pytest.approx(1 / 3)
    assert m_inp == pytest.approx(1 / 3)


def test_hand_computed_single_query():
    # gallery sorted by distance: g2 (pid 5, cam 1), g0 (pid 9), g3 (pid 5, cam 0 = junk), g1 (pid 5, cam 2)
    dist = np.array([[0.2, 0.9, 0.1, 0.5]])
    g_pids = np.array([9, 5, 5, 5])
    g_camids = np.array([1, 2, 1, 0])
    cmc, m_ap, m_inp = evaluate_rank(dist, np.array([5]), g_pids, np.array([0]), g_camids,
                                     max_rank=5, return_minp=True)
    # filtered list: g2 (hit), g0, g1 (hit) -> precisions 1/1 and 2/3
    np.testing.assert_array_equal(cmc, [1.0, 1.0, 1.0, 1.0, 1.0])
    assert m_ap == pytest.approx((1.0 + 2.0 / 3.0) / 2.0, abs=1e-15)
    assert m_inp == pytest.approx(2.0 / 3.0, abs=1e-15)


def test_hand_computed_ties_follow_gallery_index():
    # All distances equal: the list is the gallery order, junk (g1) removed -> g0, g2, g3
    dist = np.zeros((1, 4))
    cmc, m_ap = evaluate_rank(dist, [3], [4, 3, 4, 3], [0], [1, 0, 1, 1], max_rank=3)
    np.testing.assert_array_equal(cmc, [0.0, 0.0, 1.0])
    assert m_ap == pytest.approx(1.0 / 3.0, abs=1e-15)


def test_cmc_is_padded_with_last_value_when_gallery_is_short():
    cmc, m_ap = evaluate_rank(np.array([[0.3, 0.1]]), [1], [1, 2], [0], [1, 1], max_rank=6)
    np.testing.assert_array_equal(cmc, [0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert m_ap == pytest.approx(0.5)


def test_no_valid_query_raises_config_error():
    dist = np.random.default_rng(0).random((2, 3))
    with pytest.raises(ConfigError, match="no query has a correct match"):
        evaluate_rank(dist, [1, 2], [1, 2, 3], [0, 0], [0, 0, 1])  # matches only under the same camera


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"q_pids": np.zeros(3, dtype=int)}, "q_pids"),
        ({"g_pids": np.zeros(4, dtype=int)}, "g_pids"),
        ({"q_camids": np.zeros(1, dtype=int)}, "q_camids"),
        ({"g_camids": np.zeros((5, 1), dtype=int)}, "g_camids"),
    ],
)
def test_mismatched_shapes_name_the_argument(kwargs, name):
    args = {
        "distmat": np.zeros((2, 5)),
        "q_pids": np.zeros(2, dtype=int),
        "g_pids": np.zeros(5, dtype=int),
        "q_camids": np.zeros(2, dtype=int),
        "g_camids": np.ones(5, dtype=int),
    }
    args.update(kwargs)
    with pytest.raises(ConfigError, match=name):
        evaluate_rank(**args)


def test_bad_inputs_raise_config_error(strategy):
    labels = ([1], [1, 1], [0], [1, 2])
    with pytest.raises(ConfigError, match="2-D"):
        evaluate_rank(np.zeros(2), *labels)
    with pytest.raises(ConfigError, match="NaN"):
        evaluate_rank(np.array([[np.nan, 0.0]]), *labels)  # NaN distance to the correct match
    with pytest.raises(ConfigError, match="NaN"):  # NaN distance to another identity, far in the list
        evaluate_rank(np.array([[0.0, 0.5, np.nan], [0.0, 0.1, 0.2]]), [1, 9], [1, 2, 3], [0, 0], [1, 1, 1])
    with pytest.raises(ConfigError, match="max_rank"):
        evaluate_rank(np.zeros((1, 2)), *labels, max_rank=0)


def test_torch_input_gives_the_same_numbers_as_numpy():
    rng = np.random.default_rng(7)
    dist, q_pids, g_pids, q_camids, g_camids = random_case(rng, 30, 90, 8, 3, good=0.3)
    expected = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank=10, return_minp=True)
    got = evaluate_rank(torch.from_numpy(dist).requires_grad_(), torch.from_numpy(q_pids),
                        torch.from_numpy(g_pids), torch.from_numpy(q_camids), torch.from_numpy(g_camids),
                        max_rank=10, return_minp=True)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1:] == expected[1:]
    # half precision and integer matrices are read exactly
    half = evaluate_rank(torch.from_numpy(dist).half(), q_pids, g_pids, q_camids, g_camids, max_rank=10)
    ref = reference_rank(dist.astype(np.float16), q_pids, g_pids, q_camids, g_camids, 10)
    np.testing.assert_allclose(half[0], ref[0], atol=1e-12)
    assert half[1] == pytest.approx(ref[1], abs=1e-12)
    as_int = np.round(dist * 10).astype(np.int64)
    assert_same_as_reference(as_int, q_pids, g_pids, q_camids, g_camids, 10)


def test_compute_distance_euclidean_and_cosine():
    rng = np.random.default_rng(3)
    qf = rng.normal(size=(7, 16))
    gf = rng.normal(size=(11, 16))
    euclid = compute_distance(torch.from_numpy(qf).float(), torch.from_numpy(gf).float(), chunk_size=3)
    assert euclid.dtype == np.float32 and euclid.shape == (7, 11)
    np.testing.assert_allclose(euclid, np.linalg.norm(qf[:, None] - gf[None], axis=-1), rtol=1e-4, atol=1e-4)
    cosine = compute_distance(qf, gf, metric="cosine")
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    np.testing.assert_allclose(cosine, 1 - qn @ gn.T, rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError, match="metric"):
        compute_distance(qf, gf, metric="manhattan")
    with pytest.raises(ConfigError, match="feature dimensions"):
        compute_distance(qf, gf[:, :3])
