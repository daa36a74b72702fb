"""Shared fixtures: real-format dataset trees and the embedded benchmark at test size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_images(folder: Path, names, size=(16, 8), empty: bool = False) -> None:
    """Create image files with the given names (tiny real JPEG/PNG, or empty files for parsing)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        if empty:
            (folder / name).touch()
            continue
        arr = rng.integers(0, 255, (size[0], size[1], 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / name)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """The embedded two-domain benchmark at a small test size (generated once per session)."""
    from crgan_lightning.data.synthetic import generate_benchmark

    root = tmp_path_factory.mktemp("synth")
    generate_benchmark(root, seed=0, num_train_ids=12, num_test_ids=8, progress=False)
    return root
