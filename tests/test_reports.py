"""The image-quality table on the embedded benchmark, with a tiny CR-GAN checkpoint and self-built
LPIPS / Inception weight files (random weights saved in the layout of the real downloads)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.models as tvm
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

from crgan_lightning.errors import ConfigError, WeightsError
from crgan_lightning.modules.crgan import CRGANModule
from crgan_lightning.app.reports import CRGAN, REAL_SOURCE, choose_samples, format_quality_table, quality_table


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, Path]:
    """A random torchvision AlexNet state dict and a random state dict of torch-fidelity's Inception-v3."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    torch.save(tvm.alexnet().state_dict(), folder / "alexnet.pth")
    cls = tf_inception.FeatureExtractorInceptionV3
    with pytest.MonkeyPatch.context() as mp:  # build the network without loading any weights
        mp.setattr(tf_inception, "load_state_dict_from_url", lambda *args, **kwargs: {})
        mp.setattr(cls, "load_state_dict", lambda self, *args, **kwargs: None)
        net = cls("inception-v3-compat", ["2048"])
    for module in net.modules():  # keep the 2048-d features at a usable scale through the deep network
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(net.state_dict(), folder / "inception.pth")
    return {"lpips": folder / "alexnet.pth", "inception": folder / "inception.pth"}


@pytest.fixture(scope="module")
def crgan_ckpt(tmp_path_factory) -> Path:
    """An untrained tiny CR-GAN checkpoint with the keys Lightning writes."""
    torch.manual_seed(0)
    module = CRGANModule(num_source_pids=12, num_target_cameras=8,
                         generator=dict(base_channels=8, num_down=3, max_channels=32, num_res_blocks=1),
                         classifier=dict(backbone="resnet10t"))
    path = tmp_path_factory.mktemp("ckpt") / "crgan.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


ARGS = dict(source="synth_a", target="synth_b", num_sources=2, num_contexts=3, num_fid=10, height=128,
            width=64, batch_size=10, seed=0, progress=False)


@pytest.fixture(scope="module")
def table(synth_root, weight_files, crgan_ckpt) -> dict:
    return quality_table(str(crgan_ckpt), root=str(synth_root), lpips_path=str(weight_files["lpips"]),
                         inception_path=str(weight_files["inception"]), **ARGS)


def test_quality_table_reports_real_source_and_checkpoint_rows_with_finite_values(table, crgan_ckpt):
    assert [row["method"] for row in table["rows"]] == [REAL_SOURCE, CRGAN]
    assert table["num_fid"] == 10 and table["num_sources"] == 2 and table["num_contexts"] == 3
    assert "kid_skipped" not in table
    real, crgan = table["rows"]
    for row in table["rows"]:
        for key in ("lpips", "fid", "kid_mean", "kid_std"):
            assert math.isfinite(row[key]), (row["method"], key)
        assert row["fid"] > 0
    assert crgan["lpips"] > 0  # the generator's output depends on the context
    assert crgan["checkpoint"] == str(crgan_ckpt)


def test_format_quality_table_prints_aligned_rows(table):
    text = format_quality_table(table)
    lines = text.splitlines()
    assert lines[0].startswith("synth_a -> synth_b: FID/KID on 10 images per set")
    header, rule, real, crgan = lines[1:5]
    assert header.split()[:3] == ["method", "LPIPS", "diversity"]
    assert len({len(header), len(rule), len(real), len(crgan)}) == 1
    assert real.startswith(REAL_SOURCE) and crgan.startswith("CR-GAN (crgan.ckpt)")
    assert f"{table['rows'][1]['fid']:.2f}" in crgan and "+/-" in crgan
    assert format_quality_table(table["rows"]).splitlines()[0] == header


def test_real_source_row_is_the_same_without_a_checkpoint(table, synth_root, weight_files):
    args = dict(ARGS, num_sources=1)  # the FID images do not depend on the LPIPS grid
    alone = quality_table(None, root=str(synth_root), inception_path=str(weight_files["inception"]), **args)
    assert [row["method"] for row in alone["rows"]] == [REAL_SOURCE]
    assert alone["rows"][0]["fid"] == pytest.approx(table["rows"][0]["fid"], rel=1e-6)
    assert alone["rows"][0]["kid_mean"] == pytest.approx(table["rows"][0]["kid_mean"], rel=1e-6)


def test_choose_samples_is_deterministic_and_clips_to_the_pools():
    a = choose_samples(30, 20, 50, num_sources=5, num_contexts=4, num_fid=100, seed=3)
    b = choose_samples(30, 20, 50, num_sources=5, num_contexts=4, num_fid=100, seed=3)
    c = choose_samples(30, 20, 50, num_sources=5, num_contexts=4, num_fid=100, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["fid_source"], c["fid_source"])
    assert len(a["fid_source"]) == len(a["fid_reference"]) == len(a["fid_context"]) == 20
    assert len(set(a["fid_reference"].tolist())) == 20
    assert a["lpips_context"].shape == (5, 4)
    assert all(len(set(row.tolist())) == 4 for row in a["lpips_context"])
    with pytest.raises(ConfigError, match="num_contexts=60"):
        choose_samples(30, 20, 50, num_sources=5, num_contexts=60, num_fid=10)


def test_quality_table_rejects_bad_arguments_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="num_contexts=1"):
        quality_table(None, "synth_a", "synth_b", root=str(tmp_path), num_contexts=1)
    with pytest.raises(WeightsError, match="missing.ckpt"):
        quality_table(str(tmp_path / "missing.ckpt"), "synth_a", "synth_b", root=str(tmp_path))


@pytest.mark.slow
def test_crgan_quality_command_prints_the_table(synth_root, weight_files, tiny_crgan_ckpt, capsys, monkeypatch):
    from crgan_lightning.app import reports
    from crgan_lightning.app.cli import main

    sizes = []

    def recorded(*args, **kwargs):
        sizes.append((kwargs["height"], kwargs["width"]))
        return quality_table(*args, **kwargs)

    monkeypatch.setattr(reports, "quality_table", recorded)
    argv = ["quality", "--ckpt", str(tiny_crgan_ckpt), "--source", "synth_a", "--target", "synth_b",
            "--root", str(synth_root), "--num-sources", "3", "--num-contexts", "2", "--num-fid", "12",
            "--lpips-weights", str(weight_files["lpips"]),
            "--inception-weights", str(weight_files["inception"]), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert REAL_SOURCE in out and CRGAN in out
    assert sizes == [(64, 32)]  # no --height/--width: the size the generator was trained at
    assert main(argv[:-3] + ["--inception-weights", "/nope/inception.pth", "--quiet"]) == 2
    assert "/nope/inception.pth" in capsys.readouterr().err


def test_cut_and_paste_gets_its_own_row_with_masks_from_the_dataset(synth_root, weight_files, crgan_ckpt):
    table = quality_table([str(crgan_ckpt), "cut_and_paste"], root=str(synth_root),
                          lpips_path=str(weight_files["lpips"]), inception_path=str(weight_files["inception"]),
                          **ARGS)
    assert [row["method"] for row in table["rows"]] == [REAL_SOURCE, CRGAN, "cut-and-paste"]
    real, _, pasted = table["rows"]
    assert pasted["lpips"] > 0  # another target image behind the same person
    assert pasted["fid"] != real["fid"]
    text = format_quality_table(table).splitlines()
    assert text[-2].startswith("cut-and-paste ") and "(cut_and_paste)" not in text[-2]


# ------------------------------------------------------------------ offline stand-ins (re-id feature space)

def test_feature_diversity_is_the_mean_pairwise_distance_of_unit_features():
    from crgan_lightning.metrics.quality import feature_diversity

    two = torch.tensor([[[3.0, 0.0], [0.0, 2.0]]])  # unit vectors (1, 0) and (0, 1): distance sqrt(2)
    assert feature_diversity(two) == pytest.approx(math.sqrt(2))
    three = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-5.0, 0.0]], [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])
    assert feature_diversity(three) == pytest.approx(((2 * math.sqrt(2) + 2) / 3 + 0.0) / 2)
    with pytest.raises(ConfigError, match="expected \\(S, T >= 2, D\\)"):
        feature_diversity(torch.zeros(2, 1, 4))


@pytest.fixture(scope="module")
def reid_ckpt(tmp_path_factory) -> Path:
    """An untrained tiny re-id checkpoint of the test source (12 identities) with the keys Lightning writes."""
    from crgan_lightning.modules.reid import ReIDModule

    torch.manual_seed(0)
    module = ReIDModule(num_source_pids=12, num_query=1, net={"backbone": "resnet10t", "pretrained": False})
    path = tmp_path_factory.mktemp("reid") / "reid.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def test_reid_stand_ins_stand_in_for_missing_weights(synth_root, reid_ckpt, tmp_path):
    from crgan_lightning.data.datamodule import CrossDomainDataModule
    from crgan_lightning.metrics.quality import frechet_distance
    from crgan_lightning.networks import load_reid_net
    from crgan_lightning.app.reports import _ImageSet

    missing = tmp_path / "alexnet.pth"
    with pytest.raises(WeightsError, match="alexnet.pth"):  # without the stand-ins a missing file stops the table
        quality_table("cut_and_paste", root=str(synth_root), lpips_path=str(missing), **ARGS)
    table = quality_table("cut_and_paste", root=str(synth_root), lpips_path=str(missing), reid_ckpt=str(reid_ckpt),
                          **ARGS)
    assert str(missing) in table["missing"]
    real, pasted = table["rows"]
    assert real["fid"] is None and pasted["lpips"] is None and real["reid_diversity"] == 0.0
    assert pasted["reid_diversity"] > 0  # the same person pasted on other backgrounds: other features
    # the real-source row's re-id FD, recomputed from the same images
    dm = CrossDomainDataModule(root=str(synth_root), height=128, width=64, num_workers=0)
    src, tgt = dm.source_dataset, dm.target_dataset
    pick = choose_samples(len(src.query + src.gallery), len(tgt.query + tgt.gallery), len(tgt.train), 2, 3, 10, 0)
    net = load_reid_net(reid_ckpt)
    a = net.extract(_ImageSet(src.query + src.gallery, dm.test_transform).load(pick["fid_source"]))
    b = net.extract(_ImageSet(tgt.query + tgt.gallery, dm.test_transform).load(pick["fid_reference"]))
    assert real["reid_fd"] == pytest.approx(frechet_distance(a, b), rel=1e-4)
    text = format_quality_table(table)
    assert "re-id FD" in text and "LPIPS/FID/KID left out" in text
