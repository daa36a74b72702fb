"""Re-id evaluation: distances, the ranking protocol (CMC / mAP / mINP), re-ranking, and a
torchmetrics :class:`ReIDMetric` that gathers features across DDP ranks.

Nothing here imports Lightning modules, callbacks or the data package, so the functions can be
used on any distance matrix or feature set.
"""

from __future__ import annotations

from crgan_lightning.metrics.ranking import compute_distance, evaluate_rank
from crgan_lightning.metrics.reid_metric import ReIDMetric
from crgan_lightning.metrics.rerank import re_ranking

__all__ = ["ReIDMetric", "compute_distance", "evaluate_rank", "re_ranking"]
