"""The networks of the SPGAN baseline (Deng et al., CVPR 2018): a CycleGAN generator and the SiaNet.

SPGAN ("Similarity Preserving GAN") translates whole source-domain images into the style of
the target domain with a CycleGAN, and adds a Siamese metric network ("SiaNet") whose
contrastive loss keeps a translated image close to its source image (self-similarity) and far
from the images of the domain it was translated into (domain-dissimilarity). Unlike the CR-GAN
generator it takes one image, ``G(x_s) -> x_g``: there is no target context to render into.

- :class:`ResnetGenerator`: the CycleGAN ResNet generator (Zhu et al., 2017; Johnson et al., 2016).
- :class:`SiameseNet`: the SiaNet embedding, (B, 3, H, W) -> (B, feat_dim).
- (:func:`crgan_lightning.networks.load_spgan_generator` reads one direction of a trained SPGAN checkpoint.)

The SPGAN training loop is :class:`crgan_lightning.modules.spgan.SPGANModule`; the contrastive
loss is :func:`crgan_lightning.losses.contrastive_loss`.
"""

from __future__ import annotations


import torch
from torch import nn

from ..errors import ConfigError
from .generator import NORMS, ResidualBlock, init_weights, norm_layer
from .specs import init_arguments

UPSAMPLES = ("transpose", "nearest")
DIRECTIONS = {"s2t": "generator_st", "t2s": "generator_ts"}


class ResnetGenerator(nn.Module):
    """CycleGAN ResNet generator ``G(x) -> y``: one image in, its translation (same size) out.

    Layers (CycleGAN's notation)::

        c7s1-base                      reflect pad 3, conv7x7, norm, ReLU
        d(2 base) ... d(2**num_down base)   conv3x3 stride 2, norm, ReLU (halves H and W)
        R x num_res_blocks             reflect-pad conv3x3, norm, ReLU, conv3x3, norm, plus skip
        u(...) ... u(base)             x2 upsampling, norm, ReLU (mirror of the downsamplings)
        c7s1-out                       reflect pad 3, conv7x7, tanh

    CycleGAN uses 9 residual blocks at 256x256 and 6 at 128x128.

    Args:
        in_channels, out_channels: image channels (3 and 3).
        base_channels: width of the full-resolution layers; doubles at every downsampling.
        num_down: stride-2 downsamplings (and as many upsamplings).
        num_res_blocks: residual blocks at the bottleneck.
        norm: ``"instance"`` (default, as CycleGAN), ``"batch"`` or ``"none"``.
        upsample: ``"transpose"`` (3x3 stride-2 transposed conv, as CycleGAN and SPGAN) or
            ``"nearest"`` (nearest x2 upsampling + 3x3 conv, which avoids the checkerboard
            artefacts of transposed convs).

    Shapes: (B, in_channels, H, W) in [-1, 1] -> (B, out_channels, H, W) in [-1, 1]; H and W
    must be divisible by ``2**num_down``, otherwise :meth:`forward` raises
    :class:`~crgan_lightning.errors.ConfigError` naming the size.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        base_channels: int = 64,
        num_down: int = 2,
        num_res_blocks: int = 9,
        norm: str = "instance",
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        self.init_args = init_arguments(locals())  # what a checkpoint rebuilds it from
        if norm not in NORMS:
            raise ConfigError(f"generator norm={norm!r}; expected one of {NORMS}")
        if upsample not in UPSAMPLES:
            raise ConfigError(f"generator upsample={upsample!r}; expected one of {UPSAMPLES}")
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("base_channels", base_channels, 1), ("num_down", num_down, 0),
                                 ("num_res_blocks", num_res_blocks, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"generator {name}={value!r}; expected an integer >= {low}")
        self.in_channels = in_channels
        self.num_down = num_down
        bias = norm == "none"  # a norm layer removes any bias
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 7, 1, 3, bias=bias, padding_mode="reflect"),
            norm_layer(norm, base_channels), nn.ReLU(inplace=True),
        ]
        width = base_channels
        for _ in range(num_down):
            layers += [nn.Conv2d(width, 2 * width, 3, 2, 1, bias=bias), norm_layer(norm, 2 * width),
                       nn.ReLU(inplace=True)]
            width *= 2
        layers += [ResidualBlock(width, norm, use_dropout=False) for _ in range(num_res_blocks)]
        for _ in range(num_down):
            if upsample == "transpose":
                up = [nn.ConvTranspose2d(width, width // 2, 3, 2, 1, output_padding=1, bias=bias)]
            else:
                up = [nn.Upsample(scale_factor=2, mode="nearest"),
                      nn.Conv2d(width, width // 2, 3, 1, 1, bias=bias, padding_mode="reflect")]
            layers += [*up, norm_layer(norm, width // 2), nn.ReLU(inplace=True)]
            width //= 2
        layers += [nn.Conv2d(width, out_channels, 7, 1, 3, padding_mode="reflect"), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self)

    @property
    def size_multiple(self) -> int:
        """Input heights and widths must be multiples of this (``2**num_down``)."""
        return 2**self.num_down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate images (B, C, H, W) in [-1, 1]; returns (B, out_channels, H, W) in [-1, 1]."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"generator input has shape {tuple(x.shape)}; expected (B, {self.in_channels}, H, W)")
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ConfigError(f"generator input size {h}x{w} (HxW) is not divisible by 2**num_down = {m}; "
                              f"resize images to multiples of {m} (e.g. 256x128 or 128x64) or lower num_down")
        return self.model(x)

    def render(self, x_s: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """``G(x_s)``; ``x_t`` is ignored (SPGAN translates the whole image, with no target context).
        Lets a bare generator stand wherever a model with ``render(x_s, x_t)`` is expected (e.g.
        :func:`crgan_lightning.callbacks.images.render_grid`)."""
        return self(x_s)


class SiameseNet(nn.Module):
    """SPGAN's metric network ("SiaNet"): an image embedding for the contrastive loss.

    Four stages of conv3x3 (stride 1) -> LeakyReLU(0.2) -> 2x2 max pooling (stride 2), widths
    ``base_channels * (1, 2, 4, 8)``; the last map is average-pooled to 4x2 (the aspect ratio
    of a pedestrian image), flattened and mapped by a fully connected layer to ``feat_dim``.

    The published SiaNet has 4x4 stride-2 convs, each followed by the max pooling, and a fully
    connected layer on the flattened last map: it downsamples by 256, which leaves no pixels of
    a 256x128 or 128x64 pedestrian image. Here the convs keep the resolution (each stage halves
    it once, by the pooling) and the fully connected layer reads a fixed 4x2 grid, which also
    makes the weights independent of the input size. The LeakyReLU slope is this library's choice.

    Args:
        in_channels: image channels (3).
        base_channels: width of the first stage (64 in the paper).
        feat_dim: embedding size (128 in the paper).

    Shapes: (B, in_channels, H, W) in [-1, 1] with H, W >= 16 -> (B, feat_dim), unnormalised.
    """

    MIN_SIZE = 16  # four 2x2 poolings

    def __init__(self, in_channels: int = 3, base_channels: int = 64, feat_dim: int = 128) -> None:
        super().__init__()
        self.init_args = init_arguments(locals())  # what a checkpoint rebuilds it from
        for name, value in (("in_channels", in_channels), ("base_channels", base_channels), ("feat_dim", feat_dim)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"SiameseNet {name}={value!r}; expected an integer >= 1")
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        width = in_channels
        for i in range(4):
            out = base_channels * 2**i
            layers += [nn.Conv2d(width, out, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True), nn.MaxPool2d(2, 2)]
            width = out
        layers.append(nn.AdaptiveAvgPool2d((4, 2)))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width * 4 * 2, feat_dim)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, feat_dim) of images (B, C, H, W) in [-1, 1]."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(f"SiameseNet input has shape {tuple(x.shape)}; expected (B, {self.in_channels}, H, W)")
        h, w = x.shape[-2:]
        if h < self.MIN_SIZE or w < self.MIN_SIZE:
            raise ConfigError(f"SiameseNet input size {h}x{w} (HxW) is too small: four 2x2 poolings need "
                              f"at least {self.MIN_SIZE}x{self.MIN_SIZE}")
        return self.fc(self.features(x).flatten(1))
