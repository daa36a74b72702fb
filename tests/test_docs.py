"""The documentation names only things that exist: every relative link (and its anchor) in
README.md, CONTRIBUTING.md and docs/*.md points to a file and heading that exist, and every
command they give names a real ``make`` target, ``--stage``, ``crgan`` command and
``benchmarks/*.py`` script.

Commands are read from code (fenced blocks and inline code spans), where the documentation puts
them; prose such as "make sure" is not a command. Upper-case words are placeholders
(``--stage STAGE``, ``crgan COMMAND``) and are not checked. Nothing is trained or run.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").glob("*.md")])

LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
MAKE = re.compile(r"(?:^|[\s;&|(])make((?:[ \t]+[^\s`;&|)]+)+)")
STAGE = re.compile(r"--stage[ =]([A-Za-z_][\w]*)")
CRGAN_VERB = re.compile(r"(?:^|[\s;&|(`$/])crgan[ \t]+([A-Za-z][\w-]*)")
BENCHMARK = re.compile(r"benchmarks/([\w.-]+\.py)\b")
URL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
#: Wrong commands a page shows on purpose: the bad-input table's misspelt command.
MISTAKES_SHOWN = {"troubleshooting.md": {"fitt"}}


# ------------------------------------------------------------------ reading Markdown

def split_fences(text: str) -> tuple[list[str], list[str]]:
    """``(lines outside fenced code blocks, lines inside them)`` of a Markdown text."""
    outside, inside, fenced = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        else:
            (inside if fenced else outside).append(line)
    return outside, inside


def split_code(text: str) -> tuple[str, str]:
    """``(prose, code)`` of a Markdown text: fenced blocks and inline code spans go to ``code``,
    the rest (with the code spans removed) to ``prose``."""
    outside, code = split_fences(text)
    for line in outside:
        code.extend(INLINE_CODE.findall(line))
    return "\n".join(INLINE_CODE.sub("", line) for line in outside), "\n".join(code)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeated headings get -1, -2 ... as on GitHub)."""
    outside, _ = split_fences(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for line in outside:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = github_anchor(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(path: Path) -> list[str]:
    """The relative links of a Markdown file whose file or anchor does not exist."""
    prose, _ = split_code(path.read_text(encoding="utf-8"))
    problems = []
    for target in LINK.findall(prose):
        if URL.match(target):
            continue
        name, _, anchor = target.partition("#")
        dest = (path.parent / name).resolve() if name else path
        if not dest.exists():
            problems.append(f"{path.name}: {target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{path.name}: {target} (no heading #{anchor} in {dest.name})")
    return problems


def named(pattern: re.Pattern, path: Path) -> set[str]:
    """What ``pattern`` names in the code of a Markdown file, placeholders (upper case) left out."""
    _, code = split_code(path.read_text(encoding="utf-8"))
    return {name for name in pattern.findall(code) if not name.isupper()}


def make_targets_named(path: Path) -> set[str]:
    """The targets of every ``make`` command in a file's code (``make SRC=a demo`` names ``demo``)."""
    _, code = split_code(path.read_text(encoding="utf-8"))
    out = set()
    for words in MAKE.findall(code):
        for word in words.split():
            if "=" not in word and not word.startswith("-"):
                if not word.isupper():
                    out.add(word)
                break
    return out


# ------------------------------------------------------------------ what exists

def makefile_targets() -> set[str]:
    """The targets the Makefile defines (rules, not variable assignments)."""
    out = set()
    for line in (REPO / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*:(?![:=])", line)
        if match:
            out.update(match.group(1).split())
    return out


def crgan_commands() -> set[str]:
    """Every command ``crgan`` takes: the LightningCLI ones and the tool verbs of its parser."""
    from crgan_lightning.app.cli import build_parser
    from crgan_lightning.app.lightning import LIGHTNING_COMMANDS

    parser = build_parser()
    verbs = {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
             for name in action.choices}
    return set(LIGHTNING_COMMANDS) | verbs


def known_stages() -> set[str]:
    from crgan_lightning.app.stages import STAGES

    return set(STAGES)


# ------------------------------------------------------------------ the documentation

def test_the_documentation_pages_are_the_ones_expected():
    names = {p.relative_to(REPO).as_posix() for p in DOCS}
    for page in ("README.md", "CONTRIBUTING.md", "docs/usage.md", "docs/method.md", "docs/results.md",
                 "docs/troubleshooting.md", "docs/embedded_benchmark.md"):
        assert page in names, page


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_relative_link_points_to_a_file_and_heading_that_exist(path):
    assert broken_links(path) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_make_target_named_is_a_makefile_target(path):
    assert make_targets_named(path) - makefile_targets() == set()


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_stage_named_is_a_stage_the_package_knows(path):
    assert named(STAGE, path) - known_stages() == set()


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_crgan_command_named_is_a_command_of_the_cli(path):
    assert named(CRGAN_VERB, path) - crgan_commands() == MISTAKES_SHOWN.get(path.name, set())


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_benchmark_script_named_exists(path):
    scripts = set(BENCHMARK.findall(path.read_text(encoding="utf-8")))
    assert {s for s in scripts if not (REPO / "benchmarks" / s).is_file()} == set()


def test_the_readme_fits_150_lines():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


def test_the_docs_name_commands_at_all():
    """The checks above read something: the pages do name targets, stages, commands and scripts."""
    assert {"demo", "test", "train-reid", "train-crgan", "compare"} <= set().union(*map(make_targets_named, DOCS))
    assert {"reid_direct", "crgan", "reid_crgan"} <= set().union(*(named(STAGE, p) for p in DOCS))
    assert {"fit", "synth", "render", "quality", "compare"} <= set().union(*(named(CRGAN_VERB, p) for p in DOCS))


# ------------------------------------------------------------------ the checker itself

def test_a_missing_file_or_heading_is_reported(tmp_path):
    (tmp_path / "other.md").write_text("# Real data, step by step\n\n## Table 2: comparing methods\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#real-data-step-by-step) [ok](other.md#table-2-comparing-methods)\n"
                    "[gone](missing.md) [bad anchor](other.md#no-such-heading) [web](https://example.org/x)\n"
                    "```\n[in code](not-checked.md)\n```\n")
    problems = broken_links(page)
    assert len(problems) == 2
    assert "missing.md" in problems[0] and "#no-such-heading" in problems[1]


def test_repeated_headings_and_code_comments_get_github_anchors(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Results\n## Notes\n## Notes\n## `crgan fit`: the CLI\n```bash\n# not a heading\n```\n")
    assert anchors(page) == {"results", "notes", "notes-1", "crgan-fit-the-cli"}


def test_commands_are_read_from_code_and_placeholders_are_skipped(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Make sure to `make SRC=a TGT=b train-crgan` and `make help`; then\n"
                    "```bash\nmake demo ARGS=\"--seed 1\"\ncrgan fit --stage reid_direct --pair p\n"
                    "crgan COMMAND --help   # crgan_lightning is not a command\ncrgan fit --stage STAGE\n```\n"
                    "see `benchmarks/bench_parsing.py` and `crgan nope`\n")
    assert make_targets_named(page) == {"train-crgan", "help", "demo"}
    assert named(STAGE, page) == {"reid_direct"}
    assert named(CRGAN_VERB, page) == {"fit", "nope"}
    assert "nope" not in crgan_commands() and "fit" in crgan_commands() and "synth" in crgan_commands()
    assert "reid_crgan" in known_stages() and {"demo", "test", "help", "train-reid"} <= makefile_targets()
    assert "TORCH_PINS" not in makefile_targets() and "STAMP" not in makefile_targets()


# ----------------------------------------------------------------------------- one number, one place


def _figure(cell: str) -> float:
    """``**64.5 ± 1.3**`` -> 64.5."""
    return float(cell.replace("*", "").split("±")[0].strip())


def documented_calibration() -> list[tuple[float, float]]:
    """(rank-1, mAP) of the calibration table of docs/embedded_benchmark.md, in its order (LOMO,
    supervised, direct transfer, oracle rendering)."""
    text = (REPO / "docs" / "embedded_benchmark.md").read_text()
    table = text.split("| synth_a -> synth_b, tested on synth_b | rank-1 | mAP |")[1].split("\n\n")[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ")]
    return [(_figure(row[1]), _figure(row[2])) for row in rows]


def test_the_calibration_rows_have_one_source_that_readme_docs_and_demo_show():
    """configs/measured/calibration.yaml holds the calibration rows; the demo prints them, and the
    README's table and docs/embedded_benchmark.md show the same figures."""
    from crgan_lightning.app.demo import calibration_rows

    rows = calibration_rows()
    assert list(rows.values()) == documented_calibration()
    readme = (REPO / "README.md").read_text()
    for name in ("LOMO, no training", "supervised on synth_b", "oracle rendering"):
        rank1, mean_ap = rows[name]
        assert f"| *calibration:* {name} | {rank1:.1f} | {mean_ap:.1f} |" in readme
