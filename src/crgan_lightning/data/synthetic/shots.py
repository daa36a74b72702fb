"""One image of an identity: the pose, framing, occluder and light jitter that vary from shot
to shot (:class:`Shot`), drawn by :func:`sample_shot`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .appearance import _weighted_index
from .styles import DomainStyle

VIEWS = ("front", "back", "left", "right")


@dataclass(frozen=True)
class Occluder:
    """A scene object in front of the person: its kind and 10 uniform numbers that its painter
    turns into position, size and colour."""

    kind: str
    u: tuple[float, ...]


@dataclass(frozen=True)
class Shot:
    """Everything that varies from one image of an identity to the next.

    Sizes and positions are fractions of the image: ``person_height`` of the image height, the
    feet at ``feet_y`` (1 = bottom edge), the body centre ``dx`` off the middle; ``crop`` picks
    the window into the camera's background at spot ``place``. ``light`` multiplies the camera's
    illumination and ``tone`` its colour channels (time of day, weather). ``bystander`` is
    another passer-by partly in view (their own shot, at the side of the crop) and
    ``bystander_id`` picks their appearance.
    """

    cam: int
    view: str
    phase: float
    stride: float
    spread: float
    swing: float
    abduct: tuple[float, float]
    elbow: tuple[float, float]
    person_height: float
    feet_y: float
    dx: float
    crop: tuple[float, float]
    occluder: Occluder | None
    light: float
    noise_seed: int
    place: int = 0
    tone: tuple[float, float, float] = (1.0, 1.0, 1.0)
    bystander: Shot | None = None
    bystander_id: int = 0


def _sample_occluder(rng: np.random.Generator, style: DomainStyle) -> Occluder | None:
    """With the domain's ``occlusion_prob``, one of its occluder kinds in front of the person."""
    if rng.random() < style.occlusion_prob:
        kind = style.occluders[int(rng.integers(len(style.occluders)))]
        return Occluder(kind, tuple(float(v) for v in rng.random(10)))
    return None


def _distractor_framing(rng: np.random.Generator) -> tuple[float, float, float]:
    """``(person_height, feet_y, dx)`` of a badly framed detection: too small or too close."""
    if rng.random() < 0.5:  # far away, small in the box
        return float(rng.uniform(0.45, 0.62)), float(rng.uniform(0.75, 0.98)), float(rng.uniform(-0.2, 0.2))
    # too close: the box holds part of a body
    return float(rng.uniform(1.15, 1.5)), float(rng.uniform(1.0, 1.35)), float(rng.uniform(-0.3, 0.3))


def _pose(rng: np.random.Generator) -> tuple:
    """View, walking phase, stride, leg spread, arm swing, arm abduction and elbow bend."""
    view = VIEWS[_weighted_index(rng, (0.38, 0.38, 0.12, 0.12))]
    return (view, float(rng.uniform(0.0, 2.0 * math.pi)), float(rng.uniform(0.06, 0.2)),
            float(rng.uniform(0.0, 0.035)), float(rng.uniform(8.0, 35.0)),
            (float(rng.uniform(3.0, 16.0)), float(rng.uniform(3.0, 16.0))),
            (float(rng.uniform(0.0, 60.0)), float(rng.uniform(0.0, 60.0))))


def _sample_bystander(rng: np.random.Generator, cam: int, person_height: float, feet_y: float) -> Shot:
    """A passer-by at one side of the crop, a little nearer or farther than the person."""
    side = 1.0 if rng.random() < 0.5 else -1.0
    return Shot(cam, *_pose(rng), person_height=person_height * float(rng.uniform(0.85, 1.1)),
                feet_y=feet_y + float(rng.uniform(-0.06, 0.04)), dx=side * float(rng.uniform(0.45, 0.65)),
                crop=(0.0, 0.0), occluder=None, light=1.0, noise_seed=0)


def sample_shot(rng: np.random.Generator, style: DomainStyle, cam: int, distractor: bool = False) -> Shot:
    """Draw the pose, framing, occlusion and light jitter of one image taken by camera ``cam``.

    Distractors (pid 0) are badly framed detections: a person far too small or too close.
    """
    view = VIEWS[_weighted_index(rng, (0.38, 0.38, 0.12, 0.12))]
    phase = float(rng.uniform(0.0, 2.0 * math.pi))
    stride = float(rng.uniform(0.06, 0.2))
    spread = float(rng.uniform(0.0, 0.035))
    swing = float(rng.uniform(8.0, 35.0))
    abduct = (float(rng.uniform(3.0, 16.0)), float(rng.uniform(3.0, 16.0)))
    elbow = (float(rng.uniform(0.0, 60.0)), float(rng.uniform(0.0, 60.0)))
    person_height = float(rng.uniform(0.80, 0.90))
    feet_y = float(rng.uniform(0.955, 0.99))
    dx = float(rng.uniform(-0.07, 0.07))
    crop = (float(rng.random()), float(rng.random()))
    occluder = _sample_occluder(rng, style)
    light = float(math.exp(rng.normal(0.0, style.light_jitter)))
    noise_seed = int(rng.integers(0, 2**63 - 1))
    if distractor:
        person_height, feet_y, dx = _distractor_framing(rng)
    place = int(rng.integers(style.places_per_camera))
    tone = tuple(float(math.exp(v)) for v in rng.normal(0.0, style.tone_jitter, 3))
    bystander, bystander_id = None, 0
    if rng.random() < style.bystander_prob:
        bystander = _sample_bystander(rng, cam, person_height, feet_y)
        bystander_id = int(rng.integers(0, 2**31 - 1))
    return Shot(cam, view, phase, stride, spread, swing, abduct, elbow, person_height, feet_y, dx, crop,
                occluder, light, noise_seed, place, tone, bystander, bystander_id)
