"""C-arm geometry and a registration start from a DICOM shot's header; checks against a calibration.

A DICOM X-ray object carries what video loses: the source-detector distance
(DistanceSourceToDetector), the source-isocentre distance (DistanceSourceToPatient), the
detector pixel size (ImagerPixelSpacing) and the positioner angles. This module turns them
into or_assist's :class:`~or_assist.core.geometry.CArmGeometry` and a start pose.

Positioner angles (DICOM PS3.3 C.8.7.5.1.2)
-------------------------------------------
They give the direction from the isocentre to the *detector*, relative to the patient:

* PositionerPrimaryAngle, in the transverse plane: 0 = towards the patient's chest
  (anterior), +90 = the patient's left (LAO), -90 = the right (RAO); range -180 .. 180.
* PositionerSecondaryAngle, in the sagittal plane: 0 = towards the chest, +90 = cranial,
  -90 = caudal.

So the beam (source -> detector) in patient axes is
``cos(s) (cos(p) anterior + sin(p) left) + sin(s) superior``. Being relative to the patient,
they do not depend on how the
patient lies: a supine patient with the tube under the table is primary 0 (PA beam,
detector anterior), a prone patient with the tube under the table is primary +-180 (the
detector is at the patient's back). For a supine patient they are or_assist's orbital and
tilt angles (:mod:`or_assist.core.carm`); for a prone one the orbital angle is
``180 - primary`` (modulo 360) and the tilt is the secondary angle. Some equipment reports its
gantry angles relative to the table as though every patient lay head-first supine:
``reference="table"`` converts those with the patient position (HFS, HFP, FFS, FFP).

Tolerances of :func:`compare_geometry` (warnings, never errors):
SID 5 % (:data:`SID_TOLERANCE_FRACTION`), field size 10 %
(:data:`FIELD_TOLERANCE_FRACTION`), magnification 5 %
(:data:`MAGNIFICATION_TOLERANCE_FRACTION`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from or_assist.core.carm import pose_from_beam
from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.validate import check_finite, check_vector
from or_assist.errors import InputError

__all__ = ["DEFAULT_ISOCENTER_FRACTION", "SID_TOLERANCE_FRACTION", "FIELD_TOLERANCE_FRACTION",
           "MAGNIFICATION_TOLERANCE_FRACTION", "geometry_from_header", "missing_geometry_reason",
           "compare_geometry", "beam_from_positioner_angles", "positioner_angles_from_beam",
           "start_pose_from_header", "patient_direction_lps", "resolve_geometry"]

#: Source-to-isocentre distance as a fraction of the SID when DistanceSourceToPatient is
#: absent: between a flat-panel mobile C-arm (Cios Fusion 530 / 1020 = 0.52) and a generic
#: image intensifier (600 / 1000 = 0.60); see DOMAIN.md.
DEFAULT_ISOCENTER_FRACTION = 0.55
SID_TOLERANCE_FRACTION = 0.05
"""Relative SID difference above which :func:`compare_geometry` warns."""
FIELD_TOLERANCE_FRACTION = 0.10
"""Relative difference of the field's shorter side (mm at the detector) above which it warns:
wider than the SID's because a video frame's edge is not exactly the detector's."""
MAGNIFICATION_TOLERANCE_FRACTION = 0.05
"""Relative magnification (SID / source-isocentre) difference above which it warns."""

_LPS = {"L": (1.0, 0.0, 0.0), "R": (-1.0, 0.0, 0.0), "P": (0.0, 1.0, 0.0), "A": (0.0, -1.0, 0.0),
        "H": (0.0, 0.0, 1.0), "F": (0.0, 0.0, -1.0)}
# table axes (left, anterior, superior of a head-first supine patient) in the patient's axes
_TABLE_SIGNS = {"HFS": (1, 1, 1), "HFP": (-1, -1, 1), "FFS": (-1, 1, -1), "FFP": (1, -1, -1)}


def missing_geometry_reason(header) -> str | None:
    """Why a header gives no geometry (``None`` when it does): the missing tags, by name."""
    missing = [tag for tag, value in (("DistanceSourceToDetector", header.sid_mm),
                                      ("ImagerPixelSpacing", header.imager_pixel_spacing_mm)) if value is None]
    if not missing:
        return None
    return f"{header.source}: no C-arm geometry in the DICOM header (missing {' and '.join(missing)})"


def geometry_from_header(header, image_shape: Sequence[int]) -> CArmGeometry | None:
    """The C-arm geometry a DICOM shot's header gives, for its image.

    Parameters
    ----------
    header : DicomShotHeader
    image_shape : (int, int)
        ``(H, W)`` of the image the geometry is for. When it differs from the header's
        Rows/Columns (a resampled image), the pixel spacing is scaled to match.

    Returns
    -------
    CArmGeometry or None
        ``None`` when DistanceSourceToDetector or ImagerPixelSpacing is absent
        (:func:`missing_geometry_reason` says which). The principal point is the image
        centre, the source-isocentre distance DistanceSourceToPatient, else
        :data:`DEFAULT_ISOCENTER_FRACTION` of the SID; no distortion (the header has none).
    """
    if len(image_shape) < 2:
        raise InputError(f"expected (H, W), got {tuple(image_shape)}", "image_shape")
    h, w = int(image_shape[0]), int(image_shape[1])
    if h <= 0 or w <= 0:
        raise InputError(f"must be positive, got {(h, w)}", "image_shape")
    if missing_geometry_reason(header) is not None:
        return None
    px, py = header.imager_pixel_spacing_mm
    if header.columns:
        px *= header.columns / w
    if header.rows:
        py *= header.rows / h
    s2i = header.source_to_patient_mm or DEFAULT_ISOCENTER_FRACTION * header.sid_mm
    return CArmGeometry(image_size_px=(w, h), sid_mm=header.sid_mm, pixel_spacing_mm=(px, py),
                        principal_point_px=((w - 1) / 2.0, (h - 1) / 2.0), source_to_isocenter_mm=s2i)


def compare_geometry(header_geometry: CArmGeometry, calibrated: CArmGeometry) -> list[str]:
    """Plain warnings where a header's geometry disagrees with the calibrated one.

    The calibration may be of video pixels (another size than the DICOM image), so the
    comparison is in mm: the SID, the shorter side of the field at the detector (a video
    frame's black surround lies along its longer side) and the magnification at the
    isocentre. Tolerances: see the module docstring.

    Parameters
    ----------
    header_geometry : CArmGeometry
        From :func:`geometry_from_header`.
    calibrated : CArmGeometry
        The geometry file's (``or-assist calibrate``).

    Returns
    -------
    list of str
        One sentence per disagreement; empty when they agree.
    """
    out = []

    def rel(a, b):
        return abs(a - b) / max(abs(b), 1e-9)

    if rel(header_geometry.sid_mm, calibrated.sid_mm) > SID_TOLERANCE_FRACTION:
        out.append(f"the DICOM header's source-detector distance ({header_geometry.sid_mm:.0f} mm) differs from "
                   f"the calibrated one ({calibrated.sid_mm:.0f} mm) by more than "
                   f"{SID_TOLERANCE_FRACTION:.0%}")
    field_h, field_c = min(header_geometry.detector_size_mm), min(calibrated.detector_size_mm)
    if rel(field_h, field_c) > FIELD_TOLERANCE_FRACTION:
        out.append(f"the DICOM image's field ({field_h:.0f} mm across at the detector) differs from the "
                   f"calibrated one ({field_c:.0f} mm) by more than {FIELD_TOLERANCE_FRACTION:.0%}")
    if rel(header_geometry.magnification, calibrated.magnification) > MAGNIFICATION_TOLERANCE_FRACTION:
        out.append(f"the DICOM header's magnification ({header_geometry.magnification:.2f}) differs from the "
                   f"calibrated one ({calibrated.magnification:.2f}) by more than "
                   f"{MAGNIFICATION_TOLERANCE_FRACTION:.0%}")
    return out


def _table_signs(patient_position: str | None) -> tuple[int, int, int]:
    code = str(patient_position or "").strip().upper()
    code = {"SUPINE": "HFS", "PRONE": "HFP"}.get(code, code)
    if code not in _TABLE_SIGNS:
        raise InputError(f"table-referenced angles need a patient position of {', '.join(_TABLE_SIGNS)} "
                         f"(or prone/supine), got {patient_position!r}", "patient_position")
    return _TABLE_SIGNS[code]


def _check_reference(reference: str) -> None:
    if reference not in ("patient", "table"):
        raise InputError(f"expected 'patient' (DICOM) or 'table', got {reference!r}", "reference")


def beam_from_positioner_angles(primary_deg: float, secondary_deg: float, patient_position: str | None = None,
                                *, reference: str = "patient") -> np.ndarray:
    """Unit beam direction (source -> detector) in LPS from DICOM positioner angles.

    Parameters
    ----------
    primary_deg, secondary_deg : float
        PositionerPrimaryAngle and PositionerSecondaryAngle (module docstring).
    patient_position : str, optional
        PatientPosition (HFS, HFP, FFS, FFP; ``"supine"``/``"prone"`` mean head first). Not
        needed for DICOM's patient-relative angles; required with ``reference="table"``.
    reference : {'patient', 'table'}
        ``'patient'`` (the DICOM definition) or ``'table'`` (angles of equipment that assumes
        a head-first supine patient).

    Returns
    -------
    (3,) float ndarray

    Examples
    --------
    >>> beam_from_positioner_angles(0, 0).round(6).tolist()     # detector anterior
    [0.0, -1.0, 0.0]
    >>> beam_from_positioner_angles(90, 0).round(6).tolist()    # LAO 90: detector left
    [1.0, 0.0, 0.0]
    """
    _check_reference(reference)
    p = math.radians(check_finite(primary_deg, "primary_deg"))
    s = math.radians(check_finite(secondary_deg, "secondary_deg"))
    left, ant, sup = math.cos(s) * math.sin(p), math.cos(s) * math.cos(p), math.sin(s)
    if reference == "table":
        sl, sa, ss = _table_signs(patient_position)
        left, ant, sup = sl * left, sa * ant, ss * sup
    d = np.array([left, -ant, sup])
    return d / np.linalg.norm(d)


def positioner_angles_from_beam(beam_lps: Sequence[float], patient_position: str | None = None,
                                *, reference: str = "patient") -> tuple[float, float]:
    """DICOM positioner angles ``(primary_deg, secondary_deg)`` of a beam direction.

    The inverse of :func:`beam_from_positioner_angles`: primary in (-180, 180], secondary in
    [-90, 90].
    """
    _check_reference(reference)
    d = check_vector(beam_lps, 3, "beam_lps", nonzero=True)
    d = d / np.linalg.norm(d)
    left, ant, sup = d[0], -d[1], d[2]
    if reference == "table":
        sl, sa, ss = _table_signs(patient_position)
        left, ant, sup = sl * left, sa * ant, ss * sup
    secondary = math.degrees(math.asin(max(-1.0, min(1.0, sup))))
    primary = math.degrees(math.atan2(left, ant)) if math.hypot(left, ant) > 1e-12 else 0.0
    if primary <= -180.0:
        primary += 360.0
    return primary, secondary


def patient_direction_lps(code: str) -> np.ndarray | None:
    """Unit LPS vector of a DICOM patient direction code (``"L"``, ``"AF"``, ...), or None."""
    text = str(code or "").strip().upper()
    if not text or any(c not in _LPS for c in text):
        return None
    v = np.sum([_LPS[c] for c in text], axis=0)
    n = np.linalg.norm(v)
    return v / n if n > 0 else None


def start_pose_from_header(header, isocenter_lps_mm: Sequence[float], geometry: CArmGeometry,
                           *, reference: str = "patient") -> Pose | None:
    """A registration start from a shot's positioner angles, about a given isocentre.

    Parameters
    ----------
    header : DicomShotHeader
    isocenter_lps_mm : (3,) array_like
        Where the central ray is assumed to cross (e.g. the planned implant's midpoint).
    geometry : CArmGeometry
        Its ``source_to_isocenter_mm`` places the source on the beam.
    reference : {'patient', 'table'}
        See :func:`beam_from_positioner_angles`.

    Returns
    -------
    Pose or None
        ``None`` when the header has no PositionerPrimaryAngle (a missing secondary angle is
        taken as 0). The image is rolled head up (:func:`~or_assist.core.carm.pose_from_beam`),
        unless PatientOrientation says which patient direction runs down the image rows:
        then that direction is down.
    """
    if header.primary_angle_deg is None:
        return None
    beam = beam_from_positioner_angles(header.primary_angle_deg, header.secondary_angle_deg or 0.0,
                                       header.patient_position, reference=reference)
    up = None
    if header.patient_orientation is not None:
        down = patient_direction_lps(header.patient_orientation[1])
        if down is not None and abs(float(down @ beam)) < 0.8:
            up = -down
    return pose_from_beam(beam, isocenter_lps_mm, geometry.source_to_isocenter_mm, up_lps=up)


def resolve_geometry(header, image_shape: Sequence[int], calibrated: CArmGeometry | None = None,
                     *, argument: str = "--geometry") -> tuple[CArmGeometry, list[str]]:
    """The geometry to use for a shot: the calibrated one, else the DICOM header's.

    Parameters
    ----------
    header : DicomShotHeader or None
        The shot's header (None: not a DICOM shot).
    image_shape : (int, int)
        ``(H, W)`` of the shot's image.
    calibrated : CArmGeometry, optional
        A geometry file's (``or-assist calibrate``).
    argument : str
        The option that gives the geometry file, for messages.

    Returns
    -------
    (CArmGeometry, list of str)
        The geometry and plain warnings: where the header disagrees with the calibration
        (:func:`compare_geometry`), or that the calibration is for another image size and
        the header's geometry is used instead.

    Raises
    ------
    InputError
        Neither a calibrated geometry nor header geometry; or a calibration for another
        image size and no header geometry.
    """
    h, w = int(image_shape[0]), int(image_shape[1])
    from_header = geometry_from_header(header, (h, w)) if header is not None else None
    if calibrated is None:
        if from_header is None:
            why = missing_geometry_reason(header) if header is not None else "the image is not a DICOM shot"
            raise InputError(f"no geometry: {why}; give a geometry file (or_assist.geometry/1)", argument)
        return from_header, []
    if from_header is None:
        return calibrated, []
    warnings = compare_geometry(from_header, calibrated)
    if tuple(calibrated.image_size_px) != (w, h):
        warnings.append(f"the geometry file is for {calibrated.width}x{calibrated.height} images, the DICOM "
                        f"image is {w}x{h}: using the DICOM header's geometry")
        return from_header, warnings
    return calibrated, warnings
