"""Parsers for re-id datasets in their published folder layouts, and a registry of them.

Every parser turns a dataset folder into a :class:`ReIDDataset` holding three lists of
:class:`ReIDSample` (``train``, ``query``, ``gallery``). Person ids are kept as written in the
file names (training code relabels them to ``0..N-1`` itself); camera ids are 0-based.

Supported layouts (``root`` may be the dataset folder itself or a data root holding it under
its usual name)::

    Market-1501-v15.09.15/      bounding_box_train/ query/ bounding_box_test/
                                0002_c1s1_000451_03.jpg   (pid -1 = junk, dropped; 0000 = distractor)
    DukeMTMC-reID/              bounding_box_train/ query/ bounding_box_test/
                                0001_c2_f0046182.jpg
    MSMT17_V1/ (or MSMT17_V2/)  train/ test/ (V2: mask_train_v2/ mask_test_v2/)
                                list_train.txt list_val.txt list_query.txt list_gallery.txt
                                lines "0000/0000_000_01_0303morning_0015_0.jpg 0"
    cuhk03-np/detected/ (or labeled/)  bounding_box_train/ query/ bounding_box_test/
                                0001_c1_1.png
    synth_a/, synth_b/          the embedded benchmark (:mod:`crgan_lightning.data.synthetic`),
                                Market-1501 layout and names plus ``meta.json``
    <any folder>/ ("rendered")  a dataset exported by ``crgan render``, same form

A ``masks/`` folder beside the splits, with one PNG per image at the same relative path, holds
foreground masks (see :mod:`crgan_lightning.data.masks`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError
from ..fileio import META_FILE

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

MARKET_LAYOUT = "bounding_box_train/, query/ and bounding_box_test/"
#: Split name -> folder name in the Market-1501 layout.
SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


@dataclass(frozen=True)
class ReIDSample:
    """One image: its path, the person id as written in the file name, a 0-based camera id."""

    path: str
    pid: int
    camid: int


@dataclass
class ReIDDataset:
    """A parsed dataset: train / query / gallery samples plus the folder they came from."""

    name: str
    root: Path
    train: list[ReIDSample]
    query: list[ReIDSample]
    gallery: list[ReIDSample]
    num_cameras: int
    extra: dict = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})

    @property
    def train_pids(self) -> list[int]:
        """Sorted distinct training pids; position in this list is the classification label."""
        return sorted({s.pid for s in self.train})

    def split(self, name: str) -> list[ReIDSample]:
        if name not in ("train", "query", "gallery"):
            raise DatasetError(f"unknown split {name!r}; expected one of train, query, gallery")
        return getattr(self, name)

    def summary(self) -> str:
        """The statistics table every re-id library prints (# ids, # images, # cameras per split)."""
        rule = "  " + "-" * 44
        lines = [
            f"=> {self.name} loaded from {self.root}",
            rule,
            f"  {'subset':<9}| {'# ids':>7} | {'# images':>9} | {'# cameras':>9}",
            rule,
        ]
        for split in ("train", "query", "gallery"):
            samples = self.split(split)
            ids = len({s.pid for s in samples})
            cams = len({s.camid for s in samples})
            lines.append(f"  {split:<9}| {ids:>7} | {len(samples):>9} | {cams:>9}")
        lines.append(rule)
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def _require_dir(path: Path, dataset: str, layout: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{dataset}: missing folder {path}; expected {layout}")
    return path


def _image_files(folder: Path) -> list[str]:
    """Image file names of a folder, sorted (other files such as Thumbs.db, and hidden files, are ignored)."""
    def is_image_file(entry: os.DirEntry) -> bool:
        try:
            return entry.is_file()
        except OSError as exc:  # a symbolic link loop
            raise DatasetError(f"{folder / entry.name}: {exc.strerror}; expected an image file (or a link to one) "
                               f"in {folder}") from None

    with os.scandir(folder) as it:
        names = [e.name for e in it
                 if e.name.lower().endswith(IMAGE_EXTENSIONS) and not e.name.startswith(".") and is_image_file(e)]
    names.sort()
    return names


def parse_flat_folder(
    folder: Path,
    dataset: str,
    pattern: re.Pattern[str],
    example: str,
    num_cameras: int,
    drop_junk: bool,
) -> list[ReIDSample]:
    """Parse a flat folder of images named ``<pid>_c<cam>...`` (Market-1501 style).

    ``pattern`` must capture the pid (group 1) and the 1-based camera (group 2). Junk images
    (pid -1) are dropped when ``drop_junk``; any other name that does not match is an error.
    """
    samples: list[ReIDSample] = []
    for name in _image_files(folder):
        m = pattern.match(name)
        if m is None:
            raise DatasetError(
                f"{dataset}: file name {folder / name} does not parse; expected names like {example}"
            )
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid == -1 and drop_junk:
            continue
        if pid < 0:
            raise DatasetError(f"{dataset}: negative person id in {folder / name}; expected like {example}")
        if not 1 <= cam <= num_cameras:
            raise DatasetError(
                f"{dataset}: camera c{cam} in {folder / name} is out of range; "
                f"this dataset has cameras c1..c{num_cameras}"
            )
        samples.append(ReIDSample(str(folder / name), pid, cam - 1))
    if not samples:
        raise DatasetError(f"{dataset}: split folder {folder} holds no images; expected files like {example}")
    return samples


# --------------------------------------------------------------------------- parsers


@dataclass(frozen=True)
class DatasetSpec:
    """How to find and parse one dataset."""

    name: str
    aliases: tuple[str, ...]
    folder_names: tuple[str, ...]
    layout: str
    matches: Callable[[Path], bool]
    parse: Callable[[Path], ReIDDataset]


def _has_market_splits(path: Path) -> bool:
    return all((path / d).is_dir() for d in ("bounding_box_train", "query", "bounding_box_test"))


def _market_style(
    name: str, pattern: str, example: str, num_cameras: int, drop_junk: bool
) -> Callable[[Path], ReIDDataset]:
    regex = re.compile(pattern)

    def parse(root: Path) -> ReIDDataset:
        splits = {}
        for split, folder in SPLIT_FOLDERS.items():
            d = _require_dir(root / folder, name, f"{MARKET_LAYOUT} under {root}")
            splits[split] = parse_flat_folder(d, name, regex, example, num_cameras, drop_junk)
        return ReIDDataset(name, root, num_cameras=num_cameras, **splits)

    return parse


def _parse_with_meta(name: str, how_to_make: str) -> Callable[[Path], ReIDDataset]:
    """Market-1501 names plus a ``meta.json`` that gives the number of cameras."""
    regex = re.compile(r"^(-?\d+)_c(\d)s(\d)_(\d{6})_(\d{2})\.(jpg|png)$")

    def parse(root: Path) -> ReIDDataset:
        meta_file = root / META_FILE
        try:
            meta = json.loads(meta_file.read_text())
            num_cameras = int(meta["num_cameras"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(
                f"{name}: cannot read {meta_file} ({exc}); {how_to_make}"
            ) from None
        splits = {}
        counts = meta.get("num_images") if isinstance(meta.get("num_images"), dict) else {}
        for split, folder in SPLIT_FOLDERS.items():
            d = _require_dir(root / folder, name, f"{MARKET_LAYOUT} under {root}")
            if counts.get(split) == 0 and split != "train":  # a training-only dataset (the oracle rendering)
                splits[split] = []
                continue
            splits[split] = parse_flat_folder(d, name, regex, "0002_c1s1_000451_00.jpg", num_cameras, True)
        return ReIDDataset(name, root, num_cameras=num_cameras, extra={"meta": meta}, **splits)

    return parse


MSMT_VERSIONS = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}
MSMT_LAYOUT = (
    "train/ and test/ (V1) or mask_train_v2/ and mask_test_v2/ (V2), "
    "with list_train.txt, list_val.txt, list_query.txt, list_gallery.txt"
)


def _msmt_dirs(root: Path) -> tuple[Path, Path] | None:
    for train_dir, test_dir in MSMT_VERSIONS.values():
        if (root / train_dir).is_dir() and (root / test_dir).is_dir():
            return root / train_dir, root / test_dir
    return None


def _parse_msmt_list(list_file: Path, image_dir: Path, num_cameras: int = 15) -> list[ReIDSample]:
    if not list_file.is_file():
        raise DatasetError(f"msmt17: missing list file {list_file}; expected {MSMT_LAYOUT}")
    samples = []
    with open(list_file) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split()
            try:
                rel, pid = parts[0], int(parts[1])
                cam = int(Path(rel).name.split("_")[2])
            except (IndexError, ValueError):
                raise DatasetError(
                    f"msmt17: line {lineno} of {list_file} does not parse: {line!r}; "
                    "expected '0000/0000_000_01_0303morning_0015_0.jpg 0'"
                ) from None
            if not 1 <= cam <= num_cameras:
                raise DatasetError(
                    f"msmt17: camera {cam} on line {lineno} of {list_file} is out of range 1..{num_cameras}"
                )
            samples.append(ReIDSample(str(image_dir / rel), pid, cam - 1))
    if not samples:
        raise DatasetError(f"msmt17: list file {list_file} names no images")
    if not os.path.exists(samples[0].path):
        raise DatasetError(
            f"msmt17: {list_file} names {samples[0].path}, which does not exist; "
            f"is {image_dir} the right image folder?"
        )
    return samples


def _parse_msmt(root: Path) -> ReIDDataset:
    dirs = _msmt_dirs(root)
    if dirs is None:
        raise DatasetError(f"msmt17: {root} does not hold {MSMT_LAYOUT}")
    train_dir, test_dir = dirs
    train = _parse_msmt_list(root / "list_train.txt", train_dir)
    val_file = root / "list_val.txt"
    if val_file.exists():  # the standard protocol trains on train + val
        train += _parse_msmt_list(val_file, train_dir)
    query = _parse_msmt_list(root / "list_query.txt", test_dir)
    gallery = _parse_msmt_list(root / "list_gallery.txt", test_dir)
    return ReIDDataset("msmt17", root, train, query, gallery, num_cameras=15,
                       extra={"version": "v2" if train_dir.name.endswith("v2") else "v1"})


def _cuhk03_variant(root: Path) -> Path | None:
    """The split folder of a cuhk03-np tree: ``detected`` is preferred over ``labeled``."""
    if _has_market_splits(root):
        return root
    for variant in ("detected", "labeled"):
        if _has_market_splits(root / variant):
            return root / variant
    return None


_cuhk03_flat = _market_style("cuhk03np", r"^(\d+)_c([12])_(\d+)\.(png|jpg)$", "0001_c1_1.png", 2, False)


def _parse_cuhk03(root: Path) -> ReIDDataset:
    folder = _cuhk03_variant(root)
    if folder is None:
        raise DatasetError(f"cuhk03np: {root} holds neither detected/ nor labeled/ with {MARKET_LAYOUT}")
    ds = _cuhk03_flat(folder)
    ds.extra["variant"] = folder.name if folder != root else "as given"
    return ds


REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the registry under its name and aliases (lower case)."""
    for key in (spec.name, *spec.aliases):
        REGISTRY[key.lower()] = spec
    return spec


register_dataset(DatasetSpec(
    "market1501", ("market", "market-1501"), ("Market-1501-v15.09.15", "Market-1501", "market1501"),
    MARKET_LAYOUT + " with names like 0002_c1s1_000451_03.jpg", _has_market_splits,
    _market_style("market1501", r"^(-?\d+)_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$", "0002_c1s1_000451_03.jpg", 6, True),
))
register_dataset(DatasetSpec(
    "dukemtmcreid", ("duke", "dukemtmc", "dukemtmc-reid"), ("DukeMTMC-reID", "dukemtmc-reid", "dukemtmcreid"),
    MARKET_LAYOUT + " with names like 0001_c2_f0046182.jpg", _has_market_splits,
    _market_style("dukemtmcreid", r"^(\d+)_c(\d)_f(\d+)\.jpg$", "0001_c2_f0046182.jpg", 8, False),
))
register_dataset(DatasetSpec(
    "msmt17", ("msmt", "msmt17_v1", "msmt17_v2"), ("MSMT17_V2", "MSMT17_V1", "MSMT17", "msmt17"),
    MSMT_LAYOUT, lambda p: _msmt_dirs(p) is not None, _parse_msmt,
))
register_dataset(DatasetSpec(
    "cuhk03np", ("cuhk03", "cuhk03-np"), ("cuhk03-np", "cuhk03_np", "CUHK03-NP"),
    f"detected/ or labeled/ holding {MARKET_LAYOUT} with names like 0001_c1_1.png",
    lambda p: _cuhk03_variant(p) is not None, _parse_cuhk03,
))


def _meta_name(path: Path) -> str | None:
    """The ``name`` in a folder's meta.json (None when absent or unreadable)."""
    try:
        return json.loads((path / META_FILE).read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def _has_meta_named(name: str) -> Callable[[Path], bool]:
    return lambda p: _has_market_splits(p) and _meta_name(p) == name


#: The embedded benchmark's datasets (written by ``crgan synth``; see :mod:`crgan_lightning.data.synthetic`).
EMBEDDED_DATASETS = ("synth_a", "synth_b", "synth_a_in_b")

for _synth in EMBEDDED_DATASETS:
    register_dataset(DatasetSpec(
        _synth, (_synth.replace("_", ""),), (_synth,),
        f"{MARKET_LAYOUT} and a meta.json naming {_synth} (written by `crgan synth`)",
        _has_meta_named(_synth),
        _parse_with_meta(_synth, "regenerate the benchmark with `crgan synth --out DIR`"),
    ))
register_dataset(DatasetSpec(
    "rendered", (), ("rendered",),
    f"{MARKET_LAYOUT} and a meta.json naming rendered (written by `crgan render`)",
    _has_meta_named("rendered"),
    _parse_with_meta("rendered", "export it again with `crgan render`"),
))


def dataset_names() -> list[str]:
    """Canonical names of the registered datasets."""
    return sorted({spec.name for spec in REGISTRY.values()})


def get_spec(name: str) -> DatasetSpec:
    spec = REGISTRY.get(str(name).lower())
    if spec is None:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(dataset_names())}")
    return spec


def resolve_dataset_dir(name: str, root: str | os.PathLike) -> Path:
    """The dataset folder for ``name``: ``root`` itself or ``root/<usual folder name>``."""
    spec = get_spec(name)
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{spec.name}: data root {root} does not exist")
    candidates = [root] + [root / f for f in spec.folder_names]
    for cand in candidates:
        if cand.is_dir() and spec.matches(cand):
            return cand
    for cand in candidates:  # a folder with some of the Market-1501 split folders: name the missing ones
        present = [d for d in SPLIT_FOLDERS.values() if (cand / d).is_dir()]
        if cand.is_dir() and present and len(present) < len(SPLIT_FOLDERS):
            missing = ", ".join(str(cand / d) for d in SPLIT_FOLDERS.values() if d not in present)
            raise DatasetError(f"{spec.name}: {cand} has no {missing}; expected {spec.layout}")
    tried = ", ".join(str(c) for c in candidates)
    raise DatasetError(f"{spec.name}: no dataset found at {tried}; expected {spec.layout}")


def load_reid_dataset(name: str, root: str | os.PathLike) -> ReIDDataset:
    """Parse a registered dataset (``market``, ``duke``, ``msmt17``, ``cuhk03np``, ``synth_a``...).

    ``root`` is the dataset folder itself or a data root holding it under its usual name
    (``Market-1501-v15.09.15``, ``DukeMTMC-reID``, ``MSMT17_V1``/``MSMT17_V2``, ``cuhk03-np``,
    ``synth_a``). Raises :class:`~crgan_lightning.errors.DatasetError` with the path and the
    expected layout when the folder does not match.
    """
    spec = get_spec(name)
    return spec.parse(resolve_dataset_dir(name, root))
