"""crgan-lightning: CR-GAN context rendering for cross-domain person re-identification.

The library renders labelled source-domain pedestrians into the contexts (backgrounds,
colour tones, lighting) of an unlabelled target domain and trains a re-id network on the
result. See ``README.md`` for the workflow and ``ARCHITECTURE`` notes in the docs.
"""

from __future__ import annotations

__version__ = "0.1.0"
