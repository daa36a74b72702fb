"""The joint hybrid stage (``reid_crgan_cluster_joint``): clustering on the target with the source
labels and streamed CR-GAN renderings in the same batches, fitted through the shipped configs."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from crgan_lightning.app.demo import run_stage, stage_command
from crgan_lightning.app.stages import STAGES, stage_arguments
from crgan_lightning.callbacks.rendering import BLACK, ContextRenderingCallback
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.keys import IMAGE, SOURCE, SYNTHETIC, TARGET
from crgan_lightning.modules.reid import ReIDModule
from crgan_lightning.translators import load_translator

#: The network of the embedded re-id recipe (configs/embedded/reid.yaml), which the init checkpoint must fit.
EMBEDDED_NET = {"backbone": "resnet10t", "pretrained": False, "test_pooling": "avg", "lmp_parts": 4}


@pytest.fixture(scope="module")
def streaming_ckpt(synth_root, tmp_path_factory) -> Path:
    """A re-id checkpoint of the embedded recipe's network after one step on the source (the run the
    joint hybrid starts from; a CR-GAN streaming run in a comparison)."""
    out = tmp_path_factory.mktemp("reid_crgan")
    pl.seed_everything(0)
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, num_instances=4,
                               num_workers=0, masks="none")
    dm.setup("fit")
    module = ReIDModule(num_source_pids=dm.num_source_pids, num_query=dm.num_query, net=EMBEDDED_NET,
                        ranked_list_queries=0)
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=out)
    trainer.fit(module, datamodule=dm)
    path = out / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_joint_hybrid_stage_streams_crgan_renderings_and_starts_from_the_streaming_run():
    assert STAGES["reid_crgan_cluster_joint"].translator == "crgan"
    args = stage_arguments("reid_crgan_cluster_joint", "market2duke")
    assert "--model.init_args.init_checkpoint=runs/market2duke/reid_crgan/checkpoints/last.ckpt" in args
    assert "--rendering.init_args.translator=runs/market2duke/crgan/checkpoints/last.ckpt" in args
    configs = [a for a in args if a.endswith(".yaml")]
    # clustering after streaming (its target batches win), the joint piece last
    assert [Path(c).stem for c in configs] == ["trainer", "reid", "streaming", "cluster", "cluster_joint",
                                               "market2duke"]


def test_shipped_joint_hybrid_config_keeps_source_renderings_and_clusters_together():
    from conftest import shipped_config

    for pair, target_batch in (("synth_a2synth_b", 32), ("market2duke", 64)):
        cfg = shipped_config("reid_crgan_cluster_joint", pair)
        args = cfg["model"]["init_args"]
        assert cfg["model"]["class_path"] == "crgan_lightning.modules.cluster.ClusterModule"
        assert args["source_weight"] == 1.0 and args["cluster_weight"] == 1.0
        assert args["synthetic_weight"] == 1.0 and args["joint_triplet"] is True
        assert cfg["rendering"]["init_args"]["pad_target"] is True
        assert cfg["rendering"]["init_args"]["contexts_from"] == "dataset"
        data = cfg["data"]
        assert data["target_clusters"] is True and data["with_target"] is True and data["pad"] == 0
        assert data["target_batch_size"] == target_batch
        # the same clustering recipe as clustering from the CR-GAN streaming run alone
        alone = shipped_config("reid_crgan_cluster", pair)["model"]["init_args"]
        for key in ("k1", "k2", "eps", "eps_rho", "min_samples", "outliers", "temperature", "memory_momentum",
                    "optimizer", "scheduler"):
            assert args[key] == alone[key], (pair, key)
        assert cfg["trainer"]["max_epochs"] == shipped_config("reid_crgan_cluster", pair)["trainer"]["max_epochs"]


def test_rendering_callback_pads_the_target_images_only_when_asked(synth_root):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, target_batch_size=4,
                               num_workers=0, erasing_p=0.0, pad=0, masks="auto")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))[0]
    original = batch[TARGET][IMAGE].clone()
    trainer = SimpleNamespace(fit_loop=SimpleNamespace(total_batch_idx=3), global_rank=0)
    pad = 4
    for pad_target in (False, True):
        callback = ContextRenderingCallback("cut_and_paste", ratio=0.5, replace_source=True, pad=pad,
                                            pad_target=pad_target)
        callback.model = load_translator("cut_and_paste")
        step = {SOURCE: dict(batch[SOURCE]), TARGET: {**batch[TARGET], IMAGE: original.clone()}}
        callback.on_train_batch_start(trainer, None, step, 0)
        assert SYNTHETIC in step
        padded = step[TARGET][IMAGE]
        if not pad_target:
            assert torch.equal(padded, original)
            continue
        assert not torch.equal(padded, original)
        # each target image is a crop of itself zero-padded by `pad` (black borders), as the source images
        framed = F.pad(original, (pad, pad, pad, pad), value=BLACK)
        h, w = original.shape[-2:]
        for i in range(len(original)):
            assert any(torch.equal(padded[i], framed[i, :, dy:dy + h, dx:dx + w])
                       for dy in range(2 * pad + 1) for dx in range(2 * pad + 1))


def test_joint_hybrid_fits_with_renderings_source_labels_and_pseudo_identities_in_each_batch(
        tmp_path, synth_root, streaming_ckpt, tiny_crgan_ckpt):
    """A tiny fit of the shipped stage, as ``crgan compare`` runs it: the rendering callback adds rendered
    source images to each batch and ClusterModule trains on them, the source and the target's clusters."""
    run = tmp_path / "reid_crgan_cluster_joint"
    overrides = {"model.init_args.init_checkpoint": str(streaming_ckpt),
                 "rendering.init_args.translator": str(tiny_crgan_ckpt),
                 "data.batch_size": 8, "data.target_batch_size": 8, "data.num_workers": 0,
                 "model.init_args.k1": 10, "model.init_args.k2": 3, "model.init_args.min_samples": 2,
                 "model.init_args.eps": 0.6,  # eps: auto finds 0 on so few images from so short a training
                 "model.init_args.outliers": "instances", "model.init_args.ranked_list_queries": 0,
                 "trainer.limit_train_batches": 2, "trainer.log_every_n_steps": 1,
                 "trainer.enable_progress_bar": False}
    args = stage_command("reid_crgan_cluster_joint", run, 0, str(synth_root), epochs=1, overrides=overrides)
    metrics = run_stage("joint hybrid", args, run, test=True)  # fit, then test, as crgan compare does
    assert 0.0 <= metrics["mAP"] <= 100.0 and metrics["rank1"] <= metrics["rank5"] <= metrics["rank10"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    hp = SimpleNamespace(**ckpt["hyper_parameters"])
    assert hp.source_weight == 1.0 and hp.init_checkpoint == str(streaming_ckpt)
    labels = ckpt["state_dict"]["pseudo_labels"]
    assert labels.shape == (len(list((synth_root / "synth_b" / "bounding_box_train").iterdir())),)
    assert int(labels.min()) == 0  # clustered, outliers kept as instances: every target image has a pseudo-identity
    assert ckpt["state_dict"]["memory.features"].shape[0] == int(labels.max()) + 1
    metrics_csv = next(run.glob("logs/version_0/metrics.csv"))
    with open(metrics_csv) as f:
        steps = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f) if r.get("train/loss")]
    assert len(steps) == 2
    for row in steps:
        # loss = source_weight * (CE of the source and rendered parts + one joint triplet) + cluster contrast
        labelled = (hp.ce_weight * (row["train/source_ce"] + hp.synthetic_weight * row["train/synthetic_ce"])
                    + hp.triplet_weight * row["train/joint_triplet"])
        assert row["train/loss"] == pytest.approx(hp.source_weight * labelled
                                                  + hp.cluster_weight * row["train/cluster_contrast"], rel=1e-4)
        assert row["train/synthetic_ce"] > 0 and row["train/cluster_contrast"] > 0
