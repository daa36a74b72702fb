"""Reports over datasets and checkpoints: the image-quality table (the CR-GAN paper's Table 1).

:func:`quality_table` measures, for one source -> target pair:

* **real source**: the source test images as they are, against real target images. Its FID /
  KID is the domain gap that rendering has to close. Its LPIPS diversity is 0 by definition:
  without rendering, a source image looks the same in every target context (LPIPS(x, x) = 0),
  which is the floor of the diversity column.
* one row per translator (a CR-GAN or SPGAN checkpoint, or cut-and-paste; see
  :mod:`crgan_lightning.translators`): the same source images rendered into target contexts.
  LPIPS diversity: each of ``num_sources`` source images is rendered into ``num_contexts``
  contexts and the mean pairwise LPIPS between its renderings is averaged over the sources
  (higher = more diverse; SPGAN ignores the context, so its renderings of one image are alike).
  FID / KID: ``num_fid`` renderings (each source image in one random context) against
  ``num_fid`` real target images.

Which images enter (all drawn with ``seed``, the same with and without a checkpoint, so the
rows differ only by the rendering):

* source images: the source test split (query + gallery);
* real target images (FID / KID reference): the target test split (query + gallery);
* contexts ``x_t``: the target training split, so that no reference image is ever a context and
  a generator cannot lower its FID by copying the reference set.

FID is strongly biased at small sample sizes: compare rows and runs at the same ``num_fid``
only (it is reported with the table). This module is command-line glue: unlike
:mod:`crgan_lightning.metrics`, it reads datasets and checkpoints.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.datamodule import CrossDomainDataModule, ReIDImageDataset
from ..data.datasets import ReIDSample
from ..data.keys import IMAGE
from ..data.masks import build_mask_provider
from ..errors import ConfigError, WeightsError, arguments_named
from ..metrics.quality import (
    build_inception,
    build_lpips,
    feature_diversity,
    fid_kid_from_features,
    frechet_distance,
    inception_features,
    lpips_diversity,
)
from ..networks import load_reid_net
from ..translators import load_translator, named_translator

log = logging.getLogger(__name__)

REAL_SOURCE = "real source"
CRGAN = "CR-GAN"


class _ImageSet:
    """Test-transformed images of a list of samples, loaded on demand as (N, 3, H, W) in [-1, 1]."""

    def __init__(self, samples: Sequence[ReIDSample], transform) -> None:
        self.samples = list(samples)
        self.dataset = ReIDImageDataset(self.samples, transform, with_pid=False)

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, indices: np.ndarray) -> torch.Tensor:
        return torch.stack([self.dataset[int(i)][IMAGE] for i in indices])


def choose_samples(num_source: int, num_reference: int, num_context: int, num_sources: int, num_contexts: int,
                   num_fid: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The image indices of one quality table, a pure function of the pool sizes and ``seed``.

    Args:
        num_source, num_reference, num_context: sizes of the source test pool, the target
            reference pool (target test) and the context pool (target train).
        num_sources, num_contexts: LPIPS grid ``S x T`` (``S`` is clipped to the source pool).
        num_fid: images per FID / KID set (clipped to both test pools).

    Returns:
        ``fid_source`` (n,), ``fid_reference`` (n,), ``fid_context`` (n,) and
        ``lpips_source`` (S,), ``lpips_context`` (S, T): indices into the three pools; every
        source gets its own ``T`` distinct contexts.
    """
    if num_contexts > num_context:
        raise ConfigError(f"num_contexts={num_contexts} but the target training split has only {num_context} "
                          "images to serve as contexts")
    rng = np.random.default_rng(seed)
    n = min(num_fid, num_source, num_reference)
    s = min(num_sources, num_source)
    return {
        "fid_source": rng.choice(num_source, n, replace=False),
        "fid_reference": rng.choice(num_reference, n, replace=False),
        "fid_context": rng.choice(num_context, n, replace=n > num_context),
        "lpips_source": rng.choice(num_source, s, replace=False),
        "lpips_context": np.stack([rng.choice(num_context, num_contexts, replace=False) for _ in range(s)]),
    }


def _chunks(indices: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(indices), size):
        yield indices[start:start + size]


def quality_table(
    ckpt: str | os.PathLike | Sequence[str | os.PathLike] | None,
    source: str,
    target: str,
    root: str | os.PathLike = "data",
    num_sources: int = 100,
    num_contexts: int = 8,
    num_fid: int = 1000,
    height: int = 256,
    width: int = 128,
    lpips_net: str = "alex",
    lpips_path: str | None = None,
    inception_path: str | None = None,
    kid: bool = True,
    batch_size: int = 32,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    reid_ckpt: str | os.PathLike | None = None,
) -> dict:
    """LPIPS diversity and FID / KID of real source images and of each translator's renderings.

    Args:
        ckpt: a translator spec or a list of them (CR-GAN / SPGAN checkpoints, ``cut_and_paste``,
            ``cut_and_fill``),
            one row each; None reports the real-source row only.
        source, target: registered dataset names (``market``, ``duke``, ``synth_a``, ...).
        root: data root holding both datasets (the embedded ``synth_*`` ones are generated there
            when missing).
        num_sources: source images of the LPIPS diversity (clipped to the source test split).
        num_contexts: target contexts per source image for the diversity (at least 2).
        num_fid: images per FID / KID set (clipped to the smaller test split; the number used is
            reported as ``num_fid``).
        height, width: image size the generator renders at (multiples of its ``size_multiple``).
        lpips_net: LPIPS backbone (``alex`` as in the paper, ``vgg`` or ``squeeze``).
        lpips_path: local ImageNet weights of that backbone; None downloads them.
        inception_path: local torch-fidelity Inception-v3 weights; None downloads them.
        kid: also compute KID (skipped with a reason below 10 images per set).
        batch_size: images per forward pass.
        seed: chooses every image (same seed, same images, with or without ``ckpt``).
        device: where the networks run.
        progress: show progress bars.
        reid_ckpt: a re-id checkpoint trained on the source (the direct-transfer run's
            ``last.ckpt``). Adds the offline stand-ins computed in its feature space, which need no
            downloaded weights: ``reid_fd``, the Fréchet distance between the re-id features of
            the rendered (or real source) images and of real target images, and
            ``reid_diversity`` (:func:`~crgan_lightning.metrics.quality.feature_diversity` of the
            renderings of one person in different contexts). With it, missing LPIPS/Inception
            weights no longer stop the table: their columns stay empty and ``"missing"`` says
            which file was not found.

    Returns:
        ``{"source", "target", "num_fid", "num_sources", "num_contexts", "seed", "rows"}``
        (plus ``"kid_skipped"``, the reason, when KID was skipped). ``rows`` is a list of
        ``{"method", "lpips", "fid", "kid_mean", "kid_std"}`` dicts (``kid_*`` None when
        skipped): ``"real source"`` first, then one row per translator, named by its kind
        (``"CR-GAN"``, ``"SPGAN"``, ``"cut-and-paste"``) with ``"checkpoint"`` (its spec).
        :func:`format_quality_table` prints it.
    """
    for name, value, low in (("num_sources", num_sources, 1), ("num_contexts", num_contexts, 2),
                             ("num_fid", num_fid, 2), ("batch_size", batch_size, 1)):
        if not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}={value!r}; expected an integer >= {low}")
    # everything that can fail fast (checkpoint, weight files, dataset layout) before any heavy work
    specs = [] if ckpt is None else [ckpt] if isinstance(ckpt, (str, os.PathLike)) else list(ckpt)
    translators = [(spec, load_translator(spec, map_location=device)) for spec in specs]
    reid_net = load_reid_net(reid_ckpt, map_location=device) if reid_ckpt is not None else None
    lpips_model, inception, missing = None, None, None
    try:
        with arguments_named({"pretrained_path": "lpips_path", "weights_path": "inception_path"}):
            lpips_model = build_lpips(lpips_net, lpips_path, device) if translators else None
            inception = build_inception(inception_path, device)
    except WeightsError as exc:
        if reid_net is None:
            raise
        lpips_model, missing = None, str(exc)
        log.warning("LPIPS/FID/KID left out (%s); the re-id stand-ins are computed", exc)

    def extract(images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        if inception is not None:
            out["inception"] = inception_features(images, inception, batch_size)
        if reid_net is not None:
            out["reid"] = torch.cat([reid_net.extract(chunk.to(device)).float().cpu()
                                     for chunk in images.split(batch_size)])
        return out
    dm = CrossDomainDataModule(source=source, target=target, root=str(root), height=height, width=width,
                               num_workers=0)
    src, tgt = dm.source_dataset, dm.target_dataset
    mask_of = build_mask_provider("auto", src) if any(t.needs_masks for _, t in translators) else None
    target_mask_of = (build_mask_provider("auto", tgt) if any(t.needs_target_masks for _, t in translators)
                      else None)
    sources = _ImageSet(src.query + src.gallery, dm.test_transform)
    reference = _ImageSet(tgt.query + tgt.gallery, dm.test_transform)
    contexts = _ImageSet(tgt.train, dm.test_transform)
    pick = choose_samples(len(sources), len(reference), len(contexts), num_sources, num_contexts, num_fid,
                          seed)
    n = len(pick["fid_source"])
    if n < num_fid:
        log.info("num_fid=%d clipped to %d (the smaller test split)", num_fid, n)

    def bar(items, desc: str, total: int | None = None):
        return tqdm(items, desc=desc, total=total, disable=not progress, leave=False)

    @torch.no_grad()
    def render(translator, x_s: torch.Tensor, src_idx: np.ndarray, context_idx: np.ndarray) -> torch.Tensor:
        masks, target_masks = None, None
        if translator.needs_masks:
            masks = torch.stack([torch.from_numpy(mask_of(sources.samples[int(i)].path, height, width))
                                 for i in src_idx]).unsqueeze(1).to(device)
        if translator.needs_target_masks:
            target_masks = torch.stack([torch.from_numpy(target_mask_of(contexts.samples[int(i)].path, height, width))
                                        for i in context_idx]).unsqueeze(1).to(device)
        return translator.render(x_s.to(device), contexts.load(context_idx).to(device), masks, target_masks).cpu()

    feats: dict = {"reference": [], "source": [], **{i: [] for i in range(len(translators))}}
    chunks = zip(_chunks(pick["fid_reference"], batch_size), _chunks(pick["fid_source"], batch_size),
                 _chunks(pick["fid_context"], batch_size))
    for ref_idx, src_idx, ctx_idx in bar(chunks, "FID/KID images", math.ceil(n / batch_size)):
        feats["reference"].append(extract(reference.load(ref_idx)))
        x_s = sources.load(src_idx)
        feats["source"].append(extract(x_s))
        for i, (_, translator) in enumerate(translators):
            feats[i].append(extract(render(translator, x_s, src_idx, ctx_idx)))

    def joined(key, kind: str) -> torch.Tensor:
        return torch.cat([chunk[kind] for chunk in feats[key]])

    def distances(key) -> dict:
        scores = {}
        if inception is not None:
            scores = fid_kid_from_features(joined(key, "inception"), joined("reference", "inception"), kid=kid)
        if reid_net is not None:
            scores["reid_fd"] = frechet_distance(joined(key, "reid"), joined("reference", "reid"))
        return scores

    # without rendering a source image looks the same in every context: both diversities are 0
    rows = [_row(REAL_SOURCE, 0.0, distances("source"), 0.0 if reid_net is not None else None)]
    table: dict = {"source": source, "target": target, "num_fid": n, "num_sources": len(pick["lpips_source"]),
                   "num_contexts": num_contexts, "seed": seed, "rows": rows}
    if missing:
        table["missing"] = missing

    per_chunk = max(1, batch_size // num_contexts)  # source images per rendering batch
    num_grids = math.ceil(len(pick["lpips_source"]) / per_chunk)
    for i, (spec, translator) in enumerate(translators):
        total, reid_total, count = 0.0, 0.0, 0
        grids = zip(_chunks(pick["lpips_source"], per_chunk), _chunks(pick["lpips_context"], per_chunk))
        for src_idx, ctx_idx in bar(grids, f"diversity ({translator.kind})", num_grids):
            repeated = np.repeat(src_idx, num_contexts)
            x_s = sources.load(repeated)
            rendered = render(translator, x_s, repeated, ctx_idx.reshape(-1))
            grid = rendered.view(len(src_idx), num_contexts, *x_s.shape[1:])
            if lpips_model is not None:
                total += lpips_diversity(grid, lpips_model, batch_size) * len(src_idx)
            if reid_net is not None:
                reid_feats = extract(rendered)["reid"]
                reid_total += feature_diversity(reid_feats.view(len(src_idx), num_contexts, -1)) * len(src_idx)
            count += len(src_idx)
        row = _row(translator.kind, total / count if lpips_model is not None else None, distances(i),
                   reid_total / count if reid_net is not None else None)
        row["checkpoint"] = str(spec)
        rows.append(row)

    skipped = [r.pop("kid_skipped") for r in rows if "kid_skipped" in r]
    if skipped:
        table["kid_skipped"] = skipped[0]
    return table


def _row(method: str, diversity: float | None, scores: Mapping, reid_diversity: float | None = None) -> dict:
    row = {"method": method, "lpips": diversity, "fid": scores.get("fid"),
           "kid_mean": scores.get("kid_mean"), "kid_std": scores.get("kid_std"),
           "reid_fd": scores.get("reid_fd"), "reid_diversity": reid_diversity}
    if "kid_skipped" in scores:
        row["kid_skipped"] = scores["kid_skipped"]
    return row


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_quality_table(table: Mapping | Sequence[Mapping]) -> str:
    """The quality table as aligned text (one row per method).

    Accepts the dict returned by :func:`quality_table` (a heading with the sample sizes is
    printed) or just its ``rows``.
    """
    rows = table["rows"] if isinstance(table, Mapping) else list(table)
    stand_ins = any(row.get("reid_fd") is not None for row in rows)
    header = ["method", "LPIPS diversity", "FID", "KID"] + (["re-id FD", "re-id diversity"] if stand_ins else [])
    body = []
    for row in rows:
        spec = row.get("checkpoint")
        method = row["method"] + (f" ({Path(spec).name})" if spec and not named_translator(spec) else "")
        kid = "-" if row.get("kid_mean") is None else f"{row['kid_mean']:.4f} +/- {row['kid_std']:.4f}"
        body.append([method, _fmt(row.get("lpips"), 4), _fmt(row.get("fid"), 2), kid]
                    + ([_fmt(row.get("reid_fd"), 2), _fmt(row.get("reid_diversity"), 4)] if stand_ins else []))
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines = []
    if isinstance(table, Mapping):
        grid = (f", LPIPS over {table['num_sources']} sources x {table['num_contexts']} contexts"
                if any(row["method"] != REAL_SOURCE for row in rows) else "")
        lines.append(f"{table['source']} -> {table['target']}: FID/KID on {table['num_fid']} images per set"
                     f"{grid} (seed {table['seed']})")
    lines += [line(header), line(["-" * w for w in widths])] + [line(cells) for cells in body]
    lines.append("LPIPS diversity: higher = more diverse renderings (0 without rendering); "
                 "FID, KID: lower = closer to the real target images")
    if stand_ins:
        lines.append("re-id FD, re-id diversity: offline stand-ins in the feature space of the source-trained "
                     "re-id network (Frechet distance to real target images; mean distance between one person's "
                     "renderings in different contexts)")
    if isinstance(table, Mapping) and table.get("missing"):
        lines.append(f"LPIPS/FID/KID left out: {table['missing']}")
    if isinstance(table, Mapping) and table.get("kid_skipped"):
        lines.append(f"KID skipped: {table['kid_skipped']}")
    return "\n".join(lines)
