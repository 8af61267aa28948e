"""Tests for or_assist.core.ct.load: the CT volume's geometry, file formats, HU checks, crop and
resample. DICOM reading is in test_ct_dicom.py, HU -> attenuation in test_ct_attenuation.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import map_coordinates

from or_assist.core.ct.load import CTWarning, check_hu, crop_ct, load_ct, resample_ct, save_ct
from or_assist.core.ct.volume import CTVolume
from or_assist.core.pose import rotation_about_axis
from or_assist.errors import InputError

RNG_SEED = 20240611


# --------------------------------------------------------------------------- helpers


OBLIQUE = rotation_about_axis([1.0, 2.0, 3.0], np.radians(37.0))


FLIP = np.diag([1.0, -1.0, 1.0])


def ramp_ct(direction, shape_zyx=(9, 11, 13), spacing=(0.8, 1.1, 1.7), origin=(-20.0, 35.0, 110.0)) -> CTVolume:
    """A CT whose HU are a known linear function of the LPS position of each voxel centre."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape_zyx], indexing="ij")
    ijk = np.stack([x, y, z], axis=-1).reshape(-1, 3).astype(float)
    lps = ijk @ (np.asarray(direction) * np.asarray(spacing)).T + np.asarray(origin)
    hu = ramp_hu(lps).reshape(shape_zyx)
    return CTVolume(hu.astype(np.float32), np.array(origin), np.array(spacing), np.asarray(direction))


def ramp_hu(points_lps):
    return 3.0 * points_lps[..., 0] - 2.0 * points_lps[..., 1] + 5.0 * points_lps[..., 2] - 400.0


@pytest.fixture(scope="session")
def nifti_ct(real_ct_path) -> CTVolume:
    return load_ct(real_ct_path)


# --------------------------------------------------------------------------- real data


def test_real_nifti_keeps_direction(nifti_ct, real_ct_path):
    img = sitk.ReadImage(str(real_ct_path))
    np.testing.assert_array_equal(nifti_ct.direction, np.diag([-1.0, -1.0, 1.0]))
    np.testing.assert_allclose(nifti_ct.origin_mm, img.GetOrigin())
    assert nifti_ct.shape_xyz == (122, 101, 112) and nifti_ct.hu.shape == (112, 101, 122)
    np.testing.assert_allclose(nifti_ct.spacing_mm, [3.0, 3.0, 3.0])
    assert (nifti_ct.hu.min(), nifti_ct.hu.max()) == (-1207.0, 3382.0)
    # voxel (i, j, k) is i mm towards patient right of the origin (direction -x)
    np.testing.assert_allclose(nifti_ct.index_to_lps([10, 0, 0]), np.array(img.GetOrigin()) + [-30.0, 0, 0])
    assert check_hu(nifti_ct) == []


# --------------------------------------------------------------------------- bad input


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="no such file") as err:
        load_ct(tmp_path / "nope.nii.gz")
    assert str(tmp_path / "nope.nii.gz") in str(err.value)


def test_corrupted_volume_file(tmp_path):
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(InputError, match="cannot read the image") as err:
        load_ct(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", ["frame.png", "frame.nii"])
def test_2d_image_file(tmp_path, name):
    path = tmp_path / name
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 30), np.uint8)), str(path))
    with pytest.raises(InputError, match=r"a 2D image \(30 x 20") as err:
        load_ct(path)
    assert str(path) in str(err.value)


def test_unknown_non_image_file(tmp_path):
    path = tmp_path / "ct.txt"
    path.write_text("1 2 3")
    with pytest.raises(InputError, match="expected a DICOM series folder"):
        load_ct(path)


def test_save_unsupported_extension(tmp_path, nifti_ct):
    with pytest.raises(InputError, match="unsupported extension"):
        save_ct(nifti_ct, tmp_path / "ct.dcm")


def test_ctvolume_rejects_bad_fields():
    hu = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(InputError, match="hu must be"):
        CTVolume(np.zeros((3, 4)), np.zeros(3), np.ones(3), np.eye(3))
    with pytest.raises(InputError, match="spacing_mm"):
        CTVolume(hu, np.zeros(3), np.array([1.0, 0.0, 1.0]), np.eye(3))
    with pytest.raises(InputError, match="orthonormal"):
        CTVolume(hu, np.zeros(3), np.ones(3), np.diag([1.0, 2.0, 1.0]))
    with pytest.raises(InputError, match="origin_mm"):
        CTVolume(hu, np.array([0.0, np.nan, 0.0]), np.ones(3), np.eye(3))


def test_4d_and_vector_images_rejected(tmp_path):
    path = tmp_path / "rgb.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), np.uint8), isVector=True), str(path))
    with pytest.raises(InputError, match="scalar"):
        load_ct(path)
    path = tmp_path / "t.nii"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 4, 5, 6), np.int16), isVector=False), str(path))
    with pytest.raises(InputError, match="expected a 3D image, got a 4D"):
        load_ct(path)


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("direction", [OBLIQUE, FLIP, FLIP @ OBLIQUE], ids=["oblique", "flip", "flip-oblique"])
def test_index_lps_mapping_matches_simpleitk(direction):
    ct = ramp_ct(direction)
    img = ct.to_sitk()
    rng = np.random.default_rng(RNG_SEED)
    ijk = rng.uniform(-2, 14, (50, 3))
    expected = np.array([img.TransformContinuousIndexToPhysicalPoint(tuple(p)) for p in ijk])
    np.testing.assert_allclose(ct.index_to_lps(ijk), expected, atol=1e-9)
    back = np.array([img.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in expected])
    np.testing.assert_allclose(ct.lps_to_index(expected), back, atol=1e-9)
    np.testing.assert_allclose(ct.lps_to_index(ct.index_to_lps(ijk)), ijk, atol=1e-9)
    homog = np.c_[ijk, np.ones(len(ijk))] @ ct.affine.T
    np.testing.assert_allclose(homog[:, :3], expected, atol=1e-9)
    assert np.isclose(np.linalg.det(ct.direction), np.linalg.det(direction))


@pytest.mark.parametrize("direction", [OBLIQUE, FLIP @ OBLIQUE], ids=["oblique", "flip-oblique"])
def test_sample_hu_on_a_linear_ramp(direction):
    ct = ramp_ct(direction)
    rng = np.random.default_rng(RNG_SEED)
    ijk = rng.uniform(0, 1, (200, 3)) * (np.array(ct.shape_xyz) - 1)
    points = ct.index_to_lps(ijk)
    np.testing.assert_allclose(ct.sample_hu(points), ramp_hu(points), rtol=0, atol=0.05)
    assert ct.sample_hu(points).dtype == np.float32
    outside = ct.index_to_lps(np.array([[-0.5, 3, 3], [3, 3, ct.shape_xyz[2] - 0.5], [np.nan, 1, 1]]))
    np.testing.assert_array_equal(ct.sample_hu(outside, outside=-1234.0), [-1234.0] * 3)
    assert ct.sample_hu(points[0]).shape == ()


def test_sample_hu_matches_map_coordinates():
    rng = np.random.default_rng(RNG_SEED)
    ct = CTVolume(rng.normal(0, 300, (7, 8, 9)).astype(np.float32), np.array([1.0, 2, 3]),
                  np.array([0.5, 0.7, 1.3]), OBLIQUE)
    ijk = rng.uniform(0, 1, (300, 3)) * (np.array(ct.shape_xyz) - 1)
    expected = map_coordinates(ct.hu.astype(np.float64), ijk[:, ::-1].T, order=1)
    np.testing.assert_allclose(ct.sample_hu(ct.index_to_lps(ijk)), expected, atol=1e-3)


def test_corners_and_contains():
    ct = ramp_ct(OBLIQUE)
    corners = ct.corners_lps_mm()
    n = np.array(ct.shape_xyz) - 1
    np.testing.assert_allclose(ct.lps_to_index(corners)[7], n, atol=1e-9)
    np.testing.assert_allclose(ct.lps_to_index(corners)[1], [n[0], 0, 0], atol=1e-9)
    assert ct.contains(corners).all()
    centre = corners.mean(axis=0)
    outward = corners + 0.3 * (corners - centre) / np.linalg.norm(corners - centre, axis=1, keepdims=True)
    assert not ct.contains(outward).any()
    assert ct.contains(outward, margin_mm=0.5).all()
    assert not ct.contains(corners, margin_mm=-0.1).any()
    with pytest.raises(InputError, match="points_mm"):
        ct.contains(np.zeros((4, 2)))


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mha", ".mhd", ".nrrd"])
def test_save_load_round_trip_keeps_oblique_flipped_geometry(tmp_path, suffix):
    ct = ramp_ct(FLIP @ OBLIQUE)
    hu = ct.hu.copy()
    hu[0] = -1000.25  # some air, so the loaded CT passes the HU checks
    ct = CTVolume(hu, ct.origin_mm, ct.spacing_mm, ct.direction)
    assert not np.array_equal(hu, np.round(hu))
    back = load_ct(save_ct(ct, tmp_path / f"sub/ct{suffix}"))
    np.testing.assert_allclose(back.origin_mm, ct.origin_mm, atol=1e-4)
    np.testing.assert_allclose(back.spacing_mm, ct.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(back.direction, ct.direction, atol=1e-5)
    np.testing.assert_array_equal(back.hu, ct.hu)  # float HU survive exactly (written as float32)


def test_voxel_sha256_tracks_voxels_and_shape():
    ct = ramp_ct(np.eye(3))
    sha = ct.voxel_sha256()
    assert len(sha) == 64 and sha == ramp_ct(np.eye(3)).voxel_sha256()
    hu = ct.hu.copy()
    hu[1, 2, 3] += 1.0
    assert CTVolume(hu, ct.origin_mm, ct.spacing_mm, ct.direction).voxel_sha256() != sha
    flat = ct.hu.reshape(ct.hu.shape[0], -1, 1)  # same bytes, other shape
    assert CTVolume(flat, ct.origin_mm, ct.spacing_mm, ct.direction).voxel_sha256() != sha


# --------------------------------------------------------------------------- HU checks


def _ct(hu) -> CTVolume:
    return CTVolume(np.asarray(hu, np.float32).reshape(2, 2, -1), np.zeros(3), np.ones(3), np.eye(3))


@pytest.mark.parametrize(
    "values, expected",
    [
        ([-1024, 0, 40, 1500, 3071, 200, -900, 10], None),  # metal at the top of the standard scale
        ([0, 24, 1064, 4095, 1100, 1000, 3000, 50], "unscaled stored values"),
        ([-400, 0, 40, 1500, 300, 60, 20, 10], "no air"),
        ([-1000, 0, 40, 1500, 3000, 60, 20, 8000], "maximum 8000 HU above 4000"),
        ([-3024, -1000, 40, 1500, 300, 60, 20, 10], "minimum -3024 HU below -2000"),
        ([-1000, np.nan, 40, 1500, 300, 60, 20, 10], "1 voxels are NaN"),
    ],
)


def test_check_hu(values, expected):
    found = check_hu(_ct(values))
    if expected is None:
        assert found == []
    else:
        assert any(expected in msg for msg in found), found


def test_load_warns_on_unscaled_values(tmp_path):
    path = save_ct(_ct(np.array([0, 24, 1064, 4000, 1100, 1000, 3000, 50.0])), tmp_path / "raw.nii")
    with pytest.warns(CTWarning, match=f"{path}: values range 0..4000 .*unscaled"):
        load_ct(path)


# --------------------------------------------------------------------------- crop and resample


def test_crop_keeps_voxels_and_positions(nifti_ct):
    lo, hi = np.array([-60.0, -200.0, 200.0]), np.array([40.0, -100.0, 300.0])
    crop = crop_ct(nifti_ct, lo, hi, margin_mm=2.0)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    assert crop.contains(corners, margin_mm=-1.9).all()
    # the smallest block: its voxel-centre box overhangs the grown box by less than a voxel
    ext = crop.corners_lps_mm()
    assert np.all(ext.min(0) <= lo - 2.0 + 1e-6) and np.all(ext.min(0) > lo - 2.0 - 3.0)
    assert np.all(ext.max(0) >= hi + 2.0 - 1e-6) and np.all(ext.max(0) < hi + 2.0 + 3.0)
    rng = np.random.default_rng(RNG_SEED)
    pts = lo + rng.uniform(0, 1, (100, 3)) * (hi - lo)
    np.testing.assert_array_equal(crop.sample_hu(pts), nifti_ct.sample_hu(pts))
    np.testing.assert_array_equal(crop.direction, nifti_ct.direction)


def test_crop_oblique_contains_box():
    ct = ramp_ct(OBLIQUE, shape_zyx=(30, 30, 30), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    centre = ct.index_to_lps([15.0, 15.0, 15.0])
    crop = crop_ct(ct, centre - 3, centre + 3)
    box = centre + np.array([[x, y, z] for x in (-3, 3) for y in (-3, 3) for z in (-3, 3)])
    assert crop.contains(box).all()
    assert max(crop.shape_xyz) < 13  # no bigger than the rotated 6 mm box needs
    np.testing.assert_allclose(crop.sample_hu(box), ramp_hu(box), atol=0.05)


def test_crop_bad_boxes(nifti_ct):
    with pytest.raises(InputError, match="does not overlap the CT"):
        crop_ct(nifti_ct, [1000, 1000, 1000], [1100, 1100, 1100])
    with pytest.raises(InputError, match="exceeds max_lps_mm"):
        crop_ct(nifti_ct, [10, 0, 0], [0, 10, 10])
    with pytest.raises(InputError, match="min_lps_mm"):
        crop_ct(nifti_ct, [0, 0], [1, 1, 1])


def test_resample_oblique_ramp():
    ct = ramp_ct(OBLIQUE, shape_zyx=(12, 14, 16), spacing=(1.0, 1.0, 1.0))
    out = resample_ct(ct, [2.0, 1.5, 0.5], antialias=False)
    assert out.shape_xyz == (8, 9, 23)  # floor((n - 1) * old / new) + 1
    np.testing.assert_allclose(out.spacing_mm, [2.0, 1.5, 0.5])
    np.testing.assert_allclose(out.origin_mm, ct.origin_mm)
    np.testing.assert_allclose(out.direction, OBLIQUE)
    z, y, x = np.indices(out.hu.shape)
    lps = out.index_to_lps(np.stack([x, y, z], -1).reshape(-1, 3).astype(float))
    np.testing.assert_allclose(out.hu.reshape(-1), ramp_hu(lps), atol=0.05)
    assert out.contains(out.corners_lps_mm()).all() and ct.contains(out.corners_lps_mm()).all()


def test_resample_antialias_averages_noise():
    rng = np.random.default_rng(RNG_SEED)
    ct = CTVolume(rng.normal(0, 100, (40, 40, 40)).astype(np.float32), np.zeros(3), np.ones(3), np.eye(3))
    plain = resample_ct(ct, 4.0, antialias=False)
    smooth = resample_ct(ct, 4.0)
    assert plain.hu.std() > 80 and smooth.hu.std() < 40
    assert abs(float(smooth.hu.mean())) < 5


def test_resample_bad_spacing(nifti_ct):
    for bad in (0.0, -1.0, [1.0, 2.0], float("nan")):
        with pytest.raises(InputError, match="spacing_mm"):
            resample_ct(nifti_ct, bad)


def test_loading_real_data_emits_no_warning(dicom_dir, real_ct_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_ct(dicom_dir)
        load_ct(real_ct_path)
