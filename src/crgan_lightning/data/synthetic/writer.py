"""Writing the benchmark: a domain's images, masks and ``meta.json`` built in a hidden work
folder and swapped into place when complete (:func:`generate_domain`), for one or both domains
(:func:`generate_benchmark`)."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from ...errors import ConfigError
from ..datasets import SPLIT_FOLDERS
from ..masks import MASKS_DIR
from .arguments import _check_args, _domain
from .plan import _Job, _plan, _render_job
from .styles import DOMAINS

log = logging.getLogger(__name__)

META_FILE = "meta.json"
JPEG_QUALITY = 95
GENERATOR_VERSION = 1
GENERATOR_NAME = __package__  # "crgan_lightning.data.synthetic", as recorded in meta.json

_REQUESTED_KEYS = ("seed", "height", "width", "num_train_ids", "num_test_ids")
_OURS = set(SPLIT_FOLDERS.values()) | {MASKS_DIR}  # what a generated folder holds before meta.json


def _meta(domain: str, seed: int, num_train_ids: int, num_test_ids: int, height: int, width: int,
          jobs: list[_Job]) -> dict:
    """The content of a domain's ``meta.json``."""
    style = DOMAINS[domain]
    counts = {split: sum(1 for j in jobs if j.split == split) for split in SPLIT_FOLDERS}
    return {
        "name": domain,
        "description": style.description,
        "num_cameras": style.num_cameras,
        "seed": seed,
        "height": height,
        "width": width,
        "num_train_ids": num_train_ids,
        "num_test_ids": num_test_ids,
        "num_distractors": sum(1 for j in jobs if j.pid == 0),
        "num_images": counts,
        "splits": dict(SPLIT_FOLDERS),
        "masks": MASKS_DIR,
        "cameras": [asdict(c) for c in style.cameras],
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "jpeg_quality": JPEG_QUALITY,
    }


def _write_domain(folder: Path, domain: str, seed: int, num_train_ids: int, num_test_ids: int, height: int,
                  width: int, progress: bool) -> None:
    """Write every image and mask of ``domain`` into ``folder``, then its ``meta.json``."""
    jobs = _plan(domain, seed, num_train_ids, num_test_ids)
    for sub in SPLIT_FOLDERS.values():
        (folder / sub).mkdir(parents=True)
        (folder / MASKS_DIR / sub).mkdir(parents=True)
    for job in tqdm(jobs, desc=f"synth {domain}", unit="img", disable=not progress):
        img, mask = _render_job(domain, seed, job, height, width)
        sub = SPLIT_FOLDERS[job.split]
        Image.fromarray(img).save(folder / sub / f"{job.name}.jpg", "JPEG", quality=JPEG_QUALITY)
        Image.fromarray(mask).save(folder / MASKS_DIR / sub / f"{job.name}.png", "PNG")
    meta = _meta(domain, seed, num_train_ids, num_test_ids, height, width, jobs)
    # meta.json last: its presence marks the folder complete
    (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


# =========================================================================== work folders


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _owner_alive(name: str) -> bool:
    """Whether the process that made the hidden work folder ``name`` may still be running."""
    m = re.match(r"^\.[^.]+\.(?:tmp|old)-(.+)-(\d+)-[^-]+$", name)
    if m is None or m.group(1) != _host():
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


def _check_existing(final: Path, requested: dict) -> None:
    """Fail unless the complete folder ``final`` was generated with the ``requested`` arguments."""
    try:
        meta = json.loads((final / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {final / META_FILE} ({exc}); "
                          "pass overwrite=True to regenerate it") from None
    differ = [f"{k}={meta.get(k)!r} (asked {requested[k]!r})"
              for k in _REQUESTED_KEYS if meta.get(k) != requested[k]]
    if differ:
        raise ConfigError(f"{final} already holds a benchmark generated with {', '.join(differ)}; "
                          "pass overwrite=True (crgan synth --overwrite) to replace it, "
                          "or choose another folder")


def _swap_into_place(tmp: Path, final: Path, domain: str, overwrite: bool) -> None:
    """Rename the finished ``tmp`` folder to ``final``; an existing ``final`` is first moved aside
    (only when ``overwrite``, or when it is an incomplete leftover) and deleted afterwards."""
    old = None
    if final.exists():
        if (final / META_FILE).is_file() and not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)  # another run finished first
            return
        old = final.parent / f".{domain}.old-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(final, old)
    try:
        os.rename(tmp, final)
    except OSError:
        if old is not None and not final.exists():
            os.rename(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# =========================================================================== entry points


def generate_domain(out_dir: str | os.PathLike, domain: str, seed: int = 0, num_train_ids: int = 120,
                    num_test_ids: int = 100, height: int = 128, width: int = 64, overwrite: bool = False,
                    progress: bool = True) -> Path:
    """Write one synthetic domain to ``<out_dir>/<domain>`` and return that path.

    Args:
        out_dir: the data root; the domain is written to its sub-folder named ``domain``.
        domain: ``"synth_a"`` or ``"synth_b"`` (see :data:`DOMAINS`).
        seed: generation seed (>= 0); the same seed and arguments give the same bytes.
        num_train_ids: training identities (pids ``1..num_train_ids``).
        num_test_ids: test identities (the next pids), each with one query per camera it is seen
            in and gallery images in all those cameras; plus a few distractors (pid 0).
        height, width: image size in pixels (at least 32 x 16).
        overwrite: replace an existing complete folder. Without it, an existing complete folder
            (one with ``meta.json``) is kept as it is, and an error is raised if it was generated
            with other arguments.
        progress: show a progress bar.

    The domain is built in a hidden work folder ``<out_dir>/.<domain>.tmp-...`` and renamed to
    its final name only once complete; work folders left by interrupted runs are removed.
    """
    style = _domain(domain)
    _check_args(seed, num_train_ids, num_test_ids, height, width)
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output folder {out_dir} is a file; expected a folder (or a path to create)")
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / style.name
    _clean_stale(out_dir, style.name)
    requested = {"seed": seed, "height": height, "width": width, "num_train_ids": num_train_ids,
                 "num_test_ids": num_test_ids}
    if (final / META_FILE).is_file() and not overwrite:
        _check_existing(final, requested)
        log.info("keeping the existing %s (pass overwrite=True to regenerate it)", final)
        return final
    if final.exists() and not (final / META_FILE).is_file():
        if not final.is_dir() or not {p.name for p in final.iterdir()} <= _OURS:
            raise ConfigError(f"{final} exists and is not a generated {style.name} folder (no {META_FILE}); "
                              "move it away or choose another output folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{style.name}.tmp-{_host()}-{os.getpid()}-", dir=out_dir))
    try:
        _write_domain(tmp, style.name, int(seed), int(num_train_ids), int(num_test_ids), int(height),
                      int(width), progress)
        _swap_into_place(tmp, final, style.name, True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def generate_benchmark(out: str | os.PathLike, seed: int = 0, num_train_ids: int = 120,
                       num_test_ids: int = 100, height: int = 128, width: int = 64,
                       domains: Sequence[str] = ("synth_a", "synth_b"), overwrite: bool = False,
                       progress: bool = True) -> dict[str, Path]:
    """Write the embedded benchmark (both domains by default) under the data root ``out``.

    Returns ``{domain: path}``, e.g. ``{"synth_a": Path("data/synth_a"), "synth_b": ...}``; read a
    domain back with ``load_reid_dataset("synth_a", out)``. See :func:`generate_domain` for the
    arguments. At the default size (128 x 64, 120 + 100 ids) each domain holds about 2,400 images.
    """
    if isinstance(domains, str):
        domains = (domains,)
    names = list(dict.fromkeys(domains))
    if not names:
        raise ConfigError(f"domains={domains!r} is empty; expected some of {', '.join(DOMAINS)}")
    for name in names:
        _domain(name)
    _check_args(seed, num_train_ids, num_test_ids, height, width)
    return {
        name: generate_domain(out, name, seed, num_train_ids, num_test_ids, height, width, overwrite,
                              progress)
        for name in names
    }
