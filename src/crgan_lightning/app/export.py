"""Export a rendered dataset to disk in the Market-1501 layout.

``crgan render --ckpt CRGAN.ckpt --source market --target duke --out DIR`` renders every source
training image into ``contexts_per_image`` target contexts with a translator (a CR-GAN or SPGAN
checkpoint, or ``--ckpt cut_and_paste`` / ``cut_and_fill``; see :mod:`crgan_lightning.translators`) and writes::

    DIR/bounding_box_train/{pid:04d}_c{cam}s1_{index:06d}_{k:02d}.jpg   (source pid, target camera)
    DIR/query/, DIR/bounding_box_test/                                   (the target's test images)
    DIR/meta.json

so any re-id toolkit that reads Market-1501 can train on it (this library reads it back with
``load_reid_dataset("rendered", DIR)``). Writing goes to ``DIR.partial/`` and every image is
written through a temporary file renamed into place: an interrupted export resumes where it
stopped (``resume`` is the default), and ``DIR`` appears only when complete.

``DIR`` must be new, empty, or an earlier export (its ``meta.json`` says ``crgan render`` wrote it;
replaced only with ``overwrite``). Any other folder, a file, or a folder overlapping the source or
target dataset is refused with one message and left as it is.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import load_reid_dataset
from ..data.datasets import SPLIT_FOLDERS
from ..data.images import read_image
from ..data.masks import build_mask_provider
from ..data.transforms import apply_transforms, build_transforms
from ..errors import ConfigError
from ..fileio import (META_FILE, atomic_save_image, atomic_write_bytes, check_output_folder, remove_leftovers,
                      replace_folder, written_by)
from ..metrics.plots import to_picture
from ..checkpoints import read_checkpoint
from ..translators import load_translator, named_translator, translator_fingerprint

log = logging.getLogger(__name__)

WRITER = "crgan render"
MANIFEST = ".export.json"


def _check_partial(partial: Path, settings: dict) -> None:
    """Resume ``partial`` if an export of the same settings started it, start it afresh if an export
    of other settings did; refuse anything else (it is not ours to delete)."""
    manifest = partial / MANIFEST
    if not partial.exists():
        return
    if not partial.is_dir() or (not manifest.is_file() and any(partial.iterdir())):
        raise ConfigError(f"{partial} exists and is not an unfinished `{WRITER}` export (no {MANIFEST}); "
                          "move it away or choose another --out")
    try:
        made_with = json.loads(manifest.read_text()) if manifest.is_file() else None
    except (OSError, ValueError):
        made_with = None
    if made_with != settings:  # a partial export of other settings (or another checkpoint): start over
        log.warning("restarting %s: it was started with other settings or another checkpoint", partial)
        shutil.rmtree(partial)
    else:
        remove_leftovers(partial)


def _copy_test_split(samples, folder: Path, height: int, width: int) -> None:
    """Target query/gallery images under Market-style names (camera and pid kept), at ``height`` x
    ``width`` like the rendered training images (copied byte for byte when they already are)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(samples):
        dst = folder / f"{s.pid:04d}_c{s.camid + 1}s1_{i:06d}_00.jpg"
        if dst.exists():
            continue
        image = read_image(s.path)
        if image.shape[:2] != (height, width):
            atomic_save_image(dst, cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
        elif Path(s.path).suffix.lower() in (".jpg", ".jpeg"):
            atomic_write_bytes(dst, Path(s.path).read_bytes())
        else:
            atomic_save_image(dst, image)


def trained_size(ckpt: str | os.PathLike) -> tuple[int, int] | None:
    """``(height, width)`` of the images a translator checkpoint's generator was trained on (the
    data module's settings saved with it); None for a named translator (``cut_and_paste``,
    ``cut_and_fill``) or a checkpoint without them."""
    if named_translator(ckpt) or not Path(ckpt).expanduser().is_file():
        return None
    data = read_checkpoint(ckpt, "checkpoint", "a CR-GAN or SPGAN checkpoint").get("datamodule_hyper_parameters") or {}
    height, width = data.get("height"), data.get("width")
    return (int(height), int(width)) if isinstance(height, int) and isinstance(width, int) else None


def render_size(ckpt: str | os.PathLike, target_images: list[str], height: int | None = None,
                width: int | None = None) -> tuple[int, int]:
    """The size an export is written at: the size the generator was trained at (a size given that
    differs from it is refused), else the size given, else that of the target's images."""
    trained = trained_size(ckpt)
    if trained is not None:
        if (height or trained[0], width or trained[1]) != trained:
            raise ConfigError(f"--height {height} --width {width}: the generator of {ckpt} was trained on "
                              f"{trained[0]}x{trained[1]} images and renders at that size; omit --height/--width")
        return trained
    if height and width:
        return height, width
    if height or width:
        raise ConfigError("--height and --width go together (or omit both to keep the target's image size)")
    if not target_images:
        raise ConfigError("the target has no training images to take the rendering size from; give --height/--width")
    return tuple(read_image(target_images[0]).shape[:2])


def export_rendered(
    ckpt: str | os.PathLike,
    source: str,
    target: str,
    root: str | os.PathLike,
    out: str | os.PathLike,
    height: int | None = None,
    width: int | None = None,
    contexts_per_image: int = 1,
    batch_size: int = 32,
    seed: int = 0,
    overwrite: bool = False,
    device: str = "cpu",
    progress: bool = True,
    masks: str = "auto",
) -> Path:
    """Render the source training set into target contexts and write it to ``out`` (see the module
    docstring). Returns ``out``. An existing complete export is kept unless ``overwrite``. Every
    split is written at one size (:func:`render_size`: the generator's training size by default).

    ``ckpt`` is a translator spec (CR-GAN or SPGAN checkpoint, ``cut_and_paste`` or ``cut_and_fill``); ``masks``
    (``auto``/``folder``/``prior``) says where cut-and-paste takes the source masks from."""
    if contexts_per_image < 1 or batch_size < 1:
        raise ConfigError(f"contexts_per_image={contexts_per_image} and batch_size={batch_size} must be >= 1")
    src, tgt = load_reid_dataset(source, root), load_reid_dataset(target, root)
    height, width = render_size(ckpt, [t.path for t in tgt.train], height, width)
    out = check_output_folder(out, WRITER, protected=(src.root, tgt.root))
    if written_by(out) == WRITER and not overwrite:
        raise ConfigError(f"{out} already holds a complete export; pass --overwrite to replace it")
    if tgt.num_cameras > 9:
        raise ConfigError(
            f"{tgt.name} has {tgt.num_cameras} cameras; Market-1501 file names hold one camera digit (at most 9)"
        )
    translator = load_translator(ckpt, map_location=device)
    mask_of = build_mask_provider(masks, src) if translator.needs_masks else None
    if translator.needs_masks and mask_of is None:
        raise ConfigError(f"the {translator.kind} translator needs source masks; masks={masks!r} gives none")
    target_mask_of = build_mask_provider(masks, tgt) if translator.needs_target_masks else None
    if translator.needs_target_masks and target_mask_of is None:
        raise ConfigError(f"the {translator.kind} translator needs the target masks; masks={masks!r} gives none")
    transform = build_transforms(height, width, train=False)
    partial = out.with_name(out.name + ".partial")
    settings = {"translator": translator_fingerprint(translator), "source": src.name, "target": tgt.name,
                "height": height, "width": width, "contexts_per_image": contexts_per_image, "seed": seed}
    _check_partial(partial, settings)
    manifest = partial / MANIFEST
    train_dir = partial / SPLIT_FOLDERS["train"]
    train_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(manifest, json.dumps(settings).encode())

    rng = np.random.default_rng(seed)  # the whole pairing is drawn up front: resuming draws the same
    contexts = rng.integers(0, len(tgt.train), size=(len(src.train), contexts_per_image))
    jobs = [(i, k) for i in range(len(src.train)) for k in range(contexts_per_image)]

    def name(i: int, k: int) -> str:
        t = tgt.train[contexts[i, k]]
        return f"{src.train[i].pid:04d}_c{t.camid + 1}s1_{i:06d}_{k:02d}.jpg"

    todo = [(i, k) for i, k in jobs if not (train_dir / name(i, k)).exists()]

    def load(path: str) -> torch.Tensor:
        return apply_transforms(transform, read_image(path), None)["image"]

    def load_mask(path: str, provider=None) -> torch.Tensor:
        return torch.from_numpy((provider or mask_of)(path, height, width)).float().unsqueeze(0)

    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=f"render {src.name}->{tgt.name}",
               unit="img", disable=not progress)
    with torch.no_grad():
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            x_s = torch.stack([load(src.train[i].path) for i, _ in chunk]).to(device)
            x_t = torch.stack([load(tgt.train[contexts[i, k]].path) for i, k in chunk]).to(device)
            m_s = torch.stack([load_mask(src.train[i].path) for i, _ in chunk]).to(device) if mask_of else None
            m_t = (torch.stack([load_mask(tgt.train[contexts[i, k]].path, target_mask_of) for i, k in chunk])
                   .to(device) if target_mask_of else None)
            for (i, k), image in zip(chunk, translator.render(x_s, x_t, m_s, m_t).cpu()):
                atomic_save_image(train_dir / name(i, k), to_picture(image))
            bar.update(len(chunk))
    bar.close()
    _copy_test_split(tgt.query, partial / SPLIT_FOLDERS["query"], height, width)
    _copy_test_split(tgt.gallery, partial / SPLIT_FOLDERS["gallery"], height, width)
    meta = {"name": "rendered", "written_by": WRITER, "num_cameras": tgt.num_cameras, "source": src.name,
            "target": tgt.name, "translator": str(ckpt), "method": translator.kind,
            "contexts_per_image": contexts_per_image, "seed": seed, "height": height, "width": width,
            "num_images": {"train": len(jobs)}}
    atomic_write_bytes(partial / META_FILE, json.dumps(meta, indent=2).encode())
    return replace_folder(partial, out, WRITER)
