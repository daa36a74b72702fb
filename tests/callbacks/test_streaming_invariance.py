"""Streaming that teaches invariance: part of each identity rendered, one triplet over source and
rendered images, contexts from the whole target set, the generator's inputs prepared as in its training."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from crgan_lightning.callbacks.rendering import BLACK, ContextRenderingCallback, pad_and_crop
from crgan_lightning.data.datamodule import CrossDomainDataModule, ReIDImageDataset
from crgan_lightning.data.keys import CAMID, IMAGE, PID, SOURCE, SYNTHETIC, TARGET
from crgan_lightning.errors import ConfigError
from crgan_lightning.losses import batch_hard_triplet_loss, cross_entropy_label_smooth
from crgan_lightning.modules.reid import ReIDModule
from crgan_lightning.translators import load_translator

PIDS = torch.tensor([7, 7, 7, 7, 2, 2, 2, 2, 9, 9, 9, 9, 4, 4, 4, 4])


class Recorder(ReIDModule):
    """Keeps each training batch, the network's weights before the step, and the loss it returned."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen: list[tuple[dict, dict, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        before = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        loss = super().training_step(batch, batch_idx)
        self.seen.append(({k: {kk: vv.detach().clone() for kk, vv in v.items()} for k, v in batch.items()},
                          before, loss.detach().clone()))
        return loss


def fit(dm, callback, steps=2, **module_args) -> tuple[Recorder, pl.Trainer]:
    pl.seed_everything(0)
    module = Recorder(num_source_pids=dm.num_source_pids, num_query=dm.num_query,
                      net={"backbone": "resnet10t", "pretrained": False}, **module_args)
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         callbacks=[callback])
    trainer.fit(module, datamodule=dm)
    return module, trainer


def test_within_identity_renders_a_share_of_every_identity(tiny_crgan_ckpt):
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt), ratio=0.5, within_identity=True)
    for seed in range(5):
        chosen = callback.choose(PIDS, torch.Generator().manual_seed(seed))
        assert torch.equal(chosen, chosen.sort().values)
        assert sorted(PIDS[chosen].tolist()) == [2, 2, 4, 4, 7, 7, 9, 9]  # K/2 of each of the 4 identities
    callback.ratio, callback.replace_source = 0.9, True  # rounds to all 4: one source image stays
    assert sorted(PIDS[callback.choose(PIDS, torch.Generator().manual_seed(0))].tolist()) == [2] * 3 + [4] * 3 + \
        [7] * 3 + [9] * 3
    draws = {tuple(callback.choose(PIDS, torch.Generator().manual_seed(s)).tolist()) for s in range(10)}
    assert len(draws) > 1  # which images of an identity are rendered is drawn


def test_pad_and_crop_is_the_loaders_black_pad_and_random_crop():
    images = torch.rand(6, 3, 8, 4)
    out = pad_and_crop(images, 2, torch.Generator().manual_seed(5))
    offsets = torch.randint(5, (6, 2), generator=torch.Generator().manual_seed(5)).tolist()
    padded = torch.full((6, 3, 12, 8), BLACK)
    padded[:, :, 2:10, 2:6] = images
    for i, (dy, dx) in enumerate(offsets):
        assert torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 4])
    assert out.shape == images.shape and len({tuple(o) for o in offsets}) > 1


@pytest.fixture()
def dm_without_target(synth_root):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=16, num_workers=0,
                               erasing_p=0.0, pad=0, with_target=False, masks="none")
    dm.setup("fit")
    return dm


def test_contexts_from_the_whole_target_set_need_no_target_loader(dm_without_target, tiny_crgan_ckpt):
    dm = dm_without_target
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt), ratio=0.5, within_identity=True, replace_source=True,
                                        contexts_from="dataset", pad=2)
    drawn: list[int] = []
    module, _ = fit(dm, callback, steps=3, joint_triplet=True)
    original = callback.contexts.__class__.__getitem__

    def recording(self, index):
        drawn.append(index)
        return original(self, index)

    callback.contexts.__class__.__getitem__ = recording
    try:
        for step in range(6):  # render drops the rendered source rows from the batch it is given: a copy each time
            callback.render({SOURCE: dict(module.seen[0][0][SOURCE])}, torch.Generator().manual_seed(step))
    finally:
        callback.contexts.__class__.__getitem__ = original
    target_cams = {s.camid for s in dm.target_dataset.train}
    assert len(set(drawn)) > 16 and max(drawn) < len(dm.target_dataset.train)  # more than one batch could hold
    for batch, _, _ in module.seen:
        assert TARGET not in batch
        src, syn = batch[SOURCE], batch[SYNTHETIC]
        assert set(syn[CAMID].tolist()) <= target_cams
        for pid in src[PID].unique():  # every identity is in the batch as itself and rendered
            assert (src[PID] == pid).sum() == 2 and (syn[PID] == pid).sum() == 2
        assert syn[IMAGE].shape == src[IMAGE].shape == (8, 3, 64, 32)


def test_the_generator_gets_unpadded_inputs_and_the_pad_comes_after(dm_without_target, tiny_crgan_ckpt):
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt), ratio=0.5, contexts_from="dataset", pad=3)
    callback.model = load_translator(tiny_crgan_ckpt)
    seen = []
    render = callback.model.render
    callback.model.render = lambda s, t, *m: seen.append(s.clone()) or render(s, t, *m)
    batch = next(iter(dm_without_target.train_dataloader()))[0]
    source_before = batch[SOURCE][IMAGE].clone()

    class Trainer:  # the two attributes on_train_batch_start reads
        global_rank = 0
        fit_loop = type("Loop", (), {"total_batch_idx": 0})()

    callback.contexts = ReIDImageDataset(dm_without_target.target_dataset.train, dm_without_target.train_transform,
                                         with_pid=False)  # what setup() builds
    callback.on_train_batch_start(Trainer(), None, batch, 0)
    chosen = (batch[SOURCE][PID].unsqueeze(1) == batch[SYNTHETIC][PID].unsqueeze(0)).any(1)
    assert torch.equal(seen[0], source_before[chosen])  # the renderer saw the loader's images, unshifted
    assert not torch.equal(batch[SOURCE][IMAGE], source_before)  # then every image was padded and cropped
    assert (batch[SOURCE][IMAGE] == BLACK).any() and (batch[SYNTHETIC][IMAGE] == BLACK).any()


def test_joint_triplet_is_one_triplet_over_source_and_rendered_images(dm_without_target, tiny_crgan_ckpt):
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt), ratio=0.5, within_identity=True, replace_source=True,
                                        contexts_from="dataset")
    module, trainer = fit(dm_without_target, callback, steps=1, joint_triplet=True, label_smooth=0.1)
    assert "train/joint_triplet" in trainer.callback_metrics and "train/source_triplet" not in trainer.callback_metrics
    batch, before, loss = module.seen[0]
    module.net.load_state_dict(before)
    module.net.train()
    src, syn = batch[SOURCE], batch[SYNTHETIC]
    logits, feats = module.net(torch.cat([src[IMAGE], syn[IMAGE]]))
    n = len(src[IMAGE])
    pids = torch.cat([src[PID], syn[PID]])
    expected = (cross_entropy_label_smooth(logits[:n], src[PID], 0.1)
                + cross_entropy_label_smooth(logits[n:], syn[PID], 0.1)
                + batch_hard_triplet_loss(feats, pids, 0.3))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_bad_streaming_options_are_named():
    with pytest.raises(ConfigError, match="contexts_from='everywhere'"):
        ContextRenderingCallback("x.ckpt", contexts_from="everywhere")
    with pytest.raises(ConfigError, match="pad=-1"):
        ContextRenderingCallback("x.ckpt", pad=-1)
