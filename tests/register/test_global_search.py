"""The global stage (or_assist.register.global_search): shift by masked NCC, rotation
hypotheses that recover a known in-plane move of a DRR, and the registration's time budget."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from or_assist.core.carm_profiles import load_profile
from or_assist.core.ct.load import load_ct
from or_assist.core.plan import load_plan
from or_assist.core.view_poses import plan_view_pose
from or_assist.errors import InputError
from or_assist.register.global_search import GlobalSearch, edge_image, global_candidates, match_shift, ncc_maps
from or_assist.register.pipeline import Registrar
from or_assist.register.pose_params import apply_update, isocenter_source_mm, pose_error, target_error_mm
from or_assist.register.settings import RegistrationSettings
from or_assist.register.shot import scaled_geometry
from or_assist.register.similarity import gradients, similarity
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.sim.shots.settings import ShotSettings
from or_assist.sim.shots.simulate import simulate_shot

REAL_PLAN = "tests/data/real_ct_plan.json"


def _blobs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((n, n), np.float32)
    for _ in range(12):
        cv2.circle(img, tuple(int(v) for v in rng.integers(4, n - 4, 2)), int(rng.integers(2, 6)),
                   float(rng.uniform(0.5, 1.0)), -1)
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def test_match_shift_finds_a_known_shift_and_ignores_pixels_outside_the_mask():
    m, n = 8, 48
    wide = _blobs(n + 2 * m)
    for du, dv in ((3, -5), (-6, 2), (0, 0)):
        template = wide[m - dv:m - dv + n, m - du:m - du + n].copy()  # the view moved by (du, dv)
        mask = np.zeros((n, n), bool)
        cv2.circle(mask.view(np.uint8), (n // 2, n // 2), n // 2 - 6, 1, -1)
        template[~mask] = 5.0  # burnt-in text, collimator: outside the mask, must not matter
        template[:6, :] = 3.0
        su, sv, score = match_shift(wide, template, mask)
        assert abs(su - du) < 0.3 and abs(sv - dv) < 0.3, ((su, sv), (du, dv))
        assert score > 0.95


def test_ncc_maps_are_the_masked_normalised_cross_correlation_at_every_shift():
    """The FFT-based stack of maps equals the definition: at each shift, the NCC of the
    template's and the window's pixels under the mask (each with its own mean)."""
    rng = np.random.default_rng(3)
    wides = np.stack([_blobs(44, seed=s) + rng.normal(0, 0.02, (44, 44)).astype(np.float32) for s in (4, 5)])
    template = _blobs(32, seed=6)
    mask = rng.random((32, 32)) > 0.3
    maps = ncc_maps(wides, template, mask)
    assert maps.shape == (2, 13, 13)
    a = template[mask].astype(np.float64) - template[mask].mean()
    for w, got in zip(wides, maps):
        want = np.empty((13, 13))
        for y in range(13):
            for x in range(13):
                b = w[y:y + 32, x:x + 32][mask].astype(np.float64)
                b -= b.mean()
                want[y, x] = float(a @ b) / np.sqrt(float(a @ a) * float(b @ b))
        assert np.abs(got - want).max() < 1e-6
    # a constant window or template correlates with nothing
    assert np.all(ncc_maps(np.ones((1, 44, 44)), template, mask) == -1.0)
    assert np.all(ncc_maps(wides, np.ones((32, 32)), mask) == -1.0)


def test_gradient_channels_score_each_shift_by_the_first_stages_gradient_correlation():
    """With the signed gradients as two channels the correlation at a shift is the
    similarity module's gradient correlation of the shot and the view's crop there."""
    m, n = 6, 32
    wide = _blobs(n + 2 * m, seed=1)
    du, dv = 2, -3
    rng = np.random.default_rng(2)
    template = wide[m - dv:m - dv + n, m - du:m - du + n] + rng.normal(0, 0.05, (n, n)).astype(np.float32)
    mask = np.zeros((n, n), bool)
    cv2.circle(mask.view(np.uint8), (n // 2, n // 2), n // 2 - 3, 1, -1)
    gu, gv, mu, mv = gradients(template, mask)
    everywhere = np.ones(wide.shape, bool)
    su, sv, score = match_shift(gradients(wide, everywhere)[:2], (gu, gv), (mu, mv))
    assert abs(su - du) < 0.3 and abs(sv - dv) < 0.3, ((su, sv), (du, dv))
    crop = wide[m - dv:m - dv + n, m - du:m - du + n]
    assert score == pytest.approx(similarity(template, crop, mask, "gc"), abs=1e-4)
    assert 0.5 < score < 1.0


def test_edge_image_is_clipped():
    img = np.zeros((32, 32), np.float32)
    img[:, 16:] = 100.0
    assert float(edge_image(img, 1.0, clip_at=4.0).max()) <= 2.0 + 1e-6
    assert float(edge_image(img, 1.0).max()) > 10.0


def test_settings_are_checked():
    for bad in (dict(size_px=8), dict(size_px=32.0), dict(size_px=True), dict(keep=0), dict(keep=True),
                dict(tilts_deg=()), dict(rolls_deg=(90.0,)), dict(step_mm=0.0)):
        with pytest.raises(InputError, match=next(iter(bad))):
            GlobalSearch(**bad)
    with pytest.raises(InputError, match="compare"):
        GlobalSearch(compare="ncc")
    with pytest.raises(InputError, match="global_search"):
        RegistrationSettings(global_search="on")
    assert GlobalSearch().n_renders == 49


@pytest.fixture(scope="module")
def real(real_ct_path):
    ct, plan = load_ct(real_ct_path), load_plan(REAL_PLAN)
    geometry = load_profile("siemens_cios_fusion").geometry_at(256)
    return ct, plan, geometry, DRRRenderer(AttenuationVolume.from_ct(ct))


OLD_TILTS_DEG = (-8.0, -4.0, 0.0, 4.0, 8.0)


@pytest.mark.parametrize("search, move", [
    (GlobalSearch(), (6.0, 0.0, 6.0, 14.0, -11.0, 0.0)),
    (GlobalSearch(), (0.0, -9.0, -5.0, -12.0, 13.0, 6.0)),
    (GlobalSearch(compare="edges", tilts_deg=OLD_TILTS_DEG), (4.0, 0.0, 6.0, 14.0, -11.0, 0.0)),
    (GlobalSearch(compare="edges", tilts_deg=OLD_TILTS_DEG), (0.0, -8.0, -5.0, -12.0, 13.0, 6.0)),
])
def test_global_stage_recovers_a_known_in_plane_move_of_a_drr(real, search, move):
    """A DRR of the real CT as the shot (circular mask), the start moved off by an
    out-of-plane rotation on the hypotheses' grid, a roll and an in-plane shift of 13-18 mm:
    one of the kept hypotheses undoes them (to the grid's and the 32-px level's precision),
    by the signed gradients and by the edge magnitudes, and the best is near."""
    ct, plan, geometry, renderer = real
    center = isocenter_source_mm(geometry)
    truth = plan_view_pose(plan, plan.implants[0].id, "lateral", geometry=geometry)
    level_geometry = scaled_geometry(geometry, 0, 0, 256, 32)
    image = renderer.render(truth, level_geometry, step_mm=2.0)
    mask = np.zeros((32, 32), np.uint8)
    cv2.circle(mask, (16, 16), 15, 1, -1)
    start = apply_update(truth, move, center)
    renders = []

    def render(pose, geom):
        renders.append(geom.image_size_px)
        return renderer.render(pose, geom, step_mm=4.0)

    found = global_candidates(render, image, mask.astype(bool), level_geometry, start, center, search)
    assert 1 <= len(found) <= 3 and len(renders) == search.n_renders
    assert found[0].score >= max(c.score for c in found)
    angle0, disp0 = pose_error(start, truth, center)
    assert angle0 > 7.0 and np.hypot(*disp0[:2]) > 12.0
    errors = [pose_error(c.pose, truth, center) for c in found]
    # the roll grid's half step is 1.5 deg; rotations about different axes do not commute
    assert any(angle < 2.5 and np.hypot(*disp[:2]) < 3.0 for angle, disp in errors), errors
    # at 32 px a lateral's tilts about the two image axes trade against each other: a
    # neighbour on the grid's diagonal may score a little higher (0.902 against 0.900)
    assert errors[0][0] < 5.0 and np.hypot(*errors[0][1][:2]) < 5.0, errors[0]


class SlowWideRenderer(DRRRenderer):
    """A real renderer that takes ``delay_s`` longer for the global stage's widened DRRs
    (sizes that are no pyramid level)."""

    def __init__(self, volume, delay_s: float):
        super().__init__(volume)
        self.delay_s = delay_s

    def render(self, pose, geometry, **kwargs):
        if geometry.image_size_px[0] not in (32, 64, 128):
            time.sleep(self.delay_s)
        return super().render(pose, geometry, **kwargs)


def _shot(real, seed: int):
    ct, plan, geometry, renderer = real
    imp = plan.implants[0]
    truth = apply_update(plan_view_pose(plan, imp.id, "lateral", geometry=geometry), (1.0, -2.0, 2.0, 4.0, -3.0, 2.0),
                         isocenter_source_mm(geometry))
    return simulate_shot(renderer, truth, geometry, settings=ShotSettings(frame_size_px=(960, 540), seed=seed))


def test_registration_with_the_global_stage_holds_its_time_budget(real):
    """Deliberately slow hypotheses (0.15 s each, 49 of them): the registration still returns
    within its budget (plus one render), not registered, naming the stage it stopped in."""
    ct, plan, geometry, renderer = real
    shot = _shot(real, 3)
    start = apply_update(shot.pose, (6.0, -5.0, 6.0, 14.0, -12.0, 10.0), isocenter_source_mm(geometry))
    slow = SlowWideRenderer(renderer.volume, 0.15)
    budget_s = 1.5
    settings = RegistrationSettings(global_search=GlobalSearch(), time_budget_s=budget_s, restart_below=1.01,
                                    start_agreement_mm=None)
    res = Registrar(slow, shot.video_geometry, settings).register(shot.frame, start)
    assert res.seconds < budget_s + 0.15 + 0.5
    assert not res.success and res.stopped_in is not None
    assert f"ran out in the {res.stopped_in} stage" in res.reason


def test_registration_with_the_global_stage_registers_from_a_far_start(real):
    """From 6-7 deg and 18-20 mm off in-plane, the global stage's hypotheses are among the
    starts (their first-stage similarities are in the stage scores) and the result is right."""
    ct, plan, geometry, renderer = real
    shot = _shot(real, 4)
    center = isocenter_source_mm(geometry)
    start = apply_update(shot.pose, (5.0, -6.0, 7.0, 18.0, -14.0, 10.0), center)
    # two starts only (the start pose, then the best hypothesis), no extra agreement start: fast
    settings = RegistrationSettings(global_search=GlobalSearch(), time_budget_s=None, restart_below=1.01,
                                    max_starts=2, agreement_mm=None)
    res = Registrar(renderer, shot.video_geometry, settings).register(shot.frame, start)
    points = np.stack([p for imp in plan.implants for p in (imp.entry_lps_mm, imp.apex_lps_mm)])
    assert "global" in res.stage_scores and 1 <= len(res.stage_scores["global"]) <= 3
    assert res.n_evaluations >= GlobalSearch().n_renders
    assert target_error_mm(res.pose, shot.pose, points) < 2.0
    assert res.success, res.reason
