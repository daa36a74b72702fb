"""The rendering-fidelity table: translators scored against the benchmark's true renderings."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from crgan_lightning.app.cli import main
from crgan_lightning.app.compare import _fidelity, format_compare
from crgan_lightning.app.fidelity import SOURCE_IMAGE, TRUTH_REDRAWN, fidelity_table, format_fidelity_table
from crgan_lightning.data.synthetic import DOMAINS, build_truth, generate_benchmark
from crgan_lightning.errors import ConfigError
from crgan_lightning.modules.spgan import SPGANModule

SIZE = dict(seed=0, num_train_ids=12, num_test_ids=8, height=128, width=64, progress=False)  # synth_root's
PAIRS = 24


@pytest.fixture(scope="module")
def small_masks_root(tmp_path_factory) -> Path:
    """The test benchmark's images with small-pedestrian masks."""
    root = tmp_path_factory.mktemp("small_pedestrian")
    generate_benchmark(root, mask_quality="small-pedestrian", **SIZE)
    return root


@pytest.fixture(scope="module")
def spgan_ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    module = SPGANModule(generator=dict(base_channels=8, num_res_blocks=1),
                         discriminator=dict(base_channels=8, n_layers=2), siamese=dict(base_channels=8, feat_dim=16))
    path = tmp_path_factory.mktemp("spgan") / "spgan.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="module")
def table(synth_root, small_masks_root, tiny_crgan_ckpt, spgan_ckpt) -> dict:
    return fidelity_table(["cut_and_paste", ("cut_and_paste", small_masks_root), str(tiny_crgan_ckpt),
                           str(spgan_ckpt), "cut_and_fill"], synth_root, num_pairs=PAIRS, batch_size=10)


def test_every_translator_gets_a_row_of_finite_figures_after_the_two_references(table, tiny_crgan_ckpt):
    rows = table["rows"]
    assert [(r["method"], r.get("masks")) for r in rows] == [
        (TRUTH_REDRAWN, None), (SOURCE_IMAGE, None), ("cut-and-paste", "exact"),
        ("cut-and-paste", "small-pedestrian"), ("CR-GAN", None), ("SPGAN", None), ("cut-and-fill", "exact")]
    assert table["num_pairs"] == PAIRS and table["truth_version"] == 1 and table["periods"] == [2, 4, 8]
    for row in rows:
        for key in ("psnr", "psnr_person", "psnr_background", "psnr_context", "ssim", "ssim_person",
                    "ssim_background",
                    "delta_e_person", "hf_db", "grid_db", "grid_db_sd", "grid_db_p2", "grid_db_p8_sd"):
            assert math.isfinite(row[key]), (row["method"], key)
        assert -1.0 <= row["ssim"] <= 1.0 and row["delta_e_person"] >= 0.0
    assert rows[4]["checkpoint"] == str(tiny_crgan_ckpt)


def test_the_noise_redrawn_truth_scores_the_psnr_of_two_noise_draws_by_hand(table, synth_root):
    """Two draws of a camera's noise (per channel sd n, plus grey sd n / 2) differ by a variance of
    2 * 1.25 * n^2 on the 0-255 scale: the reference row is that PSNR, averaged over the pairs."""
    truth = build_truth(synth_root, PAIRS)
    cams = DOMAINS["synth_b"].cameras
    from crgan_lightning.data.synthetic.plan import _job_scene

    expected = []
    for pair in truth.pairs:
        noise = cams[_job_scene("synth_b", 0, pair.target)[2].cam].noise
        expected.append(10 * math.log10(4.0 / (2.5 * noise ** 2 * (2 / 255) ** 2)))
    assert table["rows"][0]["psnr"] == pytest.approx(float(np.mean(expected)), abs=0.4)  # clipping, rounding
    assert abs(table["rows"][0]["grid_db"]) < 1.0  # two true images: no grid over the truth's level


def test_cut_and_paste_beats_no_rendering_and_loses_person_pixels_with_poorer_masks(table):
    truth, source, exact, small = table["rows"][:4]
    # the pairing is right: pasting the source person onto the target brings both regions closer to the truth
    assert exact["psnr_background"] > source["psnr_background"] + 3.0
    assert exact["psnr"] > source["psnr"] + 3.0
    # small-pedestrian masks lose person pixels (the target's own pixels show there instead)
    assert small["psnr_person"] < exact["psnr_person"] - 1.0
    # nothing beats another draw of the truth itself
    assert all(truth[k] > row[k] for row in table["rows"][1:] for k in ("psnr", "psnr_person", "psnr_background"))


def test_cut_and_paste_leaves_the_context_person_where_the_truth_shows_the_scene(table):
    """Pasting over the target image keeps the target's own person wherever the source person does
    not cover them: PSNR there is far below the rest of the background; the truth redrawn is not."""
    truth, _, exact, small = table["rows"][:4]
    assert exact["psnr_context"] < exact["psnr_background"] - 5.0
    assert small["psnr_context"] < small["psnr_background"] - 5.0
    assert abs(truth["psnr_context"] - truth["psnr_background"]) < 1.0
    # cut-and-fill removes that person (filled in from the surroundings) and keeps the same person pixels
    fill = table["rows"][6]
    assert fill["psnr_context"] > exact["psnr_context"] + 5.0
    assert fill["psnr_person"] == pytest.approx(exact["psnr_person"], abs=1e-6)


def test_the_context_figure_is_left_out_when_the_root_has_no_exact_masks(synth_root, small_masks_root):
    """PSNR ctx reads the target's person masks from the benchmark root: a root written with
    degraded masks gives no such column rather than a figure on the wrong region."""
    table = fidelity_table(["cut_and_paste"], small_masks_root, num_pairs=4, batch_size=4)
    assert all("psnr_context" not in row for row in table["rows"]) and "psnr" in table["rows"][2]
    assert "PSNR ctx" not in format_fidelity_table(table)


def test_the_printed_table_names_every_row_and_the_reference(table):
    text = format_fidelity_table(table)
    for label in (TRUTH_REDRAWN, SOURCE_IMAGE, "cut-and-paste [exact masks]", "cut-and-paste [small-pedestrian masks]",
                  "CR-GAN (crgan.ckpt)", "SPGAN (spgan.ckpt)", "dE00 pers", "PSNR ctx", "HF dB", "grid dB",
                  "grid dB per period", "period 8 px"):
        assert label in text
    assert f"{PAIRS} evaluation pairs" in text


def test_a_mask_root_of_another_benchmark_is_refused(synth_root, tmp_path):
    generate_benchmark(tmp_path, seed=1, num_train_ids=3, num_test_ids=2, progress=False)
    with pytest.raises(ConfigError, match="another benchmark.*seed"):
        fidelity_table([("cut_and_paste", tmp_path)], synth_root, num_pairs=2)


def test_compare_scores_the_first_seed_translators_of_each_mask_quality(synth_root, small_masks_root, tmp_path,
                                                                        tiny_crgan_ckpt, spgan_ckpt):
    run = tmp_path / "seed0"
    for stage, ckpt in (("crgan", tiny_crgan_ckpt), ("spgan", spgan_ckpt), ("crgan_small", tiny_crgan_ckpt)):
        (run / stage / "checkpoints").mkdir(parents=True)
        shutil.copy(ckpt, run / stage / "checkpoints" / "last.ckpt")
    fidelity = _fidelity(run, str(synth_root), [("", str(synth_root)), ("small", str(small_masks_root))], 6,
                         "synth_a", "synth_b", {"crgan", "spgan"})
    assert [(r["method"], r.get("masks")) for r in fidelity["rows"][2:]] == [
        ("cut-and-paste", "exact"), ("SPGAN", None), ("CR-GAN", None), ("cut-and-paste", "small-pedestrian"),
        ("CR-GAN", None)]
    assert fidelity["rows"][-1]["checkpoint"] == str(run / "crgan_small" / "checkpoints" / "last.ckpt")
    assert _fidelity(run, str(synth_root), [("", str(synth_root))], 6, "market", "duke", {"crgan"}) is None
    without_spgan = _fidelity(run, str(synth_root), [("", str(synth_root))], 2, "synth_a", "synth_b", {"crgan"})
    assert [r["method"] for r in without_spgan["rows"][2:]] == ["cut-and-paste", "CR-GAN"]  # no SPGAN trained
    record = {"source": "synth_a", "target": "synth_b", "seeds": [0], "table1": None, "table1_missing": "skipped",
              "fidelity": fidelity,
              "table2": {"direct transfer": {"seeds": {0: {"rank1": 1.0, "rank5": 2.0, "rank10": 3.0, "mAP": 1.0}},
                                             "mean": {"mAP": 1.0}, "sd": {"mAP": 0.0}}}}
    assert "Rendering fidelity: synth_a -> synth_b, 6 evaluation pairs" in format_compare(record)
    missing = {**record, "fidelity": None, "fidelity_missing": "cannot read data/synth_a/meta.json"}
    assert "Rendering fidelity not measured: cannot read data/synth_a/meta.json" in format_compare(missing)


def test_crgan_quality_prints_the_fidelity_table_and_refuses_it_off_the_embedded_pair(synth_root, small_masks_root,
                                                                                      capsys):
    argv = ["quality", "--ckpt", "cut_and_paste", "--source", "synth_a", "--target", "synth_b", "--root",
            str(synth_root), "--mask-root", f"small-pedestrian={small_masks_root}", "--fidelity-pairs", "4",
            "--fidelity-only"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 evaluation pairs" in out and "cut-and-paste [small-pedestrian masks]" in out
    assert main(["quality", "--source", "synth_b", "--target", "synth_a", "--root", str(synth_root),
                 "--fidelity-only"]) == 2
    assert "no rendering truth for synth_b -> synth_a" in capsys.readouterr().err


def test_two_checkpoints_of_one_name_are_told_apart_by_their_run_folders():
    figures = {key: 1.0 for key in ("psnr", "psnr_person", "psnr_background", "ssim", "ssim_person",
                                    "ssim_background", "delta_e_person", "hf_db", "grid_db", "grid_db_sd")}
    figures.update({f"grid_db_p{p}{sd}": 0.5 for p in (2, 4, 8) for sd in ("", "_sd")})
    rows = [{"method": "CR-GAN", "checkpoint": f"runs/{run}/seed0/crgan/checkpoints/last.ckpt", **figures}
            for run in ("demo", "demo_comp")]
    rows.append({"method": "SPGAN", "checkpoint": "runs/demo/seed0/spgan/checkpoints/last.ckpt", **figures})
    text = format_fidelity_table({"num_pairs": 2, "seed": 0, "height": 64, "width": 32, "truth_version": 1,
                                  "periods": [2, 4, 8], "rows": rows})
    for label in ("CR-GAN (demo/seed0/crgan/last.ckpt)", "CR-GAN (demo_comp/seed0/crgan/last.ckpt)",
                  "SPGAN (demo/seed0/spgan/last.ckpt)"):
        assert label in text
    assert "0.50 +/- 0.50" in text  # the per-period block
    one = format_fidelity_table({"num_pairs": 2, "seed": 0, "height": 64, "width": 32, "truth_version": 1,
                                 "periods": [2, 4, 8], "rows": rows[:1]})
    assert "CR-GAN (crgan/last.ckpt)" in one


def test_a_record_from_before_a_column_prints_without_it(table):
    """Records written before ``psnr_context`` existed print without that column, not with dashes."""
    old = dict(table, rows=[{k: v for k, v in row.items() if k != "psnr_context"} for row in table["rows"]])
    text = format_fidelity_table(old)
    assert "PSNR ctx" not in text and "PSNR bg" in text
