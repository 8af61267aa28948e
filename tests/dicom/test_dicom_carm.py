"""The simulated C-arm's DICOM writer: valid objects whose header gives back the geometry and pose."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from or_assist.core.carm import pose_from_carm_angles
from or_assist.core.ct.volume import CTVolume
from or_assist.core.geometry import CArmGeometry, project
from or_assist.dicom import geometry_from_header, read_dicom_shot, start_pose_from_header
from or_assist.errors import InputError
from or_assist.sim.dicom_carm import orientation_codes, shot_dataset, write_shot_dicom
from or_assist.sim.shots.settings import ShotSettings
from or_assist.sim.shots.simulate import simulate_shot
from or_assist.video.sources.base import Frame

ISO = np.array([0.0, 0.0, 0.0])


def _cube_ct() -> CTVolume:
    """A 60 mm water cube with a dense bead off-centre, 2 mm voxels."""
    n, s = 40, 2.0
    origin = -s * (n - 1) / 2 * np.ones(3)
    hu = np.full((n, n, n), -1000.0, np.float32)
    k, j, i = np.mgrid[0:n, 0:n, 0:n]
    lps = np.stack([i, j, k], axis=-1) * s + origin
    hu[np.all(np.abs(lps) <= 30.0, axis=-1)] = 0.0
    hu[np.linalg.norm(lps - [12.0, 0.0, 8.0], axis=-1) <= 4.0] = 3000.0
    return CTVolume(hu, origin, (s,) * 3, np.eye(3), source="cube")


def test_a_simulated_shot_round_trips_with_its_geometry_and_pose(tmp_path):
    geom = CArmGeometry((96, 80), 1000.0, (0.8, 0.8), (47.5, 39.5), 600.0)
    pose = pose_from_carm_angles(20.0, -15.0, ISO, 600.0, "prone")
    shot = simulate_shot(_cube_ct(), pose, geom, settings=ShotSettings(i0_photons_per_px=1e6, seed=3))
    path = write_shot_dicom(tmp_path / "shot.dcm", shot.image, shot.geometry, shot.pose, patient_id="P1",
                            bits_stored=12)
    ds = pydicom.dcmread(path)
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    read = read_dicom_shot(path)
    assert read.bits_stored == 12 and read.pixels.max() <= 4095 and len(np.unique(read.pixels)) > 256
    assert read.header.patient_id == "P1" and read.header.modality == "XA"
    # the header gives back the geometry and the pose
    g = geometry_from_header(read.header, read.pixels.shape)
    assert g.sid_mm == pytest.approx(1000) and g.pixel_spacing_mm == pytest.approx((0.8, 0.8))
    assert g.source_to_isocenter_mm == pytest.approx(600)
    start = start_pose_from_header(read.header, ISO, g)
    assert start.allclose(pose, atol_mm=1e-2, atol_rot=1e-5)
    # and the bead is dark where the geometry projects it (more attenuation darker)
    u, v = np.round(project(np.array([[12.0, 0.0, 8.0]]), start, g)[0]).astype(int)
    assert read.pixels[v, u] < np.median(read.pixels) - 100


def test_uids_identity_and_angles():
    geom = CArmGeometry((8, 6), 1000.0, (0.3, 0.3), (3.5, 2.5), 600.0)
    img = np.zeros((6, 8), np.uint16)
    a = shot_dataset(img, geom, None, study_instance_uid="1.2.3", angles_deg=(30.0, 20.0), patient_position="supine")
    b = shot_dataset(img, geom, None, study_instance_uid="1.2.3")
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.StudyInstanceUID == b.StudyInstanceUID == "1.2.3"
    assert a.SeriesInstanceUID != b.SeriesInstanceUID
    assert float(a.PositionerPrimaryAngle) == 30.0 and float(a.PositionerSecondaryAngle) == 20.0
    assert a.PatientPosition == "HFS" and "PositionerPrimaryAngle" not in b
    assert [float(x) for x in a.ImagerPixelSpacing] == [0.3, 0.3]


def test_orientation_codes():
    assert orientation_codes([1, 0, 0]) == "L" and orientation_codes([0, 0, -1]) == "F"
    assert orientation_codes([0.3, -0.9, 0.1]) == "AL"


@pytest.mark.parametrize("kw, match", [
    (dict(sop_class="ct"), "sop_class"), (dict(bits_stored=10), "bits_stored"),
    (dict(photometric="RGB"), "photometric"), (dict(sop_class="dx", frames=[np.zeros((6, 8))]), "frames"),
])
def test_bad_arguments(kw, match):
    geom = CArmGeometry((8, 6), 1000.0, (0.3, 0.3), (3.5, 2.5), 600.0)
    with pytest.raises(InputError, match=match):
        shot_dataset(np.zeros((6, 8)), geom, **kw)
    with pytest.raises(InputError, match="image"):
        shot_dataset(np.zeros((5, 8)), geom)


def test_frame_carries_a_dicom_header():
    geom = CArmGeometry((8, 6), 1000.0, (0.3, 0.3), (3.5, 2.5), 600.0)
    header = read_dicom_shot(shot_dataset(np.zeros((6, 8), np.uint16), geom)).header
    frame = Frame(image=np.zeros((6, 8), np.uint8), index=0, timestamp_s=0.0, dicom=header)
    assert frame.dicom.sid_mm == pytest.approx(1000)
    assert Frame(image=np.zeros((6, 8), np.uint8), index=0, timestamp_s=0.0).dicom is None
