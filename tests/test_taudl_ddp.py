"""The TAUDL tracklet memory under 2-process gloo DDP: both ranks hold the same memory, equal to
one process's memory fed with the two ranks' batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ddp_helpers import gloo_group, spawn_two_ranks

from crgan_lightning.losses import CrossCameraAssociationLoss

LAYOUT = [3, 2, 3]  # tracklets per camera: cameras 0, 1, 2 -> global ids 0-2, 3-4, 5-7
CAMERA_OF = [0, 0, 0, 1, 1, 2, 2, 2]
DIM = 5
STEPS = 4


def rank_batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank 0 sees tracklets 0-3 (5 images), rank 1 tracklets 4-7 (4 images): uneven batches, and
    each rank alone never sees half of the tracklets."""
    g = torch.Generator().manual_seed(100 * rank + step)
    ids = torch.tensor([0, 1, 1, 2, 3]) if rank == 0 else torch.tensor([4, 5, 6, 7])
    if step % 2:
        ids = ids.flip(0)
    features = torch.randn(len(ids), DIM, generator=g)
    return features, ids, torch.tensor([CAMERA_OF[i] for i in ids])


def run_steps(loss_fn: CrossCameraAssociationLoss, ranks) -> list[float]:
    losses = []
    for step in range(STEPS):
        batches = [rank_batch(r, step) for r in ranks]
        feats, ids, cams = (torch.cat([b[i] for b in batches]) for i in range(3))
        losses.append(loss_fn(feats, ids, cams).item())
    return losses


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, world_size, port):
        loss_fn = CrossCameraAssociationLoss(LAYOUT, DIM, num_neighbours=1, temperature=0.5)
        losses = run_steps(loss_fn, [rank])
        torch.save({"memory": loss_fn.state_dict(), "losses": losses}, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_gloo_ranks_hold_the_same_memory_as_one_process_fed_both_batches(tmp_path):
    single = CrossCameraAssociationLoss(LAYOUT, DIM, num_neighbours=1, temperature=0.5)
    run_steps(single, [0, 1])
    expected = single.state_dict()
    assert expected["memory.filled"].all()

    spawn_two_ranks(_worker, tmp_path)

    results = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for rank, result in enumerate(results):
        memory = result["memory"]
        # every rank filled all 8 tracklets, although each saw only 4 of them itself
        assert memory["memory.filled"].tolist() == [True] * 8, rank
        for key in ("memory.features", "memory.filled", "memory.cameras"):
            assert torch.equal(memory[key], expected[key]), (rank, key)
    # the losses differ per rank (each rank's own images) but were computed against that same memory
    assert results[0]["losses"][0] == results[1]["losses"][0] == 0.0  # empty memory at the first step
    assert results[0]["losses"][1] > 0 and results[1]["losses"][1] > 0
