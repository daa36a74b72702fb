"""The generator and discriminator options of the grid ablation, as rows of bench_crgan_options.py.

Adds these generators (each judged by the frozen direct-transfer network, trained under the
shipped stop rule: 70 % on the mean of the last 2 epochs' judge ratios, not before 3 epochs, at
most 4) to :mod:`bench_crgan_options` and runs it with the same arguments:

* ``stop70plain``: the default generator under the earlier rule (the first epoch past 70 %);
* ``comp``: :class:`~crgan_lightning.models.compositor.CompositingGenerator` (matte, tone and
  light, the target's person filled in); ``compchannel``: its per-colour gain instead of a 3x3 matrix;
  ``compfree``: the compositor with the context loss's background term leaving out 2 pixels around
  the source mask (``context_free_border``), so the matte may complete a poor mask;
* ``adv0`` / ``id0`` / ``cam0``: the default generator without the adversarial / identity / camera term;
* ``sn``: a spectrally normalised discriminator (no norm layers); ``sninst``: spectral and instance
  norm; ``d2``: a discriminator of 2 stride-2 layers
  instead of 3; ``r1``: an R1 gradient penalty of 1 on real target images;
* ``bilinear`` / ``pixelshuffle``: the decoder's upsampling.

    python benchmarks/bench_grid_ablation.py --seeds 0 1 2 --out runs/grid --rows comp+inv sn+inv r1+inv

``--rows`` also takes every row of bench_crgan_options.py (``judge70+inv``, ``cut+inv``, ...).
The renderings' fidelity figures come from ``crgan quality`` on each ``crgan_<row>`` checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_crgan_options  # noqa: E402

_SHIPPED = {"judge": True, "model.init_args.target_id_ratio": 0.7}
_G = "model.init_args.generator"
_D = "model.init_args.discriminator.init_args"
COMPOSITOR = "crgan_lightning.models.compositor.CompositingGenerator"

ROWS = {
    "stop70plain": (4, {**_SHIPPED, "model.init_args.stop_min_epochs": 1, "model.init_args.stop_window": 1}),
    "comp": (4, {**_SHIPPED, f"{_G}.class_path": COMPOSITOR}),
    "compchannel": (4, {**_SHIPPED, f"{_G}.class_path": COMPOSITOR, f"{_G}.init_args.tone": "channel"}),
    "compfree": (4, {**_SHIPPED, f"{_G}.class_path": COMPOSITOR, "model.init_args.context_free_border": 2}),
    "adv0": (4, {**_SHIPPED, "model.init_args.lambda_adv": 0.0}),
    "id0": (4, {**_SHIPPED, "model.init_args.lambda_id": 0.0}),
    "cam0": (4, {**_SHIPPED, "model.init_args.lambda_cam": 0.0}),
    "sn": (4, {**_SHIPPED, f"{_D}.norm": "spectral"}),
    "sninst": (4, {**_SHIPPED, f"{_D}.spectral": True}),
    "d2": (4, {**_SHIPPED, f"{_D}.n_layers": 2}),
    "r1": (4, {**_SHIPPED, "model.init_args.r1_gamma": 1.0}),
    "bilinear": (4, {**_SHIPPED, f"{_G}.init_args.upsample": "bilinear"}),
    "pixelshuffle": (4, {**_SHIPPED, f"{_G}.init_args.upsample": "pixelshuffle"}),
}

if __name__ == "__main__":
    clash = set(ROWS) & set(bench_crgan_options.GENERATORS)
    if clash:
        raise SystemExit(f"rows {sorted(clash)} exist in bench_crgan_options.py already")
    bench_crgan_options.GENERATORS.update(ROWS)
    bench_crgan_options.main()
