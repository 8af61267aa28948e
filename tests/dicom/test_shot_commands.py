"""DICOM shots read everywhere a shot is read: the shot reader, an image folder source,
``or-assist register`` / ``pin`` / ``calibrate`` with the geometry (and start) from the header."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from or_assist.cli import main
from or_assist.core.carm import pose_from_carm_angles
from or_assist.core.geometry import CArmGeometry, save_geometry
from or_assist.core.plan import load_plan
from or_assist.core.pose import rotation_angle_deg, save_pose
from or_assist.errors import InputError
from or_assist.sim.dicom_carm import simulated_shot_dataset, write_shot_dicom
from or_assist.video.shot_files import read_shot_header, read_shot_image
from or_assist.video.sources.folder import ImageFolderSource

GEOM = CArmGeometry((40, 30), 1000.0, (0.4, 0.4), (19.5, 14.5), 600.0)
POSE = pose_from_carm_angles(10.0, 5.0, [0.0, 0.0, 0.0], 600.0, "prone")


def _values(bits: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << bits, size=(30, 40)).astype(np.uint16)


def _stretched(values: np.ndarray) -> np.ndarray:
    v = values.astype(float)
    return (v - v.min()) / (v.max() - v.min()) * 65535


def test_read_shot_image_stretches_the_stored_values_keeping_order(tmp_path):
    v12 = _values(12)
    write_shot_dicom(tmp_path / "a.dcm", v12, GEOM, POSE, bits_stored=12)
    img = read_shot_image(tmp_path / "a.dcm")
    assert img.dtype == np.uint16 and img.shape == (30, 40)
    np.testing.assert_allclose(img, _stretched(v12), atol=0.5)
    v8 = _values(8)
    noext = tmp_path / "IM0001"  # a DICOM file without an extension
    write_shot_dicom(noext, v8, GEOM, POSE, bits_stored=8, photometric="MONOCHROME1")
    img8 = read_shot_image(noext)
    assert img8.dtype == np.uint16
    np.testing.assert_allclose(img8, _stretched(v8), atol=0.5)  # MONOCHROME1 comes back the right way up
    header = read_shot_header(noext)
    assert header.sid_mm == pytest.approx(1000) and header.imager_pixel_spacing_mm == pytest.approx((0.4, 0.4))
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), v8.astype(np.uint8))
    assert read_shot_header(png) is None


def test_a_ct_slice_is_not_a_shot(dicom_dir):
    ct = sorted(dicom_dir.iterdir())[0]
    with pytest.raises(InputError, match="not a projection image: Modality CT"):
        read_shot_image(ct)


def test_folder_source_reads_dicom_shots_with_their_header(tmp_path, dicom_dir, caplog):
    folder = tmp_path / "shots"
    folder.mkdir()
    write_shot_dicom(folder / "1.dcm", _values(12, 1), GEOM, POSE, bits_stored=12, patient_id="P1")
    cv2.imwrite(str(folder / "2.png"), _values(8, 2).astype(np.uint8))
    write_shot_dicom(folder / "3", _values(8, 3), GEOM, POSE, bits_stored=8, patient_id="P1")
    (folder / "4.dcm").write_bytes(sorted(dicom_dir.iterdir())[0].read_bytes())  # a CT slice: skipped
    (folder / "notes.txt").write_text("not a shot")
    with caplog.at_level(logging.WARNING):
        with ImageFolderSource(folder, realtime=False) as src:
            frames = []
            while (f := src.read()) is not None:
                frames.append(f)
    assert [f.exposure for f in frames] == [0, 1, 2]
    assert frames[0].dicom.patient_id == "P1" and frames[0].dicom.sid_mm == pytest.approx(1000)
    assert frames[1].dicom is None and frames[2].dicom.patient_id == "P1"
    assert all(f.image.dtype == np.uint8 and f.image.shape == (30, 40) for f in frames)
    np.testing.assert_array_equal(frames[2].image, (np.round(_stretched(_values(8, 3))).astype(np.uint16) >> 8))
    assert "4.dcm: not a projection image: Modality CT" in caplog.text


@pytest.fixture(scope="module")
def sample_shot(tmp_path_factory):
    """The sample case and a simulated lateral shot written as DICOM (12 bits, geometry tags)."""
    from or_assist.core.carm_profiles import load_profile
    from or_assist.core.view_poses import plan_view_pose
    from or_assist.sim.sample import build_sample_data
    from or_assist.sim.scenario.spec import load_sample_case
    from or_assist.sim.shots.settings import ShotSettings
    from or_assist.sim.shots.simulate import simulate_shot

    root = tmp_path_factory.mktemp("dicom_register")
    paths = build_sample_data()
    ct, plan, _ = load_sample_case()
    geometry = load_profile("siemens_cios_fusion").geometry_at(128)
    implant = plan.implants[0]
    pose = plan_view_pose(plan, implant.id, "lateral", geometry=geometry)
    shot = simulate_shot(ct, pose, geometry, settings=ShotSettings(seed=1))
    from or_assist.dicom.header_geometry import positioner_angles_from_beam

    primary, secondary = positioner_angles_from_beam(pose.beam_direction_lps)
    # the C-arm's reported angles are a few degrees off the truth: the registration must close the gap
    dcm = root / "shot.dcm"
    simulated_shot_dataset(shot, bits_stored=12, angles_deg=(primary + 3.0, secondary - 2.0)).save_as(
        dcm, enforce_file_format=True)
    save_geometry(geometry, root / "g.json")
    return dict(root=root, ct=paths["ct"], plan=paths["plan"], implant=implant.id, dcm=dcm, pose=pose,
                geometry=geometry)


def test_register_a_dicom_shot_with_the_header_geometry_and_start(sample_shot, capsys):
    s = sample_shot
    out = s["root"] / "reg.json"
    assert main(["register", "--ct", str(s["ct"]), "--image", str(s["dcm"]), "--plan", str(s["plan"]),
                 "--out", str(out), "--time-budget-s", "0"]) == 0  # no budget: a loaded test machine is slow
    doc = json.loads(out.read_text())
    assert doc["success"], capsys.readouterr().out
    est = np.asarray(doc["T_source_from_patient"])
    truth = s["pose"].matrix
    from or_assist.dicom import geometry_from_header, read_dicom_shot, start_pose_from_header

    shot = read_dicom_shot(s["dcm"])
    iso = np.mean([p for imp in load_plan(s["plan"]).implants for p in (imp.entry_lps_mm, imp.apex_lps_mm)], axis=0)
    start = start_pose_from_header(shot.header, iso, geometry_from_header(shot.header, shot.pixels.shape))
    assert rotation_angle_deg(start.rotation, truth[:3, :3]) > 3.0  # the header's start is off ...
    assert rotation_angle_deg(est[:3, :3], truth[:3, :3]) < 1.0  # ... the registration is not
    assert np.linalg.norm(est[:3, 3] - truth[:3, 3]) < 5.0
    assert "registered in" in capsys.readouterr().out


def test_register_warns_when_the_header_and_the_geometry_file_disagree(sample_shot, capsys):
    s = sample_shot
    other = s["geometry"].with_changes(sid_mm=1300.0)
    save_geometry(other, s["root"] / "other.json")
    save_pose(s["pose"], s["root"] / "init.json")
    out = s["root"] / "reg2.json"
    assert main(["register", "--ct", str(s["ct"]), "--geometry", str(s["root"] / "other.json"), "--image",
                 str(s["dcm"]), "--init", str(s["root"] / "init.json"), "--out", str(out),
                 "--time-budget-s", "1"]) == 0
    text = capsys.readouterr().out
    assert "warning: the DICOM header's source-detector distance (1020 mm) differs from the calibrated one " \
           "(1300 mm)" in text


def test_register_without_geometry_or_start_says_what_is_missing(sample_shot, tmp_path, capsys):
    s = sample_shot
    bare = write_shot_dicom(tmp_path / "bare.dcm", _values(12), GEOM, None, extra={"DistanceSourceToDetector": None})
    assert main(["register", "--ct", str(s["ct"]), "--image", str(bare), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--geometry: no geometry" in err[0] and "missing DistanceSourceToDetector" in err[0]
    noangles = write_shot_dicom(tmp_path / "noangles.dcm", _values(12), GEOM, None)
    assert main(["register", "--ct", str(s["ct"]), "--image", str(noangles), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init: no starting pose" in err[0] and "PositionerPrimaryAngle" in err[0]


def test_pin_takes_the_geometry_from_a_dicom_shot(sample_shot, capsys):
    s = sample_shot
    save_pose(s["pose"], s["root"] / "pose.json")
    out = s["root"] / "dev.json"
    code = main(["pin", "--ct", str(s["ct"]), "--plan", str(s["plan"]), "--implant", s["implant"],
                 "--shot", str(s["dcm"]), str(s["root"] / "pose.json"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert len(doc["shots"]) == 1


def test_calibrate_reads_dicom_images_first(tmp_path):
    from or_assist.cli.calibrate import calibrate_command

    with pytest.raises(InputError, match="no_such_phantom"):  # the DICOM image reads; then the phantom fails
        calibrate_command([write_shot_dicom(tmp_path / "c.dcm", _values(12), GEOM, POSE)], "no_such_phantom",
                          tmp_path / "g.json")


def test_calibrate_a_dicom_bead_phantom_shot_with_the_header_as_nominal(tmp_path):
    """The detector image of a bead phantom as DICOM: calibrated without a profile, the
    source-isocentre distance comes from the header, and a wrong header SID is a warning."""
    from or_assist.calibration.phantom import load_bead_phantom
    from or_assist.cli.calibrate import calibrate_command
    from or_assist.core.carm_profiles import load_profile
    from or_assist.core.geometry import load_geometry
    from or_assist.core.pose import Pose, rotation_about_axis
    from or_assist.render.drr import DRRRenderer
    from or_assist.sim.calibration_phantom import bead_phantom_volume
    from or_assist.sim.shots.settings import ShotSettings
    from or_assist.sim.shots.simulate import simulate_shot

    phantom = load_bead_phantom("bead_grid_two_plane")
    geom = load_profile("siemens_cios_fusion").geometry_at(512)
    depth = geom.sid_mm - phantom.plate_to_detector_mm
    pose = Pose.from_rotation_translation(rotation_about_axis((0, 0, 1), np.radians(7.0)), [3.0, -4.0, depth])
    shot = simulate_shot(DRRRenderer(bead_phantom_volume(phantom)), pose, geom,
                         settings=ShotSettings(collimation="square", step_fraction=1.0, supersample=1, seed=0))
    good = write_shot_dicom(tmp_path / "good.dcm", shot.image, geom, None, bits_stored=12)
    text = calibrate_command([good], "bead_grid_two_plane", tmp_path / "g.json")
    g = load_geometry(tmp_path / "g.json")
    assert abs(g.sid_mm / geom.sid_mm - 1) < 0.01 and g.image_size_px == geom.image_size_px
    assert g.source_to_isocenter_mm == pytest.approx(geom.source_to_isocenter_mm)  # DistanceSourceToPatient
    assert "warning: the DICOM" not in text
    wrong = write_shot_dicom(tmp_path / "wrong.dcm", shot.image, geom.with_changes(sid_mm=1300.0), None,
                             bits_stored=12)
    text = calibrate_command([wrong], "bead_grid_two_plane", tmp_path / "g2.json")
    assert "warning: the DICOM header's source-detector distance (1300 mm) differs from the calibrated one" in text
