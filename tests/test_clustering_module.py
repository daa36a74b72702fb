"""ClusterModule on the embedded benchmark: pseudo-identity batches from an init checkpoint, no true
target label reaching training, resume with the memory and pseudo-labels, the sampler, the shipped
stage and the make switch."""

from __future__ import annotations

import csv
import dataclasses
import functools
import subprocess
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from ddp_helpers import run_bounded

from crgan_lightning.app.stages import stage_arguments
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.keys import INDEX, PID, TARGET
from crgan_lightning.data.samplers import PseudoIdentitySampler, PseudoLabels
from crgan_lightning.errors import ConfigError, WeightsError
from crgan_lightning.models.batchnorm import GlobalBatchNorm
from crgan_lightning.modules.cluster import ClusterModule
from crgan_lightning.modules.reid import ReIDModule
from crgan_lightning.schedules import WarmupCosineLR, WarmupMultiStepLR

REPO = Path(__file__).resolve().parents[1]
NET = dict(net={"backbone": "resnet10t", "pretrained": False, "test_pooling": "avg"}, ranked_list_queries=0)
#: Adam at 1e-3 without warm-up (the module's default optimiser, a faster rate for a few batches).
OPTIM = dict(optimizer=functools.partial(torch.optim.Adam, lr=1e-3, weight_decay=5e-4),
             scheduler=functools.partial(WarmupMultiStepLR, warmup_epochs=0))


def datamodule(root: Path, **kw) -> CrossDomainDataModule:
    args = dict(root=str(root), height=64, width=32, batch_size=16, num_instances=4, target_batch_size=16,
                num_workers=0, masks="none", target_clusters=True, erasing_p=0.0, pad=4, eval_batch_size=64)
    args.update(kw)
    return CrossDomainDataModule(**args)


def trainer(tmp_path: Path, callbacks=(), **kw) -> pl.Trainer:
    args = dict(accelerator="cpu", max_epochs=2, limit_train_batches=2, limit_val_batches=0, log_every_n_steps=1,
                enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                default_root_dir=tmp_path, logger=pl.loggers.CSVLogger(tmp_path, name="cluster"),
                callbacks=list(callbacks))
    args.update(kw)
    return pl.Trainer(**args)


@pytest.fixture(scope="module")
def direct_ckpt(synth_root, tmp_path_factory) -> Path:
    """A re-id checkpoint of a tiny network trained for a few batches on the source (direct transfer)."""
    out = tmp_path_factory.mktemp("direct")
    pl.seed_everything(0)
    dm = datamodule(synth_root, target_clusters=False, with_target=False)
    module = ReIDModule(num_source_pids=dm.num_source_pids, num_query=dm.num_query, **OPTIM, **NET)
    run = trainer(out, max_epochs=1, limit_train_batches=3, logger=False)
    run.fit(module, datamodule=dm)
    path = out / "direct.ckpt"
    run.save_checkpoint(path)
    return path


def cluster_module(dm: CrossDomainDataModule, **kw) -> ClusterModule:
    args = dict(num_source_pids=dm.num_source_pids, num_query=dm.num_query, outliers="instances", k1=10, k2=3,
                min_samples=2, **OPTIM, **NET)
    args.update(kw)
    return ClusterModule(**args)


class Record(pl.Callback):
    """Per training batch: the target indices and their pseudo-labels; per epoch start (after the
    module clustered): the pseudo-labels, the memory and the parameters' digest."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[int], list[int]]] = []
        self.epochs: list[dict] = []
        self.at_train_start: dict = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.at_train_start = {"memory": pl_module.memory.features.clone(),
                               "labels": pl_module.pseudo_labels.clone()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if "sampler" not in self.at_train_start:  # the labels the first batch was drawn from
            self.at_train_start["sampler"] = trainer.datamodule.target_pseudo_labels.labels.copy()
        if batch_idx == 0:
            self.epochs.append({"labels": pl_module.pseudo_labels.clone(), "memory": pl_module.memory.features.clone()})
        index = batch[TARGET][INDEX]
        self.batches.append((index.tolist(), pl_module.pseudo_labels[index].tolist()))
        assert PID not in batch[TARGET]


def epoch_rows(metrics_csv: Path) -> list[dict[str, float]]:
    with open(metrics_csv) as f:
        rows = [r for r in csv.DictReader(f) if r.get("cluster/clusters")]
    return [{k: float(v) for k, v in r.items() if v != ""} for r in rows]


def digest(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------------------------- sampler


def test_pseudo_identity_sampler_follows_the_latest_labels_and_skips_dropped_images():
    holder = PseudoLabels()
    sampler = PseudoIdentitySampler(holder, batch_size=4, num_instances=2, seed=0, num_batches=5)
    with pytest.raises(ConfigError, match="no pseudo-labels"):
        list(sampler)
    holder.set([0, 0, 1, 1, -1, 2, 2, -1])
    batches = np.asarray(list(sampler)).reshape(5, 4)
    labels = np.asarray(holder.labels)
    assert not np.isin(batches, [4, 7]).any()
    for batch in batches:  # P = 2 pseudo-identities x K = 2 images each
        groups = labels[batch]
        assert groups[0] == groups[1] and groups[2] == groups[3] and groups[0] != groups[2]
    holder.set([0, 1, 2, 3, 0, 1, 2, 3])  # a new clustering: the next epoch follows it
    sampler.set_epoch(1)
    batches = np.asarray(list(sampler)).reshape(5, 4)
    new = np.asarray(holder.labels)[batches]
    assert (new[:, 0] == new[:, 1]).all() and np.isin(batches, [4, 7]).any()
    holder.set([0, 0, -1, -1, -1, -1, -1, -1])
    with pytest.raises(ConfigError, match="at least P=2 pseudo-identities"):
        list(sampler)


def test_pseudo_identity_sampler_gives_valid_batches_before_the_first_clustering():
    # Lightning iterates the loader to count its batches (loader workers prefetch) before any epoch starts
    sampler = PseudoIdentitySampler(PseudoLabels(), batch_size=4, num_instances=2, seed=0, num_batches=3, num_items=6)
    batches = np.asarray(list(sampler)).reshape(3, 4)
    assert ((0 <= batches) & (batches < 6)).all()
    assert (batches[:, 0] == batches[:, 1]).all() and (batches[:, 2] == batches[:, 3]).all()


def test_pseudo_identity_sampler_deals_disjoint_batches_to_two_ranks():
    holder = PseudoLabels()
    holder.set(np.repeat(np.arange(8), 4))
    ranks = [list(PseudoIdentitySampler(holder, 8, 4, seed=3, num_batches=2, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 16
    assert not set(ranks[0]) & set(ranks[1])


# ---------------------------------------------------------------------------------------------- training


def test_cluster_stage_trains_on_pseudo_identities_from_the_init_checkpoint(tmp_path, synth_root, direct_ckpt):
    pl.seed_everything(0)
    dm = datamodule(synth_root)
    module = cluster_module(dm, init_checkpoint=str(direct_ckpt))
    record = Record()
    run = trainer(tmp_path, [record])
    run.fit(module, datamodule=dm)
    # the network started from the direct-transfer checkpoint: its untrained source classifier is still that one
    init = torch.load(direct_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(module.net.classifier.weight, init["net.classifier.weight"])
    assert not torch.equal(module.net.neck.weight, init["net.neck.weight"])  # ... and the rest trained
    # clustered at the start of each epoch, once
    rows = epoch_rows(Path(run.logger.log_dir) / "metrics.csv")
    assert len(rows) == 2 and len(record.epochs) == 2
    num_train = dm.num_target_train
    for row, epoch in zip(rows, record.epochs):
        assert 0 <= row["cluster/outliers"] <= 1 and row["cluster/clusters"] >= 0
        # outliers kept as instances: every image has a pseudo-identity, clusters + outliers of them
        assert epoch["labels"].shape == (num_train,) and int(epoch["labels"].min()) == 0
        assert row["cluster/classes"] == pytest.approx(row["cluster/clusters"] + row["cluster/outliers"] * num_train)
        assert epoch["memory"].shape == (int(row["cluster/classes"]), module.net.feat_dim)
        assert torch.allclose(epoch["memory"].norm(dim=1), torch.ones(len(epoch["memory"])), atol=1e-5)
        assert -1 <= row["cluster/ari"] <= 1 and 0 <= row["cluster/fscore"] <= 1
    # every batch: P = 4 pseudo-identities x K = 4 images
    assert len(record.batches) == 4
    for _, labels in record.batches:
        labels = np.asarray(labels).reshape(4, 4)
        assert (labels == labels[:, :1]).all() and len(set(labels[:, 0])) == 4
    assert all(np.isfinite(r["train/cluster_contrast"]) for r in step_rows(Path(run.logger.log_dir) / "metrics.csv"))


def step_rows(metrics_csv: Path) -> list[dict[str, float]]:
    with open(metrics_csv) as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/cluster_contrast")]
    return [{k: float(v) for k, v in r.items() if v != ""} for r in rows]


def test_joint_hybrid_adds_the_source_loss_to_the_cluster_loss(tmp_path, synth_root, direct_ckpt):
    pl.seed_everything(0)
    dm = datamodule(synth_root, num_workers=1)  # as the embedded config: a loader worker, and ...
    module = cluster_module(dm, init_checkpoint=str(direct_ckpt), source_weight=0.5, cluster_weight=2.0,
                            scheduler=WarmupCosineLR)  # ... a schedule that counts the batches before the first epoch
    record = Record()
    run = trainer(tmp_path, [record], max_epochs=1)
    run.fit(module, datamodule=dm)
    # the first epoch's batches follow the first clustering (done before the loader draws any batch): P x K
    # chunks of one pseudo-identity each, some of several images (not one image repeated K times)
    chunks = [(index[i:i + 4], labels[i:i + 4]) for index, labels in record.batches for i in range(0, 16, 4)]
    assert all(len(set(labels)) == 1 for _, labels in chunks)
    assert any(len(set(index)) > 1 for index, _ in chunks)
    assert module.net.classifier.weight.requires_grad  # the source classifier trains in the hybrid
    rows = step_rows(Path(run.logger.log_dir) / "metrics.csv")
    assert len(rows) == 2
    for row in rows:  # loss = source_weight * (CE + triplet on the source) + cluster_weight * contrast
        labelled = row["train/source_ce"] + row["train/source_triplet"]
        assert row["train/loss"] == pytest.approx(0.5 * labelled + 2.0 * row["train/cluster_contrast"], rel=1e-4)


@pytest.mark.slow
def test_no_true_target_label_reaches_training(tmp_path, synth_root, direct_ckpt):
    """Leak check: the target training images' true identities poisoned (shuffled among images)
    leave training bit for bit unchanged; only the diagnostic agreement scores see them."""

    def fit(folder: Path, poison: bool) -> tuple[dict, list[dict]]:
        pl.seed_everything(0)
        dm = datamodule(synth_root)
        if poison:
            train = dm.target_dataset.train
            pids = np.random.default_rng(1).permutation([s.pid for s in train])
            train[:] = [dataclasses.replace(s, pid=int(p) + 1000) for s, p in zip(train, pids)]
        module = cluster_module(dm, init_checkpoint=str(direct_ckpt))
        run = trainer(folder)
        run.fit(module, datamodule=dm)
        return digest(module), epoch_rows(Path(run.logger.log_dir) / "metrics.csv")

    clean, clean_rows = fit(tmp_path / "clean", poison=False)
    poisoned, poisoned_rows = fit(tmp_path / "poisoned", poison=True)
    assert clean.keys() == poisoned.keys()
    for key, value in clean.items():
        assert torch.equal(value, poisoned[key]), key
    for a, b in zip(clean_rows, poisoned_rows):
        assert a["cluster/clusters"] == b["cluster/clusters"] and a["cluster/outliers"] == b["cluster/outliers"]
    assert [r["cluster/ari"] for r in clean_rows] != [r["cluster/ari"] for r in poisoned_rows]


class SaveAtStep(pl.Callback):
    def __init__(self, step: int, path: Path) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)


@pytest.mark.slow
def test_resume_inside_an_epoch_continues_with_the_checkpoint_memory_and_pseudo_labels(
        tmp_path, synth_root, direct_ckpt):
    ckpt = tmp_path / "mid.ckpt"
    pl.seed_everything(0)
    dm = datamodule(synth_root)
    module = cluster_module(dm, init_checkpoint=str(direct_ckpt))
    trainer(tmp_path / "a", [SaveAtStep(2, ckpt)], max_epochs=1, limit_train_batches=4).fit(module, datamodule=dm)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert saved["pseudo_labels"].shape == (dm.num_target_train,)
    assert saved["memory.features"].shape[0] == int(saved["pseudo_labels"].max()) + 1

    loaded = ClusterModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
    assert torch.equal(loaded.memory.features, saved["memory.features"])
    assert torch.equal(loaded.pseudo_labels, saved["pseudo_labels"])

    pl.seed_everything(0)
    dm = datamodule(synth_root)
    resumed = cluster_module(dm, init_checkpoint=str(direct_ckpt))
    calls = []
    resumed.recluster = lambda: calls.append(1) or {}  # a mid-epoch resume must not cluster again
    record = Record()
    trainer(tmp_path / "b", [record], max_epochs=1, limit_train_batches=4).fit(resumed, datamodule=dm, ckpt_path=ckpt)
    assert not calls
    assert torch.equal(record.at_train_start["memory"], saved["memory.features"])
    assert torch.equal(record.at_train_start["labels"], saved["pseudo_labels"])
    assert np.array_equal(record.at_train_start["sampler"], saved["pseudo_labels"].numpy())
    assert len(record.batches) == 2  # the two batches left of the epoch, drawn from the checkpoint's labels
    for index, labels in record.batches:
        assert labels == saved["pseudo_labels"][index].tolist()


def test_eps_auto_is_set_by_the_first_clustering_and_kept(tmp_path, synth_root, direct_ckpt, monkeypatch):
    import crgan_lightning.modules.cluster as cluster_mod

    calls = []
    real = cluster_mod.eps_from_rho
    monkeypatch.setattr(cluster_mod, "eps_from_rho", lambda d, rho: calls.append(rho) or real(d, rho))
    pl.seed_everything(0)
    dm = datamodule(synth_root)
    module = cluster_module(dm, init_checkpoint=str(direct_ckpt), eps="auto", eps_rho=0.05)
    assert float(module.dbscan_eps) == 0.0
    run = trainer(tmp_path, max_epochs=2, enable_checkpointing=True)
    run.fit(module, datamodule=dm)
    assert calls == [0.05]  # two clusterings, one eps
    eps = float(module.dbscan_eps)
    assert 0 < eps < 1
    ckpt = tmp_path / "done.ckpt"
    run.save_checkpoint(ckpt)
    loaded = ClusterModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
    assert float(loaded.dbscan_eps) == pytest.approx(eps)  # a resumed run clusters with the same radius
    with pytest.raises(ConfigError, match="eps_rho=2"):
        cluster_module(dm, eps="auto", eps_rho=2)


# ---------------------------------------------------------------------------------------------- errors and config


def test_fit_without_pseudo_identity_batches_is_refused(tmp_path, synth_root):
    dm = datamodule(synth_root, target_clusters=False)
    with pytest.raises(ConfigError, match="data.target_clusters=true"):
        trainer(tmp_path).fit(cluster_module(dm), datamodule=dm)


def test_init_checkpoint_that_is_not_a_reid_one_is_refused(tmp_path, synth_root, tiny_crgan_ckpt):
    dm = datamodule(synth_root)
    with pytest.raises(WeightsError, match="no re-id network"):
        cluster_module(dm).load_initial_weights(tiny_crgan_ckpt)
    with pytest.raises(WeightsError, match="does not exist"):
        cluster_module(dm).load_initial_weights(tmp_path / "missing.ckpt")


def test_too_few_clusters_for_a_batch_is_a_config_error(tmp_path, synth_root, direct_ckpt):
    dm = datamodule(synth_root)
    module = cluster_module(dm, init_checkpoint=str(direct_ckpt), outliers="drop", eps=0.01, min_samples=50)
    with pytest.raises(ConfigError, match="fewer pseudo-identities than the P=4"):
        trainer(tmp_path).fit(module, datamodule=dm)


def test_bad_arguments_are_config_errors(synth_root):
    dm = datamodule(synth_root)
    for kw, match in ((dict(outliers="keep"), "outliers"), (dict(eps=1.5), "eps=1.5"), (dict(eps="tight"), "eps=tight"),
                      (dict(k1=0), "k1=0"), (dict(cluster_weight=0), "cluster_weight"),
                      (dict(temperature=0), "temperature")):
        with pytest.raises(ConfigError, match=match):
            cluster_module(dm, **kw)
    with pytest.raises(ConfigError, match="target_clusters"):
        CrossDomainDataModule(target_clusters=True, target_tracklets=True)


def test_cluster_stages_start_from_the_pairs_reid_runs():
    args = stage_arguments("reid_cluster", "market2duke")
    assert "--model.init_args.init_checkpoint=runs/market2duke/reid_direct/checkpoints/last.ckpt" in args
    assert any(a.endswith("base/cluster.yaml") for a in args)
    args = stage_arguments("reid_crgan_cluster", "synth_a2synth_b")
    assert "--model.init_args.init_checkpoint=runs/synth_a2synth_b/reid_crgan/checkpoints/last.ckpt" in args
    assert any(a.endswith("embedded/cluster.yaml") for a in args)


def test_shipped_cluster_config_builds_the_cluster_module():
    from conftest import shipped_config

    cfg = shipped_config("reid_cluster", "market2duke")
    assert cfg["model"]["class_path"] == "crgan_lightning.modules.cluster.ClusterModule"
    args = cfg["model"]["init_args"]
    assert (args["k1"], args["k2"], args["eps"], args["min_samples"], args["temperature"]) == (30, 6, 0.6, 4, 0.05)
    assert args["net"]["init_args"]["pretrained"] is False and args["source_weight"] == 0.0
    assert args["optimizer"]["init_args"]["lr"] == 3.5e-4
    assert cfg["data"]["target_clusters"] is True and cfg["data"]["with_target"] is True


def test_make_switch_selects_the_cluster_stage():
    def dry(*args: str) -> str:
        out = subprocess.run(["make", "-n", "train-reid", "STAMP=/dev/null", *args], cwd=REPO, capture_output=True,
                             text=True)
        return out.stdout + out.stderr

    assert "--stage reid_cluster" in dry("CLUSTER=1")
    assert "--model.init_args.init_checkpoint=x.ckpt" in dry("CLUSTER=1", "INIT_CKPT=x.ckpt")
    assert "--stage reid_direct" in dry()


# ---------------------------------------------------------------------------------------------- DDP


class DDPRecord(pl.Callback):
    """Per rank, at the end of fit: digests of the parameters, the memory and the pseudo-labels,
    how many times the rank ran the clustering itself, and the target images its batches held."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.clusterings = 0
        self.seen: set[int] = set()

    def on_fit_start(self, trainer, pl_module) -> None:
        cluster = pl_module.cluster

        def counted(features):
            self.clusterings += 1
            return cluster(features)

        pl_module.cluster = counted

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.update(batch[TARGET][INDEX].tolist())

    @staticmethod
    def digest(tensors) -> str:
        import hashlib

        h = hashlib.sha256()
        for name, tensor in tensors:
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def on_train_end(self, trainer, pl_module) -> None:
        import json

        record = {"weights": self.digest(sorted(pl_module.named_parameters())),
                  "memory": self.digest([("memory", pl_module.memory.features)]),
                  "labels": pl_module.pseudo_labels.tolist(), "clusterings": self.clusterings,
                  "seen": sorted(self.seen), "world_size": trainer.world_size,
                  "batchnorm": self.digest(sorted((n, b.float()) for n, b in pl_module.named_buffers()
                                                  if n.endswith(("running_mean", "running_var")))),
                  "global_batchnorm": sum(isinstance(m, GlobalBatchNorm) for m in pl_module.modules())}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_two_process_ddp_clusters_once_and_keeps_memory_and_labels_equal(tmp_path, synth_root, direct_ckpt):
    import json
    import os
    import sys

    import yaml
    from conftest import shipped_config

    cfg = shipped_config("reid_cluster")
    run = tmp_path / "run"
    cfg["trainer"].update(default_root_dir=str(run), max_epochs=2, limit_train_batches=2, limit_val_batches=0,
                          enable_progress_bar=False, log_every_n_steps=1)
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(run)
    cfg["checkpoint"]["dirpath"] = str(run / "checkpoints")
    cfg["model"]["init_args"].update(init_checkpoint=str(direct_ckpt), k1=10, k2=3, min_samples=2,
                                     outliers="instances", ranked_list_queries=0)
    cfg["data"].update(root=str(synth_root), batch_size=8, target_batch_size=8, num_workers=0, eval_batch_size=64)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "records"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-m", "crgan_lightning.app.cli", "fit", "--config", str(path), "--trainer.accelerator=cpu",
           "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.callbacks+=test_clustering_module.DDPRecord",
           f"--trainer.callbacks.out={out}"]
    proc = run_bounded(cmd, 600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["clusterings"] for r in ranks] == [2, 0]  # rank 0 clusters at each epoch start, rank 1 receives
    assert ranks[0]["labels"] == ranks[1]["labels"] and len(ranks[0]["labels"]) > 0
    assert ranks[0]["memory"] == ranks[1]["memory"]
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert not set(ranks[0]["seen"]) <= set(ranks[1]["seen"])  # the ranks train on batches of their own
    # the shipped sync_batchnorm: batch norm over both ranks' images (on the CPU), so even the running
    # statistics, which plain per-rank batch norm keeps apart, are equal on the two ranks
    assert ranks[0]["global_batchnorm"] == ranks[1]["global_batchnorm"] > 0
    assert ranks[0]["batchnorm"] == ranks[1]["batchnorm"]
