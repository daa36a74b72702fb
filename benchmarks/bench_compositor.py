"""The cost of the compositing generator and of the decoder's upsampling choices on a CPU.

Times one generator pass (forward and backward of an L1 loss, the generator's share of a
CR-GAN step) at the embedded config's size (64x32 images, batch 16, widths 16-128, 2 residual
blocks, target skips) for the default DualPathGenerator, its ``bilinear`` and ``pixelshuffle``
upsampling, and the CompositingGenerator (3x3 colour matrix with a light map; per-colour gain
without one), and prints each median time and its ratio to the default measured in the same run.

    python benchmarks/bench_compositor.py [--threads 1] [--repeats 20] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from crgan_lightning.models.compositor import CompositingGenerator  # noqa: E402
from crgan_lightning.models.generator import DualPathGenerator  # noqa: E402

EMBEDDED = dict(base_channels=16, max_channels=128, num_res_blocks=2, target_skips=True)
VARIANTS = {
    "DualPathGenerator (default, nearest)": (DualPathGenerator, {}),
    "DualPathGenerator, bilinear": (DualPathGenerator, dict(upsample="bilinear")),
    "DualPathGenerator, pixelshuffle": (DualPathGenerator, dict(upsample="pixelshuffle")),
    "CompositingGenerator (matrix, shading)": (CompositingGenerator, {}),
    "CompositingGenerator (channel, no shading)": (CompositingGenerator, dict(tone="channel", shading=False)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b, h, w = args.batch, 64, 32
    x_s, x_t = torch.rand(b, 3, h, w) * 2 - 1, torch.rand(b, 3, h, w) * 2 - 1
    m_s, m_t = torch.zeros(b, 1, h, w), torch.zeros(b, 1, h, w)
    m_s[:, :, 6:60, 8:24] = 1.0
    m_t[:, :, 10:62, 4:18] = 1.0
    gens = {name: cls(**EMBEDDED, **extra) for name, (cls, extra) in VARIANTS.items()}
    samples: dict[str, list[float]] = {name: [] for name in gens}
    for i in range(args.repeats + 3):  # the variants interleaved, so a busy machine slows them alike
        for name, gen in gens.items():
            start = time.perf_counter()
            out = gen(x_s, x_t, m_t, m_s)
            (out - x_t).abs().mean().backward()
            gen.zero_grad(set_to_none=True)
            if i >= 3:  # warm-up passes left out
                samples[name].append(time.perf_counter() - start)
    times = {name: statistics.median(s) for name, s in samples.items()}
    for name, gen in gens.items():
        params = sum(p.numel() for p in gen.parameters())
        print(f"{name:<45} {1000 * times[name]:8.1f} ms/pass  {params / 1e6:6.3f} M weights")
    reference = times[next(iter(VARIANTS))]
    print(f"\nbatch {b}, {h}x{w}, {args.threads} thread(s), median of {args.repeats}; ratio to the default:")
    for name, t in times.items():
        print(f"  {name:<45} {t / reference:5.2f}x")


if __name__ == "__main__":
    main()
