"""How cut-and-paste, cut-and-fill and CR-GAN degrade with the person masks: re-id mAP against mask IoU.

Reads a comparison run with several mask qualities (``crgan compare ... --mask-root
segmentation=DIR --mask-root small-pedestrian=DIR``, its ``compare.json``) and the mean mask IoU
each data root records (``meta.json`` of its two domains, written by ``crgan synth
--mask-quality``; the exact masks are IoU 1), prints one line per method and quality (mean ± sd
over the seeds, and per seed) and draws mAP (mean ± sd) against mask IoU, one line per method:

    python benchmarks/figure_mask_quality.py runs/compare/synth_a2synth_b/compare.json \\
        --root exact=data --root segmentation=data_seg --root small-pedestrian=data_small \\
        --out docs/mask_quality.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

#: Table 2 rows that read the masks: the method's name in the figure, its row name.
METHODS = {"cut-and-paste": "cut-and-paste", "cut-and-fill": "cut-and-fill", "CR-GAN": "CR-GAN+LMP"}


def mask_iou(root: Path) -> float:
    """Mean IoU to the exact masks over the data root's two embedded domains (1.0 for exact masks)."""
    values = []
    for meta in sorted(root.glob("synth_*/meta.json")):
        record = json.loads(meta.read_text())
        if record.get("name") in ("synth_a", "synth_b"):
            values.append(1.0 if record.get("mask_quality", "exact") == "exact" else float(record["mask_iou"]))
    if not values:
        raise SystemExit(f"{root}: no synth_a/meta.json or synth_b/meta.json; expected a data root of crgan synth")
    return statistics.mean(values)


def points(record: dict, qualities: dict[str, float]) -> dict[str, list[tuple[float, float, float, list[float]]]]:
    """Per method: ``(mask IoU, mean mAP, sd, per-seed mAP)`` for each quality present in the record."""
    out: dict[str, list] = {}
    for method, row_name in METHODS.items():
        for quality, iou in qualities.items():
            row = record["table2"].get(row_name if quality == "exact" else f"{row_name} [{quality} masks]")
            if row is None:
                continue
            seeds = [row["seeds"][key]["mAP"] for key in sorted(row["seeds"], key=int)]
            out.setdefault(method, []).append((iou, row["mean"]["mAP"], row["sd"]["mAP"], seeds))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("compare_json", type=Path)
    parser.add_argument("--root", action="append", default=[], metavar="QUALITY=DIR",
                        help="the data root of each mask quality (exact=data for the benchmark's own masks)")
    parser.add_argument("--out", type=Path, default=None, help="write the figure here (PNG)")
    args = parser.parse_args()
    record = json.loads(args.compare_json.read_text())
    qualities = {}
    for item in args.root:
        name, sep, root = item.partition("=")
        if not sep:
            raise SystemExit(f"--root {item}: expected QUALITY=DIR")
        qualities[name] = mask_iou(Path(root))
    series = points(record, qualities)
    for method, rows in series.items():
        for iou, mean, sd, seeds in rows:
            per_seed = " / ".join(f"{s:.1f}" for s in seeds)
            print(f"{method:<14} mask IoU {iou:.3f}: mAP {mean:.1f} ± {sd:.1f}  ({per_seed})")
    if args.out is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
    for method, rows in series.items():
        rows = sorted(rows)
        ax.errorbar([r[0] for r in rows], [r[1] for r in rows], yerr=[r[2] for r in rows], marker="o", capsize=3,
                    label=method)
    direct = record["table2"].get("direct transfer")
    if direct:
        ax.axhline(direct["mean"]["mAP"], color="grey", linestyle=":", label="direct transfer")
    ax.set_xlabel("mean mask IoU to the exact person masks")
    ax.set_ylabel(f"mAP on {record['target']} (mean ± sd, {len(record['seeds'])} seeds)")
    ax.set_title(f"{record['source']} -> {record['target']}: renderings from poorer masks", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
