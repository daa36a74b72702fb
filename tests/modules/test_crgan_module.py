"""CRGANModule: optimisation on the embedded benchmark, resume, divergence, 2-process DDP."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from conftest import TINY_CRGAN, as_overrides, set_module_args, shipped_config

from ddp_helpers import run_bounded, two_process_fit

from crgan_lightning.app.cli import main
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.errors import ConfigError, TrainingDivergedError, WeightsError
from crgan_lightning.networks import load_generator
from crgan_lightning.modules.crgan import CRGANModule

REPO = Path(__file__).resolve().parents[2]

TINY_MODEL = TINY_CRGAN


def tiny_config(tmp_path: Path, synth_root: Path) -> Path:
    """The shipped synth CR-GAN config, pointed at the test data, with tiny networks at 64x32."""
    cfg = shipped_config("crgan")
    run = tmp_path / "run"
    cfg["trainer"].update(default_root_dir=str(run), max_epochs=1, limit_train_batches=3, log_every_n_steps=1,
                          enable_progress_bar=False)
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(run)
    cfg["checkpoint"].update(dirpath=str(run / "checkpoints"), every_n_train_steps=None)
    cfg["trainer"]["callbacks"][0]["init_args"]["every_n_steps"] = 2
    # judge null: a classifier trained from scratch, no re-id run needed
    set_module_args(cfg["model"]["init_args"], {**TINY_MODEL, "judge": None})
    cfg["data"].update(root=str(synth_root), height=64, width=32, batch_size=8, target_batch_size=8, num_workers=0)
    path = tmp_path / "crgan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture()
def dm(synth_root):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, num_workers=0,
                               erasing_p=0.0, pad=0)
    dm.setup("fit")
    return dm


def test_optimisation_reduces_the_losses_on_a_fixed_batch(dm, tmp_path):
    pl.seed_everything(0)
    module = CRGANModule(num_source_pids=dm.num_source_pids, num_target_cameras=dm.num_target_cameras,
                         lr_g=1e-3, lr_cls=1e-3, **TINY_MODEL)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=25, overfit_batches=1, logger=pl.loggers.CSVLogger(tmp_path),
                         enable_checkpointing=False, enable_progress_bar=False, log_every_n_steps=1)
    trainer.fit(module, datamodule=dm)
    import csv

    logged = list(csv.DictReader(open(Path(trainer.logger.log_dir) / "metrics.csv")))
    rows = [r for r in logged if r["train/g_loss"]]  # the step rows (the others hold the epoch's judge accuracies)
    first = {k: float(v) for k, v in rows[0].items() if v}
    last = {k: float(v) for k, v in rows[-1].items() if v}
    assert len(rows) == 25 and len(logged) == 50  # one step and one epoch row per epoch
    assert last["train/g_context"] < 0.6 * first["train/g_context"]
    assert last["train/cls_id"] < 0.5 * first["train/cls_id"]
    assert last["train/cls_cam"] < 0.5 * first["train/cls_cam"]
    assert last["train/g_loss"] < 0.75 * first["train/g_loss"]
    assert last["train/d_loss"] < first["train/d_loss"]
    for key in ("train/g_adv", "train/g_cam", "train/d_real", "train/d_fake", "train/g_context_fg",
                "train/g_context_bg"):
        assert key in last  # every term is logged


@pytest.mark.slow
def test_cli_fit_saves_grids_and_resumes_with_both_optimiser_states(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root)
    assert main(["fit", "--config", str(cfg)]) == 0
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.ckpt"
    first = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert len(first["optimizer_states"]) == 3  # generator, discriminator, classifier
    assert first["hyper_parameters"]["num_target_cameras"] == 8  # linked from the DataModule
    samples = sorted(p.name for p in (run / "crgan" / "version_0" / "samples").iterdir())
    assert samples == ["step_0000000.png", "step_0000002.png", "step_0000003.png"]
    steps = [s["state"][0]["step"].item() for s in first["optimizer_states"]]
    assert steps == [3, 3, 3]
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=2", "--ckpt_path", str(ckpt)]) == 0
    second = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert [s["state"][0]["step"].item() for s in second["optimizer_states"]] == [6, 6, 6]
    assert second["global_step"] == first["global_step"] + 9  # three optimiser steps per batch
    gen = load_generator(ckpt)
    assert not gen.training and not any(p.requires_grad for p in gen.parameters())
    assert gen.space_to_depth == second["hyper_parameters"]["generator"]["init_args"]["space_to_depth"]
    assert type(gen).__name__ == "CompositingGenerator"  # the shipped configs' generator: it reads the masks
    masks = torch.zeros(1, 1, 64, 32)
    masks[..., 8:56, 8:24] = 1.0
    out = gen(torch.zeros(1, 3, 64, 32), torch.zeros(1, 3, 64, 32), masks, masks)
    assert out.shape == (1, 3, 64, 32)


def test_non_finite_loss_stops_before_the_update_and_keeps_the_checkpoint(dm, tmp_path, monkeypatch):
    module = CRGANModule(num_source_pids=dm.num_source_pids, num_target_cameras=dm.num_target_cameras,
                         **TINY_MODEL)
    trainer = pl.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_progress_bar=False,
                         default_root_dir=tmp_path, enable_checkpointing=False)
    trainer.fit(module, datamodule=dm)
    good = tmp_path / "good.ckpt"
    trainer.save_checkpoint(good)
    before = good.read_bytes()
    weights = {k: v.clone() for k, v in module.generator.state_dict().items()}
    d_weights = {k: v.clone() for k, v in module.discriminator.state_dict().items()}
    import crgan_lightning.modules.crgan as crgan_mod

    def broken(*args, **kwargs):
        t = torch.tensor(float("nan"))
        return t, t, t

    monkeypatch.setattr(crgan_mod, "context_loss", broken)
    trainer2 = pl.Trainer(accelerator="cpu", max_steps=12, logger=False, enable_progress_bar=False,
                          default_root_dir=tmp_path, enable_checkpointing=False)
    with pytest.raises(TrainingDivergedError, match=r"generator loss is nan .*context=nan"):
        trainer2.fit(module, datamodule=dm, ckpt_path=str(good))
    assert good.read_bytes() == before
    for k, v in module.generator.state_dict().items():
        torch.testing.assert_close(v, weights[k])  # the bad update never happened
    for k, v in module.discriminator.state_dict().items():
        torch.testing.assert_close(v, d_weights[k])  # nor did the discriminator's, which comes after it


def test_the_generator_layout_options_are_rebuilt_from_a_checkpoint(tmp_path):
    layout = dict(space_to_depth=2, num_down=2, outer_kernel=3, padding="zeros")
    module = CRGANModule(num_source_pids=5, num_target_cameras=2,
                         **{**TINY_MODEL, "generator": {**TINY_MODEL["generator"], **layout}})
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, tmp_path / "g.ckpt")
    gen = load_generator(tmp_path / "g.ckpt")
    assert gen.space_to_depth == 2 and gen.size_multiple == 8
    assert gen.to_rgb[0].padding_mode == "zeros" and gen.to_rgb[0].kernel_size == (3, 3)
    x_s, x_t = torch.rand(2, 3, 64, 32) * 2 - 1, torch.rand(2, 3, 64, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(gen(x_s, x_t), module.generator.eval()(x_s, x_t))


def test_missing_counts_and_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="num_target_cameras=0"):
        CRGANModule(num_source_pids=5, num_target_cameras=0)
    with pytest.raises(WeightsError, match="does not exist"):
        load_generator(tmp_path / "none.ckpt")
    torch.save({"state_dict": {"net.fc.weight": torch.zeros(1)}}, tmp_path / "reid.ckpt")
    with pytest.raises(WeightsError, match="no CR-GAN generator weights"):
        load_generator(tmp_path / "reid.ckpt")


@pytest.mark.slow
def test_two_process_ddp_run_keeps_ranks_in_step(tmp_path, synth_root):
    cfg = tiny_config(tmp_path, synth_root)
    ranks = two_process_fit(cfg, tmp_path)
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["batches"] == ranks[1]["batches"] == 3
    assert ranks[0]["start"] == ranks[1]["start"]  # same initial weights (broadcast)
    assert ranks[0]["end"] == ranks[1]["end"]  # gradients were all-reduced: the replicas stayed identical
    assert ranks[0]["end"] != ranks[0]["start"]  # and they did train


@pytest.mark.slow
def test_make_train_crgan_runs_a_handful_of_steps(tmp_path, synth_root):
    run = tmp_path / "run"
    tiny = " ".join(f"--{k}={v}" for k, v in as_overrides(TINY_MODEL).items())
    args = (f"--trainer.max_steps=6 --trainer.default_root_dir={run} --trainer.logger.init_args.save_dir={run} "
            f"--trainer.enable_progress_bar=false "  # checkpoints: <default_root_dir>/checkpoints
            f"--data.height=64 --data.width=32 --data.batch_size=8 --data.num_workers=0 {tiny} "
            "--model.init_args.judge=null")
    proc = run_bounded(["make", "-s", "train-crgan", "SRC=synth_a", "TGT=synth_b", f"DATA_ROOT={synth_root}",
                        f"ARGS={args}"], 600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "max_steps=6` reached" in proc.stdout + proc.stderr
    assert (run / "checkpoints" / "last.ckpt").is_file()
    unknown = run_bounded(["make", "-s", "train-crgan", "SRC=market", "TGT=viper", f"DATA_ROOT={synth_root}"], 300,
                          cwd=REPO)
    assert unknown.returncode != 0 and "unknown dataset 'viper'" in unknown.stderr


def test_source_and_decoder_norm_options_keep_absolute_colour_and_are_rebuilt(tmp_path):
    from crgan_lightning.models.generator import DualPathGenerator

    x = torch.rand(2, 3, 64, 32) * 2 - 1
    tinted = x + torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)  # the same person in another colour
    stem = {norm: DualPathGenerator(base_channels=8, num_down=2, source_norm=norm).source_encoder.stem
            for norm in ("instance", "none")}
    with torch.no_grad():  # instance norm after the stem: a uniform colour shift leaves no trace
        torch.testing.assert_close(stem["instance"](x), stem["instance"](tinted))
        assert (stem["none"](x) - stem["none"](tinted)).abs().max() > 1e-3
    options = dict(source_norm="none", decoder_norm="batch")
    module = CRGANModule(num_source_pids=5, num_target_cameras=2,
                         **{**TINY_MODEL, "generator": {**TINY_MODEL["generator"], **options}})
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, tmp_path / "g.ckpt")
    gen = load_generator(tmp_path / "g.ckpt")
    assert isinstance(gen.source_encoder.stem[1], torch.nn.Identity)
    assert isinstance(gen.target_encoder.stem[1], torch.nn.InstanceNorm2d)  # the default norm
    assert isinstance(gen.ups[0].merge[1], torch.nn.BatchNorm2d)
    with pytest.raises(ConfigError, match="source_norm='layer'"):
        DualPathGenerator(source_norm="layer")


def test_batch_norm_keeps_each_images_absolute_colour():
    """norm="batch" keeps a tint that instance norm removes: in eval mode (streaming) the running
    statistics keep it outright; in training one image's tint survives the batch statistics."""
    from crgan_lightning.models.generator import DualPathGenerator

    torch.manual_seed(0)
    gen = DualPathGenerator(base_channels=8, num_down=2, norm="batch")
    assert isinstance(gen.target_encoder.stem[1], torch.nn.BatchNorm2d)
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    tinted = x.clone()
    tinted[0] += torch.tensor([0.3, -0.2, 0.1]).view(3, 1, 1)
    with torch.no_grad():
        for stem in (gen.target_encoder.stem, gen.source_encoder.stem):
            stem.eval()
            assert (stem(x)[0] - stem(tinted)[0]).abs().mean() > 1e-2
            stem.train()
            assert (stem(x)[0] - stem(tinted)[0]).abs().mean() > 1e-2


def test_a_flat_learning_rate_beside_an_injected_optimiser_is_refused_not_ignored():
    from functools import partial

    sgd = partial(torch.optim.SGD, lr=0.05)
    module = CRGANModule(num_source_pids=4, num_target_cameras=2, judge=None, g_optimizer=sgd, **TINY_CRGAN)
    opt_g = module.configure_optimizers()[0][0]
    assert isinstance(opt_g, torch.optim.SGD) and opt_g.param_groups[0]["lr"] == 0.05  # the injected one, its lr
    with pytest.raises(ConfigError, match=r"CRGANModule: lr_g=0.001 would be ignored: g_optimizer is given .* "
                                          r"g_optimizer's init_args.lr"):
        CRGANModule(num_source_pids=4, num_target_cameras=2, judge=None, g_optimizer=sgd, lr_g=1e-3, **TINY_CRGAN)
    plain = CRGANModule(num_source_pids=4, num_target_cameras=2, judge=None, lr_g=1e-3, **TINY_CRGAN)
    assert plain.configure_optimizers()[0][0].param_groups[0]["lr"] == 1e-3  # without one, lr_g sets Adam's
