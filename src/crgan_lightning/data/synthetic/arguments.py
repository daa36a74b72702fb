"""Checks of the user's arguments (domain name, sizes, counts, seed), each failing with one
:class:`~crgan_lightning.errors.ConfigError` that names the value and what was expected."""

from __future__ import annotations

from numbers import Integral

from ...errors import ConfigError
from .styles import DOMAINS, DomainStyle

#: The benchmark's default size (see the README for why 64 x 32): identities per domain and image size.
NUM_TRAIN_IDS = 500
NUM_TEST_IDS = 500
HEIGHT = 64
WIDTH = 32
MIN_HEIGHT = 32
MIN_WIDTH = 16
MAX_PID = 9999  # four digits in the file names


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int, if it is an integer in ``minimum..maximum``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigError(f"{name}={value!r} is not an integer; expected an integer >= {minimum}")
    if value < minimum or (maximum is not None and value > maximum):
        rng = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ConfigError(f"{name}={value!r} is out of range; expected an integer {rng}")
    return int(value)


def _domain(name: object) -> DomainStyle:
    """The style of the domain called ``name``."""
    style = DOMAINS.get(name) if isinstance(name, str) else None
    if style is None:
        raise ConfigError(f"unknown synthetic domain {name!r}; expected one of {', '.join(DOMAINS)}")
    return style


def _check_args(seed: object, num_train_ids: object, num_test_ids: object, height: object,
                width: object) -> None:
    """Check the arguments of a generation run (see :func:`generate_domain`)."""
    _check_int("seed", seed, 0)
    total = _check_int("num_train_ids", num_train_ids, 1) + _check_int("num_test_ids", num_test_ids, 1)
    if total > MAX_PID:
        raise ConfigError(f"num_train_ids + num_test_ids = {total} is too large; "
                          f"expected at most {MAX_PID} (four-digit person ids)")
    _check_int("height", height, MIN_HEIGHT)
    _check_int("width", width, MIN_WIDTH)
