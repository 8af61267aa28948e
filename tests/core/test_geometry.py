"""Pose, intrinsics, projection and JSON I/O (CONVENTIONS.md)."""

import json

import numpy as np
import pytest

from or_assist.core.geometry import (
    CArmGeometry,
    backproject,
    load_geometry,
    pixels_to_mm_at_depth,
    project,
    project_with_depth,
    save_geometry,
    distort_normalized,
    undistort_normalized,
)
from or_assist.core.pose import Pose, load_pose, rotation_about_axis, rotation_angle_deg, save_pose
from or_assist.errors import InputError, SchemaError

WORKED_T = [[1, 0, 0, 0], [0, 0, -1, 260], [0, 1, 0, 760], [0, 0, 0, 1]]


@pytest.fixture
def worked():
    pose = Pose(np.array(WORKED_T, dtype=float))
    geom = CArmGeometry((1024, 1024), 1000.0, (0.3, 0.3), (512.0, 512.0), 600.0)
    return pose, geom


def test_conventions_worked_example(worked):
    pose, geom = worked
    pts = np.array([[0, -160, 260], [10, -160, 260], [0, -160, 280], [10, -60, 260]], float)
    expected = np.array([[512, 512], [567.556, 512], [512, 400.889], [559.619, 512]])
    np.testing.assert_allclose(project(pts, pose, geom), expected, atol=1e-3)
    # the isocentre is 600 mm from the source along +z
    _, depth = project_with_depth(pts[0], pose, geom)
    assert depth == pytest.approx(600.0)
    np.testing.assert_allclose(pose.source_position_lps_mm, [0, -760, 260])
    np.testing.assert_allclose(geom.K, [[1000 / 0.3, 0, 512], [0, 1000 / 0.3, 512], [0, 0, 1]])


def test_pose_algebra_roundtrip():
    rng = np.random.default_rng(1)
    for _ in range(20):
        r = rotation_about_axis(rng.normal(size=3), rng.uniform(-np.pi, np.pi))
        a = Pose.from_rotation_translation(r, rng.normal(size=3) * 100)
        b = Pose.from_rotation_translation(rotation_about_axis(rng.normal(size=3), 0.3), [1, 2, 3])
        p = rng.normal(size=(5, 3)) * 50
        np.testing.assert_allclose(a.compose(b).apply(p), a.apply(b.apply(p)), atol=1e-9)
        np.testing.assert_allclose(a.inverse().apply(a.apply(p)), p, atol=1e-9)
        assert a.compose(a.inverse()).allclose(Pose.identity())
        assert (a @ b).allclose(a.compose(b))
        np.testing.assert_allclose(a.apply(a.source_position_lps_mm * 0 + a.inverse().translation_mm), 0, atol=1e-9)


def test_rotation_angle():
    r = rotation_about_axis([0, 0, 1], np.radians(30))
    assert rotation_angle_deg(r) == pytest.approx(30)
    assert rotation_angle_deg(r, r) == pytest.approx(0, abs=1e-6)


def test_backproject_inverts_project(worked):
    pose, geom = worked
    geom = geom.with_changes(distortion=[-0.2, 0.05, 0.001, -0.002, 0.0])
    rng = np.random.default_rng(0)
    pts = rng.uniform([-80, -250, 180], [80, -80, 340], size=(50, 3))
    uv, depth = project_with_depth(pts, pose, geom)
    origin, dirs = backproject(uv, pose, geom)
    # the point lies on its ray
    along = np.einsum("ij,ij->i", pts - origin, dirs)
    closest = origin + along[:, None] * dirs
    np.testing.assert_allclose(closest, pts, atol=1e-6)


def test_distortion_inverse():
    k = np.array([-0.25, 0.08, 0.002, -0.001, 0.01])
    xy = np.random.default_rng(3).uniform(-0.18, 0.18, size=(2, 200))
    xd, yd = distort_normalized(xy[0], xy[1], k)
    x, y = undistort_normalized(xd, yd, k)
    np.testing.assert_allclose(np.stack([x, y]), xy, atol=1e-10)


def test_points_behind_source_are_nan(worked):
    pose, geom = worked
    uv = project(np.array([[0, -900, 260.0]]), pose, geom)
    assert np.all(np.isnan(uv))


def test_mm_at_depth(worked):
    _, geom = worked
    assert pixels_to_mm_at_depth(100, 600, geom) == pytest.approx(100 * 0.3 * 0.6)


def test_downsampled_geometry_is_consistent(worked):
    pose, geom = worked
    g2 = geom.downsampled(4)
    pts = np.array([[12.0, -150, 270], [-40, -100, 300]])
    uv = project(pts, pose, geom)
    uv2 = project(pts, pose, g2)
    np.testing.assert_allclose(uv2, (uv + 0.5) / 4 - 0.5, atol=1e-9)
    c = geom.cropped(100, 200, 300, 300)
    np.testing.assert_allclose(project(pts, pose, c), uv - [100, 200], atol=1e-9)
    # resampling to any grid: the field's outer pixel edges stay put
    r = geom.resampled(333, 250)
    sx, sy = 333 / geom.width, 250 / geom.height
    np.testing.assert_allclose(project(pts, pose, r), (uv + 0.5) * [sx, sy] - 0.5, atol=1e-9)
    np.testing.assert_allclose(np.array(r.image_size_px) * r.pixel_spacing_mm,
                               np.array(geom.image_size_px) * geom.pixel_spacing_mm)
    for bad in ((0, 10), (10, 2.5), (True, 10)):
        with pytest.raises(InputError, match="width|height"):
            geom.resampled(*bad)


def test_pose_and_geometry_json_roundtrip(tmp_path, worked):
    pose, geom = worked
    save_pose(pose, tmp_path / "p.json")
    assert load_pose(tmp_path / "p.json") == pose
    for g in (geom, geom.with_changes(distortion=[0.1, 0, 0, 0, 0])):
        save_geometry(g, tmp_path / "g.json")
        assert load_geometry(tmp_path / "g.json") == g
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["schema"] == "or_assist.geometry/1" and doc["image_size"] == [1024, 1024]


def test_registration_file_reads_as_pose(tmp_path, worked):
    pose, _ = worked
    doc = dict(pose.to_dict(), schema="or_assist.registration/1", success=True,
               similarity=0.9, metric="gc", seconds=1.0)
    (tmp_path / "r.json").write_text(json.dumps(doc))
    assert load_pose(tmp_path / "r.json") == pose


@pytest.mark.parametrize("matrix, msg", [
    ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float("nan")], [0, 0, 0, 1]], "NaN"),
    ([[1, 0.1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "orthonormal"),
    ([[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "reflection"),
    ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], "4 x 4"),
    ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], "last row"),
])
def test_bad_pose_matrix(matrix, msg):
    with pytest.raises(InputError, match=msg):
        Pose(np.array(matrix, dtype=float))


def test_bad_pose_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "or_assist.pose/2", "T_source_from_patient": WORKED_T}))
    with pytest.raises(SchemaError, match=r"bad.json.*unknown schema 'or_assist.pose/2'"):
        load_pose(bad)
    bad.write_text(json.dumps({"schema": "or_assist.pose/1"}))
    with pytest.raises(SchemaError, match=r"bad.json.*missing field 'T_source_from_patient'"):
        load_pose(bad)
    bad.write_text('{"schema": "or_assist.pose/1", "T_source_from_patient": [[1,0,0,0],[0,1,0,0],[0,0,1,NaN],[0,0,0,1]]}')
    with pytest.raises(SchemaError, match=r"bad.json.*NaN"):
        load_pose(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad.json.*not valid"):
        load_pose(bad)
    with pytest.raises(InputError, match=r"missing.json: file not found"):
        load_pose(tmp_path / "missing.json")


@pytest.mark.parametrize("field, value, msg", [
    ("sid_mm", -5, "sid_mm"),
    ("pixel_spacing_mm", [0, 0.3], "pixel_spacing_mm"),
    ("image_size", [1024], "image_size"),
    ("distortion", [0.1, 0.2], "distortion"),
    ("schema", "or_assist.geometry/9", "unknown schema"),
])
def test_bad_geometry_fields(tmp_path, worked, field, value, msg):
    doc = worked[1].to_dict()
    doc[field] = value
    (tmp_path / "g.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=rf"g.json.*{msg}"):
        load_geometry(tmp_path / "g.json")


def test_geometry_missing_field(tmp_path, worked):
    doc = worked[1].to_dict()
    del doc["source_to_isocenter_mm"]
    (tmp_path / "g.json").write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match="missing field 'source_to_isocenter_mm'"):
        load_geometry(tmp_path / "g.json")


def test_geometry_rejects_isocentre_beyond_detector():
    with pytest.raises(InputError, match="source_to_isocenter_mm"):
        CArmGeometry((512, 512), 1000.0, (0.3, 0.3), (256, 256), 1200.0)
