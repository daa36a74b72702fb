"""Writing files so that an interrupted run never leaves one that looks complete, replacing only
folders the library wrote itself, and reading weight files safely.

Every file the library writes (images, masks, plots, exported datasets) goes through
:func:`atomic_write_bytes`: the bytes are written to a hidden ``.NAME.PID.part`` file beside the
target and renamed over it, so a reader sees either the old file, no file, or the whole new
one. The temporary name ends in ``.part``, not in an image extension, so dataset parsers never
mistake a leftover for an image.

Folders the library writes as a whole (the embedded benchmark's domains, rendered exports) carry
a ``meta.json`` whose ``written_by`` field names their writer (``"crgan synth"``,
``"crgan render"``). :func:`check_output_folder` refuses any other existing folder, a file, or a
folder holding a dataset the command reads, with one message naming it; :func:`replace_folder`
swaps a finished work folder into place, so a reader sees the old complete folder or the new one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import sys
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from .errors import ConfigError

PART_SUFFIX = ".part"
#: The file that marks a folder the library wrote as complete, and names its writer.
META_FILE = "meta.json"
#: Writers recognised in a ``meta.json`` written before ``written_by`` existed: the key they
#: always wrote, and its value.
_LEGACY_MARKS = {"crgan synth": ("generator", "crgan_lightning.data.synthetic"),
                 "crgan render": ("name", "rendered")}


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file renamed into place; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{PART_SUFFIX}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def encode_image(image: np.ndarray, suffix: str, jpeg_quality: int = 95) -> bytes:
    """Encode a uint8 RGB (H, W, 3) or grayscale (H, W) array as ``.jpg`` or ``.png`` bytes."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise OSError(f"could not encode a {image.shape} image as {suffix}")
    return buf.tobytes()


def atomic_save_image(path: str | os.PathLike, image: np.ndarray, jpeg_quality: int = 95) -> Path:
    """Save a uint8 RGB or grayscale array atomically; the format follows the file's suffix."""
    path = Path(path)
    return atomic_write_bytes(path, encode_image(image, path.suffix, jpeg_quality))


def remove_leftovers(folder: str | os.PathLike) -> int:
    """Delete temporary ``.part`` files an interrupted writer left under ``folder``; returns how many."""
    count = 0
    for tmp in Path(folder).rglob(f".*{PART_SUFFIX}"):
        tmp.unlink()
        count += 1
    return count


# ----------------------------------------------------------------------------- owned folders


def read_meta(folder: str | os.PathLike) -> dict | None:
    """The ``meta.json`` of ``folder`` as a dict, or None when it is absent or unreadable."""
    try:
        meta = json.loads((Path(folder) / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def written_by(folder: str | os.PathLike) -> str | None:
    """Which of the library's writers made ``folder`` (``"crgan synth"``, ``"crgan render"``),
    read from its ``meta.json``; None for any other folder."""
    meta = read_meta(folder)
    if meta is None:
        return None
    if isinstance(meta.get("written_by"), str):
        return meta["written_by"]
    for writer, (key, value) in _LEGACY_MARKS.items():
        if meta.get(key) == value:
            return writer
    return None


def _overlaps(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def check_output_folder(out: str | os.PathLike, writer: str, flag: str = "--out",
                        protected: Iterable[str | os.PathLike] = ()) -> Path:
    """Check that ``writer`` may write the folder ``out``; returns it as a Path.

    Allowed: a path that does not exist yet, an empty folder, or a folder whose ``meta.json`` says
    ``writer`` made it. Refused with a :class:`~crgan_lightning.errors.ConfigError` naming the
    path: a file, any other non-empty folder, and a path equal to, inside or around one of
    ``protected`` (the datasets the command reads)."""
    out = Path(out).expanduser()
    for folder in protected:
        if _overlaps(out, Path(folder).expanduser()):
            raise ConfigError(f"{flag} {out} overlaps {folder}, a dataset this command reads; "
                              "choose a folder outside it")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"{flag} {out} is a file; expected a folder to create (or an earlier `{writer}` output)")
    if out.is_dir() and any(out.iterdir()) and written_by(out) != writer:
        raise ConfigError(f"{flag} {out} is a folder that `{writer}` did not write (no {META_FILE} of its own); "
                          "nothing was changed: choose a new or empty folder")
    return out


RUN_MARKER = ".crgan-run.json"
_RUN_ENTRY = re.compile(r"^(seed\d+|compare\.json|\..*)$")


def claim_run_folder(out: str | os.PathLike, writer: str, flag: str = "--out", reuses: tuple[str, ...] = ()) -> Path:
    """Make ``out`` the run folder of ``writer`` (``"crgan demo"``, ``"crgan compare"``), creating it
    and its :data:`RUN_MARKER`; returns it. A folder that ``writer`` (or one of the writers it
    ``reuses`` the runs of) made earlier is reused (its runs continue). A file, or a non-empty
    folder that holds anything but ``seed<N>`` runs, is refused with a
    :class:`~crgan_lightning.errors.ConfigError` naming it."""
    out = Path(out).expanduser()
    marker = out / RUN_MARKER
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"{flag} {out} is a file; expected a run folder to create (or an earlier `{writer}` run)")
    if marker.is_file():
        try:
            owner = json.loads(marker.read_text()).get("written_by")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner != writer and owner not in reuses:
            raise ConfigError(f"{flag} {out} holds runs of `{owner}`, not of `{writer}`; choose another folder")
    elif out.is_dir() and not all(_RUN_ENTRY.match(p.name) for p in out.iterdir()):
        raise ConfigError(f"{flag} {out} is a folder that `{writer}` did not write (no {RUN_MARKER}); "
                          "nothing was changed: choose a new or empty folder")
    if not marker.is_file():
        atomic_write_bytes(marker, json.dumps({"written_by": writer}).encode())
    return out


def host_name() -> str:
    """This machine's name, safe in a file name: hidden work folders carry it (with the process id)
    so a writer can tell its own leftovers from another machine's on a shared file system."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


#: The list of files a writer wrote into its folder (one relative path a line): what a later
#: ``--overwrite`` may remove. Anything else in the folder belongs to the user and is kept.
MANIFEST_FILE = ".crgan-manifest.txt"
#: What a writer wrote in a folder written before manifests existed: its images and masks and
#: ``meta.json``.
_LEGACY_OWN_SUFFIXES = (".jpg", ".jpeg", ".png", ".json")


def write_manifest(folder: str | os.PathLike) -> Path:
    """List every file now under ``folder`` (the writer's own work folder, just before it is moved
    into place) in its :data:`MANIFEST_FILE`."""
    folder = Path(folder)
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    return atomic_write_bytes(folder / MANIFEST_FILE, ("\n".join(names) + "\n").encode())


def written_files(folder: str | os.PathLike) -> set[str] | None:
    """The relative paths ``folder``'s manifest lists (None when it has no manifest)."""
    try:
        text = (Path(folder) / MANIFEST_FILE).read_text()
    except OSError:
        return None
    return {line for line in text.splitlines() if line} | {MANIFEST_FILE}


def _foreign_files(folder: Path) -> list[str]:
    """The files under ``folder`` its writer did not write: not in its manifest (in a folder without
    one, anything but images, masks and ``.json`` files), nor a writer's temporary leftover."""
    own = written_files(folder)
    found = []
    for p in sorted(folder.rglob("*")):
        name = str(p.relative_to(folder))
        if not p.is_file() or p.name.endswith(PART_SUFFIX):
            continue
        mine = name in own if own is not None else p.suffix.lower() in _LEGACY_OWN_SUFFIXES
        if not mine:
            found.append(name)
    return found


def replace_folder(work: str | os.PathLike, final: str | os.PathLike, writer: str) -> Path:
    """Move the finished folder ``work`` to ``final``, with a manifest of the files in it. An
    existing ``final`` must be empty or have been made by ``writer`` (else
    :class:`~crgan_lightning.errors.ConfigError`, nothing moved); it is moved aside first, the
    files in it that ``writer`` did not write (a user's ``NOTES.txt``) are moved into the new
    folder (a name the writer now uses gets a ``.kept`` suffix) and the rest is deleted only once
    ``work`` is in place (put back if that fails). The kept files are named on stderr."""
    work, final = Path(work), Path(final)
    check_output_folder(final, writer)
    write_manifest(work)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{host_name()}-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(final, old)
    try:
        os.replace(work, final)
    except OSError:
        if old is not None and not final.exists():
            os.replace(old, final)
        raise
    if old is not None:
        kept = []
        for name in _foreign_files(old):
            target = final / name
            if target.exists():  # the writer writes this path now: the user's file keeps another name
                target = target.with_name(f"{target.name}.kept")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old / name, target)
            kept.append(str(target.relative_to(final)))
        shutil.rmtree(old, ignore_errors=True)
        if kept:  # said where the user reads (a notebook's or a terminal's stderr), not only in a log
            print(f"kept {len(kept)} file(s) in {final} that `{writer}` did not write: {', '.join(kept)}",
                  file=sys.stderr)
    return final
