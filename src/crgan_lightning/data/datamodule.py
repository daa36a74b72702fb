"""The one LightningDataModule that every stage (CR-GAN, re-id, baselines) trains on.

Training batches (a :class:`~pytorch_lightning.utilities.CombinedLoader` of two loaders)::

    {"source": {"image": (B,3,H,W), "pid": (B,) label 0..N-1, "camid": (B,), "mask": (B,1,H,W)},
     "target": {"image": (Bt,3,H,W), "camid": (Bt,), "mask": (Bt,1,H,W)}}

Source batches are P x K identity batches (:class:`RandomIdentitySampler`); target batches are
random unlabelled images (their camera is known, their identity is not used). With
``target_tracklets=True`` (TAUDL), target batches are instead P x K *tracklet* batches
(:class:`RandomTrackletSampler`) and carry ``"tracklet"`` (global tracklet id) and
``"camera_tracklet"`` (id inside the camera); see :mod:`crgan_lightning.data.tracklets`.
With ``target_clusters=True`` (the clustering stage), target batches are P x K batches over the
pseudo-identities the module sets each epoch (:meth:`CrossDomainDataModule.set_target_pseudo_labels`)
and carry ``"index"`` (the image's position in the target training split), never a true identity.
Validation and test batches run over the target query set followed by the target gallery::

    {"image", "pid" (as in the file name), "camid", "index" (0..num_query-1 are queries)}

``index`` lets the metric drop the duplicates that DDP's DistributedSampler pads with.
Images are float in [-1, 1]; masks float in [0, 1], 1 on the person.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import ConfigError, DatasetError
from ..fileio import read_meta
from .datasets import EMBEDDED_DATASETS, ReIDDataset, ReIDSample, get_spec, load_reid_dataset
from .images import read_image
from .keys import CAMID, INDEX, PID, SOURCE, TARGET
from .masks import MaskProvider, build_mask_provider, check_mask_source
from .samplers import (
    PseudoIdentitySampler, PseudoLabels, RandomIdentitySampler, RandomTrackletSampler, ShardedRandomSampler,
)
from .tracklets import TrackletDataset, TrackletView, build_tracklet_view
from .transforms import apply_transforms, build_transforms, pipeline_random_state, set_pipeline_random_state

log = logging.getLogger(__name__)


class ReIDImageDataset(Dataset):
    """A list of :class:`ReIDSample` as a torch Dataset of batch dicts.

    Args:
        samples: the images.
        transform: an albumentations pipeline from :func:`build_transforms`.
        labels: per-sample classification label stored under ``"pid"`` (e.g. the relabelled
            training pid); ``None`` stores the pid from the file name.
        mask_provider: when given, each item carries its ``"mask"``.
        with_pid: include ``"pid"`` (off for unlabelled target training images).
        with_index: include ``"index"`` (the position in ``samples``).
    """

    def __init__(
        self,
        samples: Sequence[ReIDSample],
        transform,
        labels: Sequence[int] | None = None,
        mask_provider: MaskProvider | None = None,
        with_pid: bool = True,
        with_index: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.labels = None if labels is None else list(labels)
        self.mask_provider = mask_provider
        self.with_pid = with_pid
        self.with_index = with_index

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        sample = self.samples[index]
        image = read_image(sample.path)
        mask = None
        if self.mask_provider is not None:
            mask = self.mask_provider(sample.path, image.shape[0], image.shape[1])
        item: dict[str, torch.Tensor | int] = dict(apply_transforms(self.transform, image, mask))
        item[CAMID] = sample.camid
        if self.with_pid:
            item[PID] = sample.pid if self.labels is None else self.labels[index]
        if self.with_index:
            item[INDEX] = index
        return item


def _seed_pipeline(dataset: Dataset, seed: int) -> None:
    """Seed the albumentations pipeline of ``dataset`` (its own random generators, which neither
    torch nor Lightning's ``seed_everything`` reach)."""
    transform = getattr(dataset, "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed % 2**32)


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # each loader worker decodes on one thread; the workers are the parallelism
    info = torch.utils.data.get_worker_info()
    _seed_pipeline(info.dataset, info.seed)  # torch derives info.seed from the seeded main process


def _prepare_fork() -> None:
    """Stop OpenCV's thread pool in the parent before loader workers are forked: a worker forked
    while that pool is alive hangs in its first cv2 call."""
    cv2.setNumThreads(1)


class CrossDomainDataModule(pl.LightningDataModule):
    """Labelled source domain + unlabelled target domain, shared by every training stage.

    Args:
        source, target: registered dataset names (``market``, ``duke``, ``msmt17``,
            ``cuhk03np``, ``synth_a``, ``synth_b``; see :func:`load_reid_dataset`).
        root: data root holding the datasets under their usual folder names.
        height, width: network input size (256x128 for real data, 128x64 for the embedded one).
        batch_size: source images per batch and process (P x K).
        num_instances: K, images per identity in a source batch.
        target_batch_size: target images per batch; defaults to ``batch_size``.
        with_target: load target training images (CR-GAN and rendering need them; a pure
            direct-transfer re-id run can switch them off).
        eval_batch_size: batch size of the query/gallery loaders.
        num_workers: loader worker processes per loader.
        masks: ``"auto"`` (the dataset's ``masks/`` tree, else the soft prior), ``"folder"``,
            ``"prior"`` or ``"none"`` (re-id stages need no masks); see :mod:`crgan_lightning.data.masks`.
            Masks are read for training batches only, and only when ``with_target`` is on.
        flip_p, pad, erasing_p: training augmentation (see :func:`build_transforms`).
        generate_synthetic: create ``synth_a``/``synth_b`` under ``root`` when missing, if ``root`` is an
            empty folder or already holds the benchmark's other domains (a root that does not exist, or
            holds anything else, is refused: a mistyped path never becomes a new benchmark).
        synthetic_seed: the seed for that generation.
        seed: seed of the training samplers (mixed with the epoch).
        target_tracklets: TAUDL's view of the target (off by default). Each target training image
            gets a tracklet (the images of one person under one camera; the ids say which images
            of a camera belong together and nothing across cameras, see
            :mod:`crgan_lightning.data.tracklets`); target batches are P x K tracklet batches
            (``target_batch_size`` images, K = ``num_instances``, as many batches as the source
            loader) that carry ``"tracklet"`` and ``"camera_tracklet"``. Needs ``with_target``.
        target_clusters: the clustering stage's view of the target (off by default): target
            batches are P x K batches (``target_batch_size`` images, K = ``num_instances``, as many
            batches as the source loader) over the pseudo-identities of
            :meth:`set_target_pseudo_labels`, and carry ``"index"``, the image's position in the
            target training split; :meth:`cluster_loader` gives the same images unaugmented for the
            feature pass. Needs ``with_target``; not with ``target_tracklets``.
    """

    def __init__(
        self,
        source: str = "synth_a",
        target: str = "synth_b",
        root: str = "data",
        height: int = 128,
        width: int = 64,
        batch_size: int = 32,
        num_instances: int = 4,
        target_batch_size: int | None = None,
        with_target: bool = True,
        eval_batch_size: int = 128,
        num_workers: int = 2,
        masks: str = "auto",
        flip_p: float = 0.5,
        pad: int = 10,
        erasing_p: float = 0.5,
        generate_synthetic: bool = True,
        synthetic_seed: int = 0,
        seed: int = 0,
        target_tracklets: bool = False,
        target_clusters: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        get_spec(source), get_spec(target)  # unknown names fail here, before any work
        check_mask_source(masks)
        if num_workers < 0:
            raise ConfigError(f"num_workers={num_workers} must be >= 0")
        for name, value in (("batch_size", batch_size), ("num_instances", num_instances),
                            ("eval_batch_size", eval_batch_size), ("target_batch_size", target_batch_size or 1)):
            if value < 1:
                raise ConfigError(f"data.{name}={value} must be >= 1")
        if target_tracklets and not with_target:
            raise ConfigError("data.target_tracklets=true needs the target training images; set data.with_target=true")
        if target_clusters and (target_tracklets or not with_target):
            raise ConfigError("data.target_clusters=true needs data.with_target=true and data.target_tracklets=false")
        tracklet_batch = target_batch_size or batch_size
        if (target_tracklets or target_clusters) and tracklet_batch % num_instances:
            raise ConfigError(
                f"data.target_batch_size={tracklet_batch} must be a multiple of data.num_instances={num_instances} "
                f"when data.target_tracklets or data.target_clusters is true (P groups x K images)")
        self.source_name, self.target_name = source, target
        self.target_tracklets = target_tracklets
        self.target_clusters = target_clusters
        self.target_pseudo_labels = PseudoLabels()
        self._tracklet_view: TrackletView | None = None
        self.root = Path(root)
        self.height, self.width = height, width
        self.batch_size, self.num_instances = batch_size, num_instances
        self.target_batch_size = target_batch_size or batch_size
        self.with_target = with_target
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.masks = masks
        self.generate_synthetic = generate_synthetic
        self.synthetic_seed = synthetic_seed
        self.seed = seed
        self.train_transform = build_transforms(height, width, True, flip_p, pad, erasing_p)
        self.test_transform = build_transforms(height, width, False)
        self._datasets: dict[str, ReIDDataset] = {}
        self._augmentation_restored = False

    # ------------------------------------------------------------------ datasets

    def _ensure_synthetic(self) -> None:
        """Generate missing embedded datasets (``generate_synthetic``); refuse one written by
        another version of the generator, so that versions are never mixed in a run."""
        from .synthetic import GENERATOR_VERSION, generate_benchmark

        missing = []
        for name in sorted({self.source_name, self.target_name}):
            spec = get_spec(name)
            if spec.name not in EMBEDDED_DATASETS:
                continue
            meta = read_meta(self.root / spec.name)
            if meta is None:
                missing.append(spec.name)
            elif meta.get("generator_version", 1) != GENERATOR_VERSION:
                raise DatasetError(
                    f"{self.root / spec.name} holds version {meta.get('generator_version', 1)} of the embedded "
                    f"benchmark; this library trains on version {GENERATOR_VERSION}: "
                    f"run `crgan synth --out {self.root} --overwrite` (add --oracle for synth_a_in_b)")
        if not missing:
            return
        root = self.root
        holds_benchmark = root.is_dir() and any(read_meta(root / name) is not None for name in EMBEDDED_DATASETS)
        if not self.generate_synthetic or not (holds_benchmark or (root.is_dir() and not any(root.iterdir()))):
            # a mistyped root must not become a new benchmark: generate only into an empty folder or beside
            # the benchmark's other domains
            where = "does not exist" if not root.exists() else "holds no embedded benchmark"
            raise DatasetError(
                f"data root {root} (--data.root) {where} ({', '.join(missing)} missing); write the benchmark there "
                f"with `crgan synth --out {root}`, or point --data.root at the folder that holds synth_a/ and synth_b/")
        log.info("generating the embedded benchmark %s under %s", missing, root)
        generate_benchmark(root, seed=self.synthetic_seed, domains=missing)

    def _dataset(self, name: str) -> ReIDDataset:
        if name not in self._datasets:
            self._ensure_synthetic()
            self._datasets[name] = load_reid_dataset(name, self.root)
        return self._datasets[name]

    @property
    def source_dataset(self) -> ReIDDataset:
        return self._dataset(self.source_name)

    @property
    def target_dataset(self) -> ReIDDataset:
        return self._dataset(self.target_name)

    @property
    def num_source_pids(self) -> int:
        """Number of training identities of the source (classifier width)."""
        return self.source_dataset.num_train_pids

    @property
    def num_source_cameras(self) -> int:
        return self.source_dataset.num_cameras

    @property
    def num_target_cameras(self) -> int:
        return self.target_dataset.num_cameras

    @property
    def target_tracklet_view(self) -> TrackletView:
        """Tracklet ids of the target training images (:func:`build_tracklet_view`)."""
        if self._tracklet_view is None:
            tgt = self.target_dataset
            self._tracklet_view = build_tracklet_view(tgt.train, tgt.num_cameras)
        return self._tracklet_view

    @property
    def num_target_tracklets(self) -> int:
        """Number of target training tracklets over all cameras (width of TAUDL's tracklet memory)."""
        return self.target_tracklet_view.num_tracklets

    @property
    def num_target_tracklets_per_camera(self) -> list[int]:
        """Tracklets of each target camera 0..C-1 (widths of TAUDL's per-camera classifier branches)."""
        return list(self.target_tracklet_view.tracklets_per_camera)

    @property
    def num_query(self) -> int:
        """Evaluation items with ``index < num_query`` are target queries, the rest gallery."""
        return len(self.target_dataset.query)

    def prepare_data(self) -> None:
        self._ensure_synthetic()

    def setup(self, stage: str | None = None) -> None:
        src, tgt = self.source_dataset, self.target_dataset
        pid2label = {pid: i for i, pid in enumerate(src.train_pids)}
        masks = self.masks if self.with_target else "none"
        self.source_train = ReIDImageDataset(
            src.train, self.train_transform, labels=[pid2label[s.pid] for s in src.train],
            mask_provider=build_mask_provider(masks, src),
        )
        if self.with_target:
            self.target_train = ReIDImageDataset(
                tgt.train, self.train_transform, mask_provider=build_mask_provider(masks, tgt), with_pid=False,
                with_index=self.target_clusters,
            )
            if self.target_tracklets:
                self.target_train = TrackletDataset(self.target_train, self.target_tracklet_view)
        self.target_eval = ReIDImageDataset(tgt.query + tgt.gallery, self.test_transform, with_index=True)

    # ------------------------------------------------------------------ loaders

    def _loader(self, dataset: Dataset, batch_size: int, **kwargs) -> DataLoader:
        """A loader whose augmentation is reproducible: seeded per worker from torch's seeded
        state (``seed_everything``), or here from it when the main process loads."""
        workers = self.num_workers
        if workers > 0:
            _prepare_fork()
        elif not self._augmentation_restored:
            _seed_pipeline(dataset, int(torch.randint(0, 2**31 - 1, (1,)).item()))
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=_worker_init if workers > 0 else None,
            pin_memory=torch.cuda.is_available(),
            **kwargs,
        )

    def source_loader(self) -> DataLoader:
        sampler = RandomIdentitySampler(
            [s.pid for s in self.source_dataset.train], self.batch_size, self.num_instances, seed=self.seed
        )
        return self._loader(self.source_train, self.batch_size, sampler=sampler, drop_last=True)

    def train_dataloader(self) -> CombinedLoader:
        source = self.source_loader()
        loaders = {SOURCE: source}
        if self.with_target:
            if self.target_clusters:
                sampler = PseudoIdentitySampler(self.target_pseudo_labels, self.target_batch_size, self.num_instances,
                                                seed=self.seed + 1, num_batches=len(source),
                                                num_items=len(self.target_train))
            elif self.target_tracklets:
                sampler = RandomTrackletSampler(self.target_tracklet_view.tracklets, self.target_batch_size,
                                                self.num_instances, seed=self.seed + 1, num_batches=len(source))
            else:
                sampler = ShardedRandomSampler(
                    len(self.target_train), len(source) * self.target_batch_size, seed=self.seed + 1
                )
            loaders[TARGET] = self._loader(self.target_train, self.target_batch_size, sampler=sampler, drop_last=True)
        return CombinedLoader(loaders, mode="min_size")

    def cluster_loader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        """The target training images without augmentation and without identity (``{"image",
        "camid", "index"}``), for the clustering stage's feature pass: images ``rank, rank +
        world_size, ...`` (each rank extracts its own share; ``index`` places them)."""
        dataset = ReIDImageDataset(self.target_dataset.train, self.test_transform, with_pid=False, with_index=True)
        if self.num_workers > 0:
            _prepare_fork()
        # no augmentation, so no seeding (and no draw from torch's random state, unlike _loader)
        return DataLoader(Subset(dataset, range(rank, len(dataset), world_size)), batch_size=self.eval_batch_size,
                          shuffle=False, num_workers=self.num_workers,
                          worker_init_fn=_worker_init if self.num_workers > 0 else None)

    @property
    def num_target_train(self) -> int:
        """Number of target training images (the images the clustering stage labels)."""
        return len(self.target_dataset.train)

    def set_target_pseudo_labels(self, labels) -> None:
        """The pseudo-identity (``(N,)`` ints, -1: not trained on) of every target training image, for
        the P x K sampling of the next training epoch (``target_clusters``)."""
        if len(labels) != self.num_target_train:
            raise ConfigError(f"{len(labels)} pseudo-labels for {self.num_target_train} target training images")
        self.target_pseudo_labels.set(labels)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.target_eval, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        """Saved in checkpoints: the training augmentation's random state when the main process
        loads (``num_workers: 0``), so that a resumed run augments as an uninterrupted one. Loader
        workers hold their own state, reseeded from torch's when they start (see the README)."""
        return {"augmentation": pipeline_random_state(self.train_transform)} if self.num_workers == 0 else {}

    def load_state_dict(self, state_dict: dict) -> None:
        if self.num_workers == 0 and "augmentation" in state_dict:
            set_pipeline_random_state(self.train_transform, state_dict["augmentation"])
            self._augmentation_restored = True
