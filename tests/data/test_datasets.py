"""Dataset parsers on small trees with the real folder layouts and file names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import write_images
from PIL import Image

from crgan_lightning.data import load_reid_dataset
from crgan_lightning.data.images import read_image, read_mask
from crgan_lightning.errors import DatasetError, ImageReadError


def make_market(root: Path, empty: bool = True) -> Path:
    ds = root / "Market-1501-v15.09.15"
    write_images(ds / "bounding_box_train", [
        "0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s3_077419_03.jpg", "0007_c6s4_002202_01.jpg",
    ], empty=empty)
    write_images(ds / "query", ["0001_c1s1_001051_00.jpg", "0003_c3s1_000101_00.jpg"], empty=empty)
    write_images(ds / "bounding_box_test", [
        "-1_c1s1_000401_03.jpg", "-1_c5s2_000101_01.jpg",  # junk: dropped
        "0000_c1s1_000151_01.jpg", "0000_c4s1_000176_05.jpg",  # distractors: kept
        "0001_c2s1_000976_01.jpg", "0001_c1s1_001051_03.jpg", "0003_c5s1_000201_02.jpg",
    ], empty=empty)
    (ds / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0")  # shipped with Market-1501, not an image
    return ds


def test_market_protocol_drops_junk_keeps_distractors(tmp_path):
    make_market(tmp_path)
    ds = load_reid_dataset("market", tmp_path)
    assert ds.name == "market1501" and ds.num_cameras == 6
    assert len(ds.train) == 4 and ds.num_train_pids == 2 and ds.train_pids == [2, 7]
    assert len(ds.query) == 2
    assert sorted(s.pid for s in ds.gallery) == [0, 0, 1, 1, 3]
    sample = next(s for s in ds.train if s.path.endswith("0007_c6s4_002202_01.jpg"))
    assert (sample.pid, sample.camid) == (7, 5)
    assert min(s.camid for s in ds.gallery) == 0


def test_market_root_may_be_the_dataset_folder_itself(tmp_path):
    folder = make_market(tmp_path)
    a = load_reid_dataset("market1501", tmp_path)
    b = load_reid_dataset("Market", folder)
    assert a.root == b.root == folder and a.train == b.train


def test_summary_table_counts(tmp_path):
    make_market(tmp_path)
    text = load_reid_dataset("market", tmp_path).summary()
    rows = {line.split("|")[0].strip(): [int(x) for x in line.split("|")[1:]] for line in text.splitlines()
            if line.strip().startswith(("train", "query", "gallery"))}
    assert rows == {"train": [2, 4, 4], "query": [2, 2, 2], "gallery": [3, 5, 4]}


def test_duke_keeps_everything_and_has_eight_cameras(tmp_path):
    ds_dir = tmp_path / "DukeMTMC-reID"
    write_images(ds_dir / "bounding_box_train", ["0001_c2_f0046182.jpg", "0001_c8_f0050000.jpg"], empty=True)
    write_images(ds_dir / "query", ["0005_c2_f0046985.jpg"], empty=True)
    write_images(ds_dir / "bounding_box_test", ["0005_c7_f0101010.jpg", "0009_c1_f0000001.jpg"], empty=True)
    ds = load_reid_dataset("duke", tmp_path)
    assert ds.name == "dukemtmcreid" and ds.num_cameras == 8
    assert [(s.pid, s.camid) for s in ds.train] == [(1, 1), (1, 7)]
    assert [(s.pid, s.camid) for s in ds.gallery] == [(5, 6), (9, 0)]


@pytest.mark.parametrize("version,train_dir,test_dir", [("MSMT17_V1", "train", "test"),
                                                        ("MSMT17_V2", "mask_train_v2", "mask_test_v2")])
def test_msmt17_list_files(tmp_path, version, train_dir, test_dir):
    root = tmp_path / version
    train = ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0000/0000_001_15_0303morning_0016_0.jpg 0"]
    val = ["0001/0001_000_07_0303noon_0100_1.jpg 1"]
    query = ["0000/0000_000_05_0303afternoon_0201_0.jpg 0"]
    gallery = ["0000/0000_003_06_0303afternoon_0210_0.jpg 0", "0002/0002_000_12_0113morning_0001_0.jpg 2"]
    for name, lines, folder in (("list_train.txt", train, train_dir), ("list_val.txt", val, train_dir),
                                ("list_query.txt", query, test_dir), ("list_gallery.txt", gallery, test_dir)):
        (root).mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(lines) + "\n")
        for line in lines:
            f = root / folder / line.split()[0]
            f.parent.mkdir(parents=True, exist_ok=True)
            f.touch()
    ds = load_reid_dataset("msmt17", tmp_path)
    assert ds.root == root and ds.num_cameras == 15
    assert [(s.pid, s.camid) for s in ds.train] == [(0, 0), (0, 14), (1, 6)]  # train + val
    assert [(s.pid, s.camid) for s in ds.query] == [(0, 4)]
    assert ds.gallery[1].path == str(root / test_dir / "0002/0002_000_12_0113morning_0001_0.jpg")
    assert ds.extra["version"] == ("v2" if version.endswith("V2") else "v1")


def test_msmt17_bad_list_line_names_file_and_line(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    (tmp_path / "list_train.txt").write_text("0000/0000_000_01_0303morning_0015_0.jpg 0\nbroken-line\n")
    with pytest.raises(DatasetError, match=r"line 2 of .*list_train.txt"):
        load_reid_dataset("msmt", tmp_path)


@pytest.mark.parametrize("variant", ["detected", "labeled"])
def test_cuhk03_np(tmp_path, variant):
    base = tmp_path / "cuhk03-np" / variant
    write_images(base / "bounding_box_train", ["0001_c1_1.png", "0001_c2_6.png"], empty=True)
    write_images(base / "query", ["0003_c1_2.png"], empty=True)
    write_images(base / "bounding_box_test", ["0003_c2_7.png", "0004_c1_1.png"], empty=True)
    ds = load_reid_dataset("cuhk03", tmp_path)
    assert ds.name == "cuhk03np" and ds.num_cameras == 2 and ds.extra["variant"] == variant
    assert [(s.pid, s.camid) for s in ds.train] == [(1, 0), (1, 1)]


def test_unknown_dataset_name_lists_the_known_ones(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'viper'.*market1501"):
        load_reid_dataset("viper", tmp_path)


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match=f"data root {tmp_path / 'nope'} does not exist"):
        load_reid_dataset("market", tmp_path / "nope")


def test_layout_that_matches_nothing_names_paths_and_expected_layout(tmp_path):
    with pytest.raises(DatasetError, match="no dataset found at .*expected bounding_box_train/, query/"):
        load_reid_dataset("market", tmp_path)
    (tmp_path / "Market-1501-v15.09.15" / "bounding_box_train").mkdir(parents=True)  # query/, test/ missing
    with pytest.raises(DatasetError, match="Market-1501-v15.09.15 has no .*/query, .*/bounding_box_test; "
                                           "expected bounding_box_train/, query/"):
        load_reid_dataset("market", tmp_path)


def test_file_name_that_does_not_parse(tmp_path):
    ds = make_market(tmp_path)
    (ds / "query" / "person_12.jpg").touch()
    with pytest.raises(DatasetError, match=r"person_12.jpg does not parse; expected names like 0002_c1s1"):
        load_reid_dataset("market", tmp_path)


def test_camera_out_of_range(tmp_path):
    ds = make_market(tmp_path)
    (ds / "query" / "0001_c7s1_001051_00.jpg").touch()
    with pytest.raises(DatasetError, match=r"camera c7 .* out of range; this dataset has cameras c1..c6"):
        load_reid_dataset("market", tmp_path)


def test_empty_split(tmp_path):
    ds = make_market(tmp_path)
    for f in (ds / "query").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"query holds no images"):
        load_reid_dataset("market", tmp_path)


@pytest.mark.slow
def test_published_market_and_duke_statistics(tmp_path):
    """Trees with the published file counts read exactly as the papers' tables say."""
    rng = np.random.default_rng(0)

    def names(pids, count, fmt):
        per = np.bincount(rng.integers(0, len(pids), count - len(pids)), minlength=len(pids)) + 1
        return [fmt(pid, rng.integers(1, 7), i) for pid, n in zip(pids, per) for i in range(n)]

    market = tmp_path / "Market-1501-v15.09.15"

    def mfmt(pid, cam, i):
        return f"{pid:04d}_c{cam}s1_{i:06d}_00.jpg" if pid >= 0 else f"-1_c{cam}s1_{i:06d}_00.jpg"

    train_ids = list(range(2, 1504, 2))[:751]
    test_ids = list(range(1, 1502, 2))[:750]
    write_images(market / "bounding_box_train", names(train_ids, 12936, mfmt), empty=True)
    write_images(market / "query", names(test_ids, 3368, mfmt), empty=True)
    write_images(market / "bounding_box_test", names([0] + test_ids, 15913, mfmt) + names([-1], 3819, mfmt),
                 empty=True)
    rows = load_reid_dataset("market", tmp_path)
    assert (rows.num_train_pids, len(rows.train)) == (751, 12936)
    assert (len({s.pid for s in rows.query}), len(rows.query)) == (750, 3368)
    assert (len({s.pid for s in rows.gallery}), len(rows.gallery)) == (751, 15913)

    duke = tmp_path / "DukeMTMC-reID"

    def dfmt(pid, cam, i):
        return f"{pid:04d}_c{cam}_f{i:07d}.jpg"

    write_images(duke / "bounding_box_train", names(list(range(1, 703)), 16522, dfmt), empty=True)
    write_images(duke / "query", names(list(range(1000, 1702)), 2228, dfmt), empty=True)
    write_images(duke / "bounding_box_test", names(list(range(1000, 2110)), 17661, dfmt), empty=True)
    d = load_reid_dataset("duke", tmp_path)
    assert (d.num_train_pids, len(d.train), d.num_cameras) == (702, 16522, 8)
    assert (len({s.pid for s in d.query}), len(d.query)) == (702, 2228)
    assert (len({s.pid for s in d.gallery}), len(d.gallery)) == (1110, 17661)


# ----------------------------------------------------------------------------- image reading


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB"])
def test_read_image_converts_every_mode_to_rgb(tmp_path, mode):
    arr = np.zeros((6, 4, 3), np.uint8)
    arr[..., 0] = 200
    img = Image.fromarray(arr)
    img = img.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else img.convert(mode)
    path = tmp_path / f"x_{mode}.png"
    img.save(path)
    out = read_image(path)
    assert out.shape == (6, 4, 3) and out.dtype == np.uint8
    if mode in ("RGB", "RGBA", "P"):
        assert out[0, 0, 0] == 200 and out[0, 0, 1] == 0  # channel order is RGB
    else:
        assert out[0, 0, 0] == out[0, 0, 1] == out[0, 0, 2]


def test_corrupt_and_missing_images_are_reported_with_their_path(tmp_path):
    bad = tmp_path / "0001_c1s1_000001_00.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageReadError, match=str(bad)):
        read_image(bad)
    with pytest.raises(ImageReadError, match="missing or empty"):
        read_image(tmp_path / "gone.jpg")
    with pytest.raises(ImageReadError, match="gone.png"):
        read_mask(tmp_path / "gone.png")


def test_a_domain_folder_does_not_load_as_the_other_domain(synth_root):
    assert load_reid_dataset("synth_b", synth_root / "synth_b").num_cameras == 8
    with pytest.raises(DatasetError, match="synth_a: no dataset found at"):
        load_reid_dataset("synth_a", synth_root / "synth_b")


def test_leftover_temporary_files_are_not_taken_for_images(tmp_path):
    ds = make_market(tmp_path)
    (ds / "query" / ".0001_c1s1_001051_00.jpg.1234.part").touch()
    (ds / "query" / ".hidden.jpg").touch()
    assert len(load_reid_dataset("market", tmp_path).query) == 2
