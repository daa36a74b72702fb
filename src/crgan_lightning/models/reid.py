"""The re-id network: a timm CNN backbone, last stride 1, BNNeck, and test-time pooling (GAP or LMP).

Input is the library's image convention (RGB float in [-1, 1], NCHW); the network converts to
its backbone's normalisation (ImageNet statistics for timm's pretrained CNNs) inside
:meth:`ReIDNet.forward`.

Training forward returns ``(logits, feat)``: the classifier logits over source identities
(computed from the BN-neck feature) and the pooled feature before the BN neck (the one the
triplet loss uses, as in the BNNeck design of Luo et al., "Bag of Tricks", 2019).
Evaluation forward returns the BN-neck feature computed with ``test_pooling``.
"""

from __future__ import annotations

from urllib.parse import urlparse

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, WeightsError
from ..checkpoints import read_state_dict
from ..hub import hub_endpoint, hub_offline, reachable
from .specs import init_arguments


class InputNormalize(nn.Module):
    """Converts the library's images (RGB in [-1, 1]) to a backbone's normalisation:
    ``((x + 1) / 2 - mean) / std``, computed as ``x * scale + shift``."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 0.5 / std_t, persistent=False)
        self.register_buffer("shift", (0.5 - mean_t) / std_t, persistent=False)

    @classmethod
    def for_backbone(cls, model: nn.Module) -> InputNormalize:
        """The normalisation of a timm model's pretrained config (ImageNet statistics by default)."""
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        return cls(cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class LocalMaxPooling(nn.Module):
    """Local max pooling (LMP) over horizontal stripes.

    The feature map (B, C, H, W) is cut into ``parts`` horizontal stripes; each stripe is
    max-pooled over its rows and columns, giving ``parts`` vectors of size C, which are then
    averaged (``combine="mean"``, the default, giving (B, C)) or concatenated
    (``combine="concat"``, giving (B, C * parts)).

    Why: global max pooling keeps only the strongest response over the whole map, so one noisy
    region (a background object, a rendering artefact in a synthetic image) can dominate the
    descriptor; average pooling dilutes discriminative body parts with background. Taking the
    maximum inside each stripe keeps the strongest local evidence of every body region (head,
    torso, legs...) and averaging over stripes limits how much any single region can weigh.
    It needs no training and can be applied to any trained CNN at test time. ``parts=1`` is
    global max pooling. When H is not a multiple of ``parts``, stripes follow adaptive pooling
    (boundaries at floor/ceil of ``i * H / parts``) and may overlap by a row.
    """

    def __init__(self, parts: int = 6, combine: str = "mean") -> None:
        super().__init__()
        if parts < 1:
            raise ConfigError(f"LMP parts={parts} must be >= 1")
        if combine not in ("mean", "concat"):
            raise ConfigError(f"LMP combine={combine!r}; expected 'mean' or 'concat'")
        self.parts = parts
        self.combine = combine

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        stripes = F.adaptive_max_pool2d(fmap, (self.parts, 1)).flatten(2)  # (B, C, parts)
        if self.combine == "mean":
            return stripes.mean(dim=2)
        return stripes.transpose(1, 2).flatten(1)


def pool_features(fmap: torch.Tensor, pooling: str, lmp_parts: int = 6) -> torch.Tensor:
    """Pool a feature map (B, C, H, W) to (B, C): ``"avg"`` (GAP), ``"max"`` (GMP) or ``"lmp"``."""
    if pooling == "avg":
        return fmap.mean(dim=(2, 3))
    if pooling == "max":
        return fmap.amax(dim=(2, 3))
    if pooling == "lmp":
        return LocalMaxPooling(lmp_parts)(fmap)
    raise ConfigError(f"pooling={pooling!r}; expected 'avg', 'max' or 'lmp'")


def _set_last_stride_one(model: nn.Module, backbone: str) -> None:
    """Make the last stage keep the spatial size of the previous one by setting its stride-2
    convolutions (and the stride-2 shortcut) to stride 1; no dilation is introduced.

    The weights are untouched, so pretrained weights still apply (the usual re-id practice of
    "last stride 1"). Works for timm CNNs whose last stage downsamples with strided
    convolutions or a stride-2 average-pool shortcut (ResNet, ResNet-D, ResNeXt, SE-ResNet,
    RegNet...); anything else raises :class:`ConfigError`.
    """
    info = getattr(model, "feature_info", None)
    if not info:
        raise ConfigError(f"last_stride=1: backbone {backbone!r} has no feature_info to find its last stage")
    last = info[-1]["module"] if isinstance(info, list) else info.module_name()[-1]
    changed = 0
    for name, mod in list(model.named_modules()):
        if not (name == last or name.startswith(last + ".")):
            continue
        if isinstance(mod, nn.Conv2d) and mod.stride == (2, 2):
            mod.stride = (1, 1)
            changed += 1
        elif isinstance(mod, nn.AvgPool2d) and mod.stride in (2, (2, 2)):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, nn.Identity())
            changed += 1
    if changed == 0:
        raise ConfigError(f"last_stride=1: found no stride-2 layer in the last stage {last!r} of {backbone!r}")


def create_backbone(backbone: str, pretrained: bool, pretrained_path: str | None) -> nn.Module:
    """A timm backbone without classifier or pooling, with pretrained weights when asked.

    ``pretrained_path`` (a local state dict) is used when given; otherwise, with
    ``pretrained=True``, timm downloads the weights. If that fails (offline), a
    :class:`WeightsError` names the backbone and the ``pretrained_path`` argument.
    """
    try:
        model = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="")
    except RuntimeError as exc:
        if "Unknown model" not in str(exc):
            raise
        raise ConfigError(f"backbone {backbone!r} is not a timm model name (e.g. 'resnet50', 'resnet18')") from None
    if pretrained_path is not None:
        state = read_state_dict(pretrained_path, "weight file")
        state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier.", "head.fc."))}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise WeightsError(f"weight file {pretrained_path} does not fit backbone {backbone!r}: {exc}") from None
        if missing or unexpected:
            raise WeightsError(
                f"weight file {pretrained_path} does not fit backbone {backbone!r}: "
                f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected "
                f"(e.g. {unexpected[:3]})"
            )
    elif pretrained:
        online = reachable(hub_endpoint())  # offline: timm's local cache only, no minute of download retries
        try:
            with hub_offline(not online):
                loaded = timm.create_model(backbone, pretrained=True, num_classes=0, global_pool="")
        except Exception as exc:
            why = f"{urlparse(hub_endpoint()).hostname} cannot be reached" if not online else type(exc).__name__
            raise WeightsError(
                f"ImageNet weights for {backbone!r} could not be downloaded ({why}) and are not in timm's cache; "
                f"give a local state dict with pretrained_path=FILE, or pretrained=False to start from random weights"
            ) from None
        model.load_state_dict(loaded.state_dict())
    return model


class ReIDNet(nn.Module):
    """Re-id CNN: timm backbone -> pooling -> BNNeck -> identity classifier.

    The network a :class:`~crgan_lightning.modules.reid.ReIDModule` trains by default; the module
    builds it with ``num_classes`` set to the number of source identities, and a config sets the
    other arguments under ``model.init_args.net.init_args``. It records them (``init_args``), so a
    checkpoint keeps it as a spec and :func:`~crgan_lightning.networks.load_reid_net` rebuilds it.

    Args:
        backbone: any timm CNN name (``resnet50`` as in the paper, ``resnet18`` for quick runs).
        pretrained: start from ImageNet weights (downloaded by timm, or read from ``pretrained_path``).
        pretrained_path: local weight file for offline use.
        last_stride: 1 keeps the last stage at the previous stage's resolution (16x8 at 256x128).
        num_classes: number of training identities (0: no classifier, a feature extractor).
        neck: ``"bnneck"`` (BatchNorm without bias between feature and classifier) or ``"none"``.
        pooling: training pooling, ``"avg"`` or ``"max"`` (or ``"lmp"``).
        test_pooling: evaluation pooling, ``"avg"``, ``"max"`` or ``"lmp"``.
        lmp_parts: stripes of LMP.
        flip_test: average the features of the image and its horizontal mirror at evaluation.
        normalize_input: convert [-1, 1] input to the backbone's mean/std (keep True).
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        pretrained: bool = True,
        pretrained_path: str | None = None,
        last_stride: int = 1,
        num_classes: int = 0,
        neck: str = "bnneck",
        pooling: str = "avg",
        test_pooling: str = "lmp",
        lmp_parts: int = 6,
        flip_test: bool = False,
    ) -> None:
        super().__init__()
        self.init_args = init_arguments(locals())  # what a checkpoint rebuilds it from
        for name, value in (("pooling", pooling), ("test_pooling", test_pooling)):
            if value not in ("avg", "max", "lmp"):
                raise ConfigError(f"{name}={value!r}; expected 'avg', 'max' or 'lmp'")
        if neck not in ("bnneck", "none"):
            raise ConfigError(f"neck={neck!r}; expected 'bnneck' or 'none'")
        if last_stride not in (1, 2):
            raise ConfigError(f"last_stride={last_stride}; expected 1 or 2")
        self.backbone = create_backbone(backbone, pretrained, pretrained_path)
        if last_stride == 1:
            _set_last_stride_one(self.backbone, backbone)
        self.normalize = InputNormalize.for_backbone(self.backbone)
        self.feat_dim = self.backbone.num_features
        self.pooling, self.test_pooling, self.lmp_parts = pooling, test_pooling, lmp_parts
        self.flip_test = flip_test
        self.neck = nn.BatchNorm1d(self.feat_dim) if neck == "bnneck" else nn.Identity()
        if neck == "bnneck":
            self.neck.bias.requires_grad_(False)
            nn.init.constant_(self.neck.weight, 1.0)
            nn.init.constant_(self.neck.bias, 0.0)
        self.classifier = nn.Linear(self.feat_dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone feature map (B, C, h, w) of images (B, 3, H, W) in [-1, 1]."""
        return self.backbone.forward_features(self.normalize(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        if self.training:
            feat = pool_features(self.feature_map(x), self.pooling, self.lmp_parts)
            if self.classifier is None:
                return feat
            return self.classifier(self.neck(feat)), feat
        return self.extract(x)

    @torch.no_grad()
    def extract(self, x: torch.Tensor, pooling: str | None = None) -> torch.Tensor:
        """Evaluation features (B, C) with ``pooling`` (default ``test_pooling``), averaged with the
        mirrored image's feature when ``flip_test``.

        With the training pooling the feature is the BN-neck output. With another pooling (LMP on
        a network trained with average pooling, the paper's test-time use of LMP) it is the pooled
        feature itself: the neck's running statistics describe the training pooling's features and
        would rescale the others wrongly.
        """
        pooling = pooling or self.test_pooling
        return self.extract_poolings(x, (pooling,))[pooling]

    @torch.no_grad()
    def extract_poolings(self, x: torch.Tensor, poolings: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """:meth:`extract` for several poolings from one backbone pass (two with ``flip_test``):
        ``{pooling: (B, C) features}``."""
        maps = [self.feature_map(x)] + ([self.feature_map(x.flip(3))] if self.flip_test else [])

        def feature(fmap: torch.Tensor, pooling: str) -> torch.Tensor:
            pooled = pool_features(fmap, pooling, self.lmp_parts)
            return self.neck(pooled) if pooling == self.pooling else pooled

        out = {}
        for pooling in poolings:
            feats = [feature(fmap, pooling) for fmap in maps]
            out[pooling] = feats[0] if len(feats) == 1 else 0.5 * (feats[0] + feats[1])
        return out
