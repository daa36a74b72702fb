"""Person masks from torchvision segmentation networks, loaded from a local weights file."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from conftest import write_images
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models import segmentation as tv_seg

from crgan_lightning.data import load_reid_dataset
from crgan_lightning.data.masks import FolderMasks, mask_path
from crgan_lightning.data.segmentation import (PERSON_CLASS, SEGMENTATION_MODELS, TorchvisionPersonSegmenter,
                                               write_masks)
from crgan_lightning.errors import ConfigError, WeightsError

LRASPP = "lraspp_mobilenet_v3_large"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small convolutions run fastest on one thread; on a busy machine, two spinning OpenMP threads
    can make a forward pass 10-40x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def lraspp_state_dict(person_logit: float) -> dict[str, torch.Tensor]:
    """A randomly initialised LR-ASPP whose head outputs a constant logit: ``person_logit`` for
    the person class, 0 for the 20 others (so every pixel is person, or none is)."""
    torch.manual_seed(0)
    net = tv_seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    with torch.no_grad():
        for conv in (net.classifier.low_classifier, net.classifier.high_classifier):
            conv.weight.zero_()
            conv.bias.zero_()
        net.classifier.low_classifier.bias[PERSON_CLASS] = person_logit
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Two user weight files for LR-ASPP: everything is a person, nothing is."""
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for name, logit in (("person", 10.0), ("background", -10.0)):
        sd = lraspp_state_dict(logit)
        files[name] = folder / f"lraspp_{name}.pth"
        torch.save(sd, files[name])
        files[name + "_sd"] = sd
    return files


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_a_user_weights_file_is_loaded_exactly_and_masks_have_each_images_size(weight_files):
    seg = TorchvisionPersonSegmenter(LRASPP, weights_path=weight_files["person"])
    loaded = seg.model.state_dict()
    saved = weight_files["person_sd"]
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert not seg.model.training

    images = [rgb(128, 64, 0), rgb(128, 64, 1), rgb(100, 41, 2)]
    masks = seg.predict(images)
    assert [m.shape for m in masks] == [(128, 64), (128, 64), (100, 41)]
    expected = np.exp(10.0) / (np.exp(10.0) + 20)  # softmax of logit 10 against 20 zeros
    for m in masks:
        assert m.dtype == np.float32
        np.testing.assert_allclose(m, expected, rtol=1e-4)

    none = TorchvisionPersonSegmenter(LRASPP, weights_path=weight_files["background"]).predict(images)
    assert all(m.max() < 1e-4 and m.min() >= 0.0 for m in none)


class RedIsPerson(nn.Module):
    """Stands in for a network: the person logit is 5 x (normalised red - normalised blue)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.inputs.append(tuple(x.shape))
        logits = torch.zeros(x.shape[0], 21, *x.shape[2:])
        logits[:, PERSON_CLASS] = 5.0 * (x[:, 0] - x[:, 2])
        return {"out": logits}


def test_predict_normalises_scales_to_input_height_batches_equal_sizes_and_resizes_back(weight_files):
    seg = TorchvisionPersonSegmenter(LRASPP, weights_path=weight_files["person"], input_height=256)
    seg.model = RedIsPerson()
    image = np.zeros((128, 64, 3), np.uint8)
    image[:, :32, 0] = 255  # left half red: (1 - .485) / .229 - (0 - .406) / .225 = 4.05 -> person
    image[:, 32:, 2] = 255  # right half blue: -2.12 - 2.64 = -4.76 -> background
    small = np.ascontiguousarray(image[::2, ::2])  # 64 x 32, same aspect ratio
    masks = seg.predict([image, small, image.copy()])

    assert seg.model.inputs == [(2, 3, 256, 128), (1, 3, 256, 128)]  # equal sizes share one forward
    for m, (h, w) in zip(masks, [(128, 64), (64, 32), (128, 64)]):
        assert m.shape == (h, w) and m.dtype == np.float32
        assert 0.0 <= m.min() and m.max() <= 1.0
        assert m[:, : w // 2 - 2].min() > 0.99 and m[:, w // 2 + 2:].max() < 0.01

    seg.input_height = None  # the network sees each image at its own size
    seg.model = RedIsPerson()
    assert seg.predict([small])[0].shape == (64, 32) and seg.model.inputs == [(1, 3, 64, 32)]
    with pytest.raises(ValueError, match=r"expected uint8 RGB"):
        seg.predict([image.astype(np.float32)])


def test_write_masks_on_a_market_tree_mirrors_it_resumes_and_folder_masks_read_it(tmp_path, weight_files):
    market = tmp_path / "Market-1501-v15.09.15"
    write_images(market / "bounding_box_train",
                 ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c1s1_000551_01.jpg"],
                 size=(128, 64))
    write_images(market / "query", ["0002_c3s1_000551_01.jpg"], size=(128, 64))
    write_images(market / "bounding_box_test",
                 ["0002_c4s1_000601_01.jpg", "0000_c1s1_000001_01.jpg", "-1_c2s1_000101_01.jpg"],
                 size=(128, 64))

    folder, written = write_masks("market", tmp_path, model=LRASPP, weights_path=weight_files["person"],
                                  batch_size=4, progress=False)
    assert folder == market / "masks" and written == 6  # the junk image (-1_) is not part of the dataset
    assert (folder / "bounding_box_train" / "0002_c1s1_000451_03.png").is_file()
    pngs = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    ds = load_reid_dataset("market", tmp_path)
    samples = ds.train + ds.query + ds.gallery
    assert pngs == sorted(mask_path(market, s.path).relative_to(folder).as_posix() for s in samples)
    assert not [p for p in folder.rglob("*") if p.is_file() and ".tmp" in p.name]

    masks = FolderMasks(market)
    for s in samples:
        m = masks(s.path, 128, 64)
        assert m.shape == (128, 64) and m.min() == 1.0  # threshold 0.5 on p = 0.999

    assert write_masks("market", tmp_path, model=LRASPP, weights_path=weight_files["person"],
                       progress=False) == (folder, 0)  # resume: everything is there already
    _, rewritten = write_masks("market", market, model=LRASPP, weights_path=weight_files["background"],
                               overwrite=True, threshold=None, progress=False)
    assert rewritten == 6 and masks(ds.query[0].path, 128, 64).max() == 0.0


def test_deeplabv3_checkpoints_load_with_or_without_their_auxiliary_head(tmp_path):
    model = "deeplabv3_mobilenet_v3_large"
    torch.manual_seed(0)
    net = tv_seg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21,
                                              aux_loss=True)  # as published by torchvision
    saved = net.state_dict()
    assert any(k.startswith("aux_classifier.") for k in saved)
    torch.save(saved, tmp_path / "with_aux.pth")
    seg = TorchvisionPersonSegmenter(model, weights_path=tmp_path / "with_aux.pth")
    assert seg.model.aux_classifier is None  # a training-time head: dropped after the strict load
    loaded = seg.model.state_dict()
    assert loaded.keys() == {k for k in saved if not k.startswith("aux_classifier.")}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)
    assert seg.predict([rgb(32, 16)])[0].shape == (32, 16)

    torch.save(dict(loaded), tmp_path / "without_aux.pth")
    TorchvisionPersonSegmenter(model, weights_path=tmp_path / "without_aux.pth")
    broken = {k: v for k, v in saved.items() if k != "aux_classifier.4.bias"}
    torch.save(broken, tmp_path / "broken_aux.pth")
    with pytest.raises(WeightsError, match=r"broken_aux\.pth.*missing keys \(aux_classifier\.4\.bias\)"):
        TorchvisionPersonSegmenter(model, weights_path=tmp_path / "broken_aux.pth")


def test_weight_file_errors_name_the_file(tmp_path, weight_files):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(WeightsError, match=r"nowhere\.pth does not exist; weights_path") as info:
        TorchvisionPersonSegmenter(LRASPP, weights_path=missing)
    assert "\n" not in str(info.value)

    with pytest.raises(WeightsError, match=r"lraspp_person\.pth does not fit torchvision's deeplabv3_mob"):
        TorchvisionPersonSegmenter("deeplabv3_mobilenet_v3_large", weights_path=weight_files["person"])

    ten_classes = tv_seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=10)
    torch.save(ten_classes.state_dict(), tmp_path / "ten.pth")
    with pytest.raises(WeightsError, match=r"ten\.pth does not fit .* shapes differ") as info:
        TorchvisionPersonSegmenter(LRASPP, weights_path=tmp_path / "ten.pth")
    assert "\n" not in str(info.value)

    torch.save({"epoch": 3, "state_dict": {}}, tmp_path / "trainer.ckpt")
    with pytest.raises(WeightsError, match=r"trainer\.ckpt is not a state dict .* non-tensor entries"):
        TorchvisionPersonSegmenter(LRASPP, weights_path=tmp_path / "trainer.ckpt")
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(WeightsError, match=r"notes\.pth cannot be read as a PyTorch state dict"):
        TorchvisionPersonSegmenter(LRASPP, weights_path=tmp_path / "notes.pth")


def test_bad_settings_are_config_errors(weight_files):
    with pytest.raises(ConfigError, match="expected one of " + ", ".join(SEGMENTATION_MODELS)):
        TorchvisionPersonSegmenter("unet", weights_path=weight_files["person"])
    with pytest.raises(ConfigError, match="input_height=0"):
        TorchvisionPersonSegmenter(LRASPP, weights_path=weight_files["person"], input_height=0)
    with pytest.raises(ConfigError, match="device='gpu'"):
        TorchvisionPersonSegmenter(LRASPP, weights_path=weight_files["person"], device="gpu")
    with pytest.raises(ConfigError, match="threshold=1.5"):
        write_masks("market", ".", weights_path=weight_files["person"], threshold=1.5)


def test_online_weights_come_from_torchvisions_download_and_a_failure_names_weights_path(
    monkeypatch, weight_files
):
    calls = []

    def offline(self, *args, **kwargs):
        calls.append((self, kwargs))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(WeightsError, match=r"lraspp_mobilenet_v3_large.*weights_path=<file>") as info:
        TorchvisionPersonSegmenter(LRASPP)
    assert "lraspp_mobilenet_v3_large-d234d4ea.pth" in str(info.value) and "\n" not in str(info.value)
    assert calls == [(tv_seg.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
                      {"progress": True, "check_hash": True})]

    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, **kw: weight_files["person_sd"])
    seg = TorchvisionPersonSegmenter(LRASPP)  # same strict load as a user's file
    assert all(torch.equal(v, weight_files["person_sd"][k]) for k, v in seg.model.state_dict().items())
    assert seg.predict([rgb(16, 8)])[0].min() > 0.99
