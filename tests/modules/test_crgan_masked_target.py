"""The target path without the target's own person: target_input: masked."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from conftest import TINY_CRGAN

from crgan_lightning.callbacks.images import SampleGridCallback
from crgan_lightning.callbacks.rendering import ContextRenderingCallback
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.keys import CAMID, IMAGE, PID, SOURCE
from crgan_lightning.errors import ConfigError
from crgan_lightning.models.generator import DualPathGenerator
from crgan_lightning.modules.crgan import CRGANModule
from crgan_lightning.translators import load_translator


def test_a_masked_target_path_cannot_see_the_targets_person():
    torch.manual_seed(0)
    x_s, x_t = torch.rand(2, 3, 64, 32) * 2 - 1, torch.rand(2, 3, 64, 32) * 2 - 1
    m_t = torch.zeros(2, 1, 64, 32)
    m_t[:, :, 16:48, 8:24] = 1.0
    other_person = torch.where(m_t.bool(), torch.rand(2, 3, 64, 32), x_t)  # same context, another person
    masked = DualPathGenerator(base_channels=8, num_down=2, target_skips=True, target_input="masked").eval()
    plain = DualPathGenerator(base_channels=8, num_down=2, target_skips=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(masked(x_s, x_t, m_t), masked(x_s, other_person, m_t))
        assert (plain(x_s, x_t) - plain(x_s, other_person)).abs().max() > 1e-4
    assert masked.needs_target_masks and not plain.needs_target_masks
    with pytest.raises(ConfigError, match="target_input='masked'"):
        masked(x_s, x_t)
    with pytest.raises(ConfigError, match="target_input='cropped'"):
        DualPathGenerator(target_input="cropped")


@pytest.fixture(scope="module")
def masked_ckpt(synth_root, tmp_path_factory):
    """A tiny CR-GAN with a masked target path, trained for two batches (sample grids on)."""
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, num_workers=0, pad=0)
    generator = {**TINY_CRGAN["generator"], "target_input": "masked", "target_skips": True}
    module = CRGANModule(num_source_pids=12, num_target_cameras=8, **{**TINY_CRGAN, "generator": generator})
    out = tmp_path_factory.mktemp("masked")
    grids = SampleGridCallback(every_n_steps=1, num_sources=2, num_contexts=2)
    trainer = pl.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
                         callbacks=[grids])
    trainer.fit(module, datamodule=dm)
    assert grids.saved and all(p.is_file() for p in grids.saved)  # the grid renders with the target masks
    path = out / "crgan.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_the_translator_knows_it_needs_target_masks(masked_ckpt):
    translator = load_translator(masked_ckpt)
    assert translator.needs_target_masks and not translator.needs_masks
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    with pytest.raises(ConfigError, match="give the target person masks"):
        translator.render(x, x)
    assert translator.render(x, x, None, torch.ones(2, 1, 64, 32)).shape == (2, 3, 64, 32)


def test_streaming_reads_the_context_masks_or_says_what_is_missing(masked_ckpt, synth_root):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, num_workers=0, pad=0,
                               masks="none")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))[0]
    callback = ContextRenderingCallback(str(masked_ckpt), ratio=0.5)
    callback.model = load_translator(masked_ckpt)
    with pytest.raises(ConfigError, match="set data.masks=auto"):
        callback.render(dict(batch), torch.Generator().manual_seed(0))

    class Trainer:
        datamodule = dm

    callback = ContextRenderingCallback(str(masked_ckpt), ratio=0.5, contexts_from="dataset")
    callback.setup(Trainer(), pl.LightningModule(), "fit")
    assert callback.contexts.mask_provider is not None  # the synthetic benchmark's own masks
    out = callback.render({SOURCE: dict(batch[SOURCE])}, torch.Generator().manual_seed(0))
    assert out[IMAGE].shape == (4, 3, 64, 32) and len(out[PID]) == len(out[CAMID]) == 4
