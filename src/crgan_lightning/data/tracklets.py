"""The tracklet view of an unlabelled target domain, for TAUDL / UTAL.

TAUDL (Li, Zhu and Gong, "Unsupervised Person Re-identification by Deep Learning Tracklet
Association", ECCV 2018) and its journal version UTAL (TPAMI 2019) learn on the target domain
without any cross-camera identity label. What they assume instead is that each camera's video
gives *tracklets*: short tracks of one person inside one camera, whose images are known to
belong together, and whose labels are only meaningful inside that camera (two tracklets of two
cameras carry unrelated numbers, even when they show the same person).

On image benchmarks the papers emulate this as follows (the protocol of the official code,
``reid/datasets/market1501.py`` of liminxian/Tracklet-Association-Unsupervised-Deep-Learning):
the images of one person under one camera in the training split form one tracklet. That is
what :func:`build_tracklet_view` does. The person ids are used for *grouping only*: two images
of one camera share a tracklet when they share a pid. They never link cameras, and the numbers
given to the tracklets do not depend on the pid values at all:

- tracklets are found in the order their first image appears in ``samples`` (the split's file
  order), camera by camera;
- inside each camera that order is then shuffled by a fixed permutation drawn from
  ``(seed, camera)`` and the number of tracklets of the camera. On real datasets the file order
  follows the pid (``0002_c1s1_...``), so without the shuffle the k-th tracklet of camera 1 and
  the k-th tracklet of camera 2 would often be the same person, and any model that shares
  anything indexed by the per-camera number across cameras would read cross-camera identity
  off the numbering;
- the global number of a tracklet is its per-camera number plus the number of tracklets of the
  cameras before it (cameras in order 0..C-1), so global ids are camera-major and contiguous.

Relabelling the identities of the split at random across cameras (keeping which images of a
camera belong together) therefore leaves every number unchanged; ``tests/data/test_tracklets.py``
checks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from ..errors import ConfigError, DatasetError
from .datasets import ReIDSample
from .keys import CAMERA_TRACKLET, TRACKLET


@dataclass(frozen=True)
class TrackletView:
    """Per-image tracklet labels of a training split (all tuples are indexed like ``samples``).

    Attributes:
        camera_tracklets: per image, its tracklet number inside its own camera, ``0..T_c-1``.
        tracklets: per image, its global tracklet number ``0..T-1``.
        camids: per image, its 0-based camera.
        tracklets_per_camera: ``T_c`` for every camera ``0..C-1`` (0 for a camera without
            training images).
    """

    camera_tracklets: tuple[int, ...]
    tracklets: tuple[int, ...]
    camids: tuple[int, ...]
    tracklets_per_camera: tuple[int, ...]

    @property
    def num_tracklets(self) -> int:
        """``T``, the number of tracklets over all cameras."""
        return sum(self.tracklets_per_camera)

    @property
    def num_cameras(self) -> int:
        return len(self.tracklets_per_camera)

    @property
    def camera_offsets(self) -> tuple[int, ...]:
        """Global id of the first tracklet of each camera: global = offset[camera] + per-camera id."""
        return tuple(int(v) for v in np.concatenate([[0], np.cumsum(self.tracklets_per_camera)[:-1]]))

    @property
    def tracklet_cameras(self) -> tuple[int, ...]:
        """The camera of each global tracklet ``0..T-1``."""
        return tuple(cam for cam, n in enumerate(self.tracklets_per_camera) for _ in range(n))


def build_tracklet_view(samples: Sequence[ReIDSample], num_cameras: int | None = None, seed: int = 0) -> TrackletView:
    """Derive per-camera and global tracklet ids for every image of a training split.

    One tracklet = the images of one pid under one camera (the image-dataset protocol of
    TAUDL/UTAL). Numbering (see the module docstring): first appearance in ``samples`` inside
    each camera, shuffled by a permutation seeded with ``(seed, camera)``, then offset camera by
    camera. It depends on the grouping, the order of ``samples`` and ``seed``, never on the
    pid values.

    Args:
        samples: the training split (e.g. ``ReIDDataset.train`` of the target).
        num_cameras: cameras of the dataset (``ReIDDataset.num_cameras``); cameras without
            images get ``T_c = 0``. ``None`` uses ``1 + max(camid)``.
        seed: seed of the per-camera shuffle of the numbering.

    Raises:
        DatasetError: ``samples`` is empty, or a camera id lies outside ``0..num_cameras-1``.
        ConfigError: ``num_cameras`` is not positive.
    """
    if len(samples) == 0:
        raise DatasetError("the tracklet view needs a training split with images; got an empty split")
    camids = [int(s.camid) for s in samples]
    if num_cameras is None:
        num_cameras = max(camids) + 1
    if num_cameras < 1:
        raise ConfigError(f"num_cameras={num_cameras} must be >= 1")
    for s in samples:
        if not 0 <= s.camid < num_cameras:
            raise DatasetError(
                f"camera id {s.camid} of {s.path} is out of range; expected 0..{num_cameras - 1} "
                f"(num_cameras={num_cameras})")
    # first appearance of each (camera, pid) group inside its camera
    first_seen: list[dict[int, int]] = [{} for _ in range(num_cameras)]
    order = []
    for s in samples:
        groups = first_seen[s.camid]
        if s.pid not in groups:
            groups[s.pid] = len(groups)
        order.append(groups[s.pid])
    counts = [len(g) for g in first_seen]
    # a fixed shuffle per camera, a function of (seed, camera, T_c) only
    relabel = [np.random.default_rng([seed, cam]).permutation(n) for cam, n in enumerate(counts)]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
    per_camera = tuple(int(relabel[cam][k]) for cam, k in zip(camids, order))
    global_ids = tuple(int(offsets[cam]) + t for cam, t in zip(camids, per_camera))
    return TrackletView(per_camera, global_ids, tuple(camids), tuple(counts))


class TrackletDataset(Dataset):
    """Wraps a dataset of batch dicts (the target training images) and adds to each item its
    global tracklet id under ``"tracklet"`` and its per-camera tracklet id under
    ``"camera_tracklet"`` (the camera is already in ``"camid"``). ``view`` must be indexed like
    ``dataset``. The wrapped dataset's ``transform`` is exposed so that the loaders seed it."""

    def __init__(self, dataset: Dataset, view: TrackletView) -> None:
        if len(dataset) != len(view.tracklets):
            raise DatasetError(
                f"the tracklet view labels {len(view.tracklets)} images; the dataset holds {len(dataset)}")
        self.dataset = dataset
        self.view = view

    @property
    def transform(self):
        return getattr(self.dataset, "transform", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        item[TRACKLET] = self.view.tracklets[index]
        item[CAMERA_TRACKLET] = self.view.camera_tracklets[index]
        return item
