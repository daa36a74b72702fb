"""The effect of each part of the embedded benchmark's domain gap, measured on one trained model.

A re-id model trained on synth_a (direct transfer: a ``reid_direct`` checkpoint) is tested on
synth_b as written by default, and on copies of synth_b in which one part of the gap
(``context``: scenes, occluders, passers-by; ``tone``: per-camera colour, light, time of day;
``optics``: resolution, blur, noise) takes synth_a's settings instead, and with no gap at all.
The people, poses and places are the same in every copy; only the removed part differs. The
mAP gained by removing a part is that part's share of the gap (the parts interact, so the
shares need not add up). LOMO, training-free, is measured on the same copies.

    python benchmarks/bench_domain_gap.py --ckpt runs/calibration/seed0/reid_direct/checkpoints/last.ckpt \\
        [--root data] [--out runs/domain_gap]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from crgan_lightning.data.synthetic import generate_domain
from crgan_lightning.data.synthetic.styles import GAP_PARTS
from crgan_lightning.descriptors import evaluate_descriptor
from crgan_lightning.modules.reid import ReIDModule


def variants() -> dict[str, tuple[str, ...]]:
    """Name -> the gap parts synth_b keeps."""
    out = {"full gap (default)": GAP_PARTS}
    for part in GAP_PARTS:
        out[f"without {part}"] = tuple(p for p in GAP_PARTS if p != part)
    out["no gap"] = ()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a reid_direct checkpoint (trained on synth_a)")
    parser.add_argument("--root", default="data", help="data root of the default benchmark (its settings are reused)")
    parser.add_argument("--out", default="runs/domain_gap", help="where the copies of synth_b are written")
    args = parser.parse_args()
    meta = json.loads((Path(args.root) / "synth_b" / "meta.json").read_text())
    module = ReIDModule.load_from_checkpoint(args.ckpt, map_location="cpu", weights_only=False)
    net = module.net.eval()
    h, w = meta["height"], meta["width"]
    rows = {}
    for name, gap in variants().items():
        root = Path(args.out) / ("gap-" + ("-".join(gap) or "none"))
        generate_domain(root, "synth_b", meta["seed"], meta["num_train_ids"], meta["num_test_ids"], h, w,
                        progress=False, gap=gap)
        with torch.no_grad():
            model = evaluate_descriptor("synth_b", str(root), net, h, w, distance=module.hparams.distance,
                                        progress=False)
        lomo = evaluate_descriptor("synth_b", str(root), height=h, width=w, progress=False)
        rows[name] = {"gap": list(gap), "direct": model, "lomo": lomo}
        print(f"{name:<20} direct transfer rank-1 {model['rank1']:5.1f} mAP {model['mAP']:5.1f}   "
              f"LOMO rank-1 {lomo['rank1']:5.1f} mAP {lomo['mAP']:5.1f}", flush=True)
    full = rows["full gap (default)"]["direct"]["mAP"]
    print("\nmAP of direct transfer gained by removing one part of the gap:")
    for part in GAP_PARTS:
        print(f"  {part:<8} {rows[f'without {part}']['direct']['mAP'] - full:+5.1f}")
    print(f"  all      {rows['no gap']['direct']['mAP'] - full:+5.1f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "domain_gap.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
