"""Which planned view a shot shows (or_assist.live.views), on the sample pelvis's real DRRs:
the shown view scores highest, the starts are ordered by it, the selected view wins a
near-tie, and bad input is named."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.view_poses import plan_view_pose
from or_assist.core.vocabulary import SIJF_VIEWS
from or_assist.errors import InputError
from or_assist.live.views import VIEW_MARGIN, rank_starts, view_scores


@pytest.fixture(scope="module")
def scene():
    """The sample case's renderer, plan, a 256 px geometry and a round-field shot per view
    (the DRR at the planned pose, bone dark, as a C-arm's video shows it)."""
    from or_assist.render.display import to_display
    from or_assist.render.drr import AttenuationVolume, DRRRenderer
    from or_assist.sim.scenario.spec import load_sample_case

    ct, plan, geometry = load_sample_case()
    renderer = DRRRenderer(AttenuationVolume.from_ct(ct))
    factor = max(1, geometry.width // 256)
    geom = geometry.downsampled(factor) if factor > 1 else geometry
    w, h = geom.image_size_px
    yy, xx = np.mgrid[0:h, 0:w]
    field = (xx - w / 2 + 0.5) ** 2 + (yy - h / 2 + 0.5) ** 2 <= (0.46 * min(w, h)) ** 2
    rng = np.random.default_rng(0)
    poses = {v: plan_view_pose(plan, "L1", v, geometry=geom) for v in SIJF_VIEWS}
    shots = {}
    for view, pose in poses.items():
        image = to_display(renderer.render(pose, geom, step_mm=1.5)).astype(np.float32)
        image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
        shots[view] = np.where(field, np.clip(image, 0, 255), 0).astype(np.uint8)
    return renderer, geom, poses, shots


@pytest.mark.slow
def test_the_shown_view_scores_highest(scene):
    renderer, geom, poses, shots = scene
    names = list(poses)
    for shown, frame in shots.items():
        scores = view_scores(renderer, geom, frame, [poses[v] for v in names])
        best = names[int(np.argmax(scores))]
        others = [s for v, s in zip(names, scores) if v != shown]
        assert best == shown, (shown, scores)
        assert scores[names.index(shown)] > max(others) + 0.2, (shown, scores)


@pytest.mark.slow
def test_starts_are_tried_most_alike_first(scene):
    renderer, geom, poses, shots = scene
    starts = [("lateral", poses["lateral"], False), ("inlet", poses["inlet"], False),
              ("outlet", poses["outlet"], False)]
    ranked = rank_starts(renderer, geom, shots["outlet"], starts, "lateral")
    assert [r[0] for r in ranked][0] == "outlet"
    assert ranked[0][1] is poses["outlet"] and ranked[0][2] is False
    assert ranked[0][3] > ranked[1][3] - VIEW_MARGIN
    # the selected view keeps its place on a tie: the same pose twice, the track start first
    tied = [("lateral", poses["lateral"], True), ("outlet", poses["lateral"], False)]
    assert [r[0] for r in rank_starts(renderer, geom, shots["lateral"], tied, "lateral")] == ["lateral", "outlet"]
    assert [r[0] for r in rank_starts(renderer, geom, shots["lateral"], tied[::-1], "outlet")] == \
        ["outlet", "lateral"]


@pytest.mark.slow
def test_a_view_changed_without_selection_registers_at_the_first_attempt(scene):
    """The outlet shown while lateral is selected: the pipeline tries outlet first, and the
    shot's view is the one that registered."""
    from or_assist.live.pipeline import LivePipeline
    from or_assist.register.pipeline import Registrar
    from or_assist.register.settings import RegistrationSettings
    from or_assist.sim.scenario.spec import load_sample_case

    renderer, geom, poses, shots = scene
    plan = load_sample_case()[1]
    registrar = Registrar(renderer, geom, RegistrationSettings(time_budget_s=None))
    result = LivePipeline(plan, geom, registrar=registrar).process(shots["outlet"], "L1", "lateral")
    assert result.attempts[0]["view"] == "outlet" and result.attempts[0]["view_score"] > 0.5
    assert result.registered and result.view == "outlet" and len(result.attempts) == 1, result.summary()
    assert f"{result.register_seconds:.1f} s)" in result.summary()


def _cheap():
    """A geometry and two poses, for what needs no rendering."""
    from or_assist.core.geometry import CArmGeometry
    from or_assist.core.pose import Pose

    geom = CArmGeometry((128, 128), 1000.0, (2.0, 2.0), (64.0, 64.0), 600.0)
    return geom, Pose(np.eye(4)), Pose(np.diag([1.0, -1.0, -1.0, 1.0]))


def test_without_a_renderer_the_order_is_kept_unscored():
    geom, a, b = _cheap()
    starts = [("lateral", a, False), ("outlet", b, False)]
    frame = np.full((128, 128), 100, np.uint8)
    assert rank_starts(None, geom, frame, starts, "lateral") == [(*s, None) for s in starts]
    assert rank_starts(object(), geom, frame, starts[:1], "lateral") == [(*starts[0], None)]


def test_blank_frame_and_bad_arguments():
    geom, a, b = _cheap()
    blank = np.zeros((128, 128), np.uint8)
    assert view_scores(object(), geom, blank, [a, b]).tolist() == [-1.0, -1.0]  # nothing to compare
    assert view_scores(object(), geom, blank, []).shape == (0,)
    with pytest.raises(InputError, match="size_px"):
        view_scores(None, geom, blank, [a], size_px=8)
    with pytest.raises(InputError, match="poses"):
        view_scores(None, geom, blank, [np.eye(4)])
    with pytest.raises(InputError, match="geometry"):
        view_scores(None, {"sid_mm": 1000}, blank, [a])
