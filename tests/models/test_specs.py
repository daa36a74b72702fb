"""Networks injected into the GAN and re-id modules: built from a factory or spec, kept as a spec in
the checkpoint, rebuilt from it (and from a checkpoint written with the flat g_* / d_* / ... or
backbone / lr / ... arguments)."""

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
from crgan_lightning.models.reid import ReIDNet
from crgan_lightning.models.specs import build_network, network_spec
from crgan_lightning.models.spgan import ResnetGenerator
from crgan_lightning.modules.crgan import CRGANModule
from crgan_lightning.modules.reid import MOVED_ARGUMENTS, ReIDModule
from crgan_lightning.modules.spgan import SPGANModule
from crgan_lightning.modules.taudl import TAUDLModule
from crgan_lightning.networks import load_generator, load_reid_net, load_spgan_generator

GEN = "crgan_lightning.models.generator.DualPathGenerator"
REID_NET = "crgan_lightning.models.reid.ReIDNet"
TINY_REID = {"backbone": "resnet10t", "pretrained": False, "test_pooling": "avg", "lmp_parts": 4}


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
    # the re-id network's arguments and the optimisation settings live in net / optimizer / scheduler
    assert {"net", "optimizer", "scheduler"} <= set(reid) and not set(MOVED_ARGUMENTS) & set(reid)
    taudl = set(inspect.signature(TAUDLModule).parameters) - {"kwargs"}
    assert taudl == {"taudl_weight", "taudl_lambda", "source_weight", "ccta_start_epoch", "ccta_ramp_epochs",
                     "ccta_neighbours", "ccta_temperature", "memory_momentum", "ccta_feature", "pctd_label_smooth"}
    assert TAUDLModule.argument_names() == taudl | set(reid)  # the rest reaches ReIDModule


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


# ---------------------------------------------------------------------------------------------- re-id


@pytest.mark.parametrize("net", [
    TINY_REID,
    {"class_path": REID_NET, "init_args": TINY_REID},
    functools.partial(ReIDNet, **TINY_REID),
])
def test_every_form_of_the_reid_network_builds_it_with_the_source_identities(net):
    module = ReIDModule(num_source_pids=7, net=net)
    assert type(module.net) is ReIDNet and module.net.classifier.out_features == 7
    assert module.hparams["net"] == {"class_path": REID_NET, "init_args": {
        "backbone": "resnet10t", "pretrained": False, "pretrained_path": None, "last_stride": 1, "neck": "bnneck",
        "pooling": "avg", "test_pooling": "avg", "lmp_parts": 4, "flip_test": False}}  # num_classes left out


def test_a_reid_checkpoint_keeps_the_network_spec_and_is_rebuilt_without_pretrained_weights(tmp_path):
    """A run started from ImageNet weights (a local file here) is rebuilt from its checkpoint without
    them: the file may be gone, nothing is downloaded, the checkpoint's weights are loaded."""
    torch.manual_seed(0)
    weights = tmp_path / "resnet10t.pth"
    torch.save(ReIDNet("resnet10t", pretrained=False).backbone.state_dict(), weights)
    module = ReIDModule(num_source_pids=5, num_query=3,
                        net={**TINY_REID, "pretrained": True, "pretrained_path": str(weights)})
    assert module.hparams["net"]["init_args"]["pretrained_path"] == str(weights)
    path = tmp_path / "reid.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": pl.__version__}, path)
    weights.unlink()
    net = load_reid_net(path)
    _assert_same_weights(net, module.net)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    restored = ReIDModule.load_from_checkpoint(path)
    _assert_same_weights(restored, module)
    assert restored.hparams["net"]["init_args"]["pretrained"] is False and restored.num_query == 3


def _old_reid_hparams(num_source_pids: int, **overrides) -> dict:
    """The hyper-parameters a re-id checkpoint held before the network and the optimisation were
    injected, as the CLI wrote them (the embedded recipe): every flat argument, the DataModule value
    the CLI linked beside them, and LightningCLI's class path and instantiator."""
    return {"_class_path": "crgan_lightning.modules.reid.ReIDModule", "num_source_pids": num_source_pids,
            "num_query": 22, "backbone": "resnet10t", "pretrained": False, "pretrained_path": None, "last_stride": 1,
            "neck": "bnneck", "pooling": "avg", "test_pooling": "avg", "lmp_parts": 4, "flip_test": False,
            "ce_weight": 1.0, "label_smooth": 0.1, "triplet_weight": 1.0, "triplet_margin": 0.3,
            "synthetic_weight": 1.0, "joint_triplet": False, "batch_erasing_p": 0.5, "lr": 0.002,
            "weight_decay": 0.05, "optimizer_name": "adamw", "lr_schedule": "cosine", "warmup_epochs": 10,
            "warmup_iters": 150, "warmup_factor": 0.01, "milestones": None, "gamma": 0.1, "min_lr_factor": 0.01,
            "distance": "cosine", "rerank": False, "max_rank": 50, "also_test": {"lmp": "euclidean"},
            "ranked_list_queries": 6, "ranked_list_topk": 8, "channels_last": False, "num_target_cameras": 8,
            "_instantiator": "pytorch_lightning.cli.instantiate_module", **overrides}


def _write_old_checkpoint(path, module: torch.nn.Module, hparams: dict) -> None:
    torch.save({"epoch": 2, "global_step": 9, "pytorch-lightning_version": pl.__version__,
                "state_dict": module.state_dict(), "hparams_name": "kwargs", "hyper_parameters": hparams}, path)


def test_a_reid_checkpoint_with_the_flat_network_and_optimiser_arguments_still_loads(tmp_path):
    torch.manual_seed(0)
    trained = ReIDModule(num_source_pids=12, num_query=22, net={**TINY_REID, "last_stride": 2})
    with torch.no_grad():  # weights no fresh network has
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / "old_reid.ckpt"
    _write_old_checkpoint(path, trained, _old_reid_hparams(12, last_stride=2))
    net = load_reid_net(path)
    assert net.init_args["last_stride"] == 2 and net.test_pooling == "avg"
    _assert_same_weights(net, trained.net)
    restored = ReIDModule.load_from_checkpoint(path)
    _assert_same_weights(restored, trained)
    assert restored.hparams["net"] == trained.hparams["net"]
    assert not set(MOVED_ARGUMENTS) & set(restored.hparams) and "num_target_cameras" not in restored.hparams
    assert restored.hparams.distance == "cosine" and restored.also_test == {"lmp": "euclidean"}
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    torch.testing.assert_close(restored.net.eval().extract(x), trained.net.eval().extract(x), rtol=0, atol=0)
    # an argument given to load_from_checkpoint still wins over the checkpoint's
    assert ReIDModule.load_from_checkpoint(path, distance="euclidean").hparams.distance == "euclidean"


def test_an_old_taudl_checkpoint_loads_with_its_heads_and_memory(tmp_path):
    torch.manual_seed(0)
    layout = [2, 3, 1]
    trained = TAUDLModule(num_source_pids=12, num_query=22, net=TINY_REID, source_weight=0.0)
    trained.build_target_heads(layout)
    trained.ccta.memory.update(torch.randn(2, 512), torch.tensor([1, 4]))
    taudl = {"taudl_weight": 1.0, "taudl_lambda": 0.7, "source_weight": 0.0, "ccta_start_epoch": 0.0,
             "ccta_ramp_epochs": 1.0, "ccta_neighbours": None, "ccta_temperature": 0.1, "memory_momentum": 0.5,
             "ccta_feature": "neck", "pctd_label_smooth": 0.0}
    path = tmp_path / "old_taudl.ckpt"
    _write_old_checkpoint(path, trained, _old_reid_hparams(
        12, _class_path="crgan_lightning.modules.taudl.TAUDLModule", **taudl))
    restored = TAUDLModule.load_from_checkpoint(path)
    assert restored.tracklet_layout == layout and restored.hparams.source_weight == 0.0
    assert not restored.net.classifier.weight.requires_grad  # TAUDL alone: the source classifier stays frozen
    _assert_same_weights(restored, trained)
    _assert_same_weights(load_reid_net(path), trained.net)
