"""ReIDMetric: same numbers as the functions, duplicates dropped, identical on 1 and 2 DDP ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from ddp_helpers import gloo_group, spawn_two_ranks

from crgan_lightning.errors import ConfigError
from crgan_lightning.metrics import ReIDMetric, compute_distance, evaluate_rank, re_ranking

NUM_QUERY = 13
NUM_IMAGES = 61  # odd: a 2-rank DistributedSampler pads rank 1 with a repeat of sample 0
KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP", "cmc")


def make_eval_set(seed: int = 0):
    """Clustered features of 10 identities, queries first (indices 0..NUM_QUERY - 1)."""
    gen = torch.Generator().manual_seed(seed)
    gallery_pids = torch.randint(0, 10, (NUM_IMAGES - NUM_QUERY,), generator=gen)
    pids = torch.cat([torch.arange(NUM_QUERY) % 10, gallery_pids])
    camids = torch.randint(0, 3, (NUM_IMAGES,), generator=gen)
    centres = torch.randn(10, 16, generator=gen)
    features = centres[pids] + 0.9 * torch.randn(NUM_IMAGES, 16, generator=gen)
    return features, pids, camids


def feed(metric: ReIDMetric, order, batch_size: int = 7) -> None:
    features, pids, camids = make_eval_set()
    order = list(order)
    for start in range(0, len(order), batch_size):
        idx = torch.tensor(order[start:start + batch_size])
        metric.update(features[idx], pids[idx], camids[idx], idx)


def expected_scores(rerank: bool = False):
    features, pids, camids = make_eval_set()
    qf, gf = features[:NUM_QUERY], features[NUM_QUERY:]
    distmat = re_ranking(qf, gf) if rerank else compute_distance(qf, gf)
    return evaluate_rank(distmat, pids[:NUM_QUERY], pids[NUM_QUERY:], camids[:NUM_QUERY], camids[NUM_QUERY:],
                         return_minp=True)


@pytest.mark.parametrize("rerank", [False, True])
def test_metric_gives_the_numbers_of_evaluate_rank(rerank):
    metric = ReIDMetric(num_query=NUM_QUERY, rerank=rerank)
    feed(metric, range(NUM_IMAGES))
    scores = metric.compute()
    cmc, m_ap, m_inp = expected_scores(rerank)
    assert set(scores) == set(KEYS)
    assert scores["cmc"].shape == (50,)
    np.testing.assert_allclose(scores["cmc"].numpy(), cmc, atol=1e-7)
    assert scores["rank1"].item() == pytest.approx(cmc[0], abs=1e-7)
    assert scores["rank5"].item() == pytest.approx(cmc[4], abs=1e-7)
    assert scores["rank10"].item() == pytest.approx(cmc[9], abs=1e-7)
    assert scores["mAP"].item() == pytest.approx(m_ap, abs=1e-7)
    assert scores["mINP"].item() == pytest.approx(m_inp, abs=1e-7)
    assert 0.2 < m_ap < 1.0  # a non-trivial case


def test_duplicated_and_shuffled_samples_give_the_same_numbers():
    reference = ReIDMetric(num_query=NUM_QUERY)
    feed(reference, range(NUM_IMAGES))
    expected = reference.compute()
    order = list(np.random.default_rng(0).permutation(NUM_IMAGES)) + [0, 5, 20, 60, 20]
    metric = ReIDMetric(num_query=NUM_QUERY)
    feed(metric, order, batch_size=9)
    got = metric.compute()
    for key in KEYS:
        assert torch.equal(got[key], expected[key]), key


def test_ranked_lists_give_evaluation_set_indices_without_junk():
    metric = ReIDMetric(num_query=NUM_QUERY, ranked_queries=3, ranked_topk=4)
    feed(metric, list(range(NUM_IMAGES))[::-1] + [3, 30])
    scores = metric.compute()
    features, pids, camids = make_eval_set()
    distmat = compute_distance(features[:NUM_QUERY], features[NUM_QUERY:])
    assert scores["ranked_queries"].tolist() == [0, 6, 12]  # spread over the 13 queries
    assert scores["ranked_gallery"].shape == (3, 4)
    for q, row in zip(scores["ranked_queries"].tolist(), scores["ranked_gallery"].tolist()):
        order = np.argsort(distmat[q], kind="stable") + NUM_QUERY
        expected = [g for g in order.tolist() if not (pids[g] == pids[q] and camids[g] == camids[q])][:4]
        assert row == expected


def test_missing_samples_warn_and_rank_the_ones_present():
    metric = ReIDMetric(num_query=NUM_QUERY)
    feed(metric, [i for i in range(NUM_IMAGES) if i not in (0, 40)])
    with pytest.warns(UserWarning, match="12 of 13 queries"):
        scores = metric.compute()
    features, pids, camids = make_eval_set()
    q, g = list(range(1, NUM_QUERY)), [i for i in range(NUM_QUERY, NUM_IMAGES) if i != 40]
    distmat = compute_distance(features[q], features[g])
    cmc, m_ap = evaluate_rank(distmat, pids[q], pids[g], camids[q], camids[g])
    np.testing.assert_allclose(scores["cmc"].numpy(), cmc, atol=1e-7)
    assert scores["mAP"].item() == pytest.approx(m_ap, abs=1e-7)


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric ReIDMetric was called before")
def test_no_gallery_and_bad_arguments_raise_config_error():
    metric = ReIDMetric(num_query=NUM_QUERY)
    feed(metric, range(NUM_QUERY - 3))  # a sanity check sees the first query batches only
    with pytest.raises(ConfigError, match="gallery"):
        metric.compute()
    with pytest.raises(ConfigError, match="before any update"):
        ReIDMetric(num_query=NUM_QUERY).compute()
    with pytest.raises(ConfigError, match="max_rank"):
        ReIDMetric(num_query=3, max_rank=5)
    with pytest.raises(ConfigError, match="metric"):
        ReIDMetric(num_query=3, metric="l2")
    with pytest.raises(ConfigError, match="pids"):
        ReIDMetric(num_query=3).update(torch.zeros(2, 4), torch.zeros(3), torch.zeros(2), torch.arange(2))


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    """One DDP rank: update with this rank's DistributedSampler shard, compute, save the result."""
    with gloo_group(rank, world_size, port):
        sampler = DistributedSampler(range(NUM_IMAGES), num_replicas=world_size, rank=rank, shuffle=False)
        shard = list(sampler)
        metric = ReIDMetric(num_query=NUM_QUERY)
        feed(metric, shard, batch_size=5)
        scores = metric.compute()
        torch.save({"shard": shard, "scores": scores}, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_process_gloo_ddp_gives_the_same_numbers_as_one_process(tmp_path):
    single = ReIDMetric(num_query=NUM_QUERY)
    feed(single, range(NUM_IMAGES))
    expected = single.compute()

    spawn_two_ranks(_ddp_worker, tmp_path)

    shards = []
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        shards.append(result["shard"])
        for key in KEYS:
            assert torch.equal(result["scores"][key], expected[key]), (rank, key)
    assert shards[1][-1] == 0  # the padding repeat really happened
    assert len(shards[0]) + len(shards[1]) == NUM_IMAGES + 1
