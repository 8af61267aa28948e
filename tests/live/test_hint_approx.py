"""The radiographer's positioning hint for a shot that did not register (marked
approximate) and the planned view's angles in words (issue 16, item 6)."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.view_poses import plan_view_pose
from or_assist.errors import InputError
from or_assist.live.hint import (APPROX_PREFIX, approximate_positioning_hint, planned_angles_text,
                                 positioning_hint)
from or_assist.register.pipeline import RegistrationResult
from tests.live.conftest import turned_pose


def _failed(pose, start=None):
    return RegistrationResult(pose, False, 0.05, "gc", 0.01, "not confident: test", start_pose=start)


def test_approximate_hint_is_rounded_and_marked(sample_case):
    _, plan, geometry = sample_case
    planned = plan_view_pose(plan, "L1", "inlet", geometry=geometry)
    lms = plan.landmarks
    off = turned_pose(planned, 0, 11, lms)                       # the guess: the C-arm 11 deg too cranial
    hint = approximate_positioning_hint(_failed(off), planned, lms)
    assert hint == APPROX_PREFIX + "tilt ~10 deg more caudal"
    assert hint.startswith("approx.") and positioning_hint(off, planned, lms) == "tilt 11 deg more caudal"
    # small differences still say a whole step; both angles when both are off
    assert approximate_positioning_hint(_failed(turned_pose(planned, -3.5, 0, lms)), planned, lms) == \
        APPROX_PREFIX + "rotate ~5 deg towards LAO"
    assert approximate_positioning_hint(_failed(turned_pose(planned, 8, -13, lms)), planned, lms) == \
        APPROX_PREFIX + "rotate ~10 deg towards RAO, tilt ~15 deg more cranial"
    # within min_deg: nothing to say; no pose at all: nothing; a start pose when the search kept no pose
    assert approximate_positioning_hint(_failed(turned_pose(planned, 1, -2, lms)), planned, lms) is None
    # a guess beyond the capture range is no guide (e.g. a wrong optimum turned 40 deg)
    assert approximate_positioning_hint(_failed(turned_pose(planned, 40, 0, lms)), planned, lms) is None
    assert approximate_positioning_hint(_failed(turned_pose(planned, 0, 24, lms)), planned, lms) == \
        APPROX_PREFIX + "tilt ~25 deg more caudal"
    assert approximate_positioning_hint(_failed(None), planned, lms) is None
    assert approximate_positioning_hint(None, planned, lms) is None
    assert approximate_positioning_hint(_failed(None, start=off), planned, lms) == hint
    # a registration that succeeded gets the confident hint, not this one
    ok = RegistrationResult(off, True, 0.9, "gc", 0.01)
    assert approximate_positioning_hint(ok, planned, lms) is None
    with pytest.raises(InputError, match="^step_deg:"):
        approximate_positioning_hint(_failed(off), planned, lms, step_deg=0.0)
    with pytest.raises(InputError, match="pose"):
        approximate_positioning_hint(_failed(off), np.eye(4), lms)


def test_planned_angles_text(sample_case):
    _, plan, geometry = sample_case
    lateral = plan_view_pose(plan, "L1", "lateral", geometry=geometry)
    assert planned_angles_text(lateral, plan.landmarks, view="L1 lateral") == "L1 lateral: orbital LAO 90 deg, tilt 0 deg"
    inlet = plan_view_pose(plan, "L1", "inlet", geometry=geometry, tilt_deg=25.0)
    assert planned_angles_text(inlet, plan.landmarks) == "orbital 0 deg, tilt CAUD 25 deg"
    with pytest.raises(InputError, match="planned_pose"):
        planned_angles_text(None)


def test_pipeline_sets_an_approximate_hint_for_a_shot_that_did_not_register(sample_case):
    """The live pipeline gives a shot that did not register the approximate hint (no
    overlay, no cue), from the registration's unconfirmed pose."""
    from or_assist.live.pipeline import LivePipeline
    from or_assist.sim.shots.settings import ShotSettings
    from or_assist.sim.shots.simulate import simulate_shot

    ct, plan, geometry = sample_case
    geometry = geometry.downsampled(4)                     # a coarse shot is enough here
    planned = plan_view_pose(plan, "L1", "lateral", geometry=geometry)
    guess = turned_pose(planned, 0, -9, plan.landmarks)       # the C-arm 9 deg too caudal, not confirmed

    class NeverConfident:
        def register(self, frame, init_pose, *, polarity="bone-dark", library=None, target_lps_mm=None):
            return _failed(guess)

    shot = simulate_shot(ct, planned, geometry, settings=ShotSettings(frame_size_px=(320, 240), seed=3, supersample=1,
                                                                      step_fraction=1.0))
    pipe = LivePipeline(plan, shot.video_geometry, registrar=NeverConfident(), try_other_views=False)
    r = pipe.process(shot.frame, "L1", "lateral")
    assert not r.registered and r.pose is None and r.cue is None
    assert r.hint == APPROX_PREFIX + "tilt ~10 deg more cranial"
    assert r.summary().endswith("C-arm: " + r.hint)
