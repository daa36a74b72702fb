"""crgan-lightning: CR-GAN context rendering for cross-domain person re-identification.

The library renders labelled source-domain pedestrians into the contexts (backgrounds,
colour tones, lighting) of an unlabelled target domain and trains a re-id network on the
result. The library is ``data``, ``models`` (plain networks), ``losses``, ``modules``
(LightningModules), ``callbacks``, ``metrics``, ``translators`` and ``checkpoints``/``networks``
(weights from files); the ``crgan`` command and its stage configs (package data under
``configs/``) are the application on top, in ``app``. See ``README.md`` for the workflow.

Importing the library makes no network request: albumentations' update check at import time is
switched off through its documented opt-out (``NO_ALBUMENTATIONS_UPDATE=1``), unless the user set
that variable already.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
