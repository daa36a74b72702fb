"""Which images a domain holds: the split, file name, identity, camera and image number of
each (:class:`_Job`), planned by :func:`_plan` and rendered by :func:`_render_job`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .appearance import Appearance
from .render import (
    _STREAM_DISTRACTOR_SHOT, _STREAM_SCHEDULE, _STREAM_SHOT, _appearance, _render, _rng,
)
from .shots import Shot, sample_shot
from .styles import GAP_PARTS, SYNTH_DATASETS, DomainStyle

#: The people whose clothing ``clothing_shift`` moves towards dark colours.
SHIFTED_PEOPLE = "synth_b"


def dark_bias(people: str, clothing_shift: float) -> float:
    """The clothing bias of ``people`` under ``clothing_shift`` (only synth_b's people shift)."""
    return float(clothing_shift) if people == SHIFTED_PEOPLE else 0.0


@dataclass(frozen=True)
class _Job:
    split: str
    name: str  # file stem
    pid: int
    cam: int
    index: int  # per (pid, cam) image number, or distractor number for pid 0


def _file_stem(pid: int, cam: int, seq: int, frame: int) -> str:
    """A Market-1501 file stem, e.g. ``0001_c1s3_412345_00`` (``cam`` is 0-based)."""
    return f"{pid:04d}_c{cam + 1}s{seq}_{frame:06d}_00"


def _frame_numbers(rng: np.random.Generator) -> tuple[int, int]:
    """A first frame number and the sequence it falls in."""
    base = int(rng.integers(0, 900_000))
    return base, 1 + (base // 150_000)


def _counts_per_camera(rng: np.random.Generator, cams: list[int], total: int) -> dict[int, int]:
    """``total`` images spread at random over ``cams``, at least one each."""
    counts = {c: 1 for c in cams}
    for c in rng.choice(cams, size=max(total - len(cams), 0), replace=True):
        counts[int(c)] += 1
    return counts


def _identity_jobs(domain: str, seed: int, pid: int, test: bool, num_cameras: int) -> list[_Job]:
    """The images of identity ``pid``: 2 to 5 cameras, with train images, or for a ``test``
    identity a query and gallery images in each camera."""
    rng = _rng(seed, domain, _STREAM_SCHEDULE, pid)
    C = num_cameras
    k = int(rng.integers(2, min(C, 5) + 1)) if C >= 2 else 1
    cams = sorted(int(c) for c in rng.choice(C, size=k, replace=False))
    n = int(rng.integers(6, 11)) if test else int(rng.integers(8, 13))
    counts = _counts_per_camera(rng, cams, max(n, k))
    jobs = []
    for cam in cams:
        base, seq = _frame_numbers(rng)
        splits = (["query"] + ["gallery"] * counts[cam]) if test else ["train"] * counts[cam]
        for j, split in enumerate(splits):
            jobs.append(_Job(split, _file_stem(pid, cam, seq, base + 25 * j), pid, cam, j))
    return jobs


def _distractor_jobs(domain: str, seed: int, num_test_ids: int, num_cameras: int) -> list[_Job]:
    """Gallery images of badly framed people (pid 0): about 10 % of the test ids, at least 3."""
    rng = _rng(seed, domain, _STREAM_SCHEDULE, 0)
    num_distractors = max(3, round(0.1 * num_test_ids))
    per_cam: dict[int, int] = {}
    jobs = []
    for i in range(num_distractors):
        cam = int(rng.integers(num_cameras))
        j = per_cam.get(cam, 0)
        per_cam[cam] = j + 1
        base, seq = _frame_numbers(rng)
        jobs.append(_Job("gallery", _file_stem(0, cam, seq, base + 7 * j), 0, cam, i))
    return jobs


def _plan(domain: str, seed: int, num_train_ids: int, num_test_ids: int) -> list[_Job]:
    """Which images a dataset of :data:`SYNTH_DATASETS` holds: pid, camera, split and file name of each."""
    num_cameras = SYNTH_DATASETS[domain].style.num_cameras
    jobs: list[_Job] = []
    for pid in range(1, num_train_ids + num_test_ids + 1):
        jobs += _identity_jobs(domain, seed, pid, pid > num_train_ids, num_cameras)
    if num_test_ids:
        jobs += _distractor_jobs(domain, seed, num_test_ids, num_cameras)
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):  # cannot happen with the numbering above; guard anyway
        raise RuntimeError(f"{domain}: duplicate file names in the plan")
    return jobs


def _job_scene(domain: str, seed: int, job: _Job, clothing_shift: float = 0.0,
               gap: tuple[str, ...] = GAP_PARTS) -> tuple[DomainStyle, Appearance, Shot, float]:
    """What one planned file of the dataset ``domain`` is drawn from: the style of its contexts'
    cameras and scenes (with the ``gap`` parts of synth_b's difference from synth_a), the
    appearance of its person, its shot (pose, framing, place, light, occluder, passer-by) and the
    clothing bias of its passers-by."""
    ds = SYNTH_DATASETS[domain]
    style = ds.gapped_style(gap)
    bias = dark_bias(ds.people, clothing_shift)
    if job.pid == 0:
        app = _appearance(ds.people, seed, 0, job.index, bias)
        rng = _rng(seed, domain, _STREAM_DISTRACTOR_SHOT, job.index)
        shot = sample_shot(rng, style, job.cam, distractor=True)
    else:
        app = _appearance(ds.people, seed, job.pid, -1, bias)
        shot = sample_shot(_rng(seed, domain, _STREAM_SHOT, job.pid, job.cam, job.index), style, job.cam)
    return style, app, shot, dark_bias(ds.contexts, clothing_shift)


def _render_job(domain: str, seed: int, job: _Job, height: int, width: int,
                clothing_shift: float = 0.0,
                gap: tuple[str, ...] = GAP_PARTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image, person mask and context mask (see :func:`_render`) of one planned file of the
    dataset ``domain``: its people's appearance, drawn in its contexts' cameras and scenes (with
    the ``gap`` parts of synth_b's difference from synth_a)."""
    style, app, shot, bystander_bias = _job_scene(domain, seed, job, clothing_shift, gap)
    return _render(style, seed, app, shot, height, width, True, bystander_bias)
