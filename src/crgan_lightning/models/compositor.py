"""A CR-GAN generator that composites and harmonises instead of painting every pixel.

``G(x_s, x_t, m_t, m_s) -> x_g`` as :class:`~crgan_lightning.models.generator.DualPathGenerator`
(the same two encoders, fusion, residual blocks and up-blocks), but the decoder's last features
do not go to an RGB conv. Three heads predict what a compositor needs:

- **a soft matte of the person** ``a = sigmoid(logit(m_s') + r)``, started from the given source
  mask (``m_s' = clamp(m_s, matte_floor, 1 - matte_floor)``) and free to complete it where the
  mask is poor: the residual logit ``r`` (B, 1, H, W) is the matte head's output;
- **a tone and light transform of the person** conditioned on the target image: a 3x3 colour
  matrix and a bias per image (``tone="matrix"``; ``"channel"``: a gain and a bias per colour,
  ``"none"``: identity) predicted by a small MLP from the pooled deepest features of both encoders
  and the colour statistics of the source person and of the target background; with
  ``shading=True`` a low-frequency multiplicative light map, predicted at the bottleneck's
  resolution and upsampled bilinearly (``exp(s)``, a light factor per place). In [0, 1] colour
  ``y = (x + 1) / 2``: ``y_person = (A y_s + b) * exp(s)``;
- **the background**: the target image with its own person removed and filled in
  (``remove_target_person=True``): outside the target's person mask ``m_t`` the target's pixels,
  inside it a fill predicted by the fill head, as a residual over a push-pull inpainting of the
  surrounding background (:func:`fill_from_surroundings`), so the target's person is never copied.
  The target encoder sees the target image with its person blanked (``target_input="masked"``,
  the class default), so no cue of that person reaches the fill. The shipped config encodes the
  whole target image (``target_input: image``), through which a learned fill can paint traces of
  that person back; ``learn_fill=False`` keeps the push-pull fill alone.

``x_g = a * person + (1 - a) * background``, clamped to [-1, 1]. The matte, tone, shading and
fill heads' last layers start at zero, so at initialisation ``a = m_s'``, the tone is the
identity, the light factor 1 and the fill the push-pull inpainting: the output is cut-and-paste
(``m_s x_s + (1 - m_s) x_t``) up to ``2 * matte_floor`` wherever the target's own person is not,
and that person is already replaced by its surroundings. Training (the four CR-GAN losses)
starts from a good rendering and learns the departures.

Every call needs the source masks ``m_s`` and (with ``remove_target_person`` or a masked target
path) the target masks ``m_t``, both (B, 1, H, W) in [0, 1]: :attr:`needs_source_masks`,
:attr:`needs_target_masks`. Images (B, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .generator import DualPathGenerator
from .specs import init_arguments

#: The colour transforms of the person: 3x3 matrix + bias, per-channel gain + bias, identity.
TONES = ("matrix", "channel", "none")
#: Numbers the tone MLP predicts for each transform.
_TONE_PARAMS = {"matrix": 12, "channel": 6, "none": 0}


def masked_colour_stats(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean and standard deviation of each colour of ``x`` (B, C, H, W) over the pixels weighted by
    ``weight`` (B, 1, H, W) in [0, 1]: (B, 2C) (means first). An empty region gives zeros."""
    total = weight.sum(dim=(2, 3)).clamp_min(eps)
    mean = (x * weight).sum(dim=(2, 3)) / total
    var = ((x - mean[..., None, None]).pow(2) * weight).sum(dim=(2, 3)) / total
    return torch.cat([mean, var.clamp_min(0).add(eps).sqrt()], dim=1)


def fill_from_surroundings(x: torch.Tensor, valid: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Fill the pixels of ``x`` (B, C, H, W) where ``valid`` (B, 1, H, W) is 0 from the valid pixels
    around them (push-pull: the valid pixels averaged over a pyramid of 2x2 blocks, then the
    coarse averages upsampled into the holes, each level keeping its valid pixels in proportion to
    their weight). Valid pixels are kept; an image without a valid pixel is filled with 0.

    A smooth, cheap inpainting: the starting point of the compositor's learned fill."""
    num, den = x * valid, valid
    levels = []
    while min(num.shape[-2:]) > 1:
        levels.append((num, den))
        num = F.avg_pool2d(num, 2, ceil_mode=True)
        den = F.avg_pool2d(den, 2, ceil_mode=True)
    fill = num / den.clamp_min(eps)
    for num, den in reversed(levels):
        coarse = F.interpolate(fill, size=num.shape[-2:], mode="bilinear", align_corners=False)
        weight = den.clamp(0, 1)
        fill = weight * (num / den.clamp_min(eps)) + (1 - weight) * coarse
    return fill


def remove_person(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) with the person of ``mask`` (B, 1, H, W) in [0, 1] removed: outside the
    mask its pixels, inside it :func:`fill_from_surroundings`. The background a compositor starts
    from (and all that ``cut_and_fill`` puts behind the source person)."""
    return (1 - mask) * x + mask * fill_from_surroundings(x, 1 - mask)


def apply_tone(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor,
               light: torch.Tensor | None = None) -> torch.Tensor:
    """The person's tone and light transform: ``2 * ((A y + b) * light) - 1`` with ``y = (x + 1) / 2``.

    x (B, 3, H, W) in [-1, 1]; matrix A (B, 3, 3); bias b (B, 3) (in [0, 1] colour units);
    light (B, 1, H, W) a multiplicative light factor, or None for 1. Returns (B, 3, H, W)
    (not clamped)."""
    y = (x + 1) / 2
    out = torch.einsum("bij,bjhw->bihw", matrix, y) + bias[..., None, None]
    if light is not None:
        out = out * light
    return out * 2 - 1


def _zero_(layer: nn.Module) -> nn.Module:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class CompositingGenerator(DualPathGenerator):
    """CR-GAN generator that composites the source person into the target context and harmonises
    it (see the module docstring): ``x_g = matte * tone(x_s) + (1 - matte) * background``.

    Args: those of :class:`~crgan_lightning.models.generator.DualPathGenerator` (the shared trunk;
    ``in_channels`` must be 3, ``target_input`` defaults to ``"masked"`` here), and:
        tone: ``"matrix"`` (a 3x3 colour matrix + bias per image, default), ``"channel"`` (a gain
            and a bias per colour) or ``"none"`` (the person's colours kept).
        shading: a low-frequency light map on the person (bottleneck resolution, upsampled).
        remove_target_person: fill the target's own person from its surroundings (default); False
            keeps the target image as the background (then ``m_t`` is only needed by a masked
            target path).
        learn_fill: a learned residual over the push-pull fill (the fill head; the class default,
            so that checkpoints from before the option load; the shipped config sets False).
            False keeps the push-pull fill as it is: no loss ties the fill to a
            pixel target (the context loss's background term leaves the target's person out),
            and on the embedded pair the learned residual painted traces of a person back where
            the context's own person stood (docs/fidelity.md).
        matte_floor: the given mask is clamped to [floor, 1 - floor] before its logit, so the
            matte can grow or shrink anywhere (0.01: at initialisation the output is within 0.02
            of cut-and-paste).
        tone_hidden: width of the tone MLP's hidden layer.

    Shapes: ``x_s``, ``x_t`` (B, 3, H, W) in [-1, 1], ``m_t``, ``m_s`` (B, 1, H, W) in [0, 1]
    -> ``x_g`` (B, 3, H, W) in [-1, 1]; :meth:`layers` also returns the matte, the person and
    the background.
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
        target_input: str = "masked",
        upsample: str = "nearest",
        tone: str = "matrix",
        shading: bool = True,
        remove_target_person: bool = True,
        learn_fill: bool = True,
        matte_floor: float = 0.01,
        tone_hidden: int = 64,
    ) -> None:
        recorded = init_arguments(locals())
        if in_channels != 3:
            raise ConfigError(f"CompositingGenerator in_channels={in_channels}; expected 3 (it composites RGB pixels)")
        if tone not in TONES:
            raise ConfigError(f"generator tone={tone!r}; expected one of {TONES}")
        if not 0.0 < matte_floor < 0.5:
            raise ConfigError(f"generator matte_floor={matte_floor}; expected a value in (0, 0.5)")
        if not isinstance(tone_hidden, int) or tone_hidden < 1:
            raise ConfigError(f"generator tone_hidden={tone_hidden!r}; expected an integer >= 1")
        super().__init__(in_channels, base_channels, num_down, max_channels, num_res_blocks, norm, fuse, target_skips,
                         use_dropout, space_to_depth, outer_kernel, padding, source_norm, decoder_norm, target_input,
                         upsample)
        self.init_args = recorded  # what a checkpoint rebuilds it from
        del self.to_rgb  # the heads below replace the RGB conv
        self.tone, self.shading, self.remove_target_person = tone, shading, remove_target_person
        self.matte_floor = matte_floor
        s = space_to_depth
        first, last = self.widths[0], self.widths[-1]

        def head(channels: int) -> nn.Sequential:  # full-resolution head, zero at initialisation
            return nn.Sequential(_zero_(nn.Conv2d(first, channels * s * s, 3, 1, 1)),
                                 nn.PixelShuffle(s) if s > 1 else nn.Identity())

        self.matte_head = head(1)
        self.fill_head = head(3) if remove_target_person and learn_fill else None
        self.shading_head = _zero_(nn.Conv2d(last, 1, 3, 1, 1)) if shading else None
        self.tone_head = None
        if tone != "none":
            self.tone_head = nn.Sequential(nn.Linear(2 * last + 12, tone_hidden), nn.ReLU(inplace=True),
                                           _zero_(nn.Linear(tone_hidden, _TONE_PARAMS[tone])))

    @property
    def needs_source_masks(self) -> bool:
        """Always: the matte starts from the source person mask."""
        return True

    @property
    def needs_target_masks(self) -> bool:
        """With ``remove_target_person`` or ``target_input="masked"``."""
        return self.remove_target_person or self.target_input == "masked"

    def _check_masks(self, x_s: torch.Tensor, m_s: torch.Tensor | None, m_t: torch.Tensor | None) -> None:
        b, _, h, w = x_s.shape
        for name, m, needed, what in (("m_s", m_s, True, "the source person masks"),
                                      ("m_t", m_t, self.needs_target_masks, "the target person masks")):
            if not needed:
                continue
            if m is None or m.dim() != 4 or tuple(m.shape) != (b, 1, h, w):
                got = "none" if m is None else f"shape {tuple(m.shape)}"
                raise ConfigError(f"the compositing generator needs {what} {name} (B, 1, H, W) = {(b, 1, h, w)}, "
                                  f"got {got} (data.masks: auto, folder or prior)")

    def tone_transform(self, src: list[torch.Tensor], tgt: list[torch.Tensor], x_s: torch.Tensor,
                       x_t: torch.Tensor, m_s: torch.Tensor, m_t: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-image colour matrix (B, 3, 3) and bias (B, 3) of the person, predicted from the
        pooled deepest source and target features and the colour statistics of the source person
        (over ``m_s``) and of the target background (over ``1 - m_t``)."""
        b = len(x_s)
        eye = torch.eye(3, device=x_s.device, dtype=x_s.dtype).expand(b, 3, 3)
        if self.tone_head is None:
            return eye, x_s.new_zeros(b, 3)
        background = 1 - m_t if m_t is not None else torch.ones_like(m_s)
        cue = torch.cat([src[-1].mean(dim=(2, 3)), tgt[-1].mean(dim=(2, 3)),
                         masked_colour_stats(x_s, m_s), masked_colour_stats(x_t, background)], dim=1)
        params = self.tone_head(cue)
        if self.tone == "matrix":
            return eye + params[:, :9].view(b, 3, 3), params[:, 9:]
        return eye * (1 + params[:, :3]).unsqueeze(1), params[:, 3:]

    def layers(self, x_s: torch.Tensor, x_t: torch.Tensor, m_t: torch.Tensor | None = None,
               m_s: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The rendering and its parts: ``output`` (B, 3, H, W) in [-1, 1]; ``matte`` (B, 1, H, W) in
        (0, 1); ``person`` (B, 3, H, W), the source image after the tone and light transform;
        ``background`` (B, 3, H, W), the target with its person filled in; ``matrix`` (B, 3, 3) and
        ``bias`` (B, 3) of the tone transform; ``light`` (B, 1, H, W) (ones without shading)."""
        self._check_inputs(x_s, x_t)
        self._check_masks(x_s, m_s, m_t)
        m_s = m_s.to(x_s.dtype).clamp(0, 1)
        m_t = m_t.to(x_t.dtype).clamp(0, 1) if m_t is not None else None
        features, bottleneck, src, tgt = self.decode(x_s, x_t, m_t)
        prior = m_s.clamp(self.matte_floor, 1 - self.matte_floor)
        matte = torch.sigmoid(torch.logit(prior) + self.matte_head(features))
        matrix, bias = self.tone_transform(src, tgt, x_s, x_t, m_s, m_t)
        light = torch.ones_like(m_s)
        if self.shading_head is not None:
            shade = self.shading_head(bottleneck).clamp(-3.0, 3.0)
            light = torch.exp(F.interpolate(shade, size=x_s.shape[-2:], mode="bilinear", align_corners=False))
        person = apply_tone(x_s, matrix, bias, light)
        background = x_t
        if self.remove_target_person:
            background = remove_person(x_t, m_t)
            if self.fill_head is not None:  # a learned residual over the fill, inside the mask only
                background = background + m_t * self.fill_head(features)
        output = (matte * person + (1 - matte) * background).clamp(-1.0, 1.0)
        return {"output": output, "matte": matte, "person": person, "background": background,
                "matrix": matrix, "bias": bias, "light": light}

    def forward(self, x_s: torch.Tensor, x_t: torch.Tensor, m_t: torch.Tensor | None = None,
                m_s: torch.Tensor | None = None) -> torch.Tensor:
        """``x_g`` (B, 3, H, W) in [-1, 1]: ``x_s`` composited into ``x_t`` (see :meth:`layers`)."""
        return self.layers(x_s, x_t, m_t, m_s)["output"]
