"""The archive's record in the case log (schema 4) and archive_case without a PACS: bad input,
PACS down (everything recorded, nothing lost), objects that cannot be built."""

from __future__ import annotations

import sqlite3

import pytest

from or_assist.dicom.send import parse_destination, store_objects
from or_assist.errors import InputError
from or_assist.session import schema
from or_assist.session.archive import archive_case
from or_assist.session.caselog import CASE_DB, CaseLog
from tests.dicom.orthanc import CT_PATIENT, free_port, identified_series
from tests.dicom.test_archive import PDF, case_files, make_case
from tests.session.caselog_cases import record_case


@pytest.fixture(scope="module")
def ct_dir(dicom_dir, tmp_path_factory):
    return identified_series(dicom_dir, tmp_path_factory.mktemp("ct") / "ct", **CT_PATIENT)


def _as_version_3(case_dir) -> None:
    conn = sqlite3.connect(case_dir / CASE_DB, isolation_level=None)
    conn.execute("DROP TABLE archive")
    conn.execute("UPDATE schema_version SET version = 3")
    conn.close()


def test_a_version_3_case_gains_the_archive_table(tmp_path):
    case_dir, _ = make_case(tmp_path)
    _as_version_3(case_dir)
    with CaseLog.open(case_dir, readonly=True) as log:
        assert log.schema_version == 3 and log.archive_status() == []
    with CaseLog.open(case_dir) as log:
        assert (log.migrated_from, log.schema_version) == (3, schema.SCHEMA_VERSION) == (3, 4)
        assert log.archive_status() == [] and len(log.captures()) == 3
    assert (case_dir / f"{CASE_DB}.v3.bak").is_file()


def test_record_archive_keeps_one_row_per_object_and_destination(tmp_path):
    case_dir, _ = make_case(tmp_path)
    with CaseLog.open(case_dir) as log:
        log.record_archive("report", "report", "1.2.3", "PACS@h:1", "pending")
        log.record_archive("report", "report", "1.2.3", "PACS@h:1", "failed", attempts=2, error="down", status_code=None)
        log.record_archive("report", "report", "1.2.3", "PACS@h:1", "pending")
        row = log.archive_status("PACS@h:1")[0]
        assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 2, "down")  # pending keeps the error
        log.record_archive("report", "report", "1.2.3", "PACS@h:1", "stored", attempts=1, status_code=0)
        log.record_archive("report", "report", "1.2.3", "OTHER@h:2", "failed", attempts=1, error="refused")
        rows = log.archive_status()
        assert [(r["destination"], r["status"], r["attempts"], r["last_error"]) for r in rows] == [
            ("PACS@h:1", "stored", 3, None), ("OTHER@h:2", "failed", 1, "refused")]
        with pytest.raises(InputError, match="status"):
            log.record_archive("report", "report", "1.2.3", "PACS@h:1", "done")
        with pytest.raises(InputError, match="sop_instance_uid"):
            log.record_archive("report", "report", "", "PACS@h:1", "stored")
    with CaseLog.open(case_dir, readonly=True) as log, pytest.raises(InputError, match="read-only"):
        log.record_archive("report", "report", "1.2.3", "PACS@h:1", "stored")


def test_pacs_down_records_every_object_and_changes_no_case_file(ct_dir, tmp_path):
    case_dir, _ = make_case(tmp_path)
    before = case_files(case_dir)
    dest = f"PACS@127.0.0.1:{free_port()}"
    summary = archive_case(case_dir, dest, ct_path=ct_dir, retries=1, backoff_s=0.01, timeout_s=2, batch_size=2)
    assert summary.n_pending == 7 and not summary.all_stored
    assert all(i.status == "failed" and "cannot connect" in i.reason for i in summary.items)
    # the first batch tried; once nothing of a batch could be sent, the rest is not tried again
    assert [i.reason.startswith("not sent: ") for i in summary.items] == [False] * 2 + [True] * 5
    with CaseLog.open(case_dir, readonly=True) as log:
        rows = log.archive_status(dest)
        assert log.case_summary()["ended"] is not None  # still the closed case it was
    assert len(rows) == 7 and all(r["status"] == "failed" and "cannot connect" in r["last_error"] for r in rows)
    assert case_files(case_dir) == before


def test_an_object_that_cannot_be_built_is_recorded_and_the_rest_goes_on(ct_dir, tmp_path):
    case_dir, _ = make_case(tmp_path)
    with CaseLog.open(case_dir, readonly=True) as log:
        overlay = log.captures()[0]["overlay_path"]
    overlay.write_bytes(b"damaged")
    dest = f"PACS@127.0.0.1:{free_port()}"
    summary = archive_case(case_dir, dest, ct_path=ct_dir, retries=0, timeout_s=2)
    bad = [i for i in summary.items if "not built" in (i.reason or "")]
    assert [i.object_key for i in bad] == ["capture/1/overlay"] and overlay.name in bad[0].reason
    assert sum("cannot connect" in (i.reason or "") for i in summary.items) == 6


def test_deidentified_archive_needs_no_ct_identity(real_ct_path, tmp_path):
    case_dir, _ = make_case(tmp_path)
    summary = archive_case(case_dir, f"PACS@127.0.0.1:{free_port()}", ct_path=real_ct_path, deidentify=True,
                           retries=0, timeout_s=2)
    assert len(summary.items) == 7 and all("cannot connect" in i.reason for i in summary.items)
    assert summary.notes == []


def test_an_open_case_is_archived_with_a_note(ct_dir, tmp_path):
    log, _ = record_case(tmp_path, close=False)
    try:
        summary = archive_case(log.case_dir, f"PACS@127.0.0.1:{free_port()}", ct_path=ct_dir, retries=0,
                               timeout_s=2)
    finally:
        log.close()
    assert len(summary.items) == 7 and "no end time" in summary.notes[0]


def test_bad_input_is_refused_before_anything_is_sent(ct_dir, dicom_dir, real_ct_path, tmp_path):
    case_dir, _ = make_case(tmp_path)
    dest = f"PACS@127.0.0.1:{free_port()}"
    with pytest.raises(InputError, match="--to.*AE@HOST:PORT"):
        archive_case(case_dir, "PACS:4242", ct_path=ct_dir)
    with pytest.raises(InputError, match="port must be"):
        archive_case(case_dir, "PACS@h:70000", ct_path=ct_dir)
    with pytest.raises(InputError, match="AE title"):
        archive_case(case_dir, "A_TITLE_LONGER_THAN_16@h:104", ct_path=ct_dir)
    with pytest.raises(InputError, match="pseudonym"):
        archive_case(case_dir, dest, ct_path=ct_dir, pseudonym="X")
    with pytest.raises(InputError, match="plan names no CT.*--deidentify"):
        archive_case(case_dir, dest)
    with pytest.raises(InputError, match=r"\.nii\.gz volume carries no patient identity"):
        archive_case(case_dir, dest, ct_path=real_ct_path)
    with pytest.raises(InputError, match="has no patient ID"):  # the real series is anonymised
        archive_case(case_dir, dest, ct_path=dicom_dir)
    with pytest.raises(InputError, match="not a case folder"):
        archive_case(tmp_path, dest, ct_path=ct_dir)
    with CaseLog.open(case_dir, readonly=True) as log:
        assert log.archive_status() == []


def test_destination_and_store_arguments():
    d = parse_destination("ORTHANC@pacs.example.org:4242")
    assert (d.ae_title, d.host, d.port, str(d)) == ("ORTHANC", "pacs.example.org", 4242, "ORTHANC@pacs.example.org:4242")
    assert parse_destination("A@[::1]:104").host == "::1"
    assert store_objects([], "PACS", "127.0.0.1", 104) == []
    with pytest.raises(InputError, match="retries"):
        store_objects([], "PACS", "127.0.0.1", 104, retries=-1)
    with pytest.raises(InputError, match="calling_ae"):
        store_objects([], "PACS", "127.0.0.1", 104, "BAD\\AE")
    import pydicom

    with pytest.raises(InputError, match=r"datasets\[0\]"):
        store_objects([pydicom.Dataset()], "PACS", "127.0.0.1", 104)
    assert PDF.startswith(b"%PDF-")
