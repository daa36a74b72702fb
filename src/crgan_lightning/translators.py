"""Translators: anything that renders source persons for the target domain, behind one interface.

A translator is called as ``translator.render(source_images, target_images, source_masks,
target_masks)`` on image batches (B, 3, H, W) in [-1, 1] and masks (B, 1, H, W) in [0, 1] (1 on
the person), and returns the rendered batch (B, 3, H, W) in [-1, 1]. The rendering callback
(:class:`~crgan_lightning.callbacks.rendering.ContextRenderingCallback`), the dataset export
(``crgan render``) and the comparison of methods (``make compare``) take any of them:

* :class:`CRGANTranslator`: the CR-GAN generator, ``G(x_s, x_t)``: the source person rendered
  into the context of the target image.
* :class:`SPGANTranslator`: SPGAN's source-to-target generator, ``G_st(x_s)``: the whole source
  image translated to the target style; the target image is not used.
* :class:`CutAndPasteTranslator`: no learning: the source foreground (its mask) pasted onto the
  target image, ``m_s * x_s + (1 - m_s) * x_t``.
* :class:`CutAndFillTranslator`: no learning either: the target's own person first removed (its
  mask) and filled in from the surroundings, then the source person pasted on. The compositing
  CR-GAN generator starts training from this rendering, so it tells what the four losses add.

:func:`load_translator` builds one from a spec: the path of a CR-GAN or SPGAN checkpoint (told
apart by their weights) or one of the words ``cut_and_paste`` and ``cut_and_fill``
(:data:`NAMED_TRANSLATORS`). Every translator is a frozen
``nn.Module`` in eval mode, so ``.to(device)`` moves it and no gradient reaches it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn

from .checkpoints import checkpoint_kind, read_checkpoint
from .errors import ConfigError, WeightsError
from .models.compositor import remove_person
from .networks import load_generator, load_spgan_generator

CUT_AND_PASTE = "cut_and_paste"
CUT_AND_FILL = "cut_and_fill"
#: The translators named by a word instead of a checkpoint (no weights).
NAMED_TRANSLATORS = (CUT_AND_PASTE, CUT_AND_FILL)


def named_translator(spec: str | os.PathLike | None) -> str | None:
    """The word of a named translator (``cut-and-fill`` reads as ``cut_and_fill``), else None."""
    word = str(spec).replace("-", "_") if spec is not None else None
    return word if word in NAMED_TRANSLATORS else None


class Translator(nn.Module):
    """Base class: ``render(x_s, x_t, m_s=None, m_t=None) -> x_g``; ``needs_masks`` says whether
    ``m_s`` (the source person masks) is required, ``needs_target_masks`` whether ``m_t`` is."""

    kind = "translator"
    needs_masks = False
    needs_target_masks = False

    def render(self, source_images: torch.Tensor, target_images: torch.Tensor,
               source_masks: torch.Tensor | None = None, target_masks: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, source_images: torch.Tensor, target_images: torch.Tensor,
                source_masks: torch.Tensor | None = None, target_masks: torch.Tensor | None = None) -> torch.Tensor:
        return self.render(source_images, target_images, source_masks, target_masks)

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype of the weights (None for a translator without weights)."""
        return next((p.dtype for p in self.parameters()), None)

    def frozen(self) -> "Translator":
        self.eval().requires_grad_(False)
        return self


class CRGANTranslator(Translator):
    """The CR-GAN generator: ``render(x_s, x_t) = G(x_s, x_t)``."""

    kind = "CR-GAN"

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.needs_target_masks = bool(getattr(generator, "needs_target_masks", False))
        self.needs_masks = bool(getattr(generator, "needs_source_masks", False))
        self.frozen()

    def render(self, source_images, target_images, source_masks=None, target_masks=None):
        if self.needs_masks:  # a generator that composites the source person with its mask
            return self.generator(source_images, target_images, target_masks, source_masks)
        return self.generator(source_images, target_images, target_masks)


class SPGANTranslator(Translator):
    """SPGAN's source-to-target generator: ``render(x_s, x_t) = G_st(x_s)`` (``x_t`` unused)."""

    kind = "SPGAN"

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.frozen()

    def render(self, source_images, target_images, source_masks=None, target_masks=None):
        return self.generator(source_images)


def _check_masks(which: str, masks: torch.Tensor, images: torch.Tensor) -> None:
    """Masks (B, 1, H, W) for images (B, C, H, W): one per image, at the images' size."""
    if masks.shape[-2:] != images.shape[-2:] or masks.shape[:2] != (len(images), 1):
        raise ConfigError(f"{which} masks of shape {tuple(masks.shape)} do not match images of shape "
                          f"{tuple(images.shape)}; expected (B, 1, H, W)")


class CutAndPasteTranslator(Translator):
    """The naive synthesis the CR-GAN paper compares against: the source person cut out with its
    mask and pasted onto the target image, ``m_s * x_s + (1 - m_s) * x_t``. The target's own
    person stays in the background where the source person does not cover it, as in a real
    cut-and-paste; a soft mask blends the edges."""

    kind = "cut-and-paste"
    needs_masks = True

    def __init__(self) -> None:
        super().__init__()
        self.frozen()

    def render(self, source_images, target_images, source_masks=None, target_masks=None):
        if source_masks is None:
            raise ConfigError(
                f"{self.kind} needs the source person masks: give the DataModule masks=auto, folder or prior"
            )
        _check_masks("source", source_masks, source_images)
        m = source_masks.to(source_images.dtype).clamp(0, 1)
        return m * source_images + (1 - m) * target_images


class CutAndFillTranslator(CutAndPasteTranslator):
    """Cut-and-paste onto the target image with the target's own person removed first: inside the
    target's person mask ``m_t`` the surrounding background filled in (push-pull inpainting,
    :func:`~crgan_lightning.models.compositor.remove_person`), then the source person
    pasted on, ``m_s * x_s + (1 - m_s) * b`` with ``b = (1 - m_t) * x_t + m_t * fill(x_t)``.
    No learning: it is what :class:`~crgan_lightning.models.compositor.CompositingGenerator`
    renders at initialisation (up to its matte floor), the baseline that separates what CR-GAN's
    training adds from what the removal of the context's person does."""

    kind = "cut-and-fill"
    needs_target_masks = True

    def render(self, source_images, target_images, source_masks=None, target_masks=None):
        if target_masks is None:
            raise ConfigError("cut-and-fill needs the target person masks too (it removes the context's own "
                              "person): give the DataModule masks=auto, folder or prior")
        _check_masks("target", target_masks, target_images)
        # the push-pull averages in float32 (half batches under 16-true)
        background = remove_person(target_images.float(), target_masks.float().clamp(0, 1)).to(target_images.dtype)
        return super().render(source_images, background, source_masks)


def load_translator(spec: str | os.PathLike, map_location: str | torch.device = "cpu") -> Translator:
    """The translator a spec names: ``"cut_and_paste"``, ``"cut_and_fill"``, or the path of a CR-GAN
    checkpoint (``make train-crgan``) or an SPGAN checkpoint (``make train-spgan``), loaded safely
    (``weights_only=True``), frozen and in eval mode on ``map_location``."""
    word = named_translator(spec)
    if word == CUT_AND_PASTE:
        return CutAndPasteTranslator()
    if word == CUT_AND_FILL:
        return CutAndFillTranslator()
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"translator {spec!r}: no such checkpoint; expected a CR-GAN or SPGAN checkpoint file, "
            f"'{CUT_AND_PASTE}' or '{CUT_AND_FILL}'"
        )
    kind = checkpoint_kind(read_checkpoint(path, "checkpoint", "a CR-GAN or SPGAN checkpoint"))
    if kind == "spgan":
        return SPGANTranslator(load_spgan_generator(path, map_location=map_location))
    if kind == "crgan":
        return CRGANTranslator(load_generator(path, map_location=map_location))
    raise WeightsError(f"{path} holds neither CR-GAN nor SPGAN generator weights (is it a re-id checkpoint?)")


def translator_fingerprint(translator: Translator) -> str:
    """What identifies a translator's output: the sha256 of its kind and weights (parameters and
    buffers), so a checkpoint saved again with the same weights keeps its fingerprint and a
    retrained one does not."""
    digest = hashlib.sha256(translator.kind.encode())
    for name, tensor in sorted(translator.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
