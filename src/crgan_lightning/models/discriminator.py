"""The two judges of CR-GAN: a PatchGAN domain discriminator and an identity/camera classifier.

:class:`PatchDiscriminator` tells real target-domain images from rendered ones. It is the
pix2pix PatchGAN ("70x70" receptive field with the defaults): a stack of 4x4 convs that
returns a map (B, 1, h, w) of real/fake logits, one per overlapping image patch, which the
adversarial loss (:class:`crgan_lightning.losses.AdversarialLoss`) averages. Real = target
images ``x_t``, fake = generated ``x_g``.

:class:`AuxiliaryClassifier` scores images for the identity loss ``-log p(y_id | x_g)`` (the
identity of the source person) and the camera loss ``-log p(y_cam | x_g)`` (the camera that
took the target image). It is a timm CNN trunk with global average pooling, a BatchNorm and
two linear heads. It is trained on REAL images only (source images with their identities for
the identity head, target images with their cameras for the camera head) and used, frozen for
the generator's step (:meth:`AuxiliaryClassifier.frozen`), to score ``x_g``.

Why the two do NOT share a trunk:

- They need different evidence. Domain realism is about local statistics (textures, colour
  tone, light, background surfaces), which a PatchGAN's small receptive field judges patch by
  patch; identity and camera need global evidence over the whole body and scene (clothing
  layout from head to feet, the viewpoint and geometry of a camera), which a deep CNN with
  global pooling provides.
- Their gradients would fight. The domain discriminator is trained adversarially against a
  moving generator; the classifier is trained by plain classification on real data. In one
  trunk, the adversarial gradients would keep reshaping the features the heads rely on, and
  the heads' gradients would in turn bend the realism features towards identity.
- The classifier must stay a stable judge. The identity and camera losses only make sense if
  ``p(y | x)`` means the same thing from step to step; a classifier trained on real images
  and frozen while it scores ``x_g`` cannot be talked into accepting an image by the
  generator, whereas a shared, adversarially trained trunk would drift with the game.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.nn.utils import spectral_norm

from ..errors import ConfigError
from .generator import init_weights, norm_layer
from .reid import InputNormalize, create_backbone, pool_features
from .specs import init_arguments

DISCRIMINATOR_NORMS = ("instance", "batch", "spectral", "none")
#: The arguments a GAN module passes when it builds its identity/camera classifier (from the data).
CLASSIFIER_CALL_ARGS = ("num_identities", "num_cameras")


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al., pix2pix): a map of real/fake logits over image patches.

    Layers: conv4x4/2 (no norm) -> LeakyReLU(0.2); ``n_layers - 1`` x [conv4x4/2 -> norm ->
    LeakyReLU]; conv4x4/1 -> norm -> LeakyReLU; conv4x4/1 to one channel (raw logits, no
    sigmoid). Widths ``base_channels * min(2**i, 8)``.

    Args:
        in_channels: image channels (3).
        base_channels: width of the first layer.
        n_layers: stride-2 layers (3 gives the 70x70 receptive field of pix2pix).
        norm: ``"instance"`` (default), ``"batch"``, ``"spectral"`` (spectral normalisation of
            every conv, no norm layers; Miyato et al. 2018) or ``"none"``.
        spectral: also normalise every conv spectrally while keeping the ``norm`` layers (e.g.
            instance norm with spectral norm, as SPADE's discriminator does); ``norm="spectral"``
            implies it.

    Shapes: (B, in_channels, H, W) in [-1, 1] -> (B, 1, h, w) logits; with ``n_layers=3``,
    256x128 gives 30x14 and 128x64 gives 14x6 (see :meth:`output_size`).
    """

    def __init__(
        self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3, norm: str = "instance",
        spectral: bool = False,
    ) -> None:
        super().__init__()
        self.init_args = init_arguments(locals())  # what a checkpoint rebuilds it from
        if norm not in DISCRIMINATOR_NORMS:
            raise ConfigError(f"discriminator norm={norm!r}; expected one of {DISCRIMINATOR_NORMS}")
        if n_layers < 1:
            raise ConfigError(f"discriminator n_layers={n_layers}; expected >= 1")
        self.n_layers = n_layers
        use_bias = norm in ("spectral", "none")
        layer_norm = "none" if norm == "spectral" else norm
        wrap = spectral_norm if norm == "spectral" or spectral else (lambda m: m)

        def conv(in_ch: int, out_ch: int, stride: int, bias: bool) -> nn.Module:
            return wrap(nn.Conv2d(in_ch, out_ch, 4, stride, 1, bias=bias))

        layers: list[nn.Module] = [conv(in_channels, base_channels, 2, True), nn.LeakyReLU(0.2, inplace=True)]
        width = base_channels
        for i in range(1, n_layers + 1):
            out = base_channels * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [
                conv(width, out, stride, use_bias),
                norm_layer(layer_norm, out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = out
        layers.append(conv(width, 1, 1, True))
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Size (h, w) of the logit map for an input of ``height`` x ``width``."""

        def shrink(n: int) -> int:
            for _ in range(self.n_layers):
                n = n // 2  # 4x4, stride 2, padding 1
            return n - 2  # two 4x4 stride-1 convs with padding 1 each remove one pixel

        return shrink(height), shrink(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits (B, 1, h, w) of images (B, C, H, W); positive means "real target image"."""
        return self.model(x)


class AuxiliaryClassifier(nn.Module):
    """Identity and camera classifier that scores rendered images for the identity and camera losses.

    timm trunk (via :func:`crgan_lightning.models.reid.create_backbone`) -> global average
    pooling -> [optional linear projection to ``feat_dim``] -> BatchNorm1d -> two linear heads.

    Args:
        num_identities: source training identities (0 disables the identity head).
        num_cameras: target-domain cameras (0 disables the camera head).
        backbone: timm CNN name (``resnet18`` default, ``resnet50`` for the full setting).
        pretrained: start from ImageNet weights (timm download, or ``pretrained_path``).
        pretrained_path: local weight file for offline use.
        feat_dim: if given, a linear projection of the pooled trunk feature to this size
            before the BatchNorm; ``None`` keeps the trunk's width (512 for resnet18).

    ``forward(x)`` with x (B, 3, H, W) in [-1, 1] (converted to the trunk's ImageNet
    normalisation inside) returns ``(id_logits, cam_logits)``: (B, num_identities) and
    (B, num_cameras) raw logits, ``None`` for a disabled head. Train the identity head on real
    source images and the camera head on real target images (each batch trains only the head
    it has labels for); score generated images inside :meth:`frozen`.
    """

    def __init__(
        self,
        num_identities: int,
        num_cameras: int,
        backbone: str = "resnet18",
        pretrained: bool = False,
        pretrained_path: str | None = None,
        feat_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.init_args = init_arguments(locals())  # what a checkpoint rebuilds it from
        for name, value in (("num_identities", num_identities), ("num_cameras", num_cameras)):
            if not isinstance(value, int) or value < 0:
                raise ConfigError(
                    f"AuxiliaryClassifier {name}={value!r}; expected an integer >= 0 (0 disables the head)"
                )
        if feat_dim is not None and feat_dim < 1:
            raise ConfigError(f"AuxiliaryClassifier feat_dim={feat_dim}; expected None or an integer >= 1")
        self.num_identities, self.num_cameras = num_identities, num_cameras
        self.trunk = create_backbone(backbone, pretrained, pretrained_path)
        self.normalize = InputNormalize.for_backbone(self.trunk)
        trunk_dim = self.trunk.num_features
        self.projection = nn.Linear(trunk_dim, feat_dim) if feat_dim is not None else nn.Identity()
        self.feat_dim = feat_dim if feat_dim is not None else trunk_dim
        self.bn = nn.BatchNorm1d(self.feat_dim)
        self.id_head = nn.Linear(self.feat_dim, num_identities) if num_identities > 0 else None
        self.cam_head = nn.Linear(self.feat_dim, num_cameras) if num_cameras > 0 else None
        for head in (self.id_head, self.cam_head):
            if head is not None:
                nn.init.normal_(head.weight, std=0.001)
                nn.init.zeros_(head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """BatchNorm'd global feature (B, feat_dim) of images (B, 3, H, W) in [-1, 1]."""
        fmap = self.trunk.forward_features(self.normalize(x))
        return self.bn(self.projection(fmap.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(id_logits (B, num_identities) | None, cam_logits (B, num_cameras) | None)``."""
        feat = self.features(x)
        id_logits = self.id_head(feat) if self.id_head is not None else None
        cam_logits = self.cam_head(feat) if self.cam_head is not None else None
        return id_logits, cam_logits

    def frozen(self):
        """Context in which the classifier is a fixed judge: eval mode (BatchNorm uses its running
        statistics and is not updated by generated images) and no parameter gradients, while
        gradients still flow to the input. The previous mode and ``requires_grad`` flags are
        restored on exit::

            with classifier.frozen():
                id_logits, cam_logits = classifier(x_g)
        """
        return frozen(self)


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode with no parameter gradients inside the context (gradients still
    flow to its input); its mode and ``requires_grad`` flags are restored on exit."""
    was_training = module.training
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        module.train(was_training)


class ReIDJudge(nn.Module):
    """The identity and camera judge of CR-GAN built on a source-trained re-id network.

    A classifier trained from scratch next to the generator does not know the source people for
    most of a short run (its identity loss on renderings stays near chance), so its gradient
    cannot teach the generator to keep a person. This judge is the re-id network of the same
    pair trained on the source labels (the direct-transfer checkpoint), **frozen** for the whole
    run: its identity classifier scores ``-log p(y_id | x_g)`` from the first step. Only a linear
    camera head on its (BN-neck) feature is trained, on real target images, to score
    ``-log p(y_cam | x_g)``.

    ``forward(x)`` returns ``(id_logits, cam_logits)`` like
    :class:`AuxiliaryClassifier`, so :class:`~crgan_lightning.modules.crgan.CRGANModule` uses
    either. The re-id network stays in eval mode whatever ``train()`` is asked.

    Args:
        net: a re-id network with its identity classifier (:func:`~crgan_lightning.networks.load_reid_net`).
        num_cameras: target-domain cameras of the camera head.
    """

    def __init__(self, net: nn.Module, num_cameras: int) -> None:
        super().__init__()
        if getattr(net, "classifier", None) is None:
            raise ConfigError("the judge's re-id network has no identity classifier (num_classes=0); "
                              "expected the checkpoint of a re-id run trained on the source labels")
        if num_cameras < 1:
            raise ConfigError(f"ReIDJudge num_cameras={num_cameras}; expected >= 1")
        self.net = net.eval().requires_grad_(False)
        self.num_identities, self.num_cameras = net.classifier.out_features, num_cameras
        self.cam_head = nn.Linear(net.feat_dim, num_cameras)

    def train(self, mode: bool = True) -> ReIDJudge:
        super().train(mode)
        self.net.eval()  # frozen BatchNorm statistics: the judge never changes
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The re-id network's BN-neck feature (B, C) of images in [-1, 1] (its training pooling)."""
        net = self.net
        return net.neck(pool_features(net.feature_map(x), net.pooling, net.lmp_parts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.features(x)
        return self.net.classifier(feat), self.cam_head(feat)

    def frozen(self):
        """Scoring renderings: as :meth:`AuxiliaryClassifier.frozen`."""
        return frozen(self)
