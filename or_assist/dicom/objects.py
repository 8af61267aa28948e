"""DICOM objects for the PACS archive: captures as secondary capture images, the report as
encapsulated PDF, in new series of the patient's study.

Identity: patient and study come from the plan's CT (:class:`~or_assist.dicom.identity.PatientIdentity`).
UIDs are deterministic, derived from the case id and the object's key
(:func:`object_uid`): building the same object again gives the same SOP instance UID, so a
re-sent object replaces nothing and duplicates nothing in PACS. Each kind of object has its
own series in the case (:data:`SERIES`).

De-identification (:func:`deidentified_identity`, :class:`Deidentification`): patient name and ID become a
pseudonym (given, or derived from the case id), birth date, sex, accession number, study
ID, referring physician, institution and study date/time are removed, and the study UID is
replaced by one derived from the CT's study UID and the pseudonym, the same for every object
of the case (the linkage inside the case is kept, the link to the real study is not).
``PatientIdentityRemoved`` is YES and ``DeidentificationMethod`` says what was done. The
pixels must then come text-masked (the caller masks burnt-in text before building).
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from dataclasses import dataclass

import numpy as np
import pydicom
from highdicom.sc import SCImage
from pydicom.dataset import FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from or_assist.dicom.identity import PatientIdentity
from or_assist.errors import InputError

__all__ = ["SERIES", "ENCAPSULATED_PDF_STORAGE", "MANUFACTURER", "Deidentification", "object_uid",
           "derived_pseudonym", "deidentified_identity", "capture_image", "encapsulated_pdf"]

#: kind -> (series number, series description)
SERIES = {"capture": (9101, "or_assist captures"),
          "capture_overlay": (9102, "or_assist captures with overlay"),
          "report": (9103, "or_assist report")}
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/or_assist/dicom-uids")
MANUFACTURER = "or_assist"
_DEID_METHOD = "or_assist: pseudonym; dates, IDs removed; burnt-in text masked"  # LO: 64 characters at most


@dataclass(frozen=True)
class Deidentification:
    """How to de-identify a case's objects: the pseudonym that replaces patient name and ID."""

    pseudonym: str


def object_uid(case_id: str, key: str, deidentified: Deidentification | None = None) -> str:
    """A UID derived from the case id and an object key (same inputs, same UID).

    Parameters
    ----------
    case_id : str
        The case's id (:meth:`~or_assist.session.caselog.CaseLog.case_summary`).
    key : str
        What the UID names, e.g. ``"capture/3/overlay"``, ``"series/capture"``, ``"study"``.
    deidentified : Deidentification, optional
        De-identified objects get other UIDs than the identified ones of the same case.
    """
    if not isinstance(case_id, str) or not case_id:
        raise InputError(f"expected a non-empty case id, got {case_id!r}", "case_id")
    if not isinstance(key, str) or not key:
        raise InputError(f"expected a non-empty object key, got {key!r}", "key")
    sources = [case_id, key] + ([] if deidentified is None else ["deid", deidentified.pseudonym])
    return _uid(sources)


def _uid(sources: list[str]) -> str:
    """``2.25.`` and the decimal of a name-based (version 5) UUID of ``sources``: deterministic, at most 44 characters."""
    return "2.25." + str(uuid.uuid5(_UID_NAMESPACE, "\x1f".join(sources)).int)


def derived_pseudonym(case_id: str) -> str:
    """A pseudonym derived from the case id alone (no patient data in it): ``ORA-`` and 12 hex digits."""
    return "ORA-" + hashlib.sha256(f"or_assist pseudonym {case_id}".encode("utf-8")).hexdigest()[:12].upper()


def deidentified_identity(identity: PatientIdentity, case_id: str, deid: Deidentification) -> PatientIdentity:
    """The identity the de-identified objects carry (module doc)."""
    p = deid.pseudonym
    if (not isinstance(p, str) or not p.strip() or len(p) > 64 or p != p.strip()
            or any(ch in p for ch in "\\^=") or not p.isprintable()):
        raise InputError(f"expected a pseudonym of 1 to 64 printable characters without \\, ^ or = and no "
                         f"leading or trailing space, got {p!r}", "pseudonym")
    study_seed = identity.study_instance_uid or case_id
    study = _uid(["deid study", study_seed, deid.pseudonym])
    return PatientIdentity(patient_id=deid.pseudonym, patient_name=deid.pseudonym, study_instance_uid=study)


def _study_uid(identity: PatientIdentity, case_id: str, deid: Deidentification | None) -> str:
    return identity.study_instance_uid or object_uid(case_id, "study", deid)


def _when(timestamp_s: float | None) -> tuple[str, str] | tuple[None, None]:
    if timestamp_s is None:
        return None, None
    t = datetime.datetime.fromtimestamp(float(timestamp_s))
    return t.strftime("%Y%m%d"), t.strftime("%H%M%S.%f")


def _set_common(ds: pydicom.Dataset, identity: PatientIdentity, deid: Deidentification | None,
                timestamp_s: float | None) -> None:
    """Fields both kinds share: character set, software, institution, content date, de-identification marks."""
    from or_assist import __version__

    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names as the CT spells them
    ds.SoftwareVersions = str(__version__)
    if identity.institution_name and deid is None:
        ds.InstitutionName = identity.institution_name
    date, time = _when(timestamp_s)
    if deid is None and date is not None:
        ds.ContentDate, ds.ContentTime = date, time
    if deid is not None:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = _DEID_METHOD
        for keyword in ("DateOfSecondaryCapture", "TimeOfSecondaryCapture", "ContentDate", "ContentTime"):
            if keyword in ds:
                setattr(ds, keyword, None)  # type 2 where required; never the real date
        for keyword in ("InstanceCreationDate", "InstanceCreationTime"):
            if keyword in ds:
                delattr(ds, keyword)


def capture_image(image: np.ndarray, *, case_id: str, identity: PatientIdentity, kind: str, object_key: str,
                  instance_number: int, timestamp_s: float | None = None, deid: Deidentification | None = None,
                  text_masked: bool = False) -> pydicom.Dataset:
    """A secondary capture image of one capture (with or without overlay).

    Parameters
    ----------
    image : (H, W) uint8/uint16 or (H, W, 3) uint8 ndarray
        Grey (stored MONOCHROME2, 8 or 16 bit) or BGR as the case stores it (stored RGB).
    case_id : str
    identity : PatientIdentity
        The CT's identity (already de-identified by :func:`deidentified_identity` when ``deid`` is given).
    kind : str
        ``"capture"`` or ``"capture_overlay"`` (:data:`SERIES`).
    object_key : str
        The object's key in the case (its SOP instance UID is derived from it).
    instance_number : int
        InstanceNumber (the capture id).
    timestamp_s : float, optional
        When the capture was taken (ContentDate/Time; left out when de-identified).
    deid : Deidentification, optional
    text_masked : bool
        The burnt-in text was masked: BurnedInAnnotation NO, else YES.

    Returns
    -------
    pydicom.Dataset
        A Secondary Capture Image Storage object, Explicit VR Little Endian, with file meta.

    Raises
    ------
    InputError
        An image that is not (H, W) uint8/uint16 or (H, W, 3) uint8, or an unknown ``kind``.
    """
    if kind not in ("capture", "capture_overlay"):
        raise InputError(f"expected 'capture' or 'capture_overlay', got {kind!r}", "kind")
    if not isinstance(image, np.ndarray) or not (
            (image.ndim == 2 and image.dtype in (np.uint8, np.uint16))
            or (image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8)):
        what = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"expected an (H, W) uint8/uint16 or (H, W, 3) uint8 image, got a {what}", "image")
    colour = image.ndim == 3
    pixels = np.ascontiguousarray(image[..., ::-1] if colour else image)  # BGR -> RGB
    series_number, description = SERIES[kind]
    date, time = _when(timestamp_s) if deid is None else (None, None)
    ds = SCImage(
        pixel_array=pixels, photometric_interpretation="RGB" if colour else "MONOCHROME2",
        bits_allocated=8 * pixels.itemsize, coordinate_system="PATIENT",
        study_instance_uid=_study_uid(identity, case_id, deid),
        series_instance_uid=object_uid(case_id, f"series/{kind}", deid), series_number=series_number,
        sop_instance_uid=object_uid(case_id, object_key, deid), instance_number=int(instance_number),
        manufacturer=MANUFACTURER, patient_id=identity.patient_id,
        patient_birth_date=identity.birth_date, patient_sex=identity.sex, accession_number=identity.accession_number,
        study_id=identity.study_id, study_date=identity.study_date, study_time=identity.study_time,
        patient_orientation=("L", "F"),
        transfer_syntax_uid=ExplicitVRLittleEndian)
    # names set as they are (highdicom warns on single-component names, which a pseudonym is)
    ds.PatientName, ds.ReferringPhysicianName = identity.patient_name, identity.referring_physician_name
    ds.PatientOrientation = None  # type 2: a capture's orientation in the patient is not known here
    ds.SeriesDescription = description
    ds.BurnedInAnnotation = "NO" if text_masked else "YES"
    ds.DerivationDescription = ("C-arm shot as shown in the OR with the or_assist overlay" if kind == "capture_overlay"
                                else "C-arm shot as recorded by or_assist, without overlay")
    if date is not None:
        ds.AcquisitionDate, ds.AcquisitionTime = date, time
    _set_common(ds, identity, deid, timestamp_s)
    return ds


def encapsulated_pdf(pdf_bytes: bytes, *, case_id: str, identity: PatientIdentity, object_key: str = "report",
                     title: str = "or_assist case report", timestamp_s: float | None = None,
                     deid: Deidentification | None = None) -> pydicom.Dataset:
    """The case report as an Encapsulated PDF Storage object (built by hand with pydicom).

    Parameters
    ----------
    pdf_bytes : bytes
        The PDF file's bytes (stored as they are; padded to even length with one NUL,
        EncapsulatedDocumentLength gives the true length).
    case_id, identity, object_key, deid
        As for :func:`capture_image`.
    title : str
        DocumentTitle.
    timestamp_s : float, optional
        When the report was made (ContentDate/Time; left out when de-identified).

    Raises
    ------
    InputError
        ``pdf_bytes`` is not a PDF (no ``%PDF-`` header).
    """
    if not isinstance(pdf_bytes, (bytes, bytearray)) or not bytes(pdf_bytes[:5]) == b"%PDF-":
        raise InputError("expected the bytes of a PDF file (starting with %PDF-)", "pdf_bytes")
    sop_uid = object_uid(case_id, object_key, deid)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF_STORAGE, sop_uid
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber",
                    "StudyDate", "StudyTime", "ReferringPhysicianName"):
        setattr(ds, keyword, None)  # type 2: present, empty unless known
    for keyword, value in identity.dicom_values().items():
        if keyword not in ("InstitutionName", "StudyInstanceUID"):
            setattr(ds, keyword, value)
    ds.StudyInstanceUID = _study_uid(identity, case_id, deid)
    number, description = SERIES["report"]
    ds.SeriesInstanceUID = object_uid(case_id, "series/report", deid)
    ds.SeriesNumber, ds.SeriesDescription, ds.Modality = number, description, "DOC"
    ds.Manufacturer = MANUFACTURER
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = []
    ds.AcquisitionDateTime = None
    ds.ContentDate = ds.ContentTime = None
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    data = bytes(pdf_bytes)
    ds.EncapsulatedDocumentLength = len(data)
    ds.EncapsulatedDocument = data + (b"\0" if len(data) % 2 else b"")
    _set_common(ds, identity, deid, timestamp_s)
    return ds
