"""The two synthetic domains: what each camera looks at and how it renders colour
(:class:`CameraStyle`), a domain's cameras, contexts and occluders (:class:`DomainStyle`), the
:data:`DOMAINS` registry holding ``synth_a`` and ``synth_b``, and :data:`SYNTH_DATASETS`, the
folders the generator writes: each domain, and the oracle ``synth_a_in_b`` (synth_a's people
drawn by synth_b's cameras in synth_b's contexts).

The domain gap has four parts, each a setting here:

* **background context** -- the scenes (``CameraStyle.scene``), ``places_per_camera`` spots
  along each camera's view, passers-by (``bystander_prob``) and occluders;
* **colour tone and illumination** -- per camera (``gains``, ``saturation``, ``brightness``,
  ``gamma``, ``haze``) and per image (``light_jitter``, ``tone_jitter``), acting on the person
  as well as the background (the part cut-and-paste cannot capture);
* **resolution, blur and noise** -- per camera (``resolution``, ``blur``, ``noise``);
* optionally **clothing** -- ``generate_benchmark(clothing_shift=...)`` makes synth_b's people
  dress darker (off by default).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...errors import ConfigError
from .occluders import OCCLUDERS
from .scenes import SCENES


@dataclass(frozen=True)
class CameraStyle:
    """The context of one camera: the scene behind people and how the camera renders colour.

    The image processing, in order: colour matrix (``saturation`` around the luminance, then
    per-channel ``gains``, i.e. white balance), ``brightness`` (illumination level), ``gamma``
    (output = input ** gamma on [0, 1]), ``haze`` (blend towards ``haze_colour``), ``vignette``
    (darkening towards the corners), Gaussian ``blur`` (radius in pixels at 128-pixel image
    height, scaled with the image size) and additive sensor ``noise`` (std on the 0-255 scale).
    ``resolution`` < 1 renders the image at that fraction of its size and scales it back up (a
    camera of lower resolution than the crop).
    """

    scene: str
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    saturation: float = 1.0
    brightness: float = 1.0
    gamma: float = 1.0
    haze: float = 0.0
    haze_colour: tuple[float, float, float] = (0.5, 0.5, 0.5)
    vignette: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    resolution: float = 1.0


@dataclass(frozen=True)
class DomainStyle:
    """One synthetic domain: its cameras (scene + tone each), occluding objects and how often
    they appear in front of people, and what varies from image to image.

    ``places_per_camera`` spots along each camera's view are drawn (the same scene kind, another
    layout and palette); every image stands at one of them. ``background_contrast`` and
    ``background_saturation`` (fractions kept) make the scenery as muted as in real footage,
    where it is no more salient than the people. ``bystander_prob`` is how often another
    passer-by is partly in view at the crop's side. ``light_jitter`` (log-normal std of the
    illumination) and ``tone_jitter`` (log-normal std of each colour channel) are the time of
    day and weather of each image.
    """

    name: str
    description: str
    cameras: tuple[CameraStyle, ...]
    occluders: tuple[str, ...]
    occlusion_prob: float = 0.25
    light_jitter: float = 0.06
    tone_jitter: float = 0.0
    places_per_camera: int = 1
    background_contrast: float = 1.0
    background_saturation: float = 1.0
    bystander_prob: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= len(self.cameras) <= 9:
            raise ConfigError(f"domain {self.name!r} has {len(self.cameras)} cameras; expected 1..9 "
                              "(one digit in Market-1501 file names)")
        for cam in self.cameras:
            if cam.scene not in SCENES:
                raise ConfigError(f"domain {self.name!r}: unknown scene {cam.scene!r}; "
                                  f"expected one of {', '.join(sorted(SCENES))}")
        for kind in self.occluders:
            if kind not in OCCLUDERS:
                raise ConfigError(f"domain {self.name!r}: unknown occluder {kind!r}; "
                                  f"expected one of {', '.join(sorted(OCCLUDERS))}")

    @property
    def num_cameras(self) -> int:
        return len(self.cameras)


def _cam(scene: str, gains: tuple[float, float, float], saturation: float, brightness: float, gamma: float,
         haze: float, vignette: float, blur: float, noise: float, resolution: float = 1.0,
         haze_colour: tuple[float, float, float] = (0.5, 0.5, 0.5)) -> CameraStyle:
    """A :class:`CameraStyle` from positional values, so each camera of a domain fits on one line."""
    return CameraStyle(scene, gains, saturation, brightness, gamma, haze, haze_colour, vignette, blur, noise,
                       resolution)


DOMAINS: dict[str, DomainStyle] = {
    "synth_a": DomainStyle(
        name="synth_a",
        description="urban street: facades, shop fronts, a crossing, an arcade; near-neutral daylight "
                    "cameras of lower resolution",
        cameras=(
            # scene, gains, saturation, brightness, gamma, haze, vignette, blur, noise, resolution
            _cam("street", (1.00, 1.00, 1.00), 1.00, 1.00, 1.00, 0.00, 0.05, 0.35, 2.0, 0.70),
            _cam("shopfront", (1.04, 1.00, 0.95), 1.03, 1.04, 0.97, 0.00, 0.10, 0.40, 2.0, 0.70),
            _cam("crossing", (0.96, 1.00, 1.05), 0.97, 0.97, 1.03, 0.03, 0.05, 0.35, 2.5, 0.65),
            _cam("arcade", (1.03, 1.01, 0.97), 1.05, 1.05, 0.95, 0.00, 0.15, 0.45, 3.0, 0.70),
            _cam("street", (0.98, 1.00, 1.02), 1.00, 0.95, 1.05, 0.00, 0.05, 0.50, 2.5, 0.65),
            _cam("shopfront", (1.02, 0.99, 1.00), 0.95, 1.00, 1.00, 0.04, 0.10, 0.40, 2.0, 0.70),
        ),
        occluders=("car", "bin", "pole", "sign", "pedestrian"),
        occlusion_prob=0.2,
        light_jitter=0.10,
        tone_jitter=0.02,
        places_per_camera=8,
        background_contrast=0.45,
        background_saturation=0.5,
        bystander_prob=0.3,
    ),
    "synth_b": DomainStyle(
        name="synth_b",
        description="campus / park: lawns, trees, brick buildings, paths; per-camera colour casts and "
                    "light, sharper sensors with more noise than synth_a",
        cameras=(
            # scene, gains, saturation, brightness, gamma, haze, vignette, blur, noise, resolution[, haze colour]
            _cam("park", (0.96, 0.99, 1.05), 0.95, 0.97, 1.02, 0.00, 0.20, 0.30, 4.0),
            _cam("campus", (1.05, 1.00, 0.94), 0.97, 0.94, 1.03, 0.03, 0.25, 0.35, 4.5, 1.0, (0.6, 0.4, 0.2)),
            _cam("lawn", (0.98, 1.04, 0.97), 0.95, 0.98, 1.00, 0.00, 0.20, 0.30, 3.5),
            _cam("woods", (1.03, 0.97, 1.03), 1.00, 1.00, 0.98, 0.00, 0.20, 0.35, 4.0),
            _cam("campus", (1.00, 1.00, 1.02), 0.90, 0.91, 1.05, 0.00, 0.30, 0.40, 5.0),
            _cam("park", (1.03, 1.01, 0.98), 0.97, 1.05, 0.96, 0.05, 0.10, 0.35, 3.5, 1.0, (0.95, 0.9, 0.8)),
            _cam("woods", (0.96, 1.01, 1.04), 0.96, 0.95, 1.02, 0.00, 0.25, 0.40, 4.5),
            _cam("lawn", (1.03, 1.03, 0.95), 1.01, 1.00, 1.00, 0.03, 0.20, 0.35, 4.0, 1.0, (0.7, 0.65, 0.3)),
        ),
        occluders=("bush", "bench", "bicycle", "trunk", "pedestrian"),
        occlusion_prob=0.25,
        light_jitter=0.10,
        tone_jitter=0.03,
        places_per_camera=8,
        background_contrast=0.45,
        background_saturation=0.5,
        bystander_prob=0.3,
    ),
}


#: The parts of the domain gap synth_b has from synth_a; ``generate_benchmark(gap=...)`` keeps a
#: subset, the others take synth_a's settings (camera ``i`` of synth_b those of synth_a's camera
#: ``i mod 6``), so that the effect of each part on a model trained on synth_a can be measured.
GAP_PARTS = ("context", "tone", "optics")
_CONTEXT_FIELDS = ("scene",)
_TONE_FIELDS = ("gains", "saturation", "brightness", "gamma", "haze", "haze_colour", "vignette")
_OPTICS_FIELDS = ("blur", "noise", "resolution")


def with_gap(style: DomainStyle, source: DomainStyle, gap: tuple[str, ...]) -> DomainStyle:
    """``style`` with only the ``gap`` parts of its difference from ``source`` kept."""
    unknown = set(gap) - set(GAP_PARTS)
    if unknown:
        raise ConfigError(f"gap={tuple(gap)!r}: unknown part(s) {sorted(unknown)}; expected some of {GAP_PARTS}")
    fields = [f for part, names in (("context", _CONTEXT_FIELDS), ("tone", _TONE_FIELDS),
                                    ("optics", _OPTICS_FIELDS)) if part not in gap for f in names]
    if not fields:
        return style
    cameras = tuple(
        replace(cam, **{f: getattr(source.cameras[i % source.num_cameras], f) for f in fields})
        for i, cam in enumerate(style.cameras))
    changes: dict = {"cameras": cameras}
    if "context" not in gap:
        changes.update(occluders=source.occluders, occlusion_prob=source.occlusion_prob,
                       bystander_prob=source.bystander_prob)
    if "tone" not in gap:
        changes.update(light_jitter=source.light_jitter, tone_jitter=source.tone_jitter)
    return replace(style, **changes)


@dataclass(frozen=True)
class SynthDataset:
    """A folder the generator writes: whose ``people`` it shows (their appearance stream) and in
    which domain's cameras and contexts (``contexts``)."""

    name: str
    people: str
    contexts: str

    @property
    def style(self) -> DomainStyle:
        return DOMAINS[self.contexts]

    def gapped_style(self, gap: tuple[str, ...] = GAP_PARTS) -> DomainStyle:
        """The style its images are drawn in: synth_b's contexts keep only the ``gap`` parts of
        their difference from synth_a (see :func:`with_gap`); synth_a's are its own."""
        return with_gap(self.style, DOMAINS["synth_a"], tuple(gap)) if self.contexts == "synth_b" else self.style

    @property
    def is_oracle(self) -> bool:
        return self.people != self.contexts


#: Every dataset the generator can write: the two domains, and the oracle rendering of synth_a's
#: training identities in synth_b (training split only; what a perfect context renderer makes).
SYNTH_DATASETS: dict[str, SynthDataset] = {
    "synth_a": SynthDataset("synth_a", "synth_a", "synth_a"),
    "synth_b": SynthDataset("synth_b", "synth_b", "synth_b"),
    "synth_a_in_b": SynthDataset("synth_a_in_b", "synth_a", "synth_b"),
}
