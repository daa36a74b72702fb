"""Where a translator's renderings put spectral power that the truth does not: the mean spectra of
the benchmark's evaluation pairs, truth beside each translator, with the grid figure's peak bins
marked.

    python benchmarks/figure_grid_spectra.py --root data --out docs/grid_spectra.png \\
        "painting decoder=runs/demo/seed0/crgan/checkpoints/last.ckpt" \\
        "compositor=runs/demo_comp/seed0/crgan/checkpoints/last.ckpt" "cut-and-paste=cut_and_paste"

Each column is LABEL=TRANSLATOR (a CR-GAN or SPGAN checkpoint, or ``cut_and_paste``; masks from
``--root``, or ``LABEL=TRANSLATOR@MASK_ROOT``); the first column is the true renderings. Rows:

1. the mean over the pairs of ``10 log10`` of each image's power spectrum
   (:func:`crgan_lightning.metrics.fidelity.power_spectrum`: RGB, Hann window), zero frequency in
   the centre, in cycles per pixel;
2. the rendering's mean log spectrum minus the truth's: where it has more (red) or less (blue)
   power than the truth; blur reads as a blue outer ring;
3. the mean spectral prominence (:func:`~crgan_lightning.metrics.fidelity.spectral_prominence`:
   each bin over the ring of bins 2 and 3 away): a periodic pattern is a red dot, alone, on a
   peak bin of one of the grid periods (circles, in rows 2 and 3: period 2 on the border, 4 and
   8 inside).

It also prints each column's grid figure (:func:`~crgan_lightning.metrics.fidelity.grid_excess`,
mean +/- sd over pairs, per period) and high-frequency level (:func:`~crgan_lightning.metrics.
fidelity.hf_excess`) against the truth, and the noise-redrawn truth's as the reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from crgan_lightning.app.fidelity import render_evaluation_pairs  # noqa: E402
from crgan_lightning.data.synthetic.truth import build_truth  # noqa: E402
from crgan_lightning.metrics.fidelity import (  # noqa: E402
    GRID_PERIODS, grid_excess, grid_peak_bins, hf_excess, power_spectrum, spectral_prominence,
)
from crgan_lightning.translators import load_translator  # noqa: E402


def as_tensor(images) -> torch.Tensor:
    """(N, H, W, 3) uint8 images -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def mean_maps(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean log power spectrum and mean spectral prominence (dB) of (N, 3, H, W) images, each
    (H, W) with the zero frequency moved to the centre."""
    power = power_spectrum(images)
    log_power = 10.0 * torch.log10(power + 1e-10 * power.mean(dim=(-2, -1), keepdim=True))
    shift = (images.shape[-2] // 2, images.shape[-1] // 2)
    return (torch.roll(log_power.mean(0), shift, dims=(0, 1)),
            torch.roll(spectral_prominence(power).mean(0), shift, dims=(0, 1)))


def describe(label: str, images: torch.Tensor, truth: torch.Tensor) -> str:
    grid, hf = grid_excess(images, truth), hf_excess(images, truth)
    periods = "  ".join(f"p{p} {grid[:, i].mean():+5.2f} +/- {grid[:, i].std():4.2f}"
                        for i, p in enumerate(GRID_PERIODS))
    return (f"{label:>24}: grid {grid.mean(1).mean():+5.2f} +/- {grid.mean(1).std():4.2f} dB ({periods}); "
            f"HF {hf.mean(1).mean():+6.2f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("columns", nargs="+", help="LABEL=TRANSLATOR[@MASK_ROOT]")
    parser.add_argument("--root", default="data", help="data root of the embedded benchmark")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--out", default="docs/grid_spectra.png")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = time.perf_counter()
    truth_set = build_truth(args.root, args.pairs)
    truth = as_tensor(truth_set.images)
    redrawn = as_tensor(build_truth(args.root, len(truth_set), redraw_noise=True).images)
    columns = [("truth", truth)]
    for column in args.columns:
        label, _, rest = column.partition("=")
        spec, _, mask_root = rest.partition("@")
        translator = load_translator(spec)
        columns.append((label, render_evaluation_pairs(translator, truth_set.pairs, args.root, mask_root or None)))
    print(f"{len(truth)} evaluation pairs of {args.root} ({time.perf_counter() - start:.1f} s)")
    print(describe("truth, noise redrawn", redrawn, truth))
    for label, images in columns[1:]:
        print(describe(label, images, truth))

    h, w = truth.shape[-2:]
    extent = (-0.5, 0.5 - 1.0 / w, 0.5 - 1.0 / h, -0.5)
    maps = [(label, *mean_maps(images)) for label, images in columns]
    truth_log = maps[0][1]
    fig, axes = plt.subplots(3, len(maps), figsize=(1.9 * len(maps) + 1.0, 7.2), squeeze=False,
                             layout="constrained")
    for col, (label, log_power, prominence) in enumerate(maps):
        panels = ((log_power, "magma", float(truth_log.max()) - 45.0, float(truth_log.max()), "mean log power"),
                  (log_power - truth_log, "RdBu_r", -12.0, 12.0, "minus the truth's"),
                  (prominence, "RdBu_r", -6.0, 6.0, "mean prominence"))
        for row, (image, cmap, vmin, vmax, title) in enumerate(panels):
            ax = axes[row, col]
            shown = ax.imshow(image.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest")
            ax.set_title(f"{label}\n{title}" if row == 0 else title, fontsize=8)
            ax.tick_params(labelsize=6)
            if row > 0:
                for period, colour in zip(GRID_PERIODS, ("lime", "cyan", "yellow")):
                    for r, c in grid_peak_bins(h, w, period):
                        for sy, sx in ((1, 1), (-1, -1)):  # a peak bin and its mirror
                            fy = ((sy * r + h // 2) % h - h // 2) / h
                            fx = ((sx * c + w // 2) % w - w // 2) / w
                            ax.add_patch(plt.Circle((fx, fy), 0.035, fill=False, color=colour, lw=0.8))
            if col == len(maps) - 1:
                fig.colorbar(shown, ax=axes[row, :].tolist(), shrink=0.9, label="dB")
    for ax in axes[-1]:
        ax.set_xlabel("cycles / pixel (x)", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("cycles / pixel (y)", fontsize=7)
    fig.suptitle(f"{len(truth)} evaluation pairs; circles: peak bins of periods "
                 f"{', '.join(map(str, GRID_PERIODS))} px (lime, cyan, yellow)", fontsize=9)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
