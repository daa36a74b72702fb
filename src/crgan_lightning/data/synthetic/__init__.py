"""The embedded two-domain benchmark (version 2): procedurally drawn pedestrians in two sets of
contexts, shaped like Market-1501 <-> DukeMTMC-reID.

No real re-id dataset ships with the library, so every demo and test trains on two synthetic
domains written by this package (500 training and 500 test identities each at 64 x 32 by
default):

* ``synth_a`` -- an urban street seen by 6 cameras (building facades with windows, shop fronts,
  a zebra crossing, an arcade; pavement and asphalt): near-neutral daylight cameras of lower
  resolution.
* ``synth_b`` -- a campus / park seen by 8 cameras (lawns, trees, brick buildings, hedges,
  gravel and flagstone paths): per-camera colour casts, illumination and gamma, sharper sensors
  with more noise.
* ``synth_a_in_b`` (on request) -- synth_a's training identities drawn in synth_b's cameras and
  contexts: the oracle rendering, the ceiling of any context renderer.

Both domains draw their people from the same appearance distribution (unless
``clothing_shift`` moves synth_b's) from different random streams, so they hold different people
and differ by context (scenes, places, passers-by, occluders), tone and light, and optics; each
part is a setting of :mod:`.styles` (``gap=``). Each camera looks at several places along its
view and every image has its own time of day, so the context varies within a camera too.

Every identity has a fixed appearance and is seen by at least two cameras, with a new pose
(walking phase, leg spread, arm swing, front / back / side view), scale, position and crop in
every image, and sometimes partly hidden behind a scene object (a car, a bin, a pole, a bush, a
bench, another pedestrian...). Images are drawn at twice the output size and downsampled, so
edges are anti-aliased.

Each domain folder uses the Market-1501 layout and names, plus the ground-truth person masks::

    <out>/synth_a/bounding_box_train/0001_c1s3_412345_00.jpg
                  query/             ...
                  bounding_box_test/ ...   (pid 0000 = distractor)
                  masks/bounding_box_train/0001_c1s3_412345_00.png   (255 on the person)
                  masks/query/...  masks/bounding_box_test/...
                  meta.json

Use::

    from crgan_lightning.data.synthetic import generate_benchmark
    paths = generate_benchmark("data")        # {"synth_a": Path("data/synth_a"), "synth_b": ...}
    generate_benchmark("data", oracle=True, mask_quality="segmentation")
    generate_benchmark("data", truth=True)    # + data/rendering_truth: true renderings, see .truth

or ``crgan synth --out data [--oracle] [--truth] [--mask-quality segmentation]`` on the command
line. Output
is byte-for-byte reproducible for a seed and set of arguments within a generator version
(``meta.json`` records both; a folder of another version or settings is refused, never mixed).
A domain is built in a hidden temporary folder beside its final place and renamed into place
only when complete (``meta.json`` is written last), so an interrupted run never leaves a folder
that looks complete; only folders the generator wrote are ever replaced.
"""

from __future__ import annotations

# The modules, in the order data flows through them: styles (domains and their cameras),
# appearance and shots (what varies per identity and per image), scenes, occluders and person
# (the painters), camera (tone, light, optics, noise), render (one image and its mask), plan
# (which images a domain holds), writer (the folders on disk); arguments checks user input.
from ..datasets import SPLIT_FOLDERS
from ..masks import MASKS_DIR
from .render import render_sample
from .styles import DOMAINS, CameraStyle, DomainStyle
from .truth import TRUTH_VERSION, TruthPair, TruthSet, build_truth, generate_truth, render_into, truth_pairs
from .writer import generate_benchmark, generate_domain

# Everything else the single-module version defined at its top level stays importable from
# here (the tests use several private names); each is one object, defined in one module.
from .appearance import CARRIED, PATTERNS, RGB, Appearance, sample_appearance  # noqa: F401
from .arguments import MAX_PID, MIN_HEIGHT, MIN_WIDTH, _check_args, _check_int, _domain  # noqa: F401
from .camera import _apply_camera  # noqa: F401
from .occluders import OCCLUDERS  # noqa: F401
from .person import _draw_person, _pattern  # noqa: F401
from .plan import _counts_per_camera, _file_stem, _Job, _plan, _render_job  # noqa: F401
from .render import (  # noqa: F401
    _STREAM_APPEARANCE, _STREAM_BACKGROUND, _STREAM_DISTRACTOR_APPEARANCE, _STREAM_DISTRACTOR_SHOT,
    _STREAM_SCHEDULE, _STREAM_SHOT, _appearance, _camera_background, _domain_code, _render, _rng,
)
from .scenes import SCENES, _texture  # noqa: F401
from .shots import VIEWS, Occluder, Shot, sample_shot  # noqa: F401
from .styles import _cam  # noqa: F401
from .styles import SYNTH_DATASETS, SynthDataset  # noqa: F401
from .writer import (  # noqa: F401
    DEFAULT_DOMAINS, GENERATOR_VERSION, HEIGHT, JPEG_QUALITY, META_FILE, NUM_TEST_IDS, NUM_TRAIN_IDS, WIDTH,
    _check_existing, _clean_stale, _meta, _owner_alive, _write_domain,
)

__all__ = [
    "CameraStyle",
    "DomainStyle",
    "DOMAINS",
    "SPLIT_FOLDERS",
    "MASKS_DIR",
    "generate_benchmark",
    "generate_domain",
    "render_sample",
    "TRUTH_VERSION",
    "TruthPair",
    "TruthSet",
    "build_truth",
    "generate_truth",
    "render_into",
    "truth_pairs",
]
