"""Table 2 of a comparison (``<out>/compare.json`` of ``crgan compare``) as a Markdown table, as
the README shows it: mean ± sd over the seeds of rank-1/5/10, mAP and LMP mAP, and mAP per seed.

    python benchmarks/compare_markdown.py runs/compare/synth_a2synth_b/compare.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cell(row: dict, key: str, spread: bool) -> str:
    if key not in row["mean"]:
        return ""
    return f"{row['mean'][key]:.1f} ± {row['sd'][key]:.1f}" if spread else f"{row['mean'][key]:.1f}"


def main() -> None:
    record = json.loads(Path(sys.argv[1]).read_text())
    seeds = [str(s) for s in record["seeds"]]
    print(f"| method | rank-1 | rank-5 | rank-10 | mAP | LMP mAP | mAP per seed ({', '.join(seeds)}) |")
    print("|---|---|---|---|---|---|---|")
    for method, row in record["table2"].items():
        per_seed = row["seeds"]
        values = [per_seed.get(s, per_seed.get(int(s)) if s.isdigit() else None) for s in seeds]
        maps = ", ".join(f"{v['mAP']:.1f}" for v in values if v) if method != "LOMO" else "(no training)"
        spread = len(seeds) > 1 and method != "LOMO"  # LOMO trains nothing: the same for every seed
        cells = [cell(row, k, spread) for k in ("rank1", "rank5", "rank10", "mAP", "lmp_mAP")]
        print(f"| {method} | " + " | ".join(cells)
              + f" | {maps} |")


if __name__ == "__main__":
    main()
