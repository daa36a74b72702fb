"""The translators (CR-GAN, SPGAN, cut-and-paste, cut-and-fill) behind one interface, and where they plug in."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from crgan_lightning.callbacks.rendering import ContextRenderingCallback
from crgan_lightning.app.cli import main
from crgan_lightning.data import load_reid_dataset
from crgan_lightning.data.datamodule import CrossDomainDataModule
from crgan_lightning.data.images import read_image
from crgan_lightning.data.keys import IMAGE, MASK, PID, SOURCE, SYNTHETIC, TARGET
from crgan_lightning.data.masks import build_mask_provider
from crgan_lightning.errors import ConfigError, WeightsError
from crgan_lightning.networks import load_generator
from crgan_lightning.modules.reid import ReIDModule
from crgan_lightning.modules.spgan import SPGANModule
from crgan_lightning.translators import (
    CRGANTranslator,
    CutAndFillTranslator,
    CutAndPasteTranslator,
    SPGANTranslator,
    load_translator,
    translator_fingerprint,
)

TINY_SPGAN = dict(generator=dict(base_channels=8, num_res_blocks=1), discriminator=dict(base_channels=8, n_layers=2),
                  siamese=dict(base_channels=8, feat_dim=16))


@pytest.fixture(scope="module")
def spgan_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    module = SPGANModule(**TINY_SPGAN)
    path = tmp_path_factory.mktemp("spgan") / "spgan.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture()
def batch():
    g = torch.Generator().manual_seed(0)
    x_s = torch.rand(4, 3, 64, 32, generator=g) * 2 - 1
    x_t = torch.rand(4, 3, 64, 32, generator=g) * 2 - 1
    m_s = (torch.rand(4, 1, 64, 32, generator=g) > 0.5).float()
    return x_s, x_t, m_s


@pytest.mark.parametrize("kind", ["crgan", "spgan", "cut_and_paste", "cut_and_fill"])
def test_every_translator_renders_through_the_same_call(kind, batch, tiny_crgan_ckpt, spgan_ckpt):
    spec = {"crgan": tiny_crgan_ckpt, "spgan": spgan_ckpt, "cut_and_paste": "cut_and_paste",
            "cut_and_fill": "cut_and_fill"}[kind]
    translator = load_translator(spec)
    expected_type = {"crgan": CRGANTranslator, "spgan": SPGANTranslator, "cut_and_paste": CutAndPasteTranslator,
                     "cut_and_fill": CutAndFillTranslator}
    assert type(translator) is expected_type[kind]
    x_s, x_t, m_s = batch
    m_t = torch.flip(m_s, dims=[0])
    out = translator.render(x_s, x_t, m_s, m_t)
    assert out.shape == x_s.shape and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1 and not out.requires_grad
    assert not any(p.requires_grad for p in translator.parameters()) and not translator.training
    assert torch.equal(out, translator(x_s, x_t, m_s, m_t))


def test_crgan_translator_is_the_checkpoints_generator(batch, tiny_crgan_ckpt):
    x_s, x_t, m_s = batch
    out = load_translator(tiny_crgan_ckpt).render(x_s, x_t, m_s)
    assert torch.allclose(out, load_generator(tiny_crgan_ckpt)(x_s, x_t), atol=1e-6)
    other = load_translator(tiny_crgan_ckpt).render(x_s, x_t.flip(0), m_s)
    assert not torch.allclose(out, other)  # the context matters


def test_spgan_translator_translates_the_source_alone(batch, spgan_ckpt):
    x_s, x_t, m_s = batch
    translator = load_translator(spgan_ckpt)
    module = SPGANModule(**TINY_SPGAN)
    module.load_state_dict(torch.load(spgan_ckpt, weights_only=True)["state_dict"])
    with torch.no_grad():
        expected = module.eval().generator_st(x_s)
    out = translator.render(x_s, x_t, m_s)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(out, translator.render(x_s, x_t.flip(0)))  # the target image is not used


def test_cut_and_paste_composites_the_source_person_on_the_target(batch):
    x_s, x_t, m_s = batch
    out = CutAndPasteTranslator().render(x_s, x_t, m_s)
    person, background = m_s.bool().expand_as(x_s), ~m_s.bool().expand_as(x_s)
    assert torch.equal(out[person], x_s[person]) and torch.equal(out[background], x_t[background])
    soft = torch.full_like(m_s, 0.25)
    assert torch.allclose(CutAndPasteTranslator().render(x_s, x_t, soft), 0.25 * x_s + 0.75 * x_t)
    with pytest.raises(ConfigError, match="needs the source person masks"):
        CutAndPasteTranslator().render(x_s, x_t)
    with pytest.raises(ConfigError, match="expected \\(B, 1, H, W\\)"):
        CutAndPasteTranslator().render(x_s, x_t, m_s[:, :, :32])


def test_cut_and_fill_removes_the_targets_person_before_pasting(batch):
    """Where the target's person stood and the source person does not, the surroundings filled in;
    elsewhere the target's pixels; on the source person, the source's."""
    from crgan_lightning.models.compositor import fill_from_surroundings

    x_s, x_t, m_s = batch
    m_t = torch.zeros_like(m_s)
    m_t[:, :, 16:48, 8:24] = 1.0
    translator = load_translator("cut-and-fill")
    assert type(translator) is CutAndFillTranslator and translator.needs_masks and translator.needs_target_masks
    out = translator.render(x_s, x_t, m_s, m_t)
    person = m_s.bool().expand_as(x_s)
    hole = ((m_t == 1) & (m_s == 0)).expand_as(x_s)
    kept = ((m_t == 0) & (m_s == 0)).expand_as(x_s)
    assert torch.equal(out[person], x_s[person]) and torch.equal(out[kept], x_t[kept])
    fill = fill_from_surroundings(x_t, 1 - m_t)
    assert torch.allclose(out[hole], fill[hole]) and not torch.allclose(out[hole], x_t[hole], atol=0.1)
    with pytest.raises(ConfigError, match="cut-and-fill needs the target person masks"):
        translator.render(x_s, x_t, m_s)
    with pytest.raises(ConfigError, match="cut-and-fill needs the source person masks"):
        translator.render(x_s, x_t, None, m_t)
    with pytest.raises(ConfigError, match="target masks of shape \\(1, 1, 64, 32\\)"):  # one mask for every image
        translator.render(x_s, x_t, m_s, m_t[:1])
    half = translator.render(x_s.half(), x_t.half(), m_s.half(), m_t.half())  # 16-true streaming batches
    assert half.dtype == torch.float16 and torch.allclose(half.float(), out, atol=2e-2)


def test_cut_and_fill_is_the_compositing_generator_before_training(batch):
    """The compositor's heads start at zero: its first rendering is cut-and-fill, up to the matte
    floor that keeps the given mask's logit finite (a 1 % blend at a hard mask's pixels)."""
    from crgan_lightning.models.compositor import CompositingGenerator

    torch.manual_seed(0)
    generator = CompositingGenerator(base_channels=8, num_down=3, max_channels=32, num_res_blocks=1).eval()
    x_s, x_t, m_s = batch
    m_t = torch.zeros_like(m_s)
    m_t[:, :, 10:50, 6:26] = 1.0
    with torch.no_grad():
        composited = generator(x_s, x_t, m_t, m_s)
    expected = CutAndFillTranslator().render(x_s, x_t, m_s, m_t)
    floor = generator.matte_floor
    assert (composited - expected).abs().max() <= 2 * floor + 1e-5  # floor x |x_s - b|, |x_s - b| <= 2
    assert (composited - expected).abs().max() > 0  # the floor is there: not the same code path by accident


def test_load_translator_names_what_is_wrong(tmp_path, tiny_crgan_ckpt, spgan_ckpt):
    with pytest.raises(WeightsError, match="missing.ckpt.*no such checkpoint.*cut_and_paste.*cut_and_fill"):
        load_translator(tmp_path / "missing.ckpt")
    reid = ReIDModule(num_source_pids=3, net={"backbone": "resnet10t", "pretrained": False})
    torch.save({"state_dict": reid.state_dict(), "hyper_parameters": dict(reid.hparams)}, tmp_path / "reid.ckpt")
    with pytest.raises(WeightsError, match="reid.ckpt holds neither CR-GAN nor SPGAN"):
        load_translator(tmp_path / "reid.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read checkpoint .*junk.ckpt"):
        load_translator(tmp_path / "junk.ckpt")
    assert isinstance(load_translator("cut-and-paste"), CutAndPasteTranslator)


def test_fingerprint_follows_the_weights_not_the_file(tmp_path, tiny_crgan_ckpt, spgan_ckpt):
    crgan = translator_fingerprint(load_translator(tiny_crgan_ckpt))
    assert crgan != translator_fingerprint(load_translator(spgan_ckpt))
    assert translator_fingerprint(load_translator("cut_and_paste")) == translator_fingerprint(CutAndPasteTranslator())
    # a resumed streaming run must tell the two weightless translators apart
    assert translator_fingerprint(load_translator("cut_and_fill")) != translator_fingerprint(CutAndPasteTranslator())
    ckpt = torch.load(tiny_crgan_ckpt, weights_only=False)
    ckpt["global_step"] = 10**6  # saved again, other bytes, same weights
    torch.save(ckpt, tmp_path / "again.ckpt")
    assert translator_fingerprint(load_translator(tmp_path / "again.ckpt")) == crgan
    name = next(k for k in ckpt["state_dict"] if k.startswith("generator."))
    ckpt["state_dict"][name] = ckpt["state_dict"][name] + 1e-3  # trained a little further
    torch.save(ckpt, tmp_path / "other.ckpt")
    assert translator_fingerprint(load_translator(tmp_path / "other.ckpt")) != crgan


def test_streaming_cut_and_paste_uses_the_batch_masks(synth_root):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, target_batch_size=4,
                               num_workers=0, erasing_p=0.0, masks="auto")
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))[0]
    callback = ContextRenderingCallback("cut_and_paste", ratio=1.0)
    callback.model = load_translator("cut_and_paste")
    syn = callback.render(batch, torch.Generator().manual_seed(0))
    src, tgt = batch[SOURCE], batch[TARGET]
    assert torch.equal(syn[PID], src[PID])
    m = src[MASK]
    person = (m == 1).expand_as(src[IMAGE])
    assert torch.equal(syn[IMAGE][person], src[IMAGE][person])  # the person pixels are the source's
    matches = [[torch.allclose(syn[IMAGE][i], m[i] * src[IMAGE][i] + (1 - m[i]) * tgt[IMAGE][t], atol=1e-6)
                for t in range(4)] for i in range(8)]
    assert all(any(row) for row in matches)  # each is pasted on one of the batch's target images
    del src[MASK]
    with pytest.raises(ConfigError, match="set data.masks=auto"):
        callback.render(batch, torch.Generator())


def test_streaming_spgan_through_a_trainer(synth_root, spgan_ckpt):
    dm = CrossDomainDataModule(root=str(synth_root), height=64, width=32, batch_size=8, target_batch_size=4,
                               num_workers=0, erasing_p=0.0)
    seen = []

    class Recorder(ReIDModule):
        def training_step(self, batch, batch_idx):
            seen.append(batch[SYNTHETIC][IMAGE].clone())
            return super().training_step(batch, batch_idx)

    module = Recorder(num_source_pids=12, num_query=1, net={"backbone": "resnet10t", "pretrained": False})
    callback = ContextRenderingCallback(str(spgan_ckpt), ratio=0.5)
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, limit_val_batches=0, callbacks=[callback])
    trainer.fit(module, datamodule=dm)
    assert len(seen) == 1 and seen[0].shape == (4, 3, 64, 32)
    assert callback.state_dict()["fingerprint"] == translator_fingerprint(load_translator(spgan_ckpt))


def test_export_with_cut_and_paste_writes_pasted_images(tmp_path, synth_root, capsys):
    out = tmp_path / "pasted"
    assert main(["render", "--ckpt", "cut_and_paste", "--source", "synth_a", "--target", "synth_b",
                 "--root", str(synth_root), "--out", str(out), "--height", "128", "--width", "64", "--quiet"]) == 0
    ds = load_reid_dataset("rendered", out)
    src = load_reid_dataset("synth_a", synth_root)
    assert len(ds.train) == len(src.train)
    first = sorted(ds.train, key=lambda s: s.path)[0]
    index = int(first.path.rsplit("_", 2)[-2])
    original = read_image(src.train[index].path).astype(np.float32)
    pasted = read_image(first.path).astype(np.float32)
    mask = build_mask_provider("folder", src)(src.train[index].path, 128, 64)
    on_person = mask > 0.99
    assert np.abs(pasted[on_person] - original[on_person]).mean() < 6  # JPEG round trips, same pixels
    assert np.abs(pasted[~on_person] - original[~on_person]).mean() > 10  # another background
    assert "rendered" in capsys.readouterr().out
