"""Table 2 of a comparison (``<out>/compare.json`` of ``crgan compare``) as Markdown, and the tables
of the docs generated from measured records, so that each number is written in one place.

Print one comparison's table (mean ± sd over the seeds of rank-1/5/10, mAP and LMP mAP, and mAP
per seed)::

    python benchmarks/compare_markdown.py runs/compare/synth_a2synth_b/compare.json

Keep a comparison as a measured record of the docs: a small JSON copy of its ``compare.json``
(Table 2, source, target and seeds; no checkpoint) with the command that produced it, the commit
(``git rev-parse HEAD``, ``-dirty`` when ``src/`` has uncommitted changes; ``--commit`` to give the
run's own) and the date (the day ``compare.json`` was written; ``--date`` to give another)::

    python benchmarks/compare_markdown.py --record runs/compare/synth_a2synth_b/compare.json \\
        --out docs/measured/mask_quality.json --command "make compare SRC=synth_a TGT=synth_b ..."

Rewrite every generated block of the docs from its record (default: README.md and docs/*.md)::

    python benchmarks/compare_markdown.py --update docs/results.md

A generated block is marked in the Markdown source by two comments, the first naming its record
(a path relative to the repository root); everything between them is rewritten::

    <!-- generated: docs/measured/mask_quality.json -->
    ...
    <!-- end generated -->

``tests/test_generated_tables.py`` checks that every block equals what its record generates.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The folder of the measured records.
MEASURED = Path("docs") / "measured"
#: The keys a measured record holds (``table2`` as ``crgan compare`` wrote it).
RECORD_KEYS = ("source", "target", "seeds", "table2", "command", "commit", "date")
#: The markers of a generated block, each on a line of its own.
START = re.compile(r"^<!-- generated: (?P<path>[^\s>]+) -->$", re.MULTILINE)
END = re.compile(r"^<!-- end generated -->$", re.MULTILINE)


class RecordError(Exception):
    """A record or a marked block that cannot be read; the message names the file and what was expected."""


# ------------------------------------------------------------------ Table 2 as Markdown

def cell(row: dict, key: str, spread: bool) -> str:
    """``mean ± sd`` of one metric of a row (``mean`` alone without ``spread``; empty when absent)."""
    if key not in row["mean"]:
        return ""
    return f"{row['mean'][key]:.1f} ± {row['sd'][key]:.1f}" if spread else f"{row['mean'][key]:.1f}"


def table_lines(record: dict) -> list[str]:
    """Table 2 of a ``compare.json`` (or of a measured record) as Markdown lines: one row per method,
    mean ± sd over the seeds, then the mAP of every seed (LOMO trains nothing: one value)."""
    seeds = [str(s) for s in record["seeds"]]
    lines = [f"| method | rank-1 | rank-5 | rank-10 | mAP | LMP mAP | mAP per seed ({', '.join(seeds)}) |",
             "|---|---|---|---|---|---|---|"]
    for method, row in record["table2"].items():
        per_seed = row["seeds"]
        values = [per_seed.get(s, per_seed.get(int(s)) if s.isdigit() else None) for s in seeds]
        maps = ", ".join(f"{v['mAP']:.1f}" for v in values if v) if method != "LOMO" else "(no training)"
        spread = len(seeds) > 1 and method != "LOMO"  # LOMO trains nothing: the same for every seed
        cells = [cell(row, k, spread) for k in ("rank1", "rank5", "rank10", "mAP", "lmp_mAP")]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {maps} |")
    return lines


# ------------------------------------------------------------------ measured records

def git_commit(repo: Path = REPO) -> str:
    """The checked-out commit of ``repo`` (12 hex digits), ``-dirty`` when ``src/`` has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short=12", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--", "src").strip())
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RecordError(f"{repo}: cannot read the git commit ({exc}); give it with --commit") from None
    return commit + ("-dirty" if dirty else "")


def make_record(compare: dict, command: str, commit: str, date: str) -> dict:
    """A measured record from a ``compare.json``: its Table 2, pair and seeds, and the command,
    commit and date that produced it (Table 1 and the fidelity table are left out)."""
    if not command.strip():
        raise RecordError("--command is empty; expected the command that produced the comparison "
                          "(e.g. make compare SRC=synth_a TGT=synth_b ...)")
    missing = [key for key in ("source", "target", "seeds", "table2") if key not in compare]
    if missing:
        raise RecordError(f"not a compare.json of crgan compare: no {', '.join(missing)}")
    return {"source": compare["source"], "target": compare["target"], "seeds": list(compare["seeds"]),
            "command": command.strip(), "commit": commit, "date": date, "table2": compare["table2"]}


def write_record(compare_path: Path, out: Path, command: str, commit: str | None = None,
                 date: str | None = None) -> dict:
    """Write the measured record of ``compare_path`` to ``out`` (see :func:`make_record`); the commit
    defaults to the repository's, the date to the day ``compare_path`` was written (UTC)."""
    compare = read_json(compare_path, "a compare.json of crgan compare")
    if date is None:
        stamp = datetime.datetime.fromtimestamp(compare_path.stat().st_mtime, tz=datetime.timezone.utc)
        date = stamp.date().isoformat()
    record = make_record(compare, command, commit or git_commit(), date)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def read_json(path: Path, expected: str) -> dict:
    """A JSON file as a dict; a missing or broken file is a one-line :class:`RecordError`."""
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordError(f"{path} does not exist; expected {expected}") from None
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path} is not readable JSON ({exc}); expected {expected}") from None
    if not isinstance(content, dict):
        raise RecordError(f"{path} holds no JSON object; expected {expected}")
    return content


def read_record(path: Path) -> dict:
    """A measured record; one without every key of :data:`RECORD_KEYS` (a command above all) is refused."""
    record = read_json(path, "a measured record (compare_markdown.py --record)")
    missing = [key for key in RECORD_KEYS if not record.get(key)]
    if missing:
        raise RecordError(f"{path} has no {', '.join(missing)}; expected a measured record written by "
                          "compare_markdown.py --record ... --command \"...\"")
    return record


# ------------------------------------------------------------------ generated blocks

def block_text(record: dict, name: str) -> str:
    """What a generated block holds for ``record`` (kept at ``name``): where it comes from, then the table."""
    seeds = record["seeds"]
    head = (f"Table 2, {record['source']} -> {record['target']}, tested on {record['target']}: mean ± sd over "
            f"{len(seeds)} seed{'s' * (len(seeds) > 1)} ({', '.join(map(str, seeds))}). "
            f"Measured with `{record['command']}` at commit `{record['commit']}` on {record['date']} "
            f"(record `{name}`).")
    return "\n".join([head, "", *table_lines(record), "", ""])  # a blank line ends the table


def _fences(text: str) -> list[tuple[int, int]]:
    """Character spans of the fenced code blocks of a Markdown text (a marker shown there is an example)."""
    spans, start, pos = [], None, 0
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            if start is None:
                start = pos
            else:
                spans.append((start, pos + len(line)))
                start = None
        pos += len(line)
    return spans + ([(start, len(text))] if start is not None else [])


def _markers(text: str, where: str) -> list[tuple[re.Match, re.Match]]:
    """``(start marker, end marker)`` of every generated block: markers on lines of their own, outside
    fenced code, in pairs (a start without its end, or an end without its start, is refused)."""
    fences = _fences(text)
    found = sorted([m for pattern in (START, END) for m in pattern.finditer(text)
                    if not any(a <= m.start() < b for a, b in fences)], key=lambda m: m.start())
    pairs = []
    for i in range(0, len(found), 2):
        first, second = found[i], found[i + 1] if i + 1 < len(found) else None
        if first.re is not START or second is None or second.re is not END:
            wrong = second if first.re is START and second is not None else first
            line = text.count("\n", 0, wrong.start()) + 1
            raise RecordError(f"{where or 'the text'}, line {line}: a generated block's markers do not pair up; "
                              "expected '<!-- generated: PATH -->' then '<!-- end generated -->', each on a line "
                              "of its own")
        pairs.append((first, second))
    return pairs


def blocks(text: str, where: str = "") -> list[tuple[str, str]]:
    """``(record path, body)`` of every generated block of a Markdown text (see :func:`_markers`)."""
    return [(start.group("path"), text[start.end() + 1:end.start()]) for start, end in _markers(text, where)]


def generated(text: str, root: Path = REPO, where: str = "") -> str:
    """``text`` with every generated block rewritten from its record (paths relative to ``root``)."""
    out, pos = [], 0
    for start, end in _markers(text, where):
        name = start.group("path")
        out += [text[pos:start.end() + 1], block_text(read_record(root / name), name)]
        pos = end.start()
    return "".join(out) + text[pos:]


def doc_files(root: Path = REPO) -> list[Path]:
    """The Markdown files that may hold generated blocks: README.md, CONTRIBUTING.md and docs/*.md."""
    return [p for p in [root / "README.md", root / "CONTRIBUTING.md", *sorted((root / "docs").glob("*.md"))]
            if p.is_file()]


def update(paths: list[Path], root: Path = REPO) -> list[Path]:
    """Rewrite the generated blocks of ``paths``; returns the files whose text changed."""
    changed = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        new = generated(text, root, str(path))
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


# ------------------------------------------------------------------ command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("compare_json", nargs="?", type=Path, help="print the Table 2 of this compare.json")
    parser.add_argument("--record", type=Path, metavar="COMPARE_JSON",
                        help="write the measured record of this compare.json (with --out and --command)")
    parser.add_argument("--out", type=Path, help=f"the record to write, e.g. {MEASURED}/mask_quality.json")
    parser.add_argument("--command", help="the command that produced the comparison (kept in the record)")
    parser.add_argument("--commit", default=None, help="the commit the comparison ran at (default: git's HEAD)")
    parser.add_argument("--date", default=None, help="the date of the comparison (default: compare.json's)")
    parser.add_argument("--update", nargs="*", type=Path, metavar="MARKDOWN",
                        help="rewrite the generated blocks of these files (none given: README.md, CONTRIBUTING.md "
                             "and docs/*.md)")
    args = parser.parse_args(argv)
    try:
        if args.record is not None:
            if args.out is None or args.command is None:
                parser.error("--record needs --out FILE and --command \"...\"")
            write_record(args.record, args.out, args.command, args.commit, args.date)
            print(f"wrote {args.out}")
        elif args.update is not None:
            for path in update(args.update or doc_files()):
                print(f"updated {path}")
        elif args.compare_json is not None:
            print("\n".join(table_lines(read_json(args.compare_json, "a compare.json of crgan compare"))))
        else:
            parser.error("give a compare.json, --record COMPARE_JSON or --update")
    except RecordError as exc:
        print(f"compare_markdown.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
