"""Reading DICOM projection shots: pixels at full bit depth, orientation, frames, header, refusals."""

from __future__ import annotations

import io
import warnings
from datetime import datetime

import numpy as np
import pydicom
import pytest

from or_assist.core.carm import pose_from_carm_angles
from or_assist.core.geometry import CArmGeometry
from or_assist.dicom import DicomShot, read_dicom_shot, read_dicom_shots
from or_assist.errors import InputError
from or_assist.sim.dicom_carm import shot_dataset

GEOM = CArmGeometry((40, 30), 1000.0, (0.4, 0.3), (19.5, 14.5), 600.0)
POSE = pose_from_carm_angles(20.0, -10.0, [0.0, 0.0, 0.0], 600.0, "prone")


def _values(bits: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1 << bits, size=(30, 40)).astype(np.uint16)


def _bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("sop_class", ["xa", "rf", "dx", "sc"])
@pytest.mark.parametrize("bits", [8, 12, 16])
def test_stored_values_come_back_exactly_at_full_bit_depth(sop_class, bits, tmp_path):
    img = _values(bits)
    path = tmp_path / "shot.dcm"
    shot_dataset(img, GEOM, POSE, sop_class=sop_class, bits_stored=bits).save_as(path, enforce_file_format=True)
    shot = read_dicom_shot(path)
    assert isinstance(shot, DicomShot)
    assert shot.pixels.dtype == np.uint16 and shot.pixels.shape == (30, 40)
    assert shot.bits_stored == bits and shot.max_value == (1 << bits) - 1
    np.testing.assert_array_equal(shot.pixels, img)


def test_path_bytes_and_dataset_give_the_same_shot(tmp_path):
    ds = shot_dataset(_values(12), GEOM, POSE)
    path = tmp_path / "a.dcm"
    ds.save_as(path, enforce_file_format=True)
    a, b, c = read_dicom_shot(path), read_dicom_shot(path.read_bytes()), read_dicom_shot(ds)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.pixels, c.pixels)
    assert a.header.source == str(path) and b.header.source == "<bytes>" and c.header.source == "<dataset>"


def test_monochrome1_is_inverted_so_attenuation_stays_dark():
    img = _values(12)
    for sop_class in ("xa", "sc"):  # XA has PixelIntensityRelationshipSign -1, SC only MONOCHROME1
        shot = read_dicom_shot(shot_dataset(img, GEOM, POSE, sop_class=sop_class, photometric="MONOCHROME1"))
        np.testing.assert_array_equal(shot.pixels, img)
        assert shot.header.photometric == "MONOCHROME1"


def test_log_encoded_detector_signal_is_dark_where_attenuated():
    signal = np.full((30, 40), 0.9)
    signal[10:20, 10:30] = 0.05  # bone
    shot = read_dicom_shot(shot_dataset(signal, GEOM, POSE, bits_stored=12))
    assert shot.pixels[15, 20] < shot.pixels[2, 2] - 500  # ln(0.9 / 0.05) of the six decades in 12 bits
    assert shot.pixels.max() <= 4095


def test_signed_pixels_keep_their_order():
    img = _values(12).astype(np.int16) - 2048
    ds = shot_dataset(_values(12), GEOM, POSE)
    ds.PixelRepresentation = 1
    ds.PixelData = img.astype("<i2").tobytes()
    shot = read_dicom_shot(ds)
    np.testing.assert_array_equal(shot.pixels.astype(int), img.astype(int) + 2048)


def test_multiframe_last_kth_and_sequence():
    frames = [_values(12, seed=k) for k in range(4)]
    ds = shot_dataset(frames[-1], GEOM, POSE, frames=frames[:-1])
    data = _bytes(ds)
    last = read_dicom_shot(data)
    np.testing.assert_array_equal(last.pixels, frames[-1])
    assert (last.header.frame_count, last.header.frame_index) == (4, 3)
    np.testing.assert_array_equal(read_dicom_shot(data, frame=1).pixels, frames[1])
    np.testing.assert_array_equal(read_dicom_shot(data, frame=-4).pixels, frames[0])
    seq = read_dicom_shots(data)
    assert [s.header.frame_index for s in seq] == [0, 1, 2, 3]
    for s, f in zip(seq, frames):
        np.testing.assert_array_equal(s.pixels, f)
    with pytest.raises(InputError, match="frame 4 out of range: the object has 4 frame"):
        read_dicom_shot(data, frame=4)


def test_header_fields():
    when = datetime(2026, 3, 4, 5, 6, 7)
    ds = shot_dataset(_values(12), GEOM, POSE, patient_id="P-17", patient_name="Doe^Jane",
                      study_instance_uid="1.2.3.4", acquisition_datetime=when, kvp=75, exposure_mas=1.5,
                      extra={"TableHeight": "850", "TableTopLongitudinalPosition": -120.0, "IntensifierSize": "230",
                             "XRayTubeCurrent": "3", "ExposureTime": "10"})
    h = read_dicom_shot(ds).header
    assert (h.patient_id, h.patient_name, h.study_instance_uid, h.modality) == ("P-17", "Doe^Jane", "1.2.3.4", "XA")
    assert h.sop_class_uid == "1.2.840.10008.5.1.4.1.1.12.1" and h.sop_instance_uid == ds.SOPInstanceUID
    assert h.acquisition_datetime == when
    assert h.sid_mm == pytest.approx(1000.0) and h.source_to_patient_mm == pytest.approx(600.0)
    assert h.imager_pixel_spacing_mm == pytest.approx((0.4, 0.3))  # (px along u, py along v)
    assert h.has_geometry and (h.rows, h.columns) == (30, 40)
    assert h.patient_position == "HFP" and h.patient_orientation is not None
    assert h.kvp == pytest.approx(75) and h.exposure_mas == pytest.approx(1.5)
    assert h.table_height_mm == pytest.approx(850) and h.table_position_mm == pytest.approx((0, -120, 0))
    assert h.intensifier_size_mm == pytest.approx(230) and h.tube_current_ma == pytest.approx(3)
    assert h.field_of_view_shape == "RECTANGLE" and h.field_of_view_dimensions_mm == pytest.approx((9, 16))


def test_absent_fields_are_none():
    ds = shot_dataset(_values(12), GEOM, None, extra={k: None for k in (
        "DistanceSourceToDetector", "DistanceSourceToPatient", "ImagerPixelSpacing", "PatientPosition",
        "KVP", "ExposureInmAs", "AcquisitionDate", "AcquisitionTime", "FieldOfViewShape", "FieldOfViewDimensions")})
    h = read_dicom_shot(ds).header
    assert not h.has_geometry
    assert h.sid_mm is h.source_to_patient_mm is h.imager_pixel_spacing_mm is None
    assert h.primary_angle_deg is h.secondary_angle_deg is h.patient_orientation is None
    assert h.kvp is h.exposure_mas is h.acquisition_datetime is h.table_position_mm is None


@pytest.mark.parametrize("tag, value, match", [
    ("DistanceSourceToDetector", "-1000", "DistanceSourceToDetector must be > 0"),
    ("DistanceSourceToPatient", "1200", "DistanceSourceToPatient .* must be shorter"),
    ("ImagerPixelSpacing", ["0", "0.3"], "ImagerPixelSpacing must be > 0"),
    ("ImagerPixelSpacing", ["0.3"], "ImagerPixelSpacing must hold 2"),
    ("PositionerPrimaryAngle", "abc", "PositionerPrimaryAngle must be numeric"),
    ("DistanceSourceToDetector", "nan", "DistanceSourceToDetector must be a finite"),
])
def test_bad_geometry_values_name_the_tag(tag, value, match, tmp_path):
    ds = shot_dataset(_values(12), GEOM, POSE)
    path = tmp_path / "bad.dcm"
    with warnings.catch_warnings():  # pydicom warns when it is handed the bad value
        warnings.simplefilter("ignore")
        setattr(ds, tag, "99.125" if value == "abc" else value)
        ds.save_as(path, enforce_file_format=True)
    if value == "abc":  # pydicom will not store text in a DS element: patch the file's bytes
        path.write_bytes(path.read_bytes().replace(b"99.125", b"abcdef"))
    with pytest.raises(InputError, match=match) as err:
        read_dicom_shot(path)
    assert str(path) in str(err.value)


def test_enhanced_xa_tags_in_functional_groups():
    ds = shot_dataset(_values(12), GEOM, POSE, extra={"PositionerPrimaryAngle": None, "DistanceSourceToDetector": None})
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1.1"
    item, group = pydicom.Dataset(), pydicom.Dataset()
    item.PositionerPrimaryAngle, item.PositionerSecondaryAngle = "33", "-12"
    group.PositionerPositionSequence = [item]
    geom_item = pydicom.Dataset()
    geom_item.DistanceSourceToDetector = "1100"
    group.XRayGeometrySequence = [geom_item]
    ds.PerFrameFunctionalGroupsSequence = [group]
    h = read_dicom_shot(ds).header
    assert h.primary_angle_deg == pytest.approx(33) and h.sid_mm == pytest.approx(1100)


def test_a_ct_slice_is_refused_naming_its_modality(dicom_dir):
    path = sorted(dicom_dir.iterdir())[0]
    with pytest.raises(InputError, match=r"not a projection image: Modality CT, SOP class CT Image Storage") as err:
        read_dicom_shot(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("change, match", [
    ({"PixelData": None}, r"no pixel data \(PixelData 7FE0,0010 missing\)"),
    ({"Rows": None}, "missing Rows"),
    ({"BitsStored": None}, "missing BitsStored"),
    ({"PhotometricInterpretation": "RGB", "SamplesPerPixel": 3}, "colour image .*RGB"),
    ({"Modality": "MR", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.4"}, "not a projection image: Modality MR"),
    ({"Modality": "US", "SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "Modality US in a secondary capture"),
])
def test_what_is_not_a_grey_projection_image_is_refused(change, match):
    ds = shot_dataset(_values(12), GEOM, POSE, extra=change)
    with pytest.raises(InputError, match=match):
        read_dicom_shot(ds, name="x.dcm")


def test_not_dicom_empty_and_truncated_files(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(np.random.default_rng(1).bytes(3000))
    with pytest.raises(InputError, match="junk.dcm: not a DICOM file"):
        read_dicom_shot(junk)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty.dcm: empty file \(0 bytes\)"):
        read_dicom_shot(empty)
    with pytest.raises(InputError, match="DICOM file not found"):
        read_dicom_shot(tmp_path / "missing.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(_bytes(shot_dataset(_values(12), GEOM, POSE))[:-500])
    with pytest.raises(InputError, match="cut.dcm: .*(truncated|damaged)"):
        read_dicom_shot(cut)


@pytest.mark.parametrize("shutter", [("circle", (20.0, 14.0), 10.0), ("rectangle", (5, 30, 3, 20))])
def test_display_shutters_blank_the_collimated_surround(shutter):
    img = _values(12) | 1  # no zero inside
    shot = read_dicom_shot(shot_dataset(img, GEOM, POSE, shutter=shutter))
    v, u = np.mgrid[0:30, 0:40]
    if shutter[0] == "circle":
        inside = (u - 20) ** 2 + (v - 14) ** 2 <= 100
        assert shot.header.shutter_shape == ("CIRCULAR",)
        assert shot.header.circular_shutter_center_px == (20.0, 14.0)
    else:
        inside = (u >= 5) & (u <= 30) & (v >= 3) & (v <= 20)
        assert shot.header.rectangular_shutter_px == (5, 30, 3, 20)
    np.testing.assert_array_equal(shot.pixels[inside], img[inside])
    assert not shot.pixels[~inside].any()


def test_a_circular_shutter_without_its_radius_is_named():
    ds = shot_dataset(_values(12), GEOM, POSE, shutter=("circle", (20.0, 14.0), 10.0),
                      extra={"RadiusOfCircularShutter": None})
    with pytest.raises(InputError, match="ShutterShape CIRCULAR needs CenterOfCircularShutter and Radius"):
        read_dicom_shot(ds)
