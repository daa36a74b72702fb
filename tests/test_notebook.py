"""notebooks/quickstart.ipynb: committed without outputs, and runs top to bottom on the CPU in this
environment's Python, writing only under a temporary folder."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
KERNEL_NAME = "crgan-quickstart-test"
MAX_SECONDS = 600  # the notebook promises a few minutes on a CPU; this catches runs that grew far beyond that


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def stdout_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def kernel_manager(folder: Path) -> KernelManager:
    """A kernel started with the Python running the tests (the virtualenv's), whatever kernelspecs the
    machine or the user has installed under the name ``python3``."""
    spec_dir = folder / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "crgan-lightning test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def test_committed_notebook_has_no_outputs_and_uses_the_python3_kernel():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    cells = code_cells(nb)
    assert cells
    for cell in cells:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    sources = "\n".join(cell.source for cell in cells)
    assert not re.search(r"[\"']/\w", sources)  # no absolute paths
    assert "seed_everything" in sources


@pytest.mark.slow
def test_quickstart_notebook_runs_top_to_bottom_and_shows_its_results(tmp_path, monkeypatch):
    work = tmp_path / "work"
    monkeypatch.setenv("CRGAN_QUICKSTART_DIR", str(work))  # the notebook's first cell reads it
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)\nprint(sys.prefix)"))

    client = NotebookClient(nb, km=kernel_manager(tmp_path), timeout=MAX_SECONDS, allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    print(f"quickstart notebook executed in {seconds:.0f} s")

    cells = code_cells(nb)
    assert all(cell.execution_count is not None for cell in cells)
    assert not [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    assert stdout_of(cells[-1]).split() == [sys.executable, sys.prefix]  # the virtualenv's Python ran it

    printed = "\n".join(stdout_of(cell) for cell in cells)
    assert "crgan-lightning" in printed and str(work) in printed
    assert "=> synth_a loaded" in printed and "=> synth_b loaded" in printed
    table = printed[printed.index("re-id trained on"):].splitlines()
    assert table[0].split()[-3:] == ["rank-1", "rank-5", "mAP"]
    for row, name in zip(table[1:3], ("direct transfer", "with CR-GAN renderings")):
        assert row.startswith(name)
        values = [float(v) for v in re.findall(r"\d+\.\d", row[len(name):])]
        assert len(values) == 3 and all(0.0 <= v <= 100.0 for v in values), row
    assert "source test, in-domain" in printed

    images = [o for cell in cells for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # domain samples, rendering grid, CMC curves, ranked lists

    # everything was written under the folder the test chose
    assert (work / "data" / "synth_a" / "meta.json").is_file()
    assert (work / "data" / "synth_b" / "meta.json").is_file()
    assert (work / "runs" / "crgan" / "crgan.ckpt").is_file()
    assert sorted((work / "runs" / "reid_crgan" / "plots").glob("ranked_test_*.png"))
    assert seconds < MAX_SECONDS
