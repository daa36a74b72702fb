"""One number, one place: the tables of the docs that come from ``crgan compare`` are generated
from measured records (``docs/measured/*.json``) by ``benchmarks/compare_markdown.py``; every
generated block of README.md and docs/*.md equals what its record gives, and every record names
the command that produced it."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

from crgan_lightning.app.compare import summarize

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compare_markdown", REPO / "benchmarks" / "compare_markdown.py")
compare_markdown = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_markdown)

COMMAND = "make compare SRC=synth_a TGT=synth_b ARGS=\"--methods CR-GAN+LMP\""


def fake_compare(path: Path) -> dict:
    """A small compare.json as crgan compare writes it (seed keys are strings once in JSON)."""
    direct = summarize({0: {"rank1": 30.0, "rank5": 50.0, "rank10": 60.0, "mAP": 20.0, "lmp_mAP": 18.0},
                        1: {"rank1": 32.0, "rank5": 52.0, "rank10": 62.0, "mAP": 22.0, "lmp_mAP": 19.0}})
    crgan = summarize({0: {"rank1": 70.0, "rank5": 85.0, "rank10": 90.0, "mAP": 55.0, "lmp_mAP": 50.0},
                       1: {"rank1": 74.0, "rank5": 87.0, "rank10": 92.0, "mAP": 57.0, "lmp_mAP": 53.0}})
    lomo = summarize({0: {"rank1": 25.0, "rank5": 40.0, "rank10": 48.0, "mAP": 18.0},
                      1: {"rank1": 25.0, "rank5": 40.0, "rank10": 48.0, "mAP": 18.0}})
    record = {"source": "synth_a", "target": "synth_b", "seeds": [0, 1],
              "table2": {"LOMO": lomo, "direct transfer": direct, "CR-GAN+LMP": crgan},
              "table1": {"rows": [{"method": "CR-GAN", "fid": 12.0}]}, "table1_missing": None,
              "fidelity": {"rows": []}, "fidelity_missing": None}
    path.write_text(json.dumps(record, indent=1))
    return json.loads(path.read_text())


def test_every_generated_block_of_the_docs_equals_its_record_and_every_record_names_its_command():
    for path in compare_markdown.doc_files(REPO):
        text = path.read_text(encoding="utf-8")
        assert compare_markdown.generated(text, REPO, str(path)) == text, (
            f"{path.name}: a generated table differs from its record; run "
            f"python benchmarks/compare_markdown.py --update {path.relative_to(REPO)}")
        for name, _ in compare_markdown.blocks(text, str(path)):
            assert (REPO / name).is_file() and name.startswith("docs/measured/"), (path.name, name)
    for record in sorted((REPO / "docs" / "measured").glob("*.json")):
        assert compare_markdown.read_record(record)["command"].strip()  # refused without every key


def test_a_record_keeps_table2_the_pair_the_seeds_and_where_they_come_from(tmp_path):
    compare = fake_compare(tmp_path / "compare.json")
    stamp = datetime.datetime(2026, 3, 4, 12, 0, tzinfo=datetime.timezone.utc).timestamp()
    os.utime(tmp_path / "compare.json", (stamp, stamp))
    out = tmp_path / "docs" / "measured" / "x.json"
    assert compare_markdown.main(["--record", str(tmp_path / "compare.json"), "--out", str(out),
                                  "--command", COMMAND]) == 0
    record = json.loads(out.read_text())
    assert set(record) == set(compare_markdown.RECORD_KEYS)  # no Table 1, no fidelity table
    assert record["table2"] == compare["table2"] and record["seeds"] == [0, 1]
    assert (record["source"], record["target"], record["command"]) == ("synth_a", "synth_b", COMMAND)
    assert record["date"] == "2026-03-04"  # the day the comparison was written
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", record["commit"])  # this repository's checkout
    assert record["commit"].split("-")[0] == compare_markdown.git_commit().split("-")[0]


def test_update_rewrites_each_marked_block_from_its_record_and_nothing_else(tmp_path):
    fake_compare(tmp_path / "compare.json")
    compare_markdown.write_record(tmp_path / "compare.json", tmp_path / "docs" / "measured" / "x.json", COMMAND,
                                  commit="0123456789ab", date="2026-12-01")
    doc = tmp_path / "docs" / "results.md"
    example = "```markdown\n<!-- generated: docs/measured/none.json -->\n<!-- end generated -->\n```\n"
    doc.write_text("# Results\n\nBefore.\n\n<!-- generated: docs/measured/x.json -->\n| stale | 1.0 |\n"
                   "<!-- end generated -->\n\nAfter.\n\n" + example)
    assert compare_markdown.update([doc], root=tmp_path) == [doc]
    text = doc.read_text()
    assert text.startswith("# Results\n\nBefore.\n\n<!-- generated: docs/measured/x.json -->\n")
    assert text.endswith("<!-- end generated -->\n\nAfter.\n\n" + example)  # a marker shown in code is left alone
    assert "stale" not in text
    [(name, body)] = compare_markdown.blocks(text)
    assert name == "docs/measured/x.json"
    lines = body.splitlines()
    assert lines[0] == ("Table 2, synth_a -> synth_b, tested on synth_b: mean ± sd over 2 seeds (0, 1). Measured "
                        f"with `{COMMAND}` at commit `0123456789ab` on 2026-12-01 (record `docs/measured/x.json`).")
    assert "| direct transfer | 31.0 ± 1.4 | 51.0 ± 1.4 | 61.0 ± 1.4 | 21.0 ± 1.4 | 18.5 ± 0.7 | 20.0, 22.0 |" in lines
    assert "| CR-GAN+LMP | 72.0 ± 2.8 | 86.0 ± 1.4 | 91.0 ± 1.4 | 56.0 ± 1.4 | 51.5 ± 2.1 | 55.0, 57.0 |" in lines
    assert "| LOMO | 25.0 | 40.0 | 48.0 | 18.0 |  | (no training) |" in lines
    assert compare_markdown.update([doc], root=tmp_path) == []  # up to date: nothing rewritten
    # the same block is what printing the compare.json gives, under its provenance line
    table = compare_markdown.table_lines(json.loads((tmp_path / "compare.json").read_text()))
    assert lines[2:2 + len(table)] == table


def test_the_update_command_reads_records_and_a_stale_block_fails_the_docs_check(tmp_path, capsys):
    fake_compare(tmp_path / "compare.json")
    record = tmp_path / "measured.json"
    compare_markdown.write_record(tmp_path / "compare.json", record, COMMAND, commit="abc", date="2026-12-01")
    doc = tmp_path / "page.md"
    doc.write_text(f"<!-- generated: {record} -->\n<!-- end generated -->\n")  # an absolute path works too
    assert compare_markdown.generated(doc.read_text()) != doc.read_text()  # what the docs test would catch
    assert compare_markdown.main(["--update", str(doc)]) == 0
    assert f"updated {doc}" in capsys.readouterr().out
    assert compare_markdown.generated(doc.read_text()) == doc.read_text()
    assert "| CR-GAN+LMP | 72.0 ± 2.8 |" in doc.read_text()


@pytest.mark.parametrize("drop", ["command", "commit", "date"])
def test_a_record_without_its_provenance_is_refused_naming_the_file(tmp_path, drop):
    fake_compare(tmp_path / "compare.json")
    path = tmp_path / "x.json"
    record = compare_markdown.write_record(tmp_path / "compare.json", path, COMMAND, commit="abc", date="2026-12-01")
    path.write_text(json.dumps({k: v for k, v in record.items() if k != drop}))
    with pytest.raises(compare_markdown.RecordError, match=rf"{re.escape(str(path))} has no {drop}; expected"):
        compare_markdown.read_record(path)


def test_recording_needs_a_command_and_unpaired_markers_are_refused_with_their_line(tmp_path, capsys):
    fake_compare(tmp_path / "compare.json")
    with pytest.raises(SystemExit):
        compare_markdown.main(["--record", str(tmp_path / "compare.json"), "--out", str(tmp_path / "x.json")])
    assert "--record needs --out FILE and --command" in capsys.readouterr().err
    assert compare_markdown.main(["--record", str(tmp_path / "compare.json"), "--out", str(tmp_path / "x.json"),
                                  "--command", " "]) == 2
    assert "--command is empty" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
    unpaired = "text\n<!-- generated: docs/measured/x.json -->\n| a |\n\n<!-- generated: docs/measured/y.json -->\n"
    with pytest.raises(compare_markdown.RecordError, match="page.md, line 5: a generated block's markers do not"):
        compare_markdown.blocks(unpaired, "page.md")
    with pytest.raises(compare_markdown.RecordError, match="line 1: .* do not pair up"):
        compare_markdown.blocks("<!-- end generated -->\n")


def test_printing_a_compare_json_gives_its_table2(tmp_path, capsys):
    fake_compare(tmp_path / "compare.json")
    assert compare_markdown.main([str(tmp_path / "compare.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| method | rank-1 | rank-5 | rank-10 | mAP | LMP mAP | mAP per seed (0, 1) |"
    assert [line.split(" | ")[0] for line in out[2:]] == ["| LOMO", "| direct transfer", "| CR-GAN+LMP"]
