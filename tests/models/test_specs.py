"""Networks injected into the GAN modules: built from a factory or spec, kept as a spec in the
checkpoint, rebuilt from it (and from a checkpoint written with the flat g_* / d_* / ... arguments)."""

from __future__ import annotations

import functools
import inspect

import pytest
import pytorch_lightning as pl
import torch
from conftest import TINY_CRGAN

from crgan_lightning.errors import ConfigError
from crgan_lightning.models.discriminator import AuxiliaryClassifier, PatchDiscriminator
from crgan_lightning.models.generator import DualPathGenerator
from crgan_lightning.models.specs import build_network, network_spec
from crgan_lightning.models.spgan import ResnetGenerator
from crgan_lightning.modules.crgan import CRGANModule
from crgan_lightning.modules.reid import ReIDModule
from crgan_lightning.modules.spgan import SPGANModule
from crgan_lightning.networks import load_generator, load_spgan_generator

GEN = "crgan_lightning.models.generator.DualPathGenerator"


def _assert_same_weights(restored: torch.nn.Module, module: torch.nn.Module) -> None:
    assert restored.state_dict().keys() == module.state_dict().keys()
    for key, value in module.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("spec", [
    None,
    {"base_channels": 8},
    {"class_path": GEN, "init_args": {"base_channels": 8}},
    functools.partial(DualPathGenerator, base_channels=8),
    DualPathGenerator,
])
def test_every_form_of_a_network_builds_the_same_class_with_its_arguments(spec):
    net = build_network(spec, DualPathGenerator, "generator")
    assert type(net) is DualPathGenerator
    expected = 32 if spec in (None, DualPathGenerator) else 8  # the class's own default, written once
    assert net.widths[0] == expected
    assert network_spec(net)["init_args"]["base_channels"] == expected
    assert network_spec(net)["class_path"] == GEN


def test_a_classifier_factory_gets_the_data_counts_and_its_spec_leaves_them_out():
    net = build_network({"backbone": "resnet10t"}, AuxiliaryClassifier, "classifier", 7, 3)
    assert (net.num_identities, net.num_cameras) == (7, 3)
    spec = network_spec(net, ("num_identities", "num_cameras"))
    assert spec["init_args"] == {"backbone": "resnet10t", "pretrained": False, "pretrained_path": None,
                                 "feat_dim": None}
    again = build_network(spec, AuxiliaryClassifier, "classifier", 7, 3)
    assert again.id_head.out_features == 7 and again.cam_head.out_features == 3


@pytest.mark.parametrize("spec,match", [
    ({"class_path": "crgan_lightning.models.generator.NoSuchNet"}, "does not name a class"),
    ({"class_path": "some_plugin.nets.Generator"}, "module some_plugin.nets is not imported"),
    ({"class_path": "crgan_lightning.errors.ConfigError"}, "is not a torch.nn.Module class"),
    ({"class_path": "DualPathGenerator"}, f"expected a dotted path such as {GEN}"),
    ({"class_path": GEN, "init_args": {}, "extra": 1}, r"keys \['extra'\]"),
    ({"base_channel": 8}, "unexpected keyword argument 'base_channel'"),
    (lambda: "not a network", "returned str"),
    (DualPathGenerator(base_channels=4, num_down=2), "is a built DualPathGenerator; give its class"),
    (42, "expected a network class"),
])
def test_a_wrong_network_is_one_clear_error(spec, match):
    with pytest.raises(ConfigError, match=match):
        build_network(spec, DualPathGenerator, "generator")


def test_a_network_that_does_not_record_its_arguments_is_refused_by_name():
    with pytest.raises(ConfigError, match="torch.nn.modules.linear.Linear does not record its arguments"):
        network_spec(torch.nn.Linear(2, 2))


def test_modules_take_only_the_arguments_they_use():
    spgan = inspect.signature(SPGANModule).parameters
    crgan = inspect.signature(CRGANModule).parameters
    reid = inspect.signature(ReIDModule).parameters
    assert not {"num_source_pids", "num_query", "num_target_cameras"} & set(spgan)
    assert "num_query" not in crgan and "num_target_cameras" not in reid
    flat = ("g_base_channels", "g_res_blocks", "d_base_channels", "d_layers", "cls_backbone", "siamese_feat_dim")
    assert not set(flat) & {*crgan, *spgan}  # network sizes live in the injected networks' own arguments


def test_the_checkpoint_keeps_specs_and_the_generator_is_rebuilt_from_them(tmp_path):
    torch.manual_seed(0)
    generator = {**TINY_CRGAN["generator"], "target_skips": True, "fuse": "add"}
    module = CRGANModule(num_source_pids=5, num_target_cameras=2, **{**TINY_CRGAN, "generator": generator})
    hparams = dict(module.hparams)
    assert hparams["generator"]["class_path"] == GEN
    assert hparams["generator"]["init_args"]["fuse"] == "add"
    assert hparams["discriminator"] == {"class_path": "crgan_lightning.models.discriminator.PatchDiscriminator",
                                        "init_args": {"in_channels": 3, "base_channels": 16, "n_layers": 2,
                                                      "norm": "instance", "spectral": False}}
    assert "num_identities" not in hparams["classifier"]["init_args"]
    path = tmp_path / "g.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams,
                "pytorch-lightning_version": pl.__version__}, path)
    assert torch.load(path, weights_only=True)["hyper_parameters"]["generator"] == hparams["generator"]
    gen = load_generator(path)
    x_s, x_t = torch.rand(2, 3, 64, 32) * 2 - 1, torch.rand(2, 3, 64, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(gen(x_s, x_t), module.generator.eval()(x_s, x_t), rtol=0, atol=0)
    restored = CRGANModule.load_from_checkpoint(path)  # the module too: every network from its spec
    assert isinstance(restored.discriminator, PatchDiscriminator) and restored.classifier.num_identities == 5
    _assert_same_weights(restored, module)


def test_a_checkpoint_with_the_flat_generator_arguments_still_loads(tmp_path):
    """Runs trained before the networks were injected keep g_* hyper-parameters."""
    torch.manual_seed(0)
    crgan = CRGANModule(num_source_pids=5, num_target_cameras=2, **{**TINY_CRGAN, "generator": {
        **TINY_CRGAN["generator"], "space_to_depth": 2, "num_down": 2, "outer_kernel": 3, "padding": "zeros"}})
    flat = {"num_source_pids": 5, "g_base_channels": 8, "g_num_down": 2, "g_max_channels": 32, "g_res_blocks": 1,
            "g_space_to_depth": 2, "g_outer_kernel": 3, "g_padding": "zeros", "g_source_norm": None}
    torch.save({"state_dict": crgan.state_dict(), "hyper_parameters": flat}, tmp_path / "old_crgan.ckpt")
    gen = load_generator(tmp_path / "old_crgan.ckpt")
    x = torch.rand(1, 3, 64, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(gen(x, x), crgan.generator.eval()(x, x), rtol=0, atol=0)

    spgan = SPGANModule(generator={"base_channels": 4, "num_res_blocks": 6}, siamese={"base_channels": 4})
    # an old SPGAN checkpoint without g_res_blocks had the module's old default, 6 blocks
    torch.save({"state_dict": spgan.state_dict(), "hyper_parameters": {"g_base_channels": 4}},
               tmp_path / "old_spgan.ckpt")
    old = load_spgan_generator(tmp_path / "old_spgan.ckpt")
    assert isinstance(old, ResnetGenerator)
    with torch.no_grad():
        torch.testing.assert_close(old(x), spgan.generator_st.eval()(x), rtol=0, atol=0)


def test_a_module_written_with_flat_network_arguments_loads_whole(tmp_path):
    """load_from_checkpoint rebuilds every network of an old checkpoint from its flat keys (and
    the old modules' defaults); the keys the module no longer takes are dropped."""
    torch.manual_seed(0)
    crgan = CRGANModule(num_source_pids=5, num_target_cameras=2, **TINY_CRGAN)
    flat = {"num_source_pids": 5, "num_target_cameras": 2, "num_query": 7, "g_base_channels": 8, "g_num_down": 3,
            "g_max_channels": 32, "g_res_blocks": 1, "d_base_channels": 16, "d_layers": 2,
            "cls_backbone": "resnet10t", "cls_warmup_steps": 0, "pool_size": 4}
    torch.save({"state_dict": crgan.state_dict(), "hyper_parameters": flat,
                "pytorch-lightning_version": pl.__version__}, tmp_path / "old_crgan.ckpt")
    restored = CRGANModule.load_from_checkpoint(tmp_path / "old_crgan.ckpt")
    assert restored.hparams.generator["init_args"]["base_channels"] == 8
    assert restored.hparams.discriminator["init_args"] == {**restored.discriminator.init_args}
    assert restored.discriminator.init_args["n_layers"] == 2
    assert restored.classifier.init_args["backbone"] == "resnet10t"
    assert "num_query" not in restored.hparams and "g_base_channels" not in restored.hparams
    _assert_same_weights(restored, crgan)
    # an argument given to load_from_checkpoint still wins over the checkpoint's
    assert CRGANModule.load_from_checkpoint(tmp_path / "old_crgan.ckpt", pool_size=9).hparams.pool_size == 9

    spgan = SPGANModule(generator={"base_channels": 4, "num_res_blocks": 6}, discriminator={"base_channels": 8},
                        siamese={"base_channels": 4, "feat_dim": 16})
    old = {"num_source_pids": 5, "g_base_channels": 4, "d_base_channels": 8, "siamese_base_channels": 4,
           "siamese_feat_dim": 16}  # no g_res_blocks: the old module's default, 6 blocks
    torch.save({"state_dict": spgan.state_dict(), "hyper_parameters": old,
                "pytorch-lightning_version": pl.__version__}, tmp_path / "old_spgan.ckpt")
    restored = SPGANModule.load_from_checkpoint(tmp_path / "old_spgan.ckpt")
    assert restored.generator_st.init_args["num_res_blocks"] == 6
    assert restored.siamese.init_args["feat_dim"] == 16
    _assert_same_weights(restored, spgan)
