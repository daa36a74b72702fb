"""The rendering-fidelity table: every translator's renderings of the embedded benchmark's
evaluation pairs against the true renderings (``crgan quality``, ``make compare``).

The embedded benchmark draws, for a fixed set of (synth_a test image, synth_b training image)
pairs, what a perfect context renderer would make of them (:mod:`crgan_lightning.data.synthetic.truth`).
:func:`fidelity_table` renders the same pairs with each translator -- the source and target
images as written on disk (JPEG), with the person masks of a chosen data root -- and scores each
rendering against its truth with :func:`crgan_lightning.metrics.fidelity.fidelity_scores`: PSNR
and SSIM on the whole image, the person (the truth's person mask) and the background; the mean
CIEDE2000 colour difference on the person; the high-frequency figure (luminance power at 1/2,
1/4 and 1/8 cycles per pixel over the truth's, in dB: negative for a blurrier rendering) and the
grid figure (how far the spectrum peaks at those frequencies above its surroundings, minus the
truth's, in dB: positive only for a periodic pattern; blur and sharpening leave it near 0).

Two reference rows frame the translators:

* **truth, noise redrawn** -- the same true renderings with another draw of the sensor noise:
  what a perfect renderer scores (noise cannot be predicted), and the spread of the grid figure
  between two equally true images (a translator "within the truth's spread" has a grid figure
  no larger than this row's mean + sd);
* **source image** -- no rendering at all: the source image as it is.

This module is command-line glue: it reads datasets and checkpoints.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.masks import MASKS_DIR
from ..data.synthetic.truth import (
    NUM_TRUTH_PAIRS, TRUTH_SOURCE, TRUTH_TARGET, TRUTH_VERSION, TruthSet, benchmark_settings, build_truth,
)
from ..errors import ConfigError, DatasetError
from ..fileio import META_FILE
from ..metrics.fidelity import GRID_PERIODS, fidelity_scores
from ..translators import Translator, load_translator, named_translator

#: The columns of the table, in order: (key of fidelity_scores, heading, digits).
COLUMNS = (("psnr", "PSNR", 2), ("psnr_person", "PSNR pers", 2), ("psnr_background", "PSNR bg", 2),
           ("psnr_context", "PSNR ctx", 2), ("ssim", "SSIM", 3), ("ssim_person", "SSIM pers", 3),
           ("ssim_background", "SSIM bg", 3),
           ("delta_e_person", "dE00 pers", 2), ("hf_db", "HF dB", 2), ("grid_db", "grid dB", 2))
TRUTH_REDRAWN = "truth, noise redrawn"
SOURCE_IMAGE = "source image (not rendered)"


def fidelity_available(source: str, target: str, root: str | os.PathLike) -> bool:
    """Whether the pair has a rendering truth: the embedded pair, with both domains under ``root``."""
    return (source, target) == (TRUTH_SOURCE, TRUTH_TARGET) and all(
        (Path(root).expanduser() / name / META_FILE).is_file() for name in (TRUTH_SOURCE, TRUTH_TARGET))


def _mask_quality_of(root: Path) -> str:
    """The mask quality recorded in ``<root>/synth_a/meta.json``."""
    try:
        return str(json.loads((root / TRUTH_SOURCE / META_FILE).read_text()).get("mask_quality", "exact"))
    except (OSError, ValueError):
        return "?"


def _read(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert(mode))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path} ({exc}); expected an image of the embedded benchmark "
                           "(regenerate it with `crgan synth`)") from None


def _images(paths: Sequence[Path]) -> torch.Tensor:
    """RGB files -> (N, 3, H, W) float in [-1, 1]."""
    arr = np.stack([_read(p, "RGB") for p in paths]).astype(np.float32)
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def _masks(paths: Sequence[Path]) -> torch.Tensor:
    """Mask files -> (N, 1, H, W) float in {0, 1} (pixels >= 128 are the person)."""
    return torch.from_numpy((np.stack([_read(p, "L") for p in paths]) >= 128).astype(np.float32)).unsqueeze(1)


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2) / 127.5 - 1.0


def _summary(method: str, scores: Mapping[str, torch.Tensor], **extra) -> dict:
    """Mean of every figure over the pairs (NaN-free: an empty region is left out), and the sd
    over the pairs of the grid figure and of each period's (``grid_db_sd``, ``grid_db_p<p>_sd``)."""
    row: dict = {"method": method, **extra}
    for key, values in scores.items():
        v = values.double()
        v = v[~torch.isnan(v)]
        row[key] = float(v.mean()) if len(v) else None
    for key in [k for k in scores if k.startswith("grid_db")]:
        grid = scores[key].double()
        row[f"{key}_sd"] = float(grid.std()) if len(grid) > 1 else 0.0
    return row


def _score_all(rendered: list[torch.Tensor], truth: torch.Tensor, person: torch.Tensor,
               batch_size: int, context: torch.Tensor | None) -> dict[str, torch.Tensor]:
    chunks = [fidelity_scores(r, truth[i:i + batch_size], person[i:i + batch_size],
                              context_person=None if context is None else context[i:i + batch_size])
              for r, i in zip(rendered, range(0, len(truth), batch_size))]
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def _pair_files(domain: str, pairs: Sequence, folder: Path, masks: bool = False) -> list[Path]:
    """The image (or mask) files of the pairs' source or target images under ``folder``."""
    names = [p.source_file if domain == TRUTH_SOURCE else p.target_file for p in pairs]
    if masks:
        return [folder / domain / MASKS_DIR / Path(name).with_suffix(".png") for name in names]
    return [folder / domain / name for name in names]


def render_evaluation_pairs(translator: Translator, pairs: Sequence, root: str | os.PathLike,
                            mask_root: str | os.PathLike | None = None, batch_size: int = 32,
                            device: str = "cpu") -> torch.Tensor:
    """One translator's renderings of the evaluation pairs: ``translator`` (from
    :func:`~crgan_lightning.translators.load_translator`), ``pairs`` (a
    :class:`~crgan_lightning.data.synthetic.truth.TruthSet`'s ``pairs``), the source and target
    images of ``root`` as written on disk and the masks of ``mask_root`` (``root`` when None) ->
    ``(N, 3, H, W)`` float in [-1, 1] on the CPU, in the order of ``pairs``."""
    root = Path(root).expanduser()
    mask_root = root if mask_root is None else Path(mask_root).expanduser()
    rendered = []
    with torch.no_grad():
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i:i + batch_size]
            m_s = _masks(_pair_files(TRUTH_SOURCE, chunk, mask_root, True)) if translator.needs_masks else None
            m_t = _masks(_pair_files(TRUTH_TARGET, chunk, mask_root, True)) if translator.needs_target_masks else None
            out = translator.render(_images(_pair_files(TRUTH_SOURCE, chunk, root)).to(device),
                                    _images(_pair_files(TRUTH_TARGET, chunk, root)).to(device),
                                    None if m_s is None else m_s.to(device),
                                    None if m_t is None else m_t.to(device))
            rendered.append(out.float().clamp(-1, 1).cpu())
    return torch.cat(rendered)


def fidelity_table(
    renderers: Sequence[str | os.PathLike | tuple[str | os.PathLike, str | os.PathLike]],
    root: str | os.PathLike = "data",
    num_pairs: int = NUM_TRUTH_PAIRS,
    batch_size: int = 32,
    device: str = "cpu",
    truth: TruthSet | None = None,
) -> dict:
    """Score each translator's renderings of the evaluation pairs against the true renderings.

    Args:
        renderers: translator specs (a CR-GAN or SPGAN checkpoint, ``cut_and_paste``, ``cut_and_fill``), each alone
            (masks from ``root``) or as ``(spec, mask_root)``: a data root holding the same
            benchmark with other person masks (``crgan synth --mask-quality segmentation``), whose
            masks the translator reads (cut-and-paste cuts the person out with them). One row each.
        root: the data root of the benchmark (``synth_a`` and ``synth_b``); its seed and settings
            give the evaluation pairs and their truth.
        num_pairs: evaluation pairs (200 by default; clipped to the unoccluded source test images).
        batch_size: pairs per forward pass; device: where the translators run.
        truth: the truth set, when already built (:func:`~crgan_lightning.data.synthetic.build_truth`).

    Returns:
        ``{"root", "num_pairs", "seed", "height", "width", "truth_version", "periods", "rows"}``;
        ``rows`` holds the two reference rows (:data:`TRUTH_REDRAWN`, :data:`SOURCE_IMAGE`) and then
        one per renderer: ``{"method", "checkpoint", "masks", <mean of each figure>, "grid_db_sd",
        "grid_db_p<period>_sd"}``.
        :func:`format_fidelity_table` prints it.
    """
    if not isinstance(num_pairs, int) or isinstance(num_pairs, bool) or num_pairs < 1:
        raise ConfigError(f"num_pairs={num_pairs!r}; expected an integer >= 1")
    root = Path(root).expanduser()
    settings = benchmark_settings(root)
    specs = [(r, root) if isinstance(r, (str, os.PathLike)) else (r[0], Path(r[1]).expanduser()) for r in renderers]
    for _, mask_root in specs:
        other = benchmark_settings(mask_root)
        if other != settings:
            differ = ", ".join(k for k in settings if settings[k] != other.get(k))
            raise ConfigError(f"mask root {mask_root} holds another benchmark than {root} ({differ} differ); "
                              "expected the same images with other masks (crgan synth with the same arguments)")
    translators = [(spec, mask_root, load_translator(spec, map_location=device)) for spec, mask_root in specs]
    truth = truth if truth is not None else build_truth(root, num_pairs)
    redrawn = build_truth(root, len(truth), redraw_noise=True)
    pairs = truth.pairs
    true_images, person = _as_tensor(truth.images), torch.from_numpy(truth.masks >= 128).float().unsqueeze(1)
    chunks = [pairs[i:i + batch_size] for i in range(0, len(pairs), batch_size)]
    context = None  # PSNR ctx needs the target's exact person masks: those of a root written with them
    if _mask_quality_of(root) == "exact":
        context = torch.cat([_masks(_pair_files(TRUTH_TARGET, c, root, masks=True)) for c in chunks])
    rows = [_summary(TRUTH_REDRAWN, fidelity_scores(_as_tensor(redrawn.images), true_images, person,
                                                    context_person=context)),
            _summary(SOURCE_IMAGE, _score_all([_images(_pair_files(TRUTH_SOURCE, c, root)) for c in chunks],
                                              true_images, person, batch_size, context))]
    for spec, mask_root, translator in translators:
        rendered = render_evaluation_pairs(translator, pairs, root, mask_root, batch_size, device)
        reads_masks = translator.needs_masks or translator.needs_target_masks
        rows.append(_summary(translator.kind, _score_all(list(rendered.split(batch_size)), true_images, person,
                                                         batch_size, context),
                             checkpoint=str(spec), masks=_mask_quality_of(mask_root) if reads_masks else None))
    return {"root": str(root), "num_pairs": len(pairs), "seed": settings["seed"], "height": settings["height"],
            "width": settings["width"], "truth_version": TRUTH_VERSION, "periods": list(GRID_PERIODS), "rows": rows}


def _checkpoint_name(spec: str, extra: int) -> str:
    """A checkpoint's file, under the stage folder of a run's ``<stage>/checkpoints/`` (left out),
    and ``extra`` more of the folders above it."""
    path = Path(spec)
    depth = extra + (1 if path.parent.name == "checkpoints" else 0)
    folders = [part for part in path.parent.parts if part not in ("checkpoints", path.anchor)]
    return "/".join([*folders[max(0, len(folders) - depth):], path.name])


def _labels(rows: Sequence[Mapping]) -> list[str]:
    """Each row's name: the method, its masks and its checkpoint, named by the checkpoint's file and
    as many folders above it as tell the table's different checkpoints apart (``crgan/last.ckpt``,
    then ``demo/seed0/crgan/last.ckpt`` beside ``demo_comp/seed0/crgan/last.ckpt``)."""
    specs = sorted({str(r["checkpoint"]) for r in rows
                    if r.get("checkpoint") and not named_translator(r["checkpoint"])})
    depth = 0
    while depth < 8 and len({_checkpoint_name(s, depth) for s in specs}) < len(specs):
        depth += 1
    labels = []
    for row in rows:
        label = row["method"]
        if row.get("masks"):
            label += f" [{row['masks']} masks]"
        if row.get("checkpoint") and not named_translator(row["checkpoint"]):
            label += f" ({_checkpoint_name(str(row['checkpoint']), depth)})"
        labels.append(label)
    return labels


def _cell(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def format_fidelity_table(table: Mapping) -> str:
    """The fidelity table as aligned text: one row per renderer, the two reference rows first."""
    columns = [c for c in COLUMNS if any(c[0] in row for row in table["rows"])]  # a record from before a column
    header = ["method"] + [h for _, h, _ in columns]
    body = []
    for row, label in zip(table["rows"], _labels(table["rows"])):
        cells = [_cell(row.get(key), digits) + (f" +/- {_cell(row.get('grid_db_sd'), 2)}" if key == "grid_db" else "")
                 for key, _, digits in columns]
        body.append([label] + cells)
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    periods = ", ".join(f"1/{p}" for p in table["periods"])
    lines = [f"Rendering fidelity: {TRUTH_SOURCE} -> {TRUTH_TARGET}, {table['num_pairs']} evaluation pairs against "
             f"the true renderings (benchmark seed {table['seed']}, {table['height']}x{table['width']}, truth "
             f"version {table['truth_version']})",
             line(header), line(["-" * w for w in widths])]
    lines += [line(cells) for cells in body]
    lines += ["PSNR (dB), SSIM: higher = closer to the truth, on the whole image / the person (the truth's mask) / "
              "the background; dE00 pers: mean CIEDE2000 colour difference on the person (lower = truer colours)",
              *(["PSNR ctx: PSNR where the context image's own person stood, outside the rendered person (low: "
                 "that person, or a trace of them, is still there)"] if any("psnr_context" in r for r in table["rows"])
                else []),
              f"HF dB: luminance power at {periods} cycles/pixel over the truth's (< 0: blurrier than the truth)",
              f"grid dB: prominence of the spectral peaks at {periods} cycles/pixel over their surroundings, minus the "
              "truth's (> 0: a periodic pattern; blur and sharpening read ~0), mean +/- sd over pairs; "
              f"'{TRUTH_REDRAWN}' gives its spread between two equally true images",
              "", _grid_periods_block(table)]
    return "\n".join(lines)


def _grid_periods_block(table: Mapping) -> str:
    """The grid figure of each row, period by period (mean +/- sd over pairs)."""
    header = ["grid dB per period"] + [f"period {p} px" for p in table["periods"]]
    body = [[label] + [f"{_cell(row.get(f'grid_db_p{p}'), 2)} +/- {_cell(row.get(f'grid_db_p{p}_sd'), 2)}"
                       for p in table["periods"]] for row, label in zip(table["rows"], _labels(table["rows"]))]
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
                     for cells in [header] + body)
