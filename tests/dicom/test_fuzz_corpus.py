"""The DICOM fuzz corpus: damaged, foreign, compressed and multi-frame objects, built at test time.

Each file of the corpus (written under a temporary folder from the simulated C-arm's writer
and pydicom) either reads to the right pixels (exactly for lossless encodings, within a
tolerance for lossy ones) or gives one clear :class:`~or_assist.errors.InputError` naming
the file and the problem; through the CLI (``register``, ``pin``) the same files give exit
status 2 and one line, never a traceback.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (RLELossless, JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGLSLossless,
                         JPEGLosslessSV1, DeflatedExplicitVRLittleEndian)

from or_assist.cli import main
from or_assist.core.carm import pose_from_carm_angles
from or_assist.core.geometry import CArmGeometry
from or_assist.dicom import read_dicom_shot, read_dicom_shots
from or_assist.errors import InputError
from or_assist.sim.dicom_carm import shot_dataset

GEOM = CArmGeometry((48, 40), 1000.0, (0.4, 0.4), (23.5, 19.5), 600.0)
POSE = pose_from_carm_angles(-30.0, 15.0, [0.0, 0.0, 0.0], 600.0, "prone")
GEOMETRY_TAGS = ("DistanceSourceToDetector", "DistanceSourceToPatient", "ImagerPixelSpacing",
                 "PositionerPrimaryAngle", "PositionerSecondaryAngle", "PatientPosition", "PatientOrientation",
                 "KVP", "ExposureInmAs", "FieldOfViewDimensions")


@dataclass
class Item:
    """One corpus file: what reading it must give."""

    path: Path
    pixels: np.ndarray | None = None   # the expected pixels, or None when an error is expected
    tolerance: int = 0                  # max absolute difference (lossy encodings)
    error: str = ""                     # regex the error message must match
    frame: int = -1


def _image(bits: int, seed: int = 0) -> np.ndarray:
    """A smooth ramp with a dark disc and some noise: compresses like an X-ray image."""
    v, u = np.mgrid[0:40, 0:48]
    full = (1 << bits) - 1
    img = 0.3 * full + 0.5 * full * (u / 47.0)
    img[(u - 20) ** 2 + (v - 22) ** 2 < 81] *= 0.3
    img += np.random.default_rng(seed).normal(0, 0.01 * full, img.shape)
    return np.clip(np.round(img), 0, full).astype(np.uint16)


def _save(ds, path: Path) -> Path:
    """A DICOM file with preamble and file meta where pydicom can write one, else as it is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds.save_as(path, enforce_file_format=True)
        except (ValueError, AttributeError):
            ds.save_as(path, enforce_file_format=False)
    return path


def _dataset(bits: int = 12, **kw):
    return shot_dataset(_image(bits), GEOM, POSE, bits_stored=bits, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, dicom_dir) -> dict[str, Item]:
    root = tmp_path_factory.mktemp("dicom_corpus")
    c: dict[str, Item] = {}
    ref12, ref8 = _image(12), _image(8)
    c["valid"] = Item(_save(_dataset(), root / "valid.dcm"), ref12)
    # --- tags missing one by one
    for tag in GEOMETRY_TAGS:  # optional: the pixels still read, the field is None
        c[f"no-{tag}"] = Item(_save(_dataset(extra={tag: None}), root / f"no_{tag}.dcm"), ref12)
    for tag, err in (("Rows", "missing Rows"), ("Columns", "missing Columns"),
                     ("BitsAllocated", "missing BitsAllocated"), ("BitsStored", "missing BitsStored"),
                     ("PixelData", r"no pixel data \(PixelData 7FE0,0010 missing\)"),
                     ("SamplesPerPixel", "missing SamplesPerPixel"),
                     ("PhotometricInterpretation", "missing PhotometricInterpretation; expected MONOCHROME1 or MONOCHROME2")):
        c[f"no-{tag}"] = Item(_save(_dataset(extra={tag: None}), root / f"no_{tag}.dcm"), error=err)
    ds = _dataset()
    ds["Rows"].value = [40, 2]
    c["rows-two-values"] = Item(_save(ds, root / "rows_two_values.dcm"), error="malformed image size tags")
    c["no-Modality"] = Item(_save(_dataset(extra={"Modality": None}), root / "no_modality.dcm"), ref12)
    ds = _dataset(extra={"Modality": None, "SOPClassUID": None})
    del ds.file_meta.MediaStorageSOPClassUID
    c["no-Modality-no-SOPClass"] = Item(_save(ds, root / "no_modality_sop.dcm"),
                                        error="not a projection image: Modality .missing., no SOPClassUID")
    # --- wrong modality
    for modality, sop in (("CT", "1.2.840.10008.5.1.4.1.1.2"), ("MR", "1.2.840.10008.5.1.4.1.1.4"),
                          ("US", "1.2.840.10008.5.1.4.1.1.6.1")):
        ds = _dataset(extra={"Modality": modality, "SOPClassUID": sop})
        ds.file_meta.MediaStorageSOPClassUID = sop
        c[f"modality-{modality}"] = Item(_save(ds, root / f"modality_{modality}.dcm"),
                                         error=f"not a projection image: Modality {modality}, SOP class")
    c["real-CT-slice"] = Item(sorted(dicom_dir.iterdir())[0],
                              error="not a projection image: Modality CT, SOP class CT Image Storage")
    # --- compressed transfer syntaxes (pydicom's encoders, Pillow, GDCM through SimpleITK)
    for name, ts, bits, tol in (("rle", RLELossless, 12, 0), ("jpeg-ls", JPEGLSLossless, 12, 0),
                                ("jpeg-baseline-8bit", JPEGBaseline8Bit, 8, 12),
                                ("jpeg-lossless", JPEGLosslessSV1, 12, 0),
                                ("jpeg2000-lossless", JPEG2000Lossless, 12, 0), ("jpeg2000", JPEG2000, 12, 40),
                                ("deflated", DeflatedExplicitVRLittleEndian, 16, 0)):
        ref = _image(bits)
        c[f"ts-{name}"] = Item(_save(_dataset(bits, transfer_syntax=ts), root / f"ts_{name}.dcm"), ref, tol)
    ds = _dataset(transfer_syntax=JPEGLSLossless)  # encapsulated data under a syntax nothing here decodes
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
    c["ts-mpeg2"] = Item(_save(ds, root / "ts_mpeg2.dcm"), error=r"cannot decode MPEG2 .*1\.2\.840\.10008\.1\.2\.4\.100")
    # --- multi-frame: last by default, k-th
    frames = [_image(12, seed=k) for k in range(5)]
    mf = _save(shot_dataset(frames[-1], GEOM, POSE, frames=frames[:-1]), root / "multiframe.dcm")
    c["multiframe-last"] = Item(mf, frames[-1])
    c["multiframe-2nd"] = Item(mf, frames[1], frame=1)
    mfr = _save(shot_dataset(frames[-1], GEOM, POSE, frames=frames[:-1], transfer_syntax=RLELossless),
                root / "multiframe_rle.dcm")
    c["multiframe-rle-3rd"] = Item(mfr, frames[2], frame=2)
    c["multiframe-out-of-range"] = Item(mf, error="frame 5 out of range: the object has 5 frame", frame=5)
    # --- photometric
    c["monochrome1"] = Item(_save(_dataset(photometric="MONOCHROME1"), root / "mono1.dcm"), ref12)
    c["monochrome1-sc"] = Item(_save(_dataset(photometric="MONOCHROME1", sop_class="sc"), root / "mono1_sc.dcm"),
                               ref12)
    rgb = _dataset(8, sop_class="sc")
    rgb.SamplesPerPixel, rgb.PhotometricInterpretation, rgb.PlanarConfiguration = 3, "RGB", 0
    rgb.PixelData = np.repeat(ref8[..., None], 3, axis=2).astype(np.uint8).tobytes()
    c["colour-rgb"] = Item(_save(rgb, root / "rgb.dcm"), error="colour image .PhotometricInterpretation RGB")
    # --- damaged files
    valid = (root / "valid.dcm").read_bytes()
    for cut in (200, 700, len(valid) - 2000, len(valid) - 1):
        p = root / f"truncated_{cut}.dcm"
        p.write_bytes(valid[:cut])
        c[f"truncated-{cut}"] = Item(p, error="(truncated|pixel data unreadable)")
    (root / "empty.dcm").write_bytes(b"")
    c["zero-length"] = Item(root / "empty.dcm", error=r"empty file \(0 bytes\)")
    (root / "random.dcm").write_bytes(np.random.default_rng(7).bytes(5000))
    c["random-bytes"] = Item(root / "random.dcm", error="not a DICOM file")
    (root / "DICM_only.dcm").write_bytes(bytes(128) + b"DICM")
    c["preamble-only"] = Item(root / "DICM_only.dcm", error="(truncated|missing|not a projection)")
    return c


NAMES = (["valid"] + [f"no-{t}" for t in GEOMETRY_TAGS]
         + [f"no-{t}" for t in ("Rows", "Columns", "BitsAllocated", "BitsStored", "PixelData", "SamplesPerPixel",
                                "PhotometricInterpretation", "Modality", "Modality-no-SOPClass")] + ["rows-two-values"]
         + ["modality-CT", "modality-MR", "modality-US", "real-CT-slice"]
         + [f"ts-{n}" for n in ("rle", "jpeg-ls", "jpeg-baseline-8bit", "jpeg-lossless", "jpeg2000-lossless",
                                "jpeg2000", "deflated", "mpeg2")]
         + ["multiframe-last", "multiframe-2nd", "multiframe-rle-3rd", "multiframe-out-of-range",
            "monochrome1", "monochrome1-sc", "colour-rgb", "truncated-200", "truncated-700",
            "zero-length", "random-bytes", "preamble-only"])


@pytest.mark.parametrize("name", NAMES)
def test_each_corpus_file_reads_right_or_fails_clearly(corpus, name):
    item = corpus[name]
    if item.pixels is None:
        with pytest.raises(InputError, match=item.error) as err:
            read_dicom_shot(item.path, frame=item.frame)
        text = str(err.value)
        assert text.startswith(str(item.path)) and "\n" not in text and len(text) < 600
        return
    shot = read_dicom_shot(item.path, frame=item.frame)
    assert shot.pixels.shape == item.pixels.shape and shot.pixels.dtype == np.uint16
    diff = np.abs(shot.pixels.astype(int) - item.pixels.astype(int))
    assert diff.max() <= item.tolerance, (name, diff.max())
    if item.tolerance:
        assert diff.mean() <= item.tolerance / 4
    if name.startswith("no-"):
        key = {"DistanceSourceToDetector": "sid_mm", "DistanceSourceToPatient": "source_to_patient_mm",
               "ImagerPixelSpacing": "imager_pixel_spacing_mm", "PositionerPrimaryAngle": "primary_angle_deg",
               "PositionerSecondaryAngle": "secondary_angle_deg", "PatientPosition": "patient_position",
               "PatientOrientation": "patient_orientation", "KVP": "kvp", "ExposureInmAs": "exposure_mas",
               "FieldOfViewDimensions": "field_of_view_dimensions_mm", "Modality": "modality"}[name[3:]]
        assert getattr(shot.header, key) is None


def test_truncated_pixel_data_is_never_read_as_an_image(corpus):
    for name in ("truncated-" + str(k) for k in (corpus["valid"].path.stat().st_size - 2000,
                                                  corpus["valid"].path.stat().st_size - 1)):
        with pytest.raises(InputError, match=r"pixel data unreadable .*less than expected.*may be truncated"):
            read_dicom_shot(corpus[name].path)


def test_the_whole_sequence_of_a_multiframe_object(corpus):
    seq = read_dicom_shots(corpus["multiframe-rle-3rd"].path)
    assert len(seq) == 5 and [s.header.frame_index for s in seq] == list(range(5))
    for k, s in enumerate(seq):
        np.testing.assert_array_equal(s.pixels, _image(12, seed=k))


def test_bytes_and_datasets_of_the_corpus_read_like_the_files(corpus):
    for name in ("ts-rle", "ts-jpeg-lossless", "monochrome1"):
        item = corpus[name]
        data = item.path.read_bytes()
        np.testing.assert_array_equal(read_dicom_shot(data).pixels, read_dicom_shot(item.path).pixels)
        ds = pydicom.dcmread(io.BytesIO(data))
        np.testing.assert_array_equal(read_dicom_shot(ds).pixels, read_dicom_shot(item.path).pixels)


CLI_ERRORS = ("modality-CT", "real-CT-slice", "no-PixelData", "colour-rgb", "ts-mpeg2", "truncated-700",
              "zero-length", "random-bytes")


@pytest.fixture(scope="module")
def sample():
    from or_assist.core.plan import load_plan
    from or_assist.sim.sample import build_sample_data

    paths = build_sample_data()
    return paths["ct"], paths["plan"], load_plan(paths["plan"]).implants[0].id


@pytest.mark.parametrize("name", CLI_ERRORS)
def test_register_and_pin_give_one_line_and_status_2(corpus, name, sample, tmp_path, capsys):
    ct, plan, implant = sample
    path = str(corpus[name].path)
    argvs = (["register", "--ct", str(ct), "--image", path, "--out", str(tmp_path / "r.json")],
             ["pin", "--ct", str(ct), "--plan", str(plan), "--implant", implant,
              "--shot", path, str(tmp_path / "no_pose.json"), "--out", str(tmp_path / "d.json")])
    for argv in argvs:
        assert main(argv) == 2, argv[0]
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("or-assist: error: ") and "Traceback" not in err, err
        assert path in lines[0], (argv[0], lines[0])


BAD_RAW_VALUES = (b"abc ", b"-1", b"0 ", b"1\\2\\3\\4", b"", b"nan ", b"1e999 ", b"\xff\xfe")


def test_every_header_element_damaged_reads_or_fails_clearly():
    """Each element of a shot's header (pixel data, sequences and UIDs aside) replaced by
    each of a few bad raw values: the shot reads, or an InputError names the file; nothing
    else escapes (pydicom's own conversions of damaged elements included)."""
    base = _dataset(extra={"TableHeight": "800", "AcquisitionDateTime": "20260102030405", "IntensifierSize": "230",
                           "XRayTubeCurrent": "3", "ExposureTime": "10", "NumberOfFrames": "1"})
    buf = io.BytesIO()
    base.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    checked = 0
    for elem in pydicom.dcmread(io.BytesIO(data)):
        if elem.tag == 0x7FE00010 or elem.VR in ("SQ", "OB", "OW", "UI"):
            continue
        for bad in BAD_RAW_VALUES:
            raw = bad + (b" " if len(bad) % 2 else b"")
            ds = pydicom.dcmread(io.BytesIO(data))
            ds[elem.tag] = pydicom.dataelem.RawDataElement(elem.tag, elem.VR, len(raw), raw, 0, False, True)
            out = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.save_as(out, enforce_file_format=False)
            try:
                shot = read_dicom_shot(out.getvalue(), name=f"{elem.keyword}={bad!r}")
            except InputError as exc:
                assert str(exc).startswith(f"{elem.keyword}={bad!r}: ") and "\n" not in str(exc)
            else:
                assert shot.pixels.shape == (40, 48)
            checked += 1
    assert checked > 200
