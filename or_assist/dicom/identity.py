"""Who and which study an image belongs to: the patient identity of the plan's CT, and the check
that an incoming image (from the C-arm) is of that patient.

:func:`ct_identity` reads the DICOM header of the CT the plan uses: for a series folder the
first readable slice of the series :func:`or_assist.core.ct.load_ct` reads (the series with
the most slices, grouped by SeriesInstanceUID, matrix size and orientation, files in sorted
order); for a DICOM file that file. A NIfTI / MHA / NRRD CT carries no identity: the answer is
``None`` with the reason. :func:`check_patient` compares an incoming image's identity with the
CT's: a different patient ID is refused (:class:`WrongPatientError`) unless overridden
explicitly; another study of the same patient passes with a warning.

Empty DICOM values (type-2 tags present but empty, as in anonymised exports) read as ``None``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from or_assist.errors import InputError

__all__ = ["PatientIdentity", "WrongPatientError", "ct_identity", "check_patient", "VOLUME_SUFFIXES"]

#: File names of CT volume formats that carry no DICOM header.
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")

# field -> DICOM keyword
_KEYWORDS = {"patient_id": "PatientID", "patient_name": "PatientName", "birth_date": "PatientBirthDate",
             "sex": "PatientSex", "study_instance_uid": "StudyInstanceUID", "study_id": "StudyID",
             "accession_number": "AccessionNumber", "study_date": "StudyDate", "study_time": "StudyTime",
             "referring_physician_name": "ReferringPhysicianName", "institution_name": "InstitutionName"}


class WrongPatientError(InputError):
    """An image of another patient than the plan's CT (or one whose patient cannot be confirmed)."""


@dataclass(frozen=True)
class PatientIdentity:
    """Patient and study identifiers of a DICOM object (``None`` where the tag is absent or empty).

    Attributes
    ----------
    patient_id, patient_name, birth_date, sex : str or None
        PatientID, PatientName (DICOM ``^``-separated form), PatientBirthDate (YYYYMMDD),
        PatientSex.
    study_instance_uid, study_id, accession_number, study_date, study_time : str or None
        StudyInstanceUID, StudyID, AccessionNumber, StudyDate (YYYYMMDD), StudyTime.
    referring_physician_name, institution_name : str or None
        ReferringPhysicianName, InstitutionName.
    source : str or None
        The file the identity was read from (not a DICOM value).
    """

    patient_id: str | None = None
    patient_name: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    study_instance_uid: str | None = None
    study_id: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    referring_physician_name: str | None = None
    institution_name: str | None = None
    source: str | None = None

    @classmethod
    def from_dataset(cls, ds: pydicom.Dataset, source: str | None = None) -> "PatientIdentity":
        """The identity in a pydicom ``Dataset`` (a header read with ``stop_before_pixels`` is enough).

        Parameters
        ----------
        ds : pydicom.Dataset
        source : str, optional
            Where it came from (a file), kept for messages.

        Raises
        ------
        InputError
            ``ds`` is not a Dataset.
        """
        if not isinstance(ds, pydicom.Dataset):
            raise InputError(f"expected a pydicom Dataset, got {type(ds).__name__}", "ds")
        values = {}
        for name, keyword in _KEYWORDS.items():
            value = ds.get(keyword)
            text = "" if value is None else str(value).strip()
            values[name] = text or None
        return cls(**values, source=source)

    def to_dict(self) -> dict:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)

    def dicom_values(self) -> dict[str, str]:
        """``{DICOM keyword: value}`` for the fields that are set (``source`` excluded)."""
        return {kw: getattr(self, name) for name, kw in _KEYWORDS.items() if getattr(self, name) is not None}

    def describe(self) -> str:
        """One line for messages: patient ID and study UID (or that they are absent)."""
        return (f"patient ID {self.patient_id!r}" if self.patient_id else "no patient ID") + ", " + (
            f"study {self.study_instance_uid}" if self.study_instance_uid else "no study UID")


def _read_header(path: Path) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _candidate_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` in the order the CT loader walks it (no dot files, no DICOMDIR)."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(root) / n for n in sorted(names) if not n.startswith(".") and n.upper() != "DICOMDIR"]
    return files


def _series_key(ds: pydicom.Dataset) -> tuple:
    iop = ds.get("ImageOrientationPatient")
    try:
        iop_key = None if iop is None else tuple(round(float(v), 3) for v in iop)
    except (TypeError, ValueError):
        iop_key = None
    return (str(ds.get("SeriesInstanceUID", "") or "").strip(), (ds.get("Rows"), ds.get("Columns")), iop_key)


def _n_frames(ds: pydicom.Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _first_slice_of_series(folder: Path) -> tuple[pydicom.Dataset, Path] | None:
    groups: dict[tuple, list[tuple[Path, pydicom.Dataset]]] = {}
    for path in _candidate_files(folder):
        ds = _read_header(path)
        if ds is None or "Rows" not in ds:  # not DICOM, or not an image (SR, presentation state, ...)
            continue
        groups.setdefault(_series_key(ds), []).append((path, ds))
    if not groups:
        return None
    # the loader's choice: most slices first, ties broken by the UID, then the first file's path
    best = sorted(groups.values(), key=lambda g: (-sum(_n_frames(d) for _, d in g), _series_key(g[0][1])[0],
                                                 str(g[0][0])))[0]
    path, ds = best[0]
    return ds, path


def ct_identity(ct_path: str | os.PathLike) -> tuple[PatientIdentity | None, str | None]:
    """The patient identity of a CT (module doc for which file is read).

    Parameters
    ----------
    ct_path : path-like
        The CT as the plan gives it: a DICOM series folder, a DICOM file, or a volume file.

    Returns
    -------
    identity : PatientIdentity or None
        None when the CT carries no DICOM header.
    reason : str or None
        Why there is no identity (None when there is one).

    Raises
    ------
    InputError
        The path does not exist, or is a file that is neither DICOM nor a known volume format.
    """
    p = Path(ct_path)
    if not p.exists():
        raise InputError("no such file or folder", str(p))
    if p.is_dir():
        found = _first_slice_of_series(p)
        if found is None:
            return None, f"{p}: no DICOM image in the folder, so no patient identity"
        ds, path = found
        return PatientIdentity.from_dataset(ds, str(path)), None
    name = p.name.lower()
    if name.endswith(VOLUME_SUFFIXES):
        return None, (f"{p}: a {name[name.index('.'):]} volume carries no patient identity (no DICOM header); "
                      "give the plan a DICOM CT to check and archive against the patient's study")
    ds = _read_header(p)
    if ds is None:
        raise InputError(f"not a DICOM file and not a volume file ({', '.join(VOLUME_SUFFIXES)})", str(p))
    return PatientIdentity.from_dataset(ds, str(p)), None


def check_patient(incoming: PatientIdentity, expected: PatientIdentity | None, *,
                  override: bool = False) -> str | None:
    """Check that an incoming image is of the plan's patient.

    Parameters
    ----------
    incoming : PatientIdentity
        The image's identity (e.g. ``PatientIdentity.from_dataset(ds)``).
    expected : PatientIdentity or None
        The CT's identity (:func:`ct_identity`); None when the CT has none.
    override : bool
        The user confirmed explicitly that the image is of this patient: a mismatch
        becomes a warning.

    Returns
    -------
    str or None
        A warning in plain words (another study of the same patient, an overridden
        mismatch, a check that could not be made), or None when patient and study match.

    Raises
    ------
    WrongPatientError
        Without ``override``: the patient IDs differ, or the CT has a patient ID and the
        image has none. The message names both IDs.
    InputError
        ``incoming`` or ``expected`` is not a PatientIdentity.
    """
    if not isinstance(incoming, PatientIdentity):
        raise InputError(f"expected a PatientIdentity, got {type(incoming).__name__}", "incoming")
    if expected is not None and not isinstance(expected, PatientIdentity):
        raise InputError(f"expected a PatientIdentity or None, got {type(expected).__name__}", "expected")
    if expected is None or not expected.patient_id:
        return ("the plan's CT carries no patient ID, so the image's patient "
                f"({incoming.patient_id or 'no patient ID either'}) could not be checked")
    if incoming.patient_id != expected.patient_id:
        got = f"patient ID {incoming.patient_id!r}" if incoming.patient_id else "no patient ID"
        message = (f"the image is of another patient: it has {got}, the plan's CT has patient ID "
                   f"{expected.patient_id!r}")
        if not incoming.patient_id:
            message = (f"the image's patient cannot be confirmed: it has no patient ID, the plan's CT has patient "
                       f"ID {expected.patient_id!r}")
        if override:
            return message + " (accepted because the check was overridden)"
        where = incoming.source or "image"
        raise WrongPatientError(message + "; refused (override only if you are sure it is this patient)", where)
    if (incoming.study_instance_uid and expected.study_instance_uid
            and incoming.study_instance_uid != expected.study_instance_uid):
        return (f"the image is of the same patient ({expected.patient_id!r}) but of another study "
                f"({incoming.study_instance_uid}) than the plan's CT ({expected.study_instance_uid})")
    return None

