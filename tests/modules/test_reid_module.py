"""ReIDModule through the CLI on the embedded benchmark: short fit, test, pictures, resume."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import shipped_config
from ddp_helpers import run_bounded

from crgan_lightning.app.cli import main
from crgan_lightning.data.keys import CAMID, IMAGE, PID, SOURCE, SYNTHETIC
from crgan_lightning.errors import ConfigError
from crgan_lightning.modules.reid import DEFAULT_OPTIMIZER, ReIDModule
from crgan_lightning.schedules import WarmupCosineLR, WarmupMultiStepLR, warmup_cosine, warmup_multistep

REPO = Path(__file__).resolve().parents[2]


def small_config(tmp_path: Path, synth_root: Path, name: str = "reid_direct.yaml") -> Path:
    """The shipped synth config of stage ``name`` (``reid_direct.yaml``), pointed at the test data and
    a temporary run folder, made tiny."""
    cfg = shipped_config(name.removesuffix(".yaml"))
    run = tmp_path / "run"
    cfg["trainer"].update(default_root_dir=str(run), max_epochs=2, limit_train_batches=2,
                          check_val_every_n_epoch=1, enable_progress_bar=False, log_every_n_steps=1)
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(run)
    cfg["checkpoint"]["dirpath"] = str(run / "checkpoints")
    cfg["data"].update(root=str(synth_root), batch_size=16, num_workers=0, eval_batch_size=64)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_fit_then_test_through_the_cli_writes_metrics_and_pictures(tmp_path, synth_root):
    cfg = small_config(tmp_path, synth_root)
    assert main(["fit", "--config", str(cfg)]) == 0
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    hparams = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert hparams["num_source_pids"] == 12 and hparams["num_query"] > 0  # linked from the DataModule
    metrics = (run / "reid_direct" / "version_0" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    assert {"val/rank1", "val/mAP", "val/mINP", "train/loss"} <= set(header)
    plots = sorted(p.name for p in (run / "reid_direct" / "version_0" / "plots").iterdir())
    assert plots == ["cmc_val_epoch000.png", "cmc_val_epoch001.png", "ranked_val_epoch000.png",
                     "ranked_val_epoch001.png"]
    assert main(["test", "--config", str(cfg), "--ckpt_path", str(ckpt)]) == 0
    rows = (run / "reid_direct" / "version_1" / "metrics.csv").read_text().splitlines()
    values = dict(zip(rows[0].split(","), rows[1].split(",")))
    last_val = [dict(zip(header, line.split(","))) for line in metrics[1:]]
    last_val = [r for r in last_val if r.get("val/mAP")][-1]
    for key in ("mAP", "rank1", "rank5", "mINP"):  # the same weights give the same numbers in test
        assert float(values[f"test/{key}"]) == pytest.approx(float(last_val[f"val/{key}"]), abs=1e-4)
    # an interrupted run resumes from last.ckpt and continues counting epochs and steps
    before = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=3", "--ckpt_path", str(ckpt)]) == 0
    after = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert after["epoch"] == before["epoch"] + 1 and after["global_step"] == before["global_step"] + 2


def _module(**kw) -> ReIDModule:
    kw.setdefault("net", {"backbone": "resnet18", "pretrained": False})
    return ReIDModule(num_source_pids=4, num_query=2, **kw)


def test_synthetic_part_adds_its_own_weighted_loss():
    torch.manual_seed(0)
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    src = {IMAGE: torch.randn(8, 3, 64, 32), PID: pids, CAMID: torch.zeros(8)}
    syn = {IMAGE: torch.randn(8, 3, 64, 32), PID: pids, CAMID: torch.zeros(8)}
    module = _module()
    logged = {}
    module.log = lambda name, value, **k: logged.__setitem__(name, float(value))
    module.log_dict = lambda values, **k: logged.update({k_: float(v) for k_, v in values.items()})
    losses = {}
    for w in (0.0, 1.0, 2.0):
        module.hparams.synthetic_weight = w
        losses[w] = module.training_step({SOURCE: src, SYNTHETIC: syn}, 0).item()
    part = logged["train/synthetic_ce"] + logged["train/synthetic_triplet"]
    assert part > 0
    assert losses[1.0] - losses[0.0] == pytest.approx(part, rel=1e-4)
    assert losses[2.0] - losses[0.0] == pytest.approx(2 * part, rel=1e-4)
    module.training_step({SOURCE: src}, 0)
    assert "train/source_ce" in logged


def test_erasing_happens_in_the_module_on_source_and_rendered_images():
    torch.manual_seed(0)
    pids = torch.tensor([0, 0, 1, 1])
    src = {IMAGE: torch.zeros(4, 3, 64, 32), PID: pids, CAMID: torch.zeros(4)}
    syn = {IMAGE: torch.zeros(4, 3, 64, 32), PID: pids, CAMID: torch.zeros(4)}
    module = _module(batch_erasing_p=1.0)
    module.log = module.log_dict = lambda *a, **k: None
    seen = []
    module.net.register_forward_pre_hook(lambda net, args: seen.append(args[0].clone()))
    module.training_step({SOURCE: src, SYNTHETIC: syn}, 0)
    assert seen[0].shape == (8, 3, 64, 32)
    assert (seen[0] != 0).flatten(1).any(1).all()  # every image, source and rendered, got a rectangle
    assert (seen[0] == 0).flatten(1).any(1).all()  # and only a rectangle
    assert not src[IMAGE].any() and not syn[IMAGE].any()  # the batch itself is untouched
    with pytest.raises(ConfigError, match="batch_erasing_p=1.5"):
        _module(batch_erasing_p=1.5)


def test_warmup_multistep_factors():
    f = warmup_multistep(warmup_epochs=4, milestones=[10, 20], gamma=0.1, warmup_factor=0.01)
    assert f(0) == pytest.approx(0.01) and f(2) == pytest.approx(0.505) and f(4) == 1.0
    assert f(10) == pytest.approx(0.1) and f(25) == pytest.approx(0.01)


def test_warmup_cosine_warms_up_per_iteration_then_decays_to_the_floor():
    f = warmup_cosine(warmup_iters=10, total_iters=110, warmup_factor=0.1, min_factor=0.01)
    assert f(0) == pytest.approx(0.1) and f(5) == pytest.approx(0.55) and f(10) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.505)  # half-way through the decay
    assert f(110) == pytest.approx(0.01) and f(500) == pytest.approx(0.01)
    assert all(f(i) >= f(i + 1) for i in range(10, 120))


def test_cosine_schedule_steps_per_iteration_with_adamw():
    module = _module(optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
                     scheduler=functools.partial(WarmupCosineLR, warmup_iters=3))
    module.trainer = type("T", (), {"estimated_stepping_batches": 20})()
    conf = module.configure_optimizers()
    assert isinstance(conf["optimizer"], torch.optim.AdamW)
    assert conf["lr_scheduler"]["interval"] == "step"
    sched = conf["lr_scheduler"]["scheduler"]
    assert sched.total_iters == 20  # the run's length, from the Trainer
    lrs = []
    for _ in range(20):
        lrs.append(conf["optimizer"].param_groups[0]["lr"])
        conf["optimizer"].step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-5) and lrs[3] == pytest.approx(1e-3)
    assert lrs[-1] < 0.05 * lrs[3]


def _lr_per_epoch(conf: dict, epochs: int) -> list[float]:
    optimizer, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    return lrs


def test_the_default_optimisation_is_adam_with_warmup_then_steps_at_epochs_40_and_70():
    module = _module()
    conf = module.configure_optimizers()
    optimizer = conf["optimizer"]
    assert type(optimizer) is torch.optim.Adam and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert group["weight_decay"] == 5e-4 and group["betas"] == (0.9, 0.999)
    trainable = [p for p in module.parameters() if p.requires_grad]  # every one but the BN-neck bias
    assert len(group["params"]) == len(trainable) == len(list(module.parameters())) - 1
    assert conf["lr_scheduler"]["interval"] == "epoch"
    assert isinstance(conf["lr_scheduler"]["scheduler"], WarmupMultiStepLR)
    lrs = _lr_per_epoch(conf, 80)
    assert lrs[0] == pytest.approx(3.5e-6) and lrs[5] == pytest.approx(3.5e-4 * 0.505)
    assert lrs[10] == lrs[39] == pytest.approx(3.5e-4)
    assert lrs[40] == lrs[69] == pytest.approx(3.5e-5) and lrs[70] == pytest.approx(3.5e-6)


def test_an_injected_optimizer_and_torch_scheduler_are_used_as_given():
    module = _module(optimizer=functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9),
                     scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2, gamma=0.5))
    conf = module.configure_optimizers()
    assert type(conf["optimizer"]) is torch.optim.SGD and conf["optimizer"].param_groups[0]["momentum"] == 0.9
    assert conf["lr_scheduler"]["interval"] == "epoch"  # a torch scheduler steps per epoch
    assert _lr_per_epoch(conf, 5) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    tuned = _module(optimizer=functools.partial(DEFAULT_OPTIMIZER, lr=1e-3)).configure_optimizers()["optimizer"]
    assert tuned.param_groups[0]["lr"] == pytest.approx(1e-5)  # warm-up from 1 % of the new rate
    assert tuned.param_groups[0]["weight_decay"] == 5e-4  # the default's other settings kept


def test_a_schedule_keeps_its_step_count_and_takes_its_settings_from_the_config_on_resume():
    module = _module(scheduler=functools.partial(WarmupCosineLR, warmup_iters=2))
    module.trainer = type("T", (), {"estimated_stepping_batches": 10})()
    conf = module.configure_optimizers()
    _lr_per_epoch(conf, 4)
    state = conf["lr_scheduler"]["scheduler"].state_dict()
    assert state["last_epoch"] == 4
    assert not {"total_iters", "warmup_iters", "warmup_factor", "min_factor"} & set(state)
    module.trainer = type("T", (), {"estimated_stepping_batches": 30})()  # resumed with more epochs
    again = module.configure_optimizers()
    again["lr_scheduler"]["scheduler"].load_state_dict(state)
    assert again["lr_scheduler"]["scheduler"].total_iters == 30 and again["lr_scheduler"]["scheduler"].last_epoch == 4


def test_the_shipped_config_resolved_to_a_dict_builds_the_same_module_in_python():
    """What ``--print_config`` prints (class_path objects for the network, optimiser and scheduler)
    is also what Python code may pass."""
    args = {k: v for k, v in shipped_config("reid_direct")["model"]["init_args"].items()
            if k not in ("num_source_pids", "num_query")}
    module = ReIDModule(num_source_pids=5, num_query=2, **args)
    assert module.hparams["net"] == args["net"]
    module.trainer = type("T", (), {"estimated_stepping_batches": 300})()
    conf = module.configure_optimizers()
    assert type(conf["optimizer"]) is torch.optim.AdamW and conf["optimizer"].defaults["weight_decay"] == 5e-2
    sched = conf["lr_scheduler"]["scheduler"]
    assert isinstance(sched, WarmupCosineLR) and sched.warmup_iters == 150 and sched.total_iters == 300
    assert conf["optimizer"].param_groups[0]["lr"] == pytest.approx(2e-3 * 0.01)


@pytest.mark.parametrize("bad, message", [
    ({"optimizer": functools.partial(torch.optim.Adam, lr=-1.0)}, "optimizer: Invalid learning rate: -1.0"),
    ({"optimizer": functools.partial(torch.optim.Adam, momentum=0.9)}, "optimizer: .*unexpected keyword.*momentum"),
    ({"optimizer": torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])}, "optimizer is a built Adam; give its"),
    ({"scheduler": functools.partial(WarmupMultiStepLR, gamma=0.0)}, "WarmupMultiStepLR .*gamma=0.0"),
    ({"scheduler": functools.partial(WarmupCosineLR, total_iters=0)}, "WarmupCosineLR .*total_iters=0"),
    ({"net": {"backbone": "resnet18", "pretrained": False, "num_classes": 3}}, "net sets num_classes; expected it"),
    ({"optimizer": {"class_path": "torch.nn.Linear"}}, "optimizer class_path='torch.nn.Linear' is not a torch.optim"),
    ({"scheduler": {"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {}}}, "scheduler: .*step_size"),
])
def test_a_bad_optimisation_or_network_is_one_clear_error_when_the_module_is_built(bad, message):
    with pytest.raises(ConfigError, match=message):
        _module(**bad)


def test_missing_identity_count_is_a_clear_error():
    with pytest.raises(ConfigError, match="num_source_pids=0"):
        ReIDModule(num_source_pids=0, net={"pretrained": False})


@pytest.mark.slow
def test_injected_optimizer_scheduler_and_bf16_precision_through_the_cli(tmp_path, synth_root):
    cfg_path = small_config(tmp_path, synth_root)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["init_args"]["net"]["init_args"]["backbone"] = "resnet18"
    cfg["model"]["init_args"].update(
        optimizer={"class_path": "torch.optim.SGD", "init_args": {"lr": 0.01, "momentum": 0.9}},
        scheduler={"class_path": "torch.optim.lr_scheduler.StepLR", "init_args": {"step_size": 1, "gamma": 0.5}},
    )
    cfg["trainer"].update(max_epochs=2, limit_train_batches=1, limit_val_batches=0, precision="bf16-mixed")
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(cfg_path)]) == 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    group = ckpt["optimizer_states"][0]["param_groups"][0]
    assert group["momentum"] == 0.9 and group["lr"] == pytest.approx(0.01 * 0.5 ** 2)  # SGD, stepped twice
    net = ckpt["hyper_parameters"]["net"]
    assert net["class_path"] == "crgan_lightning.models.reid.ReIDNet" and net["init_args"]["backbone"] == "resnet18"
    assert "optimizer" not in ckpt["hyper_parameters"] and "lr" not in ckpt["hyper_parameters"]


@pytest.mark.slow
def test_make_train_reid_with_a_crgan_checkpoint_streams_renderings(tmp_path, synth_root, tiny_crgan_ckpt):
    run = tmp_path / "run"
    args = (f"--trainer.max_steps=2 --trainer.default_root_dir={run} --trainer.logger.init_args.save_dir={run} "
            "--trainer.enable_progress_bar=false --trainer.limit_val_batches=0 --trainer.log_every_n_steps=1 "
            "--model.init_args.net.init_args.backbone=resnet10t "
            "--model.init_args.net.init_args.pretrained=false --trainer.precision=32-true --trainer.devices=1 "
            "--data.height=64 --data.width=32 --data.batch_size=8 --data.num_workers=0")
    proc = run_bounded(["make", "-s", "train-reid", "SRC=synth_a", "TGT=synth_b", f"DATA_ROOT={synth_root}",
                        f"CRGAN_CKPT={tiny_crgan_ckpt}", f"ARGS={args}"], 600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    rendering = [v for k, v in ckpt["callbacks"].items() if k.startswith("ContextRenderingCallback")]
    assert rendering and rendering[0]["translator"] == str(tiny_crgan_ckpt)
    assert ckpt["global_step"] == 2
    metrics = (run / "reid_crgan" / "version_0" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "train/synthetic_ce" in metrics  # the rendered part reached the loss


@pytest.mark.slow
def test_a_run_that_dies_part_way_resumes_from_its_last_epoch(tmp_path, synth_root):
    cfg = small_config(tmp_path, synth_root)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    with pytest.raises(RuntimeError, match="simulated crash at epoch 1"):
        main(["fit", "--config", str(cfg), "--trainer.max_epochs=3", "--trainer.check_val_every_n_epoch=3",
              "--trainer.callbacks+=ddp_helpers.FailAtEpoch", "--trainer.callbacks.epoch=1"])
    saved = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    assert saved["epoch"] == 0 and saved["global_step"] == 2  # epoch 0 was kept
    assert saved["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 1
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=3", "--trainer.check_val_every_n_epoch=3",
                 "--ckpt_path", str(ckpt)]) == 0
    done = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    assert done["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 3 and done["global_step"] == 6


@pytest.mark.slow
def test_a_run_folder_moved_elsewhere_resumes_into_its_own_last_checkpoint(tmp_path, synth_root):
    first = tmp_path / "first"
    first.mkdir()
    cfg = small_config(first, synth_root)
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=1", "--trainer.limit_val_batches=0"]) == 0
    moved = tmp_path / "moved"
    shutil.copytree(first / "run", moved / "run")  # e.g. copied to another disk; dirpath differs now
    cfg = small_config(moved, synth_root)
    ckpt = moved / "run" / "checkpoints" / "last.ckpt"
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs=2", "--trainer.limit_val_batches=0",
                 "--ckpt_path", str(ckpt)]) == 0
    # the config's enable_version_counter: false makes Lightning rewrite last.ckpt instead of adding
    # last-v1.ckpt beside a stale one (which resuming again, or the demo, would then read)
    assert sorted(p.name for p in ckpt.parent.glob("last*.ckpt")) == ["last.ckpt"]
    done = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    assert done["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 2 and done["global_step"] == 4


def test_also_test_logs_a_second_pooling_equal_to_evaluating_it_alone(synth_root, tmp_path):
    import pytorch_lightning as pl

    from crgan_lightning.data.datamodule import CrossDomainDataModule
    from crgan_lightning.metrics import compute_distance, evaluate_rank

    torch.manual_seed(0)
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=16, num_workers=0,
                               with_target=False)
    dm.setup("test")
    module = ReIDModule(num_source_pids=dm.num_source_pids, num_query=dm.num_query,
                        net={"backbone": "resnet10t", "pretrained": False, "test_pooling": "avg", "lmp_parts": 4},
                        distance="cosine", also_test={"lmp": "euclidean"}, ranked_list_queries=0)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    scores = trainer.test(module, datamodule=dm, verbose=False)[0]
    module.eval()
    feats, pids, cams = [], [], []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            feats.append(module.net.extract(batch[IMAGE], pooling="lmp"))
            pids.append(batch[PID])
            cams.append(batch[CAMID])
    feats, pids, cams = torch.cat(feats), torch.cat(pids), torch.cat(cams)
    q = dm.num_query
    cmc, mean_ap = evaluate_rank(compute_distance(feats[:q], feats[q:], "euclidean"), pids[:q], pids[q:],
                                 cams[:q], cams[q:])
    assert scores["test/lmp_mAP"] == pytest.approx(mean_ap * 100, abs=1e-3)
    assert scores["test/lmp_rank1"] == pytest.approx(cmc[0] * 100, abs=1e-3)
    assert "test/mAP" in scores and scores["test/mAP"] != scores["test/lmp_mAP"]
    with pytest.raises(ConfigError, match="also_test"):
        _module(also_test={"gem": "cosine"})
