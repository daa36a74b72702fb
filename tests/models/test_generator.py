"""DualPathGenerator: shapes and range, size errors, both encoders trained, both inputs used."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crgan_lightning.errors import ConfigError
from crgan_lightning.models.generator import DualPathGenerator, init_weights


def small_generator(**kwargs) -> DualPathGenerator:
    torch.manual_seed(0)
    defaults = dict(base_channels=8, max_channels=32, num_res_blocks=1)
    defaults.update(kwargs)
    return DualPathGenerator(**defaults)


def images(b: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1


@pytest.mark.parametrize("size", [(128, 64), (256, 128)])
def test_output_has_the_input_size_and_stays_in_minus_one_one(size):
    gen = small_generator()
    x_s, x_t = images(2, *size, seed=1), images(2, *size, seed=2)
    with torch.no_grad():
        x_g = gen(x_s, x_t)
    assert x_g.shape == (2, 3, *size)
    assert x_g.min() >= -1.0 and x_g.max() <= 1.0
    assert x_g.std() > 0  # not a constant image


@pytest.mark.parametrize("kwargs", [dict(target_skips=True), dict(fuse="add"), dict(norm="batch"),
                                    dict(norm="none", use_dropout=True), dict(num_down=5, num_res_blocks=0)])
def test_variants_keep_the_output_shape(kwargs):
    gen = small_generator(**kwargs)
    x = images(2, 128, 64, seed=3)
    assert gen(x, x.flip(0)).shape == (2, 3, 128, 64)


def test_widths_double_per_level_and_are_capped():
    gen = DualPathGenerator(base_channels=32, num_down=4, max_channels=256)
    assert gen.widths == [32, 64, 128, 256, 256]
    assert gen.size_multiple == 16


@pytest.mark.parametrize("size", [(130, 64), (128, 60)])
def test_size_not_divisible_by_two_to_the_num_down_is_a_config_error_naming_it(size):
    gen = small_generator()
    x = images(1, *size, seed=0)
    with pytest.raises(ConfigError, match=f"{size[0]}x{size[1]}.*16"):
        gen(x, x)


def test_too_small_bottleneck_and_mismatched_inputs_are_config_errors():
    gen = small_generator(num_down=4)
    with pytest.raises(ConfigError, match="16x16.*1x1 bottleneck"):
        gen(images(1, 16, 16, 0), images(1, 16, 16, 1))
    with pytest.raises(ConfigError, match="differ in shape"):
        gen(images(1, 128, 64, 0), images(1, 64, 32, 1))
    with pytest.raises(ConfigError, match=r"expected \(B, 3, H, W\)"):
        gen(torch.zeros(1, 1, 128, 64), torch.zeros(1, 1, 128, 64))


@pytest.mark.parametrize(
    "kwargs", [dict(norm="group"), dict(fuse="film"), dict(num_down=0), dict(base_channels=0)]
)
def test_bad_constructor_values_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        DualPathGenerator(**kwargs)


@pytest.mark.parametrize("target_skips", [False, True])
def test_gradients_reach_every_conv_of_both_encoders(target_skips):
    gen = small_generator(target_skips=target_skips)
    gen(images(2, 64, 32, 1), images(2, 64, 32, 2)).mean().backward()
    for path in (gen.source_encoder, gen.target_encoder):
        convs = [m for m in path.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 1 + gen.num_down
        for conv in convs:
            assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    for name, p in gen.named_parameters():
        assert p.grad is not None, name


def test_output_depends_on_both_the_source_and_the_target_image():
    gen = small_generator().eval()
    x_s, x_t = images(2, 64, 32, 1), images(2, 64, 32, 2)
    with torch.no_grad():
        base = gen(x_s, x_t)
        other_target = gen(x_s, images(2, 64, 32, 3))
        other_source = gen(images(2, 64, 32, 4), x_t)
        again = gen(x_s, x_t)
    torch.testing.assert_close(again, base)  # deterministic
    assert (other_target - base).abs().max() > 1e-3
    assert (other_source - base).abs().max() > 1e-3


def test_init_weights_follows_pix2pix():
    torch.manual_seed(0)
    net = init_weights(nn.Sequential(nn.Conv2d(64, 64, 3), nn.BatchNorm2d(64), nn.Linear(64, 64)), gain=0.02)
    conv, bn, lin = net
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert abs(conv.weight.mean().item()) < 0.002 and conv.bias.abs().sum() == 0
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01) and bn.bias.abs().sum() == 0
    assert lin.weight.std().item() == pytest.approx(0.02, rel=0.05)
