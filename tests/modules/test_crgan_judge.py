"""The CR-GAN judge that knows the people: a frozen source-trained re-id network with a camera head."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from conftest import TINY_CRGAN

from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.errors import ConfigError, WeightsError
from crgan_lightning.models.discriminator import ReIDJudge
from crgan_lightning.networks import load_reid_net
from crgan_lightning.app.demo import fit_finished
from crgan_lightning.checkpoints import REACHED_KEY
from crgan_lightning.modules.crgan import CRGANModule
from crgan_lightning.modules.reid import ReIDModule


def quiet_trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, **kwargs)


@pytest.fixture(scope="module")
def dm(synth_root):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, num_workers=0,
                               erasing_p=0.0, pad=0)
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def reid_ckpt(dm, tmp_path_factory):
    """A re-id checkpoint of the source (tiny network, a few steps), as `crgan fit` writes it."""
    out = tmp_path_factory.mktemp("judge")
    module = ReIDModule(num_source_pids=dm.num_source_pids, num_query=dm.num_query,
                        net={"backbone": "resnet10t", "pretrained": False, "pooling": "avg", "test_pooling": "avg"})
    trainer = quiet_trainer(out, max_steps=3, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    path = out / "reid.ckpt"
    trainer.save_checkpoint(path)
    return path, module


def test_load_reid_net_rebuilds_the_trained_network_frozen(reid_ckpt, dm):
    path, module = reid_ckpt
    net = load_reid_net(path)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(4, 3, 64, 32) * 2 - 1
    module.eval()
    assert torch.equal(net(x), module.net(x))
    assert net.classifier.out_features == dm.num_source_pids


def test_load_reid_net_refuses_other_files(tmp_path, tiny_crgan_ckpt):
    with pytest.raises(WeightsError, match="is not a re-id checkpoint"):
        load_reid_net(tiny_crgan_ckpt)
    with pytest.raises(WeightsError, match="does not exist"):
        load_reid_net(tmp_path / "missing.ckpt")


def test_the_judge_stays_frozen_and_only_its_camera_head_learns(reid_ckpt, dm, tmp_path):
    path, _ = reid_ckpt
    module = CRGANModule(num_source_pids=dm.num_source_pids, num_target_cameras=dm.num_target_cameras,
                         judge=str(path), **TINY_CRGAN)
    assert isinstance(module.classifier, ReIDJudge)
    net_before = {k: v.clone() for k, v in module.classifier.net.state_dict().items()}
    head_before = module.classifier.cam_head.weight.clone()
    trainer = quiet_trainer(tmp_path, max_epochs=1, limit_train_batches=3)
    trainer.fit(module, datamodule=dm)
    after = module.classifier.net.state_dict()
    assert all(torch.equal(net_before[k], after[k]) for k in net_before)  # running stats too
    assert not torch.equal(head_before, module.classifier.cam_head.weight)
    metrics = trainer.callback_metrics
    for name in ("id_acc_real", "id_acc_rendered", "cam_acc_real", "cam_acc_rendered", "id_ratio"):
        assert 0.0 <= float(metrics[f"epoch/judge_{name}"]) <= (1.0 if name != "id_ratio" else 1e6)
    # three batches of eight source and eight target images were judged, real and rendered
    assert module.judged[:, 1].tolist() == [24.0, 24.0, 24.0, 24.0]


def test_judge_accuracies_and_the_stop_rule(reid_ckpt, dm, tmp_path):
    path, _ = reid_ckpt

    class Counted(CRGANModule):
        """Accuracies as if the judge had scored: real 60 %, rendered 45 % (ratio 0.75)."""

        def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
            self.judged.copy_(torch.tensor([[6.0, 10.0], [4.5, 10.0], [10.0, 10.0], [9.0, 10.0]]))
            super().on_train_batch_end(outputs, batch, batch_idx)

    for target, epochs in ((0.7, 1), (0.8, 3)):
        module = Counted(num_source_pids=dm.num_source_pids, num_target_cameras=dm.num_target_cameras,
                         judge=str(path), target_id_ratio=target, **TINY_CRGAN)
        trainer = quiet_trainer(tmp_path, max_epochs=3, limit_train_batches=2)
        trainer.fit(module, datamodule=dm)
        assert trainer.current_epoch == epochs
        assert float(trainer.callback_metrics["epoch/judge_id_ratio"]) == pytest.approx(0.75)
        assert float(trainer.callback_metrics["epoch/judge_cam_acc_rendered"]) == pytest.approx(0.9)
        ckpt = tmp_path / f"stopped-{target}.ckpt"
        trainer.save_checkpoint(ckpt)
        assert torch.load(ckpt, weights_only=True)[REACHED_KEY] is (target == 0.7)


def test_a_run_stopped_by_its_ratio_counts_as_finished(tmp_path):
    loops = {"fit_loop": {"epoch_progress": {"current": {"processed": 2}}}}
    for reached, finished in ((True, True), (False, False)):
        torch.save({"state_dict": {}, "loops": loops, REACHED_KEY: reached}, tmp_path / "last.ckpt")
        assert fit_finished(tmp_path / "last.ckpt", 5) is finished


def test_a_judge_of_another_source_or_a_bad_ratio_is_refused(reid_ckpt, dm):
    path, _ = reid_ckpt
    with pytest.raises(ConfigError, match=f"classifies {dm.num_source_pids} identities, but the source has 5"):
        CRGANModule(num_source_pids=5, num_target_cameras=dm.num_target_cameras, judge=str(path), **TINY_CRGAN)
    with pytest.raises(ConfigError, match="target_id_ratio=1.5"):
        CRGANModule(num_source_pids=dm.num_source_pids, num_target_cameras=2, target_id_ratio=1.5, **TINY_CRGAN)
