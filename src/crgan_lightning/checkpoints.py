"""The one place that turns a file into weights.

Every weight file the library reads goes through :func:`read_torch_file`: ``torch.load`` with
``weights_only=True`` (an untrusted file cannot run code), or safetensors. On top of it:

* :func:`read_state_dict`: a plain state dict (ImageNet or segmentation weights, LPIPS and
  Inception files), unwrapping a ``{"state_dict": ...}`` / ``{"model": ...}`` wrapper;
* :func:`read_checkpoint`: a checkpoint written by ``crgan fit`` (Lightning's layout:
  ``state_dict``, ``hyper_parameters``, loop state), and :func:`checkpoint_kind` telling a CR-GAN,
  SPGAN or re-id one apart from its weights;
* :func:`submodule_weights`, :func:`fit_progress`: the parts of a checkpoint the library reads.

A missing, unreadable or wrong file raises :class:`~crgan_lightning.errors.WeightsError` (or the
error class the caller asks for) with one line naming the file and what was expected. The
networks rebuilt from trained checkpoints are in :mod:`crgan_lightning.networks`; ``models/``
holds plain networks only.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from .errors import CRGANError, WeightsError

#: Where a CR-GAN module keeps its generator, an SPGAN module its source->target generator, and a
#: re-id module its network: the state-dict prefixes that tell the kinds apart.
KIND_PREFIXES = {"crgan": "generator.", "spgan": "generator_st.", "reid": "net."}
#: The flag a CR-GAN run that stopped at its ``target_id_ratio`` leaves in its checkpoint.
REACHED_KEY = "reached_target_id_ratio"


#: The messages of a missing, unreadable or wrong file; callers may give their own (formatted with
#: ``what``, ``path``, ``expected`` and, for an unreadable file, ``reason``).
MISSING = "{what} {path} does not exist; expected {expected}"
UNREADABLE = "cannot read {what} {path} ({reason}); expected {expected}"
NOT_A_STATE_DICT = "{what} {path} does not hold a state dict of tensors; expected {expected}"


def read_torch_file(path: str | os.PathLike, what: str = "weight file", expected: str = "a PyTorch file",
                    mmap: bool = False, error: type[CRGANError] = WeightsError, missing: str = MISSING,
                    unreadable: str = UNREADABLE):
    """The object saved in ``path`` (``torch.save`` or ``.safetensors``), read without running
    code and mapped to the CPU (``mmap``: memory-mapped, so looking into a large checkpoint does
    not read all of it). A missing or unreadable file raises ``error`` with the ``missing`` or
    ``unreadable`` message."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise error(missing.format(what=what, path=path, expected=expected))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        # only torch.save's zip format can be memory-mapped; an older file is read whole
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as exc:  # truncated zip, not a torch file, pickled objects
        with open(path, "rb") as fh:
            starts_as_zip = fh.read(4) == b"PK\x03\x04"
        reason = why_unreadable(exc, zip_file=starts_as_zip)
        raise error(unreadable.format(what=what, path=path, expected=expected, reason=reason)) from None


def why_unreadable(exc: BaseException, zip_file: bool = True) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file (``zip_file``: whether it starts like
    the zip archive torch.save writes), in a few words: pickled Python objects (named, never loaded:
    loading them could run code), a file that is not a PyTorch file, or a truncated one."""
    text = str(exc)
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        named = f" ({found.group(1)})" if found else ""
        return (f"it holds pickled Python objects{named}, which are not loaded because loading them could run "
                "code; only tensors and plain values are read")
    if not zip_file or isinstance(exc, pickle.UnpicklingError) or "invalid load key" in text:
        return "not a PyTorch file: torch.save writes a zip archive"
    return "a truncated or damaged PyTorch file"  # a zip archive torch cannot read


def read_state_dict(path: str | os.PathLike, what: str = "weight file",
                    expected: str = "a state dict of tensors (torch.save(model.state_dict(), path))",
                    missing: str = MISSING, unreadable: str = UNREADABLE,
                    not_a_state_dict: str = NOT_A_STATE_DICT) -> dict[str, torch.Tensor]:
    """A state dict from ``.pth``/``.pt``/``.bin``/``.ckpt`` or ``.safetensors``; a
    ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped. A missing, unreadable,
    empty or non-tensor file raises :class:`WeightsError` naming it."""
    state = read_torch_file(path, what, expected, missing=missing, unreadable=unreadable)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(not_a_state_dict.format(what=what, path=Path(path).expanduser(), expected=expected))
    return state


def read_checkpoint(path: str | os.PathLike, what: str = "checkpoint",
                    expected: str = "a .ckpt written by crgan fit", mmap: bool = True,
                    error: type[CRGANError] = WeightsError) -> dict:
    """A checkpoint written by ``crgan fit``: a dict with a ``state_dict`` (memory-mapped by
    default). Anything else raises ``error`` naming ``what`` and the file."""
    ckpt = read_torch_file(path, what, expected, mmap=mmap, error=error)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise error(f"{what} {Path(path).expanduser()} holds no Lightning checkpoint (no state_dict); "
                    f"expected {expected}")
    return ckpt


def checkpoint_kind(ckpt: dict) -> str | None:
    """``"crgan"``, ``"spgan"`` or ``"reid"``: which module wrote the checkpoint, from its weights."""
    keys = ckpt.get("state_dict", {}).keys()
    for kind, prefix in KIND_PREFIXES.items():
        if any(k.startswith(prefix) for k in keys):
            return kind
    return None


def submodule_weights(ckpt: dict, prefix: str) -> dict[str, torch.Tensor]:
    """The entries of the checkpoint's state dict under ``prefix`` (``"generator."``), without it."""
    return {k[len(prefix):]: v for k, v in ckpt.get("state_dict", {}).items() if k.startswith(prefix)}


def hyperparameters(ckpt: dict) -> dict:
    """The module arguments saved with the checkpoint (``{}`` when there are none)."""
    return dict(ckpt.get("hyper_parameters") or {})


def fit_progress(path: str | os.PathLike) -> tuple[int | None, bool]:
    """``(epochs processed, stopped at the target)`` of a ``crgan fit`` checkpoint: the epochs its
    loop state counts as processed (an epoch-end checkpoint counts its epoch before Lightning marks
    it completed; None when the checkpoint has no loop state) and whether a CR-GAN run stopped
    once renderings kept identities (:data:`REACHED_KEY`)."""
    ckpt = read_checkpoint(path)
    try:
        processed = int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        processed = None
    return processed, bool(ckpt.get(REACHED_KEY))
