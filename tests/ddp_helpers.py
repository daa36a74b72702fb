"""A callback the multi-process tests add through the CLI (importable via PYTHONPATH=tests)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytorch_lightning as pl


class WeightsDigest(pl.Callback):
    """Writes, per rank, a digest of the module's parameters at the start and the end of fit, and
    the number of training batches that rank saw, to ``<out>/rank<r>.json``."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.batches = 0
        self.start = ""

    @staticmethod
    def digest(module) -> str:
        h = hashlib.sha256()
        for name, tensor in sorted(module.named_parameters()):  # buffers (BN statistics) are per rank
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = self.digest(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        self.keys = sorted(batch)

    def on_train_end(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        record = {"start": self.start, "end": self.digest(pl_module), "batches": self.batches,
                  "world_size": trainer.world_size, "keys": getattr(self, "keys", [])}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
