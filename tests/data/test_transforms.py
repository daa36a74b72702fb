"""Transforms keep image and mask aligned and end in the library's tensor convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crgan_lightning.data.keys import IMAGE, MASK
from crgan_lightning.data.transforms import apply_transforms, build_transforms, random_erasing
from crgan_lightning.errors import ConfigError


def person_image(h=64, w=32):
    """A red 'person' rectangle off-centre on a blue background, with its exact mask."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 2] = 255
    mask = np.zeros((h, w), np.float32)
    img[10:50, 4:14] = (255, 0, 0)
    mask[10:50, 4:14] = 1.0
    return img, mask


@pytest.mark.parametrize("seed", range(8))
def test_train_transform_keeps_mask_on_the_person(seed):
    import random
    random.seed(seed)
    np.random.seed(seed)
    img, mask = person_image()
    pipe = build_transforms(64, 32, train=True, flip_p=0.5, pad=6, erasing_p=0.0)
    pipe.set_random_seed(seed)
    out = apply_transforms(pipe, img, mask)
    x, m = out[IMAGE], out[MASK][0]
    assert x.shape == (3, 64, 32) and m.shape == (64, 32)
    on, off = m > 0.99, m < 0.01
    assert on.sum() > 200
    red = (x[0] > 0.9) & (x[2] < -0.9)
    assert torch.equal(red[on], torch.ones_like(red[on]))  # every person pixel is red
    assert not red[off].any()  # no red pixel outside the mask


def test_flip_moves_image_and_mask_together():
    img, mask = person_image()
    pipe = build_transforms(64, 32, train=True, flip_p=1.0, pad=0, erasing_p=0.0)
    out = apply_transforms(pipe, img, mask)
    m = out[MASK][0]
    assert m[30, 32 - 1 - 5] == 1 and m[30, 5] == 0  # the person moved to the other side
    assert out[IMAGE][0, 30, 32 - 1 - 5] == 1.0


def test_test_transform_resizes_into_minus_one_one():
    img, mask = person_image(100, 40)
    out = apply_transforms(build_transforms(128, 64, train=False), img, mask)
    assert out[IMAGE].shape == (3, 128, 64) and out[IMAGE].dtype == torch.float32
    assert out[IMAGE].min() == -1.0 and out[IMAGE].max() == 1.0
    assert out[MASK].shape == (1, 128, 64) and 0 <= out[MASK].min() and out[MASK].max() <= 1
    assert apply_transforms(build_transforms(128, 64, train=False), img, None).keys() == {IMAGE}


def test_random_erasing_touches_image_only():
    img, mask = person_image()
    pipe = build_transforms(64, 32, train=True, flip_p=0.0, pad=0, erasing_p=1.0)
    out = apply_transforms(pipe, img, mask)
    assert torch.equal(out[MASK][0], torch.from_numpy(mask))
    expected = apply_transforms(build_transforms(64, 32, train=False), img, mask)[IMAGE]
    assert (out[IMAGE] != expected).any()


def test_batch_random_erasing_erases_one_rectangle_per_chosen_image():
    images = torch.full((64, 3, 32, 16), 5.0)  # a value the noise in [-1, 1] never takes
    out = random_erasing(images, p=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, torch.full_like(images, 5.0))  # the input is left as it was
    erased = out != 5.0
    assert torch.equal(erased[:, 0], erased[:, 1]) and torch.equal(erased[:, 0], erased[:, 2])
    hit = erased[:, 0].flatten(1).any(1)
    assert 20 <= int(hit.sum()) <= 44  # about half of 64 images
    for img in erased[hit, 0]:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert int(img.sum()) == height * width  # one solid rectangle
        assert rows[-1] - rows[0] + 1 == height and cols[-1] - cols[0] + 1 == width
        assert 0.5 * 0.02 * 512 <= height * width <= 1.2 * 0.4 * 512
    assert out[erased].min() >= -1 and out[erased].max() <= 1
    again = random_erasing(images, p=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert random_erasing(images, p=0.0) is images
    assert (random_erasing(images, p=1.0, generator=torch.Generator()) != 5.0).flatten(1).any(1).all()
    with pytest.raises(ConfigError, match="erasing_p=2"):
        random_erasing(images, p=2)


@pytest.mark.parametrize("kwargs,match", [({"flip_p": 1.5}, "flip_p=1.5"), ({"pad": -1}, "pad=-1"),
                                          ({"erasing_p": -0.1}, "erasing_p")])
def test_bad_values_are_rejected(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_transforms(64, 32, train=True, **kwargs)
