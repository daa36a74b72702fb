"""Mask quality: exact masks, and masks degraded like a person-segmentation model's output."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from crgan_lightning.data.mask_quality import (MASK_QUALITIES, SEGMENTATION_TARGET_IOU, SMALL_PEDESTRIAN_TARGET_IOU,
                                               MaskQuality, degrade_mask, mask_iou, mask_quality, mean_iou)
from crgan_lightning.errors import ConfigError

SUPERSAMPLE = 4
SIZES = [(128, 64), (64, 32)]


def pedestrian(rng: np.random.Generator, height: int = 128,
               width: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A front-view pedestrian silhouette drawn with cv2 at 4x and area-reduced: returns the whole
    mask, the arm pixels outside the body and the torso pixels outside the arms, each uint8
    (height, width) in {0, 255}. Head, neck, torso, two legs with shoes, two arms at random
    abduction and elbow bend, and a shoulder bag on one in three."""
    H, W = height * SUPERSAMPLE, width * SUPERSAMPLE
    P = rng.uniform(0.80, 0.90) * H
    feet = rng.uniform(0.955, 0.99) * H
    top = feet - P
    cx = (0.5 + rng.uniform(-0.07, 0.07)) * W
    ws = rng.uniform(0.85, 1.15)
    body, arms, torso = (np.zeros((H, W), np.uint8) for _ in range(3))

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x)), int(round(y))

    def limb(img: np.ndarray, pts: list[tuple[float, float]], thickness: float) -> None:
        for a, b in zip(pts[:-1], pts[1:]):
            cv2.line(img, pt(*a), pt(*b), 255, max(1, int(round(thickness))))
            cv2.circle(img, pt(*b), max(1, int(round(thickness / 2))), 255, -1)

    cv2.ellipse(body, pt(cx, top + 0.075 * P), (int(0.06 * P), int(0.072 * P)), 0, 0, 360, 255, -1)
    cv2.rectangle(body, pt(cx - 0.025 * P, top + 0.1 * P), pt(cx + 0.025 * P, top + 0.2 * P), 255, -1)
    sw, ww, hw = 0.12 * P * ws, 0.095 * P * ws, 0.105 * P * ws
    s_y, w_y, h_y = top + 0.18 * P, top + 0.42 * P, top + 0.54 * P
    outline = [pt(cx - sw * 0.8, s_y - 0.02 * P), pt(cx + sw * 0.8, s_y - 0.02 * P), pt(cx + sw, s_y + 0.02 * P),
               pt(cx + ww, w_y), pt(cx + hw, h_y), pt(cx - hw, h_y), pt(cx - ww, w_y), pt(cx - sw, s_y + 0.02 * P)]
    cv2.fillPoly(torso, [np.array(outline, np.int32)], 255)
    for sgn in (-1, 1):
        hip = (cx + sgn * 0.05 * P * ws, h_y - 0.02 * P)
        ax = hip[0] + sgn * rng.uniform(0.0, 0.05) * P
        ankle = (ax, feet - 0.03 * P)
        knee = ((hip[0] + ax) / 2, (hip[1] + ankle[1]) / 2)
        limb(body, [hip, knee], 0.085 * P * ws)
        limb(body, [knee, ankle], 0.06 * P * ws)
        cv2.ellipse(body, pt(ax + sgn * 0.01 * P, feet - 0.012 * P), (int(0.038 * P), int(0.018 * P)), 0, 0, 360,
                    255, -1)
    for sgn in (-1, 1):
        sh = (cx + sgn * (sw - 0.03 * P), s_y + 0.025 * P)
        a = math.radians(rng.uniform(3.0, 28.0))
        e = math.radians(rng.uniform(0.0, 50.0))
        el = (sh[0] + sgn * 0.16 * P * math.sin(a), sh[1] + 0.16 * P * math.cos(a))
        b = a - 0.6 * e
        wr = (el[0] + sgn * 0.15 * P * math.sin(b), el[1] + 0.15 * P * math.cos(b))
        limb(arms, [sh, el, wr], 0.05 * P)
        cv2.circle(arms, pt(*wr), int(0.026 * P), 255, -1)
    if rng.random() < 1 / 3:
        side = rng.choice([-1, 1])
        bx = cx + side * (hw + 0.05 * P)
        cv2.line(body, pt(cx - side * sw * 0.7, s_y - 0.01 * P), pt(bx, top + 0.46 * P), 255, max(1, int(0.016 * P)))
        cv2.rectangle(body, pt(bx - 0.05 * P, top + 0.46 * P), pt(bx + 0.05 * P, top + 0.58 * P), 255, -1)

    def reduce(img: np.ndarray) -> np.ndarray:
        small = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        return np.where(small >= 128, 255, 0).astype(np.uint8)

    return reduce(body | torso | arms), reduce(arms & ~(body | torso)), reduce(torso & ~arms)


def silhouettes(n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [pedestrian(rng, *size)[0] for _ in range(n)]


# =========================================================================== settings and lookup


def test_exact_quality_returns_the_mask_unchanged():
    rng = np.random.default_rng(0)
    for size in SIZES:
        for mask in silhouettes(10, size):
            context = np.zeros_like(mask)
            context[:, : size[1] // 4] = 255
            out = degrade_mask(mask, MaskQuality.exact(), rng, context=context)
            assert np.array_equal(out, mask)
            assert out is not mask
    assert MaskQuality.exact().is_exact and not MaskQuality.segmentation().is_exact


def test_registry_holds_the_three_qualities_and_lookup_accepts_names_and_objects():
    assert set(MASK_QUALITIES) == {"exact", "segmentation", "small-pedestrian"}
    assert mask_quality("exact") == MaskQuality.exact()
    assert mask_quality("segmentation") == MaskQuality.segmentation()
    assert mask_quality("small-pedestrian") == MaskQuality.small_pedestrian()
    assert not MaskQuality.small_pedestrian().is_exact
    custom = MaskQuality(boundary_amplitude=3.0)
    assert mask_quality(custom) is custom


def test_unknown_quality_name_raises_config_error_naming_it_and_the_known_ones():
    with pytest.raises(ConfigError, match="'perfect'") as err:
        mask_quality("perfect")
    assert "exact" in str(err.value) and "segmentation" in str(err.value)
    with pytest.raises(ConfigError, match="42"):
        mask_quality(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("field, value", [("thin_drop_prob", 1.5), ("merge_prob", -0.1), ("hole_radius", -2.0),
                                          ("boundary_smoothness", 0.0), ("boundary_amplitude", float("nan"))])
def test_out_of_range_setting_raises_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        MaskQuality(**{field: value})


# =========================================================================== calibration


@pytest.mark.parametrize("size", SIZES)
def test_segmentation_default_mean_iou_is_within_002_of_the_cited_target(size):
    exact = silhouettes(100, size)
    rng = np.random.default_rng(1)
    degraded = [degrade_mask(m, MaskQuality.segmentation(), rng) for m in exact]
    ious = [mask_iou(a, b) for a, b in zip(exact, degraded)]
    assert SEGMENTATION_TARGET_IOU == pytest.approx(0.776)
    assert mean_iou(exact, degraded) == pytest.approx(SEGMENTATION_TARGET_IOU, abs=0.02)
    assert max(ious) < 0.97  # every mask is degraded, not just a few of them
    assert min(ious) > 0.4   # and none is destroyed


@pytest.mark.parametrize("size", SIZES)
def test_small_pedestrian_mean_iou_is_within_002_of_the_cited_iiou(size):
    exact = silhouettes(100, size)
    rng = np.random.default_rng(1)
    degraded = [degrade_mask(m, MaskQuality.small_pedestrian(), rng) for m in exact]
    ious = [mask_iou(a, b) for a, b in zip(exact, degraded)]
    assert SMALL_PEDESTRIAN_TARGET_IOU == pytest.approx(0.5896)
    assert mean_iou(exact, degraded) == pytest.approx(SMALL_PEDESTRIAN_TARGET_IOU, abs=0.02)
    assert max(ious) < 0.85  # every mask is degraded
    assert min(ious) > 0.2   # and none is destroyed


def test_small_pedestrian_masks_are_worse_than_segmentation_ones_on_the_same_silhouettes():
    exact = silhouettes(60, (64, 32))
    seg = [degrade_mask(m, MaskQuality.segmentation(), np.random.default_rng(i)) for i, m in enumerate(exact)]
    small = [degrade_mask(m, MaskQuality.small_pedestrian(), np.random.default_rng(i)) for i, m in enumerate(exact)]
    assert mean_iou(exact, small) < mean_iou(exact, seg) - 0.12


def test_boundary_error_is_spatially_smooth_not_salt_and_pepper():
    quality = MaskQuality(boundary_amplitude=2.0)
    rng = np.random.default_rng(2)
    isolated = errors = 0
    for mask in silhouettes(30, (128, 64)):
        wrong = (mask != degrade_mask(mask, quality, rng)).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(wrong, connectivity=4)
        isolated += int((stats[1:, cv2.CC_STAT_AREA] <= 2).sum() * 2)
        errors += int(wrong.sum())
    assert errors > 30 * 100  # about two pixels off along the whole outline
    assert isolated < 0.03 * errors


# =========================================================================== behaviour


def test_same_seed_gives_identical_output_and_another_seed_a_different_one():
    mask = silhouettes(1, (128, 64))[0]
    context = np.zeros_like(mask)
    context[60:110, 40:] = 255
    quality = MaskQuality.segmentation()
    a = degrade_mask(mask, quality, np.random.default_rng(7), context)
    b = degrade_mask(mask, quality, np.random.default_rng(7), context)
    c = degrade_mask(mask, quality, np.random.default_rng(8), context)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("size", SIZES + [(100, 41), (256, 128)])
def test_output_is_a_uint8_0_255_mask_of_the_input_shape(size):
    rng = np.random.default_rng(3)
    for mask in silhouettes(5, size):
        out = degrade_mask(mask, MaskQuality.segmentation(), rng)
        assert out.shape == mask.shape and out.dtype == np.uint8
        assert set(np.unique(out).tolist()) <= {0, 255}
        assert 0 < np.count_nonzero(out) < out.size
    empty = np.zeros(size, np.uint8)
    assert np.array_equal(degrade_mask(empty, MaskQuality.segmentation(), rng), empty)


def lost_fractions(quality: MaskQuality, n: int = 60) -> tuple[float, float]:
    """Fractions of the arm pixels and of the torso pixels that ``quality`` removes from n silhouettes."""
    rng = np.random.default_rng(4)
    draw = np.random.default_rng(0)
    arm_lost = arm_total = torso_lost = torso_total = 0
    for _ in range(n):
        mask, arms, torso = pedestrian(draw, 128, 64)
        out = degrade_mask(mask, quality, rng) >= 128
        arm_lost += int(np.count_nonzero((arms >= 128) & ~out))
        arm_total += int(np.count_nonzero(arms >= 128))
        torso_lost += int(np.count_nonzero((torso >= 128) & ~out))
        torso_total += int(np.count_nonzero(torso >= 128))
    return arm_lost / arm_total, torso_lost / torso_total


def test_thin_arms_are_lost_far_more_often_than_the_torso():
    default = MaskQuality.segmentation()
    arm, torso = lost_fractions(default)
    assert arm > 0.3 and arm > 5 * torso
    # the thin-part setting alone removes arm pieces and leaves the torso whole ...
    arm_thin, torso_thin = lost_fractions(MaskQuality(thin_width=default.thin_width,
                                                      thin_drop_prob=default.thin_drop_prob))
    assert arm_thin > 0.15 and torso_thin < 0.005
    # ... and is what makes arms go missing beyond the outline error every part suffers
    arm_outline, _ = lost_fractions(dataclasses.replace(default, thin_drop_prob=0.0))
    assert arm > arm_outline + 0.1


def test_context_touching_the_person_is_sometimes_merged_and_distant_context_never():
    mask = silhouettes(1, (128, 64))[0]
    fg = mask >= 128
    near = np.zeros_like(mask)
    for y in range(45, 75):  # a 10-pixel wide object hugging the person's right side
        x = int(np.flatnonzero(fg[y]).max()) + 1
        near[y, x:x + 10] = 255
    far = np.zeros_like(mask)
    far[20:100, 58:] = 255  # a pole at the right edge, well away from the person
    assert int(np.flatnonzero(fg.any(axis=0)).max()) < 58 - 12
    merged = []
    for seed in range(40):
        quality = MaskQuality.segmentation()
        out_near = degrade_mask(mask, quality, np.random.default_rng(seed), near) >= 128
        out_far = degrade_mask(mask, quality, np.random.default_rng(seed), far) >= 128
        merged.append(np.count_nonzero(out_near & (near >= 128)) / np.count_nonzero(near))
        assert np.count_nonzero(out_far & (far >= 128)) == 0
    n_merged = sum(f > 0.5 for f in merged)
    assert 8 <= n_merged <= 36  # merge_prob = 0.6 of 40
    never = dataclasses.replace(MaskQuality.segmentation(), merge_prob=0.0, blob_prob=0.0)
    out = degrade_mask(mask, never, np.random.default_rng(0), near) >= 128
    assert np.count_nonzero(out & (near >= 128)) < 0.3 * np.count_nonzero(near)


@pytest.mark.parametrize("size", [(64, 32), (100, 41), (48, 24)])
def test_working_above_the_reference_height_alone_changes_nothing_at_small_sizes(size):
    merge_only = MaskQuality(merge_prob=1.0, merge_reach=3.0, merge_extent=10.0)
    rng = np.random.default_rng(5)
    for mask in silhouettes(10, size):
        assert np.array_equal(degrade_mask(mask, merge_only, rng), mask)


def test_hole_setting_cuts_a_hole_inside_the_body():
    mask = silhouettes(1, (128, 64))[0]
    holes = MaskQuality(hole_prob=1.0, hole_radius=4.0)
    out = degrade_mask(mask, holes, np.random.default_rng(0))
    lost = (mask >= 128) & (out < 128)
    assert 20 < np.count_nonzero(lost) < 120
    assert not (lost & (mask < 128)).any()
    before, _ = cv2.connectedComponents((mask < 128).astype(np.uint8), connectivity=4)
    after, _ = cv2.connectedComponents((out < 128).astype(np.uint8), connectivity=4)
    assert after == before + 1  # one more enclosed background region: the hole


# =========================================================================== input errors and IoU


@pytest.mark.parametrize("bad", [np.zeros((128, 64, 3), np.uint8), np.zeros((128, 64), np.float32),
                                 np.zeros(128, np.uint8), [[0, 255]]])
def test_mask_of_wrong_dtype_or_shape_raises_config_error(bad):
    with pytest.raises(ConfigError, match="uint8 \\(H, W\\)"):
        degrade_mask(bad, MaskQuality.segmentation(), np.random.default_rng(0))


def test_context_of_another_shape_and_a_non_generator_rng_raise_config_error():
    mask = silhouettes(1, (128, 64))[0]
    with pytest.raises(ConfigError, match="context has shape \\(64, 32\\)"):
        degrade_mask(mask, MaskQuality.segmentation(), np.random.default_rng(0), np.zeros((64, 32), np.uint8))
    with pytest.raises(ConfigError, match="rng"):
        degrade_mask(mask, MaskQuality.segmentation(), 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="quality"):
        degrade_mask(mask, "segmentation", np.random.default_rng(0))  # type: ignore[arg-type]


def test_mask_iou_and_mean_iou_count_foreground_pixels():
    a = np.zeros((4, 4), np.uint8)
    b = np.zeros((4, 4), np.uint8)
    assert mask_iou(a, b) == 1.0  # both empty
    a[:, :2] = 255
    b[:, 1:3] = 200  # >= 128 counts as foreground
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(a, a) == 1.0
    assert mean_iou([a, a], [a, b]) == pytest.approx((1 + 4 / 12) / 2)
    with pytest.raises(ConfigError, match="2 exact masks and 1 degraded"):
        mean_iou([a, a], [b])
    with pytest.raises(ConfigError, match="shape"):
        mask_iou(a, np.zeros((4, 5), np.uint8))
