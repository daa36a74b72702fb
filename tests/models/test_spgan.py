"""SPGAN networks: ResnetGenerator and SiameseNet shapes, the contrastive loss on hand-computed
values, and load_spgan_generator on a real checkpoint and on the wrong files."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from crgan_lightning.errors import ConfigError, WeightsError
from crgan_lightning.losses import contrastive_loss
from crgan_lightning.models.spgan import ResnetGenerator, SiameseNet
from crgan_lightning.networks import load_spgan_generator
from crgan_lightning.modules.spgan import SPGANModule


def images(b: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


@pytest.mark.parametrize("size", [(64, 32), (128, 64)])
@pytest.mark.parametrize("upsample", ["transpose", "nearest"])
def test_generator_keeps_the_input_size_and_stays_in_minus_one_one(size, upsample):
    torch.manual_seed(0)
    gen = ResnetGenerator(base_channels=8, num_res_blocks=2, upsample=upsample)
    with torch.no_grad():
        y = gen(images(2, *size, seed=1))
    assert y.shape == (2, 3, *size)
    assert y.min() >= -1.0 and y.max() <= 1.0
    assert y.std() > 0  # not a constant image


def test_generator_layout_follows_cyclegan():
    gen = ResnetGenerator(base_channels=8, num_down=3, num_res_blocks=2)
    convs = [m for m in gen.modules() if isinstance(m, torch.nn.Conv2d) and not isinstance(m, torch.nn.ConvTranspose2d)]
    ups = [m for m in gen.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64] + [64] * 4 + [3]  # c7s1, 3 downs, 2 blocks, c7s1-3
    assert [c.kernel_size for c in (convs[0], convs[-1])] == [(7, 7), (7, 7)]
    expected_ups = [(64, 32, (2, 2)), (32, 16, (2, 2)), (16, 8, (2, 2))]
    assert [(u.in_channels, u.out_channels, u.stride) for u in ups] == expected_ups
    assert gen.size_multiple == 8
    assert gen(images(1, 64, 32, seed=0)).shape == (1, 3, 64, 32)


@pytest.mark.parametrize("size", [(66, 32), (64, 30)])
def test_size_not_divisible_by_two_to_the_num_down_is_a_config_error_naming_it(size):
    gen = ResnetGenerator(base_channels=4, num_res_blocks=1)
    with pytest.raises(ConfigError, match=f"{size[0]}x{size[1]}.*2\\*\\*num_down = 4"):
        gen(images(1, *size, seed=0))


def test_bad_generator_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="upsample='bilinear'"):
        ResnetGenerator(upsample="bilinear")
    with pytest.raises(ConfigError, match="norm='layer'"):
        ResnetGenerator(norm="layer")
    with pytest.raises(ConfigError, match="num_res_blocks=-1"):
        ResnetGenerator(num_res_blocks=-1)


def test_render_translates_the_source_and_ignores_the_target():
    torch.manual_seed(0)
    gen = ResnetGenerator(base_channels=4, num_res_blocks=1).eval()
    x_s = images(2, 64, 32, seed=1)
    with torch.no_grad():
        a = gen.render(x_s, images(2, 64, 32, seed=2))
        b = gen.render(x_s, images(2, 64, 32, seed=3))
        torch.testing.assert_close(a, gen(x_s))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("size", [(64, 32), (128, 64), (256, 128)])
def test_siamese_net_embeds_any_size_with_the_same_weights(size):
    torch.manual_seed(0)
    net = SiameseNet(base_channels=4, feat_dim=16)
    out = net(images(3, *size, seed=0))
    assert out.shape == (3, 16)
    assert torch.isfinite(out).all() and out.std() > 0
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16, 32] and len(pools) == 4
    assert net.fc.in_features == 32 * 4 * 2


def test_siamese_net_rejects_images_too_small_for_four_poolings():
    with pytest.raises(ConfigError, match="32x8.*at least 16x16"):
        SiameseNet(base_channels=4)(images(1, 32, 8, seed=0))


def test_contrastive_loss_on_hand_computed_pairs():
    x1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    x2 = torch.tensor([[3.0, 4.0], [1.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    label = torch.tensor([1, 0, 0, 1])
    # positive d=5 -> 25; negative d=1 -> (2-1)^2 = 1; negative d=5 > margin -> 0; positive d=0 -> 0
    assert contrastive_loss(x1, x2, label).item() == pytest.approx((25 + 1 + 0 + 0) / 4)
    # margin 3: the d=1 negative costs (3-1)^2 = 4
    assert contrastive_loss(x1, x2, label.bool(), margin=3.0).item() == pytest.approx((25 + 4) / 4)
    assert contrastive_loss(x1[:1], x2[:1], torch.zeros(1)).item() == 0.0  # a far negative costs nothing


def test_contrastive_loss_gradients_pull_positives_and_push_negatives():
    x1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [2.0, 2.0]], requires_grad=True)
    x2 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 2.0]])
    contrastive_loss(x1, x2, torch.tensor([1.0, 0.0, 0.0])).backward()
    grad = x1.grad
    assert grad[0, 0] < 0  # descent moves the positive's x1 towards x2 (+x)
    assert grad[1, 0] > 0  # and the negative's x1 away from x2 (-x)
    assert torch.isfinite(grad).all()  # identical negative features: finite gradient


def test_contrastive_loss_shape_errors():
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(3, 4\)"):
        contrastive_loss(torch.zeros(3, 2), torch.zeros(3, 4), torch.ones(3))
    with pytest.raises(ValueError, match=r"label has shape \(2,\); expected \(3,\)"):
        contrastive_loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(2))


def _batches(n: int):
    return [{"source": {"image": images(2, 64, 32, seed=i)}, "target": {"image": images(2, 64, 32, seed=100 + i)}}
            for i in range(n)]


@pytest.fixture(scope="module")
def spgan_ckpt(tmp_path_factory):
    """A real SPGAN checkpoint (Trainer.save_checkpoint) of tiny, non-default networks trained two batches."""
    out = tmp_path_factory.mktemp("spgan")
    pl.seed_everything(0)
    module = SPGANModule(generator=dict(base_channels=4, num_res_blocks=1, upsample="nearest"),
                         discriminator=dict(base_channels=4, n_layers=2), siamese=dict(base_channels=4, feat_dim=8),
                         pool_size=2)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=out)
    trainer.fit(module, DataLoader(_batches(2), batch_size=None))
    path = out / "spgan.ckpt"
    trainer.save_checkpoint(path)
    return path, module


@pytest.mark.parametrize("direction,name", [("s2t", "generator_st"), ("t2s", "generator_ts")])
def test_load_spgan_generator_round_trip(spgan_ckpt, direction, name):
    path, module = spgan_ckpt
    gen = load_spgan_generator(path, direction=direction)
    assert isinstance(gen, ResnetGenerator)
    assert not gen.training and not any(p.requires_grad for p in gen.parameters())
    assert any(isinstance(m, torch.nn.Upsample) for m in gen.modules())  # upsample read from the hparams' spec
    x = images(2, 64, 32, seed=7)
    trained = getattr(module, name).eval()
    with torch.no_grad():
        torch.testing.assert_close(gen(x), trained(x), rtol=0, atol=0)
        other = getattr(module, "generator_ts" if name == "generator_st" else "generator_st")
        assert not torch.allclose(gen(x), other(x))  # the other direction is a different network


def test_load_spgan_generator_errors_name_the_file(tmp_path, spgan_ckpt):
    missing = tmp_path / "none.ckpt"
    with pytest.raises(WeightsError, match=f"SPGAN checkpoint {missing} does not exist"):
        load_spgan_generator(missing)
    crgan_like = tmp_path / "crgan.ckpt"
    torch.save({"state_dict": {"generator.to_rgb.0.weight": torch.zeros(1)}, "hyper_parameters": {}}, crgan_like)
    with pytest.raises(WeightsError, match=f"{crgan_like} holds no SPGAN generator weights.*CR-GAN checkpoint"):
        load_spgan_generator(crgan_like)
    reid = tmp_path / "reid.ckpt"
    torch.save({"state_dict": {"net.fc.weight": torch.zeros(1)}}, reid)
    with pytest.raises(WeightsError, match=f"{reid} holds no SPGAN generator weights$"):
        load_spgan_generator(reid)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=f"cannot read SPGAN checkpoint {garbage}"):
        load_spgan_generator(garbage)
    with pytest.raises(ConfigError, match="direction='st'"):
        load_spgan_generator(spgan_ckpt[0], direction="st")
