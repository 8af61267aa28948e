"""DICOM objects for the archive: secondary capture images and the encapsulated PDF, written to
bytes and read back with pydicom; deterministic UIDs; de-identification."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from or_assist.dicom.identity import PatientIdentity
from or_assist.dicom.objects import (ENCAPSULATED_PDF_STORAGE, SERIES, Deidentification, capture_image,
                                     deidentified_identity, derived_pseudonym, encapsulated_pdf, object_uid)
from or_assist.errors import InputError

CT = PatientIdentity(patient_id="PAT-1", patient_name="Doe^Jane", birth_date="19600102", sex="F",
                     study_instance_uid="1.2.826.0.1.3680043.8.498.77", accession_number="ACC1", study_id="S1",
                     study_date="20240101", study_time="101010", referring_physician_name="Ref^Rob",
                     institution_name="General")


def _round_trip(ds: pydicom.Dataset) -> pydicom.Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


def test_uids_are_deterministic_per_case_and_object():
    a = object_uid("20250101T000000_abcdef", "capture/1/overlay")
    assert a == object_uid("20250101T000000_abcdef", "capture/1/overlay")
    others = {object_uid("20250101T000000_abcdef", "capture/1/image"), object_uid("20250101T000000_abcdee",
              "capture/1/overlay"), object_uid("20250101T000000_abcdef", "capture/1/overlay", Deidentification("X"))}
    assert a not in others and len(others) == 3
    assert pydicom.uid.UID(a).is_valid and len(a) <= 64


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_capture_round_trips_bit_exact(dtype):
    rng = np.random.default_rng(1)
    image = rng.integers(0, np.iinfo(dtype).max, (37, 53), dtype=dtype)
    ds = _round_trip(capture_image(image, case_id="case1", identity=CT, kind="capture", object_key="capture/4/image",
                                   instance_number=4, timestamp_s=1_700_000_000.0))
    assert np.array_equal(ds.pixel_array, image) and ds.pixel_array.dtype == dtype
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage and ds.Modality == "OT"
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsStored == 8 * image.itemsize
    assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate) == ("PAT-1", "Doe^Jane", "19600102")
    assert ds.StudyInstanceUID == CT.study_instance_uid and ds.AccessionNumber == "ACC1"
    assert (ds.SeriesNumber, ds.SeriesDescription) == SERIES["capture"]
    assert ds.SeriesInstanceUID == object_uid("case1", "series/capture")
    assert ds.SOPInstanceUID == object_uid("case1", "capture/4/image") == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.InstanceNumber == 4 and ds.BurnedInAnnotation == "YES"
    assert ds.ContentDate.startswith("2023111")  # 2023-11-14/15 by the local time zone


def test_colour_capture_is_stored_rgb_from_bgr():
    bgr = np.zeros((8, 9, 3), np.uint8)
    bgr[..., 0] = 200  # blue in BGR
    ds = _round_trip(capture_image(bgr, case_id="c", identity=CT, kind="capture_overlay",
                                   object_key="capture/1/overlay", instance_number=1))
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert np.array_equal(ds.pixel_array, bgr[..., ::-1])
    assert ds.SeriesDescription == "or_assist captures with overlay"


@pytest.mark.parametrize("n", [11, 12])
def test_encapsulated_pdf_keeps_the_bytes(n):
    pdf = b"%PDF-1.4\n" + b"x" * (n - 9)
    ds = _round_trip(encapsulated_pdf(pdf, case_id="c", identity=CT, timestamp_s=1_700_000_000.0))
    assert ds.SOPClassUID == ENCAPSULATED_PDF_STORAGE == ds.file_meta.MediaStorageSOPClassUID
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf" and ds.Modality == "DOC"
    assert len(ds.EncapsulatedDocument) % 2 == 0 and ds.EncapsulatedDocumentLength == n
    assert ds.EncapsulatedDocument[:ds.EncapsulatedDocumentLength] == pdf
    assert ds.PatientID == "PAT-1" and ds.StudyInstanceUID == CT.study_instance_uid
    assert ds.SeriesInstanceUID == object_uid("c", "series/report")


def test_ct_without_study_uid_gets_one_study_per_case():
    ident = PatientIdentity(patient_id="P")
    a = capture_image(np.zeros((4, 4), np.uint8), case_id="c", identity=ident, kind="capture", object_key="k1",
                      instance_number=1)
    b = encapsulated_pdf(b"%PDF-1.4 x", case_id="c", identity=ident)
    assert a.StudyInstanceUID == b.StudyInstanceUID == object_uid("c", "study")


def test_deidentified_objects_carry_no_identity_and_share_a_new_study():
    deid = Deidentification(derived_pseudonym("case7"))
    ident = deidentified_identity(CT, "case7", deid)
    img = _round_trip(capture_image(np.zeros((4, 4), np.uint8), case_id="case7", identity=ident, kind="capture",
                                    object_key="capture/1/image", instance_number=1, timestamp_s=1.7e9, deid=deid,
                                    text_masked=True))
    pdf = _round_trip(encapsulated_pdf(b"%PDF-1.4 x", case_id="case7", identity=ident, timestamp_s=1.7e9, deid=deid))
    for ds in (img, pdf):
        text = str(ds)
        for secret in ("PAT-1", "Doe", "19600102", "ACC1", "General", "Ref^Rob", CT.study_instance_uid, "20231114"):
            assert secret not in text, secret
        assert ds.PatientID == deid.pseudonym == str(ds.PatientName) and ds.PatientIdentityRemoved == "YES"
        assert ds.PatientBirthDate in ("", None)
    assert img.StudyInstanceUID == pdf.StudyInstanceUID != CT.study_instance_uid
    assert img.BurnedInAnnotation == "NO"
    assert img.SOPInstanceUID != object_uid("case7", "capture/1/image")
    assert deid.pseudonym == derived_pseudonym("case7") != derived_pseudonym("case8")


def test_bad_input_is_named():
    with pytest.raises(InputError, match="image"):
        capture_image(np.zeros((4, 4), np.float32), case_id="c", identity=CT, kind="capture", object_key="k",
                      instance_number=1)
    with pytest.raises(InputError, match="image"):
        capture_image(np.zeros((4, 4, 3), np.uint16), case_id="c", identity=CT, kind="capture_overlay",
                      object_key="k", instance_number=1)
    with pytest.raises(InputError, match="kind"):
        capture_image(np.zeros((4, 4), np.uint8), case_id="c", identity=CT, kind="xray", object_key="k",
                      instance_number=1)
    with pytest.raises(InputError, match="pdf_bytes"):
        encapsulated_pdf(b"<html>", case_id="c", identity=CT)
    with pytest.raises(InputError, match="pseudonym"):
        deidentified_identity(CT, "c", Deidentification("x" * 65))
    with pytest.raises(InputError, match="pseudonym"):
        deidentified_identity(CT, "c", Deidentification("Doe^Jane"))
    with pytest.raises(InputError, match="case_id"):
        object_uid("", "k")


def test_names_outside_ascii_round_trip_as_utf8():
    ident = PatientIdentity(patient_id="P-ü", patient_name="Müller^Jürgen", study_instance_uid="1.2.3")
    for ds in (capture_image(np.zeros((4, 4), np.uint8), case_id="c", identity=ident, kind="capture", object_key="k",
                             instance_number=1), encapsulated_pdf(b"%PDF-1.4 x", case_id="c", identity=ident)):
        back = _round_trip(ds)
        assert back.SpecificCharacterSet == "ISO_IR 192"
        assert (str(back.PatientName), back.PatientID) == ("Müller^Jürgen", "P-ü")
