"""The grid figure on real renderings: per translator, per period and per peak bin, and how it
answers known changes of the same images (blur, sharpening, a faint checkerboard, white noise),
beside the high-frequency level figure that it replaces as the table's grid column.

    python benchmarks/bench_grid_figure.py --root data --pairs 200 \\
        "painting decoder=runs/demo/seed0/crgan/checkpoints/last.ckpt" \\
        "compositor=runs/demo_comp/seed0/crgan/checkpoints/last.ckpt" "cut-and-paste=cut_and_paste"

Each translator is LABEL=TRANSLATOR[@MASK_ROOT] (masks of ``--root`` by default). Prints, against
the benchmark's true renderings of the evaluation pairs:

1. each translator's grid figure (:func:`crgan_lightning.metrics.fidelity.grid_excess`) per period,
   mean +/- sd over pairs, with the noise-redrawn truth as the reference, and its HF figure
   (:func:`~crgan_lightning.metrics.fidelity.hf_excess`);
2. the same per peak bin (mean +/- standard error over pairs): which bins carry a translator's
   figure;
3. known changes: the truth blurred (Gaussian sigma 0.5 and 1 pixel) and sharpened (unsharp mask),
   and the second translator's renderings (the first when there is one) plus a checkerboard of
   period 2, 4, 8 or white noise, of amplitude ``--amplitude`` on [-1, 1].
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from crgan_lightning.app.fidelity import render_evaluation_pairs  # noqa: E402
from crgan_lightning.data.synthetic.truth import build_truth  # noqa: E402
from crgan_lightning.metrics.fidelity import (  # noqa: E402
    GRID_PERIODS, GRID_RING, grid_excess, grid_harmonic_mask, grid_peak_bins, hf_excess, power_spectrum,
    spectral_prominence,
)
from crgan_lightning.translators import load_translator  # noqa: E402


def as_tensor(images) -> torch.Tensor:
    """(N, H, W, 3) uint8 images -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 3, H, W) images, reflected at the borders."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    x = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), groups=3)
    return torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).repeat(3, 1, 1, 1), groups=3)


def checkerboard(h: int, w: int, period: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (((ys // (period // 2)) + (xs // (period // 2))) % 2).float() * 2 - 1


def figures(label: str, images: torch.Tensor, truth: torch.Tensor) -> str:
    grid, hf = grid_excess(images, truth), hf_excess(images, truth)
    periods = "  ".join(f"p{p} {grid[:, i].mean():+5.2f} +/- {grid[:, i].std():4.2f}"
                        for i, p in enumerate(GRID_PERIODS))
    return (f"{label:>38}: grid {grid.mean(1).mean():+5.2f} +/- {grid.mean(1).std():4.2f} dB ({periods}) | "
            f"HF {hf.mean(1).mean():+6.2f} dB (p2 {hf[:, 0].mean():+6.2f})")


def per_bin(images: torch.Tensor, period: int) -> torch.Tensor:
    """(N, bins) prominence at each peak bin of ``period``."""
    power = power_spectrum(images)
    h, w = power.shape[-2:]
    prominence = spectral_prominence(power, GRID_RING, grid_harmonic_mask(h, w, period, power.device))
    return torch.stack([prominence[:, r, c] for r, c in grid_peak_bins(h, w, period)], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("translators", nargs="*", help="LABEL=TRANSLATOR[@MASK_ROOT]")
    parser.add_argument("--root", default="data", help="data root of the embedded benchmark")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--amplitude", type=float, default=0.03)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    truth_set = build_truth(args.root, args.pairs)
    truth = as_tensor(truth_set.images)
    rendered = {"truth, noise redrawn": as_tensor(build_truth(args.root, len(truth), redraw_noise=True).images)}
    for item in args.translators:
        label, _, rest = item.partition("=")
        spec, _, mask_root = rest.partition("@")
        rendered[label] = render_evaluation_pairs(load_translator(spec), truth_set.pairs, args.root, mask_root or None)
    n, (h, w) = len(truth), truth.shape[-2:]
    print(f"{n} evaluation pairs of {args.root}, {h} x {w} ({time.perf_counter() - start:.1f} s)\n")
    for label, images in rendered.items():
        print(figures(label, images, truth))

    print("\nper peak bin: prominence minus the truth's, mean +/- standard error over pairs (dB)")
    for period in GRID_PERIODS:
        reference = per_bin(truth, period)
        excess = {label: per_bin(images, period) - reference for label, images in rendered.items()}
        for i, (r, c) in enumerate(grid_peak_bins(h, w, period)):
            cells = "  ".join(f"{label} {e[:, i].mean():+5.2f} +/- {e[:, i].std() / math.sqrt(n):4.2f}"
                              for label, e in excess.items())
            print(f"  period {period} bin ({r:2d}, {c:2d}), truth's prominence {reference[:, i].mean():+5.2f}: {cells}")

    print("\nknown changes")
    print(figures("truth, Gaussian blur sigma 0.5", gaussian_blur(truth, 0.5), truth))
    print(figures("truth, Gaussian blur sigma 1", gaussian_blur(truth, 1.0), truth))
    print(figures("truth, unsharp mask (1, sigma 1)", truth + (truth - gaussian_blur(truth, 1.0)), truth))
    translated = [label for label in rendered if label != "truth, noise redrawn"]
    if translated:
        name = translated[1] if len(translated) > 1 else translated[0]
        base = rendered[name]
        a = args.amplitude
        for period in GRID_PERIODS:
            print(figures(f"{name} + period-{period} checkerboard {a}",
                          (base + a * checkerboard(h, w, period)).clamp(-1, 1), truth))
        noise = torch.randn(base.shape, generator=torch.Generator().manual_seed(0))
        print(figures(f"{name} + white noise {a}", (base + a * noise).clamp(-1, 1), truth))
    print(f"\n({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
