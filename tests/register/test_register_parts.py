"""Registration building blocks: similarity measures, optimisers, pose parameters, shot pyramid."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.carm_profiles import load_profile
from or_assist.core.geometry import project
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.errors import InputError
from or_assist.register.init2d import Alignment2D, align_2d, pose_from_2d
from or_assist.register.optimize import cma_es, compass_search, parabola_vertex, quadratic_model_search
from or_assist.register.pose_params import apply_update, isocenter_source_mm, pose_error, target_error_mm
from or_assist.register.shot import ShotProblem, prepare_shot
from or_assist.register.similarity import METRICS, prepare_fixed, similarity


def _blobs(shift=(0.0, 0.0), n=64):
    v, u = np.mgrid[0:n, 0:n].astype(np.float64)
    img = np.zeros((n, n))
    for cu, cv, s in ((20, 22, 5), (40, 30, 7), (28, 45, 4)):
        img += np.exp(-((u - cu - shift[0]) ** 2 + (v - cv - shift[1]) ** 2) / (2 * s * s))
    return img.astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
def test_similarity_is_one_for_affine_copies_and_drops_when_shifted(metric):
    a = _blobs()
    mask = np.ones(a.shape, bool)
    assert similarity(3.0 * a + 7.0, a, mask, metric) == pytest.approx(1.0, abs=1e-5)
    near, far = (similarity(a, _blobs((d, 0.0)), mask, metric) for d in (1.0, 3.0))
    assert 1.0 - 1e-5 > near > far
    assert similarity(a, -a, mask, metric) == pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_similarity_ignores_pixels_outside_the_mask(metric):
    a = _blobs()
    b = a.copy()
    b[:, 46:] = np.random.default_rng(0).normal(0, 5, (64, 18))   # garbage right where masked out
    mask = np.zeros(a.shape, bool)
    mask[:, :46] = True
    assert similarity(a, b, mask, metric) == pytest.approx(1.0, abs=1e-5)
    # so a registration need not render the masked-out pixels (DRRRenderer ray_mask)
    b[:, 46:] = 0.0
    assert similarity(a, b, mask, metric) == pytest.approx(1.0, abs=1e-5)


def test_similarity_rejects_bad_arguments():
    a = _blobs()
    with pytest.raises(InputError, match="metric"):
        prepare_fixed(a, np.ones(a.shape, bool), "mi")
    with pytest.raises(InputError, match="mask"):
        prepare_fixed(a, np.ones((3, 3), bool))
    with pytest.raises(InputError, match="moving"):
        prepare_fixed(a, np.ones(a.shape, bool)).score(np.zeros((3, 3)))


def test_optimisers_find_a_shifted_minimum_deterministically():
    """What the method guarantees, not one floating-point path. The path of a CMA-ES moves
    with the numpy/BLAS build (the eigenvectors of its covariance may come with other signs
    or, for nearly equal eigenvalues, other directions: other samples from the same
    distribution), so a seed's end point on another machine is another draw. Asserted, for
    every seed: the same result for the same seed on this build; the budget; an early stop
    only where the best value was flat (``tol_fun``) over the last four generations; with
    that stop the objective falls from 30.5 below 0.3 (the worst of 300 seeds, with the
    eigenvectors as this build gives them and with half of them negated as another could:
    0.075 and 0.061); run to the budget (``tol_fun=0``), the end point within 0.01 of the
    minimum in the problem's own scale (worst of 300 seeds: 6e-4). The former assertion,
    within 0.1 after the early stop, failed for 5 of 200 seeds (up to 0.23): on a fresh
    machine seeds 0-4 are five new draws of that."""
    target = np.array([3.0, -2.0, 1.0, 0.5, -4.0, 2.0])
    scale = np.array([1, 1, 1, 1, 1, 4.0])
    f = lambda x: float(np.sum(((x - target) / scale) ** 2))  # noqa: E731
    r1 = cma_es(f, np.zeros(6), 2.0, max_evaluations=600, seed=3)
    r2 = cma_es(f, np.zeros(6), 2.0, max_evaluations=600, seed=3)
    assert np.array_equal(r1.x, r2.x) and r1.n_evaluations <= 600
    lam = 4 + int(3 * np.log(6))
    for seed in range(5):
        r = cma_es(f, np.zeros(6), 2.0, max_evaluations=600, seed=seed)
        assert r.n_evaluations <= 600 and r.fun == pytest.approx(f(r.x))
        if r.n_evaluations + lam <= 600:   # stopped early: flat
            assert max(r.history[-4:]) - min(r.history[-4:]) < 1e-6, (seed, r.history[-4:])
        assert r.fun < 0.3, (seed, r.x)
        full = cma_es(f, np.zeros(6), 2.0, max_evaluations=1000, seed=seed, tol_fun=0.0)
        assert full.n_evaluations > 1000 - lam     # ran to the budget
        assert np.max(np.abs((full.x - target) / scale)) < 0.01, (seed, full.x)
    r3 = compass_search(f, np.zeros(6), 1.0, min_steps=1e-3, max_evaluations=2000)
    assert np.allclose(r3.x, target, atol=0.01)
    with pytest.raises(InputError, match="sigma"):
        cma_es(f, np.zeros(6), -1.0)


def test_the_quadratic_model_search_finds_a_coupled_minimum_in_few_evaluations():
    """The fine stages' optimiser: a quadratic bowl whose depth and tilt are coupled (the
    valley runs diagonally to the axes) is solved to 0.05 steps within 40 evaluations,
    where the compass search with the same budget is still far off; the budget and the
    bounds hold, and the best point seen is returned."""
    c = np.array([0.5, -0.4, 0.3, 0.2, -0.3, 1.5])
    a = np.eye(6)
    a[2, 5] = a[5, 2] = 0.9                       # tilt and depth coupled
    f = lambda x: float((x - c) @ a @ (x - c))     # noqa: E731
    steps = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 2.0])
    r = quadratic_model_search(f, np.zeros(6), steps, max_evaluations=40)
    assert r.n_evaluations <= 40 and len(r.history) == r.n_evaluations
    assert r.fun == min(r.history) and f(r.x) == pytest.approx(r.fun)
    assert np.max(np.abs(r.x - c) / steps) < 0.05, r.x
    compass = compass_search(f, np.zeros(6), steps, max_evaluations=40)
    assert compass.fun > 10 * r.fun
    beyond = lambda x: f(x - np.array([1.5, 0, 0, 0, 0, 0]))   # noqa: E731  minimum 4 steps out in x0
    bounded = quadratic_model_search(beyond, np.zeros(6), steps, max_evaluations=40, bound_steps=1.0)
    assert np.all(np.abs(bounded.x) <= steps + 1e-9) and bounded.x[0] == pytest.approx(steps[0], abs=0.02)
    with pytest.raises(InputError, match="max_evaluations"):
        quadratic_model_search(f, np.zeros(6), steps, max_evaluations=5)
    with pytest.raises(InputError, match="steps"):
        quadratic_model_search(f, np.zeros(6), -1.0)


def test_pose_update_is_about_the_isocentre_and_errors_are_exact():
    g = load_profile("siemens_cios_fusion").geometry_at(256)
    pose = Pose.from_rotation_translation(rotation_about_axis([0, 0, 1], 0.3), [5.0, -3.0, 600.0])
    c = isocenter_source_mm(g)
    iso_patient = pose.inverse().apply(c)
    rotated = apply_update(pose, [4.0, -3.0, 2.0, 0, 0, 0], c)
    assert np.allclose(rotated.apply(iso_patient), c)            # a rotation keeps the isocentre
    moved = apply_update(pose, [0, 0, 0, 1.0, 2.0, 3.0], c)
    angle, disp = pose_error(moved, pose, c)
    assert angle == pytest.approx(0.0, abs=1e-6) and np.allclose(disp, [1, 2, 3])
    assert target_error_mm(moved, pose, np.array([iso_patient, iso_patient + 10])) == pytest.approx(np.sqrt(14))


def test_pose_from_2d_reproduces_an_in_plane_move():
    g = load_profile("siemens_cios_fusion").geometry_at(128)
    pose = Pose.from_rotation_translation(np.eye(3), [0.0, 0.0, g.source_to_isocenter_mm])
    pts = np.array([[0.0, 0.0, 0.0], [20.0, -10.0, 0.0], [-15.0, 25.0, 0.0]])
    al = Alignment2D((3.0, -2.0), 5.0, 1.0, 1.0)
    moved = pose_from_2d(pose, al, g)
    c = np.array(g.principal_point_px)
    a = np.radians(5.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    expected = (project(pts, pose, g) - c) @ rot.T + c + [3.0, -2.0]
    assert np.allclose(project(pts, moved, g), expected, atol=1e-6)


def test_align_2d_recovers_a_shift():
    a = _blobs()
    b = _blobs((4.0, -3.0))
    al = align_2d(b, np.ones(b.shape, bool), a, (31.5, 31.5), angles_deg=(0.0,))
    assert al.shift_px == pytest.approx((4.0, -3.0), abs=0.5)


def test_prepare_shot_problems_and_levels():
    g = load_profile("siemens_cios_fusion").geometry_at(256)
    with pytest.raises(ShotProblem, match="does not match"):
        prepare_shot(np.zeros((100, 100), np.uint8), g)
    with pytest.raises(ShotProblem):
        prepare_shot(np.zeros((256, 256), np.uint8), g)
    v, u = np.mgrid[0:256, 0:256]
    disc = (u - 127.5) ** 2 + (v - 127.5) ** 2 < 120 ** 2
    frame = np.where(disc, 60 + 60 * np.sin(u / 9.0) * np.cos(v / 13.0) + 60, 0).astype(np.uint8)
    shot = prepare_shot(frame, g, "bone-dark", (32, 64), valid=disc)
    assert set(shot.levels) == {32, 64}
    lvl = shot.levels[64]
    assert lvl.image.shape == (64, 64) and lvl.mask.any() and not lvl.mask.all()
    assert lvl.geometry.image_size_px == (64, 64)
    with pytest.raises(InputError, match="polarity"):
        prepare_shot(frame, g, "sideways")


@pytest.mark.parametrize("pattern", [False, True])
def test_the_compass_search_stops_where_the_caller_says(pattern):
    """``stop_when`` is asked at each better point and ends the search there: with a
    condition "within 1 of the minimum" it returns the first such point, sooner than the
    full search; a condition never met changes nothing."""
    c = np.array([3.0, -2.0, 1.0])
    f = lambda x: float(np.sum((x - c) ** 2))          # noqa: E731
    full = compass_search(f, np.zeros(3), 0.5, max_evaluations=300, pattern=pattern)
    asked = []

    def near(x):
        asked.append(x.copy())
        return bool(np.linalg.norm(x - c) < 1.0)

    stopped = compass_search(f, np.zeros(3), 0.5, max_evaluations=300, pattern=pattern, stop_when=near)
    assert stopped.stopped_early and not full.stopped_early
    assert np.linalg.norm(stopped.x - c) < 1.0 and stopped.fun == pytest.approx(f(stopped.x))
    assert stopped.n_evaluations < full.n_evaluations
    assert all(np.linalg.norm(x - c) >= 1.0 for x in asked[:-1])   # the first point that met it
    never = compass_search(f, np.zeros(3), 0.5, max_evaluations=300, pattern=pattern, stop_when=lambda x: False)
    assert not never.stopped_early and np.array_equal(never.x, full.x) and never.n_evaluations == full.n_evaluations


@pytest.mark.parametrize("peak", [-0.9, -0.3, 0.0, 0.45, 1.7])
def test_parabola_vertex_finds_the_peak_of_a_sampled_parabola(peak):
    y = [3.0 - 2.5 * (x - peak) ** 2 for x in (-1.0, 0.0, 1.0)]
    assert parabola_vertex(*y) == pytest.approx(peak, abs=1e-12)


@pytest.mark.parametrize("samples", [(1.0, 1.0, 1.0), (1.0, 0.0, 1.0), (0.0, 1.0, 2.0), (np.nan, 1.0, 0.0)])
def test_parabola_vertex_is_none_without_a_maximum(samples):
    assert parabola_vertex(*samples) is None
