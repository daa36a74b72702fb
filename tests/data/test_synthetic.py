"""The embedded two-domain benchmark: layout, determinism, masks, splits, atomic writing, errors."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crgan_lightning.data import load_reid_dataset
from crgan_lightning.data import synthetic
from crgan_lightning.data.synthetic import (
    DOMAINS, SPLIT_FOLDERS, generate_benchmark, generate_domain, render_sample,
)
from crgan_lightning.errors import ConfigError
from crgan_lightning.fileio import MANIFEST_FILE, host_name

NAME = re.compile(r"^(-?\d+)_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
SMALL = dict(num_train_ids=6, num_test_ids=5, progress=False)


@pytest.fixture(scope="session")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    generate_benchmark(root, seed=0, **SMALL)
    return root


@pytest.fixture(scope="session")
def bench_again(tmp_path_factory) -> Path:
    """A second run with the same seed, with the in-process caches emptied first."""
    synthetic._camera_background.cache_clear()
    synthetic._appearance.cache_clear()
    root = tmp_path_factory.mktemp("bench_again")
    generate_benchmark(root, seed=0, **SMALL)
    return root


@pytest.fixture(scope="session")
def bench_seed1(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench_seed1")
    generate_benchmark(root, seed=1, domains=("synth_a",), **SMALL)
    return root


def _files(folder: Path) -> dict[str, str]:
    """Relative path -> sha1 of every file under ``folder`` but the writers' manifests (the list
    of files a writer wrote, bookkeeping for ``--overwrite``, not part of the benchmark)."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_FILE}


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    padded = np.pad(mask, r)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    return ~_dilate(~mask, r)


# --------------------------------------------------------------------------- layout and parsing


@pytest.mark.parametrize("domain", ["synth_a", "synth_b"])
def test_names_parse_and_counts_match_meta(bench, domain):
    ds = load_reid_dataset(domain, bench)
    meta = json.loads((bench / domain / "meta.json").read_text())
    assert meta["name"] == domain
    assert meta["num_cameras"] == DOMAINS[domain].num_cameras == ds.num_cameras
    assert (meta["seed"], meta["height"], meta["width"]) == (0, 64, 32)
    assert meta["generator_version"] == synthetic.GENERATOR_VERSION and meta["written_by"] == "crgan synth"
    assert (meta["num_train_ids"], meta["num_test_ids"]) == (6, 5)
    assert meta["num_images"] == {"train": len(ds.train), "query": len(ds.query), "gallery": len(ds.gallery)}
    assert ds.num_train_pids == 6
    assert len({s.pid for s in ds.query}) == 5
    assert {s.pid for s in ds.gallery} == {s.pid for s in ds.query} | {0}
    names = []
    for split, folder in SPLIT_FOLDERS.items():
        files = sorted(p.name for p in (bench / domain / folder).iterdir())
        assert files and all(NAME.match(n) for n in files), files[:3]
        assert len(files) == meta["num_images"][split]
        names += files
    assert len(names) == len(set(names)), "file names must be unique across splits"
    # default sizes are roughly Market-like: ~10 train images per id, 2+ cameras per id
    assert 6 * 6 <= len(ds.train) <= 6 * 14


def test_train_and_test_ids_are_disjoint_and_one_based(bench):
    for domain in DOMAINS:
        ds = load_reid_dataset(domain, bench)
        train = {s.pid for s in ds.train}
        test = {s.pid for s in ds.query} | {s.pid for s in ds.gallery}
        assert not train & test
        assert train == set(range(1, 7))
        assert test == {0} | set(range(7, 12))


@pytest.mark.parametrize("domain", ["synth_a", "synth_b"])
def test_every_query_has_a_cross_camera_gallery_match(bench, domain):
    ds = load_reid_dataset(domain, bench)
    gallery_cams = defaultdict(set)
    for s in ds.gallery:
        gallery_cams[s.pid].add(s.camid)
    query_cams = defaultdict(list)
    for q in ds.query:
        query_cams[q.pid].append(q.camid)
        assert gallery_cams[q.pid] - {q.camid}, f"query {q.path} has no gallery match in another camera"
    for pid, cams in query_cams.items():
        assert len(cams) >= 2 and len(cams) == len(set(cams)), "one query per camera, at least two cameras"
        assert set(cams) == gallery_cams[pid]
    train_cams = defaultdict(set)
    for s in ds.train:
        train_cams[s.pid].add(s.camid)
    assert all(len(c) >= 2 for c in train_cams.values())
    assert 0 not in {q.pid for q in ds.query}
    assert sum(s.pid == 0 for s in ds.gallery) >= 3


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(bench, bench_again):
    for domain in DOMAINS:
        a, b = _files(bench / domain), _files(bench_again / domain)
        assert a.keys() == b.keys()
        assert a == b


def test_another_seed_gives_other_people_and_images(bench, bench_seed1):
    a, b = _files(bench / "synth_a"), _files(bench_seed1 / "synth_a")
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert a.keys() != b.keys() or all(a[k] != b[k] for k in jpgs)
    assert not (bench_seed1 / "synth_b").exists()


def test_render_sample_reproduces_the_written_image_and_mask(bench):
    ds = load_reid_dataset("synth_a", bench)
    q = ds.query[0]  # the query is image 0 of its (pid, camera)
    img, mask = render_sample("synth_a", q.pid, q.camid, 0, seed=0)
    written = np.asarray(Image.open(q.path).convert("RGB"), np.float32)
    assert written.shape == img.shape == (64, 32, 3)
    assert np.abs(written - img).mean() < 3.0  # JPEG quality 95
    stem = Path(q.path).stem
    assert np.array_equal(np.asarray(Image.open(bench / "synth_a" / "masks" / "query" / f"{stem}.png")), mask)


# --------------------------------------------------------------------------- masks


@pytest.mark.parametrize("domain", ["synth_a", "synth_b"])
def test_every_image_has_an_aligned_binary_mask(bench, domain):
    root = bench / domain
    for folder in SPLIT_FOLDERS.values():
        for img_path in sorted((root / folder).glob("*.jpg")):
            mask_img = Image.open(root / "masks" / folder / f"{img_path.stem}.png")
            img = Image.open(img_path)
            assert mask_img.mode == "L" and img.mode == "RGB"
            assert mask_img.size == img.size == (32, 64)
            m = np.asarray(mask_img)
            assert set(np.unique(m)) <= {0, 255}
            frac = (m > 0).mean()
            assert 0.01 < frac < 0.8, (img_path.name, frac)
            if not img_path.name.startswith("0000_"):  # well-framed people fill most of the height
                rows = np.flatnonzero(m.any(1))
                assert rows[-1] - rows[0] > 0.45 * m.shape[0], img_path.name
                assert 0.08 < frac < 0.6, (img_path.name, frac)


@pytest.mark.parametrize("domain", ["synth_a", "synth_b"])
def test_mask_marks_exactly_the_pixels_the_person_changes(domain):
    """Render shots with and without the person: outside the mask the image is the same
    background (up to blur spill at the edge), inside it differs clearly."""
    cams = DOMAINS[domain].num_cameras
    occluded = 0
    for pid in range(1, 13):
        cam = pid % cams
        img, mask = render_sample(domain, pid, cam, 0, height=128, width=64)
        bg, mask_bg = render_sample(domain, pid, cam, 0, height=128, width=64, person=False)
        assert np.array_equal(mask, mask_bg)
        fg = mask > 0
        diff = np.abs(img.astype(int) - bg.astype(int)).max(-1)
        assert diff[~_dilate(fg, 5)].max() <= 1
        assert diff[_erode(fg, 2)].mean() > 15
        assert fg.any()
        shot = synthetic.sample_shot(synthetic._rng(0, domain, synthetic._STREAM_SHOT, pid, cam, 0),
                                     DOMAINS[domain], cam)
        occluded += shot.occluder is not None
    assert occluded >= 1, "some shots should put a scene object in front of the person"


def test_occluder_removes_pixels_from_the_mask():
    domain = "synth_b"
    style = DOMAINS[domain]
    for pid in range(1, 60):
        shot = synthetic.sample_shot(synthetic._rng(0, domain, synthetic._STREAM_SHOT, pid, 0, 0), style, 0)
        if shot.occluder is None:
            continue
        app = synthetic._appearance(domain, 0, pid)
        _, with_occ, _ = synthetic._render(domain, 0, app, shot, 128, 64)
        clear = synthetic.Shot(**{**shot.__dict__, "occluder": None})
        _, without, _ = synthetic._render(domain, 0, app, clear, 128, 64)
        assert not ((with_occ > 0) & (without == 0)).any()
        if (with_occ > 0).sum() < (without > 0).sum():
            return
    pytest.fail("no shot with a visible occlusion among 60 identities")


def test_domains_differ_in_background_colour(bench):
    means = {}
    for domain in DOMAINS:
        pixels = []
        root = bench / domain
        for img_path in sorted((root / "bounding_box_train").glob("*.jpg")):
            img = np.asarray(Image.open(img_path), np.float32)
            m = np.asarray(Image.open(root / "masks" / "bounding_box_train" / f"{img_path.stem}.png")) == 0
            pixels.append(img[m])
        means[domain] = np.concatenate(pixels).mean(0)
    a, b = means["synth_a"], means["synth_b"]
    assert np.linalg.norm(a - b) > 30, (a, b)
    assert a.mean() - b.mean() > 15, "synth_b is darker on average"
    assert b[1] > b[2] + 15 and abs(a[1] - a[2]) < 15, "synth_b is green (vegetation), synth_a grey"


def test_cameras_of_a_domain_have_different_tones():
    """The same shot seen through two synth_b cameras differs by the camera's colour cast."""
    style = DOMAINS["synth_b"]
    gains = np.array([c.gains for c in style.cameras])
    assert (gains.max(0) - gains.min(0) > 0.05).all()
    assert len({c.brightness for c in style.cameras}) >= 4


def test_large_size_is_supported():
    img, mask = render_sample("synth_b", 3, 2, 0, height=256, width=128)
    assert img.shape == (256, 128, 3) and mask.shape == (256, 128)
    assert 0.08 < (mask > 0).mean() < 0.6


# --------------------------------------------------------------------------- atomic writing


TINY = dict(num_train_ids=1, num_test_ids=1, progress=False)


def test_existing_dataset_is_kept_unless_overwrite(tmp_path):
    path = generate_domain(tmp_path, "synth_a", 0, **TINY)
    assert path == tmp_path / "synth_a"
    meta, img = path / "meta.json", sorted((path / "query").iterdir())[0]
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for p in (meta, img)}
    assert generate_benchmark(tmp_path, seed=0, domains=["synth_a"], **TINY) == {"synth_a": path}
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for p in (meta, img)} == before
    generate_domain(tmp_path, "synth_a", 0, overwrite=True, **TINY)
    assert meta.stat().st_ino != before[meta][1]  # a new folder was swapped in
    assert meta.read_bytes() == before[meta][2]  # with the same content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth_a"]  # no work folders left


def test_existing_dataset_with_other_arguments_is_an_error(tmp_path):
    generate_domain(tmp_path, "synth_a", 0, **TINY)
    with pytest.raises(ConfigError, match="seed=0.*asked 3.*overwrite"):
        generate_domain(tmp_path, "synth_a", 3, **TINY)
    generate_domain(tmp_path, "synth_a", 3, overwrite=True, **TINY)
    assert json.loads((tmp_path / "synth_a" / "meta.json").read_text())["seed"] == 3


def test_leftover_work_folders_do_not_break_a_run(tmp_path):
    dead_pid = 4_194_304 + 1  # above Linux's pid_max: never a live process
    stale = [tmp_path / f".synth_b.tmp-{host_name()}-{dead_pid}-abc123", tmp_path / ".synth_b.tmp-junk"]
    for folder in stale:
        (folder / "bounding_box_train").mkdir(parents=True)
        (folder / "bounding_box_train" / "0001_c1s1_000001_00.jpg").write_bytes(b"half written")
    paths = generate_benchmark(tmp_path, seed=0, domains=["synth_b"], **TINY)
    ds = load_reid_dataset("synth_b", tmp_path)
    assert paths == {"synth_b": tmp_path / "synth_b"} and len(ds.query) >= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth_b"]


def test_interrupted_run_leaves_no_complete_looking_folder(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synthetic.writer._render_job

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic.writer, "_render_job", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_domain(tmp_path, "synth_a", 0, **TINY)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_foreign_folder_is_not_replaced(tmp_path, overwrite):
    (tmp_path / "synth_a" / "query").mkdir(parents=True)  # even one that looks like an unfinished copy
    (tmp_path / "synth_a" / "notes.txt").write_text("mine")
    (tmp_path / "synth_a" / "meta.json").write_text('{"name": "synth_a"}')  # someone else's meta.json
    with pytest.raises(ConfigError, match="did not write"):
        generate_domain(tmp_path, "synth_a", 0, overwrite=overwrite, **TINY)
    assert (tmp_path / "synth_a" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth_a"]


def test_a_file_in_place_of_the_domain_is_refused(tmp_path):
    (tmp_path / "synth_b").write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file"):
        generate_domain(tmp_path, "synth_b", 0, overwrite=True, **TINY)
    assert (tmp_path / "synth_b").read_text() == "not a folder"


def test_written_folders_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        path = generate_domain(tmp_path, "synth_a", 0, **TINY)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o755
    assert (path / "bounding_box_train").stat().st_mode & 0o777 == 0o755


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("kwargs, match", [
    (dict(domains=("synth_c",)), "'synth_c'.*synth_a, synth_b"),
    (dict(domains=()), "empty"),
    (dict(num_train_ids=0), "num_train_ids=0.*>= 1"),
    (dict(num_test_ids=-2), "num_test_ids=-2.*>= 1"),
    (dict(num_train_ids=2.5), "num_train_ids=2.5.*integer"),
    (dict(num_train_ids=9000, num_test_ids=1000), "10000.*9999"),
    (dict(height=16), "height=16.*>= 32"),
    (dict(width=8), "width=8.*>= 16"),
    (dict(seed=-1), "seed=-1.*>= 0"),
])
def test_bad_arguments_raise_config_error(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate_benchmark(tmp_path, progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_unknown_domain_in_generate_domain_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'market'"):
        generate_domain(tmp_path, "market", 0)
    with pytest.raises(ConfigError, match="cam=9"):
        render_sample("synth_a", 1, 9)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- version 2


#: sha1 over every file of ``generate_benchmark(root, seed=0, num_train_ids=2, num_test_ids=1)``
#: (both domains, 64 x 32). It changes only with the generator version: a change of this value
#: without a new GENERATOR_VERSION means two different benchmarks would carry one version.
PINNED_V2 = "c8f6a469e6b5fe34fa368dd97d74b465af4ef989"


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha1()
    for name, sha in sorted(_files(root).items()):
        digest.update(f"{name}:{sha}\n".encode())
    return digest.hexdigest()


def test_a_seed_gives_the_pinned_bytes_within_this_version(tmp_path):
    generate_benchmark(tmp_path, seed=0, num_train_ids=2, num_test_ids=1, progress=False)
    assert synthetic.GENERATOR_VERSION == 2
    assert _tree_digest(tmp_path) == PINNED_V2


def test_a_folder_of_another_version_or_settings_is_refused_not_mixed(tmp_path):
    path = generate_domain(tmp_path, "synth_a", 0, **TINY)
    meta = json.loads((path / "meta.json").read_text())
    meta["generator_version"] = 1
    (path / "meta.json").write_text(json.dumps(meta))
    before = _files(path)
    with pytest.raises(ConfigError, match="generator_version=1 \\(asked 2\\).*overwrite"):
        generate_domain(tmp_path, "synth_a", 0, **TINY)
    with pytest.raises(ConfigError, match="mask_quality='exact' \\(asked 'segmentation'\\)"):
        (path / "meta.json").write_text(json.dumps({**meta, "generator_version": 2}))
        generate_domain(tmp_path, "synth_a", 0, mask_quality="segmentation", **TINY)
    assert {k: v for k, v in _files(path).items() if k != "meta.json"} == \
        {k: v for k, v in before.items() if k != "meta.json"}


def test_the_datamodule_refuses_a_benchmark_of_another_version(tmp_path):
    from crgan_lightning.data.datamodule import CrossDomainDataModule
    from crgan_lightning.errors import DatasetError

    for name in ("synth_a", "synth_b"):
        path = generate_domain(tmp_path, name, 0, **TINY)
        meta = json.loads((path / "meta.json").read_text())
        (path / "meta.json").write_text(json.dumps({**meta, "generator_version": 1}))
    dm = CrossDomainDataModule(root=str(tmp_path), num_workers=0)
    with pytest.raises(DatasetError, match="version 1 .* version 2.*crgan synth --out .* --overwrite"):
        dm.setup("fit")


@pytest.mark.parametrize("height, width", [(64, 32), (128, 64)])
def test_segmentation_masks_are_degraded_with_the_mean_iou_recorded(tmp_path, height, width):
    exact = generate_domain(tmp_path / "exact", "synth_b", 0, num_train_ids=8, num_test_ids=2, height=height,
                            width=width, progress=False)
    seg = generate_domain(tmp_path / "seg", "synth_b", 0, num_train_ids=8, num_test_ids=2, height=height,
                          width=width, progress=False, mask_quality="segmentation")
    from crgan_lightning.data.mask_quality import SEGMENTATION_TARGET_IOU, mask_iou

    meta = json.loads((seg / "meta.json").read_text())
    assert meta["mask_quality"] == "segmentation"
    assert json.loads((exact / "meta.json").read_text())["mask_iou"] is None
    ious = []
    for exact_mask in sorted((exact / "masks").rglob("*.png")):
        a = np.asarray(Image.open(exact_mask))
        b = np.asarray(Image.open(seg / exact_mask.relative_to(exact)))
        assert set(np.unique(b)) <= {0, 255}
        ious.append(mask_iou(a, b))
    assert meta["mask_iou"] == pytest.approx(np.mean(ious), abs=1e-6)
    assert abs(meta["mask_iou"] - SEGMENTATION_TARGET_IOU) < 0.06
    assert min(ious) < 1.0  # masks really changed ...
    images = sorted(p.relative_to(exact) for p in exact.rglob("*.jpg"))
    assert all((exact / p).read_bytes() == (seg / p).read_bytes() for p in images)  # ... images did not


def test_oracle_draws_the_source_people_in_the_target_contexts(tmp_path):
    paths = generate_benchmark(tmp_path, seed=0, num_train_ids=6, num_test_ids=2, progress=False, oracle=True)
    oracle = load_reid_dataset("synth_a_in_b", tmp_path)
    a, b = load_reid_dataset("synth_a", tmp_path), load_reid_dataset("synth_b", tmp_path)
    assert set(paths) == {"synth_a", "synth_b", "synth_a_in_b"}
    assert oracle.train_pids == a.train_pids and not oracle.query and not oracle.gallery
    assert oracle.num_cameras == b.num_cameras
    meta = json.loads((paths["synth_a_in_b"] / "meta.json").read_text())
    assert (meta["people"], meta["contexts"], meta["num_test_ids"]) == ("synth_a", "synth_b", 0)
    # the same person as synth_a's pid 1 (one appearance), in synth_b's camera 0 at one of its places
    rng = synthetic._rng(0, "synth_a_in_b", synthetic._STREAM_SHOT, 1, 0, 0)
    shot = synthetic.sample_shot(rng, DOMAINS["synth_b"], 0)
    app = synthetic._appearance("synth_a", 0, 1)
    img, mask, _ = synthetic._render("synth_b", 0, app, shot, 64, 32)
    same = synthetic._render("synth_b", 0, synthetic._appearance("synth_b", 0, 1), shot, 64, 32)[0]
    assert np.abs(img.astype(int) - same.astype(int))[mask > 0].mean() > 5  # another person than synth_b's pid 1


def test_places_vary_the_context_within_a_camera():
    """Two shots of one camera at different places show different scenery behind the person."""
    style = DOMAINS["synth_a"]
    backgrounds = [synthetic._camera_background("synth_a", 0, 0, 64, 32, place)
                   for place in range(style.places_per_camera)]
    assert style.places_per_camera >= 4
    means = np.array([bg.reshape(-1, 3).mean(0) for bg in backgrounds])
    assert np.linalg.norm(means - means.mean(0), axis=1).max() > 5
    assert len({bg.tobytes() for bg in backgrounds}) == len(backgrounds)


def test_clothing_shift_darkens_synth_b_people_only():
    from crgan_lightning.data.synthetic.appearance import sample_appearance

    def mean_luma(bias):
        apps = [sample_appearance(np.random.default_rng(i), bias) for i in range(300)]
        return np.mean([np.dot([0.299, 0.587, 0.114], a.upper) for a in apps])

    assert mean_luma(3.0) < mean_luma(0.0) - 15
    from crgan_lightning.data.synthetic.plan import dark_bias
    assert dark_bias("synth_b", 3.0) == 3.0 and dark_bias("synth_a", 3.0) == 0.0 and dark_bias("synth_b", 0) == 0
