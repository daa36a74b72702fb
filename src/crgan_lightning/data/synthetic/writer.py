"""Writing the benchmark: a dataset's images, masks and ``meta.json`` built in a hidden work
folder and swapped into place when complete (:func:`generate_domain`), for both domains and,
on request, the oracle (:func:`generate_benchmark`).

A folder records the generator version and every setting in its ``meta.json``; a folder of
another version or settings is never mixed with a new one: it is kept and refused with one
message (or replaced with ``overwrite``). Only folders this generator wrote are ever replaced.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ...errors import ConfigError
from ...fileio import META_FILE, check_output_folder, host_name, replace_folder
from ..datasets import SPLIT_FOLDERS
from ..mask_quality import degrade_mask, mask_iou, mask_quality
from ..masks import MASKS_DIR
from .arguments import HEIGHT, NUM_TEST_IDS, NUM_TRAIN_IDS, WIDTH, _check_args
from .plan import _Job, _plan, _render_job
from .render import _STREAM_MASK, _rng
from .styles import DOMAINS, GAP_PARTS, SYNTH_DATASETS, with_gap

log = logging.getLogger(__name__)

WRITER = "crgan synth"
JPEG_QUALITY = 95
GENERATOR_VERSION = 2
GENERATOR_NAME = __package__  # "crgan_lightning.data.synthetic", as recorded in meta.json

#: The two domains, written by default; the oracle ``synth_a_in_b`` is written on request.
DEFAULT_DOMAINS = ("synth_a", "synth_b")

#: What a folder's meta.json must match to be reused.
_REQUESTED_KEYS = ("generator_version", "seed", "height", "width", "num_train_ids", "num_test_ids",
                   "mask_quality", "clothing_shift", "gap")
_SPLIT_CODE = {"train": 0, "query": 1, "gallery": 2}


def _meta(domain: str, settings: dict, jobs: list[_Job], iou: float | None) -> dict:
    """The content of a dataset's ``meta.json``."""
    ds = SYNTH_DATASETS[domain]
    counts = {split: sum(1 for j in jobs if j.split == split) for split in SPLIT_FOLDERS}
    return {
        "name": domain,
        "written_by": WRITER,
        "description": ds.style.description if not ds.is_oracle else
        f"{ds.people}'s people in {ds.contexts}'s cameras and contexts (oracle rendering)",
        "people": ds.people,
        "contexts": ds.contexts,
        "num_cameras": ds.style.num_cameras,
        **settings,
        "num_distractors": sum(1 for j in jobs if j.pid == 0),
        "num_images": counts,
        "splits": dict(SPLIT_FOLDERS),
        "masks": MASKS_DIR,
        "mask_iou": iou,
        "style": asdict(ds.gapped_style(tuple(settings["gap"]))),
        "generator": GENERATOR_NAME,
        "jpeg_quality": JPEG_QUALITY,
    }


def _final_mask(domain: str, seed: int, job: _Job, mask: np.ndarray, context: np.ndarray, quality) -> np.ndarray:
    """The mask written for a job: the exact one, or degraded with the job's own random stream."""
    if quality.is_exact:
        return mask
    rng = _rng(seed, domain, _STREAM_MASK, job.pid, job.cam, job.index, _SPLIT_CODE[job.split])
    return degrade_mask(mask, quality, rng, context=context)


def _write_domain(folder: Path, domain: str, settings: dict, progress: bool) -> float | None:
    """Write every image and mask of ``domain`` into ``folder``, then its ``meta.json``; returns the
    mean IoU of the written masks to the exact ones (None for exact masks)."""
    seed, height, width = settings["seed"], settings["height"], settings["width"]
    quality = mask_quality(settings["mask_quality"])
    jobs = _plan(domain, seed, settings["num_train_ids"], settings["num_test_ids"])
    for sub in SPLIT_FOLDERS.values():
        (folder / sub).mkdir(parents=True)
        (folder / MASKS_DIR / sub).mkdir(parents=True)
    ious = []
    for job in tqdm(jobs, desc=f"synth {domain}", unit="img", disable=not progress):
        img, exact, context = _render_job(domain, seed, job, height, width, settings["clothing_shift"],
                                          tuple(settings["gap"]))
        mask = _final_mask(domain, seed, job, exact, context, quality)
        if not quality.is_exact:
            ious.append(mask_iou(exact, mask))
        sub = SPLIT_FOLDERS[job.split]
        Image.fromarray(img).save(folder / sub / f"{job.name}.jpg", "JPEG", quality=JPEG_QUALITY)
        Image.fromarray(mask).save(folder / MASKS_DIR / sub / f"{job.name}.png", "PNG")
    iou = float(np.mean(ious)) if ious else None
    meta = _meta(domain, settings, jobs, iou)
    # meta.json last: its presence marks the folder complete
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return iou


def _make_readable(folder: Path) -> None:
    """Give the work folder (made private by ``mkdtemp``) the modes a plain ``mkdir`` would have."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod((stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO) & ~umask)


# =========================================================================== work folders


def _owner_alive(name: str) -> bool:
    """Whether the process that made the hidden work folder ``name`` may still be running."""
    m = re.match(r"^\.[^.]+\.(?:tmp|old)-(.+)-(\d+)-[^-]+$", name)
    if m is None or m.group(1) != host_name():
        return False if m is None else True  # another machine's work folder: leave it alone
    pid = int(m.group(2))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _clean_stale(out_dir: Path, domain: str) -> None:
    """Remove work folders left by interrupted runs; restore a dataset moved aside by an
    interrupted swap if nothing replaced it."""
    final = out_dir / domain
    for entry in sorted(out_dir.glob(f".{domain}.*")):
        if not entry.is_dir() or _owner_alive(entry.name):
            continue
        if ".old-" in entry.name and not final.exists() and (entry / META_FILE).is_file():
            try:
                os.rename(entry, final)
                log.info("restored %s from the interrupted replacement %s", final, entry.name)
                continue
            except OSError:
                pass
        log.info("removing %s left by an interrupted run", entry)
        shutil.rmtree(entry, ignore_errors=True)


def _check_existing(final: Path, requested: dict, keys: Sequence[str] = _REQUESTED_KEYS) -> None:
    """Fail unless the complete folder ``final`` was generated with the ``requested`` settings
    (the values of ``keys``)."""
    try:
        meta = json.loads((final / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {final / META_FILE} ({exc}); regenerate it with "
                          f"`crgan synth --out {final.parent} --overwrite` (overwrite=True in Python)") from None
    differ = [f"{k}={meta.get(k)!r} (asked {requested[k]!r})"
              for k in keys if meta.get(k) != requested[k]]
    if differ:
        raise ConfigError(f"{final} holds a benchmark generated with {', '.join(differ)}; "
                          f"replace it with `crgan synth --out {final.parent} --overwrite` (overwrite=True in "
                          "Python), or choose another folder")


def _settings(seed: object, num_train_ids: object, num_test_ids: object, height: object, width: object,
              mask_quality_name: object, clothing_shift: object, gap: object = GAP_PARTS) -> dict:
    """The checked settings of a generation run, as recorded in meta.json."""
    _check_args(seed, num_train_ids, num_test_ids, height, width)
    if not isinstance(mask_quality_name, str):
        raise ConfigError(f"mask_quality={mask_quality_name!r}: expected the name of a mask quality")
    mask_quality(mask_quality_name)  # an unknown name fails here, listing the known ones
    if isinstance(clothing_shift, bool) or not isinstance(clothing_shift, (int, float)) \
            or not 0 <= clothing_shift <= 10:
        raise ConfigError(f"clothing_shift={clothing_shift!r} is out of range; expected a number in 0..10 (0: off)")
    if isinstance(gap, str) or not all(isinstance(p, str) for p in gap):
        raise ConfigError(f"gap={gap!r}: expected a list of parts out of {', '.join(GAP_PARTS)}")
    with_gap(DOMAINS["synth_b"], DOMAINS["synth_a"], tuple(gap))  # unknown parts fail here
    return {"generator_version": GENERATOR_VERSION, "seed": int(seed), "height": int(height), "width": int(width),
            "num_train_ids": int(num_train_ids), "num_test_ids": int(num_test_ids),
            "mask_quality": mask_quality_name, "clothing_shift": float(clothing_shift),
            "gap": [p for p in GAP_PARTS if p in gap]}


# =========================================================================== entry points


def _dataset(name: object) -> str:
    if not isinstance(name, str) or name not in SYNTH_DATASETS:
        raise ConfigError(f"unknown synthetic dataset {name!r}; expected one of {', '.join(SYNTH_DATASETS)}")
    return name


def generate_domain(out_dir: str | os.PathLike, domain: str, seed: int = 0, num_train_ids: int = NUM_TRAIN_IDS,
                    num_test_ids: int = NUM_TEST_IDS, height: int = HEIGHT, width: int = WIDTH,
                    overwrite: bool = False, progress: bool = True, mask_quality: str = "exact",
                    clothing_shift: float = 0.0, gap: Sequence[str] = GAP_PARTS) -> Path:
    """Write one synthetic dataset to ``<out_dir>/<domain>`` and return that path.

    Args:
        out_dir: the data root; the dataset is written to its sub-folder named ``domain``.
        domain: ``"synth_a"``, ``"synth_b"`` or the oracle ``"synth_a_in_b"`` (see
            :data:`~crgan_lightning.data.synthetic.styles.SYNTH_DATASETS`; the oracle holds
            synth_a's training identities drawn in synth_b, and no test split).
        seed: generation seed (>= 0); the same seed and arguments give the same bytes.
        num_train_ids: training identities (pids ``1..num_train_ids``).
        num_test_ids: test identities (the next pids), each with one query per camera it is seen
            in and gallery images in all those cameras; plus distractors (pid 0).
        height, width: image size in pixels (at least 32 x 16).
        overwrite: replace an existing complete folder written by this generator. Without it, an
            existing complete folder is kept as it is, and an error is raised if it was
            generated with other settings or by another generator version.
        progress: show a progress bar.
        mask_quality: ``"exact"``, ``"segmentation"`` or ``"small-pedestrian"`` (masks degraded
            as a segmentation model's are, to a mean IoU of 0.776 or 0.59; see
            :mod:`crgan_lightning.data.mask_quality`); their mean IoU to the exact masks is logged
            and recorded in meta.json.
        clothing_shift: > 0 makes synth_b's people dress darker (a shift of the clothing
            distribution between the domains); 0, the default, keeps one distribution.
        gap: the parts of the domain gap synth_b keeps (``context``, ``tone``, ``optics``; all by
            default); a part left out takes synth_a's settings (see
            :func:`~crgan_lightning.data.synthetic.styles.with_gap`), to measure its effect.

    The dataset is built in a hidden work folder ``<out_dir>/.<domain>.tmp-...`` and renamed to
    its final name only once complete; work folders left by interrupted runs are removed. A
    folder at ``<out_dir>/<domain>`` that this generator did not write is never touched.
    """
    name = _dataset(domain)
    settings = _settings(seed, num_train_ids, num_test_ids, height, width, mask_quality, clothing_shift, gap)
    if SYNTH_DATASETS[name].is_oracle:
        settings["num_test_ids"] = 0
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output folder {out_dir} is a file; expected a folder (or a path to create)")
    out_dir.mkdir(parents=True, exist_ok=True)
    final = check_output_folder(out_dir / name, WRITER, flag="output folder")
    _clean_stale(out_dir, name)
    if (final / META_FILE).is_file() and not overwrite:
        _check_existing(final, settings)
        log.info("keeping the existing %s (pass overwrite=True to regenerate it)", final)
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{host_name()}-{os.getpid()}-", dir=out_dir))
    try:
        _make_readable(tmp)
        iou = _write_domain(tmp, name, settings, progress)
        replace_folder(tmp, final, WRITER)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if iou is not None:
        log.warning("%s: %s masks, mean IoU %.3f to the exact masks", name, settings["mask_quality"], iou)
    return final


def generate_benchmark(out: str | os.PathLike, seed: int = 0, num_train_ids: int = NUM_TRAIN_IDS,
                       num_test_ids: int = NUM_TEST_IDS, height: int = HEIGHT, width: int = WIDTH,
                       domains: Sequence[str] = DEFAULT_DOMAINS, overwrite: bool = False,
                       progress: bool = True, mask_quality: str = "exact", clothing_shift: float = 0.0,
                       oracle: bool = False, gap: Sequence[str] = GAP_PARTS, truth: bool = False,
                       truth_pairs: int | None = None) -> dict[str, Path]:
    """Write the embedded benchmark (both domains by default, plus the oracle ``synth_a_in_b``
    with ``oracle``) under the data root ``out``.

    Returns ``{name: path}``, e.g. ``{"synth_a": Path("data/synth_a"), "synth_b": ...}``; read a
    dataset back with ``load_reid_dataset("synth_a", out)``. See :func:`generate_domain` for the
    arguments. With ``truth``, also the true renderings of the evaluation pairs
    (``truth_pairs`` of them, 200 by default) in ``<out>/rendering_truth`` (see
    :mod:`~crgan_lightning.data.synthetic.truth`), returned as ``"rendering_truth"``.
    """
    if isinstance(domains, str):
        domains = (domains,)
    names = list(dict.fromkeys([*domains, *(["synth_a_in_b"] if oracle else [])]))
    if not names:
        raise ConfigError(f"domains={domains!r} is empty; expected some of {', '.join(SYNTH_DATASETS)}")
    for name in names:
        _dataset(name)
    _settings(seed, num_train_ids, num_test_ids, height, width, mask_quality, clothing_shift, gap)
    paths = {
        name: generate_domain(out, name, seed, num_train_ids, num_test_ids, height, width, overwrite,
                              progress, mask_quality, clothing_shift, gap)
        for name in names
    }
    if truth:
        from .truth import NUM_TRUTH_PAIRS, TRUTH_FOLDER, generate_truth

        paths[TRUTH_FOLDER] = generate_truth(out, seed, num_train_ids, num_test_ids, height, width, clothing_shift,
                                             gap, truth_pairs or NUM_TRUTH_PAIRS, overwrite, progress)
    return paths
