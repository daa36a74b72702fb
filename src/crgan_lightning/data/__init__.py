"""Data side of the library: dataset parsers, the embedded benchmark, transforms, samplers,
masks and the shared :class:`CrossDomainDataModule`."""

from __future__ import annotations

from .datasets import ReIDDataset, ReIDSample, dataset_names, load_reid_dataset, register_dataset

__all__ = ["ReIDDataset", "ReIDSample", "dataset_names", "load_reid_dataset", "register_dataset"]
