"""Gantry-tilted DICOM series and sheared NIfTI read onto an orthonormal grid (core/ct/tilt.py via load_ct).

The series are written with pydicom (or_assist.sim.ct_series), a library other than the
reader's GDCM, with the slices at their true tilted positions.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from or_assist.core.ct.load import load_ct
from or_assist.core.ct.tilt import FILL_HU, ResampledWarning, resample_sheared, tilt_deg
from or_assist.core.ct.volume import CTVolume
from or_assist.core.pose import rotation_about_axis
from or_assist.errors import InputError
from or_assist.sim.ct_series import scanner_slice_positions, write_ct_series

SHAPE_ZYX = (12, 30, 34)
SPACING = np.array([0.8, 0.7, 2.0])
BRIGHT_HU = 2000.0


def _grid(tilt_deg_: float, axes=np.eye(3)) -> CTVolume:
    """A CT declared on a tilted grid: background -1024 HU (the fill), bright voxels at the slab's corners and inside."""
    hu = np.full(SHAPE_ZYX, FILL_HU, np.float32)
    direction = rotation_about_axis([1.0, 0.0, 0.0], math.radians(tilt_deg_)) @ axes
    return CTVolume(hu, np.array([-12.0, 40.0, 300.0]), SPACING, direction)


def _bright_voxels() -> list[tuple[int, int, int]]:
    """One voxel in from the slab's 8 corners (the interpolation's neighbours inside), and two inside."""
    z, y, x = (n - 2 for n in SHAPE_ZYX)
    return [(i, j, k) for i in (1, x) for j in (1, y) for k in (1, z)] + [(11, 17, 5), (20, 9, 8)]


def _tilted_series(folder: Path, tilt: float, *, axes=np.eye(3)) -> tuple[list[np.ndarray], CTVolume]:
    """Write a tilted series (slices stacked along LPS z); returns the bright points' true LPS positions."""
    ct = _grid(tilt, axes)
    hu = ct.hu.copy()
    for i, j, k in _bright_voxels():
        hu[k, j, i] = BRIGHT_HU
    ct = CTVolume(hu, ct.origin_mm, ct.spacing_mm, ct.direction)
    positions = scanner_slice_positions(ct, sheared=True)
    write_ct_series(ct, folder, slice_positions_mm=positions, gantry_tilt_deg=tilt)
    truth = [positions[k] + ct.direction[:, 0] * i * SPACING[0] + ct.direction[:, 1] * j * SPACING[1]
             for i, j, k in _bright_voxels()]
    return truth, ct


def _centroid_near(ct: CTVolume, point_mm: np.ndarray, radius_mm: float = 3.0) -> np.ndarray:
    """HU-excess-weighted centroid of the voxels within ``radius_mm`` of a point (LPS mm)."""
    zz, yy, xx = np.indices(ct.hu.shape)
    idx = np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()]).astype(float)
    pts = ct.index_to_lps(idx)
    near = np.linalg.norm(pts - point_mm, axis=1) < radius_mm
    w = np.clip(ct.hu.ravel()[near] - FILL_HU, 0.0, None)
    assert w.sum() > 0.5 * (BRIGHT_HU - FILL_HU), "the bright voxel is missing"
    return (pts[near] * w[:, None]).sum(0) / w.sum()


@pytest.mark.parametrize("tilt, axes", [(15.0, np.eye(3)), (-25.0, np.diag([-1.0, -1.0, 1.0]))])
def test_tilted_series_points_land_at_their_true_positions(tmp_path, tilt, axes):
    truth, _ = _tilted_series(tmp_path, tilt, axes=axes)
    with pytest.warns(ResampledWarning, match=f"gantry tilt of {abs(tilt):.1f} deg"):
        ct = load_ct(tmp_path)
    assert np.allclose(ct.direction.T @ ct.direction, np.eye(3), atol=1e-6)
    # the slice planes stay planes of the grid: spacing along the normal = the gap between them
    assert ct.spacing_mm[2] == pytest.approx(SPACING[2] * math.cos(math.radians(tilt)), abs=1e-3)
    errors = [np.linalg.norm(_centroid_near(ct, p) - p) for p in truth]
    assert max(errors) < 0.1                        # next to the corners of the slab included
    # outside the acquired slab: the fill value; the HU of the bright voxels preserved in sum
    assert ct.hu.min() == pytest.approx(FILL_HU)
    assert np.sum(ct.hu - FILL_HU) == pytest.approx(len(truth) * (BRIGHT_HU - FILL_HU), rel=0.02)


@pytest.mark.parametrize("drift", ["table", "oblique"])
def test_tilted_series_geometry_is_exact_to_the_slab_corners(tmp_path, drift):
    """A linear ramp of the true index (exactly reproduced by linear interpolation) read back: every voxel
    inside the slab holds the ramp at its own LPS position, those outside the fill; the slab's corners are inside.
    ``table``: slices stepping along LPS z (tilt 20 deg); ``oblique``: drifting along both row and column."""
    ct = _grid(-20.0, np.diag([-1.0, -1.0, 1.0]))
    k, j, i = np.indices(SHAPE_ZYX)
    ramp = (20.0 * i + 20.0 * j + 100.0 * k - 1000.0).astype(np.float32)
    ct = CTVolume(ramp, ct.origin_mm, ct.spacing_mm, ct.direction)
    if drift == "table":
        positions = scanner_slice_positions(ct, sheared=True)
    else:
        step = ct.direction @ np.array([0.5, -0.35, 1.8])                 # 18.7 deg off the normal
        positions = ct.origin_mm + np.outer(np.arange(SHAPE_ZYX[0]), step)
    write_ct_series(ct, tmp_path, slice_positions_mm=positions)
    with pytest.warns(ResampledWarning, match="gantry tilt of (20.0|18.7) deg"):
        got = load_ct(tmp_path)
    a = np.column_stack([ct.direction[:, 0] * SPACING[0], ct.direction[:, 1] * SPACING[1],
                         positions[1] - positions[0]])                          # true index -> LPS
    zz, yy, xx = np.indices(got.hu.shape)
    pts = got.index_to_lps(np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()]).astype(float))
    idx = np.linalg.solve(a, (pts - positions[0]).T).T                         # true (i, j, k) of each voxel
    n = np.array(SHAPE_ZYX[::-1]) - 1.0
    inside = np.all((idx >= -1e-6) & (idx <= n + 1e-6), axis=1)
    expected = 20.0 * idx[:, 0] + 20.0 * idx[:, 1] + 100.0 * idx[:, 2] - 1000.0
    hu = got.hu.ravel()
    # 0.1 mm along any axis is >= 2.5 HU of this ramp
    assert inside.sum() > 0.9 * ramp.size and np.abs(hu[inside] - expected[inside]).max() < 0.5
    far = np.any((idx < -1.0) | (idx > n + 1.0), axis=1)
    assert np.all(hu[far] == FILL_HU)
    corners = positions[[0, 0, 0, 0, -1, -1, -1, -1]] + np.array(
        [[a[:, 0] * i + a[:, 1] * j for i in (0, n[0]) for j in (0, n[1])]] * 2).reshape(8, 3)
    assert np.all(got.contains(corners, margin_mm=1e-6))


def test_straight_series_reads_unchanged(tmp_path):
    rng = np.random.default_rng(3)
    ct = _grid(15.0)
    ct = CTVolume(np.round(rng.uniform(-1024, 3000, SHAPE_ZYX)).astype(np.float32), ct.origin_mm, ct.spacing_mm,
                  ct.direction)
    write_ct_series(ct, tmp_path)                  # slices along their (oblique) normal: no tilt
    got = load_ct(tmp_path)                         # no warning (warnings are errors here)
    assert np.array_equal(got.hu, ct.hu)
    assert np.allclose(got.origin_mm, ct.origin_mm, atol=1e-4)
    assert np.allclose(got.spacing_mm, ct.spacing_mm, atol=1e-5)
    assert np.allclose(got.direction, ct.direction, atol=1e-5)


def test_series_whose_slices_change_orientation_is_refused(tmp_path):
    a = _grid(15.0)
    b = _grid(20.0)
    top = CTVolume(b.hu, a.index_to_lps([0.0, 0.0, float(SHAPE_ZYX[0])]), SPACING, b.direction)
    write_ct_series(a, tmp_path / "a", series_uid="1.2.826.0.1.3680043.2.1125.77")
    write_ct_series(top, tmp_path / "b", series_uid="1.2.826.0.1.3680043.2.1125.77")
    with pytest.raises(InputError, match="2 different orientations") as exc:
        load_ct(tmp_path)
    assert str(tmp_path) in str(exc.value) and "ImageOrientationPatient" in str(exc.value)


def test_resample_sheared_rejects_a_singular_map():
    img = sitk.Image([4, 4, 4], sitk.sitkFloat32)
    with pytest.raises(InputError, match="degenerate"):
        resample_sheared(img, [0, 0, 0], [[1, 0, 1], [0, 1, 0], [0, 0, 0]], where="x")
    assert tilt_deg(np.column_stack([[1, 0, 0], [0, 1, 0], [0, 1, 1]])) == pytest.approx(45.0)


def _sheared_nifti(path: Path, hu: np.ndarray, shear_mm: float) -> None:
    """A NIfTI with a sheared sform (slice k moved ``k * shear_mm`` along -y LPS), as some converters write."""
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing((0.8, 0.8, 2.0))
    img.SetOrigin((10.0, 20.0, 30.0))
    sitk.WriteImage(img, str(path))
    raw = bytearray(path.read_bytes())
    srow_y = list(struct.unpack_from("<4f", raw, 296))            # RAS y row
    srow_y[2] = shear_mm                                           # +y RAS per slice = -y LPS
    struct.pack_into("<4f", raw, 296, *srow_y)
    path.write_bytes(bytes(raw))


def test_nifti_with_sheared_sform_is_resampled_by_the_sform(tmp_path, capfd):
    hu = np.full((6, 20, 24), -1024, np.int16)
    hu[5, 4, 7] = 2000
    path = tmp_path / "tilted.nii"
    shear = 2.0 * math.tan(math.radians(15.0))
    _sheared_nifti(path, hu, shear)
    with pytest.warns(ResampledWarning, match=r"sform is sheared \(slices tilted 15.0 deg"):
        ct = load_ct(path)
    true = np.array([10.0 + 7 * 0.8, 20.0 + 4 * 0.8 - 5 * shear, 30.0 + 5 * 2.0])
    assert np.linalg.norm(_centroid_near(ct, true) - true) < 0.1
    assert "unexpected scales in sform" not in capfd.readouterr().err
    # an unsheared NIfTI: no warning, geometry as written
    plain = tmp_path / "plain.nii"
    _sheared_nifti(plain, hu, 0.0)
    assert np.allclose(load_ct(plain).origin_mm, [10.0, 20.0, 30.0])
