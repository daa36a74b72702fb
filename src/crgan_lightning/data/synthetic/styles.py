"""The two synthetic domains: what each camera looks at and how it renders colour
(:class:`CameraStyle`), a domain's cameras and occluders (:class:`DomainStyle`), and the
:data:`DOMAINS` registry holding ``synth_a`` and ``synth_b``."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class DomainStyle:
    """One synthetic domain: its cameras (scene + tone each), occluding objects and how often
    they appear in front of people, and the per-image illumination jitter (log-normal std)."""

    name: str
    description: str
    cameras: tuple[CameraStyle, ...]
    occluders: tuple[str, ...]
    occlusion_prob: float = 0.25
    light_jitter: float = 0.06

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
         haze: float, vignette: float, blur: float, noise: float,
         haze_colour: tuple[float, float, float] = (0.5, 0.5, 0.5)) -> CameraStyle:
    """A :class:`CameraStyle` from positional values, so each camera of a domain fits on one line."""
    return CameraStyle(scene, gains, saturation, brightness, gamma, haze, haze_colour, vignette, blur, noise)


DOMAINS: dict[str, DomainStyle] = {
    "synth_a": DomainStyle(
        name="synth_a",
        description="urban street: facades, shop fronts, a crossing, an arcade; "
                    "near-neutral daylight cameras",
        cameras=(
            # scene, gains, saturation, brightness, gamma, haze, vignette, blur, noise
            _cam("street", (1.00, 1.00, 1.00), 1.00, 1.00, 1.00, 0.00, 0.05, 0.35, 2.0),
            _cam("shopfront", (1.06, 1.00, 0.92), 1.05, 1.05, 0.95, 0.00, 0.10, 0.40, 2.0),
            _cam("crossing", (0.94, 1.00, 1.07), 0.95, 0.97, 1.05, 0.03, 0.05, 0.35, 2.5),
            _cam("arcade", (1.04, 1.02, 0.96), 1.10, 1.08, 0.92, 0.00, 0.15, 0.45, 3.0),
            _cam("street", (0.97, 1.00, 1.03), 1.00, 0.93, 1.08, 0.00, 0.05, 0.50, 2.5),
            _cam("shopfront", (1.02, 0.98, 1.00), 0.92, 1.00, 1.00, 0.04, 0.10, 0.40, 2.0),
        ),
        occluders=("car", "bin", "pole", "sign", "pedestrian"),
        occlusion_prob=0.2,
        light_jitter=0.05,
    ),
    "synth_b": DomainStyle(
        name="synth_b",
        description="campus / park: lawns, trees, brick buildings, paths; per-camera colour casts, "
                    "varied light, more blur and noise than synth_a",
        cameras=(
            # scene, gains, saturation, brightness, gamma, haze, vignette, blur, noise[, haze colour]
            _cam("park", (0.88, 0.97, 1.15), 0.92, 0.92, 1.05, 0.00, 0.20, 0.60, 3.5),
            _cam("campus", (1.15, 1.00, 0.82), 1.00, 0.85, 1.08, 0.04, 0.25, 0.70, 4.0, (0.6, 0.4, 0.2)),
            _cam("lawn", (0.93, 1.12, 0.93), 0.92, 0.97, 1.00, 0.00, 0.20, 0.60, 3.0),
            _cam("woods", (1.10, 0.90, 1.08), 1.05, 1.00, 0.95, 0.00, 0.20, 0.65, 3.5),
            _cam("campus", (1.00, 1.00, 1.05), 0.80, 0.78, 1.12, 0.00, 0.30, 0.80, 5.0),
            _cam("park", (1.08, 1.03, 0.94), 1.00, 1.15, 0.90, 0.10, 0.10, 0.70, 3.0, (0.95, 0.9, 0.8)),
            _cam("woods", (0.88, 1.04, 1.12), 0.95, 0.88, 1.03, 0.00, 0.25, 0.75, 4.0),
            _cam("lawn", (1.10, 1.08, 0.85), 1.08, 1.00, 1.00, 0.04, 0.20, 0.65, 3.5, (0.7, 0.65, 0.3)),
        ),
        occluders=("bush", "bench", "bicycle", "trunk", "pedestrian"),
        occlusion_prob=0.3,
        light_jitter=0.08,
    ),
}
