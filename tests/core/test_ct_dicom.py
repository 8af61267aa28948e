"""Tests for reading CTs from DICOM (or_assist.core.ct.dicom through load_ct)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from or_assist.core.ct.load import CTWarning, ct_info, load_ct, save_ct
from or_assist.cli.ct import format_ct_info
from or_assist.core.ct.tilt import ResampledWarning
from or_assist.core.ct.volume import CTVolume
from or_assist.core.pose import rotation_about_axis
from or_assist.errors import InputError


# --------------------------------------------------------------------------- helpers


OBLIQUE = rotation_about_axis([1.0, 2.0, 3.0], np.radians(37.0))


def write_series(folder: Path, hu_zyx: np.ndarray, *, uid: str, origin, spacing_xyz, direction=np.eye(3),
                 positions=None, prefix="s") -> list[Path]:
    """Write a DICOM series of 2D int16 slices with SimpleITK, geometry set through the tags."""
    folder.mkdir(parents=True, exist_ok=True)
    d = np.asarray(direction, float)
    iop = "\\".join(f"{v:.6f}" for v in np.concatenate([d[:, 0], d[:, 1]]))
    files = []
    for k, plane in enumerate(hu_zyx):
        ipp = positions[k] if positions is not None else np.asarray(origin) + k * spacing_xyz[2] * d[:, 2]
        img = sitk.GetImageFromArray(plane.astype(np.int16))
        img.SetSpacing((float(spacing_xyz[0]), float(spacing_xyz[1])))
        for tag, value in [
            ("0008|0060", "CT"),
            ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"),
            ("0020|000e", uid),
            ("0020|0013", str(k + 1)),
            ("0020|0032", "\\".join(f"{v:.4f}" for v in ipp)),
            ("0020|0037", iop),
            ("0028|0030", f"{spacing_xyz[1]:.6f}\\{spacing_xyz[0]:.6f}"),
        ]:
            img.SetMetaData(tag, value)
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        path = folder / f"{prefix}{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(img)
        files.append(path)
    return files


def phantom_hu(shape_zyx, seed=0) -> np.ndarray:
    """Air around a water cylinder with a bone block: values a CT would hold."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape_zyx)
    ny, nx = shape_zyx[1:]
    hu = np.full(shape_zyx, -1000.0)
    r2 = ((y - ny / 2) / (ny / 2.5)) ** 2 + ((x - nx / 2) / (nx / 2.5)) ** 2
    hu[r2 < 1] = 40.0
    hu[(r2 < 0.2)] = 1200.0
    return (hu + rng.normal(0, 5, shape_zyx)).round()


def read_tags(path: Path) -> dict:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return {key: reader.GetMetaData(key) for key in ("0020|0032", "0020|0037", "0028|0030", "0020|000e")}


def floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split("\\")])


@pytest.fixture(scope="session")
def dicom_ct(dicom_dir) -> CTVolume:
    return load_ct(dicom_dir)


# --------------------------------------------------------------------------- the real series


def test_dicom_series_geometry_matches_tags(dicom_ct, dicom_dir):
    files = sorted(p for p in dicom_dir.iterdir() if p.is_file())
    tags = [read_tags(p) for p in files]
    iop = floats(tags[0]["0020|0037"])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    ipp = np.array([floats(t["0020|0032"]) for t in tags])
    order = np.argsort(ipp @ normal)
    pixel_spacing = floats(tags[0]["0028|0030"])  # (row spacing, column spacing)

    assert dicom_ct.shape_xyz == (512, 512, len(files)) == (512, 512, 20)
    np.testing.assert_allclose(dicom_ct.origin_mm, ipp[order[0]], atol=1e-6)
    np.testing.assert_allclose(dicom_ct.direction, np.column_stack([row, col, normal]), atol=1e-9)
    gaps = np.diff(np.sort(ipp @ normal))
    np.testing.assert_allclose(dicom_ct.spacing_mm, [pixel_spacing[1], pixel_spacing[0], gaps.mean()], atol=1e-9)
    # every slice sits where its own ImagePositionPatient says, and holds that file's pixels
    for k, f in enumerate(order):
        np.testing.assert_allclose(dicom_ct.index_to_lps([0, 0, k]), ipp[f], atol=1e-4)
        np.testing.assert_array_equal(dicom_ct.hu[k], sitk.GetArrayFromImage(sitk.ReadImage(str(files[f])))[0])
    assert dicom_ct.series_uid is None  # the anonymised files carry an empty SeriesInstanceUID
    assert dicom_ct.source == str(dicom_dir)
    assert dicom_ct.hu.dtype == np.float32 and dicom_ct.hu.flags.c_contiguous
    assert (dicom_ct.hu.min(), dicom_ct.hu.max()) == (-1024.0, 1839.0)


def test_dicom_round_trip_through_nifti(dicom_ct, tmp_path):
    path = save_ct(dicom_ct, tmp_path / "ct.nii")
    back = load_ct(path)
    np.testing.assert_allclose(back.origin_mm, dicom_ct.origin_mm, atol=1e-4)
    np.testing.assert_allclose(back.spacing_mm, dicom_ct.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(back.direction, dicom_ct.direction, atol=1e-6)
    np.testing.assert_array_equal(back.hu, dicom_ct.hu)
    assert back.voxel_sha256() == dicom_ct.voxel_sha256()


def test_ct_info_and_text(dicom_ct):
    info = ct_info(dicom_ct)
    assert info["size_xyz"] == [512, 512, 20]
    assert (info["hu_min"], info["hu_max"]) == (-1024.0, 1839.0)
    assert info["hu_min"] <= info["hu_p1"] < info["hu_p99"] <= info["hu_max"]
    assert info["memory_bytes"] == 512 * 512 * 20 * 4 == dicom_ct.memory_bytes
    np.testing.assert_allclose(info["extent_mm"], [500.0, 500.0, 40.0])
    assert info["series_uid"] is None and info["axis_codes"] == "LPS"
    text = format_ct_info(dicom_ct)
    for expected in ("512 x 512 x 20", "0.977 x 0.977 x 2.000 mm", "-1024 .. 1839", "20.0 MiB", "series UID:  -",
                     "-804.50", info["voxel_sha256"]):
        assert expected in text


# --------------------------------------------------------------------------- DICOM series choice


def test_two_series_pick_the_longer_one(tmp_path):
    a = phantom_hu((7, 24, 20), seed=1)
    b = phantom_hu((4, 24, 20), seed=2)
    write_series(tmp_path, a, uid="1.2.826.0.1.3680043.2.1125.7", origin=(-10, -20, -30),
                 spacing_xyz=(0.5, 0.6, 2.0), prefix="a")
    write_series(tmp_path, b, uid="1.2.826.0.1.3680043.2.1125.4", origin=(5, 6, 7),
                 spacing_xyz=(0.9, 0.9, 3.0), prefix="b")
    ct = load_ct(tmp_path)
    assert ct.series_uid == "1.2.826.0.1.3680043.2.1125.7"
    np.testing.assert_array_equal(ct.hu, a)
    np.testing.assert_allclose(ct.origin_mm, [-10, -20, -30], atol=1e-4)
    np.testing.assert_allclose(ct.spacing_mm, [0.5, 0.6, 2.0], atol=1e-6)


def test_real_series_beside_a_shorter_series_with_uid(tmp_path, dicom_dir, dicom_ct):
    for p in dicom_dir.iterdir():
        (tmp_path / p.name).symlink_to(p)
    write_series(tmp_path / "other", phantom_hu((5, 32, 32)), uid="1.2.826.0.1.3680043.2.1125.99",
                 origin=(0, 0, 0), spacing_xyz=(1, 1, 1))
    ct = load_ct(tmp_path)
    assert ct.series_uid is None and ct.shape_xyz == (512, 512, 20)
    assert ct.voxel_sha256() == dicom_ct.voxel_sha256()
    np.testing.assert_allclose(ct.origin_mm, dicom_ct.origin_mm)


def test_oblique_series_in_shuffled_file_order(tmp_path):
    hu = phantom_hu((6, 16, 18), seed=3)
    origin = np.array([12.0, -40.0, 300.0])
    positions = [origin + k * 2.5 * OBLIQUE[:, 2] for k in range(6)]
    names = [3, 0, 5, 1, 4, 2]  # file names do not follow the slice order
    for k in range(6):
        write_series(tmp_path, hu[k:k + 1], uid="1.2.3.4", origin=positions[k], spacing_xyz=(0.7, 0.9, 2.5),
                     direction=OBLIQUE, prefix=f"f{names[k]}_")
    ct = load_ct(tmp_path)
    np.testing.assert_allclose(ct.direction, OBLIQUE, atol=1e-5)
    np.testing.assert_allclose(ct.origin_mm, origin, atol=1e-3)
    np.testing.assert_allclose(ct.spacing_mm, [0.7, 0.9, 2.5], atol=1e-4)
    np.testing.assert_array_equal(ct.hu, hu)


def test_multiframe_dicom_file(tmp_path):
    stored = (phantom_hu((5, 12, 14)) + 1024).astype(np.uint16)  # 3D DICOM writing needs unsigned
    img = sitk.GetImageFromArray(stored)
    img.SetSpacing((0.6, 0.7, 2.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(img, str(tmp_path / "volume.dcm"))
    with pytest.warns(CTWarning, match="unscaled stored values"):  # no RescaleIntercept in the file
        ct = load_ct(tmp_path / "volume.dcm")
    assert ct.shape_xyz == (14, 12, 5)
    np.testing.assert_array_equal(ct.hu, stored)
    np.testing.assert_allclose(ct.spacing_mm, [0.6, 0.7, 2.0])
    np.testing.assert_allclose(ct.origin_mm, [1.0, 2.0, 3.0])


# --------------------------------------------------------------------------- bad input


def test_text_file_named_dcm(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("not an image\n")
    with pytest.raises(InputError, match="not a readable DICOM") as err:
        load_ct(path)
    assert str(path) in str(err.value)


def test_corrupted_dicom_file(tmp_path, dicom_dir):
    data = next(p for p in sorted(dicom_dir.iterdir())).read_bytes()
    path = tmp_path / "slice.dcm"
    path.write_bytes(data[:3000])  # cut inside the header (cuts in the pixel data take GDCM seconds)
    with pytest.raises(InputError, match="not a readable DICOM") as err:
        load_ct(path)
    assert str(path) in str(err.value)


def test_empty_folder(tmp_path):
    with pytest.raises(InputError, match="no DICOM series found") as err:
        load_ct(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "x.dcm").write_text("hello")
    with pytest.raises(InputError, match=r"no DICOM series found \(2 file"):
        load_ct(tmp_path)


def test_single_dicom_slice_is_2d(dicom_dir):
    path = sorted(dicom_dir.iterdir())[0]
    with pytest.raises(InputError, match="a 2D image .*whole series") as err:
        load_ct(path)
    assert str(path) in str(err.value)


def test_folder_with_one_slice_is_2d(tmp_path):
    write_series(tmp_path, phantom_hu((1, 10, 10)), uid="1.2.3", origin=(0, 0, 0), spacing_xyz=(1, 1, 1))
    with pytest.raises(InputError, match="a 2D image"):
        load_ct(tmp_path)


def test_series_with_a_missing_slice(tmp_path):
    positions = [(0, 0, z) for z in (0.0, 2.0, 4.0, 8.0, 10.0)]
    write_series(tmp_path, phantom_hu((5, 8, 8)), uid="1.2.3", origin=(0, 0, 0), spacing_xyz=(1, 1, 2),
                 positions=positions)
    with pytest.raises(InputError, match="slice spacing is not uniform"):
        load_ct(tmp_path)


def test_series_with_duplicate_slices(tmp_path):
    positions = [(0, 0, z) for z in (0.0, 2.0, 2.0, 4.0)]
    write_series(tmp_path, phantom_hu((4, 8, 8)), uid="1.2.3", origin=(0, 0, 0), spacing_xyz=(1, 1, 2),
                 positions=positions)
    with pytest.raises(InputError, match="same position"):
        load_ct(tmp_path)


def test_series_with_gantry_tilt_is_resampled(tmp_path):
    positions = [(0, 0.5 * k, 2.0 * k) for k in range(5)]  # ~14 deg tilt (tests/core/test_ct_tilt.py: geometry)
    write_series(tmp_path, phantom_hu((5, 8, 8)), uid="1.2.3", origin=(0, 0, 0), spacing_xyz=(1, 1, 2),
                 positions=positions)
    with pytest.warns(ResampledWarning, match="gantry tilt of 14.0 deg"):
        ct = load_ct(tmp_path)
    assert np.allclose(ct.direction, np.eye(3)) and ct.shape_xyz == (8, 10, 5)


def test_series_off_one_line_is_refused(tmp_path):
    positions = [(0, 0.5 * k + (0.4 if k == 2 else 0.0), 2.0 * k) for k in range(5)]
    write_series(tmp_path, phantom_hu((5, 8, 8)), uid="1.2.3", origin=(0, 0, 0), spacing_xyz=(1, 1, 2),
                 positions=positions)
    with pytest.raises(InputError, match="do not lie evenly on one line"):
        load_ct(tmp_path)


def test_series_with_an_unreadable_slice(tmp_path, monkeypatch):
    files = write_series(tmp_path, phantom_hu((4, 8, 8)), uid="1.2.3", origin=(0, 0, 0), spacing_xyz=(1, 1, 2))
    import or_assist.core.ct.dicom as ct_dicom

    real_read_header = ct_dicom._read_header

    def header_then_truncate(path):
        header = real_read_header(path)
        if path == files[2]:  # the file breaks between the header scan and the pixel read
            path.write_bytes(path.read_bytes()[:200])
        return header

    monkeypatch.setattr(ct_dicom, "_read_header", header_then_truncate)
    with pytest.raises(InputError, match=f"unreadable slice {files[2].name}"):
        load_ct(tmp_path)
