"""Batch normalisation over the global batch of a DDP run, on any device (CPU/gloo included).

Under DDP each process normalises its own share of the batch: with 2 processes at 16 images each,
batch norm sees 16 images where 1 process at 32 sees 32, and a model's figures change with the
process count (the field's most reported cause of results that depend on the GPU count).
``torch.nn.SyncBatchNorm`` fixes that on GPUs only. :class:`GlobalBatchNorm` computes the batch
statistics of every rank's images together (their sums, sums of squares and counts, all-reduced
with gradients), on any backend, and is plain batch norm when no process group runs; so a run of
N processes at ``B / N`` images each normalises as one process at ``B``.

:class:`GlobalBatchNormSync` is the Lightning plugin that swaps a model's batch-norm layers for it
(``trainer.plugins``, as the clustering configs set it; a no-op in one process)::

    trainer:
      plugins:
        - class_path: crgan_lightning.models.batchnorm.GlobalBatchNormSync
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from pytorch_lightning.plugins.layer_sync import LayerSync
from torch import nn


class _GlobalSum(torch.autograd.Function):
    """The sum of a tensor over the ranks; its gradient is the sum of the ranks' gradients (every
    rank's statistics feed every rank's loss)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def _global_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over the ranks, with the gradient of that sum."""
    return _GlobalSum.apply(tensor)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm (any input of shape (N, C, ...)) whose training statistics are those of the
    global batch when a process group of more than one rank runs; otherwise ``F.batch_norm``.
    Its parameters and buffers are a ``BatchNorm1d/2d``'s, so checkpoints are interchangeable."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects an input of shape (N, C, ...), got {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)
        use_batch = self.training or not self.track_running_stats
        if not (use_batch and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        local = input.float()
        count = torch.tensor([local.numel() / local.shape[1]], dtype=local.dtype, device=local.device)
        stats = _global_sum(torch.cat([local.sum(dims), (local * local).sum(dims), count]))
        channels = input.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels:2 * channels] / total - mean * mean).clamp_min(0)
        if self.training and self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                unbiased = var * (total / (total - 1).clamp_min(1))
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.to(self.running_var.dtype))
        shape = [1, channels] + [1] * (input.dim() - 2)
        out = (local - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm1d/2d/3d`` (not already global) replaced by a
    :class:`GlobalBatchNorm` holding the same parameters and buffers."""
    converted = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                converted.weight = module.weight
                converted.bias = module.bias
        if module.track_running_stats:
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
    for name, child in module.named_children():
        converted.add_module(name, convert_to_global_batchnorm(child))
    return converted


class GlobalBatchNormSync(LayerSync):
    """Lightning plugin (``trainer.plugins``): the model's batch norm over the global batch under DDP,
    on CPUs (gloo) as on GPUs; with one process the layers behave as plain batch norm."""

    def apply(self, model: nn.Module) -> nn.Module:
        return convert_to_global_batchnorm(model)

    def revert(self, model: nn.Module) -> nn.Module:
        return model  # the layers are batch norm in one process: nothing to undo
