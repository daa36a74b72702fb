"""Writers replace only what they wrote: every writer is run against a foreign folder, a file and
a dataset's own folder, and must refuse with one line, exit 2, and leave everything as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from crgan_lightning.app.cli import main
from crgan_lightning.errors import ConfigError
from crgan_lightning.fileio import META_FILE, check_output_folder, replace_folder, written_by


def snapshot(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or the file itself) with a hash of its bytes."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def thesis(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    (folder / "chapters").mkdir(parents=True)
    (folder / "chapters" / "intro.tex").write_text("\\section{Introduction}\n")
    (folder / "results.csv").write_text("rank1,mAP\n56.0,33.3\n")
    return folder


def render_argv(root: Path, out: Path, *extra: str) -> list[str]:
    return ["render", "--ckpt", "cut_and_paste", "--source", "synth_a", "--target", "synth_b", "--root", str(root),
            "--out", str(out), "--height", "64", "--width", "32", "--quiet", *extra]


def assert_refused(capsys, code: int, *named: object) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    for thing in named:
        assert str(thing) in err, err
    return err


# ----------------------------------------------------------------------------- fileio helpers


def test_written_by_reads_the_writer_and_recognises_older_meta_files(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / META_FILE).write_text(json.dumps({"written_by": "crgan render"}))
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / META_FILE).write_text(json.dumps({"generator": "crgan_lightning.data.synthetic"}))
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / META_FILE).write_text(json.dumps({"name": "my dataset"}))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / META_FILE).write_text("{not json")
    assert written_by(tmp_path / "new") == "crgan render"
    assert written_by(tmp_path / "synth") == "crgan synth"
    assert written_by(tmp_path / "user") is None
    assert written_by(tmp_path / "broken") is None
    assert written_by(tmp_path / "missing") is None


def test_check_output_folder_allows_new_empty_and_own_folders_only(tmp_path):
    assert check_output_folder(tmp_path / "new", "crgan render") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", "crgan render")
    own = tmp_path / "own"
    own.mkdir()
    (own / META_FILE).write_text(json.dumps({"written_by": "crgan render"}))
    check_output_folder(own, "crgan render")
    with pytest.raises(ConfigError, match="did not write"):
        check_output_folder(own, "crgan synth")  # another writer's folder
    with pytest.raises(ConfigError, match="is a file"):
        (tmp_path / "f.txt").write_text("x")
        check_output_folder(tmp_path / "f.txt", "crgan render")
    with pytest.raises(ConfigError, match="overlaps"):
        check_output_folder(tmp_path / "data" / "sub", "crgan render", protected=[tmp_path / "data"])
    with pytest.raises(ConfigError, match="overlaps"):
        check_output_folder(tmp_path, "crgan render", protected=[tmp_path / "data"])


def test_replace_folder_swaps_own_folders_and_refuses_foreign_ones(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / META_FILE).write_text(json.dumps({"written_by": "crgan render", "v": 1}))
    work = tmp_path / "work"
    work.mkdir()
    (work / META_FILE).write_text(json.dumps({"written_by": "crgan render", "v": 2}))
    replace_folder(work, final, "crgan render")
    assert json.loads((final / META_FILE).read_text())["v"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left aside
    foreign = thesis(tmp_path)
    before = snapshot(foreign)
    work.mkdir()
    with pytest.raises(ConfigError, match="thesis"):
        replace_folder(work, foreign, "crgan render")
    assert snapshot(foreign) == before and work.is_dir()


# ----------------------------------------------------------------------------- crgan render


def test_render_refuses_a_foreign_folder_with_one_line_and_keeps_it(tmp_path, synth_root, capsys):
    folder = thesis(tmp_path)
    before = snapshot(folder)
    for extra in ((), ("--overwrite",)):
        assert_refused(capsys, main(render_argv(synth_root, folder, *extra)), folder, "did not write")
        assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no .partial, no .old


def test_render_refuses_a_file_and_leaves_no_old_copy(tmp_path, synth_root, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert_refused(capsys, main(render_argv(synth_root, target, "--overwrite")), target, "is a file")
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("where", ["synth_a", "synth_b", ".", "synth_a/bounding_box_train"])
def test_render_refuses_the_datasets_own_folders(synth_root, capsys, where):
    out = (synth_root / where).resolve()
    before = snapshot(synth_root)
    assert_refused(capsys, main(render_argv(synth_root, out, "--overwrite")), out, "overlaps")
    assert snapshot(synth_root) == before


def test_render_refuses_a_foreign_partial_folder(tmp_path, synth_root, capsys):
    partial = tmp_path / "export.partial"
    partial.mkdir()
    (partial / "draft.txt").write_text("mine")
    assert_refused(capsys, main(render_argv(synth_root, tmp_path / "export")), partial)
    assert (partial / "draft.txt").read_text() == "mine"


def test_render_writes_into_an_empty_folder_and_replaces_its_own_export_only_with_overwrite(
        tmp_path, synth_root, capsys):
    out = tmp_path / "export"
    out.mkdir()
    assert main(render_argv(synth_root, out)) == 0
    assert written_by(out) == "crgan render"
    assert_refused(capsys, main(render_argv(synth_root, out)), out, "--overwrite")
    assert main(render_argv(synth_root, out, "--overwrite", "--seed", "3")) == 0
    assert json.loads((out / META_FILE).read_text())["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


# ----------------------------------------------------------------------------- crgan demo / compare


@pytest.mark.parametrize("command", [
    ["demo", "--root", "{root}", "--out", "{out}", "--crgan-epochs", "1", "--reid-epochs", "1"],
    ["compare", "--source", "synth_a", "--target", "synth_b", "--root", "{root}", "--out", "{out}", "--seeds", "0"],
])
def test_run_commands_refuse_a_foreign_folder_and_a_file(tmp_path, synth_root, capsys, command):
    folder = thesis(tmp_path)
    before = snapshot(folder)
    argv = [a.format(root=synth_root, out=folder) for a in command]
    assert_refused(capsys, main(argv), folder, "did not write")
    assert snapshot(folder) == before
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    argv = [a.format(root=synth_root, out=target) for a in command]
    assert_refused(capsys, main(argv), target, "is a file")
    assert target.read_text() == "keep me"


def test_claim_run_folder_marks_a_new_folder_and_keeps_earlier_runs_of_the_same_writer(tmp_path):
    from crgan_lightning.errors import ConfigError as Error
    from crgan_lightning.fileio import RUN_MARKER, claim_run_folder

    out = claim_run_folder(tmp_path / "runs", "crgan demo")
    assert json.loads((out / RUN_MARKER).read_text()) == {"written_by": "crgan demo"}
    (out / "seed0").mkdir()
    assert claim_run_folder(out, "crgan demo") == out  # a rerun continues
    with pytest.raises(Error, match="crgan demo"):
        claim_run_folder(out, "crgan render")
    assert claim_run_folder(out, "crgan compare", reuses=("crgan demo",)) == out  # compare reads the demo's runs
    legacy = tmp_path / "legacy"
    (legacy / "seed1" / "crgan").mkdir(parents=True)  # a run folder written before the marker existed
    claim_run_folder(legacy, "crgan compare")
    assert (legacy / RUN_MARKER).is_file()


# ----------------------------------------------------------------------------- --overwrite keeps the user's files


def test_render_overwrite_keeps_the_files_the_user_put_in_the_export_and_says_so(tmp_path, synth_root, capsys):
    out = tmp_path / "export"
    assert main(render_argv(synth_root, out)) == 0
    (out / "NOTES.txt").write_text("seed 0, cut-and-paste")
    (out / "bounding_box_train" / "my_figure.pdf").write_bytes(b"%PDF")
    capsys.readouterr()
    assert main(render_argv(synth_root, out, "--overwrite", "--seed", "3")) == 0
    assert json.loads((out / META_FILE).read_text())["seed"] == 3
    assert (out / "NOTES.txt").read_text() == "seed 0, cut-and-paste"
    assert (out / "bounding_box_train" / "my_figure.pdf").read_bytes() == b"%PDF"
    err = capsys.readouterr().err
    assert "kept 2 file(s)" in err and "NOTES.txt" in err and "my_figure.pdf" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no old copy left beside it


def test_synth_overwrite_keeps_the_users_files_and_replaces_its_own(tmp_path, capsys):
    root = tmp_path / "data"
    args = ["synth", "--out", str(root), "--ids", "4", "--test-ids", "2", "--height", "64", "--width", "32",
            "--quiet"]
    assert main(args) == 0
    images = sorted((root / "synth_a" / "bounding_box_train").glob("*.jpg"))
    (root / "synth_a" / "NOTES.txt").write_text("mine")
    images[0].write_bytes(b"spoilt")  # a file crgan synth wrote: replaced
    assert main(args + ["--overwrite"]) == 0
    assert (root / "synth_a" / "NOTES.txt").read_text() == "mine"
    assert images[0].read_bytes() != b"spoilt" and images[0].read_bytes()[:2] == b"\xff\xd8"
    assert "NOTES.txt" in capsys.readouterr().err


def test_replace_folder_renames_a_user_file_at_a_path_the_writer_now_uses(tmp_path):
    final, work = tmp_path / "export", tmp_path / "work"
    for folder in (final, work):
        folder.mkdir()
        (folder / META_FILE).write_text(json.dumps({"written_by": "crgan render"}))
    (final / "a.jpg").write_bytes(b"old")
    replace_folder(work, final, "crgan render")  # writes the manifest: META_FILE only
    (final / "a.jpg").write_bytes(b"user's")  # not in the manifest: the user's
    work.mkdir()
    (work / META_FILE).write_text(json.dumps({"written_by": "crgan render"}))
    (work / "a.jpg").write_bytes(b"new")
    replace_folder(work, final, "crgan render")
    assert (final / "a.jpg").read_bytes() == b"new" and (final / "a.jpg.kept").read_bytes() == b"user's"
