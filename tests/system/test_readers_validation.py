"""Every reader validates what it reads: damaged CTs, JSON, cohort CSVs, view libraries
and out-of-range CLI numbers give one ``or-assist: error:`` line (exit 2), never a
traceback or a silently wrong result.

The damaged inputs are made at test time from the real CT fixtures and the sample data.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from or_assist.cli import main
from or_assist.core.ct.load import load_ct
from or_assist.core.jsonio import MAX_JSON_BYTES, read_json
from or_assist.core.validate import Limit, check_finite, check_range
from or_assist.errors import InputError, SchemaError

# --------------------------------------------------------------------------- helpers


def run_cli(argv, capsys) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, the single stderr line) after checking
    that stderr holds exactly one non-empty ``or-assist: error:`` line and no traceback."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("or-assist: error: "), err
    return code, lines[0]


def assert_cli_error(argv, capsys, *names: str) -> str:
    code, line = run_cli(argv, capsys)
    assert code == 2
    for name in names:
        assert str(name) in line, line
    return line


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from or_assist.sim.sample import build_sample_data

    return build_sample_data(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def sample_pose(sample, tmp_path_factory):
    from or_assist.core.plan import load_plan

    plan = load_plan(sample["plan"])
    pose = tmp_path_factory.mktemp("pose") / "pose.json"
    assert main(["view-pose", str(sample["plan"]), "--implant", plan.implants[0].id, "--view", "lateral",
                 "--geometry", str(sample["geometry"]), "--out", str(pose)]) == 0
    return pose


@pytest.fixture(scope="module")
def small_nii(real_ct_path, tmp_path_factory) -> Path:
    """A small uncompressed NIfTI-1 (every 4th voxel of the real CT) written by SimpleITK."""
    img = sitk.ReadImage(str(real_ct_path))[::4, ::4, ::4]
    path = tmp_path_factory.mktemp("nii") / "small.nii"
    sitk.WriteImage(img, str(path))
    return path


def _patch(src: Path, dst: Path, offset: int, data: bytes) -> Path:
    raw = bytearray(src.read_bytes())
    raw[offset : offset + len(data)] = data
    dst.write_bytes(bytes(raw))
    return dst


# --------------------------------------------------------------------------- 1. truncated CTs


def test_undamaged_files_still_load(real_ct_path, dicom_dir, small_nii, tmp_path):
    assert load_ct(real_ct_path).shape_xyz == (122, 101, 112)
    assert load_ct(dicom_dir).spacing_mm[0] == pytest.approx(0.9765625)
    img = sitk.ReadImage(str(small_nii))
    for name, compress in [("a.mha", False), ("b.mha", True), ("c.nrrd", False), ("d.nrrd", True),
                           ("e.mhd", False), ("f.nii.gz", True)]:
        sitk.WriteImage(img, str(tmp_path / name), useCompression=compress)
        ct = load_ct(tmp_path / name)
        np.testing.assert_allclose(ct.spacing_mm, img.GetSpacing())


def test_half_a_gzip_nifti_is_refused_by_info_simulate_and_register(real_ct_path, sample, sample_pose,
                                                                    tmp_path, capsys):
    half = tmp_path / "half.nii.gz"
    raw = real_ct_path.read_bytes()
    half.write_bytes(raw[: len(raw) // 2])
    line = assert_cli_error(["info", half], capsys, half, "truncated")
    assert "the compressed stream ends early" in line and "bytes of voxel data" in line
    assert_cli_error(["simulate", half, "--pose", sample_pose, "--geometry", sample["geometry"],
                      "--out", tmp_path / "shot.png"], capsys, half, "truncated")
    assert not (tmp_path / "shot.png").exists()
    shot = tmp_path / "frame.png"
    cv2.imwrite(str(shot), np.full((64, 64), 128, np.uint8))
    assert_cli_error(["register", "--ct", half, "--geometry", sample["geometry"], "--image", shot,
                      "--init", sample_pose, "--out", tmp_path / "reg.json"], capsys, half, "truncated")


@pytest.mark.parametrize("name, compress", [("ct.nii", False), ("ct.mha", False), ("ct.nrrd", False),
                                            ("ct.mha", True), ("ct.nrrd", True)])
def test_truncated_volume_formats(real_ct_path, tmp_path, name, compress):
    path = tmp_path / name
    sitk.WriteImage(sitk.ReadImage(str(real_ct_path)), str(path), useCompression=compress)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])
    expected = 122 * 101 * 112 * 4  # int32 voxels
    with pytest.raises(InputError, match=rf"truncated: .*expected {expected} bytes of voxel data, found \d+") as err:
        load_ct(path)
    assert str(path) in str(err.value)


def test_truncated_raw_file_of_an_mhd_names_the_data_file(small_nii, tmp_path):
    header = tmp_path / "ct.mhd"
    sitk.WriteImage(sitk.ReadImage(str(small_nii)), str(header))
    data = tmp_path / "ct.raw"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(InputError, match=r"ct\.raw: truncated: expected \d+ bytes of voxel data, found 100"):
        load_ct(header)


def test_gzip_with_a_bad_crc_is_refused(real_ct_path, tmp_path, capsys):
    raw = bytearray(real_ct_path.read_bytes())
    raw[-6] ^= 0x01  # in the CRC-32 of the gzip trailer: the data decompress, the check fails
    bad = tmp_path / "crc.nii.gz"
    bad.write_bytes(bytes(raw))
    assert_cli_error(["info", bad], capsys, bad, "corrupt compressed data")


# --------------------------------------------------------------------------- 2. damaged geometry


@pytest.mark.parametrize("value", [float("nan"), 0.0, -0.7])
def test_nifti_pixdim_nan_zero_or_negative(small_nii, tmp_path, capsys, value):
    bad = _patch(small_nii, tmp_path / "bad.nii", 80, struct.pack("<f", value))  # pixdim[1]
    line = assert_cli_error(["info", bad], capsys, bad, "pixdim")
    assert "finite and > 0" in line


@pytest.mark.parametrize("gz", [False, True])
def test_nifti2_is_refused_by_name(tmp_path, capsys, gz):
    """SimpleITK's NIfTI reader reads NIfTI-1 only: a NIfTI-2 file (540-byte header, 64-bit
    fields, written by hand here) is named as such, with what to convert it to."""
    import gzip

    header = bytearray(544)
    struct.pack_into("<i8shh8q", header, 0, 540, b"n+2\x00\r\n\x1a\n", 4, 16, 3, 6, 5, 4, 1, 1, 1, 1)
    struct.pack_into("<8dq", header, 104, 1.0, 1.5, 1.5, 3.0, 1.0, 1.0, 1.0, 1.0, 544)
    data = bytes(header) + np.zeros(6 * 5 * 4, "<i2").tobytes()
    path = tmp_path / ("ct2.nii.gz" if gz else "ct2.nii")
    path.write_bytes(gzip.compress(data) if gz else data)
    message = assert_cli_error(["info", str(path)], capsys, str(path))
    assert "NIfTI-2" in message and "NIfTI-1" in message


def test_nifti_sform_not_orthogonal(small_nii, tmp_path, capsys):
    srow_y = struct.unpack("<4f", small_nii.read_bytes()[296:312])
    skewed = struct.pack("<4f", srow_y[0] + 3.0, *srow_y[1:])  # i axis leans into y
    bad = _patch(small_nii, tmp_path / "skew.nii", 296, skewed)
    assert_cli_error(["info", bad], capsys, bad, "sform", "not orthogonal")


def test_metaimage_and_nrrd_spacing(small_nii, tmp_path, capsys):
    img = sitk.ReadImage(str(small_nii))
    mha, nrrd = tmp_path / "a.mha", tmp_path / "a.nrrd"
    sitk.WriteImage(img, str(mha))
    sitk.WriteImage(img, str(nrrd))
    text = mha.read_bytes()
    line = next(ln for ln in text.split(b"\n") if ln.startswith(b"ElementSpacing"))
    mha.write_bytes(text.replace(line, b"ElementSpacing = 0 12 12"))
    assert_cli_error(["info", mha], capsys, mha, "ElementSpacing", "> 0")
    text = nrrd.read_bytes()
    line = next(ln for ln in text.split(b"\n") if ln.startswith(b"space directions"))
    nrrd.write_bytes(text.replace(line, b"space directions: (0,0,0) (0,-12,0) (0,0,12)"))
    assert_cli_error(["info", nrrd], capsys, nrrd, "space directions", "zero axis")


def _dicom_copy_with_tag(dicom_dir: Path, tmp_path: Path, tag: bytes, value: bytes,
                         every_slice: bool = False) -> tuple[Path, Path]:
    """Copy the series and overwrite one explicit-VR DS element (same length) of one slice,
    or of every slice; returns (folder, the first slice changed)."""
    folder = tmp_path / "dicom"
    shutil.copytree(dicom_dir, folder)
    files = sorted(folder.iterdir())
    victims = files if every_slice else [files[7]]
    for victim in victims:
        raw = bytearray(victim.read_bytes())
        at = raw.find(tag + b"DS")
        assert at > 0, "tag not found in the fixture"
        length = struct.unpack("<H", raw[at + 6 : at + 8])[0]
        assert len(value) <= length
        raw[at + 8 : at + 8 + length] = value.ljust(length, b" ")
        victim.write_bytes(bytes(raw))
    return folder, victims[0]


@pytest.mark.parametrize("value", [b"0\\0", b"-1\\-1", b"NaN\\1"])
def test_dicom_pixel_spacing_zero_negative_or_nan(dicom_dir, tmp_path, capsys, value):
    folder, victim = _dicom_copy_with_tag(dicom_dir, tmp_path, b"\x28\x00\x30\x00", value)
    line = assert_cli_error(["info", folder], capsys, victim.name, "PixelSpacing (0028,0030)")
    assert value.decode().replace("\\", "\\\\") in line


def test_dicom_orientation_not_orthogonal(dicom_dir, tmp_path, capsys):
    # the exporter wrote the row cosine twice: rows and columns parallel
    folder, victim = _dicom_copy_with_tag(dicom_dir, tmp_path, b"\x20\x00\x37\x00", b"1\\0\\0\\1\\0\\0",
                                          every_slice=True)
    assert_cli_error(["info", folder], capsys, victim.name, "ImageOrientationPatient")


# --------------------------------------------------------------------------- 3. JSON


def _view_pose_with_geometry(sample, geometry: Path, tmp_path) -> list:
    from or_assist.core.plan import load_plan

    implant = load_plan(sample["plan"]).implants[0].id
    return ["view-pose", sample["plan"], "--implant", implant, "--view", "lateral", "--geometry", geometry,
            "--out", tmp_path / "pose.json"]


@pytest.mark.parametrize("case, text, expect", [
    ("deep", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("deep_object", '{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ("list", "[1, 2, 3]", "top level"),
    ("string", '"or_assist.geometry/1"', "top level"),
    ("bad", '{"schema": "or_assist.geometry/1", ', "not valid JSON"),
    ("latin1", b'{"schema": "caf\xe9"}'.decode("latin-1"), "not valid UTF-8"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else "")
def test_json_parser_failures_are_one_line(sample, tmp_path, capsys, case, text, expect):
    bad = tmp_path / f"{case}.json"
    bad.write_bytes(text.encode("latin-1") if case == "latin1" else text.encode())
    assert_cli_error(_view_pose_with_geometry(sample, bad, tmp_path), capsys, bad, expect)


@pytest.mark.parametrize("value", ["1" + "0" * 400, "9" * 5001, "-" + "9" * 5001, "NaN", "Infinity", "-Infinity",
                                   "1e400"], ids=lambda v: v[:12])
def test_json_numbers_that_are_not_finite_floats(sample, tmp_path, capsys, value):
    doc = json.loads(Path(sample["geometry"]).read_text())
    text = json.dumps(doc).replace(json.dumps(doc["sid_mm"]), "SID", 1)
    bad = tmp_path / "g.json"
    bad.write_text(text.replace('"sid_mm": SID', f'"sid_mm": {value}'))
    assert_cli_error(_view_pose_with_geometry(sample, bad, tmp_path), capsys, bad, "sid_mm", "finite")


def test_json_file_too_large_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(MAX_JSON_BYTES + 1)  # sparse: no disk used
    with pytest.raises(InputError, match=r"big\.json: .*too large for a JSON interchange file \(at most 64 MiB"):
        read_json(big)


def test_geometry_file_claiming_a_billion_pixels(sample, tmp_path, capsys):
    doc = json.loads(Path(sample["geometry"]).read_text())
    doc["image_size"] = [1_000_000_000, 1_000_000_000]
    bad = tmp_path / "huge.json"
    bad.write_text(json.dumps(doc))
    line = assert_cli_error(_view_pose_with_geometry(sample, bad, tmp_path), capsys, bad, "image_size")
    assert "4..8192 px per side" in line


def test_plan_with_a_huge_integer(sample, tmp_path, capsys):
    text = Path(sample["plan"]).read_text()
    doc = json.loads(text)
    doc["implants"][0]["entry_lps_mm"][0] = "HUGE"
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps(doc).replace('"HUGE"', "9" * 6000))
    assert_cli_error(["plan-check", bad], capsys, bad, "entry_lps_mm")


# --------------------------------------------------------------------------- 4. cohort CSV, view library


@pytest.mark.parametrize("content, expect", [
    (b"plan,postop\n\x00\x01\x02binary\x00\n", "binary file (NUL byte"),
    (b"plan,postop\n\xff\xfe\xfa,x\n", "not UTF-8 text"),
    (b"plan,postop\na.json,b.nii,extra,cells\n", "more cells than the header"),
])
def test_damaged_cohort_csv(tmp_path, capsys, content, expect):
    bad = tmp_path / "cohort.csv"
    bad.write_bytes(content)
    assert_cli_error(["evaluate", "--cohort-file", bad, "--out", tmp_path / "out"], capsys, bad, expect)


@pytest.fixture(scope="module")
def library_file(sample, tmp_path_factory) -> Path:
    from or_assist.core.geometry import load_geometry
    from or_assist.core.plan import load_plan
    from or_assist.render.views.build import build_view_library
    from or_assist.render.views.io import save_view_library

    plan = load_plan(sample["plan"])
    geometry = load_geometry(sample["geometry"]).downsampled(16)
    lib = build_view_library(plan, geometry, neighbourhood_deg=None)
    return save_view_library(lib, tmp_path_factory.mktemp("views"), png=False)["library"]


def _damaged_library(library_file: Path, out: Path, change) -> Path:
    with np.load(library_file) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    np.savez(out, **arrays)
    return out


def _set(key, value):
    return lambda a: a.__setitem__(key, value)


def _meta(edit):
    def change(arrays):
        meta = json.loads(str(arrays["metadata"]))
        edit(meta)
        arrays["metadata"] = np.array(json.dumps(meta))
    return change


@pytest.mark.parametrize("change, expect", [
    (_set("metadata", np.array([{"schema": "x"}], dtype=object)), "allow_pickle"),
    (_set("metadata", np.arange(3)), "array 'metadata' must be one JSON string"),
    (_set("metadata", np.array(["{}", "{}"])), "array 'metadata' must be one JSON string"),
    (_set("metadata", np.array("{not json")), "not valid JSON"),
    (_set("metadata", np.array("[" * 100_000)), "nested too deeply"),
    (_meta(lambda m: m.pop("geometry")), "missing field 'geometry'"),
    (_meta(lambda m: m.__setitem__("entries", 7)), "field 'entries' must be a non-empty list"),
    (_meta(lambda m: m["entries"][0].__setitem__("angles", 5)), "malformed metadata"),
    (_meta(lambda m: m.__setitem__("display_settings", {"bogus": 1})), "malformed metadata"),
    (_meta(lambda m: m["entries"][0].__setitem__("image", "x")), "field 'image'"),
    (lambda a: a.__setitem__("poses", a["poses"].astype(np.float32)), "array 'poses' must be 3-d float64"),
    (lambda a: a.__setitem__("poses", a["poses"][:1]), "array 'poses' must have shape"),
    (lambda a: [a.__setitem__(k, a[k][:, :5, :7]) for k in list(a) if k.startswith(("line_", "display_"))],
     "stored image is 7 x 5 px"),
])
def test_view_library_with_odd_metadata(library_file, sample, sample_pose, tmp_path, capsys, change, expect):
    bad = _damaged_library(library_file, tmp_path / "views.npz", change)
    shot = tmp_path / "frame.png"
    cv2.imwrite(str(shot), np.full((64, 64), 128, np.uint8))
    assert_cli_error(["register", "--ct", sample["ct"], "--geometry", sample["geometry"], "--image", shot,
                      "--init", sample_pose, "--plan", sample["plan"], "--library", bad,
                      "--out", tmp_path / "reg.json"], capsys, bad, expect)


def test_undamaged_library_loads(library_file, sample):
    from or_assist.core.plan import load_plan
    from or_assist.render.views.io import load_view_library

    assert len(load_view_library(library_file, load_plan(sample["plan"]))) == 12


# --------------------------------------------------------------------------- 5. CLI limits


@pytest.mark.parametrize("argv, name, fragment", [
    (["plan-check", "p.json", "--min-clearance-mm", "-5"], "--min-clearance-mm", "0..20 mm"),
    (["plan-check", "p.json", "--min-clearance-mm", "nan"], "--min-clearance-mm", "got nan"),
    (["geometry", "siemens_cios_fusion", "--size", "1000000000"], "--size", "16..4096 px (the detector grid side)"),
    (["geometry", "siemens_cios_fusion", "--size", "0"], "--size", "got 0"),
    (["view-pose", "p.json", "--implant", "L1", "--view", "inlet", "--tilt-deg", "95"], "--tilt-deg", "0..89 deg"),
    (["view-pose", "p.json", "--implant", "L1", "--view", "ap", "--source-to-isocenter-mm", "0"],
     "--source-to-isocenter-mm", "100..2000 mm"),
    (["views", "p.json", "--geometry", "g.json", "--out", "o", "--size-px", "100000"], "--size-px", "16..4096"),
    (["views", "p.json", "--geometry", "g.json", "--out", "o", "--neighbourhood-deg", "-5", "720"],
     "--neighbourhood-deg", "-45..45 deg"),
    (["simulate", "ct", "--pose", "p", "--geometry", "g", "--out", "o.png", "--dose", "0"], "--dose", "photons"),
    (["simulate", "ct", "--pose", "p", "--geometry", "g", "--out", "o.png", "--dose", "inf"], "--dose", "got inf"),
    (["simulate", "ct", "--pose", "p", "--geometry", "g", "--out", "o.png", "--seed", "-1"], "--seed", "seed"),
    (["sources", "--seconds", "0"], "--seconds", "0.1..600 s"),
    (["sources", "--max-index", "100000"], "--max-index", "0..63"),
    (["sources", "--width", "0"], "--width", "16..8192 px"),
    (["sources", "--height", "99999"], "--height", "16..8192 px"),
    (["sources", "--fps", "-30"], "--fps", "frames/s"),
    (["demo", "--headless", "--duration", "0"], "--duration", "0.1..604800 s"),
    (["demo", "--headless", "--max-shots", "0"], "--max-shots", "1..100000"),
    (["demo", "--screen", "-1"], "--screen", "0..15"),
    (["run", "--headless", "--duration", "-1"], "--duration", "s"),
    (["run", "--headless", "--source-timeout", "1e9"], "--source-timeout", "0.1..3600 s"),
    (["run", "--headless", "--no-signal-report", "0"], "--no-signal-report", "0.1..3600 s"),
])
def test_numeric_options_out_of_range(argv, name, fragment, capsys):
    line = assert_cli_error(argv, capsys, f"or-assist: error: {name}: must be", fragment)
    assert "got" in line


def test_simulate_frame_and_points_out_of_range(sample, sample_pose, tmp_path, capsys):
    base = ["simulate", sample["ct"], "--pose", sample_pose, "--geometry", sample["geometry"],
            "--out", tmp_path / "s.png"]
    assert_cli_error(base + ["--frame", "100000x1080"], capsys, "--frame", "16..8192 px per side")
    assert_cli_error(base + ["--frame", "0x0"], capsys, "--frame", "got 0")
    assert_cli_error(base + ["--pin-tip=nan,0,0", "--pin-back=1,2,3"], capsys, "--pin-tip")


def test_in_range_options_pass(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["geometry", "siemens_cios_fusion", "--size", "16", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["image_size"] == [16, 16]


# --------------------------------------------------------------------------- the helper itself


def test_check_range_and_finite():
    assert check_range(5, 0, 10, "--x", "mm") == 5
    assert check_range(0, 0, 10, "--x") == 0 and check_range(10.0, 0, 10, "--x") == 10.0
    with pytest.raises(InputError, match=r"^--size: must be a whole number 16\.\.4096 px \(the grid\), got 2\.5$"):
        check_range(2.5, 16, 4096, "--size", "px", "the grid", integer=True)
    for bad in (float("nan"), float("inf"), -0.1, 10.5, True, "7", None, 10**400):
        with pytest.raises(InputError, match="--x: must be 0..10"):
            check_range(bad, 0, 10, "--x")
    assert check_finite(3, "f") == 3.0
    for bad in (float("nan"), float("-inf"), "x", None, 10**400):
        with pytest.raises(InputError, match="f: must be a finite number"):
            check_finite(bad, "f")
    limit = Limit("--dose", 1, 1e9, "photons per pixel", "the dose")
    assert limit.check(None) is None and limit.check(1e5) == 1e5
    with pytest.raises(InputError, match=r"--dose: must be 1\.\.1000000000 photons per pixel \(the dose\), got 0"):
        limit.check(0)


def test_schema_error_is_an_input_error():
    assert issubclass(SchemaError, InputError)


def test_run_plan_checks_refuses_a_negative_clearance(sample):
    from or_assist.core.plan import load_plan
    from or_assist.planning.checks import run_plan_checks

    plan = load_plan(sample["plan"])
    with pytest.raises(InputError, match=r"min_clearance_mm: must be 0\.\.20 mm .*got -5"):
        run_plan_checks(plan, load_ct(sample["ct"]), min_clearance_mm=-5.0)


@pytest.mark.parametrize("which", [0, 19])
def test_truncated_dicom_slice_is_not_skipped(dicom_dir, tmp_path, capsys, which):
    folder = tmp_path / "dicom"
    shutil.copytree(dicom_dir, folder)
    victim = sorted(folder.iterdir())[which]
    raw = victim.read_bytes()
    victim.write_bytes(raw[: len(raw) // 3])
    assert_cli_error(["info", folder], capsys, folder, f"damaged DICOM file {victim.name}")
