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
    # no ranked-list pictures (their matplotlib figures cost seconds per test run; tests/modules/test_reid_module.py
    # checks them)
    reid = {**SMALL_DATA, "model.init_args.net.init_args.backbone": "resnet10t",
            "model.init_args.ranked_list_queries": 0}
    out = tmp_path / "compare"
    missing = tmp_path / "no-alexnet.pth"
    record = run_compare("synth_a", "synth_b", root=str(root), out=str(out), seeds=[0, 1], crgan_epochs=1,
                         spgan_epochs=1, reid_epochs=1, translator_overrides=translators, reid_overrides=reid,
                         quality={"lpips_path": str(missing), "num_fid": 10, "progress": False},
                         mask_roots={"segmentation": str(seg)}, clustering=False)  # clustering rows: tests below
    assert list(record["table2"]) == ["LOMO", "direct transfer", "oracle rendering", "cut-and-paste", "cut-and-fill",
                                      "SPGAN+LMP", "CR-GAN+LMP", "cut-and-paste [segmentation masks]",
                                      "cut-and-fill [segmentation masks]", "CR-GAN+LMP [segmentation masks]", "TAUDL",
                                      "SPGAN+TAUDL", "CR-GAN+TAUDL"]
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
    assert [r["method"] for r in record["table1"]["rows"]] == ["real source", "cut-and-paste", "cut-and-fill", "SPGAN",
                                                               "CR-GAN"]
    assert all(r["reid_fd"] > 0 and r["fid"] is None for r in record["table1"]["rows"])
    text = capsys.readouterr().out
    assert "Table 2: synth_a -> synth_b" in text and "CR-GAN+LMP [segmentation masks]" in text and "re-id FD" in text
    # the rendering-fidelity table: the two references, the first seed's translators, then those of the
    # second mask quality (cut-and-paste with its masks, the CR-GAN trained on them); the compositing
    # CR-GAN reads the person masks of its root, SPGAN none
    assert [(r["method"], r.get("masks")) for r in record["fidelity"]["rows"]] == [
        (TRUTH_REDRAWN, None), (SOURCE_IMAGE, None), ("cut-and-paste", "exact"), ("cut-and-fill", "exact"),
        ("SPGAN", None), ("CR-GAN", "exact"), ("cut-and-paste", "segmentation"), ("cut-and-fill", "segmentation"),
        ("CR-GAN", "segmentation")]
    assert "Rendering fidelity: synth_a -> synth_b" in text
    # the judge of each CR-GAN is the seed's direct-transfer model; the second mask quality reads its own root
    for stage, data_root in (("crgan", root), ("crgan_segmentation", seg)):
        cfg = saved_config(out / "seed1" / stage)
        assert cfg["model"]["init_args"]["judge"] == str(out / "seed1" / "reid_direct" / "checkpoints" / "last.ckpt")
        assert cfg["data"]["root"] == str(data_root)
    cfg = saved_config(out / "seed1" / "reid_cut_and_paste_segmentation")
    assert cfg["data"]["root"] == str(seg) and cfg["data"]["masks"] == "auto"
    run = out / "seed1"
    for stage, translator in (("reid_cut_and_paste", "cut_and_paste"), ("reid_cut_and_fill", "cut_and_fill"),
                              ("reid_spgan", str(run / "spgan" / "checkpoints" / "last.ckpt")),
                              ("reid_crgan", str(run / "crgan" / "checkpoints" / "last.ckpt")),
                              ("reid_spgan_taudl", str(run / "spgan" / "checkpoints" / "last.ckpt")),
                              ("reid_crgan_taudl", str(run / "crgan" / "checkpoints" / "last.ckpt"))):
        cfg = saved_config(run / stage)
        assert cfg["rendering"]["init_args"]["translator"] == translator
        assert cfg["seed_everything"] == 1
        assert cfg["data"]["masks"] == "auto"  # the streaming configs read the source person masks
        assert (run / stage / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((out / "compare.json").read_text())
    assert saved["table2"]["CR-GAN+LMP"]["mean"]["mAP"] == pytest.approx(record["table2"]["CR-GAN+LMP"]["mean"]["mAP"])
    assert "Table 2" in format_compare(saved)  # a saved record prints again (seed keys are strings in JSON)
    stamps = {p: p.stat().st_mtime_ns for p in run.glob("*/checkpoints/last.ckpt")}
    again = run_compare("synth_a", "synth_b", root=str(root), out=str(out), seeds=[1], crgan_epochs=1,
                        spgan_epochs=1, reid_epochs=1, translator_overrides=translators, reid_overrides=reid,
                        quality={"skip": True}, clustering=False)
    assert again["fidelity"] is None  # skipped with Table 1
    assert "Table 1 not measured: skipped (--no-quality)" in format_compare(again)
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
                                         r"cut-and-fill, SPGAN\+LMP, CR-GAN\+LMP, .*direct -> clustering, "
                                         r"CR-GAN -> clustering, joint hybrid"):
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


@pytest.fixture
def fake_stages(monkeypatch) -> list[tuple[str, dict[str, str]]]:
    """``run_stage`` replaced by a recorder: ``(run folder, {option: last value})`` of each stage
    fitted, in order; each leaves an empty ``last.ckpt`` and fixed metrics, nothing is trained."""
    import crgan_lightning.app.compare as compare

    fitted: list[tuple[str, dict[str, str]]] = []

    def fake_train(name, args, run, test):
        options = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)  # the last one wins
        options["configs"] = " ".join(a for a in args if a.endswith(".yaml"))
        fitted.append((Path(run).name, options))
        (Path(run) / "checkpoints").mkdir(parents=True, exist_ok=True)
        (Path(run) / "checkpoints" / "last.ckpt").touch()
        return {"rank1": 1.0, "rank5": 2.0, "rank10": 3.0, "mAP": 1.0}

    monkeypatch.setattr(compare, "run_stage", fake_train)
    monkeypatch.setattr(compare, "lomo_row", lambda source, target, root, seeds, out: compare.summarize(
        {seed: {k: 0.0 for k in compare.KEYS} for seed in seeds}))
    return fitted


CLUSTER_ROWS = ["direct -> clustering", "CR-GAN -> clustering", "joint hybrid"]


def test_clustering_rows_start_from_their_seeds_runs_with_the_rows_schedule(tmp_path, fake_stages):
    out = tmp_path / "runs"
    record = run_compare("synth_a", "synth_b", root=str(tmp_path), out=str(out), seeds=[0, 1], reid_epochs=7,
                         quality={"skip": True}, methods=CLUSTER_ROWS, reid_overrides={"data.num_workers": 0})
    stages = ["reid_direct", "crgan", "reid_crgan", "reid_cluster", "reid_crgan_cluster", "reid_crgan_cluster_joint"]
    assert [stage for stage, _ in fake_stages] == stages * 2
    # CR-GAN+LMP is trained (and reported) as the run the CR-GAN clustering rows start from
    assert list(record["table2"]) == ["LOMO", "direct transfer", "CR-GAN+LMP", *CLUSTER_ROWS]
    for i, seed in enumerate((0, 1)):
        fitted = dict(fake_stages[i * len(stages):(i + 1) * len(stages)])
        ckpt = {stage: str(out / f"seed{seed}" / stage / "checkpoints" / "last.ckpt") for stage in stages}
        init = {stage: fitted[stage].get("model.init_args.init_checkpoint") for stage in stages}
        assert init == {"reid_direct": None, "crgan": None, "reid_crgan": None, "reid_cluster": ckpt["reid_direct"],
                        "reid_crgan_cluster": ckpt["reid_crgan"], "reid_crgan_cluster_joint": ckpt["reid_crgan"]}
        assert fitted["reid_crgan_cluster_joint"]["rendering.init_args.translator"] == ckpt["crgan"]
        assert "rendering.init_args.translator" not in fitted["reid_crgan_cluster"]
        assert fitted["reid_crgan"]["rendering.init_args.translator"] == ckpt["crgan"]
        assert fitted["crgan"]["model.init_args.judge"] == ckpt["reid_direct"]
        for stage, options in fitted.items():  # every re-id row: the same schedule, seed and overrides
            assert options["seed_everything"] == str(seed)
            if stage.startswith("reid"):
                assert options["trainer.max_epochs"] == "7" and options["data.num_workers"] == "0"
        assert "base/cluster_joint.yaml" in fitted["reid_crgan_cluster_joint"]["configs"]
        assert "base/cluster.yaml" in fitted["reid_cluster"]["configs"]


def test_clustering_from_direct_transfer_alone_trains_no_translator(tmp_path, fake_stages):
    run_compare("synth_a", "synth_b", root=str(tmp_path), out=str(tmp_path / "runs"), seeds=[0],
                quality={"skip": True}, methods=["reid_cluster"])  # a row may be named by its stage
    assert [stage for stage, _ in fake_stages] == ["reid_direct", "reid_cluster"]


def test_every_row_includes_clustering_unless_turned_off(tmp_path, fake_stages):
    run_compare("synth_a", "synth_b", root=str(tmp_path), out=str(tmp_path / "with"), seeds=[0],
                quality={"skip": True}, taudl=False)
    assert [stage for stage, _ in fake_stages] == ["reid_direct", "crgan", "spgan", "reid_cut_and_paste",
                                                   "reid_cut_and_fill", "reid_spgan", "reid_crgan", "reid_cluster",
                                                   "reid_crgan_cluster", "reid_crgan_cluster_joint"]
    fake_stages.clear()
    record = run_compare("synth_a", "synth_b", root=str(tmp_path), out=str(tmp_path / "without"), seeds=[0],
                         quality={"skip": True}, taudl=False, clustering=False)
    assert not any("cluster" in stage for stage, _ in fake_stages)
    assert not set(CLUSTER_ROWS) & set(record["table2"])


def test_crgan_compare_no_clustering_flag_reaches_run_compare(monkeypatch):
    import crgan_lightning.app.compare as compare
    from crgan_lightning.app.cli import main

    calls = []
    monkeypatch.setattr(compare, "run_compare", lambda *a, **kw: calls.append(kw))
    assert main(["compare", "--source", "synth_a", "--target", "synth_b", "--no-clustering",
                 "--methods", "direct -> clustering", "joint hybrid"]) == 0
    assert calls[0]["clustering"] is False and calls[0]["methods"] == ["direct -> clustering", "joint hybrid"]
    assert main(["compare", "--source", "synth_a", "--target", "synth_b"]) == 0
    assert calls[1]["clustering"] is True


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
