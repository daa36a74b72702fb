"""True renderings: what a perfect context renderer would make of a (source image, target image)
pair, which no real dataset can give.

A translator renders the person of a source image (synth_a) into the context of a target image
(synth_b). The benchmark knows how both images were drawn, so it can draw the answer with its
own painters: the **source person** -- its appearance, and the pose, size and place it has in
the source image (view, walking phase, stride, arms, height, feet and centre) -- in the **target
image's scene** -- its camera, place and crop of the background, passer-by, occluder, time of
day (light and colour tone) and sensor noise -- **without the target's own person**. The person
is drawn into the scene before the camera acts, so it takes the target's tone, light, blur and
noise exactly as the target's own person did; its contact shadow goes with it.

What holds, exactly (tested):

* the truth of an image rendered into its own scene is that image, byte for byte (as drawn,
  before the dataset's JPEG encoding): one code path draws both;
* the truth of a source in another image's scene equals that scene drawn with no person at all
  (same background, passer-by, occluder, light and noise, the source person's shadow) at every
  pixel more than 3 pixels from the source person's body (the parts an occluder of the scene
  hides included: a see-through occluder lets some of them show): the target's own person is
  not in it;
* the source person keeps its pose, size and place: the truth's person mask is the source
  image's own mask, less what the target scene's occluder hides (equal when there is none).

The evaluation set is fixed by the benchmark's seed (:func:`truth_pairs`): ``num_pairs`` source
images from synth_a's test split (query and gallery, no distractors), only shots without an
occluder in front of the person (a translator cannot know what an occluder hides), each paired
with a target image from synth_b's training split (the contexts every translator renders into,
as in ``crgan quality``). Pair ``i`` does not depend on how many pairs are asked for.

Written by ``crgan synth --truth`` (:func:`generate_truth`) as ``<root>/rendering_truth/``::

    rendering_truth/images/0000.png     the true rendering (lossless PNG, as drawn)
                    masks/0000.png      the source person's visible pixels in it (255)
                    pairs.json          the manifest: source and target file of each pair
                    meta.json           generator and truth versions, settings (written last)

or built in memory by the evaluator from the benchmark's own ``meta.json`` files
(:func:`build_truth`): the same bytes. The truth carries its own :data:`TRUTH_VERSION` beside the
benchmark's generator version; adding it changed no image of the benchmark and no calibration.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ...errors import ConfigError, DatasetError
from ...fileio import META_FILE, check_output_folder, host_name, replace_folder
from ..datasets import SPLIT_FOLDERS
from .arguments import HEIGHT, NUM_TEST_IDS, NUM_TRAIN_IDS, WIDTH, _check_int
from .plan import _Job, _job_scene, _plan
from .render import _STREAM_TRUTH, _render, _rng
from .styles import GAP_PARTS
from .writer import GENERATOR_VERSION, WRITER, _check_existing, _clean_stale, _make_readable, _settings

log = logging.getLogger(__name__)

TRUTH_VERSION = 1
"""Version of the true renderings (how pairs are chosen and drawn); recorded in meta.json beside
the benchmark's ``generator_version``."""

TRUTH_FOLDER = "rendering_truth"
"""The folder under the data root that :func:`generate_truth` writes."""

TRUTH_SOURCE, TRUTH_TARGET = "synth_a", "synth_b"
"""The pair the truth is drawn for: synth_a's people rendered into synth_b's contexts."""

NUM_TRUTH_PAIRS = 200
"""Evaluation pairs by default."""

PAIRS_FILE = "pairs.json"

#: The fields of a shot that belong to the person (pose, size and place in the frame); every
#: other field (camera, place and crop of the background, occluder, light, tone, noise,
#: passer-by) belongs to the scene.
PERSON_FIELDS = ("view", "phase", "stride", "spread", "swing", "abduct", "elbow", "person_height", "feet_y", "dx")

#: What a truth folder's meta.json must match to be reused.
_TRUTH_KEYS = ("generator_version", "truth_version", "seed", "height", "width", "num_train_ids", "num_test_ids",
               "clothing_shift", "gap", "num_pairs")


@dataclass(frozen=True)
class TruthPair:
    """One evaluation pair: a planned source file of synth_a and a planned target file of synth_b."""

    index: int
    source: _Job
    target: _Job

    @property
    def source_file(self) -> str:
        """The source image's path inside the synth_a folder, e.g. ``bounding_box_test/0503_c2s1_....jpg``."""
        return f"{SPLIT_FOLDERS[self.source.split]}/{self.source.name}.jpg"

    @property
    def target_file(self) -> str:
        """The target image's path inside the synth_b folder."""
        return f"{SPLIT_FOLDERS[self.target.split]}/{self.target.name}.jpg"


@dataclass
class TruthSet:
    """The evaluation pairs and their true renderings: ``images`` uint8 (N, H, W, 3) RGB and
    ``masks`` uint8 (N, H, W), 255 on the source person's visible pixels; ``settings`` as in the
    benchmark's meta.json (seed, size, identity counts, clothing shift, gap)."""

    pairs: list[TruthPair]
    images: np.ndarray
    masks: np.ndarray
    settings: dict

    def __len__(self) -> int:
        return len(self.pairs)


def render_into(source_domain: str, source_job: _Job, target_domain: str, target_job: _Job, seed: int,
                height: int = HEIGHT, width: int = WIDTH, clothing_shift: float = 0.0,
                gap: tuple[str, ...] = GAP_PARTS, person: bool = True,
                noise_seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The person of one planned file drawn in the scene of another (each a file of a dataset of
    :data:`~crgan_lightning.data.synthetic.styles.SYNTH_DATASETS`): returns the image, RGB uint8
    (H, W, 3), and the person's visible pixels, uint8 (H, W) in {0, 255}.

    The person (appearance, pose, size and place) comes from ``source_job``, everything else from
    ``target_job``. With ``person=False`` the same scene is drawn without the person (its contact
    shadow stays), which shows what the person changes; ``noise_seed`` draws the sensor noise
    anew (an equally true image: what no renderer can predict).
    """
    _, app, source_shot, _ = _job_scene(source_domain, seed, source_job, clothing_shift, gap)
    style, _, target_shot, bystander_bias = _job_scene(target_domain, seed, target_job, clothing_shift, gap)
    shot = replace(target_shot, **{f: getattr(source_shot, f) for f in PERSON_FIELDS})
    if noise_seed is not None:
        shot = replace(shot, noise_seed=int(noise_seed))
    img, mask, _ = _render(style, seed, app, shot, height, width, person, bystander_bias)
    return img, mask


def truth_pairs(seed: int = 0, num_train_ids: int = NUM_TRAIN_IDS, num_test_ids: int = NUM_TEST_IDS,
                num_pairs: int = NUM_TRUTH_PAIRS, clothing_shift: float = 0.0,
                gap: Sequence[str] = GAP_PARTS) -> list[TruthPair]:
    """The fixed evaluation set of a benchmark: ``num_pairs`` (clipped to the unoccluded source test
    images) pairs of an unoccluded synth_a test image and a synth_b training image, drawn from the
    benchmark's ``seed``; pair ``i`` is the same whatever ``num_pairs``."""
    _check_int("num_pairs", num_pairs, 1)
    sources = [j for j in _plan(TRUTH_SOURCE, seed, num_train_ids, num_test_ids)
               if j.split != "train" and j.pid > 0]
    targets = [j for j in _plan(TRUTH_TARGET, seed, num_train_ids, num_test_ids) if j.split == "train"]
    if not sources or not targets:
        raise ConfigError(f"no rendering truth for num_train_ids={num_train_ids}, num_test_ids={num_test_ids}: "
                          "expected at least one training and one test identity")
    order = _rng(seed, TRUTH_TARGET, _STREAM_TRUTH).permutation(len(sources))
    pairs: list[TruthPair] = []
    for k in order:
        job = sources[int(k)]
        if _job_scene(TRUTH_SOURCE, seed, job, clothing_shift, tuple(gap))[2].occluder is not None:
            continue
        i = len(pairs)
        target = targets[int(_rng(seed, TRUTH_TARGET, _STREAM_TRUTH, i + 1).integers(len(targets)))]
        pairs.append(TruthPair(i, job, target))
        if len(pairs) == num_pairs:
            break
    return pairs


def redrawn_noise_seed(seed: int, pair: TruthPair) -> int:
    """The sensor-noise seed of pair ``pair``'s second true image (:func:`render_truth` with
    ``redraw_noise``), drawn from the benchmark's ``seed``."""
    return int(_rng(seed, TRUTH_TARGET, _STREAM_TRUTH, 0, pair.index).integers(0, 2**63 - 1))


def render_truth(pairs: Sequence[TruthPair], settings: dict, progress: bool = False,
                 redraw_noise: bool = False) -> TruthSet:
    """The true renderings of ``pairs`` for a benchmark's ``settings`` (its meta.json values:
    ``seed``, ``height``, ``width``, ``clothing_shift``, ``gap``). With ``redraw_noise``, the same
    renderings with another draw of the sensor noise (:func:`redrawn_noise_seed`): equally true
    images, the reference a perfect renderer scores against the truth."""
    images, masks = [], []
    for pair in tqdm(pairs, desc="rendering truth", unit="img", disable=not progress):
        img, mask = render_into(TRUTH_SOURCE, pair.source, TRUTH_TARGET, pair.target, settings["seed"],
                                settings["height"], settings["width"], settings["clothing_shift"],
                                tuple(settings["gap"]),
                                noise_seed=redrawn_noise_seed(settings["seed"], pair) if redraw_noise else None)
        images.append(img)
        masks.append(mask)
    return TruthSet(list(pairs), np.stack(images), np.stack(masks), dict(settings))


_BENCHMARK_KEYS = ("generator_version", "seed", "height", "width", "num_train_ids", "num_test_ids",
                   "clothing_shift", "gap")


def benchmark_settings(root: str | os.PathLike) -> dict:
    """The settings shared by ``<root>/synth_a`` and ``<root>/synth_b`` (read from their meta.json);
    a :class:`~crgan_lightning.errors.DatasetError` naming the file when either is missing, of
    another generator version, or when the two were generated with different settings."""
    metas = {}
    for name in (TRUTH_SOURCE, TRUTH_TARGET):
        path = Path(root).expanduser() / name / META_FILE
        try:
            metas[name] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {path} ({exc}); the rendering truth needs the embedded benchmark: "
                               f"write it with `crgan synth --out {root}`") from None
        if metas[name].get("generator_version") != GENERATOR_VERSION:
            raise DatasetError(f"{path}: generator_version={metas[name].get('generator_version')!r}; the rendering "
                               f"truth is drawn by version {GENERATOR_VERSION}: regenerate with `crgan synth "
                               "--overwrite`")
    a, b = metas[TRUTH_SOURCE], metas[TRUTH_TARGET]
    differ = [k for k in _BENCHMARK_KEYS if a.get(k) != b.get(k)]
    if differ:
        raise DatasetError(f"{root}: synth_a and synth_b were generated with different {', '.join(differ)}; "
                           "expected one benchmark (regenerate both with `crgan synth --overwrite`)")
    return {k: a[k] for k in _BENCHMARK_KEYS}


def build_truth(root: str | os.PathLike, num_pairs: int = NUM_TRUTH_PAIRS, progress: bool = False,
                redraw_noise: bool = False) -> TruthSet:
    """The evaluation pairs and true renderings of the benchmark under the data root ``root``,
    drawn in memory from its seed and settings (the bytes ``crgan synth --truth`` writes; with
    ``redraw_noise``, another draw of their sensor noise, see :func:`render_truth`)."""
    settings = benchmark_settings(root)
    pairs = truth_pairs(settings["seed"], settings["num_train_ids"], settings["num_test_ids"], num_pairs,
                        settings["clothing_shift"], settings["gap"])
    return render_truth(pairs, settings, progress, redraw_noise)


def truth_of_files(root: str | os.PathLike, source_files: Sequence[str | os.PathLike],
                   target_files: Sequence[str | os.PathLike]) -> np.ndarray:
    """The true renderings of every source file (a synth_a image under ``root``) in the scene of
    every target file (a synth_b image), for figures: uint8 ``(S, T, H, W, 3)``. Files are named
    by path or by name; a name the benchmark does not hold is a
    :class:`~crgan_lightning.errors.DatasetError`."""
    settings = benchmark_settings(root)
    plans = {}
    for domain in (TRUTH_SOURCE, TRUTH_TARGET):
        plans[domain] = {j.name: j for j in _plan(domain, settings["seed"], settings["num_train_ids"],
                                                  settings["num_test_ids"])}

    def job(domain: str, file: str | os.PathLike) -> _Job:
        stem = Path(file).stem
        if stem not in plans[domain]:
            raise DatasetError(f"{file}: not an image of {domain} under {root} (seed {settings['seed']})")
        return plans[domain][stem]

    return np.stack([np.stack([
        render_into(TRUTH_SOURCE, job(TRUTH_SOURCE, s), TRUTH_TARGET, job(TRUTH_TARGET, t), settings["seed"],
                    settings["height"], settings["width"], settings["clothing_shift"], tuple(settings["gap"]))[0]
        for t in target_files]) for s in source_files])


def _pair_record(pair: TruthPair) -> dict:
    return {"index": pair.index, "image": f"images/{pair.index:04d}.png", "mask": f"masks/{pair.index:04d}.png",
            "source": f"{TRUTH_SOURCE}/{pair.source_file}", "target": f"{TRUTH_TARGET}/{pair.target_file}",
            "source_pid": pair.source.pid, "source_cam": pair.source.cam, "target_pid": pair.target.pid,
            "target_cam": pair.target.cam}


def generate_truth(out: str | os.PathLike, seed: int = 0, num_train_ids: int = NUM_TRAIN_IDS,
                   num_test_ids: int = NUM_TEST_IDS, height: int = HEIGHT, width: int = WIDTH,
                   clothing_shift: float = 0.0, gap: Sequence[str] = GAP_PARTS, num_pairs: int = NUM_TRUTH_PAIRS,
                   overwrite: bool = False, progress: bool = True) -> Path:
    """Write the true renderings of the benchmark of these settings to ``<out>/rendering_truth``
    and return that path (see the module docstring for the layout).

    The arguments are :func:`~crgan_lightning.data.synthetic.generate_benchmark`'s, plus
    ``num_pairs``. Like the datasets, the folder is built in a hidden work folder and renamed
    into place when complete (``meta.json`` last); an existing complete folder is kept unless
    ``overwrite``, and refused if written with other settings or another version.
    """
    settings = _settings(seed, num_train_ids, num_test_ids, height, width, "exact", clothing_shift, gap)
    del settings["mask_quality"]  # the truth's masks are exact whatever the datasets' quality
    _check_int("num_pairs", num_pairs, 1)
    pairs = truth_pairs(settings["seed"], settings["num_train_ids"], settings["num_test_ids"], num_pairs,
                        settings["clothing_shift"], settings["gap"])
    requested = {**settings, "truth_version": TRUTH_VERSION, "num_pairs": len(pairs)}
    out_dir = Path(out).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output folder {out_dir} is a file; expected a folder (or a path to create)")
    out_dir.mkdir(parents=True, exist_ok=True)
    final = check_output_folder(out_dir / TRUTH_FOLDER, WRITER, flag="output folder")
    _clean_stale(out_dir, TRUTH_FOLDER)
    if (final / META_FILE).is_file() and not overwrite:
        _check_existing(final, requested, _TRUTH_KEYS)
        log.info("keeping the existing %s (pass overwrite=True to regenerate it)", final)
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{TRUTH_FOLDER}.tmp-{host_name()}-{os.getpid()}-", dir=out_dir))
    try:
        _make_readable(tmp)
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        truth = render_truth(pairs, settings, progress)
        records = [_pair_record(p) for p in pairs]
        for record, img, mask in zip(records, truth.images, truth.masks):
            Image.fromarray(img).save(tmp / record["image"], "PNG")
            Image.fromarray(mask).save(tmp / record["mask"], "PNG")
        (tmp / PAIRS_FILE).write_text(json.dumps(records, indent=1) + "\n")
        meta = {"name": TRUTH_FOLDER, "written_by": WRITER, "source": TRUTH_SOURCE, "target": TRUTH_TARGET,
                "description": f"{TRUTH_SOURCE}'s test people drawn in {TRUTH_TARGET}'s training images' scenes "
                               "without their own person (true renderings)",
                "pairs": PAIRS_FILE, **requested}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")  # last: marks it complete
        replace_folder(tmp, final, WRITER)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
