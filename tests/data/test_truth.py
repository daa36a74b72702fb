"""True renderings of the embedded benchmark: the source person drawn in the target's scene."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crgan_lightning.data.synthetic import (
    GENERATOR_VERSION, JPEG_QUALITY, TRUTH_VERSION, build_truth, generate_benchmark, render_into, truth_pairs,
)
from crgan_lightning.data.synthetic.plan import _job_scene, _plan, _render_job
from crgan_lightning.data.synthetic.truth import TRUTH_FOLDER, benchmark_settings, generate_truth
from crgan_lightning.errors import ConfigError, DatasetError

SMALL = dict(num_train_ids=6, num_test_ids=5)
GAP = ("context", "tone", "optics")


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    padded = np.pad(mask, r)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


@pytest.fixture(scope="module")
def bench_truth(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("truth")
    generate_benchmark(root, seed=0, progress=False, truth=True, truth_pairs=12, **SMALL)
    return root


# --------------------------------------------------------------------------- what the truth is


@pytest.mark.parametrize("domain", ["synth_a", "synth_b"])
def test_truth_of_an_image_in_its_own_scene_is_that_image_byte_for_byte(domain):
    jobs = [j for j in _plan(domain, 0, **SMALL) if j.pid > 0]
    scenes = [_job_scene(domain, 0, j)[2] for j in jobs]
    # the check covers shots with an occluder and with a passer-by, not only plain ones
    assert any(s.occluder is not None for s in scenes) and any(s.bystander is not None for s in scenes)
    for job in jobs[::3]:
        truth, truth_mask = render_into(domain, job, domain, job, 0)
        image, mask, _ = _render_job(domain, 0, job, 64, 32)
        assert np.array_equal(truth, image) and np.array_equal(truth_mask, mask)


def test_truth_of_an_image_in_its_own_scene_encodes_to_the_written_file(bench_truth):
    for job in [j for j in _plan("synth_b", 0, **SMALL) if j.split == "train"][:5]:
        truth, _ = render_into("synth_b", job, "synth_b", job, 0)
        buffer = io.BytesIO()
        Image.fromarray(truth).save(buffer, "JPEG", quality=JPEG_QUALITY)
        assert buffer.getvalue() == (bench_truth / "synth_b" / "bounding_box_train" / f"{job.name}.jpg").read_bytes()


def test_truth_is_the_target_scene_without_its_person_and_with_the_source_person():
    pairs = truth_pairs(0, **SMALL, num_pairs=10)
    changed_target_pixels = 0
    for pair in pairs:
        truth, mask = render_into("synth_a", pair.source, "synth_b", pair.target, 0)
        scene, _ = render_into("synth_a", pair.source, "synth_b", pair.target, 0, person=False)
        target, target_mask, _ = _render_job("synth_b", 0, pair.target, 64, 32)
        # the source shot has no occluder: its mask is the person's whole body, in the same place
        _, source_mask, _ = _render_job("synth_a", 0, pair.source, 64, 32)
        near_person = _dilate((mask >= 128) | (source_mask >= 128), 3)
        assert mask.any()
        # away from the source person's body (3 px cover the 2x reduction and the camera blur) the
        # truth is the target's scene with no person in it
        assert np.array_equal(truth[~near_person], scene[~near_person])
        # where the target's own person stood, away from the source person, that person is gone
        gone = (target_mask >= 128) & ~near_person
        changed_target_pixels += int((np.abs(truth[gone].astype(int) - target[gone].astype(int)).max(-1) > 10).sum())
        # the source person keeps its pose, size and place: its pixels are the source's own mask
        # (less what the target scene's occluder hides)
        assert not ((mask >= 128) & (source_mask < 128)).any()
        if _job_scene("synth_b", 0, pair.target)[2].occluder is None:
            assert np.array_equal(mask, source_mask)
    assert changed_target_pixels > 200


def test_the_truth_takes_the_target_camera_tone_and_light_not_the_source_ones():
    pair = truth_pairs(0, **SMALL, num_pairs=1)[0]
    truth, mask = render_into("synth_a", pair.source, "synth_b", pair.target, 0)
    source, source_mask, _ = _render_job("synth_a", 0, pair.source, 64, 32)
    person = (mask >= 128) & (source_mask >= 128)
    # the same person pixels, drawn through another camera: their colours differ
    assert np.abs(truth[person].astype(float).mean(0) - source[person].astype(float).mean(0)).max() > 2.0


# --------------------------------------------------------------------------- the evaluation set


def test_pairs_are_unoccluded_source_test_images_and_target_training_images():
    pairs = truth_pairs(0, **SMALL, num_pairs=15)
    assert len(pairs) == 15 and [p.index for p in pairs] == list(range(15))
    assert len({p.source for p in pairs}) == 15
    for pair in pairs:
        assert pair.source.split in ("query", "gallery") and pair.source.pid > SMALL["num_train_ids"]
        assert pair.target.split == "train" and pair.target.pid >= 1
        assert _job_scene("synth_a", 0, pair.source)[2].occluder is None
        assert pair.source_file.startswith(("query/", "bounding_box_test/"))
        assert pair.target_file.startswith("bounding_box_train/")


def test_pair_i_does_not_depend_on_how_many_pairs_are_asked_and_the_seed_changes_them():
    assert truth_pairs(0, **SMALL, num_pairs=5) == truth_pairs(0, **SMALL, num_pairs=12)[:5]
    assert truth_pairs(1, **SMALL, num_pairs=5) != truth_pairs(0, **SMALL, num_pairs=5)


# --------------------------------------------------------------------------- written and versioned


def test_crgan_synth_truth_is_deterministic_and_versioned(bench_truth, tmp_path):
    generate_benchmark(tmp_path, seed=0, progress=False, truth=True, truth_pairs=12, **SMALL)
    assert _digests(tmp_path) == _digests(bench_truth)
    meta = json.loads((bench_truth / TRUTH_FOLDER / "meta.json").read_text())
    assert meta["truth_version"] == TRUTH_VERSION == 1
    assert meta["generator_version"] == GENERATOR_VERSION == 2
    assert (meta["seed"], meta["height"], meta["width"], meta["num_pairs"]) == (0, 64, 32, 12)
    pairs = json.loads((bench_truth / TRUTH_FOLDER / "pairs.json").read_text())
    assert len(pairs) == 12
    for record in pairs:  # the manifest names files that exist
        for key, base in (("source", bench_truth), ("target", bench_truth), ("image", bench_truth / TRUTH_FOLDER),
                          ("mask", bench_truth / TRUTH_FOLDER)):
            assert (base / record[key]).is_file()


def test_the_evaluator_builds_the_bytes_crgan_synth_writes(bench_truth):
    truth = build_truth(bench_truth, num_pairs=12)
    records = json.loads((bench_truth / TRUTH_FOLDER / "pairs.json").read_text())
    for i, record in enumerate(records):
        assert np.array_equal(np.asarray(Image.open(bench_truth / TRUTH_FOLDER / record["image"])), truth.images[i])
        assert np.array_equal(np.asarray(Image.open(bench_truth / TRUTH_FOLDER / record["mask"])), truth.masks[i])
        assert record["source"] == f"synth_a/{truth.pairs[i].source_file}"


def test_writing_the_truth_leaves_every_benchmark_file_unchanged(tmp_path):
    """The pinned version-2 bytes (tests/data/test_synthetic.py) hold with the truth written too."""
    from test_synthetic import PINNED_V2, _tree_digest

    generate_benchmark(tmp_path, seed=0, num_train_ids=2, num_test_ids=1, progress=False, truth=True, truth_pairs=3)
    assert (tmp_path / TRUTH_FOLDER / "meta.json").is_file()
    truth = tmp_path / TRUTH_FOLDER
    truth.rename(tmp_path.parent / f"{tmp_path.name}-truth")
    assert _tree_digest(tmp_path) == PINNED_V2


def test_a_truth_folder_of_other_settings_is_refused_and_overwrite_replaces_it(bench_truth, tmp_path):
    generate_truth(tmp_path, seed=0, num_pairs=4, progress=False, **SMALL)
    with pytest.raises(ConfigError, match="num_pairs=4 \\(asked 5\\)"):
        generate_truth(tmp_path, seed=0, num_pairs=5, progress=False, **SMALL)
    generate_truth(tmp_path, seed=0, num_pairs=5, progress=False, overwrite=True, **SMALL)
    assert len(list((tmp_path / TRUTH_FOLDER / "images").iterdir())) == 5


def test_benchmark_settings_name_a_missing_or_mismatched_benchmark(bench_truth, tmp_path):
    with pytest.raises(DatasetError, match="synth_a/meta.json.*crgan synth"):
        benchmark_settings(tmp_path)
    assert benchmark_settings(bench_truth)["seed"] == 0
    generate_benchmark(tmp_path, seed=1, domains=("synth_a",), progress=False, **SMALL)
    generate_benchmark(tmp_path, seed=0, domains=("synth_b",), progress=False, **SMALL)
    with pytest.raises(DatasetError, match="different seed"):
        benchmark_settings(tmp_path)
