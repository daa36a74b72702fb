"""make compare / crgan compare: every method trained and tested per seed, the two tables printed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TINY_CRGAN, as_overrides

from crgan_lightning.app.compare import format_compare, run_compare, summarize
from crgan_lightning.app.fidelity import SOURCE_IMAGE, TRUTH_REDRAWN
from crgan_lightning.app.demo import saved_config
from crgan_lightning.errors import CRGANError

REPO = Path(__file__).resolve().parents[1]
SMALL_DATA = {"data.height": 64, "data.width": 32, "data.batch_size": 8, "data.num_workers": 0,
              "trainer.limit_train_batches": 2, "trainer.enable_progress_bar": False}
TINY_SPGAN = {"generator": {"base_channels": 8, "num_res_blocks": 1},
              "discriminator": {"base_channels": 8, "n_layers": 2},
              "siamese": {"base_channels": 8, "feat_dim": 16}, "pool_size": 4}


def test_summarize_gives_mean_and_sample_sd():
    per_seed = {0: {"rank1": 10.0, "rank5": 20.0, "rank10": 30.0, "mAP": 4.0},
                1: {"rank1": 14.0, "rank5": 22.0, "rank10": 30.0, "mAP": 6.0}}
    row = summarize(per_seed)
    assert row["mean"] == {"rank1": 12.0, "rank5": 21.0, "rank10": 30.0, "mAP": 5.0}
    assert row["sd"]["rank1"] == pytest.approx(2.8284, abs=1e-4) and row["sd"]["rank10"] == 0.0
    assert summarize({0: per_seed[0]})["sd"]["mAP"] == 0.0


@pytest.fixture(scope="module")
def roots(synth_root, tmp_path_factory) -> tuple[Path, Path]:
    """The test benchmark with its oracle domain, and the same images with segmentation-like masks."""
    from crgan_lightning.data.synthetic import generate_benchmark

    size = dict(seed=0, num_train_ids=12, num_test_ids=8, height=128, width=64, progress=False)
    root = tmp_path_factory.mktemp("with_oracle")
    shutil.copytree(synth_root, root, dirs_exist_ok=True)
    generate_benchmark(root, domains=(), oracle=True, **size)
    seg = tmp_path_factory.mktemp("segmentation")
    generate_benchmark(seg, mask_quality="segmentation", **size)
    return root, seg


@pytest.mark.slow
def test_compare_trains_every_method_prints_both_tables_and_resumes(tmp_path, roots, capsys):
    root, seg = roots
    translators = {"crgan": {**SMALL_DATA, **as_overrides(TINY_CRGAN)},
                   "spgan": {**SMALL_DATA, **as_overrides(TINY_SPGAN)}}
    reid = {**SMALL_DATA, "model.init_args.net.init_args.backbone": "resnet10t"}
    out = tmp_path / "compare"
    missing = tmp_path / "no-alexnet.pth"
    record = run_compare("synth_a", "synth_b", root=str(root), out=str(out), seeds=[0, 1], crgan_epochs=1,
                         spgan_epochs=1, reid_epochs=1, translator_overrides=translators, reid_overrides=reid,
                         quality={"lpips_path": str(missing), "num_fid": 10, "progress": False},
                         mask_roots={"segmentation": str(seg)})
    assert list(record["table2"]) == ["LOMO", "direct transfer", "oracle rendering", "cut-and-paste", "SPGAN+LMP",
                                      "CR-GAN+LMP", "cut-and-paste [segmentation masks]",
                                      "CR-GAN+LMP [segmentation masks]", "TAUDL", "SPGAN+TAUDL", "CR-GAN+TAUDL"]
    from crgan_lightning.descriptors import evaluate_descriptor

    lomo = evaluate_descriptor("synth_b", str(root), height=64, width=32, progress=False)
    assert record["table2"]["LOMO"]["mean"] == pytest.approx(lomo) and record["table2"]["LOMO"]["sd"]["mAP"] == 0
    for method, row in record["table2"].items():
        assert set(row["seeds"]) == {0, 1}
        for metrics in row["seeds"].values():
            assert 0.0 <= metrics["mAP"] <= 100.0 and metrics["rank1"] <= metrics["rank5"] <= metrics["rank10"]
        maps = [m["mAP"] for m in row["seeds"].values()]
        assert row["mean"]["mAP"] == pytest.approx(sum(maps) / 2)
    # Table 1: the LPIPS weights are missing, the re-id stand-ins (first seed's direct transfer) are there
    assert "no-alexnet.pth" in record["table1"]["missing"] and record["table1_missing"] is None
    assert [r["method"] for r in record["table1"]["rows"]] == ["real source", "cut-and-paste", "SPGAN", "CR-GAN"]
    assert all(r["reid_fd"] > 0 and r["fid"] is None for r in record["table1"]["rows"])
    text = capsys.readouterr().out
    assert "Table 2: synth_a -> synth_b" in text and "CR-GAN+LMP [segmentation masks]" in text and "re-id FD" in text
    # the rendering-fidelity table: the two references, the first seed's translators, then those of the
    # second mask quality (cut-and-paste with its masks, the CR-GAN trained on them)
    assert [(r["method"], r.get("masks")) for r in record["fidelity"]["rows"]] == [
        (TRUTH_REDRAWN, None), (SOURCE_IMAGE, None), ("cut-and-paste", "exact"), ("SPGAN", None), ("CR-GAN", None),
        ("cut-and-paste", "segmentation"), ("CR-GAN", None)]
    assert "Rendering fidelity: synth_a -> synth_b" in text
    # the judge of each CR-GAN is the seed's direct-transfer model; the second mask quality reads its own root
    for stage, data_root in (("crgan", root), ("crgan_segmentation", seg)):
        cfg = saved_config(out / "seed1" / stage)
        assert cfg["model"]["init_args"]["judge"] == str(out / "seed1" / "reid_direct" / "checkpoints" / "last.ckpt")
        assert cfg["data"]["root"] == str(data_root)
    cfg = saved_config(out / "seed1" / "reid_cut_and_paste_segmentation")
    assert cfg["data"]["root"] == str(seg) and cfg["data"]["masks"] == "auto"
    run = out / "seed1"
    for stage, translator in (("reid_cut_and_paste", "cut_and_paste"),
                              ("reid_spgan", str(run / "spgan" / "checkpoints" / "last.ckpt")),
                              ("reid_crgan", str(run / "crgan" / "checkpoints" / "last.ckpt")),
                              ("reid_spgan_taudl", str(run / "spgan" / "checkpoints" / "last.ckpt")),
                              ("reid_crgan_taudl", str(run / "crgan" / "checkpoints" / "last.ckpt"))):
        cfg = saved_config(run / stage)
        assert cfg["rendering"]["init_args"]["translator"] == translator
        assert cfg["seed_everything"] == 1
        assert (cfg["data"]["masks"] == "auto") == (stage == "reid_cut_and_paste")
        assert (run / stage / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((out / "compare.json").read_text())
    assert saved["table2"]["CR-GAN+LMP"]["mean"]["mAP"] == pytest.approx(record["table2"]["CR-GAN+LMP"]["mean"]["mAP"])
    assert "Table 2" in format_compare(saved)  # a saved record prints again (seed keys are strings in JSON)
    stamps = {p: p.stat().st_mtime_ns for p in run.glob("*/checkpoints/last.ckpt")}
    again = run_compare("synth_a", "synth_b", root=str(root), out=str(out), seeds=[1], crgan_epochs=1,
                        spgan_epochs=1, reid_epochs=1, translator_overrides=translators, reid_overrides=reid,
                        quality={"skip": True})
    assert again["fidelity"] is None  # skipped with Table 1
    assert again["table2"]["SPGAN+LMP"]["seeds"][1]["mAP"] == pytest.approx(
        record["table2"]["SPGAN+LMP"]["seeds"][1]["mAP"], abs=1e-4)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing trained again
    # --methods: only the chosen rows (and direct transfer, the judge) are reported, still nothing trained
    chosen = run_compare("synth_a", "synth_b", root=str(root), out=str(out), seeds=[1], crgan_epochs=1,
                         spgan_epochs=1, reid_epochs=1, translator_overrides=translators, reid_overrides=reid,
                         quality={"skip": True}, methods=["cut-and-paste"])
    assert list(chosen["table2"]) == ["LOMO", "direct transfer", "oracle rendering", "cut-and-paste"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_compare_refuses_an_unknown_method_before_training(tmp_path):
    with pytest.raises(CRGANError, match=r"--methods CR-GAN: no such row; expected some of cut-and-paste, "
                                         r"SPGAN\+LMP, CR-GAN\+LMP"):
        run_compare("synth_a", "synth_b", root=str(tmp_path), out=str(tmp_path / "runs"), methods=["CR-GAN"])
    assert not (tmp_path / "runs").exists()


def test_compare_without_spgan_rows_trains_no_spgan(tmp_path, monkeypatch):
    """Which stages a chosen set of rows trains (run_stage recorded, nothing trained)."""
    import crgan_lightning.app.compare as compare

    trained = []

    def fake_train(name, args, run, test):
        trained.append(Path(run).name)
        (Path(run) / "checkpoints").mkdir(parents=True, exist_ok=True)
        (Path(run) / "checkpoints" / "last.ckpt").touch()
        return {"rank1": 1.0, "rank5": 2.0, "rank10": 3.0, "mAP": 1.0}

    monkeypatch.setattr(compare, "run_stage", fake_train)
    monkeypatch.setattr(compare, "lomo_row", lambda *a: compare.summarize({0: {k: 0.0 for k in compare.KEYS}}))
    compare.run_compare("synth_a", "synth_b", root=str(tmp_path), out=str(tmp_path / "runs"), seeds=[0],
                        quality={"skip": True}, methods=["cut-and-paste", "CR-GAN+LMP"],
                        mask_roots={"segmentation": str(tmp_path)})
    assert trained == ["reid_direct", "crgan", "reid_cut_and_paste", "reid_crgan", "crgan_segmentation",
                       "reid_cut_and_paste_segmentation", "reid_crgan_segmentation"]


def test_make_compare_target_reaches_the_command(tmp_path):
    proc = subprocess.run(["make", "--no-print-directory", "-n", "compare", "SRC=market", "TGT=duke",
                           "DATA_ROOT=/datasets", "SEEDS=3 4"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    line = [x for x in proc.stdout.splitlines() if "crgan compare" in x][-1].strip()
    assert line.endswith("crgan compare --source market --target duke --root /datasets --seeds 3 4")
    help_text = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True).stdout
    assert "make compare" in help_text and "make train-spgan" in help_text
    spgan = subprocess.run(["make", "--no-print-directory", "-n", "train-spgan", "SRC=synth_a", "TGT=synth_b"],
                           cwd=REPO, capture_output=True, text=True).stdout
    spgan = [x for x in spgan.splitlines() if "crgan fit" in x][-1]
    assert "crgan fit --stage spgan --source synth_a --target synth_b --runs runs --data.root=data" in spgan
