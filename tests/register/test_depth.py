"""The depth refinement along the beam (:mod:`or_assist.register.depth`)."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.register.depth import DEPTH_PARAM, DepthRefine, refine_depth
from or_assist.register.pose_params import apply_update

CENTER = np.array([0.0, 0.0, 530.0])
POSE = apply_update(Pose.identity(), np.array([3.0, -2.0, 5.0, 4.0, -6.0, 520.0]), np.zeros(3))


def _depth_of(pose: Pose) -> float:
    """The pose's translation along the beam relative to POSE, mm."""
    return float(pose.translation_mm[2] - POSE.translation_mm[2])


def _parabola(peak_mm: float):
    return lambda pose: 1.0 - (_depth_of(pose) - peak_mm) ** 2


@pytest.mark.parametrize("peak_mm", [0.0, 0.7, -1.9, 2.6, -3.4, 4.4])
def test_a_peak_within_reach_is_found(peak_mm):
    pose, score, moved = refine_depth(_parabola(peak_mm), POSE, CENTER, probe_mm=1.5)
    assert moved == pytest.approx(peak_mm, abs=1e-9) and _depth_of(pose) == pytest.approx(peak_mm, abs=1e-9)
    assert score == pytest.approx(1.0, abs=1e-12)
    # only the translation along the beam changes
    assert np.allclose(pose.rotation, POSE.rotation, atol=1e-12)
    assert np.allclose(pose.translation_mm[:2], POSE.translation_mm[:2], atol=1e-9)


def test_a_peak_beyond_reach_stops_one_spacing_past_the_last_sample():
    pose, score, moved = refine_depth(_parabola(9.0), POSE, CENTER, probe_mm=1.5)
    assert moved == pytest.approx(4.5)
    pose, score, moved = refine_depth(_parabola(-9.0), POSE, CENTER, probe_mm=1.0)
    assert moved == pytest.approx(-3.0)


def test_a_vertex_scoring_below_the_best_sample_is_not_taken():
    # a spike at the sample 1.5 mm: the vertex of the parabola through it and its
    # neighbours (at 1.34 mm) scores lower, so the sample stays
    def score(pose):
        d = _depth_of(pose)
        return -(d - 1.0) ** 2 + (5.0 if abs(d - 1.5) < 1e-6 else 0.0)

    pose, best, moved = refine_depth(score, POSE, CENTER, probe_mm=1.5)
    assert moved == pytest.approx(1.5) and best == pytest.approx(4.75)


def test_the_update_parameter_is_the_translation_along_the_beam():
    step = np.zeros(6)
    step[DEPTH_PARAM] = 2.0
    moved = apply_update(POSE, step, CENTER)
    assert np.allclose(moved.translation_mm - POSE.translation_mm, [0.0, 0.0, 2.0])


@pytest.mark.parametrize("field, value", [("size_px", 8), ("size_px", 256.0), ("step_mm", 0.0),
                                          ("probe_mm", float("nan")), ("probe_mm", -1.0)])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(InputError, match=field):
        DepthRefine(**{field: value})
