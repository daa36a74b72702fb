"""Trained networks rebuilt from ``crgan fit`` checkpoints: the CR-GAN generator, an SPGAN
generator and a re-id network, each built from the checkpoint's own hyper-parameters (a GAN
module's ``generator`` spec, a re-id module's ``net`` spec, :mod:`crgan_lightning.models.specs`),
loaded strictly, frozen and in
eval mode. Files are read by :mod:`crgan_lightning.checkpoints`; a
missing, unreadable or wrong checkpoint raises :class:`~crgan_lightning.errors.WeightsError`
naming the file.
"""

from __future__ import annotations

import os

import torch

from .checkpoints import KIND_PREFIXES, checkpoint_kind, hyperparameters, read_checkpoint, submodule_weights
from .errors import ConfigError, WeightsError
from .models.discriminator import AuxiliaryClassifier, PatchDiscriminator
from .models.generator import DualPathGenerator
from .models.reid import ReIDNet
from .models.spgan import DIRECTIONS, ResnetGenerator, SiameseNet
from .models.specs import build_network, class_path, for_trained_weights

_FLAT_DISCRIMINATOR = {"d_base_channels": "base_channels", "d_layers": "n_layers", "d_norm": "norm"}
#: Checkpoints written before the networks were injected keep each network's arguments as flat
#: hyper-parameters. Per module kind and network: the network's class, ``{flat key: argument}``, and
#: the defaults those modules had where they differ from the class's own.
FLAT_NETWORK_KEYS = {
    "crgan": {
        "generator": (DualPathGenerator, {
            "g_base_channels": "base_channels", "g_num_down": "num_down", "g_max_channels": "max_channels",
            "g_res_blocks": "num_res_blocks", "g_norm": "norm", "g_fuse": "fuse", "g_target_skips": "target_skips",
            "g_dropout": "use_dropout", "g_space_to_depth": "space_to_depth", "g_outer_kernel": "outer_kernel",
            "g_padding": "padding", "g_source_norm": "source_norm", "g_decoder_norm": "decoder_norm",
            "g_target_input": "target_input"}, {}),
        "discriminator": (PatchDiscriminator, _FLAT_DISCRIMINATOR, {}),
        "classifier": (AuxiliaryClassifier, {
            "cls_backbone": "backbone", "cls_pretrained": "pretrained", "cls_pretrained_path": "pretrained_path",
            "cls_feat_dim": "feat_dim"}, {}),
    },
    "spgan": {
        "generator": (ResnetGenerator, {
            "g_base_channels": "base_channels", "g_num_down": "num_down", "g_res_blocks": "num_res_blocks",
            "g_upsample": "upsample"}, {"num_res_blocks": 6}),
        "discriminator": (PatchDiscriminator, _FLAT_DISCRIMINATOR, {}),
        "siamese": (SiameseNet, {"siamese_base_channels": "base_channels", "siamese_feat_dim": "feat_dim"}, {}),
    },
    "reid": {  # the old ReIDModule passed these arguments of its own to ReIDNet, with the same defaults
        "net": (ReIDNet, {name: name for name in (
            "backbone", "pretrained", "pretrained_path", "last_stride", "neck", "pooling", "test_pooling",
            "lmp_parts", "flip_test")}, {}),
    },
}


def network_specs(hparams: dict, kind: str) -> dict[str, dict]:
    """Every network's spec (``class_path``, ``init_args``) in a CR-GAN (``kind="crgan"``), SPGAN or
    re-id checkpoint's hyper-parameters, by argument name (``generator``, ``discriminator``, ...,
    ``net``); one written with flat ``g_*`` / ``d_*`` / ``cls_*`` / ``siamese_*`` keys, or a re-id one
    with the network's arguments among the module's (``backbone``, ...), is read as well."""
    specs = {}
    for name, (cls, flat_keys, old_defaults) in FLAT_NETWORK_KEYS[kind].items():
        spec = hparams.get(name)
        if isinstance(spec, dict) and "class_path" in spec:
            specs[name] = spec
            continue
        init_args = dict(old_defaults)
        init_args.update({arg: hparams[key] for key, arg in flat_keys.items() if hparams.get(key) is not None})
        specs[name] = {"class_path": class_path(cls), "init_args": init_args}
    return specs


def generator_spec(hparams: dict, kind: str) -> dict:
    """The ``generator`` spec of a CR-GAN or SPGAN checkpoint's hyper-parameters (:func:`network_specs`)."""
    return network_specs(hparams, kind)["generator"]


def _frozen(net: torch.nn.Module, path, map_location, weights: dict, what: str) -> torch.nn.Module:
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{what} weights in {path} do not match its hyper-parameters: {exc}") from None
    return net.to(map_location).eval().requires_grad_(False)


def load_generator(checkpoint: str | os.PathLike, map_location: str | torch.device = "cpu") -> DualPathGenerator:
    """The trained generator of a CR-GAN checkpoint (``make train-crgan``)."""
    ckpt = read_checkpoint(checkpoint, "CR-GAN checkpoint", "the last.ckpt of a CR-GAN run (make train-crgan)",
                           mmap=False)
    weights = submodule_weights(ckpt, KIND_PREFIXES["crgan"])
    if not weights:
        raise WeightsError(f"{checkpoint} holds no CR-GAN generator weights (is it a re-id checkpoint?)")
    generator = build_network(generator_spec(hyperparameters(ckpt), "crgan"), DualPathGenerator,
                              f"generator of {checkpoint}")
    return _frozen(generator, checkpoint, map_location, weights, "generator")


def load_spgan_generator(
    checkpoint: str | os.PathLike, map_location: str | torch.device = "cpu", direction: str = "s2t"
) -> ResnetGenerator:
    """One trained generator of an SPGAN checkpoint (``make train-spgan``): ``direction="s2t"``
    the source -> target one (which translates the labelled source images for re-id), ``"t2s"``
    the target -> source one."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"SPGAN generator direction={direction!r}; expected one of {tuple(DIRECTIONS)}")
    ckpt = read_checkpoint(checkpoint, "SPGAN checkpoint", "the last.ckpt of an SPGAN run (make train-spgan)",
                           mmap=False)
    weights = submodule_weights(ckpt, DIRECTIONS[direction] + ".")
    if not weights:
        hint = " (it is a CR-GAN checkpoint: use load_generator)" if checkpoint_kind(ckpt) == "crgan" else ""
        raise WeightsError(f"{checkpoint} holds no SPGAN generator weights{hint}")
    generator = build_network(generator_spec(hyperparameters(ckpt), "spgan"), ResnetGenerator,
                              f"SPGAN generator of {checkpoint}")
    return _frozen(generator, checkpoint, map_location, weights, "SPGAN generator")


def load_reid_net(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """The network of a re-id checkpoint (``last.ckpt`` of ``make train-reid``, the CR-GAN judge and
    the Table 1 stand-ins read it): a :class:`~crgan_lightning.models.reid.ReIDNet`, or the network
    class the run was given, rebuilt from the checkpoint's ``net`` spec (or the flat arguments of a
    checkpoint written before the network was injected) without pretrained weights. A CR-GAN or
    SPGAN checkpoint or a truncated file is refused."""
    expected = "the last.ckpt of a re-id run (make train-reid, or the direct-transfer run of the demo)"
    ckpt = read_checkpoint(path, "re-id checkpoint", expected, mmap=False)
    hparams = hyperparameters(ckpt)
    weights = submodule_weights(ckpt, KIND_PREFIXES["reid"])
    if not weights or "num_source_pids" not in hparams:
        raise WeightsError(f"{path} is not a re-id checkpoint (no net.* weights); expected {expected}")
    what = f"re-id network of {path}"
    spec = for_trained_weights(network_specs(hparams, "reid")["net"], ReIDNet, what)
    net = build_network(spec, ReIDNet, what, num_classes=int(hparams["num_source_pids"]))
    return _frozen(net, path, map_location, weights, "re-id network")
