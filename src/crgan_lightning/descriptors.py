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
from .data.keys import CAMID, IMAGE, PID
from .metrics import compute_distance, evaluate_rank

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
    feats, pids, cams = [], [], []
    loader = dm.test_dataloader()
    with torch.no_grad():
        for batch in tqdm(loader, desc=f"descriptor {target}", unit="batch", disable=not progress):
            feats.append(extractor(batch[IMAGE]).float())
            pids.append(batch[PID])
            cams.append(batch[CAMID])
    feats, pids, cams = torch.cat(feats), torch.cat(pids), torch.cat(cams)
    q = dm.num_query
    cmc, mean_ap = evaluate_rank(compute_distance(feats[:q], feats[q:], distance), pids[:q], pids[q:],
                                 cams[:q], cams[q:])
    return {"rank1": float(cmc[0]) * 100, "rank5": float(cmc[4]) * 100, "rank10": float(cmc[9]) * 100,
            "mAP": float(mean_ap) * 100}
