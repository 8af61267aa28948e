"""The curvature probe at a registration's optimum and the error estimate it gives."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.pose import Pose
from or_assist.register.pose_params import apply_update, target_error_mm
from or_assist.register.uncertainty import CURVATURE_STEPS, FLAT_SIGMA, pose_uncertainty

CENTER = np.array([0.0, 0.0, 600.0])
POINTS = np.array([[10.0, -20.0, 0.0], [40.0, 10.0, 30.0]])


def _base() -> Pose:
    return Pose(np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 600.0], [0, 0, 0, 1]]))


def quadratic_score(base: Pose, curvature):
    """A similarity that is exactly ``1 + 0.5 sum c_i p_i^2`` in the update parameters."""
    def score(pose: Pose) -> float:
        # recover the parameters by probing: the probe only moves one parameter at a time
        p = np.zeros(6)
        d = pose.matrix @ np.linalg.inv(base.matrix)
        rv = np.array([d[2, 1] - d[1, 2], d[0, 2] - d[2, 0], d[1, 0] - d[0, 1]]) / 2.0
        p[:3] = np.degrees(np.arcsin(np.clip(rv, -1, 1)))
        p[3:] = d[:3, 3] - (CENTER - d[:3, :3] @ CENTER)
        return 1.0 + 0.5 * float(np.sum(np.asarray(curvature) * p * p))
    return score


def test_curvature_of_a_known_peak_and_its_sigmas():
    base = _base()
    curv = np.array([-0.2, -0.3, -0.05, -0.1, -0.12, -0.001])
    unc = pose_uncertainty(quadratic_score(base, curv), base, CENTER, scale=0.05)
    # the second difference of 0.5 c p^2 is c
    np.testing.assert_allclose(unc.curvature, curv, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(unc.sigma, np.minimum(0.05 / np.sqrt(-curv), FLAT_SIGMA), rtol=1e-3)


def test_no_peak_along_a_parameter_gives_the_flat_sigma():
    base = _base()
    curv = np.array([-0.2, -0.3, -0.05, -0.1, -0.12, 0.0])
    unc = pose_uncertainty(quadratic_score(base, curv), base, CENTER, scale=0.05)
    assert unc.sigma[5] == FLAT_SIGMA[5]


def test_error_at_points_is_the_displacement_of_the_sigmas():
    base = _base()
    unc = pose_uncertainty(quadratic_score(base, [-1e6, -1e6, -1e6, -1e6, -1e6, -0.25]), base, CENTER, scale=1.0)
    # only depth is uncertain: sigma 2 mm along the beam moves every point by 2 mm
    assert unc.error_at_mm(base, POINTS) == pytest.approx(2.0, rel=1e-3)
    # a sharper peak, a smaller error; the estimate grows with the scale
    sharper = pose_uncertainty(quadratic_score(base, [-1e6] * 5 + [-1.0]), base, CENTER, scale=1.0)
    assert sharper.error_at_mm(base, POINTS) == pytest.approx(1.0, rel=1e-3)
    twice = pose_uncertainty(quadratic_score(base, [-1e6] * 5 + [-1.0]), base, CENTER, scale=2.0)
    assert twice.error_at_mm(base, POINTS) == pytest.approx(2.0, rel=1e-3)


def test_a_rotation_sigma_grows_with_the_distance_from_the_centre():
    base = _base()
    unc = pose_uncertainty(quadratic_score(base, [-1.0, -1e6, -1e6, -1e6, -1e6, -1e6]), base, CENTER, scale=1.0)
    near = unc.error_at_mm(base, base.inverse().apply(CENTER[None, :]))
    far = unc.error_at_mm(base, base.inverse().apply((CENTER + [0, 100.0, 0])[None, :]))
    assert near < 0.01 and far == pytest.approx(100 * np.radians(1.0), rel=1e-2)
    # the estimate is the error the sigma would cause: moving by it gives that error
    moved = apply_update(base, [1.0, 0, 0, 0, 0, 0], CENTER)
    p = base.inverse().apply((CENTER + [0, 100.0, 0])[None, :])
    assert target_error_mm(moved, base, p) == pytest.approx(far, rel=1e-2)
    assert len(CURVATURE_STEPS) == 6


def parts_score(base: Pose, curvature, peaks):
    """Whole image and parts: part ``k`` is quadratic about its own peak ``peaks[k]``."""
    def score(pose: Pose) -> np.ndarray:
        p = _params(base, pose)
        return np.array([1.0 + 0.5 * float(np.sum(np.asarray(curvature) * (p - pk) ** 2)) for pk in peaks])
    return score


def _params(base: Pose, pose: Pose) -> np.ndarray:
    p = np.zeros(6)
    d = pose.matrix @ np.linalg.inv(base.matrix)
    rv = np.array([d[2, 1] - d[1, 2], d[0, 2] - d[2, 0], d[1, 0] - d[0, 1]]) / 2.0
    p[:3] = np.degrees(np.arcsin(np.clip(rv, -1, 1)))
    p[3:] = d[:3, 3] - (CENTER - d[:3, :3] @ CENTER)
    return p


def test_parts_that_peak_elsewhere_raise_the_estimate_by_their_disagreement():
    """A shot whose quadrants fit different poses (model error) is not pinned down by a sharp
    whole-image peak: each part's peak is found from the same probes, and their spread
    (here +-0.8 mm in x and y) is added to the curvature's estimate."""
    base = _base()
    curv = [-1e6] * 5 + [-1e6]
    peaks = [np.zeros(6)] + [np.array([0, 0, 0, dx, dy, 0.0]) for dx, dy in
                             ((0.8, 0), (-0.8, 0), (0, 0.8), (0, -0.8))]
    unc = pose_uncertainty(parts_score(base, [-0.5] * 6, peaks), base, CENTER, scale=1e-3)
    np.testing.assert_allclose(unc.peak_offsets, np.stack(peaks), atol=1e-6)
    assert unc.disagreement_at_mm(base, POINTS) == pytest.approx(0.8, rel=1e-3)
    assert unc.error_at_mm(base, POINTS) == pytest.approx(np.hypot(unc.curvature_error_at_mm(base, POINTS), 0.8))
    # parts that agree add nothing; only the whole image probed: no disagreement term
    agree = pose_uncertainty(parts_score(base, [-0.5] * 6, [np.zeros(6)] * 5), base, CENTER, scale=1e-3)
    assert agree.disagreement_at_mm(base, POINTS) == pytest.approx(0.0, abs=1e-9)
    whole = pose_uncertainty(quadratic_score(base, curv), base, CENTER, scale=1e-3)
    assert whole.peak_offsets is None and whole.disagreement_at_mm(base, POINTS) == 0.0
    assert "peak_offsets" in unc.to_dict() and "peak_offsets" not in whole.to_dict()


def test_a_whole_image_peak_the_search_did_not_reach_counts_and_offsets_are_bounded():
    base = _base()
    far = np.array([0, 0, 0, 0, 0, 30.0])     # far beyond two probe steps in depth
    unc = pose_uncertainty(parts_score(base, [-0.5] * 6, [far] * 5), base, CENTER, scale=1e-3)
    assert unc.peak_offsets[0, 5] == pytest.approx(2 * CURVATURE_STEPS[5])
    # every part agrees, but the whole image's own peak lies 4 mm (the bound) along the beam
    assert unc.disagreement_at_mm(base, POINTS) == pytest.approx(4.0, rel=1e-3)


def test_check_parts_that_disagree_raise_the_estimate_but_their_common_offset_does_not():
    """The last ``check_parts`` scores are the quadrants under the check similarity: where
    they disagree (+-0.9 mm) while the main parts agree, the disagreement is theirs; a
    common offset of all check parts (scatter's pull along the beam on gradient
    correlation) adds nothing, and neither set counts twice (the larger is taken)."""
    base = _base()
    main = [np.zeros(6)] * 5
    spread = [np.array([0, 0, 0, dx, dy, 0.0]) for dx, dy in ((0.9, 0), (-0.9, 0), (0, 0.9), (0, -0.9))]
    unc = pose_uncertainty(parts_score(base, [-0.5] * 6, main + spread), base, CENTER, scale=1e-3, check_parts=4)
    assert unc.peak_offsets.shape == (5, 6) and unc.check_offsets.shape == (4, 6)
    assert unc.disagreement_at_mm(base, POINTS) == pytest.approx(0.9, rel=1e-3)
    common = [np.array([0, 0, 0, 0.7, 0, 3.0])] * 4
    same = pose_uncertainty(parts_score(base, [-0.5] * 6, main + common), base, CENTER, scale=1e-3, check_parts=4)
    assert same.disagreement_at_mm(base, POINTS) == pytest.approx(0.0, abs=1e-9)
    # main parts at +-0.6 and check parts at +-0.9: the larger, not the sum
    own = [np.zeros(6)] + [np.array([0, 0, 0, dx, dy, 0.0]) for dx, dy in ((0.6, 0), (-0.6, 0), (0, 0.6), (0, -0.6))]
    both = pose_uncertainty(parts_score(base, [-0.5] * 6, own + spread), base, CENTER, scale=1e-3, check_parts=4)
    assert both.disagreement_at_mm(base, POINTS) == pytest.approx(0.9, rel=1e-3)
    assert "check_offsets" in both.to_dict()
    with pytest.raises(ValueError, match="check_parts"):
        pose_uncertainty(parts_score(base, [-0.5] * 6, main), base, CENTER, check_parts=5)
