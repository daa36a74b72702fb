"""GlobalBatchNorm: batch norm over the global batch of a DDP run, on the CPU (gloo)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ddp_helpers import gloo_group, spawn_two_ranks

from crgan_lightning.models.batchnorm import GlobalBatchNorm, GlobalBatchNormSync, convert_to_global_batchnorm


def network() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 6 * 5, 6), nn.BatchNorm1d(6))
    with torch.no_grad():  # affine parameters away from 1 / 0, so their gradients are not trivial
        net[1].weight.uniform_(0.5, 1.5), net[1].bias.uniform_(-0.5, 0.5)
        net[5].weight.uniform_(0.5, 1.5), net[5].bias.uniform_(-0.5, 0.5)
    return net


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 3, 6, 5, generator=g) * 2 + 1
    return x, torch.randn(10, 6, generator=g)


SHARES = (slice(0, 6), slice(6, 10))  # uneven shares: 6 and 4 images


def loss_of(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((out - target) ** 2).sum()


def test_one_process_global_batchnorm_is_batchnorm_and_conversion_keeps_parameters_and_buffers():
    plain, converted = network(), convert_to_global_batchnorm(network())
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[5], GlobalBatchNorm)
    assert not any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in converted.modules())
    assert plain.state_dict().keys() == converted.state_dict().keys()  # checkpoints are interchangeable
    x, target = batch()
    for mode in ("train", "eval"):
        getattr(plain, mode)(), getattr(converted, mode)()
        torch.testing.assert_close(converted(x), plain(x))
    torch.testing.assert_close(converted[1].running_var, plain[1].running_var)
    assert GlobalBatchNormSync().revert(converted) is converted
    with pytest.raises(ValueError, match=r"GlobalBatchNorm expects an input of shape \(N, C, \.\.\.\), got \(4,\)"):
        GlobalBatchNorm(4)(torch.zeros(4))


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    with gloo_group(rank, world_size, port):
        net = GlobalBatchNormSync().apply(network()).train()
        x, target = batch()
        out = net(x[SHARES[rank]])
        loss_of(out, target[SHARES[rank]]).backward()
        torch.save({"out": out.detach(), "grads": {n: p.grad for n, p in net.named_parameters()},
                    "buffers": {n: b for n, b in net.named_buffers()}}, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_gloo_ranks_normalise_and_differentiate_as_one_process_on_the_whole_batch(tmp_path):
    single = network().train()
    x, target = batch()
    out = single(x)
    loss_of(out, target).backward()

    spawn_two_ranks(_worker, tmp_path)

    results = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    torch.testing.assert_close(torch.cat([r["out"] for r in results]), out.detach(), atol=1e-5, rtol=1e-4)
    # the summed gradients of the ranks (DDP averages them; the loss here is a sum) are the whole batch's
    for name, param in single.named_parameters():
        torch.testing.assert_close(results[0]["grads"][name] + results[1]["grads"][name], param.grad,
                                   atol=1e-4, rtol=1e-4, msg=name)
    # per-rank batch norm (plain BatchNorm on each share) would differ: the test can tell the two apart
    local = network().train()
    assert not torch.allclose(local(x[SHARES[1]]), results[1]["out"], atol=1e-3)
    for name, buffer in single.named_buffers():
        for result in results:  # every rank's running statistics are the whole batch's
            torch.testing.assert_close(result["buffers"][name], buffer, atol=1e-5, rtol=1e-4, msg=name)
