"""DualPathGenerator: shapes and range, size errors, both encoders trained, both inputs used."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crgan_lightning.errors import ConfigError
from crgan_lightning.models.generator import DualPathGenerator, icnr_, init_weights


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
                                    dict(norm="none", use_dropout=True), dict(num_down=5, num_res_blocks=0),
                                    dict(space_to_depth=2, num_down=3, outer_kernel=3, padding="zeros"),
                                    dict(space_to_depth=4, num_down=2, outer_kernel=1, target_skips=True),
                                    dict(upsample="bilinear"), dict(upsample="pixelshuffle", norm="batch")])
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
    "kwargs, message",
    [(dict(norm="group"), "norm='group'"), (dict(fuse="film"), "fuse='film'"), (dict(num_down=0), "num_down=0"),
     (dict(base_channels=0), "base_channels=0"), (dict(space_to_depth=0), "space_to_depth=0"),
     (dict(space_to_depth=True), "space_to_depth=True"), (dict(outer_kernel=4), "outer_kernel=4.*odd"),
     (dict(padding="circular"), "padding='circular'")],
)
def test_bad_constructor_values_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DualPathGenerator(**kwargs)


def test_space_to_depth_runs_every_level_at_a_lower_resolution_and_renders_full_size():
    gen = small_generator(space_to_depth=2, num_down=3, outer_kernel=3, padding="zeros")
    assert gen.size_multiple == 16 and gen.widths == [8, 16, 32, 32]
    seen = {}
    gen.source_encoder.stem.register_forward_hook(lambda m, i, o: seen.update(stem_in=i[0].shape))
    gen.to_rgb[0].register_forward_hook(lambda m, i, o: seen.update(rgb=o.shape))
    x_s, x_t = images(2, 128, 64, seed=1), images(2, 128, 64, seed=2)
    with torch.no_grad():
        x_g = gen(x_s, x_t)
    assert seen["stem_in"] == (2, 12, 64, 32)  # 2x2 blocks of RGB pixels as 12 channels
    assert seen["rgb"] == (2, 12, 64, 32)      # rearranged into 3 x 128 x 64 by the pixel shuffle
    assert x_g.shape == (2, 3, 128, 64) and x_g.min() >= -1 and x_g.max() <= 1
    # ICNR: each 2x2 block starts uniform (no checkerboard) ...
    torch.testing.assert_close(x_g[..., 0::2, 0::2], x_g[..., 1::2, 1::2])
    # ... but its four pixels have weights of their own, which training can set apart
    rgb = gen.to_rgb[0]
    with torch.no_grad():
        rgb.weight.add_(torch.randn_like(rgb.weight) * 0.02)
        apart = gen(x_s, x_t)
        rgb.weight.copy_(rgb.weight[::4].repeat_interleave(4, dim=0))
    assert (apart[..., 0::2, 0::2] - apart[..., 1::2, 1::2]).abs().mean() > 1e-3
    # every pixel phase of the source reaches the output (nothing is dropped by the rearrangement)
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        poked = x_s.clone()
        poked[:, :, 40 + dy, 20 + dx] += 1.0
        with torch.no_grad():
            assert (gen(poked, x_t) - x_g).abs().max() > 1e-4, (dy, dx)
    convs = [m for m in gen.modules() if isinstance(m, nn.Conv2d) and m.kernel_size[0] in (3, 5, 7)]
    assert convs and all(m.padding_mode == "zeros" for m in convs)
    assert gen.source_encoder.stem[0].kernel_size == (3, 3) and gen.to_rgb[0].kernel_size == (3, 3)


def test_space_to_depth_counts_in_the_size_checks():
    gen = small_generator(space_to_depth=2, num_down=4)
    with pytest.raises(ConfigError, match="64x32.*num_down=4, space_to_depth=2"):
        gen(images(1, 64, 32, 0), images(1, 64, 32, 1))
    with pytest.raises(ConfigError, match="96x48.*space_to_depth \\* 2\\*\\*num_down = 32"):
        gen(images(1, 96, 48, 0), images(1, 96, 48, 1))


@pytest.mark.parametrize("target_skips, space_to_depth", [(False, 1), (True, 1), (True, 2)])
def test_gradients_reach_every_conv_of_both_encoders(target_skips, space_to_depth):
    gen = small_generator(target_skips=target_skips, space_to_depth=space_to_depth, num_down=4 // space_to_depth)
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


def test_icnr_starts_the_pixel_shuffle_as_a_nearest_upsampling_without_checkerboard():
    torch.manual_seed(0)
    conv = icnr_(nn.Conv2d(8, 12, 3, padding=1), 2)
    x = torch.randn(1, 8, 6, 4)
    out = nn.PixelShuffle(2)(conv(x))
    expected = torch.nn.functional.interpolate(conv(x)[:, ::4], scale_factor=2, mode="nearest")
    torch.testing.assert_close(out, expected)
    assert conv.weight.std() > 0.01  # still random across colours and input channels
    with pytest.raises(ConfigError, match="divisible by 4"):
        icnr_(nn.Conv2d(8, 6, 3), 2)
    # the space-to-depth generator's output conv starts that way
    gen = small_generator(space_to_depth=2, num_down=3)
    w = gen.to_rgb[0].weight
    torch.testing.assert_close(w, w[::4].repeat_interleave(4, dim=0))


@pytest.mark.parametrize("upsample", ["nearest", "bilinear", "pixelshuffle"])
def test_each_upsampling_choice_doubles_every_decoder_level_as_named(upsample):
    gen = small_generator(upsample=upsample, num_down=2)
    up = gen.ups[0].up
    x = torch.randn(1, up[0].in_channels if upsample == "pixelshuffle" else gen.widths[-1], 8, 4)
    with torch.no_grad():
        out = up[:2](x) if upsample == "pixelshuffle" else up[0](x)
    assert out.shape[-2:] == (16, 8)
    blocks = out.unfold(2, 2, 2).unfold(3, 2, 2)  # (.., 8, 4, 2, 2): the 2x2 block of each input pixel
    spread = (blocks - blocks[..., :1, :1]).abs().amax()
    if upsample == "bilinear":
        assert spread > 1e-3  # interpolated, not copied
    else:  # nearest copies; pixel shuffle starts as a copy too (ICNR), so no checkerboard at initialisation
        assert spread < 1e-6
    assert (gen.ups[0].upsample, gen.init_args["upsample"]) == (upsample, upsample)
