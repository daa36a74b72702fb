"""SPGANModule: CLI training on the embedded benchmark, loss composition, pools, resume, divergence, DDP."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from conftest import set_module_args, shipped_config
from PIL import Image

from ddp_helpers import two_process_fit

from crgan_lightning.app.cli import main
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.errors import ConfigError, TrainingDivergedError
from crgan_lightning.networks import load_spgan_generator
from crgan_lightning.modules.spgan import SPGANModule

REPO = Path(__file__).resolve().parents[2]

TINY_SPGAN = dict(generator=dict(base_channels=8, num_res_blocks=1, num_down=2),
                  discriminator=dict(base_channels=8, n_layers=2), siamese=dict(base_channels=8, feat_dim=16),
                  pool_size=4)

LOSS_KEYS = ("train/g_loss", "train/g_adv_t", "train/g_adv_s", "train/g_cycle", "train/g_identity",
             "train/g_contrastive", "train/d_loss", "train/d_t_real", "train/d_t_fake", "train/d_s_real",
             "train/d_s_fake", "train/siamese_loss", "train/siamese_pos_dist", "train/siamese_neg_dist")


def tiny_config(tmp_path: Path, synth_root: Path) -> Path:
    """The shipped synth SPGAN config, pointed at the test data, with tiny networks at 64x32."""
    cfg = shipped_config("spgan")
    run = tmp_path / "run"
    cfg["trainer"].update(default_root_dir=str(run), max_epochs=1, limit_train_batches=3, log_every_n_steps=1,
                          enable_progress_bar=False)
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(run)
    cfg["checkpoint"]["every_n_train_steps"] = None  # dirpath null: run/checkpoints
    cfg["trainer"]["callbacks"][0]["init_args"].update(every_n_steps=2, num_sources=4)
    set_module_args(cfg["model"]["init_args"], TINY_SPGAN)
    cfg["data"].update(root=str(synth_root), height=64, width=32, batch_size=8, target_batch_size=8, num_workers=0)
    path = tmp_path / "spgan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def read_metrics(log_dir: Path) -> list[dict[str, float]]:
    rows = list(csv.DictReader(open(log_dir / "metrics.csv")))
    return [{k: float(v) for k, v in row.items() if v} for row in rows]


@pytest.fixture()
def dm(synth_root):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, num_instances=1,
                               num_workers=0, masks="none", erasing_p=0.0, pad=0)
    dm.setup("fit")
    return dm


def test_cli_fit_logs_finite_losses_saves_pools_and_grids_and_resumes(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root)
    assert main(["fit", "--config", str(cfg)]) == 0
    run = tmp_path / "run"
    rows = read_metrics(run / "spgan" / "version_0")
    assert len(rows) == 3
    for row in rows:
        for key in LOSS_KEYS:
            assert math.isfinite(row[key]), (key, row)
    assert all(row["train/g_contrastive"] > 0 and row["train/siamese_loss"] > 0 for row in rows)

    ckpt = run / "checkpoints" / "last.ckpt"  # dirpath null: <default_root_dir>/checkpoints
    first = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert [s["state"][0]["step"].item() for s in first["optimizer_states"]] == [3, 3, 3]  # G+F, D_T+D_S, SiaNet
    assert first["global_step"] == 9  # three optimiser steps per batch
    hparams = first["hyper_parameters"]
    assert "num_target_cameras" not in hparams and "num_source_pids" not in hparams  # SPGAN takes no counts
    assert hparams["generator"] == {"class_path": "crgan_lightning.models.spgan.ResnetGenerator", "init_args": {
        "in_channels": 3, "out_channels": 3, "base_channels": 8, "num_down": 2, "num_res_blocks": 1,
        "norm": "instance", "upsample": "transpose"}}  # the injected network, as the config built it
    pools = first["image_pools"]
    for side in ("source", "target"):
        assert len(pools[side]["images"]) == 4  # pool_size, filled by the first batch of 8
        assert pools[side]["images"][0].shape == (1, 3, 64, 32)
    assert not torch.equal(pools["source"]["images"][0], pools["target"]["images"][0])

    # SampleGridCallback renders through SPGANModule.render: 4 sources + 1 header row, one context column + sources
    samples = sorted((run / "spgan" / "version_0" / "samples").iterdir())
    assert [p.name for p in samples] == ["step_0000000.png", "step_0000002.png", "step_0000003.png"]
    assert np.asarray(Image.open(samples[-1])).shape == (5 * (64 + 2), 2 * (32 + 2), 3)

    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=2", "--ckpt_path", str(ckpt)]) == 0
    second = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert [s["state"][0]["step"].item() for s in second["optimizer_states"]] == [6, 6, 6]
    assert second["global_step"] == first["global_step"] + 9
    for key, value in first["state_dict"].items():
        if key.startswith("generator_st."):
            assert not torch.equal(value, second["state_dict"][key]), key  # the resumed run trained on
    gen = load_spgan_generator(ckpt)
    torch.testing.assert_close(gen.state_dict(), {k[len("generator_st."):]: v for k, v in
                                                  second["state_dict"].items() if k.startswith("generator_st.")})


def test_image_pools_are_restored_from_a_checkpoint():
    module = SPGANModule(**TINY_SPGAN)
    module.pool_t.query(torch.rand(3, 3, 64, 32))
    module.pool_s.query(torch.rand(2, 3, 64, 32))
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    restored = SPGANModule(**TINY_SPGAN)
    restored.on_load_checkpoint(checkpoint)
    assert len(restored.pool_t.images) == 3 and len(restored.pool_s.images) == 2
    for a, b in zip(restored.pool_t.images, module.pool_t.images):
        assert torch.equal(a, b)
    x = torch.rand(4, 3, 64, 32)  # the random state came back too: both pools now answer alike
    assert torch.equal(restored.pool_t.query(x), module.pool_t.query(x))


@pytest.mark.parametrize("lambdas", [dict(lambda_cycle=3.0, lambda_identity=0.5, lambda_siamese=1.5),
                                     dict(lambda_cycle=10.0, lambda_identity=0.0, lambda_siamese=0.0)])
def test_generator_loss_is_the_weighted_sum_of_its_logged_terms(dm, tmp_path, lambdas):
    pl.seed_everything(0)
    module = SPGANModule(siamese_start_epoch=1, grad_clip=10.0, **lambdas, **TINY_SPGAN,
                         g_scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, limit_train_batches=2, logger=pl.loggers.CSVLogger(tmp_path),
                         enable_checkpointing=False, enable_progress_bar=False, log_every_n_steps=1)
    trainer.fit(module, datamodule=dm)
    rows = read_metrics(Path(trainer.logger.log_dir))
    assert [int(r["epoch"]) for r in rows] == [0, 0, 1, 1]
    for row in rows:
        siamese_on = row["epoch"] >= 1  # siamese_start_epoch=1: epoch 0 is a plain CycleGAN
        expected = (row["train/g_adv_t"] + row["train/g_adv_s"] + lambdas["lambda_cycle"] * row["train/g_cycle"]
                    + lambdas["lambda_identity"] * row["train/g_identity"]
                    + siamese_on * lambdas["lambda_siamese"] * row["train/g_contrastive"])
        assert row["train/g_loss"] == pytest.approx(expected, rel=1e-5)
        assert row["train/g_identity"] > 0.01 and row["train/g_contrastive"] > 0.01  # logged even when weighted 0
    # every network trained; the generator schedule halved lr_g after each epoch
    for prefix in ("generator_st.", "generator_ts.", "discriminator_t.", "discriminator_s.", "siamese."):
        changed = [not torch.equal(v, before[k]) for k, v in module.state_dict().items() if k.startswith(prefix)]
        assert changed and all(changed), prefix
    opt_g, opt_d, _ = module.optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.25)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-4)


def test_non_finite_loss_stops_before_the_generator_update(dm, tmp_path, monkeypatch):
    import crgan_lightning.modules.spgan as spgan_mod

    module = SPGANModule(**TINY_SPGAN)
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    monkeypatch.setattr(spgan_mod, "contrastive_loss", lambda *args, **kwargs: torch.tensor(float("nan")))
    trainer = pl.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_progress_bar=False,
                         default_root_dir=tmp_path, enable_checkpointing=False)
    with pytest.raises(TrainingDivergedError, match=r"SPGAN generator loss is nan .*contrastive=nan"):
        trainer.fit(module, datamodule=dm)
    for k, v in module.state_dict().items():
        torch.testing.assert_close(v, weights[k])  # no network was updated


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="margin=0"):
        SPGANModule(margin=0, **TINY_SPGAN)
    with pytest.raises(ConfigError, match="lambda_siamese=-1"):
        SPGANModule(lambda_siamese=-1, **TINY_SPGAN)
    with pytest.raises(ConfigError, match="upsample='bilinear'"):
        SPGANModule(**{**TINY_SPGAN, "generator": {**TINY_SPGAN["generator"], "upsample": "bilinear"}})


def test_render_is_the_source_to_target_generator():
    torch.manual_seed(0)
    module = SPGANModule(**TINY_SPGAN).eval()
    x_s = torch.rand(2, 3, 64, 32) * 2 - 1
    with torch.no_grad():
        out = module.render(x_s, torch.zeros(2, 3, 64, 32))
        torch.testing.assert_close(out, module.generator_st(x_s))
        assert not torch.allclose(out, module.generator_ts(x_s))


@pytest.mark.slow
def test_two_process_ddp_run_keeps_ranks_in_step(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root)
    ranks = two_process_fit(cfg, tmp_path)
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["batches"] == ranks[1]["batches"] == 3
    assert ranks[0]["start"] == ranks[1]["start"]  # same initial weights (broadcast)
    assert ranks[0]["end"] == ranks[1]["end"]  # gradients were all-reduced: the replicas stayed identical
    assert ranks[0]["end"] != ranks[0]["start"]  # and they did train


def test_a_flat_learning_rate_beside_an_injected_optimiser_is_refused():
    from functools import partial

    with pytest.raises(ConfigError, match=r"SPGANModule: lr_siamese=0.01 would be ignored: siamese_optimizer is given"):
        SPGANModule(siamese_optimizer=partial(torch.optim.SGD, lr=0.1), lr_siamese=0.01, **TINY_SPGAN)
