"""What the compositing CR-GAN learns, against where it starts: rendering fidelity of cut-and-paste,
cut-and-fill (the compositor before training), the trained compositors of several seeds, and the
same compositors with their learned fill residual set to zero, under each mask quality.

    python benchmarks/bench_fill_residual.py --runs runs/compare/synth_a2synth_b --seeds 0 1 2 \\
        --root exact=data --root segmentation=data_seg --root small-pedestrian=data_small \\
        [--variant "learn_fill: false=runs_nofill"] [--pairs 200]

``--runs`` is a comparison's run folder (``crgan compare``: ``seed<N>/crgan`` for the exact masks,
``seed<N>/crgan_<quality>`` for the others). "fill zeroed" is an evaluation of the same weights
with ``generator.fill_head`` set to zero (written to a temporary checkpoint), not a trained model;
``--variant LABEL=DIR`` adds the compositors of another run folder (for example trained with
``generator.init_args.learn_fill: false``), for the qualities it holds. Prints one Markdown row per
method and quality: mean ± sd over the seeds of PSNR (whole, person, background, where the
context's own person stood), SSIM and dE00 on the person.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from crgan_lightning.app.fidelity import SOURCE_IMAGE, TRUTH_REDRAWN, fidelity_table
from crgan_lightning.app.stages import last_checkpoint
from crgan_lightning.translators import NAMED_TRANSLATORS

COLUMNS = (("psnr", 2), ("psnr_person", 2), ("psnr_background", 2), ("psnr_context", 2), ("ssim", 3),
           ("delta_e_person", 2))


def zero_fill(ckpt: Path, out: Path) -> Path:
    """A copy of a compositing CR-GAN checkpoint with the fill head's weights set to zero."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    heads = [k for k in state["state_dict"] if k.startswith("generator.fill_head.")]
    if not heads:
        raise SystemExit(f"{ckpt}: no generator.fill_head weights (not a compositor with a learned fill)")
    for key in heads:
        state["state_dict"][key] = torch.zeros_like(state["state_dict"][key])
    torch.save(state, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="a crgan compare run folder (seed<N>/crgan...)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", action="append", default=[], metavar="QUALITY=DIR",
                        help="the data root of each mask quality; the first is the benchmark the truth is drawn from")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL=DIR",
                        help="the compositors of another run folder, one more row per quality it holds")
    parser.add_argument("--pairs", type=int, default=200)
    args = parser.parse_args()
    qualities = [item.partition("=")[::2] for item in args.root] or [("exact", "data")]
    variants = [item.rpartition("=")[::2] for item in args.variant]
    specs, labels = [], []  # one fidelity row per (label, quality, seed)
    with tempfile.TemporaryDirectory() as tmp:
        for quality, root in qualities:
            stage = "crgan" if quality == "exact" else f"crgan_{quality}"
            for named in NAMED_TRANSLATORS:
                specs.append((named, root))
                labels.append((named.replace("_", "-"), quality))
            for seed in args.seeds:
                trained = last_checkpoint(args.runs / f"seed{seed}" / stage)
                specs.append((str(trained), root))
                labels.append(("CR-GAN (trained)", quality))
                zeroed = zero_fill(trained, Path(tmp) / f"seed{seed}_{stage}.ckpt")
                specs.append((str(zeroed), root))
                labels.append(("CR-GAN, learned fill zeroed", quality))
                for label, folder in variants:
                    run = Path(folder) / f"seed{seed}" / stage
                    if (run / "checkpoints").is_dir():
                        specs.append((str(last_checkpoint(run)), root))
                        labels.append((f"CR-GAN, {label}", quality))
        table = fidelity_table(specs, qualities[0][1], num_pairs=args.pairs)
    rows = {}
    for row in table["rows"]:
        if row["method"] in (TRUTH_REDRAWN, SOURCE_IMAGE):
            rows.setdefault((row["method"], ""), []).append(row)
    for (label, quality), row in zip(labels, table["rows"][2:]):
        rows.setdefault((label, quality), []).append(row)
    print(f"{table['num_pairs']} pairs against the true renderings of {qualities[0][1]}; "
          f"mean ± sd over seeds {', '.join(map(str, args.seeds))} where a row has several\n")
    print("| method, masks | PSNR | PSNR pers | PSNR bg | PSNR ctx | SSIM | dE00 pers |")
    print("|---|---|---|---|---|---|---|")
    for (label, quality), group in rows.items():
        cells = []
        for key, digits in COLUMNS:
            values = [r[key] for r in group if r.get(key) is not None]
            if not values:
                cells.append("-")
                continue
            spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.{digits}f}{spread}")
        print(f"| {label}{', ' + quality if quality else ''} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
