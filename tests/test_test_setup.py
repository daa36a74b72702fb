"""The suite's own guard: too little disk is one clear message before any test runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

from conftest import free_space_problem

Usage = namedtuple("Usage", "total used free")


def test_enough_space_is_no_problem(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(100e9, 10e9, 90e9))
    assert free_space_problem(tmp_path, 3) is None


def test_too_little_space_names_the_folder_and_both_figures(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(100e9, 99.5e9, 0.5e9))
    problem = free_space_problem(tmp_path, 3)
    assert str(tmp_path) in problem
    assert "3 GB" in problem and "0.5 GB is free" in problem


def test_a_folder_not_made_yet_is_measured_on_its_nearest_existing_parent(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(shutil, "disk_usage", lambda p: seen.append(Path(p)) or Usage(100e9, 10e9, 90e9))
    assert free_space_problem(tmp_path / "not" / "yet", 3) is None
    assert seen == [tmp_path]


def test_a_session_with_too_little_space_stops_before_any_test(tmp_path):
    """Asking for more space than any disk has stops pytest at once with the message, exit code 1."""
    here = Path(__file__).resolve().parent
    (tmp_path / "test_never.py").write_text("def test_never():\n    raise AssertionError('ran')\n")
    env = {"CRGAN_TEST_MIN_FREE_GB": "1e12", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--rootdir", str(tmp_path), "--confcutdir", str(here), "-c", "/dev/null",
                           str(tmp_path / "test_never.py"), "-p", "conftest",
                           "--basetemp", str(tmp_path / "bt")],
                          capture_output=True, text=True, timeout=120, cwd=here, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "the tests need about 1e+12 GB free" in out
    assert "AssertionError" not in out and "1 failed" not in out


def test_a_bounded_run_ends_the_grandchildren_that_hold_its_output(tmp_path):
    """The launcher exits at once but leaves a child holding the output pipes (as DDP rank processes
    do): ``run_bounded`` fails the test at its timeout and ends that child too."""
    import time

    import pytest
    from ddp_helpers import run_bounded

    pid_file = tmp_path / "child.pid"
    launcher = ("import subprocess, sys; "
                "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
                f"open({str(pid_file)!r}, 'w').write(str(c.pid)); print('launcher done')")
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="did not finish within 2 s") as failure:
        run_bounded([sys.executable, "-c", launcher], 2)
    assert time.monotonic() - start < 30
    assert "launcher done" in str(failure.value)
    child = int(pid_file.read_text())
    for _ in range(50):  # the SIGKILL is delivered; the child (re-parented) is reaped shortly after
        try:
            state = Path(f"/proc/{child}/stat").read_text().split()[2]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the launcher's child {child} is still running")


def test_a_bounded_run_that_finishes_returns_its_output_and_code():
    from ddp_helpers import run_bounded

    proc = run_bounded([sys.executable, "-c", "import sys; print('out'); sys.exit(3)"], 60)
    assert proc.returncode == 3 and proc.stdout == "out\n"
