"""C-arm calibration from simulated bead-phantom shots: geometry, distortion, ROI, bad input."""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from or_assist.core.carm_profiles import load_profile
from or_assist.core.ct.attenuation import mu_water_per_mm
from or_assist.core.geometry import CArmGeometry, load_geometry, project
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.errors import InputError, SchemaError
from or_assist.render.drr import DRRRenderer
from or_assist.render.implants import metal_mu_per_mm
from or_assist.sim.shots.simulate import simulate_shot
from or_assist.sim.shots.settings import ShotSettings
from or_assist.calibration.solve import calibrate, parse_roi
from or_assist.calibration.detect import detect_beads
from or_assist.cli.calibrate import calibrate_command
from or_assist.video.shot_files import read_shot_image as read_image
from or_assist.calibration.phantom import PHANTOM_DIR, load_bead_phantom
from or_assist.sim.calibration_phantom import bead_phantom_volume

K1 = 1.5                      # image-intensifier pincushion (normalised coordinates)
PP_OFFSET_PX = (6.3, -4.1)    # the central ray misses the detector centre a little


@dataclass
class Case:
    frame: np.ndarray
    truth: CArmGeometry        # of the frame's pixels
    pose: Pose                 # T_source_from_phantom


def _shot(renderer, phantom, profile: str, *, distortion=None, angle_deg=7.0, shift_mm=(3.0, -4.0),
          height_mm=0.0, axis=(0.0, 0.0, 1.0), frame=(1920, 1080), collimation="circle", seed=0,
          supersample=2) -> Case:
    geom = load_profile(profile).geometry_at(512)
    u0, v0 = geom.principal_point_px
    geom = geom.with_changes(principal_point_px=(u0 + PP_OFFSET_PX[0], v0 + PP_OFFSET_PX[1]))
    depth = geom.sid_mm - phantom.plate_to_detector_mm - height_mm
    pose = Pose.from_rotation_translation(rotation_about_axis(axis, np.radians(angle_deg)), [*shift_mm, depth])
    settings = ShotSettings(frame_size_px=frame, collimation=collimation, ii_distortion=distortion,
                            step_fraction=1.0, supersample=supersample, seed=seed)
    shot = simulate_shot(renderer, pose, geom, settings=settings)
    return Case(shot.frame, shot.video_geometry, pose)


@pytest.fixture(scope="module")
def phantom():
    return load_bead_phantom("bead_grid_two_plane")


@pytest.fixture(scope="module")
def volume(phantom):
    return bead_phantom_volume(phantom)


@pytest.fixture(scope="module")
def renderer(volume):
    return DRRRenderer(volume)


@pytest.fixture(scope="module")
def flat(renderer, phantom) -> Case:
    """Cios flat panel at 512 px, square field, 1920 x 1080 video with text and noise."""
    return _shot(renderer, phantom, "siemens_cios_fusion", collimation="square")


@pytest.fixture(scope="module")
def intensifier(renderer, phantom) -> Case:
    """ARCADIS image intensifier at 512 px with pincushion, round field, 1920 x 1080 video."""
    return _shot(renderer, phantom, "siemens_arcadis_varic", distortion=[K1, 0, 0, 0, 0], angle_deg=-20.0,
                 shift_mm=(-6.0, 5.0), seed=1)


@pytest.fixture(scope="module")
def flat_result(flat, phantom):
    return calibrate(flat.frame, phantom, source_to_isocenter_mm=530.0)


@pytest.fixture(scope="module")
def ii_result(intensifier, phantom):
    return calibrate(intensifier.frame, phantom, source_to_isocenter_mm=600.0)


def _check_geometry(result, truth: CArmGeometry, pp_tol_px: float = 1.5):
    g = result.geometry
    assert g.image_size_px == truth.image_size_px
    assert abs(g.sid_mm / truth.sid_mm - 1) < 0.01
    for est, true in zip(g.pixel_spacing_mm, truth.pixel_spacing_mm):
        assert abs(est / true - 1) < 0.01
    assert np.hypot(*np.subtract(g.principal_point_px, truth.principal_point_px)) < pp_tol_px
    rms, worst = result.reprojection_error_px
    assert rms <= 0.3 and worst <= 1.0
    assert not result.warnings


def _model_error_px(result, case: Case) -> np.ndarray:
    """Distance between where the calibration and the truth put each used bead."""
    im = result.images[0]
    return np.hypot(*(project(im.phantom_mm, im.pose, result.geometry)
                      - project(im.phantom_mm, case.pose, case.truth)).T)


# --------------------------------------------------------------------------- accuracy


def test_flat_panel_single_image(flat_result, flat):
    _check_geometry(flat_result, flat.truth)
    assert flat_result.geometry.distortion is None and flat_result.distortion_model == "none"
    assert flat_result.n_beads > 400
    assert _model_error_px(flat_result, flat).max() < 0.3
    im = flat_result.images[0]
    assert im.on_detector and im.tilt_deg < 0.5
    assert np.allclose(im.pose.translation_mm, flat.pose.translation_mm, atol=2.0)


def test_image_intensifier_distortion(ii_result, intensifier):
    _check_geometry(ii_result, intensifier.truth)
    g = ii_result.geometry
    assert g.distortion is not None and abs(g.distortion[0] / K1 - 1) < 0.1
    assert ii_result.max_distortion_px > 3.0
    assert _model_error_px(ii_result, intensifier).max() < 0.3
    # leaving the distortion out cannot explain the beads
    plain = calibrate(intensifier.frame, load_bead_phantom("bead_grid_two_plane"), source_to_isocenter_mm=600.0,
                      distortion="none")
    assert plain.reprojection_error_px[0] > 0.5


def test_detected_centroids_match_the_truth(intensifier, ii_result):
    det = detect_beads(intensifier.frame)
    im = ii_result.images[0]
    truth = project(im.phantom_mm, intensifier.pose, intensifier.truth)
    d = np.hypot(*(det.centres_px[None, :, :] - truth[:, None, :]).transpose(2, 0, 1)).min(axis=1)
    assert len(det) > 300 and np.sqrt(np.mean(d ** 2)) < 0.1 and d.max() < 0.3


def _synthetic_beads(touching: bool) -> np.ndarray:
    """A bright disc with a 9 x 9 grid of dark 8 px beads; optionally a 4 px bead touching one."""
    frame = np.zeros((600, 600), np.float32)
    cv2.circle(frame, (300, 300), 290, 200.0, -1)
    for u in range(140, 461, 40):
        for v in range(140, 461, 40):
            cv2.circle(frame, (u, v), 4, 10.0, -1)
    if touching:
        cv2.circle(frame, (306, 300), 2, 10.0, -1)
    return cv2.GaussianBlur(frame, (0, 0), 1.0)


def test_touching_beads_are_elongated():
    det = detect_beads(_synthetic_beads(True))
    assert len(det) == 81
    centre = np.argmin(np.hypot(*(det.centres_px - 300.0).T))
    others = np.delete(det.elongation, centre)
    assert det.elongation[centre] > 1.2 and others.max() < 1.05
    lone = np.delete(det.centres_px, centre, axis=0)
    assert np.abs(lone - np.round(lone)).max() < 0.02          # centroids of lone beads exact
    squeezed = detect_beads(cv2.resize(_synthetic_beads(False), (450, 600), interpolation=cv2.INTER_AREA))
    assert len(squeezed) == 81 and squeezed.elongation.max() < 1.05   # a common stretch cancels


@pytest.mark.parametrize("image, kwargs, source", [
    ("text", {}, "image"),
    (np.zeros((20, 20), np.uint8), {}, "image"),
    (np.zeros((64, 64, 2), np.uint8), {}, "image"),
    (np.full((64, 64), np.nan, np.float32), {}, "image"),
    (np.zeros((64, 64), np.uint8), dict(min_beads=0), "min_beads"),
    (np.zeros((64, 64), np.uint8), dict(max_bead_px=-3.0), "max_bead_px"),
])
def test_detect_beads_bad_input(image, kwargs, source):
    if source == "max_bead_px":
        image = _synthetic_beads(False)
    with pytest.raises(InputError) as err:
        detect_beads(image, **kwargs)
    assert err.value.source == source


def test_video_roi_crop(intensifier, phantom):
    roi = (560, 140, 800, 800)
    result = calibrate(intensifier.frame, phantom, source_to_isocenter_mm=600.0, roi="560,140,800,800")
    assert result.roi == roi
    _check_geometry(result, intensifier.truth.cropped(*roi))


def test_anisotropic_grabber_scaling(flat, phantom):
    sx, sy = 0.75, 1.0
    w, h = int(1920 * sx), int(1080 * sy)
    frame = cv2.resize(flat.frame, (w, h), interpolation=cv2.INTER_AREA)
    u0, v0 = flat.truth.principal_point_px
    px, py = flat.truth.pixel_spacing_mm
    truth = flat.truth.with_changes(image_size_px=(w, h), pixel_spacing_mm=(px / sx, py / sy),
                                    principal_point_px=((u0 + 0.5) * sx - 0.5, (v0 + 0.5) * sy - 0.5))
    result = calibrate(frame, phantom, source_to_isocenter_mm=530.0)
    _check_geometry(result, truth)
    assert abs(result.pixel_spacing_mm[0] / result.pixel_spacing_mm[1] - sy / sx) < 0.005


def test_several_images_with_one_unusable(flat, phantom):
    result = calibrate([flat.frame, np.zeros_like(flat.frame)], phantom, source_to_isocenter_mm=530.0,
                       names=["a.png", "blank.png"])
    assert abs(result.geometry.sid_mm / flat.truth.sid_mm - 1) < 0.01
    assert result.images[0].status == "ok"
    assert "blank" in result.images[1].status and result.images[1].n_used == 0
    assert any("not used" in w for w in result.warnings)


@pytest.fixture(scope="module")
def single_plane_cases():
    phantom = load_bead_phantom("bead_grid_single_plane")
    renderer = DRRRenderer(bead_phantom_volume(phantom))
    kw = dict(frame=None, supersample=1, distortion=[K1, 0, 0, 0, 0])
    flat_on_cover = _shot(renderer, phantom, "siemens_arcadis_varic", **kw)
    tilted = [_shot(renderer, phantom, "siemens_arcadis_varic", axis=ax, angle_deg=30.0, height_mm=230.0,
                    seed=k + 1, **kw) for k, ax in enumerate(([1, 0, 0], [0, 1, 0]))]
    return phantom, flat_on_cover, tilted


def test_single_plane_with_tilted_views(single_plane_cases):
    phantom, on_cover, tilted = single_plane_cases
    result = calibrate([on_cover.frame] + [c.frame for c in tilted], phantom, source_to_isocenter_mm=600.0)
    _check_geometry(result, on_cover.truth)
    assert [im.on_detector for im in result.images] == [True, False, False]
    assert all(abs(im.tilt_deg - 30.0) < 0.5 for im in result.images[1:])


def test_single_plane_without_tilts_is_refused(single_plane_cases):
    phantom, on_cover, tilted = single_plane_cases
    with pytest.raises(InputError, match="tilted") as err:
        calibrate(on_cover.frame, phantom, source_to_isocenter_mm=600.0)
    assert err.value.source == "images"
    with pytest.raises(InputError, match="lying on the detector cover"):
        calibrate([c.frame for c in tilted], phantom, source_to_isocenter_mm=600.0)


# --------------------------------------------------------------------------- bad images


def test_blank_image(phantom):
    with pytest.raises(InputError, match="blank") as err:
        calibrate(np.zeros((480, 640), np.uint8), phantom, source_to_isocenter_mm=600.0)
    assert err.value.source == "image 0"


def test_field_without_beads(phantom):
    frame = np.zeros((1080, 1920), np.float32)
    cv2.circle(frame, (960, 540), 500, 200.0, -1)
    frame = np.clip(frame + np.random.default_rng(0).normal(0.0, 3.0, frame.shape), 0, 255).astype(np.uint8)
    with pytest.raises(InputError, match="found 0 bead-like blobs") as err:
        detect_beads(frame)
    assert err.value.source == "image"
    with pytest.raises(InputError, match="found 0 bead-like blobs"):
        calibrate(frame, phantom, source_to_isocenter_mm=600.0, names=["empty.png"])


def test_mirrored_image(intensifier, phantom):
    with pytest.raises(InputError, match="mirrored"):
        calibrate(intensifier.frame[:, ::-1].copy(), phantom, source_to_isocenter_mm=600.0)


def test_too_small_a_part_of_the_phantom(intensifier, phantom):
    with pytest.raises(InputError, match="plane 'source_side'"):
        calibrate(intensifier.frame, phantom, source_to_isocenter_mm=600.0, roi=(760, 340, 300, 300))


@pytest.mark.parametrize("kwargs, source", [
    (dict(distortion="cubic"), "distortion"),
    (dict(source_to_isocenter_mm=-5.0), "source_to_isocenter_mm"),
    (dict(source_to_isocenter_mm=5000.0), "source_to_isocenter_mm"),
    (dict(roi=(0, 0, 4000, 100)), "roi"),
    (dict(roi="1,2,3"), "roi"),
    (dict(names=["a", "b"]), "names"),
])
def test_bad_arguments(flat, phantom, kwargs, source):
    args = dict(source_to_isocenter_mm=530.0)
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        calibrate(flat.frame, phantom, **args)
    assert err.value.source == source


def test_bad_image_lists(flat, phantom):
    with pytest.raises(InputError, match="same size"):
        calibrate([flat.frame, flat.frame[:500]], phantom, source_to_isocenter_mm=530.0)
    with pytest.raises(InputError):
        calibrate([], phantom, source_to_isocenter_mm=530.0)
    with pytest.raises(InputError, match="BeadPhantom"):
        calibrate(flat.frame, "bead_grid_two_plane", source_to_isocenter_mm=530.0)
    assert parse_roi(None) is None and parse_roi(" 1, 2, 40, 50") == (1, 2, 40, 50)


# --------------------------------------------------------------------------- phantom files


def test_shipped_phantoms():
    two = load_bead_phantom(PHANTOM_DIR / "bead_grid_two_plane.json")
    assert len(two.positions_mm) == 25 * 25 - 4 + 13 * 13 - 4
    assert set(two.plane_index.tolist()) == {0, 1} and not two.is_planar
    assert np.allclose(two.positions_mm[two.plane_index == 1, 2], -100.0)
    one = load_bead_phantom("bead_grid_single_plane")
    assert one.is_planar and np.all(one.diameters_mm == 2.0)


def test_phantom_volume_holds_the_beads(phantom, volume):
    vol = volume
    voxel_mm3 = float(np.prod(vol.spacing_mm))
    plate = 1.1 * mu_water_per_mm(60.0) * phantom.plate_thickness_mm * 2
    mu = vol.mu_per_mm.astype(np.float64)
    area_mm2 = vol.mu_per_mm.shape[1] * vol.mu_per_mm.shape[2] * vol.spacing_mm[0] * vol.spacing_mm[1]
    steel = metal_mu_per_mm("steel", 60.0)
    beads = np.sum(np.pi / 6 * phantom.diameters_mm ** 3) * (steel - 1.1 * mu_water_per_mm(60.0))
    assert abs((mu.sum() * voxel_mm3 - plate * area_mm2) / beads - 1) < 0.02


def _write(tmp_path, doc: dict, name="p.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("planes"), "planes"),
    (lambda d: d.update(schema="or_assist.bead_phantom/9"), "schema"),
    (lambda d: d["planes"][0].update(grid_size=[24, 25]), "grid_size"),
    (lambda d: d["planes"][0].update(missing=[[0, 0], [1, 0], [0, 1], [1, 1]]), "asymmetric"),
    (lambda d: d["planes"][0].update(missing=[[0, 0], [40, 0], [0, 1]]), "inside the grid"),
    (lambda d: d["planes"][0].update(bead_diameter_mm=8.0), "bead_diameter_mm"),
    (lambda d: d["planes"][1].update(bead_diameter_mm=2.0), "differ by a factor"),
    (lambda d: d["planes"][1].update(z_mm=50.0), "nearer the source"),
    (lambda d: d["planes"][0].update(z_mm=5.0), "z_mm = 0"),
    (lambda d: d.update(plate_to_detector_mm=-1), "plate_to_detector_mm"),
    (lambda d: d.update(material="lead"), "material"),
    (lambda d: d.update(plate_thickness_mm=-2.0), "plate_thickness_mm"),
])
def test_bad_phantom_files(tmp_path, change, field):
    doc = json.loads((PHANTOM_DIR / "bead_grid_two_plane.json").read_text())
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(SchemaError, match=field) as err:
        load_bead_phantom(path)
    assert str(path) in str(err.value)


def test_missing_phantom_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_bead_phantom(tmp_path / "nope.json")
    with pytest.raises(InputError, match="shipped phantoms: bead_grid_single_plane, bead_grid_two_plane"):
        load_bead_phantom("bead_grid_three_plane")


# --------------------------------------------------------------------------- command


def test_calibrate_command(tmp_path, intensifier):
    png = tmp_path / "phantom.png"
    cv2.imwrite(str(png), intensifier.frame)
    out = tmp_path / "geometry.json"
    text = calibrate_command([png], "bead_grid_two_plane", out, profile="siemens_arcadis_varic")
    g = load_geometry(out)
    assert abs(g.sid_mm / intensifier.truth.sid_mm - 1) < 0.01 and g.distortion is not None
    assert g.source_to_isocenter_mm == 600.0
    assert "reprojection error: rms" in text and "video scale" in text and "field of view: circle" in text
    assert "wrote" in text and "warning" not in text


def test_calibrate_command_bad_input(tmp_path):
    with pytest.raises(InputError, match="not found"):
        calibrate_command([tmp_path / "missing.png"], "bead_grid_two_plane", tmp_path / "g.json")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(bad)
    with pytest.raises(InputError, match="unknown C-arm profile"):
        cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((64, 64), np.uint8))
        calibrate_command([tmp_path / "ok.png"], "bead_grid_two_plane", tmp_path / "g.json", profile="nonesuch")
    assert not (tmp_path / "g.json").exists()
