"""Mask providers and the mask-tree writer."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import write_images
from PIL import Image

from crgan_lightning.data import load_reid_dataset
from crgan_lightning.data.masks import (FolderMasks, PriorMask, SegmentationMaskWriter, build_mask_provider,
                                        mask_path, prior_mask)
from crgan_lightning.errors import ConfigError, DatasetError, ImageReadError


@pytest.fixture()
def duke(tmp_path):
    root = tmp_path / "DukeMTMC-reID"
    write_images(root / "bounding_box_train", ["0001_c2_f0046182.jpg", "0002_c1_f0000010.jpg"], size=(32, 16))
    write_images(root / "query", ["0005_c2_f0046985.jpg"], size=(32, 16))
    write_images(root / "bounding_box_test", ["0005_c7_f0101010.jpg"], size=(32, 16))
    return load_reid_dataset("duke", tmp_path)


class LeftHalf(SegmentationMaskWriter):
    """A stand-in model: the left half of every image is 'person'."""

    calls = 0

    def predict(self, images):
        LeftHalf.calls += len(images)
        out = []
        for img in images:
            m = np.zeros(img.shape[:2], np.float32)
            m[:, : img.shape[1] // 2] = 0.9
            out.append(m)
        return out


def test_mask_path_mirrors_the_dataset_tree(duke):
    p = duke.train[0].path
    assert mask_path(duke.root, p) == duke.root / "masks" / "bounding_box_train" / "0001_c2_f0046182.png"
    with pytest.raises(DatasetError, match="not inside the dataset folder"):
        mask_path(duke.root, "/elsewhere/x.jpg")


def test_writer_writes_every_split_resumes_and_folder_masks_read_it(duke):
    writer = LeftHalf()
    LeftHalf.calls = 0
    assert writer.write_tree(duke, batch_size=2, progress=False, threshold=0.5) == 4
    assert LeftHalf.calls == 4
    assert not list(duke.root.rglob("*.tmp*"))  # nothing half-written is left behind
    assert writer.write_tree(duke, progress=False) == 0 and LeftHalf.calls == 4  # resume: nothing redone
    m = FolderMasks(duke.root)(duke.query[0].path, 32, 16)
    assert m.shape == (32, 16) and m[:, :8].min() == 1.0 and m[:, 8:].max() == 0.0
    resized = FolderMasks(duke.root)(duke.query[0].path, 64, 32)
    assert resized.shape == (64, 32) and resized[:, :14].min() == 1.0


def test_auto_falls_back_to_the_prior_and_says_so(duke, caplog):
    with caplog.at_level(logging.WARNING):
        provider = build_mask_provider("auto", duke)
    assert isinstance(provider, PriorMask) and "soft prior mask (fallback)" in caplog.text
    with pytest.raises(DatasetError, match="no mask folder .*crgan masks"):
        build_mask_provider("folder", duke)
    with pytest.raises(ConfigError, match="masks='sam'"):
        build_mask_provider("sam", duke)


def test_prior_mask_is_a_centred_soft_blob():
    m = prior_mask(128, 64)
    assert m.shape == (128, 64) and m.dtype == np.float32
    assert m[64, 32] == 1.0 and m[0, 0] == 0.0 and m[64, 0] == 0.0
    assert 0.0 < m[64, 14] < 1.0  # soft border
    np.testing.assert_array_equal(m[:, :32], m[:, 32:][:, ::-1])  # left-right symmetric


def test_corrupt_mask_file_is_named(duke):
    LeftHalf().write_tree(duke, progress=False)
    bad = mask_path(duke.root, duke.train[0].path)
    bad.write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match=str(bad.name)):
        FolderMasks(duke.root)(duke.train[0].path, 32, 16)
    Image.new("L", (16, 32)).save(bad)  # repaired
    assert FolderMasks(duke.root)(duke.train[0].path, 32, 16).max() == 0.0
