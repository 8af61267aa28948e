"""Archiving a case to PACS: its captures (with and without overlay) as DICOM secondary
capture images and its report as encapsulated PDF, in new series of the patient's study.

:func:`archive_case` builds the objects (:mod:`or_assist.dicom.objects`) with the patient
and study of the plan's CT (:func:`or_assist.dicom.identity.ct_identity`), sends with C-STORE
(:func:`or_assist.dicom.send.store_objects`) only those not yet stored at that destination,
and records each object's status in the case log (``archive`` table, schema 4): ``pending``
before it is sent, then ``stored`` or ``failed`` with the reason as soon as PACS answers (or
does not). PACS down means every object is recorded as failed and nothing is lost: a later
run sends what is missing, and since the UIDs are derived from the case and the object, a
re-sent object is the same object, never a duplicate. The case's own files are never
changed (the case database gains its archive rows).

Objects per capture ``N``: ``capture/N/overlay`` (the overlay as shown, RGB) and
``capture/N/image`` (the shot's preprocessed frame when recorded, else the raw frame, grey
8 or 16 bit), pixel for pixel as stored in the case. The report: the case's ``report.pdf`` if
there is one, else made now (HTML report printed by headless Chromium). De-identified
(``deidentify=True``): pseudonym for patient name and ID, no dates, burnt-in text masked in
every image, the report pseudonymised.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from or_assist.dicom.identity import PatientIdentity, ct_identity
from or_assist.dicom.objects import (Deidentification, capture_image, deidentified_identity, derived_pseudonym,
                                     encapsulated_pdf, object_uid)
from or_assist.dicom.send import STORED, Destination, StoreResult, parse_destination, store_objects
from or_assist.errors import InputError
from or_assist.session.caselog import CaseLog
from or_assist.session.export import shown_image

__all__ = ["ArchiveItem", "ArchiveSummary", "REPORT_PDF", "archive_case", "case_identity"]

REPORT_PDF = "report.pdf"
ALREADY_STORED = "already stored"


@dataclass
class ArchiveItem:
    """One object of the archive: ``status`` ``"stored"``, ``"already stored"`` or ``"failed"``."""

    object_key: str
    kind: str
    sop_instance_uid: str
    status: str
    reason: str | None = None
    status_code: int | None = None
    attempts: int = 0


@dataclass
class ArchiveSummary:
    """The outcome of :func:`archive_case`: one item per object, in the order their status became known."""

    destination: str
    deidentified: bool
    items: list[ArchiveItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_pending(self) -> int:
        """Objects not stored at the destination (they are sent by the next run)."""
        return sum(i.status not in (STORED, ALREADY_STORED) for i in self.items)

    @property
    def all_stored(self) -> bool:
        return self.n_pending == 0

    def line(self) -> str:
        """One summary line."""
        new = sum(i.status == STORED for i in self.items)
        old = sum(i.status == ALREADY_STORED for i in self.items)
        text = f"{self.destination}: {new} stored now, {old} already stored, {self.n_pending} pending"
        return text + ("" if self.all_stored else " (not stored yet: run the archive again to send them)")


def case_identity(summary: dict, ct_path=None) -> tuple[PatientIdentity | None, str | None]:
    """The patient identity for a case: of ``ct_path`` if given, else of the plan's CT.

    Returns ``(identity or None, reason when None)``.
    """
    if ct_path is None:
        plan = summary.get("plan") or {}
        ct = plan.get("ct") if isinstance(plan, dict) else None
        text = ct.get("path") if isinstance(ct, dict) else None
        if not text:
            return None, "the case's plan names no CT (give the CT with --ct)"
        ct_path = Path(text)
        if not ct_path.is_absolute() and summary.get("plan_path"):
            ct_path = Path(summary["plan_path"]).parent / ct_path
        if not ct_path.exists():
            return None, f"the plan's CT {ct_path} is not there (give the CT with --ct)"
    return ct_identity(ct_path)


def _capture_objects(captures: list[dict], shots: dict[int, dict]):
    """``(key, kind, capture, loader)`` for each object made from the captures."""
    out = []
    for c in captures:
        shot = shots.get(c["shot_id"], {})
        masks = [c["overlay_mask_path"], shot.get("pre_mask_path"), shot.get("raw_mask_path")]
        out.append((f"capture/{c['id']}/overlay", "capture_overlay", c, (c["overlay_path"], c["overlay_sha256"], masks)))
        if shot.get("pre_path") is not None:
            base = (shot["pre_path"], shot.get("pre_sha256"), [shot.get("pre_mask_path")])
        else:
            base = (shot.get("raw_path"), shot.get("raw_sha256"), [shot.get("raw_mask_path")])
        out.append((f"capture/{c['id']}/image", "capture", c, base))
    return out


def _report_pdf(case_dir: Path, deidentify: bool) -> bytes:
    """The case's report PDF, or one made now (pseudonymised when de-identifying)."""
    own = case_dir / REPORT_PDF
    if own.is_file() and not deidentify:
        return own.read_bytes()
    from or_assist.session.report import build_report
    from or_assist.session.report_pdf import export_pdf

    with tempfile.TemporaryDirectory(prefix="or_assist_archive_") as tmp:
        html = build_report(case_dir, Path(tmp) / "report.html", mask_text=True, pseudonymise=deidentify)
        return export_pdf(html, Path(tmp) / "report.pdf").read_bytes()


def archive_case(case_dir: str | os.PathLike, destination: str | Destination, *, calling_ae: str = "ORASSIST",
                 ct_path: str | os.PathLike | None = None, deidentify: bool = False, pseudonym: str | None = None,
                 retries: int = 2, backoff_s: float = 1.0, timeout_s: float = 30.0, batch_size: int = 16,
                 on_result: Callable[[ArchiveItem], None] | None = None) -> ArchiveSummary:
    """Archive a case to PACS (module doc).

    Parameters
    ----------
    case_dir : path-like
        The case folder.
    destination : str or Destination
        The PACS as ``AE@HOST:PORT``.
    calling_ae : str
        Our AE title, as PACS knows it.
    ct_path : path-like, optional
        The CT whose DICOM header gives patient and study; default the plan's CT.
    deidentify : bool
        Pseudonym instead of the patient's identity, no dates, text masked.
    pseudonym : str, optional
        The pseudonym (default one derived from the case id); only with ``deidentify``.
    retries, backoff_s, timeout_s
        As for :func:`or_assist.dicom.send.store_objects`.
    batch_size : int
        Objects built and sent over one association at a time (bounds the memory held). When
        no object of a batch could even be sent (PACS unreachable or refusing), the rest of
        the run is recorded as failed with the same reason without trying again.
    on_result : callable, optional
        Called with each :class:`ArchiveItem` once its status is known (already stored,
        not buildable, or PACS's answer).

    Returns
    -------
    ArchiveSummary

    Raises
    ------
    InputError
        Bad destination or AE title, a case that cannot be opened, a pseudonym without
        ``deidentify``, or no patient identity (a CT without a DICOM header or without a
        patient ID) when not de-identifying. Network faults never raise.
    """
    dest = destination if isinstance(destination, Destination) else parse_destination(destination)
    if pseudonym is not None and not deidentify:
        raise InputError("a pseudonym is only used with deidentify", "pseudonym")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise InputError(f"expected an integer >= 1, got {batch_size!r}", "batch_size")
    where = str(dest)
    summary = ArchiveSummary(where, bool(deidentify))
    log = CaseLog.open(case_dir)
    try:
        info = log.case_summary()
        case_id = info["case_id"]
        identity, reason = case_identity(info, ct_path)
        deid = None
        if deidentify:
            deid = Deidentification(pseudonym if pseudonym is not None else derived_pseudonym(case_id))
            identity = deidentified_identity(identity or PatientIdentity(), case_id, deid)
        elif identity is None or not identity.patient_id:
            why = reason or f"the CT's DICOM header ({identity.source}) has no patient ID"
            raise InputError(f"no patient identity to archive under: {why}; archive de-identified instead "
                             "(--deidentify) or give a DICOM CT of the patient (--ct)", str(case_dir))
        if info["ended"] is None:
            summary.notes.append("the case has no end time (still open, or interrupted): captures recorded later "
                                 "are sent by a later archive, but the report stored now is not replaced")
        stored = {r["sop_instance_uid"] for r in log.archive_status(where) if r["status"] == STORED}
        shots = {s["id"]: s for s in log.shots()}
        plans = _capture_objects(log.captures(), shots) + [("report", "report", None, None)]
        batch: list[tuple[ArchiveItem, object]] = []  # built, not yet sent (at most batch_size)
        unreachable: list[str] = []  # why PACS could not be reached: the rest is not tried again in this run

        def done(item: ArchiveItem) -> None:
            summary.items.append(item)
            if on_result is not None:
                on_result(item)

        def fail(item: ArchiveItem, reason: str) -> None:
            item.status, item.reason = "failed", reason
            log.record_archive(item.object_key, item.kind, item.sop_instance_uid, where, "failed", error=reason)
            done(item)

        def record(index: int, result: StoreResult) -> None:
            item = sent[index][0]
            item.status, item.reason = result.status, result.reason
            item.status_code, item.attempts = result.status_code, result.attempts
            log.record_archive(item.object_key, item.kind, item.sop_instance_uid, where, result.status,
                               attempts=result.attempts, error=result.reason, status_code=result.status_code)
            done(item)

        def flush() -> None:
            nonlocal sent
            sent = list(batch)
            batch.clear()
            if not sent:
                return
            results = store_objects([ds for _, ds in sent], dest.ae_title, dest.host, dest.port, calling_ae,
                                    retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, on_result=record)
            if all(r.status != STORED and r.attempts == 0 for r in results):
                unreachable.append(results[0].reason or "PACS could not be reached")

        sent: list[tuple[ArchiveItem, object]] = []
        for key, kind, capture, source in plans:
            item = ArchiveItem(key, kind, object_uid(case_id, key, deid), "pending")
            if item.sop_instance_uid in stored:
                item.status = ALREADY_STORED
                done(item)
                continue
            if unreachable:
                fail(item, f"not sent: {unreachable[0]}")
                continue
            try:
                if kind == "report":
                    ds = encapsulated_pdf(_report_pdf(log.case_dir, deidentify), case_id=case_id, identity=identity,
                                          object_key=key, timestamp_s=info["ended"] or info["started"], deid=deid)
                else:
                    path, sha, masks = source
                    if path is None:
                        raise InputError("the shot has no recorded frame", key)
                    image, _ = shown_image(log, path, sha, masks, mask_text=deid is not None)
                    ds = capture_image(image, case_id=case_id, identity=identity, kind=kind, object_key=key,
                                       instance_number=capture["id"], timestamp_s=capture["timestamp"], deid=deid,
                                       text_masked=deid is not None)
            except InputError as exc:
                fail(item, f"not built: {exc}")
                continue
            log.record_archive(key, kind, item.sop_instance_uid, where, "pending")
            batch.append((item, ds))
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        log.close(end=False)
    return summary

