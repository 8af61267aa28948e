"""The CT's patient identity (real DICOM fixture) and the wrong-patient check."""

from __future__ import annotations

import pydicom
import pytest

from or_assist.dicom.identity import PatientIdentity, WrongPatientError, check_patient, ct_identity
from or_assist.errors import InputError
from tests.dicom.orthanc import identified_series


def test_real_anonymised_ct_reads_empty_values_as_none(dicom_dir):
    ident, reason = ct_identity(dicom_dir)
    assert reason is None
    assert ident.patient_id is None and ident.study_instance_uid is None and ident.patient_name is None
    assert ident.study_date == "20221208"
    # the first slice in the loader's order (files sorted by name within the one series)
    assert ident.source == str(sorted(dicom_dir.iterdir())[0])


def test_identity_of_a_series_folder_and_of_one_file(dicom_dir, tmp_path):
    folder = identified_series(dicom_dir, tmp_path / "ct", PatientID="PAT-001", PatientName="Doe^Jane",
                                PatientBirthDate="19600102", PatientSex="F", StudyInstanceUID="1.2.826.0.1.3680043.10.1",
                                AccessionNumber="ACC9", InstitutionName="General")
    ident, reason = ct_identity(folder)
    assert reason is None
    assert (ident.patient_id, ident.patient_name, ident.birth_date, ident.sex) == ("PAT-001", "Doe^Jane", "19600102", "F")
    assert ident.study_instance_uid == "1.2.826.0.1.3680043.10.1" and ident.accession_number == "ACC9"
    assert ident.dicom_values()["InstitutionName"] == "General"
    one, _ = ct_identity(next(folder.iterdir()))
    assert one.patient_id == "PAT-001"


def test_series_with_most_slices_gives_the_identity(dicom_dir, tmp_path):
    folder = identified_series(dicom_dir, tmp_path / "ct", PatientID="MAIN", SeriesInstanceUID="1.2.3.4")
    # a two-slice scout series of another patient ID, sorted first by name
    for i, path in enumerate(sorted(dicom_dir.iterdir())[:2]):
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.SeriesInstanceUID = "SCOUT", "1.2.3.5"
        ds.save_as(folder / f"AAA_{i}")
    (folder / "notes.txt").write_text("not dicom", encoding="utf-8")
    ident, _ = ct_identity(folder)
    assert ident.patient_id == "MAIN"


def test_volume_files_have_no_identity_with_a_reason(real_ct_path):
    ident, reason = ct_identity(real_ct_path)
    assert ident is None
    assert ".nii.gz" in reason and "no patient identity" in reason


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        ct_identity(tmp_path / "missing")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\0" * 300)
    with pytest.raises(InputError, match="junk.bin.*not a DICOM file"):
        ct_identity(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    ident, reason = ct_identity(empty)
    assert ident is None and "no DICOM image" in reason


CT = PatientIdentity(patient_id="PAT-001", study_instance_uid="1.2.3", patient_name="Doe^Jane")


def test_same_patient_and_study_passes():
    assert check_patient(PatientIdentity(patient_id="PAT-001", study_instance_uid="1.2.3"), CT) is None


def test_other_study_of_the_same_patient_warns():
    warning = check_patient(PatientIdentity(patient_id="PAT-001", study_instance_uid="1.2.9"), CT)
    assert "same patient" in warning and "1.2.9" in warning and "1.2.3" in warning


def test_wrong_patient_is_refused_naming_both_ids():
    other = PatientIdentity(patient_id="PAT-777", study_instance_uid="1.2.3", source="shot.dcm")
    with pytest.raises(WrongPatientError, match=r"shot\.dcm.*'PAT-777'.*'PAT-001'") as info:
        check_patient(other, CT)
    assert isinstance(info.value, InputError)
    warning = check_patient(other, CT, override=True)
    assert "PAT-777" in warning and "PAT-001" in warning and "overridden" in warning


def test_image_without_patient_id_cannot_be_confirmed():
    with pytest.raises(WrongPatientError, match="cannot be confirmed.*PAT-001"):
        check_patient(PatientIdentity(), CT)


def test_ct_without_patient_id_cannot_check():
    warning = check_patient(PatientIdentity(patient_id="PAT-001"), PatientIdentity())
    assert "could not be checked" in warning
    assert "could not be checked" in check_patient(PatientIdentity(patient_id="X"), None)


def test_wrong_argument_types():
    with pytest.raises(InputError, match="incoming"):
        check_patient({"patient_id": "x"}, CT)
    with pytest.raises(InputError, match="ds"):
        PatientIdentity.from_dataset({"PatientID": "x"})
