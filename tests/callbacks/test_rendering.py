"""ContextRenderingCallback: synthetic images reach training_step, with the right labels, no gradient."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from conftest import shipped_config

from ddp_helpers import two_process_fit

from crgan_lightning.callbacks.rendering import ContextRenderingCallback, drop_rows
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.keys import CAMID, IMAGE, PID, SOURCE, SYNTHETIC, TARGET
from crgan_lightning.errors import ConfigError, WeightsError
from crgan_lightning.networks import load_generator
from crgan_lightning.translators import load_translator
from crgan_lightning.modules.reid import ReIDModule

REPO = Path(__file__).resolve().parents[2]


class Recorder(ReIDModule):
    """A re-id module that keeps what its training_step received."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen: list[dict] = []

    def training_step(self, batch, batch_idx):
        self.seen.append({k: {kk: vv.detach().clone() for kk, vv in v.items()} for k, v in batch.items()})
        return super().training_step(batch, batch_idx)


@pytest.fixture()
def dm(synth_root):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, target_batch_size=4,
                               num_workers=0, erasing_p=0.0)
    dm.setup("fit")
    return dm


def test_rendered_images_reach_training_step_with_source_pids_and_target_cameras(dm, tiny_crgan_ckpt):
    pl.seed_everything(0)
    module = Recorder(num_source_pids=dm.num_source_pids, num_query=dm.num_query,
                      net={"backbone": "resnet10t", "pretrained": False})
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt), ratio=1.0, contexts_per_image=2)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, limit_val_batches=0, callbacks=[callback])
    trainer.fit(module, datamodule=dm)
    assert len(module.seen) == 2
    generator = load_generator(tiny_crgan_ckpt)
    for batch in module.seen:
        syn, src, tgt = batch[SYNTHETIC], batch[SOURCE], batch[TARGET]
        assert syn[IMAGE].shape == (16, 3, 64, 32)  # 8 sources x 2 contexts
        assert syn[IMAGE].min() >= -1 and syn[IMAGE].max() <= 1
        assert sorted(syn[PID].tolist()) == sorted(src[PID].repeat_interleave(2).tolist())
        assert set(syn[CAMID].tolist()) <= set(tgt[CAMID].tolist())
        # each synthetic image is G(one source of the batch, one target of the batch)
        i = 0
        s = [k for k in range(8) if src[PID][k] == syn[PID][i]]
        candidates = [generator(src[IMAGE][a:a + 1], tgt[IMAGE][t:t + 1]) for a in s for t in range(4)]
        assert any(torch.allclose(c[0], syn[IMAGE][i], atol=1e-5) for c in candidates)
    assert all(not p.requires_grad for p in callback.model.parameters())
    assert not any(n.startswith("generator") for n in module.state_dict())  # G is not part of the re-id model


def test_ratio_and_reproducible_draws(dm, tiny_crgan_ckpt):
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt), ratio=0.5, contexts_per_image=1, seed=3)
    callback.model = load_translator(tiny_crgan_ckpt)
    batch = next(iter(dm.train_dataloader()))[0]
    a = callback.render(batch, torch.Generator().manual_seed(1))
    b = callback.render(batch, torch.Generator().manual_seed(1))
    assert a[IMAGE].shape[0] == 4 and torch.equal(a[IMAGE], b[IMAGE]) and torch.equal(a[PID], b[PID])
    # whole identities: the batch holds 2 identities x 4 images, half of them is 1 identity, all 4 images
    src_pids = batch[SOURCE][PID]
    assert len(a[PID].unique()) == 1 and (src_pids == a[PID][0]).sum() == 4
    picks = {tuple(callback.render(batch, torch.Generator().manual_seed(s))[PID].unique().tolist()) for s in range(20)}
    assert picks == {(p,) for p in src_pids.unique().tolist()}  # either identity can be drawn


def test_ratio_keeps_whole_identities_of_a_larger_batch(tiny_crgan_ckpt):
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt), ratio=0.5)
    pids = torch.tensor([7, 7, 7, 7, 2, 2, 2, 2, 9, 9, 9, 9, 4, 4, 4, 4])
    chosen = callback.choose(pids, torch.Generator().manual_seed(0))
    assert len(chosen) == 8 and torch.equal(chosen, chosen.sort().values)
    kept = pids[chosen].unique()
    assert len(kept) == 2 and all((pids[chosen] == k).sum() == 4 for k in kept)
    callback.ratio = 0.1  # rounds to no identity: one is still rendered
    assert len(pids[callback.choose(pids, torch.Generator().manual_seed(0))].unique()) == 1


def test_replace_source_trains_on_as_many_images_as_a_plain_step(synth_root, tiny_crgan_ckpt):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=16, target_batch_size=4,
                               num_workers=0, erasing_p=0.0)
    pl.seed_everything(0)
    module = Recorder(num_source_pids=dm.num_source_pids, num_query=dm.num_query,
                      net={"backbone": "resnet10t", "pretrained": False})
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt), ratio=0.5, replace_source=True)
    trainer = pl.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, limit_val_batches=0, callbacks=[callback])
    trainer.fit(module, datamodule=dm)
    assert len(module.seen) == 3
    for batch in module.seen:
        src, syn = batch[SOURCE], batch[SYNTHETIC]
        assert len(src[IMAGE]) == len(src[PID]) == len(src[CAMID]) == 8  # 4 identities x 4 images left ...
        assert syn[IMAGE].shape[0] == 8                                  # ... and 2 x 4 rendered in their place
        src_ids, syn_ids = set(src[PID].tolist()), set(syn[PID].tolist())
        assert len(src_ids) == len(syn_ids) == 2 and not src_ids & syn_ids
        assert all((src[PID] == p).sum() == 4 for p in src_ids)  # still P x K
    with pytest.raises(ConfigError, match="replace_source=true with ratio=1"):
        ContextRenderingCallback("x.ckpt", ratio=1.0, replace_source=True)


def test_drop_rows_removes_the_rows_of_tensors_and_lists_alike():
    part = {IMAGE: torch.arange(5).float().view(5, 1), PID: torch.tensor([1, 1, 2, 2, 3]),
            "path": ["a", "b", "c", "d", "e"], "scale": torch.tensor(2.0)}
    kept = drop_rows(part, torch.tensor([1, 3]))
    assert kept[IMAGE].flatten().tolist() == [0.0, 2.0, 4.0] and kept[PID].tolist() == [1, 2, 3]
    assert kept["path"] == ["a", "c", "e"] and kept["scale"] == 2.0
    assert len(part[IMAGE]) == 5  # the input is left as it was


def test_bad_arguments_and_checkpoints(tmp_path, dm, tiny_crgan_ckpt):
    with pytest.raises(ConfigError, match="ratio=0"):
        ContextRenderingCallback("x.ckpt", ratio=0)
    with pytest.raises(ConfigError, match="contexts_per_image=0"):
        ContextRenderingCallback("x.ckpt", contexts_per_image=0)
    callback = ContextRenderingCallback(str(tmp_path / "missing.ckpt"))
    with pytest.raises(WeightsError, match="missing.ckpt.*no such checkpoint"):
        callback.setup(None, ReIDModule(num_source_pids=3, net={"backbone": "resnet10t", "pretrained": False}), "fit")
    callback = ContextRenderingCallback(str(tiny_crgan_ckpt))
    callback.model = load_translator(tiny_crgan_ckpt)
    batch = next(iter(dm.train_dataloader()))[0]
    del batch[TARGET]
    with pytest.raises(ConfigError, match="with_target=true"):
        callback.render(batch, torch.Generator())
    # resuming a re-id run with another translator than the one it was trained with is refused
    callback.fingerprint = "a" * 64
    callback.load_state_dict({"translator": "first.ckpt", "fingerprint": "a" * 64})  # the same one: fine
    with pytest.raises(ConfigError, match="trained with the translator first.ckpt"):
        callback.load_state_dict({"translator": "first.ckpt", "fingerprint": "b" * 64})


@pytest.mark.slow
def test_two_process_ddp_streams_synthetic_images_on_both_ranks(tmp_path, synth_root, tiny_crgan_ckpt):
    cfg = shipped_config("reid_crgan")  # the shipped streaming config, with its invariance options
    run = tmp_path / "run"
    cfg["trainer"].update(default_root_dir=str(run), max_epochs=1, limit_train_batches=2, limit_val_batches=0,
                          enable_progress_bar=False)
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(run)
    cfg["checkpoint"]["dirpath"] = str(run / "checkpoints")
    cfg["rendering"]["init_args"]["translator"] = str(tiny_crgan_ckpt)
    cfg["model"]["init_args"]["net"]["init_args"]["backbone"] = "resnet10t"
    cfg["data"].update(root=str(synth_root), height=64, width=32, batch_size=8, num_workers=0)
    path = tmp_path / "reid_crgan.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ranks = two_process_fit(path, tmp_path)
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["batches"] == 2
        assert rank["keys"] == [SOURCE, SYNTHETIC, TARGET]  # the synthetic part reached training on this rank
    assert ranks[0]["end"] == ranks[1]["end"] != ranks[0]["start"]


def test_a_loaded_generator_renders_a_grid_directly(tiny_crgan_ckpt):
    from crgan_lightning.callbacks.images import render_grid, sample_grid

    generator = load_generator(tiny_crgan_ckpt)
    sources, targets = torch.rand(2, 3, 64, 32) * 2 - 1, torch.rand(3, 3, 64, 32) * 2 - 1
    grid = render_grid(generator, sources, targets)
    assert grid.shape == (2, 3, 3, 64, 32)
    torch.testing.assert_close(grid[1, 2], generator(sources[1:2], targets[2:3])[0])
    assert sample_grid(sources, targets, grid).shape == (3 * 66, 4 * 34, 3)


def test_sample_grid_sources_are_different_people():
    from crgan_lightning.callbacks.images import distinct_identities

    pids = torch.tensor([5, 5, 5, 5, 2, 2, 2, 2, 9, 9, 9, 9])
    assert distinct_identities(pids, 4).tolist() == [0, 4, 8]
    assert distinct_identities(pids, 2).tolist() == [0, 4]
