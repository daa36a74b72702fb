"""TAUDLModule on the embedded benchmark: TAUDL alone, the hybrid with streamed renderings, the
tracklet memory across a resume and across two DDP ranks, the shipped configs and the make switch."""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import yaml
from conftest import shipped_config
from ddp_helpers import run_bounded

from crgan_lightning.callbacks.rendering import ContextRenderingCallback
from crgan_lightning.app.cli import main
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.keys import CAMID, IMAGE, PID, SOURCE, SYNTHETIC, TARGET, TRACKLET
from crgan_lightning.errors import ConfigError
from crgan_lightning.losses import CrossCameraAssociationLoss
from crgan_lightning.modules.reid import DEFAULT_OPTIMIZER
from crgan_lightning.modules.taudl import SourceLabelsOnly, TAUDLModule
from crgan_lightning.schedules import WarmupCosineLR, WarmupMultiStepLR

REPO = Path(__file__).resolve().parents[2]
PAIRS = ("duke2market", "market2duke", "synth_a2synth_b")
TAUDL_CONFIGS = ("reid_taudl.yaml", "reid_crgan_taudl.yaml", "reid_spgan_taudl.yaml")
TERMS = ("train/pctd", "train/ccta", "train/target_loss", "train/loss", "train/memory_filled", "train/ccta_weight")


class Record(pl.Callback):
    """Per training batch: the keys of each part, the target tracklets and cameras, and (``out``) a
    json per rank at the end of fit with the digests of the parameters and of the tracklet memory."""

    def __init__(self, out: str | None = None) -> None:
        self.out = out
        self.keys: list[dict] = []
        self.tracklets: list[list[int]] = []
        self.cameras: list[list[int]] = []
        self.memory_at_start: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.memory_at_start = {k: v.clone() for k, v in pl_module.ccta.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.keys.append({part: sorted(batch[part]) for part in batch})
        self.tracklets.append(batch[TARGET][TRACKLET].tolist())
        self.cameras.append(batch[TARGET][CAMID].tolist())

    @staticmethod
    def digest(tensors) -> str:
        h = hashlib.sha256()
        for name, tensor in tensors:
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.out is None:
            return
        memory = pl_module.ccta.memory
        record = {"weights": self.digest(sorted(pl_module.named_parameters())),
                  "memory": self.digest(sorted(pl_module.ccta.state_dict().items())),
                  "filled": memory.filled.nonzero().flatten().tolist(),
                  "seen": sorted({t for batch in self.tracklets for t in batch}),
                  "batches": len(self.tracklets), "world_size": trainer.world_size}
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def datamodule(root: Path, **kw) -> CrossDomainDataModule:
    args = dict(root=str(root), height=64, width=32, batch_size=16, num_instances=4, target_batch_size=16,
                num_workers=0, masks="none", target_tracklets=True, erasing_p=0.0, pad=4)
    args.update(kw)
    return CrossDomainDataModule(**args)


TINY_NET = {"backbone": "resnet10t", "pretrained": False, "test_pooling": "avg"}


def taudl(dm: CrossDomainDataModule, **kw) -> TAUDLModule:
    args = dict(num_source_pids=dm.num_source_pids, num_query=dm.num_query, net=TINY_NET,
                optimizer=functools.partial(DEFAULT_OPTIMIZER, lr=1e-3), scheduler=WarmupCosineLR,
                ranked_list_queries=0)
    args.update(kw)
    return TAUDLModule(**args)


def trainer(tmp_path: Path, callbacks=(), **kw) -> pl.Trainer:
    args = dict(accelerator="cpu", max_steps=4, limit_val_batches=0, log_every_n_steps=1, enable_progress_bar=False,
                enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                logger=pl.loggers.CSVLogger(tmp_path, name="taudl"), callbacks=list(callbacks))
    args.update(kw)
    return pl.Trainer(**args)


def step_rows(metrics_csv: Path) -> list[dict[str, float]]:
    """The rows of a CSVLogger file that hold ``train/loss``, as floats."""
    with open(metrics_csv) as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return [{k: float(v) for k, v in r.items() if v != ""} for r in rows]


def small_config(tmp_path: Path, synth_root: Path, name: str, translator: Path | None = None, **trainer) -> Path:
    """A shipped synth_a2synth_b TAUDL config made tiny and pointed at the test data."""
    cfg = shipped_config(name.removesuffix(".yaml"))
    run = tmp_path / "run"
    cfg["trainer"].update(default_root_dir=str(run), max_epochs=1, limit_train_batches=3, limit_val_batches=0,
                          enable_progress_bar=False, log_every_n_steps=1)
    cfg["trainer"].update(trainer)
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(run)
    cfg["checkpoint"]["dirpath"] = str(run / "checkpoints")
    if cfg.get("rendering"):
        cfg["rendering"]["init_args"]["translator"] = str(translator)
    cfg["data"].update(root=str(synth_root), batch_size=8, target_batch_size=8, num_workers=0)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


# ---------------------------------------------------------------------------------------------- TAUDL alone


def test_taudl_alone_learns_from_tracklets_only_and_never_trains_the_source_classifier(tmp_path, synth_root):
    torch.manual_seed(0)
    dm = datamodule(synth_root)
    module = taudl(dm, source_weight=0.0, ccta_ramp_epochs=0.0)  # CCTA counts from the first step
    source_classifier = module.net.classifier.weight.detach().clone()
    record = Record()
    fit = trainer(tmp_path, [record])
    fit.fit(module, datamodule=dm)

    # the branches and the memory have the DataModule's tracklet layout
    layout = dm.num_target_tracklets_per_camera
    assert module.tracklet_layout == layout and len(layout) == dm.num_target_cameras == 8
    assert [c.weight.shape for c in module.tracklet_classifiers] == [(n, module.net.feat_dim) for n in layout]
    assert module.ccta.memory.features.shape == (dm.num_target_tracklets, 512)  # resnet10t's feature width
    assert module.ccta.num_neighbours == 4  # cameras // 2, the official code's K

    # no source label and no source image: the source part of every batch holds labels only
    assert isinstance(dm.source_train, SourceLabelsOnly)
    assert all(keys[SOURCE] == [CAMID, PID] and IMAGE in keys[TARGET] for keys in record.keys)
    assert len(record.keys) == 4
    assert torch.equal(module.net.classifier.weight, source_classifier)
    assert not module.net.classifier.weight.requires_grad
    optimised = {id(p) for group in fit.optimizers[0].param_groups for p in group["params"]}
    assert id(module.net.classifier.weight) not in optimised
    assert all(id(c.weight) in optimised for c in module.tracklet_classifiers)

    rows = step_rows(tmp_path / "taudl" / "version_0" / "metrics.csv")
    assert len(rows) == 4
    for row in rows:
        assert all(math.isfinite(row[term]) for term in TERMS)
        assert not any(k.startswith("train/source") or k.startswith("train/synthetic") for k in row)
    # first step: branches at ~0 logits give PCTD = mean log T_c over the images; the memory is empty, CCTA 0
    first_cams = record.cameras[0]
    expected_pctd = sum(math.log(layout[c]) for c in first_cams) / len(first_cams)
    assert rows[0]["train/pctd"] == pytest.approx(expected_pctd, abs=1e-2)
    assert rows[0]["train/ccta"] == 0.0
    assert rows[0]["train/loss"] == pytest.approx(0.3 * rows[0]["train/pctd"], rel=1e-5)  # (1 - 0.7) PCTD
    assert rows[-1]["train/ccta"] > 0  # later steps find filled tracklets of other cameras
    # the memory holds exactly the tracklets the batches showed, as unit vectors
    seen = sorted({t for batch in record.tracklets for t in batch})
    memory = module.ccta.memory
    assert memory.filled.nonzero().flatten().tolist() == seen
    assert rows[-1]["train/memory_filled"] == pytest.approx(len(seen) / dm.num_target_tracklets, abs=1e-6)
    torch.testing.assert_close(memory.features[seen].norm(dim=1), torch.ones(len(seen)))
    assert not memory.features[~memory.filled].any()


def test_the_ccta_weight_ramps_in_from_its_start_epoch(synth_root):
    dm = datamodule(synth_root)
    module = taudl(dm, ccta_start_epoch=1.0, ccta_ramp_epochs=2.0)
    module.trainer = SimpleNamespace(num_training_batches=10, current_epoch=0)
    epochs = {}
    for epoch, batch_idx in ((0, 9), (1, 0), (2, 0), (2, 5), (3, 0), (7, 3)):
        module.trainer.current_epoch = epoch
        epochs[(epoch, batch_idx)] = module.ccta_ramp(batch_idx)
    assert epochs == {(0, 9): 0.0, (1, 0): 0.0, (2, 0): 0.5, (2, 5): 0.75, (3, 0): 1.0, (7, 3): 1.0}


def schedule_run(tmp_path: Path, synth_root: Path, name: str, epochs: int, ckpt: Path | None = None,
                 save: Path | None = None) -> list[dict[str, float]]:
    """TAUDL alone with a one-epoch PCTD-only warm-up and a two-epoch CCTA ramp, 2 batches an
    epoch; returns the logged training rows."""
    pl.seed_everything(0)
    dm = datamodule(synth_root)
    module = taudl(dm, source_weight=0.0, ccta_start_epoch=1.0, ccta_ramp_epochs=2.0,
                   scheduler=functools.partial(WarmupMultiStepLR, warmup_epochs=0))
    run = trainer(tmp_path / name, max_steps=-1, max_epochs=epochs, limit_train_batches=2)
    run.fit(module, datamodule=dm, ckpt_path=ckpt)
    if save is not None:
        run.save_checkpoint(save)
    return step_rows(tmp_path / name / "taudl" / "version_0" / "metrics.csv")


def test_warm_up_computes_no_ccta_then_its_weight_ramps_at_every_step(tmp_path, synth_root, monkeypatch):
    calls = []
    forward = CrossCameraAssociationLoss.forward

    def counted(self, *args, **kwargs):
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(CrossCameraAssociationLoss, "forward", counted)
    rows = schedule_run(tmp_path, synth_root, "run", epochs=3)
    # progress = epoch + batch / 2: 0, 0.5 | 1, 1.5 | 2, 2.5 -> warm-up until 1, then (progress - 1) / 2
    assert [row["train/ccta_weight"] for row in rows] == [0.0, 0.0, 0.0, 0.25, 0.5, 0.75]
    assert len(calls) == 3  # CCTA is computed at the three steps where its weight is > 0, never before
    for row in rows[:3]:  # warm-up: CCTA adds exactly nothing, the target loss is (1 - lambda) PCTD
        assert row["train/ccta"] == 0.0
        assert row["train/target_loss"] == pytest.approx(0.3 * row["train/pctd"], rel=1e-6)
        assert row["train/loss"] == pytest.approx(row["train/target_loss"], rel=1e-6)
    assert rows[2]["train/memory_filled"] > 0  # the memory fills during the warm-up, ready for CCTA
    for row in rows[3:]:
        assert row["train/ccta"] > 0
        assert row["train/target_loss"] == pytest.approx(
            0.3 * row["train/pctd"] + 0.7 * row["train/ccta_weight"] * row["train/ccta"], rel=1e-5)


@pytest.mark.slow
def test_resume_continues_the_ccta_schedule_where_it_stopped(tmp_path, synth_root):
    ckpt = tmp_path / "epoch2.ckpt"
    first = schedule_run(tmp_path, synth_root, "a", epochs=2, save=ckpt)
    assert [row["train/ccta_weight"] for row in first] == [0.0, 0.0, 0.0, 0.25]
    resumed = schedule_run(tmp_path, synth_root, "b", epochs=3, ckpt=ckpt)
    whole = schedule_run(tmp_path, synth_root, "c", epochs=3)
    assert [row["train/ccta_weight"] for row in resumed] == [0.5, 0.75]
    for got, expected in zip(resumed, whole[4:]):
        for term in ("train/ccta_weight", "train/pctd", "train/ccta", "train/loss"):
            assert got[term] == pytest.approx(expected[term], rel=1e-5), term


# ---------------------------------------------------------------------------------------------- hybrid


@pytest.mark.slow
def test_the_hybrid_trains_source_renderings_and_tracklets_in_one_model(tmp_path, synth_root, tiny_crgan_ckpt):
    cfg = small_config(tmp_path, synth_root, "reid_crgan_taudl.yaml", translator=tiny_crgan_ckpt)
    assert main(["fit", "--config", str(cfg), "--trainer.callbacks+=ddp_helpers.WeightsDigest",
                 f"--trainer.callbacks.out={tmp_path / 'digest'}"]) == 0
    record = json.loads((tmp_path / "digest" / "rank0.json").read_text())
    assert record["keys"] == [SOURCE, SYNTHETIC, TARGET] and record["batches"] == 3
    run = tmp_path / "run"
    rows = step_rows(run / "reid_crgan_taudl" / "version_0" / "metrics.csv")
    assert len(rows) == 3
    for row in rows:
        for term in TERMS + ("train/source_ce", "train/synthetic_ce", "train/joint_triplet"):
            assert math.isfinite(row[term]), term
        assert row["train/synthetic_ce"] > 0 and row["train/pctd"] > 0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["_class_path"] == "crgan_lightning.modules.taudl.TAUDLModule"
    dm = datamodule(synth_root)
    layout = dm.num_target_tracklets_per_camera
    state = ckpt["state_dict"]
    assert [state[f"tracklet_classifiers.{c}.weight"].shape[0] for c in range(len(layout))] == layout
    assert state["ccta.memory.features"].shape == (sum(layout), 512)
    assert int(state["ccta.memory.filled"].sum()) > 0
    for row in rows:  # every term enters the loss: source_weight * labelled + taudl_weight * target, both 1
        labelled = row["train/source_ce"] + row["train/synthetic_ce"] + row["train/joint_triplet"]
        assert row["train/loss"] == pytest.approx(labelled + row["train/target_loss"], rel=1e-4)
        assert row["train/target_loss"] == pytest.approx(
            0.3 * row["train/pctd"] + 0.7 * row["train/ccta_weight"] * row["train/ccta"], rel=1e-4)
    assert 0 < rows[-1]["train/ccta_weight"] < 1  # the ramp over the first epoch


# ---------------------------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_resume_restores_the_tracklet_memory_exactly(tmp_path, synth_root):
    def fit(folder: Path, epochs: int, ckpt: Path | None = None, save: Path | None = None) -> tuple:
        pl.seed_everything(0)
        dm = datamodule(synth_root)
        module = taudl(dm, source_weight=0.5,  # a schedule that does not depend on the run's length
                       scheduler=functools.partial(WarmupMultiStepLR, warmup_epochs=0))
        record = Record()
        run = trainer(folder, [record], max_steps=-1, max_epochs=epochs, limit_train_batches=2)
        run.fit(module, datamodule=dm, ckpt_path=ckpt)
        if save is not None:
            run.save_checkpoint(save)
        return module, record

    ckpt = tmp_path / "epoch1.ckpt"
    first, _ = fit(tmp_path / "a", 1, save=ckpt)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert int(saved["ccta.memory.filled"].sum()) > 0
    resumed, record = fit(tmp_path / "b", 2, ckpt=ckpt)
    # at the start of the resumed training the memory is the checkpoint's, bit for bit
    for key in ("memory.features", "memory.filled", "memory.cameras"):
        assert torch.equal(record.memory_at_start[key], saved[f"ccta.{key}"]), key
    # and the run continues as one that was never interrupted
    whole, _ = fit(tmp_path / "c", 2)
    for key, value in whole.ccta.state_dict().items():
        assert torch.equal(resumed.ccta.state_dict()[key], value), key
    for (name, p), q in zip(whole.named_parameters(), resumed.parameters()):
        assert torch.equal(p, q), name
    assert not torch.equal(whole.ccta.memory.features, first.ccta.memory.features)


def test_a_checkpoint_builds_its_own_heads_without_a_tracklet_datamodule(tmp_path, synth_root):
    dm = datamodule(synth_root)
    module = taudl(dm)
    module.build_target_heads(dm.num_target_tracklets_per_camera)
    module.ccta.memory.update(torch.randn(3, 512), torch.tensor([0, 5, 9]))
    path = tmp_path / "taudl.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": pl.__version__}, path)
    loaded = TAUDLModule.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    assert loaded.tracklet_layout == dm.num_target_tracklets_per_camera
    assert torch.equal(loaded.ccta.memory.features, module.ccta.memory.features)
    assert loaded.ccta.memory.filled.nonzero().flatten().tolist() == [0, 5, 9]
    with pytest.raises(ConfigError, match=r"tracklets per target camera \[2, 2\] differ"):
        loaded.build_target_heads([2, 2])


# ---------------------------------------------------------------------------------------------- DDP


@pytest.mark.slow
def test_two_process_ddp_ranks_end_with_the_same_memory_and_weights(tmp_path, synth_root):
    cfg = small_config(tmp_path, synth_root, "reid_taudl.yaml", limit_train_batches=2)
    out = tmp_path / "records"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO / "tests" / "modules"),
                                           *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-m", "crgan_lightning.app.cli", "fit", "--config", str(cfg), "--trainer.accelerator=cpu",
           "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.callbacks+=test_taudl_module.Record",
           f"--trainer.callbacks.out={out}"]
    proc = run_bounded(cmd, 600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["batches"] == 2
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["memory"] == ranks[1]["memory"]
    # each rank's memory holds the tracklets of both ranks' batches, not only its own
    both = sorted(set(ranks[0]["seen"]) | set(ranks[1]["seen"]))
    assert ranks[0]["filled"] == ranks[1]["filled"] == both
    assert set(ranks[0]["seen"]) != set(both) and set(ranks[1]["seen"]) != set(both)


# ---------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("pair", PAIRS)
def test_every_taudl_config_parses_and_keeps_its_base_recipe(pair):
    for name in TAUDL_CONFIGS:
        stage = name[:-len(".yaml")]
        cfg = shipped_config(stage, pair)
        base = shipped_config("reid_direct" if name == "reid_taudl.yaml" else "reid_crgan", pair)
        assert cfg["model"]["class_path"] == "crgan_lightning.modules.taudl.TAUDLModule"
        args = cfg["model"]["init_args"]
        assert args["taudl_lambda"] == 0.7 and args["taudl_weight"] == 1.0
        assert (args["source_weight"] == 0.0) == (name == "reid_taudl.yaml")
        # the same recipe as the base config: every ReIDModule argument and trainer setting but the run's names
        assert {k: v for k, v in args.items() if k in base["model"]["init_args"]} == base["model"]["init_args"]
        own_schedule = name == "reid_taudl.yaml" and pair == "synth_a2synth_b"  # 30 epochs: the warm-up test checks it
        for key in ("precision", "check_val_every_n_epoch", "devices", *(() if own_schedule else ("max_epochs",))):
            assert cfg["trainer"][key] == base["trainer"][key], (name, key)
        assert cfg["trainer"]["default_root_dir"] == f"runs/{pair}/{stage}"
        assert cfg["trainer"]["logger"]["init_args"]["name"] == stage
        data = cfg["data"]
        assert data["target_tracklets"] is True and data["with_target"] is True
        assert data["target_batch_size"] % data["num_instances"] == 0
        for key in ("source", "target", "height", "width", "batch_size", "num_instances", "erasing_p", "pad"):
            assert data[key] == base["data"][key], (name, key)
        rendering = [cfg["rendering"]] if cfg.get("rendering") else []
        assert len(rendering) == (name != "reid_taudl.yaml")
        for callback in rendering:
            ContextRenderingCallback(**callback["init_args"])
            translator = "spgan" if name == "reid_spgan_taudl.yaml" else "crgan"
            assert callback["init_args"]["translator"] == f"runs/{pair}/{translator}/checkpoints/last.ckpt"


def test_taudl_alone_from_scratch_warms_up_before_ccta_and_pretrained_pairs_do_not():
    embedded = shipped_config("reid_taudl")["model"]["init_args"]
    assert embedded["net"]["init_args"]["pretrained"] is False
    assert (embedded["ccta_start_epoch"], embedded["ccta_ramp_epochs"]) == (5.0, 2.0)
    # TAUDL alone gets its own, longer schedule on the embedded pair; the hybrids keep the re-id recipe's
    assert shipped_config("reid_taudl")["trainer"]["max_epochs"] == 30
    assert shipped_config("reid_crgan_taudl")["trainer"]["max_epochs"] == shipped_config("reid_direct")["trainer"][
        "max_epochs"] == 10
    for pair in ("market2duke", "duke2market"):  # ImageNet weights: CCTA ramped in over the first epoch
        args = shipped_config("reid_taudl", pair)["model"]["init_args"]
        assert args["net"]["init_args"]["pretrained"] is True
        assert (args["ccta_start_epoch"], args["ccta_ramp_epochs"]) == (0.0, 1.0)
    for stage in ("reid_crgan_taudl", "reid_spgan_taudl"):  # the hybrids learn from source labels first
        args = shipped_config(stage)["model"]["init_args"]
        assert (args["ccta_start_epoch"], args["ccta_ramp_epochs"]) == (0.0, 1.0)


def test_make_train_reid_picks_the_taudl_config_with_taudl_1():
    def command(*variables: str) -> str:
        proc = subprocess.run(["make", "-n", "-o", "install", "train-reid", *variables], cwd=REPO,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return next(line for line in proc.stdout.splitlines() if " fit --stage " in line)

    def stage(*variables: str) -> str:
        return command(*variables).split(" fit --stage ")[1].split()[0]

    assert stage() == "reid_direct"
    assert stage("CRGAN_CKPT=c.ckpt") == "reid_crgan"
    assert stage("TAUDL=0", "CRGAN_CKPT=c.ckpt") == "reid_crgan"
    assert stage("TAUDL=1") == "reid_taudl"
    assert stage("TAUDL=1", "CRGAN_CKPT=c.ckpt") == "reid_crgan_taudl"
    assert stage("TAUDL=1", "SPGAN_CKPT=s.ckpt") == "reid_spgan_taudl"
    assert "--source market --target duke" in command("TAUDL=1", "SRC=market", "TGT=duke")
    assert "--rendering.init_args.translator=s.ckpt" in command("TAUDL=1", "SPGAN_CKPT=s.ckpt")
    assert "translator" not in command("TAUDL=1")
    for variables, message in ((["SPGAN_CKPT=s.ckpt"], "add TAUDL=1"),
                               (["TAUDL=1", "SPGAN_CKPT=s.ckpt", "CRGAN_CKPT=c.ckpt"], "not both")):
        proc = subprocess.run(["make", "-s", "-o", "install", "train-reid", *variables], cwd=REPO,
                              capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stdout


# ---------------------------------------------------------------------------------------------- errors


def test_fitting_without_target_tracklets_is_a_one_line_config_error(tmp_path, synth_root):
    dm = datamodule(synth_root, target_tracklets=False)
    module = taudl(dm)
    with pytest.raises(ConfigError, match="data.target_tracklets is false; expected data.target_tracklets=true"):
        trainer(tmp_path).fit(module, datamodule=dm)


def test_taudl_alone_refuses_a_rendering_callback(tmp_path, synth_root, tiny_crgan_ckpt):
    dm = datamodule(synth_root)
    module = taudl(dm, source_weight=0.0)
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt))
    with pytest.raises(ConfigError, match="source_weight=0 .* ContextRenderingCallback renders source images"):
        trainer(tmp_path, [callback]).fit(module, datamodule=dm)


@pytest.mark.parametrize("bad, message", [
    ({"taudl_weight": 0.0}, "taudl_weight=0.0; expected > 0"),
    ({"taudl_lambda": 1.5}, r"taudl_lambda=1.5; expected a weight in \[0, 1\]"),
    ({"source_weight": -1.0}, "source_weight=-1.0; expected >= 0"),
    ({"ccta_ramp_epochs": -1.0}, "ccta_ramp_epochs=-1.0; expected epochs >= 0"),
    ({"ccta_neighbours": 0}, "ccta_neighbours=0; expected >= 1"),
    ({"ccta_temperature": 0.0}, "ccta_temperature=0.0; expected > 0"),
    ({"memory_momentum": 1.0}, r"memory_momentum=1.0; expected a value in \[0, 1\)"),
    ({"ccta_feature": "logits"}, "ccta_feature='logits'; expected one of neck, pooled"),
    ({"pctd_label_smooth": 1.0}, r"pctd_label_smooth=1.0; expected a value in \[0, 1\)"),
])
def test_bad_taudl_arguments_name_the_value(bad, message):
    with pytest.raises(ConfigError, match=message):
        TAUDLModule(num_source_pids=4, num_query=2, net=TINY_NET, **bad)
