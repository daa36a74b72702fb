"""Exceptions for user errors.

Every error that a user can cause (a bad path, an unknown dataset layout, a corrupt image,
a bad configuration value) is raised as a :class:`CRGANError` subclass with one message
naming the file or value and what was expected. The command line prints that message alone,
without a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


class CRGANError(Exception):
    """Base class of the errors a user can fix from the message alone."""


class DatasetError(CRGANError, ValueError):
    """A dataset folder, file name or split does not match the expected layout."""


class ImageReadError(CRGANError, OSError):
    """An image file could not be read or decoded."""


class ConfigError(CRGANError, ValueError):
    """A configuration value is out of range or inconsistent."""


class WeightsError(CRGANError, FileNotFoundError):
    """Pretrained weights were asked for but cannot be had (offline and no local file)."""


class TrainingDivergedError(CRGANError, FloatingPointError):
    """A loss became NaN or infinite; training stopped before the bad update."""


@contextmanager
def arguments_named(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a :class:`CRGANError` raised inside with each argument named as the caller knows it.

    A library function names its own Python arguments (``pretrained_path``); a caller that takes
    the value under another name maps it, e.g. ``crgan quality`` maps ``lpips_path`` to
    ``--lpips-weights``, so that the message names what the user typed."""
    try:
        yield
    except CRGANError as exc:
        message = str(exc)
        for name, known_as in names.items():
            message = re.sub(rf"(?<![\w/.-]){re.escape(name)}(?![\w/.-])", known_as, message)
        if message == str(exc):
            raise
        raise type(exc)(message) from exc


def brief(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters (for messages that quote a
    library's error)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
