"""The CR-GAN generator: a dual-path encoder-decoder that renders a source person into a target context.

``G(x_s, x_t) -> x_g``: ``x_s`` is a labelled source-domain pedestrian image, ``x_t`` an
unlabelled target-domain image whose context (background, colour tone, light) the output
should take; ``x_g`` shows the source person in that context. All three are (B, 3, H, W)
float tensors in [-1, 1] (the library's image convention); the output ends in ``tanh``.

Layout (the paper, Chen, Zhu and Gong, ICCV 2019, describes a dual conditional generator but
leaves the details below open; these are the choices of this library)::

    x_s ─ stem ─ s0 ─ down ─ s1 ─ ... ─ s_n ─┐
                 │         │                 ├─ fuse (concat + 1x1 conv) ─ res blocks ─┐
    x_t ─ stem ─ t0 ─ down ─ t1 ─ ... ─ t_n ─┘                                         │
                 │ skip    │ skip                                                      │
    x_g ◄─ tanh ─ up ◄──── up ◄──── ... ◄──────────────────────────────────────────────┘

- **Two encoders, no shared weights.** The source path encodes the person (identity detail);
  the target path encodes the context. Each is a 7x7 stem conv at full resolution followed
  by ``num_down`` stride-2 4x4 convs (conv-norm-LeakyReLU(0.2), as in the pix2pix U-Net).
  Widths: ``base_channels * 2**i`` at level ``i``, capped at ``max_channels``
  (defaults 32-64-128-256-256 for ``num_down=4``; bottleneck at H/16 x W/16, 8x4 at 128x64,
  16x8 at 256x128).
- **Skips come from the source path.** U-Net skip connections carry the source features of
  every level (including the full-resolution stem) into the decoder, so that the fine
  appearance of the person (clothes texture, carried objects) survives the bottleneck.
- **Fusion at the bottleneck.** ``fuse="concat"`` concatenates the deepest source and target
  features and mixes them with a 1x1 conv-norm-ReLU; ``fuse="add"`` sums them (no extra
  weights). With ``target_skips=True`` every skip is also fused with the target features of
  the same level (same operator), which gives the decoder full-resolution background detail
  instead of the coarse context of the bottleneck alone; the price is more weights and an
  easier path to copy the whole target image (including its own person), which the context
  loss (background term restricted to both images' background) and the identity loss must
  then counter. Off by default.
- **Residual blocks** (``num_res_blocks`` of them, reflect padding, optional dropout 0.5 as in
  the pix2pix ResNet generator) transform the fused bottleneck.
- **Decoder: nearest upsampling + 3x3 conv** (``upsample="nearest"``; ``"bilinear"`` and
  ``"pixelshuffle"`` with ICNR are the other choices), not transposed convs: a stride-2 transposed
  conv with a kernel not divisible by its stride overlaps unevenly and paints checkerboard
  artefacts (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016), which
  are conspicuous on the smooth walls and floors of surveillance backgrounds. Each level
  upsamples, convolves to the skip width, concatenates the skip and convolves again; a final
  7x7 conv maps to RGB and ``tanh`` bounds it to [-1, 1].
- **Normalisation**: ``"instance"`` (default; per-image statistics, the usual choice for
  image-to-image translation, independent of batch size), ``"batch"`` or ``"none"``. Convs
  followed by a norm layer carry no bias (it would be removed by the normalisation). Instance
  norm removes each image's own mean and scale from every feature map; right after the
  full-resolution stems that is each image's absolute colour: the colour tone of the target
  context, which the rendering exists to take, and the colours of the person's clothes, which
  identify them. Batch norm keeps each image's colour relative to the batch (and its running
  statistics keep it outright in eval mode, where renderings are streamed). On the embedded
  benchmark ``norm="batch"`` lowered the background term of the context loss and helped re-id
  on two seeds of three, not on the third (the README gives the figures), so the default stays.
  ``source_norm`` and ``decoder_norm`` set the source encoder's and the decoder's apart.
- **Cheaper layout for CPUs** (``space_to_depth=2``, ``outer_kernel=3``, ``padding="zeros"``):
  the inputs are pixel-unshuffled (every 2x2 block of RGB pixels becomes 12 channels at half
  the resolution, losslessly), the whole network runs at H/2 x W/2, and the last conv predicts
  12 channels that a pixel shuffle puts back at H x W, so each output pixel is still predicted
  separately (the output conv starts as ICNR, :func:`icnr_`, so there is no checkerboard at
  initialisation). It exists for CPUs, where the full-resolution level of the default layout
  (few channels over many positions, where convolutions run least efficiently) is a large part
  of a pass (the README gives the measured speed-up). ``num_down`` counts the
  stride-2 stages after the rearrangement, so ``num_down=3`` keeps the 8x4 bottleneck of 128x64
  inputs. On the embedded benchmark its renderings helped re-id less than the default
  layout's, so the embedded config keeps the default (the README gives the figures).
- **Initialisation**: normal(0, 0.02) for conv and linear weights, normal(1, 0.02) for norm
  scales, zero biases (:func:`init_weights`, as in pix2pix).

Input heights and widths must be divisible by ``space_to_depth * 2**num_down`` and leave a
bottleneck of at least 2x2 (256x128 and 128x64 both qualify with the default ``num_down=4``);
anything else raises :class:`~crgan_lightning.errors.ConfigError` from
:meth:`DualPathGenerator.forward` naming the size.
"""

from __future__ import annotations


import torch
from torch import nn

from ..errors import ConfigError
from .specs import init_arguments

NORMS = ("instance", "batch", "none")
FUSIONS = ("concat", "add")
PADDINGS = ("reflect", "zeros")
#: What the target encoder sees: the target image, or the image with its own person blanked out.
TARGET_INPUTS = ("image", "masked")
#: How each decoder level doubles the resolution (:class:`UpBlock`).
UPSAMPLINGS = ("nearest", "bilinear", "pixelshuffle")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer for ``channels`` feature maps: ``"instance"`` (no affine, no
    running statistics, as in pix2pix), ``"batch"`` or ``"none"`` (identity)."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ConfigError(f"norm={norm!r}; expected one of {NORMS}")


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """Initialise a network in place as pix2pix does and return it.

    Conv / transposed-conv / linear weights ~ N(0, gain), their biases 0; BatchNorm (and affine
    InstanceNorm) scales ~ N(1, gain), shifts 0. Spectrally normalised convs are initialised
    through their ``weight_orig`` parameter.
    """

    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = getattr(m, "weight_orig", None)
            if weight is None:
                weight = m.weight
            nn.init.normal_(weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    module.apply(_init)
    return module


def icnr_(conv: nn.Conv2d, scale: int) -> nn.Conv2d:
    """Initialise in place a conv whose output feeds ``nn.PixelShuffle(scale)`` so that the pair
    starts as a nearest-neighbour upsampling of one conv (ICNR: Aitken et al., "Checkerboard
    artifact free sub-pixel convolution", 2017): the ``scale**2`` output channels of each colour
    share one kernel. Without it every sub-pixel position starts with its own random kernel
    and the first renderings carry a ``scale`` x ``scale`` checkerboard. Returns ``conv``."""
    s2 = scale * scale
    if conv.out_channels % s2:
        raise ConfigError(f"ICNR needs out_channels divisible by {s2}; the conv has {conv.out_channels}")
    with torch.no_grad():
        conv.weight.copy_(conv.weight[::s2].repeat_interleave(s2, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(conv.bias[::s2].repeat_interleave(s2, dim=0))
    return conv


def _conv_block(
    in_ch: int, out_ch: int, kernel: int, stride: int, norm: str, act: nn.Module, padding: str = "reflect"
) -> nn.Sequential:
    """conv (``padding`` for odd kernels, zero padding 1 for the 4x4 stride-2 convs) -> norm -> act."""
    if kernel % 2 == 1:
        conv = nn.Conv2d(
            in_ch, out_ch, kernel, stride, kernel // 2, bias=norm == "none", padding_mode=padding
        )
    else:
        conv = nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - stride) // 2, bias=norm == "none")
    return nn.Sequential(conv, norm_layer(norm, out_ch), act)


class Encoder(nn.Module):
    """One encoder path: a ``stem_kernel`` x ``stem_kernel`` stem conv at the input's resolution and
    ``num_down`` stride-2 4x4 convs.

    ``forward(x)`` with x (B, in_channels, H, W) returns the list of the ``num_down + 1``
    feature maps ``[f_0, ..., f_n]``, ``f_i`` of shape (B, widths[i], H / 2**i, W / 2**i).
    """

    def __init__(
        self, in_channels: int, widths: list[int], norm: str, stem_kernel: int = 7, padding: str = "reflect"
    ) -> None:
        super().__init__()
        self.stem = _conv_block(
            in_channels, widths[0], stem_kernel, 1, norm, nn.LeakyReLU(0.2, inplace=True), padding
        )
        self.downs = nn.ModuleList(
            _conv_block(widths[i], widths[i + 1], 4, 2, norm, nn.LeakyReLU(0.2, inplace=True))
            for i in range(len(widths) - 1)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats


class Fusion(nn.Module):
    """Merge a source and a target feature map of the same shape (B, C, h, w) into (B, C, h, w).

    ``"concat"``: concatenate to 2C channels, then 1x1 conv -> norm -> ReLU back to C.
    ``"add"``: elementwise sum (no weights).
    """

    def __init__(self, channels: int, fuse: str, norm: str) -> None:
        super().__init__()
        self.fuse = fuse
        self.mix: nn.Module | None = None
        if fuse == "concat":
            self.mix = _conv_block(2 * channels, channels, 1, 1, norm, nn.ReLU(inplace=True))

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        if self.mix is None:
            return src + tgt
        return self.mix(torch.cat([src, tgt], dim=1))


class ResidualBlock(nn.Module):
    """``x + (conv3x3 -> norm -> ReLU -> [dropout 0.5] -> conv3x3 -> norm)(x)`` with ``padding``;
    (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, channels: int, norm: str, use_dropout: bool, padding: str = "reflect") -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(channels, channels, 3, 1, 1, bias=norm == "none", padding_mode=padding),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.Conv2d(channels, channels, 3, 1, 1, bias=norm == "none", padding_mode=padding),
            norm_layer(norm, channels),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpBlock(nn.Module):
    """Decoder level: x2 upsampling to the skip width, concatenate the skip, 3x3 conv.
    (B, in_ch, h, w) and skip (B, out_ch, 2h, 2w) -> (B, out_ch, 2h, 2w).

    ``upsample``: ``"nearest"`` (nearest x2 -> 3x3 conv, the default), ``"bilinear"`` (bilinear
    x2 -> 3x3 conv: smoother, no blocky copies of each low-resolution pixel) or ``"pixelshuffle"``
    (3x3 conv to ``4 * out_ch`` channels at the low resolution -> pixel shuffle x2, initialised
    as ICNR by :class:`DualPathGenerator`, so it starts as a nearest upsampling of one conv).
    """

    def __init__(self, in_ch: int, out_ch: int, norm: str, padding: str = "reflect",
                 upsample: str = "nearest") -> None:
        super().__init__()
        if upsample not in UPSAMPLINGS:
            raise ConfigError(f"generator upsample={upsample!r}; expected one of {UPSAMPLINGS}")
        if upsample == "pixelshuffle":
            self.up = nn.Sequential(
                nn.Conv2d(in_ch, 4 * out_ch, 3, 1, 1, bias=norm == "none", padding_mode=padding),
                nn.PixelShuffle(2),
                norm_layer(norm, out_ch),
                nn.ReLU(inplace=True),
            )
        else:
            resize = (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False) if upsample == "bilinear"
                      else nn.Upsample(scale_factor=2, mode="nearest"))
            self.up = nn.Sequential(resize, _conv_block(in_ch, out_ch, 3, 1, norm, nn.ReLU(inplace=True), padding))
        self.upsample = upsample
        self.merge = _conv_block(2 * out_ch, out_ch, 3, 1, norm, nn.ReLU(inplace=True), padding)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.merge(torch.cat([self.up(x), skip], dim=1))


class DualPathGenerator(nn.Module):
    """CR-GAN generator ``G(x_s, x_t) -> x_g`` (see the module docstring for the layout).

    Args:
        in_channels: channels of both inputs (3 for RGB).
        base_channels: width of the full-resolution level; doubles at every downsampling.
        num_down: stride-2 stages per encoder; H and W must be divisible by ``2**num_down``.
        max_channels: cap on the width of any level.
        num_res_blocks: residual blocks at the bottleneck (0 for none).
        norm: ``"instance"`` (default), ``"batch"`` or ``"none"`` (see the module docstring).
        fuse: how target features join source features: ``"concat"`` (concat + 1x1 conv) or ``"add"``.
        target_skips: also fuse target features into every skip connection (default: bottleneck only).
        source_norm, decoder_norm: the normalisation of the source encoder and of the decoder's
            up-blocks (None: ``norm``). Instance normalisation removes each feature map's mean,
            which in the full-resolution source path is the person's absolute colour (what
            identifies people); ``"none"`` or ``"batch"`` there keeps it.
        target_input: ``"image"`` (the target image as it is) or ``"masked"``: the target encoder
            sees the target image with its own person blanked out (``x_t * (1 - m_t)``, the person
            at 0, mid-grey), so no cue of that person can reach the rendering through the target
            path (not even with ``target_skips``); every call then needs the target masks ``m_t``.
        use_dropout: dropout 0.5 inside the residual blocks.
        space_to_depth: 1 (default): the network starts at the input's resolution. ``s`` > 1: each
            input is rearranged losslessly into ``s*s*in_channels`` channels at ``H/s x W/s``
            (pixel unshuffle) and the last conv predicts ``s*s*3`` channels that a pixel shuffle
            rearranges back to ``H x W``; every level then works on ``s*s`` times fewer positions
            (the full-resolution level holds about half the time of the default layout on a CPU).
        outer_kernel: kernel size (odd) of the two stems and of the final RGB conv (7, as in pix2pix).
        padding: ``"reflect"`` (default) or ``"zeros"`` for the odd-kernel convs; zero padding is
            cheaper on CPUs (fused into the convolution).
        upsample: how each decoder level doubles the resolution: ``"nearest"`` (default),
            ``"bilinear"`` or ``"pixelshuffle"`` (ICNR-initialised); see :class:`UpBlock`.

    Shapes: ``x_s``, ``x_t`` (B, in_channels, H, W) in [-1, 1] -> ``x_g`` (B, 3, H, W) in [-1, 1].
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 32,
        num_down: int = 4,
        max_channels: int = 256,
        num_res_blocks: int = 4,
        norm: str = "instance",
        fuse: str = "concat",
        target_skips: bool = False,
        use_dropout: bool = False,
        space_to_depth: int = 1,
        outer_kernel: int = 7,
        padding: str = "reflect",
        source_norm: str | None = None,
        decoder_norm: str | None = None,
        target_input: str = "image",
        upsample: str = "nearest",
    ) -> None:
        super().__init__()
        self.init_args = init_arguments(locals())  # what a checkpoint rebuilds it from
        if upsample not in UPSAMPLINGS:
            raise ConfigError(f"generator upsample={upsample!r}; expected one of {UPSAMPLINGS}")
        if target_input not in TARGET_INPUTS:
            raise ConfigError(f"generator target_input={target_input!r}; expected one of {TARGET_INPUTS}")
        self.target_input = target_input
        source_norm = norm if source_norm is None else source_norm
        decoder_norm = norm if decoder_norm is None else decoder_norm
        for name, value in (("norm", norm), ("source_norm", source_norm), ("decoder_norm", decoder_norm)):
            if value not in NORMS:
                raise ConfigError(f"generator {name}={value!r}; expected one of {NORMS}")
        if fuse not in FUSIONS:
            raise ConfigError(f"generator fuse={fuse!r}; expected one of {FUSIONS}")
        if padding not in PADDINGS:
            raise ConfigError(f"generator padding={padding!r}; expected one of {PADDINGS}")
        for name, value, low in (
            ("in_channels", in_channels, 1),
            ("base_channels", base_channels, 1),
            ("num_down", num_down, 1),
            ("max_channels", max_channels, 1),
            ("num_res_blocks", num_res_blocks, 0),
            ("space_to_depth", space_to_depth, 1),
            ("outer_kernel", outer_kernel, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"generator {name}={value!r}; expected an integer >= {low}")
        if outer_kernel % 2 == 0:
            raise ConfigError(f"generator outer_kernel={outer_kernel}; expected an odd kernel size (1, 3, 5, 7)")
        self.in_channels = in_channels
        self.num_down = num_down
        self.target_skips = target_skips
        self.space_to_depth = space_to_depth
        s2 = space_to_depth * space_to_depth
        widths = [min(base_channels * 2**i, max_channels) for i in range(num_down + 1)]
        self.widths = widths
        self.unshuffle = nn.PixelUnshuffle(space_to_depth) if space_to_depth > 1 else nn.Identity()
        self.source_encoder = Encoder(s2 * in_channels, widths, source_norm, outer_kernel, padding)
        self.target_encoder = Encoder(s2 * in_channels, widths, norm, outer_kernel, padding)
        self.bottleneck_fusion = Fusion(widths[-1], fuse, norm)
        self.skip_fusions = (
            nn.ModuleList(Fusion(w, fuse, norm) for w in widths[:-1]) if target_skips else None
        )
        self.res_blocks = nn.Sequential(
            *(ResidualBlock(widths[-1], norm, use_dropout, padding) for _ in range(num_res_blocks))
        )
        self.ups = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], decoder_norm, padding, upsample) for i in reversed(range(num_down))
        )
        self.to_rgb = nn.Sequential(
            nn.Conv2d(widths[0], 3 * s2, outer_kernel, 1, outer_kernel // 2, padding_mode=padding),
            nn.PixelShuffle(space_to_depth) if space_to_depth > 1 else nn.Identity(),
            nn.Tanh(),
        )
        init_weights(self)
        if space_to_depth > 1:
            icnr_(self.to_rgb[0], space_to_depth)
        if upsample == "pixelshuffle":
            for up in self.ups:
                icnr_(up.up[0], 2)

    @property
    def size_multiple(self) -> int:
        """Input heights and widths must be multiples of this (``space_to_depth * 2**num_down``)."""
        return self.space_to_depth * 2**self.num_down

    def _check_inputs(self, x_s: torch.Tensor, x_t: torch.Tensor) -> None:
        for name, x in (("x_s", x_s), ("x_t", x_t)):
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ConfigError(
                    f"generator input {name} has shape {tuple(x.shape)}; "
                    f"expected (B, {self.in_channels}, H, W)"
                )
        if x_s.shape != x_t.shape:
            raise ConfigError(
                f"generator inputs differ in shape: x_s {tuple(x_s.shape)}, x_t {tuple(x_t.shape)}; "
                "source and target images must be resized to the same size"
            )
        h, w = x_s.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ConfigError(
                f"generator input size {h}x{w} (HxW) is not divisible by space_to_depth * 2**num_down = {m}; "
                f"resize images to multiples of {m} (e.g. 256x128 or 128x64) or lower num_down"
            )
        if h // m < 2 or w // m < 2:
            raise ConfigError(
                f"generator input size {h}x{w} (HxW) leaves a {h // m}x{w // m} bottleneck with "
                f"num_down={self.num_down}, space_to_depth={self.space_to_depth}; it must be at least 2x2: "
                "use larger images or lower num_down"
            )

    @property
    def needs_target_masks(self) -> bool:
        """Whether every call needs the target person masks ``m_t`` (``target_input="masked"``)."""
        return self.target_input == "masked"

    @property
    def needs_source_masks(self) -> bool:
        """Whether every call needs the source person masks ``m_s`` (no: this decoder paints the
        whole image; :class:`~crgan_lightning.models.compositor.CompositingGenerator` does)."""
        return False

    def render(self, x_s: torch.Tensor, x_t: torch.Tensor, m_t: torch.Tensor | None = None,
               m_s: torch.Tensor | None = None) -> torch.Tensor:
        """Same as calling the generator; lets a bare generator stand wherever a model with
        ``render(x_s, x_t)`` is expected (e.g. :func:`crgan_lightning.callbacks.images.render_grid`)."""
        return self(x_s, x_t, m_t, m_s)

    def _target_view(self, x_t: torch.Tensor, m_t: torch.Tensor | None) -> torch.Tensor:
        """What the target encoder sees: ``x_t``, or with ``target_input="masked"`` the target image
        with its own person at 0 (``x_t * (1 - m_t)``); checks that ``m_t`` is given then."""
        if not self.needs_target_masks:
            return x_t
        if m_t is None or m_t.shape[-2:] != x_t.shape[-2:]:
            raise ConfigError("this generator encodes the target context without its own person "
                              "(target_input='masked'): give the target person masks m_t (B, 1, H, W) "
                              "(data.masks: auto, folder or prior)")
        return x_t * (1 - m_t.to(x_t.dtype).clamp(0, 1))

    def decode(self, x_s: torch.Tensor, x_t: torch.Tensor,
               m_t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor],
                                                         list[torch.Tensor]]:
        """The shared trunk: both encoders, the fusion, the residual blocks and the up-blocks.

        Returns ``(features, bottleneck, src, tgt)``: the decoder's last feature map
        (B, widths[0], H/s, W/s) (``s = space_to_depth``), the fused bottleneck after the residual
        blocks (B, widths[-1], H/m, W/m) (``m`` = :attr:`size_multiple`), and the source and target
        encoders' feature lists (:class:`Encoder`), which heads may pool."""
        self._check_inputs(x_s, x_t)
        src = self.source_encoder(self.unshuffle(x_s))
        tgt = self.target_encoder(self.unshuffle(self._target_view(x_t, m_t)))
        bottleneck = x = self.res_blocks(self.bottleneck_fusion(src[-1], tgt[-1]))
        skips = src[:-1]
        if self.skip_fusions is not None:
            skips = [fusion(s, t) for fusion, s, t in zip(self.skip_fusions, skips, tgt[:-1])]
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        return x, bottleneck, src, tgt

    def forward(self, x_s: torch.Tensor, x_t: torch.Tensor, m_t: torch.Tensor | None = None,
                m_s: torch.Tensor | None = None) -> torch.Tensor:
        """Render ``x_s`` (B, C, H, W) into the context of ``x_t`` (B, C, H, W); ``m_t`` (B, 1, H, W),
        the target person masks, is read with ``target_input="masked"`` only; ``m_s``, the source
        person masks, is accepted for a common call signature and not read by this decoder.

        Returns ``x_g`` (B, 3, H, W) in [-1, 1]."""
        features = self.decode(x_s, x_t, m_t)[0]
        return self.to_rgb(features)
