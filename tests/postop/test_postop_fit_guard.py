"""The prism fit's run-off guard: a fit far from the metal's principal axis is kept only when confirmed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from or_assist.core.pose import rotation_about_axis
from or_assist.postop.match import _agreeing, _held

START = SimpleNamespace(apex_lps_mm=np.array([10.0, -80.0, 200.0]), axis_unit=np.array([1.0, 0.0, 0.0]))


def _fit(turn_deg, shift_mm, rms_hu=60.0, about=(0.0, 0.0, 1.0)):
    axis = rotation_about_axis(np.array(about), np.radians(turn_deg)) @ START.axis_unit
    return SimpleNamespace(apex_lps_mm=START.apex_lps_mm + [0.0, shift_mm, 0.0], axis_unit=axis, rms_hu=rms_hu)


def test_a_fit_near_its_start_holds_and_a_far_one_does_not():
    assert _held(_fit(3.0, 2.0), START)
    assert not _held(_fit(9.5, 5.1), START)
    assert not _held(_fit(1.0, 1.0, rms_hu=np.nan), START)


def test_two_independent_fits_at_the_same_far_pose_confirm_it():
    """Seed 59's faint cannulated implant: solid and channel fits both 9.5 deg / 5.1 mm from the axis."""
    fits = [_fit(9.6, 5.2, 118.0), _fit(9.5, 5.1, 66.0)]
    assert _agreeing(fits, START) == [0, 1]


def test_fits_that_disagree_or_run_past_the_caps_are_not_confirmed():
    assert _agreeing([_fit(9.5, 5.1), _fit(12.0, 5.1)], START) == []             # 2.5 deg apart
    assert _agreeing([_fit(9.5, 5.1), _fit(9.5, 7.0)], START) == []              # 1.9 mm apart
    assert _agreeing([_fit(20.0, 5.0), _fit(20.2, 5.0)], START) == []            # beyond 15 deg
    assert _agreeing([_fit(5.0, 14.0), _fit(5.0, 14.2)], START) == []            # beyond 12 mm
    assert _agreeing([_fit(9.5, 5.1)], START) == []                              # nothing to agree with
