"""The end-to-end demo, with tiny networks and schedules, on the test benchmark."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_CRGAN, as_overrides

from crgan_lightning.app.demo import fit_finished, run_demo, saved_config


def test_fit_finished_reads_the_epochs_processed_in_the_checkpoint(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "loops": {"fit_loop": {"epoch_progress": {"current": {"processed": 3,
                                                                                        "completed": 2}}}}}, ckpt)
    for max_epochs, finished in ((3, True), (2, True), (4, False), (None, False)):
        assert fit_finished(ckpt, max_epochs) is finished
    torch.save({"state_dict": {}}, ckpt)  # no loop state (not written by a Trainer): train it
    assert fit_finished(ckpt, 3) is False


SMALL_DATA = {"data.height": 64, "data.width": 32, "data.batch_size": 8, "data.num_workers": 0,
              "trainer.limit_train_batches": 2, "trainer.enable_progress_bar": False}


@pytest.mark.slow
def test_demo_trains_every_stage_prints_one_table_and_resumes(tmp_path, synth_root, capsys):
    crgan = {**SMALL_DATA, **as_overrides(TINY_CRGAN),
             "data.target_batch_size": 8}
    # no ranked-list pictures (their matplotlib figures cost seconds per test run; tests/modules/test_reid_module.py
    # checks them)
    reid = {**SMALL_DATA, "model.init_args.net.init_args.backbone": "resnet10t",
            "model.init_args.ranked_list_queries": 0}
    out = tmp_path / "demo"
    results = run_demo(root=str(synth_root), out=str(out), seed=3, crgan_epochs=1, reid_epochs=1,
                       crgan_overrides=crgan, reid_overrides=reid)
    assert set(results) == {"direct transfer", "CR-GAN streaming"}
    for metrics in results.values():
        assert {"rank1", "rank5", "rank10", "mAP", "mINP"} <= set(metrics)
        assert 0.0 <= metrics["mAP"] <= 100.0 and metrics["rank1"] <= metrics["rank5"] <= metrics["rank10"]
    text = capsys.readouterr().out
    assert "synth_a -> synth_b, tested on synth_b" in text and "CR-GAN streaming" in text
    from test_docs import documented_calibration

    assert "calibration rows" in text and "LMP mAP" in text and "gain" in text
    printed = text.split("calibration rows")[1].split("pictures:")[0]
    numbers = [[float(x) for x in line.split()[-2:]] for line in printed.strip().splitlines()[1:] if line.strip()]
    assert numbers == [[rank1, mean_ap] for rank1, mean_ap in documented_calibration()]  # the documented rows
    run = out / "seed3"
    streamed = saved_config(run / "reid_crgan")
    assert streamed["rendering"]["init_args"]["translator"] == str(run / "crgan" / "checkpoints" / "last.ckpt")
    assert streamed["seed_everything"] == 3 and streamed["trainer"]["max_epochs"] == 1
    gan = saved_config(run / "crgan")  # judged by the seed's direct transfer
    assert gan["model"]["init_args"]["judge"] == str(run / "reid_direct" / "checkpoints" / "last.ckpt")
    for stage in ("crgan", "reid_direct", "reid_crgan"):
        assert (run / stage / "checkpoints" / "last.ckpt").is_file()
    assert list(run.glob("reid_*/logs/*/plots/cmc_test_*.png"))
    stamps = {s: (run / s / "checkpoints" / "last.ckpt").stat().st_mtime_ns for s in ("crgan", "reid_direct")}
    again = run_demo(root=str(synth_root), out=str(out), seed=3, crgan_epochs=1, reid_epochs=1,
                     crgan_overrides=crgan, reid_overrides=reid)  # finished stages are not trained again
    assert again["direct transfer"]["mAP"] == pytest.approx(results["direct transfer"]["mAP"], abs=1e-4)
    assert {s: (run / s / "checkpoints" / "last.ckpt").stat().st_mtime_ns for s in stamps} == stamps
