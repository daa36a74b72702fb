"""Training-free descriptors evaluated on a dataset's test split: the LOMO row of the paper's Table 2.

:func:`evaluate_descriptor` describes every query and gallery image of ``target`` with a
feature extractor that needs no training (by default :class:`~crgan_lightning.models.lomo.LOMO`)
and ranks the gallery with the Market-1501 protocol. No source data and no labels are used,
so the row measures how far plain appearance statistics get on the target: on the real pair,
LOMO reaches rank-1 12-36 (with XQDA metric learning on the source; this row uses none).

    from crgan_lightning.descriptors import evaluate_descriptor
    evaluate_descriptor("synth_b", "data")     # {"rank1": ..., "mAP": ..., ...} in percent
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from .data.datamodule import CrossDomainDataModule
from .data.keys import CAMID, IMAGE, INDEX, PID
from .metrics import ReIDMetric

METRIC_KEYS = ("rank1", "rank5", "rank10", "mAP")


def evaluate_descriptor(target: str, root: str, extractor: nn.Module | None = None, height: int = 128,
                        width: int = 64, distance: str = "euclidean", batch_size: int = 128,
                        progress: bool = True) -> dict[str, float]:
    """Rank-1/5/10 and mAP (percent) of a training-free ``extractor`` (default: LOMO) on the
    query/gallery split of ``target`` under ``root``, images read at ``height`` x ``width``."""
    from .models.lomo import LOMO

    extractor = (extractor or LOMO()).eval()
    dm = CrossDomainDataModule(source=target, target=target, root=root, height=height, width=width,
                               with_target=False, eval_batch_size=batch_size, num_workers=0, masks="none",
                               generate_synthetic=False)
    dm.setup("test")
    metric = ReIDMetric(num_query=dm.num_query, metric=distance)  # the protocol of every re-id row
    with torch.no_grad():
        for batch in tqdm(dm.test_dataloader(), desc=f"descriptor {target}", unit="batch", disable=not progress):
            metric.update(extractor(batch[IMAGE]).float(), batch[PID], batch[CAMID], batch[INDEX])
    scores = metric.compute()
    return {key: float(scores[key]) * 100 for key in METRIC_KEYS}
