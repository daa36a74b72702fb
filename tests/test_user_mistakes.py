"""The rest of the bad-input table (docs/troubleshooting.md "When something is wrong"), each through the real
``crgan`` entry point: a corrupt image met in a DataLoader worker, an output folder the user may
not write, W&B without a network or an API key, a run that fails on a config error, masks that do
not fit their images, ``masks --overwrite`` over masks of another origin, weight-file messages
that name the command's flags. Every case ends in one ``crgan: error:`` line naming the file or
value, exit status 2, and leaves what the user had as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.models.segmentation as tv_seg
from PIL import Image

from crgan_lightning.app.cli import main, wandb_offline_unless_asked
from crgan_lightning.data import load_reid_dataset
from crgan_lightning.data.masks import MASK_WRITER, mask_path
from crgan_lightning.fileio import written_by

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "modules"))
from test_reid_module import small_config  # noqa: E402


def error_line(err: str) -> str:
    """The one ``crgan: error:`` line of a run's stderr (Lightning's own info lines may precede it)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("crgan: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


def tree_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def own_synth(synth_root, tmp_path) -> Path:
    """A copy of the test benchmark that a test may spoil."""
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    return root


def test_a_corrupt_image_met_in_a_dataloader_worker_is_one_line(own_synth, tmp_path, capsys):
    image = sorted((own_synth / "synth_a" / "bounding_box_train").glob("*.jpg"))[0]
    image.write_bytes(b"not a jpeg")
    cfg = small_config(tmp_path, own_synth)
    assert main(["fit", "--config", str(cfg), "--data.num_workers=1", "--trainer.max_epochs=1"]) == 2
    line = error_line(capsys.readouterr().err)
    assert line == f"crgan: error: cannot read image {image}: not a decodable image (corrupt or unsupported format)"


# ------------------------------------------------------------------ folders the user may not write

def without_write_permission(argv: list[str]) -> list[str]:
    """``argv`` run so that file permissions hold: as is for a normal user; as root (who may write
    anywhere), without the capabilities that let root pass over permission bits."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]


@pytest.fixture()
def read_only(tmp_path) -> Path:
    folder = tmp_path / "read_only"
    folder.mkdir()
    (folder / "thesis.txt").write_text("mine")
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


@pytest.mark.parametrize("command", ["synth", "render", "fit", "demo"])
def test_an_output_folder_the_user_may_not_write_is_one_line(command, read_only, synth_root, tmp_path):
    out = read_only / "out"
    argv = {
        "synth": ["synth", "--out", str(out), "--quiet"],
        "render": ["render", "--ckpt", "cut_and_paste", "--source", "synth_a", "--target", "synth_b",
                   "--root", str(synth_root), "--out", str(out), "--quiet"],
        "fit": ["fit", "--config", str(small_config(tmp_path, synth_root)), f"--trainer.default_root_dir={out}",
                f"--trainer.logger.init_args.save_dir={out}", f"--checkpoint.dirpath={out}/ckpt",
                "--trainer.max_epochs=1"],
        "demo": ["demo", "--root", str(synth_root), "--out", str(out)],
    }[command]
    before = tree_hash(read_only)
    proc = subprocess.run(without_write_permission([sys.executable, "-m", "crgan_lightning.app.cli", *argv]),
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc.stderr)
    assert line.startswith("crgan: error: Permission denied: ") and str(read_only) in line
    assert tree_hash(read_only) == before and sorted(os.listdir(read_only)) == ["thesis.txt"]


# ------------------------------------------------------------------ W&B

def test_wandb_logs_offline_unless_the_user_or_a_sweep_asks_otherwise():
    env: dict[str, str] = {}
    wandb_offline_unless_asked(env)
    assert env == {"WANDB_MODE": "offline"}
    for asked in ({"WANDB_MODE": "online"}, {"WANDB_MODE": "disabled"}, {"WANDB_SWEEP_ID": "abc123"}):
        env = dict(asked)
        wandb_offline_unless_asked(env)
        assert env == asked


@pytest.mark.slow
def test_wandb_online_without_an_api_key_is_one_line_and_offline_is_the_default(synth_root, tmp_path):
    cfg = small_config(tmp_path, synth_root)
    argv = [sys.executable, "-m", "crgan_lightning.app.cli", "fit", "--config", str(cfg), "--trainer.max_epochs=1",
            "--trainer.logger=pytorch_lightning.loggers.WandbLogger",
            "--trainer.logger.init_args.project=crgan-tests", f"--trainer.logger.init_args.save_dir={tmp_path}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"), WANDB_SILENT="true")
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**env, "WANDB_MODE": "online"})
    assert proc.returncode == 2, proc.stderr
    line = error_line("\n".join(x for x in proc.stderr.splitlines() if not x.startswith("wandb: WARNING")))
    assert "W&B: No API key configured" in line and "WANDB_MODE=online" in line
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


# ------------------------------------------------------------------ a run that fails on a config error

def test_a_run_stopped_by_a_config_error_leaves_no_empty_version_folder(synth_root, tmp_path, capsys):
    cfg = small_config(tmp_path, synth_root, "reid_crgan.yaml")
    missing = tmp_path / "no-such-generator.ckpt"
    assert main(["fit", "--config", str(cfg), f"--rendering.init_args.translator={missing}"]) == 2
    assert str(missing) in error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()  # no version folder, and the run folder the fit created is gone
    # a run that logged something keeps its folder
    ran = tmp_path / "ran"
    ran.mkdir()
    assert main(["fit", "--config", str(small_config(ran, synth_root)), "--trainer.max_epochs=1"]) == 0
    assert (ran / "run" / "reid_direct" / "version_0" / "metrics.csv").is_file()


# ------------------------------------------------------------------ masks that do not fit

@pytest.mark.parametrize("spoil, expected", [
    ("size", "is 8x4 but its image"),
    ("colour", "has 3 channels of different values"),
])
def test_a_mask_that_does_not_fit_its_image_is_one_line(own_synth, tmp_path, capsys, spoil, expected):
    ds = load_reid_dataset("synth_a", own_synth)
    path = mask_path(ds.root, ds.train[0].path)
    if spoil == "size":
        Image.fromarray(np.full((8, 4), 255, np.uint8)).save(path)
    else:
        rgb = np.zeros((*np.asarray(Image.open(path)).shape[:2], 3), np.uint8)
        rgb[..., 0] = 255
        Image.fromarray(rgb).save(path)
    argv = ["render", "--ckpt", "cut_and_paste", "--source", "synth_a", "--target", "synth_b", "--root",
            str(own_synth), "--out", str(tmp_path / "rendered"), "--quiet"]
    assert main(argv) == 2
    line = error_line(capsys.readouterr().err)
    assert str(path) in line and expected in line


def test_a_grey_mask_stored_as_rgb_is_read_as_its_grey_channel(own_synth):
    from crgan_lightning.data.masks import FolderMasks

    ds = load_reid_dataset("synth_a", own_synth)
    path = mask_path(ds.root, ds.train[0].path)
    grey = np.asarray(Image.open(path))
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(path)
    read = FolderMasks(ds.root)(ds.train[0].path, *grey.shape)
    assert np.array_equal(read, grey.astype(np.float32) / 255.0)


# ------------------------------------------------------------------ masks --overwrite

def test_masks_overwrite_replaces_only_masks_that_crgan_masks_wrote(own_synth, tmp_path, capsys):
    net = tv_seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    weights = tmp_path / "lraspp.pth"
    torch.save(net.state_dict(), weights)
    argv = ["masks", "--dataset", "synth_a", "--root", str(own_synth), "--model", "lraspp_mobilenet_v3_large",
            "--weights", str(weights), "--batch-size", "8", "--quiet", "--overwrite"]
    masks = own_synth / "synth_a" / "masks"  # the benchmark's ground truth, written by crgan synth
    before = tree_hash(masks)
    assert main(argv) == 2
    assert str(masks) in error_line(capsys.readouterr().err)
    assert tree_hash(masks) == before
    shutil.rmtree(masks)
    assert main(argv) == 0 and written_by(masks) == MASK_WRITER  # a folder of its own ...
    capsys.readouterr()
    assert main(argv) == 0  # ... it may rewrite
    assert capsys.readouterr().out.split()[0] == str(len(before))  # every mask again


# ------------------------------------------------------------------ messages name the command's flags

def test_weight_file_errors_name_the_flag_the_user_typed(synth_root, tmp_path, capsys):
    missing = tmp_path / "alexnet.pth"
    assert main(["quality", "--ckpt", "cut_and_paste", "--source", "synth_a", "--target", "synth_b",
                 "--root", str(synth_root), "--lpips-weights", str(missing), "--quiet"]) == 2
    line = error_line(capsys.readouterr().err)
    assert str(missing) in line and "--lpips-weights" in line and "pretrained_path" not in line
    assert main(["masks", "--dataset", "synth_a", "--root", str(synth_root), "--weights", str(missing)]) == 2
    line = error_line(capsys.readouterr().err)
    assert "--weights must name" in line and "weights_path" not in line
