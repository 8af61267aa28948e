"""The intensifier dewarp (``or-assist calibrate --dewarp``): a mounted bead grid with an
S-distortion, calibrated; checked on a second grid image the fit never saw."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from or_assist.calibration.dewarp import Dewarp, calibrate_with_dewarp, in_plane_angle_rad, load_dewarp, save_dewarp
from or_assist.calibration.phantom import load_bead_phantom
from or_assist.calibration.solve import calibrate
from or_assist.cli.calibrate import calibrate_command
from or_assist.core.carm_profiles import load_profile
from or_assist.errors import InputError
from or_assist.render.drr import DRRRenderer
from or_assist.sim.calibration_phantom import bead_phantom_volume, simulate_phantom_on_cover
from or_assist.sim.shots.settings import ShotSettings

S_PX = 7.0          # S-distortion amplitude, detector px (512 px detector): 1.5 degrees of twist on average
MOUNT_DEG = 12.0


@pytest.fixture(scope="module")
def grid():
    phantom = load_bead_phantom("bead_grid_two_plane")
    return DRRRenderer(bead_phantom_volume(phantom)), phantom


@pytest.fixture(scope="module")
def carm():
    return load_profile("siemens_arcadis_varic").geometry_at(512)


def _image(grid, carm, angle_deg, shift_mm, seed, s_px=S_PX):
    renderer, phantom = grid
    settings = ShotSettings(ii_distortion=(0.05, 0, 0, 0, 0), s_distortion_px=s_px, frame_size_px=(768, 576),
                            collimation="circle", collimation_radius_fraction=0.95, step_fraction=1.0, seed=seed)
    shot, pose = simulate_phantom_on_cover(renderer, phantom, carm, settings, angle_deg=angle_deg, shift_mm=shift_mm)
    return shot, pose


@pytest.fixture(scope="module")
def calibrated(grid, carm):
    shot, _ = _image(grid, carm, MOUNT_DEG, (4.0, -3.0), seed=1)
    with_mount = calibrate_with_dewarp(shot.frame, grid[1], source_to_isocenter_mm=600.0, mount_angle_deg=MOUNT_DEG)
    free = calibrate_with_dewarp(shot.frame, grid[1], source_to_isocenter_mm=600.0)
    return shot, with_mount, free


@pytest.fixture(scope="module")
def second(grid, carm):
    """Another grid image (moved, turned by 5 degrees), the same S-distortion: the check image."""
    return _image(grid, carm, MOUNT_DEG + 5.0, (-6.0, 5.0), seed=2)


def _in_plane_deg(pose) -> float:
    return math.degrees(in_plane_angle_rad(pose.matrix[:3, :3]))


def test_the_plain_calibration_cannot_fit_an_s_distorted_grid(grid, second):
    shot, _ = second
    try:
        res = calibrate(shot.frame, grid[1], source_to_isocenter_mm=600.0)
    except InputError as exc:      # refused: the residuals leave the focal length undetermined
        assert "focal length" in str(exc)
    else:
        assert res.reprojection_error_px[0] > 1.0


def test_with_the_dewarp_the_geometry_is_the_true_one(calibrated):
    shot, (res, dewarp), _ = calibrated
    truth = shot.video_geometry
    assert np.hypot(*np.subtract(res.geometry.principal_point_px, truth.principal_point_px)) < 1.0
    assert abs(res.geometry.sid_mm / truth.sid_mm - 1) < 0.005
    assert abs(res.geometry.pixel_spacing_mm[0] / truth.pixel_spacing_mm[0] - 1) < 0.005
    assert dewarp.fit_rms_px < 0.2 and dewarp.check_rms_px < 0.2
    assert dewarp.max_shift_px > 5.0         # it did measure the distortion (7 px at 512 -> ~8 px in the frame)
    assert dewarp.mount_angle_deg == MOUNT_DEG
    assert "twist included" in dewarp.describe()


def test_a_dewarped_frame_follows_the_pinhole_model_and_keeps_its_turn(calibrated, second, grid):
    """The second image, dewarped, calibrates to sub-pixel residuals with the phantom at its
    true in-plane angle. The free fit (no mount angle) fits as well, but how much of the
    twist it leaves in the image is not determined by the beads: it is whatever the
    optimiser's path gives (OpenCV 4.14: 1.45 deg of the 1.5 deg; 5.1: 0.36 deg), which is
    why that dewarp says "the twist NOT measured" and is not taken as the true angle."""
    _, (_, with_mount), (_, free) = calibrated
    shot, pose = second
    true_deg = _in_plane_deg(pose)
    fitted = {}
    for name, dw in (("mount", with_mount), ("free", free)):
        res = calibrate(dw.apply(shot.frame), grid[1], source_to_isocenter_mm=600.0)
        assert res.reprojection_error_px[0] < 0.2, name
        fitted[name] = _in_plane_deg(res.images[0].pose)
    assert abs(fitted["mount"] - true_deg) < 0.1
    assert "the twist NOT measured" in free.describe() and "twist included" in with_mount.describe()
    assert "NOT measured" in free.describe()


def test_a_dewarp_file_round_trips_and_bad_input_is_named(calibrated, tmp_path):
    _, (_, dewarp), _ = calibrated
    path = tmp_path / "dewarp.json"
    save_dewarp(path, dewarp)
    back = load_dewarp(path)
    pts = np.array([[100.0, 120.0], [384.0, 288.0], [700.0, 500.0]])
    np.testing.assert_allclose(back.displacement_px(pts), dewarp.displacement_px(pts), atol=1e-9)
    with pytest.raises(InputError, match="dewarp was calibrated for 768x576"):
        dewarp.apply(np.zeros((480, 640), np.uint8), "shot.png")
    doc = dewarp.to_dict()
    doc["coefficients_u"] = doc["coefficients_u"][:-1]
    (tmp_path / "bad.json").write_text(__import__("json").dumps(doc))
    with pytest.raises(InputError, match="coefficients_u"):
        load_dewarp(tmp_path / "bad.json")
    (tmp_path / "geom.json").write_text('{"schema": "or_assist.geometry/1"}')
    with pytest.raises(InputError, match="or_assist.dewarp/1"):
        load_dewarp(tmp_path / "geom.json")


def test_the_identity_dewarp_changes_nothing():
    img = (np.arange(480 * 640) % 251).astype(np.uint8).reshape(480, 640)
    assert np.array_equal(Dewarp.identity((640, 480)).apply(img), img)


def test_calibrate_command_writes_the_dewarp(second, tmp_path):
    shot, _ = second
    cv2.imwrite(str(tmp_path / "grid.png"), shot.frame)
    text = calibrate_command([tmp_path / "grid.png"], "bead_grid_two_plane", tmp_path / "g.json",
                             profile="siemens_arcadis_varic", dewarp_path=tmp_path / "d.json",
                             mount_angle_deg=MOUNT_DEG + 5.0)
    assert "twist included" in text and (tmp_path / "d.json").exists() and (tmp_path / "g.json").exists()
    assert load_dewarp(tmp_path / "d.json").image_size_px == (768, 576)
    with pytest.raises(InputError, match="--mount-angle-deg"):
        calibrate_command([tmp_path / "grid.png"], "bead_grid_two_plane", tmp_path / "g2.json", mount_angle_deg=3.0)


def test_the_live_pipeline_refuses_a_dewarp_of_another_frame_size(calibrated):
    from or_assist.core.plan import load_plan
    from or_assist.live.pipeline import LivePipeline
    from tests.conftest import REAL_PLAN

    shot, (res, dewarp), _ = calibrated
    plan = load_plan(REAL_PLAN)
    other = res.geometry.resampled(640, 480)
    with pytest.raises(InputError, match="dewarp.*calibrate them together"):
        LivePipeline(plan, other, registrar=object(), dewarp=dewarp)
    assert LivePipeline(plan, res.geometry, registrar=object(), dewarp=dewarp).dewarp is dewarp


def _mismatched_shot_files(calibrated, tmp_path):
    """The dewarp (768x576) and a 640x480 shot with its geometry and a pose: d.json, g.json, shot.png, pose.json."""
    from or_assist.core.geometry import save_geometry

    _, (res, dewarp), _ = calibrated
    save_dewarp(tmp_path / "d.json", dewarp)
    save_geometry(res.geometry.resampled(640, 480), tmp_path / "g.json")
    cv2.imwrite(str(tmp_path / "shot.png"), np.zeros((480, 640), np.uint8))
    (tmp_path / "pose.json").write_text('{"schema": "or_assist.pose/1", "T_source_from_patient": '
                                        '[[1,0,0,0],[0,0,-1,260],[0,1,0,760],[0,0,0,1]]}')


def test_register_names_a_shot_whose_size_the_dewarp_does_not_fit(calibrated, tmp_path):
    from or_assist.register.files import register_files

    _mismatched_shot_files(calibrated, tmp_path)
    with pytest.raises(InputError, match="shot.png.*dewarp was calibrated for 768x576"):
        register_files(tmp_path / "no_ct", tmp_path / "g.json", tmp_path / "shot.png", tmp_path / "pose.json",
                       tmp_path / "out.json", dewarp_path=tmp_path / "d.json")


def test_the_remap_maps_follow_the_field_at_every_pixel(calibrated):
    _, (_, dewarp), _ = calibrated
    mu, mv = dewarp.maps()
    rng = np.random.default_rng(3)
    px = np.stack([rng.integers(0, 768, 500), rng.integers(0, 576, 500)], axis=1)
    want = dewarp.displacement_px(px.astype(float))
    got = np.stack([mu[px[:, 1], px[:, 0]] - px[:, 0], mv[px[:, 1], px[:, 0]] - px[:, 1]], axis=1)
    err = np.hypot(*(got - want).T)
    inside = np.hypot(*(px - np.asarray(dewarp.center_px)).T) < 0.95 * dewarp.radius_px
    assert err[inside].max() < 0.02          # where the beads measured the field
    assert err.max() < 0.25                  # across the kink where it is then held constant
    assert np.abs(want).max() > 3.0          # a real field, not an identity


def test_an_s_distorted_shot_registers_through_the_dewarp(calibrated, carm, real_ct_path, tmp_path):
    """End to end, as a user would: the calibrated geometry and dewarp files, a real-CT inlet
    shot through the same intensifier (pincushion and S-distortion), ``register --dewarp``."""
    from or_assist.cli.register import register_command
    from or_assist.core.ct.load import load_ct
    from or_assist.core.geometry import save_geometry
    from or_assist.core.plan import load_plan
    from or_assist.core.pose import Pose, save_pose
    from or_assist.core.view_poses import plan_view_pose
    from or_assist.register.pose_params import apply_update, isocenter_source_mm, target_error_mm
    from or_assist.render.drr import AttenuationVolume
    from or_assist.sim.shots.simulate import simulate_shot
    from tests.conftest import REAL_PLAN

    _, (res, dewarp), _ = calibrated
    plan = load_plan(REAL_PLAN)
    renderer = DRRRenderer(AttenuationVolume.from_ct(load_ct(real_ct_path)))
    center = isocenter_source_mm(carm)
    true = apply_update(plan_view_pose(plan, plan.implants[0].id, "inlet", geometry=carm),
                        (1.0, -1.0, 2.0, 3.0, -2.0, 2.0), center)
    settings = ShotSettings(ii_distortion=(0.05, 0, 0, 0, 0), s_distortion_px=S_PX, frame_size_px=(768, 576),
                            collimation="circle", collimation_radius_fraction=0.95, seed=5)
    shot = simulate_shot(renderer, true, carm, settings=settings)
    cv2.imwrite(str(tmp_path / "inlet.png"), shot.frame)
    save_geometry(res.geometry, tmp_path / "g.json")
    save_dewarp(tmp_path / "d.json", dewarp)
    start = apply_update(true, (4.0, -3.0, 3.0, 6.0, -5.0, 8.0), center)
    save_pose(Pose(start.matrix), tmp_path / "start.json")
    out = register_command(real_ct_path, tmp_path / "g.json", tmp_path / "inlet.png", tmp_path / "start.json",
                           tmp_path / "r.json", plan_path=REAL_PLAN, time_budget_s=0, dewarp_path=tmp_path / "d.json")
    points = np.stack([p for imp in plan.implants for p in (imp.entry_lps_mm, imp.apex_lps_mm)])
    got = Pose(np.asarray(out["T_source_from_patient"], float))
    assert out["success"], out["summary"]
    assert target_error_mm(start, true, points) > 8.0
    assert target_error_mm(got, true, points) < 1.5     # 0.87 mm here; without the dewarp: refused


def test_pin_dewarps_video_shots_as_register_does(calibrated, real_ct_path, tmp_path):
    from or_assist.cli.pin import pin_command
    from tests.conftest import REAL_PLAN

    _mismatched_shot_files(calibrated, tmp_path)
    with pytest.raises(InputError, match="shot.png.*dewarp was calibrated for 768x576"):
        pin_command(real_ct_path, tmp_path / "g.json", REAL_PLAN, "R1", [(tmp_path / "shot.png", tmp_path / "pose.json")],
                    tmp_path / "dev.json", dewarp_path=tmp_path / "d.json")
