"""Exceptions for user errors.

Every error that a user can cause (a bad path, an unknown dataset layout, a corrupt image,
a bad configuration value) is raised as a :class:`CRGANError` subclass with one message
naming the file or value and what was expected. The command line prints that message alone,
without a traceback.
"""

from __future__ import annotations


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
