"""Archiving a recorded case to a real Orthanc PACS, queried back over REST and C-FIND."""

from __future__ import annotations

import hashlib
import io

import cv2
import numpy as np
import pydicom
import pytest

from or_assist.session.archive import archive_case
from or_assist.session.caselog import CaseLog
from or_assist.session.report_pdf import find_chromium
from tests.dicom.orthanc import (CT_PATIENT, ORTHANC_BIN, OUR_AE, PACS_AE, Orthanc, free_port, identified_series,
                                 orthanc_available)
from tests.session.caselog_cases import BURNT_TEXT, PATIENT, record_case

pytestmark = pytest.mark.skipif(not orthanc_available(),
                                reason=f"Orthanc is not installed ({ORTHANC_BIN}); .ci/run installs the Debian package")

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"  # odd length: padded


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ct_dir(dicom_dir, tmp_path_factory):
    return identified_series(dicom_dir, tmp_path_factory.mktemp("ct") / "ct", **CT_PATIENT)


def make_case(root, pdf: bool = True):
    log, written = record_case(root)
    if pdf:
        (log.case_dir / "report.pdf").write_bytes(PDF)
    return log.case_dir, written


def case_files(case_dir) -> dict[str, str]:
    """SHA-256 of every file of the case but its database (which gains the archive rows)."""
    return {p.relative_to(case_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(case_dir.rglob("*")) if p.is_file() and not p.name.startswith("case.sqlite")}


def stored_by_uid(pacs: Orthanc) -> dict[str, pydicom.Dataset]:
    out = {}
    for oid in pacs.instances():
        ds = pydicom.dcmread(io.BytesIO(pacs.instance_file(oid)))
        assert ds.SOPInstanceUID not in out, "an object is stored twice"
        out[ds.SOPInstanceUID] = ds
    return out


def c_find(pacs: Orthanc, query: pydicom.Dataset) -> list[pydicom.Dataset]:
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    ae = AE(ae_title=OUR_AE)
    ae.add_requested_context(FIND)
    assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title=PACS_AE)
    assert assoc.is_established
    try:
        found = [ident for status, ident in assoc.send_c_find(query, FIND) if status and status.Status == 0xFF00]
    finally:
        assoc.release()
    return found


def test_archive_round_trips_bit_exact_and_is_sent_once(pacs, ct_dir, tmp_path):
    case_dir, written = make_case(tmp_path)
    before = case_files(case_dir)
    seen = []
    summary = archive_case(case_dir, f"{PACS_AE}@127.0.0.1:{pacs.dicom_port}", ct_path=ct_dir, on_result=seen.append,
                           timeout_s=10, batch_size=3)  # three associations
    assert summary.all_stored and len(summary.items) == 7 == len(seen)  # 3 captures x 2 + the report
    items = {i.object_key: i for i in summary.items}
    assert all(i.status == "stored" and i.status_code == 0 and i.attempts == 1 for i in items.values())

    stored = stored_by_uid(pacs)
    with CaseLog.open(case_dir, readonly=True) as log:
        captures, shots = log.captures(), {s["id"]: s for s in log.shots()}
        rows = log.archive_status(f"{PACS_AE}@127.0.0.1:{pacs.dicom_port}")
    assert {r["sop_instance_uid"] for r in rows} == {i.sop_instance_uid for i in items.values()}
    assert all(r["status"] == "stored" and r["attempts"] == 1 and r["last_error"] is None for r in rows)
    for c in captures:
        overlay = stored[items[f"capture/{c['id']}/overlay"].sop_instance_uid]
        image = stored[items[f"capture/{c['id']}/image"].sop_instance_uid]
        png_overlay = cv2.imread(str(c["overlay_path"]), cv2.IMREAD_UNCHANGED)
        png_image = cv2.imread(str(shots[c["shot_id"]]["pre_path"]), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(overlay.pixel_array, png_overlay[..., ::-1])  # BGR file, RGB object
        assert np.array_equal(image.pixel_array, png_image)
        assert np.array_equal(written["overlays"][c["id"]], png_overlay)
        for ds in (overlay, image):
            assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage and ds.Modality == "OT"
            assert ds.InstanceNumber == c["id"] and ds.BurnedInAnnotation == "YES"
    report = stored[items["report"].sop_instance_uid]
    assert report.EncapsulatedDocument[:report.EncapsulatedDocumentLength] == PDF
    assert report.Modality == "DOC" and report.MIMETypeOfEncapsulatedDocument == "application/pdf"
    for uid in (i.sop_instance_uid for i in items.values()):
        ds = stored[uid]
        assert (ds.PatientID, str(ds.PatientName)) == (CT_PATIENT["PatientID"], CT_PATIENT["PatientName"])
        assert ds.StudyInstanceUID == CT_PATIENT["StudyInstanceUID"] and ds.AccessionNumber == "ACC42"

    study_q = pydicom.Dataset()
    study_q.QueryRetrieveLevel, study_q.PatientID, study_q.StudyInstanceUID = "STUDY", CT_PATIENT["PatientID"], ""
    assert [s.StudyInstanceUID for s in c_find(pacs, study_q)] == [CT_PATIENT["StudyInstanceUID"]]
    series_q = pydicom.Dataset()
    series_q.QueryRetrieveLevel, series_q.StudyInstanceUID = "SERIES", CT_PATIENT["StudyInstanceUID"]
    series_q.SeriesInstanceUID = series_q.SeriesDescription = series_q.Modality = ""
    series_q.NumberOfSeriesRelatedInstances = ""
    series = {s.SeriesDescription: (s.Modality, int(s.NumberOfSeriesRelatedInstances)) for s in c_find(pacs, series_q)}
    assert series == {"or_assist captures": ("OT", 3), "or_assist captures with overlay": ("OT", 3),
                      "or_assist report": ("DOC", 1)}

    again = archive_case(case_dir, f"{PACS_AE}@127.0.0.1:{pacs.dicom_port}", ct_path=ct_dir, timeout_s=10)
    assert [i.status for i in again.items] == ["already stored"] * 7 and again.all_stored
    assert len(stored_by_uid(pacs)) == len(stored)
    assert case_files(case_dir) == before  # the case's own files are never changed


def test_pacs_stopped_mid_archive_then_restarted_loses_and_duplicates_nothing(ct_dir, tmp_path):
    server = Orthanc(tmp_path / "orthanc").start()
    try:
        case_dir, _ = make_case(tmp_path / "cases")
        dest = f"{PACS_AE}@127.0.0.1:{server.dicom_port}"

        def stop_after_two(item):
            if sum(i.status == "stored" for i in first_items) == 1 and item.status == "stored":
                server.stop()  # PACS goes down in the middle of the archive
            first_items.append(item)

        first_items = []
        first = archive_case(case_dir, dest, ct_path=ct_dir, retries=1, backoff_s=0.05, timeout_s=2,
                             on_result=stop_after_two)
        assert sum(i.status == "stored" for i in first.items) == 2
        assert first.n_pending == 5 and not first.all_stored and "5 pending" in first.line()
        failed = [i for i in first.items if i.status == "failed"]
        assert all("cannot connect" in i.reason or "no answer" in i.reason for i in failed), failed[0].reason
        with CaseLog.open(case_dir, readonly=True) as log:
            rows = log.archive_status(dest)
        assert sorted(r["status"] for r in rows) == ["failed"] * 5 + ["stored"] * 2

        server.start()
        assert len(server.instances()) == 2  # what was confirmed before the stop is kept
        second = archive_case(case_dir, dest, ct_path=ct_dir, timeout_s=10)
        assert second.all_stored
        assert sorted(i.status for i in second.items) == ["already stored"] * 2 + ["stored"] * 5
        stored = stored_by_uid(server)  # fails if any object is there twice
        assert set(stored) == {i.sop_instance_uid for i in second.items} and len(stored) == 7
        with CaseLog.open(case_dir, readonly=True) as log:
            rows = log.archive_status(dest)
        assert len(rows) == 7 and all(r["status"] == "stored" for r in rows)
        assert all(r["attempts"] >= 1 for r in rows if r["sop_instance_uid"] in {i.sop_instance_uid for i in failed})
    finally:
        server.stop()


def test_deidentified_archive_carries_no_identity_of_the_ct(pacs, ct_dir, tmp_path):
    case_dir, _ = make_case(tmp_path, pdf=False)  # the report is made (pseudonymised) by the archive
    summary = archive_case(case_dir, f"{PACS_AE}@127.0.0.1:{pacs.dicom_port}", ct_path=ct_dir, deidentify=True,
                           pseudonym="STUDY-SUBJ-7", timeout_s=10)
    stored = stored_by_uid(pacs)
    objects = [stored[i.sop_instance_uid] for i in summary.items if i.status == "stored"]
    report = next(i for i in summary.items if i.kind == "report")
    if find_chromium() is None:
        assert report.status == "failed" and "Chromium" in report.reason
    else:
        assert report.status == "stored", report.reason
    assert len(objects) == (7 if find_chromium() else 6)
    study_uids = {ds.StudyInstanceUID for ds in objects}
    assert len(study_uids) == 1 and CT_PATIENT["StudyInstanceUID"] not in study_uids
    for ds in objects:
        assert ds.PatientID == "STUDY-SUBJ-7" == str(ds.PatientName) and ds.PatientIdentityRemoved == "YES"
        text = str(ds)
        for keyword, value in CT_PATIENT.items():
            assert value not in text or len(value) < 3, keyword
            assert ds.get(keyword) in (None, "") or keyword in ("PatientID", "PatientName", "StudyInstanceUID"), keyword
        assert PATIENT not in text
    captures = [ds for ds in objects if ds.Modality == "OT"]
    assert all(ds.BurnedInAnnotation == "NO" for ds in captures)
    # the burnt-in patient text (top-left corner) is masked black in every image
    for ds in captures:
        corner = ds.pixel_array[:20, :150] if ds.SamplesPerPixel == 1 else ds.pixel_array[:20, :150].max(axis=2)
        assert corner.max() < 200, BURNT_TEXT


def test_pacs_refusing_the_called_ae_fails_each_object_clearly(pacs, ct_dir, tmp_path):
    case_dir, _ = make_case(tmp_path)
    n_before = len(pacs.instances())
    summary = archive_case(case_dir, f"NOTTHEPACS@127.0.0.1:{pacs.dicom_port}", ct_path=ct_dir, timeout_s=10)
    assert summary.n_pending == 7 and not summary.all_stored
    for item in summary.items:
        assert item.status == "failed" and item.attempts == 0
        assert "refused the association" in item.reason and "NOTTHEPACS" in item.reason
    assert len(pacs.instances()) == n_before
    with CaseLog.open(case_dir, readonly=True) as log:
        rows = log.archive_status()
    assert len(rows) == 7 and all(r["status"] == "failed" and "refused" in r["last_error"] for r in rows)


def test_cli_archive_exit_codes_and_lines(pacs, ct_dir, tmp_path, capsys):
    from or_assist.cli import main

    case_dir, _ = make_case(tmp_path)
    down = f"{PACS_AE}@127.0.0.1:{free_port()}"
    assert main(["archive", str(case_dir), "--to", down, "--ct", str(ct_dir), "--retries", "0",
                 "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert out.count("failed") >= 7 and "cannot connect" in out and "7 pending" in out and "run the archive again" in out

    assert main(["archive", str(case_dir), "--to", down, "--ct", str(ct_dir), "--echo", "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert "C-ECHO" in out and "cannot connect" in out and "nothing sent" in out

    up = f"{PACS_AE}@127.0.0.1:{pacs.dicom_port}"
    assert main(["archive", str(case_dir), "--to", up, "--ct", str(ct_dir), "--echo", "--timeout", "10"]) == 0
    out = capsys.readouterr().out
    assert "C-ECHO" in out and "success" in out and out.count("stored ") >= 7 and "0 pending" in out

    assert main(["archive", str(case_dir), "--to", "no-port-here", "--ct", str(ct_dir)]) == 2
    assert "--to" in capsys.readouterr().err
    assert main(["archive", str(case_dir), "--to", up]) == 2  # the recorded plan names no CT
    err = capsys.readouterr().err
    assert "no patient identity" in err and "--deidentify" in err
    assert main(["archive", str(case_dir), "--to", up, "--ct", str(ct_dir), "--pseudonym", "X"]) == 2
    assert "--pseudonym" in capsys.readouterr().err
