"""Geometry and start pose from a DICOM header: the positioner-angle convention, checks."""

from __future__ import annotations

import numpy as np
import pytest

from or_assist.core.carm import pose_from_carm_angles
from or_assist.core.geometry import CArmGeometry
from or_assist.dicom import (DEFAULT_ISOCENTER_FRACTION, DicomShotHeader, beam_from_positioner_angles,
                             compare_geometry, geometry_from_header, missing_geometry_reason,
                             positioner_angles_from_beam, start_pose_from_header)
from or_assist.errors import InputError

ISO = [10.0, 40.0, -300.0]


def _header(**kw) -> DicomShotHeader:
    base = dict(source="s.dcm", sid_mm=1020.0, source_to_patient_mm=530.0, imager_pixel_spacing_mm=(0.2, 0.25),
                rows=800, columns=1000)
    base.update(kw)
    return DicomShotHeader(**base)


def _wrap(angle_deg: float) -> float:
    """An angle in (-180, 180]."""
    a = (angle_deg + 180.0) % 360.0 - 180.0
    return 180.0 if a == -180.0 else a


def test_geometry_from_header():
    g = geometry_from_header(_header(), (800, 1000))
    assert g.image_size_px == (1000, 800) and g.sid_mm == pytest.approx(1020)
    assert g.pixel_spacing_mm == pytest.approx((0.2, 0.25)) and g.source_to_isocenter_mm == pytest.approx(530)
    assert g.principal_point_px == pytest.approx((499.5, 399.5))
    # a half-size image: twice the spacing, the same field in mm
    half = geometry_from_header(_header(), (400, 500))
    assert half.pixel_spacing_mm == pytest.approx((0.4, 0.5))
    assert half.detector_size_mm == pytest.approx(g.detector_size_mm)
    # no DistanceSourceToPatient: the documented fraction of the SID
    assert geometry_from_header(_header(source_to_patient_mm=None), (800, 1000)).source_to_isocenter_mm == \
        pytest.approx(DEFAULT_ISOCENTER_FRACTION * 1020)


def test_no_geometry_says_which_tags_are_missing():
    h = _header(sid_mm=None, imager_pixel_spacing_mm=None)
    assert geometry_from_header(h, (800, 1000)) is None
    assert missing_geometry_reason(h) == ("s.dcm: no C-arm geometry in the DICOM header "
                                          "(missing DistanceSourceToDetector and ImagerPixelSpacing)")
    assert missing_geometry_reason(_header()) is None
    with pytest.raises(InputError, match="image_shape"):
        geometry_from_header(_header(), (0, 10))


def test_compare_geometry_in_mm():
    dicom = geometry_from_header(_header(), (800, 1000))
    # the same C-arm calibrated on 1920x1080 video: the detector's 200 mm height over 1080 lines
    video = CArmGeometry((1920, 1080), 1010.0, (200 / 1080, 200 / 1080), (959.5, 539.5), 525.0)
    assert compare_geometry(dicom, video) == []
    bad = video.with_changes(sid_mm=1200.0, source_to_isocenter_mm=500.0,
                             pixel_spacing_mm=(300 / 1080, 300 / 1080))
    warnings = compare_geometry(dicom, bad)
    assert len(warnings) == 3
    assert "source-detector distance (1020 mm)" in warnings[0] and "(1200 mm)" in warnings[0]
    assert "field (200 mm across" in warnings[1] and "magnification" in warnings[2]


@pytest.mark.parametrize("orbital, tilt", [(0, 0), (30, 20), (-45, -25), (90, 0), (-90, 10), (15, 42)])
def test_supine_positioner_angles_are_orbital_and_tilt(orbital, tilt):
    beam = beam_from_positioner_angles(orbital, tilt, "HFS")
    ref = pose_from_carm_angles(orbital, tilt, ISO, 600.0, "supine").beam_direction_lps
    np.testing.assert_allclose(beam, ref, atol=1e-12)


@pytest.mark.parametrize("orbital, tilt", [(0, 0), (30, 20), (-45, -25), (90, 0), (15, -42)])
def test_prone_patient_tube_under_the_table_is_primary_180(orbital, tilt):
    primary = 180.0 - orbital  # DICOM angles are relative to the patient
    beam = beam_from_positioner_angles(primary, tilt, "HFP")
    ref = pose_from_carm_angles(orbital, tilt, ISO, 600.0, "prone").beam_direction_lps
    np.testing.assert_allclose(beam, ref, atol=1e-12)
    assert positioner_angles_from_beam(ref) == pytest.approx((_wrap(primary), tilt), abs=1e-9)


def test_named_directions():
    np.testing.assert_allclose(beam_from_positioner_angles(0, 0), [0, -1, 0], atol=1e-12)     # detector anterior
    np.testing.assert_allclose(beam_from_positioner_angles(90, 0), [1, 0, 0], atol=1e-12)     # LAO 90: left
    np.testing.assert_allclose(beam_from_positioner_angles(-90, 0), [-1, 0, 0], atol=1e-12)   # RAO 90: right
    np.testing.assert_allclose(beam_from_positioner_angles(0, 90), [0, 0, 1], atol=1e-12)     # cranial
    np.testing.assert_allclose(beam_from_positioner_angles(180, 0), [0, 1, 0], atol=1e-12)    # posterior


@pytest.mark.parametrize("position", ["HFS", "HFP", "FFS", "FFP"])
def test_table_referenced_angles_round_trip(position):
    for primary, secondary in [(0, 0), (35, -20), (-120, 30)]:
        beam = beam_from_positioner_angles(primary, secondary, position, reference="table")
        assert positioner_angles_from_beam(beam, position, reference="table") == \
            pytest.approx((primary, secondary), abs=1e-9)
    # head-first prone: the table's "AP" (detector to the ceiling) is the patient's posterior
    if position == "HFP":
        np.testing.assert_allclose(beam_from_positioner_angles(0, 0, position, reference="table"), [0, 1, 0],
                                   atol=1e-12)
    with pytest.raises(InputError, match="patient_position"):
        beam_from_positioner_angles(0, 0, None, reference="table")


def test_start_pose_from_header_matches_the_carm_pose():
    geom = geometry_from_header(_header(), (800, 1000))
    truth = pose_from_carm_angles(25.0, -15.0, ISO, 530.0, "prone")
    primary, secondary = positioner_angles_from_beam(truth.beam_direction_lps)
    pose = start_pose_from_header(_header(primary_angle_deg=primary, secondary_angle_deg=secondary,
                                          patient_position="HFP"), ISO, geom)
    assert pose.allclose(truth, atol_mm=1e-6, atol_rot=1e-9)
    # PatientOrientation with the head down the rows: the image is upside down, rolled 180 deg
    flipped = start_pose_from_header(_header(primary_angle_deg=primary, secondary_angle_deg=secondary,
                                             patient_orientation=("R", "H")), ISO, geom)
    np.testing.assert_allclose(flipped.beam_direction_lps, truth.beam_direction_lps, atol=1e-12)
    np.testing.assert_allclose(flipped.rotation[1], -truth.rotation[1], atol=1e-9)
    assert start_pose_from_header(_header(), ISO, geom) is None
