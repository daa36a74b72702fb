"""CompositingGenerator: shapes, cut-and-paste at initialisation, gradients to every head, the
mask-completion path, the tone transform, the target's person removed, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from crgan_lightning.errors import ConfigError
from crgan_lightning.models.compositor import CompositingGenerator, apply_tone, fill_from_surroundings

H, W = 64, 32


def small(**kwargs) -> CompositingGenerator:
    torch.manual_seed(0)
    args = dict(base_channels=8, num_down=3, max_channels=32, num_res_blocks=1, target_skips=True)
    return CompositingGenerator(**{**args, **kwargs})


def scene(b: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random source and target images with a person box in each (the boxes overlap in part)."""
    g = torch.Generator().manual_seed(seed)
    x_s, x_t = torch.rand(b, 3, H, W, generator=g) * 2 - 1, torch.rand(b, 3, H, W, generator=g) * 2 - 1
    m_s, m_t = torch.zeros(b, 1, H, W), torch.zeros(b, 1, H, W)
    m_s[:, :, 8:56, 8:24] = 1.0
    m_t[:, :, 16:60, 2:14] = 1.0
    return x_s, x_t, m_s, m_t


@pytest.mark.parametrize("kwargs", [dict(), dict(tone="channel", shading=False), dict(tone="none"),
                                    dict(remove_target_person=False, target_input="image"),
                                    dict(space_to_depth=2, num_down=2, outer_kernel=3, upsample="pixelshuffle"),
                                    dict(upsample="bilinear", norm="batch")])
def test_compositor_renders_images_of_the_input_size_in_range(kwargs):
    gen = small(**kwargs)
    x_s, x_t, m_s, m_t = scene()
    parts = gen.layers(x_s, x_t, m_t, m_s)
    assert parts["output"].shape == (2, 3, H, W) and parts["matte"].shape == (2, 1, H, W)
    assert parts["matrix"].shape == (2, 3, 3) and parts["bias"].shape == (2, 3)
    assert parts["output"].min() >= -1 and parts["output"].max() <= 1
    torch.testing.assert_close(gen(x_s, x_t, m_t, m_s), parts["output"])


def test_at_initialisation_the_output_is_cut_and_paste_onto_the_emptied_target():
    gen = small().eval()
    x_s, x_t, m_s, m_t = scene()
    with torch.no_grad():
        parts = gen.layers(x_s, x_t, m_t, m_s)
    cut_and_paste = m_s * x_s + (1 - m_s) * x_t
    away_from_target_person = (1 - m_t).expand_as(x_s).bool()
    err = (parts["output"] - cut_and_paste).abs()
    assert err[away_from_target_person].max() <= 2 * gen.matte_floor + 1e-6  # the matte floor is the only change
    torch.testing.assert_close(parts["matrix"], torch.eye(3).expand(2, 3, 3))
    torch.testing.assert_close(parts["light"], torch.ones(2, 1, H, W))
    torch.testing.assert_close(parts["person"], x_s)
    # the target's own person (where the source one does not cover it) is replaced by its surroundings
    emptied = fill_from_surroundings(x_t, 1 - m_t)
    torch.testing.assert_close(parts["background"], (1 - m_t) * x_t + m_t * emptied)
    keep = small(remove_target_person=False, target_input="image").eval()
    with torch.no_grad():
        assert (keep(x_s, x_t, m_t, m_s) - cut_and_paste).abs().max() <= 2 * keep.matte_floor + 1e-6


def test_the_target_person_never_reaches_the_rendering():
    gen = small()
    x_s, x_t, m_s, m_t = scene()
    other = torch.where(m_t.bool().expand_as(x_t), torch.rand_like(x_t) * 2 - 1, x_t)  # another person there
    with torch.no_grad():
        torch.testing.assert_close(gen(x_s, x_t, m_t, m_s), gen(x_s, other, m_t, m_s))
    assert gen.needs_target_masks and gen.needs_source_masks


def test_without_a_learned_fill_the_background_stays_the_push_pull_fill_whatever_the_weights():
    """learn_fill=False: no fill head; however far training moves the other heads, the background
    is the target outside its person and the inpainting of the surroundings inside (with the target
    path reading the whole image, as the shipped config does)."""
    gen = small(learn_fill=False, target_input="image")
    assert gen.fill_head is None and not any("fill_head" in k for k in gen.state_dict())
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        x_s, x_t, m_s, m_t = scene()
        parts = gen.layers(x_s, x_t, m_t, m_s)
    torch.testing.assert_close(parts["background"], (1 - m_t) * x_t + m_t * fill_from_surroundings(x_t, 1 - m_t))
    learned = small(target_input="image")
    with torch.no_grad():
        for p in learned.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        moved = learned.layers(x_s, x_t, m_t, m_s)["background"]
    hole = m_t.bool().expand_as(x_t)
    assert (moved - parts["background"])[hole].abs().max() > 0.01  # the learned residual does move it


def test_fill_from_surroundings_keeps_valid_pixels_and_fills_holes_with_their_colour():
    x = torch.zeros(1, 3, 16, 8)
    x[:, 0], x[:, 1], x[:, 2] = 0.5, -0.25, 0.75  # a uniform wall
    hole = torch.zeros(1, 1, 16, 8)
    hole[..., 4:12, 2:6] = 1.0
    damaged = torch.where(hole.bool().expand_as(x), torch.ones_like(x), x)  # a person on the wall
    torch.testing.assert_close(fill_from_surroundings(damaged, 1 - hole), x)  # the wall, whole again


def test_gradients_reach_every_head_and_after_one_step_every_parameter():
    gen = small()
    x_s, x_t, m_s, m_t = scene()
    loss = (gen(x_s, x_t, m_t, m_s) - x_t.flip(0)).abs().mean()
    loss.backward()
    heads = {"matte": gen.matte_head, "fill": gen.fill_head, "shading": gen.shading_head, "tone": gen.tone_head}
    for name, head in heads.items():
        grads = [p.grad for p in head.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads[-2:]), name  # the last layer learns first
    torch.optim.SGD(gen.parameters(), lr=0.1).step()
    gen.zero_grad()
    (gen(x_s, x_t, m_t, m_s) - x_t.flip(0)).abs().mean().backward()
    silent = [n for n, p in gen.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert silent == []  # the trunk learns through the heads once they are no longer zero


def test_the_matte_grows_into_a_hole_of_the_given_mask():
    """The given mask misses a band of the person (a poor segmentation); a loss that asks for the
    whole person makes the matte grow there within a few steps, and not on the background."""
    gen = small(tone="none", shading=False)
    x_s, x_t, m_true, m_t = scene(b=2, seed=1)
    hole = torch.zeros_like(m_true)
    hole[:, :, 28:36, 8:24] = 1.0
    given = m_true * (1 - hole)
    wanted = m_true * x_s + (1 - m_true) * gen.layers(x_s, x_t, m_t, given)["background"].detach()
    optimiser = torch.optim.Adam(gen.parameters(), lr=0.01)
    before = gen.layers(x_s, x_t, m_t, given)["matte"].detach()
    for _ in range(50):
        optimiser.zero_grad()
        (gen(x_s, x_t, m_t, given) - wanted).abs().mean().backward()
        optimiser.step()
    with torch.no_grad():
        matte = gen.layers(x_s, x_t, m_t, given)["matte"]
    outside = (1 - m_true).bool()
    assert before[hole.bool()].mean() == pytest.approx(gen.matte_floor, abs=1e-4)
    assert matte[hole.bool()].mean() > 0.8  # the band is filled in (0.99 here)
    assert matte[outside].mean() < 0.1  # the background is not taken for the person
    assert matte[given.bool()].mean() > 0.9  # nor is the given person lost


def test_the_tone_transform_maps_a_uniformly_tinted_person_as_its_matrix_says():
    person = torch.full((1, 3, 8, 4), 0.0)
    person[:, 0], person[:, 1], person[:, 2] = 0.6, -0.2, -0.6  # a reddish person in [-1, 1]
    y = (person[0, :, 0, 0] + 1) / 2
    matrix = torch.tensor([[[0.8, 0.1, 0.0], [0.0, 1.1, 0.0], [0.05, 0.0, 0.9]]])
    bias = torch.tensor([[0.02, -0.03, 0.1]])
    out = apply_tone(person, matrix, bias)
    expected = (matrix[0] @ y + bias[0]) * 2 - 1
    torch.testing.assert_close(out, expected.view(1, 3, 1, 1).expand(1, 3, 8, 4))
    torch.testing.assert_close(apply_tone(person, torch.eye(3)[None], torch.zeros(1, 3)), person)
    half_light = apply_tone(person, torch.eye(3)[None], torch.zeros(1, 3), torch.full((1, 1, 8, 4), 0.5))
    torch.testing.assert_close((half_light + 1) / 2, (person + 1) / 4)  # a light factor scales [0, 1] colour


def test_the_tone_head_learns_the_target_tint_from_the_target_image():
    """Each target context has its own colour cast; trained to show the person under it, the tone
    head's colour transform follows the cast of whichever target it is given."""
    gen = small(shading=False)
    x_s, x_t, m_s, m_t = scene(b=4, seed=2)
    casts = torch.tensor([[0.3, 0.0, -0.3], [-0.3, 0.0, 0.3], [0.0, 0.3, 0.0], [0.0, -0.3, 0.0]]).view(4, 3, 1, 1)
    x_t = (x_t * 0.3 + casts).clamp(-1, 1)  # four walls, four casts
    wanted_person = (x_s * 0.6 + casts).clamp(-1, 1)  # the person under that cast
    optimiser = torch.optim.Adam(gen.parameters(), lr=0.01)

    def person_error() -> torch.Tensor:
        parts = gen.layers(x_s, x_t, m_t, m_s)
        return ((parts["person"] - wanted_person).abs() * m_s).sum() / (3 * m_s.sum())

    first = float(person_error().detach())
    for _ in range(40):
        optimiser.zero_grad()
        person_error().backward()
        optimiser.step()
    assert float(person_error().detach()) < 0.3 * first
    swapped = gen.layers(x_s, x_t.flip(0), m_t, m_s)["person"]  # other casts: other transforms
    assert (swapped - gen.layers(x_s, x_t, m_t, m_s)["person"]).abs().mean() > 0.1


def test_missing_masks_and_bad_options_are_clear_errors():
    gen = small()
    x_s, x_t, m_s, m_t = scene()
    with pytest.raises(ConfigError, match="source person masks m_s"):
        gen(x_s, x_t, m_t)
    with pytest.raises(ConfigError, match="target person masks m_t"):
        gen(x_s, x_t, None, m_s)
    for kwargs, match in ((dict(tone="curve"), "tone='curve'"), (dict(matte_floor=0.0), "matte_floor=0.0"),
                          (dict(in_channels=1), "in_channels=1"), (dict(upsample="deconv"), "upsample='deconv'")):
        with pytest.raises(ConfigError, match=match):
            small(**kwargs)


def test_a_compositing_crgan_checkpoint_rebuilds_the_same_generator(tmp_path):
    from crgan_lightning.modules.crgan import CRGANModule
    from crgan_lightning.networks import load_generator
    from crgan_lightning.translators import load_translator

    spec = {"class_path": "crgan_lightning.models.compositor.CompositingGenerator",
            "init_args": dict(base_channels=8, num_down=3, max_channels=32, num_res_blocks=1, tone="channel",
                              learn_fill=False)}
    module = CRGANModule(num_source_pids=5, num_target_cameras=2, generator=spec,
                         discriminator=dict(base_channels=8, n_layers=2), classifier=dict(backbone="resnet10t"))
    with torch.no_grad():  # weights away from the zero start, so the round trip is checked on real values
        for p in module.generator.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, tmp_path / "g.ckpt")
    gen = load_generator(tmp_path / "g.ckpt")
    assert isinstance(gen, CompositingGenerator) and gen.tone == "channel" and gen.fill_head is None
    x_s, x_t, m_s, m_t = scene()
    with torch.no_grad():
        expected = module.generator.eval()(x_s, x_t, m_t, m_s)
        torch.testing.assert_close(gen(x_s, x_t, m_t, m_s), expected)
        translator = load_translator(tmp_path / "g.ckpt")
        assert translator.needs_masks and translator.needs_target_masks
        torch.testing.assert_close(translator.render(x_s, x_t, m_s, m_t), expected)
