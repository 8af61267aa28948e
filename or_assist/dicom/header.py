"""The header of a DICOM projection shot: who, when, and the C-arm's geometry and exposure.

:func:`header_from_dataset` reads what or_assist uses from an X-ray angiography (XA),
radiofluoroscopy (RF), digital X-ray (DX), computed radiography (CR) or secondary capture
object into a :class:`DicomShotHeader`. Every field is optional (``None`` when the tag is
absent or empty); a tag that is present with a bad value (a negative distance, a zero
pixel spacing, text where a number belongs) is an :class:`~or_assist.errors.InputError`
naming the file and the tag, never a silent guess.

Enhanced XA/XRF objects keep most of these tags in functional groups: a tag missing at the
top level is looked up in the frame's per-frame functional group, then in the shared one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from or_assist.errors import InputError

__all__ = ["DicomShotHeader", "header_from_dataset", "find_tag", "shutter_mask"]


@dataclass(frozen=True)
class DicomShotHeader:
    """What a DICOM shot says about itself (all fields optional: ``None`` when absent).

    Attributes
    ----------
    source : str
        The file (or ``"<bytes>"``, ``"<dataset>"``) the header was read from.
    sop_instance_uid, sop_class_uid, modality : str or None
    patient_id, patient_name, study_instance_uid, series_instance_uid : str or None
    acquisition_datetime : datetime or None
        AcquisitionDateTime, else AcquisitionDate + AcquisitionTime.
    frame_count : int
        Frames in the object (1 for a single-frame object).
    frame_index : int
        Which frame (0-based) the pixels of the :class:`~or_assist.dicom.shot.DicomShot` are.
    rows, columns : int or None
        Image size in pixels.
    sid_mm : float or None
        DistanceSourceToDetector (0018,1110).
    source_to_patient_mm : float or None
        DistanceSourceToPatient (0018,1111): focal spot to the isocentre.
    imager_pixel_spacing_mm : (float, float) or None
        ``(px, py)``: mm at the detector per pixel along u (columns) and v (rows). The tag
        ImagerPixelSpacing (0018,1164) is stored row spacing first, so this is the tag's
        values swapped.
    primary_angle_deg, secondary_angle_deg : float or None
        PositionerPrimaryAngle / PositionerSecondaryAngle (DICOM PS3.3 C.8.7.5.1.2; see
        :mod:`or_assist.dicom.header_geometry`).
    table_height_mm : float or None
        TableHeight (0018,1130), else TableTopVerticalPosition (300A,0128).
    table_position_mm : (float, float, float) or None
        TableTop (lateral, longitudinal, vertical) positions (300A,012A/0129/0128) when any is
        present (absent ones 0).
    patient_position : str or None
        PatientPosition, e.g. ``"HFS"``, ``"HFP"``.
    patient_orientation : (str, str) or None
        PatientOrientation (0020,0020): the patient directions of increasing column and row.
    view_position : str or None
        ViewPosition, e.g. ``"AP"``, ``"LL"``.
    field_of_view_shape : str or None
        FieldOfViewShape (``"ROUND"``, ``"RECTANGLE"``, ...).
    field_of_view_dimensions_mm : tuple of float or None
        FieldOfViewDimensions (diameter, or row and column sizes).
    intensifier_size_mm : float or None
        IntensifierSize (0018,1162).
    kvp, exposure_mas, tube_current_ma, exposure_time_ms : float or None
        KVP; ExposureInuAs / 1000, else ExposureInmAs, else Exposure; XRayTubeCurrent;
        ExposureTime.
    shutter_shape : tuple of str or None
        ShutterShape (0018,1600): ``"CIRCULAR"``, ``"RECTANGULAR"`` (others are not applied).
    circular_shutter_center_px, circular_shutter_radius_px : (float, float), float or None
        CenterOfCircularShutter as ``(u, v)`` 0-based pixels, RadiusOfCircularShutter.
    rectangular_shutter_px : (int, int, int, int) or None
        ``(u_min, u_max, v_min, v_max)``, 0-based and inclusive, from the Shutter{Left,Right}
        VerticalEdge and Shutter{Upper,Lower}HorizontalEdge tags.
    photometric : str or None
        PhotometricInterpretation as stored (the pixels are always MONOCHROME2).
    transfer_syntax_uid : str or None
    """

    source: str = "<dataset>"
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    modality: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    acquisition_datetime: datetime | None = None
    frame_count: int = 1
    frame_index: int = 0
    rows: int | None = None
    columns: int | None = None
    sid_mm: float | None = None
    source_to_patient_mm: float | None = None
    imager_pixel_spacing_mm: tuple[float, float] | None = None
    primary_angle_deg: float | None = None
    secondary_angle_deg: float | None = None
    table_height_mm: float | None = None
    table_position_mm: tuple[float, float, float] | None = None
    patient_position: str | None = None
    patient_orientation: tuple[str, str] | None = None
    view_position: str | None = None
    field_of_view_shape: str | None = None
    field_of_view_dimensions_mm: tuple[float, ...] | None = None
    intensifier_size_mm: float | None = None
    kvp: float | None = None
    exposure_mas: float | None = None
    tube_current_ma: float | None = None
    exposure_time_ms: float | None = None
    shutter_shape: tuple[str, ...] | None = None
    circular_shutter_center_px: tuple[float, float] | None = None
    circular_shutter_radius_px: float | None = None
    rectangular_shutter_px: tuple[int, int, int, int] | None = None
    photometric: str | None = None
    transfer_syntax_uid: str | None = None

    @property
    def has_geometry(self) -> bool:
        """True when the header gives the C-arm's intrinsics (SID and imager pixel spacing)."""
        return self.sid_mm is not None and self.imager_pixel_spacing_mm is not None


def shutter_mask(header: DicomShotHeader, shape: tuple[int, int]) -> np.ndarray | None:
    """Pixels inside the header's circular and rectangular display shutters (the collimated
    field), as a (H, W) bool array; None when the header has no such shutter."""
    h, w = int(shape[0]), int(shape[1])
    shapes = header.shutter_shape or ()
    mask = np.ones((h, w), bool)
    applied = False
    if "CIRCULAR" in shapes and header.circular_shutter_center_px and header.circular_shutter_radius_px:
        (uc, vc), r = header.circular_shutter_center_px, header.circular_shutter_radius_px
        v, u = np.mgrid[0:h, 0:w]
        mask &= (u - uc) ** 2 + (v - vc) ** 2 <= r * r
        applied = True
    if "RECTANGULAR" in shapes and header.rectangular_shutter_px:
        u0, u1, v0, v1 = header.rectangular_shutter_px
        rect = np.zeros((h, w), bool)
        rect[max(v0, 0):max(v1 + 1, 0), max(u0, 0):max(u1 + 1, 0)] = True
        mask &= rect
        applied = True
    return mask if applied else None


def _shutters(ds, where: str, f: int) -> dict:
    shape = find_tag(ds, "ShutterShape", f)
    if shape is None:
        return {}
    shapes = tuple(str(x).strip().upper() for x in (shape if isinstance(shape, (list, tuple)) or
                                                     type(shape).__name__ == "MultiValue" else [shape]))
    out = {"shutter_shape": shapes}
    if "CIRCULAR" in shapes:
        centre = _numbers(ds, "CenterOfCircularShutter", where, f, 2)
        radius = _number(ds, "RadiusOfCircularShutter", where, f, positive=True)
        if centre is None or radius is None:
            raise InputError("ShutterShape CIRCULAR needs CenterOfCircularShutter and RadiusOfCircularShutter", where)
        out.update(circular_shutter_center_px=(centre[1] - 1.0, centre[0] - 1.0), circular_shutter_radius_px=radius)
    if "RECTANGULAR" in shapes:
        edges = [_number(ds, k, where, f) for k in ("ShutterLeftVerticalEdge", "ShutterRightVerticalEdge",
                                                     "ShutterUpperHorizontalEdge", "ShutterLowerHorizontalEdge")]
        if any(e is None for e in edges) or edges[0] > edges[1] or edges[2] > edges[3]:
            raise InputError(f"ShutterShape RECTANGULAR needs left <= right and upper <= lower edges, got {edges}",
                             where)
        out["rectangular_shutter_px"] = tuple(int(round(e)) - 1 for e in edges)
    return out


def _frame_count(ds, where: str) -> int:
    value = None
    try:
        value = ds.get("NumberOfFrames", 1)
        count = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"NumberOfFrames must be an integer, got {value!r}", where) from None
    if count < 1:
        raise InputError(f"NumberOfFrames must be >= 1, got {count}", where)
    return count


def _transfer_syntax(ds):
    from pydicom.uid import UID

    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(ts)) if ts else None


def find_tag(ds, keyword: str, frame: int = 0):
    """The element ``keyword`` of ``ds``: top level, else the frame's per-frame functional
    group, else the shared functional group (Enhanced XA/XRF); ``None`` when absent or empty.

    Parameters
    ----------
    ds : pydicom.Dataset
    keyword : str
        A DICOM keyword such as ``"DistanceSourceToDetector"``.
    frame : int
        0-based frame whose per-frame functional group is searched.
    """
    elem = ds.get(keyword)
    if elem is not None and not _empty(elem):
        return elem
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and 0 <= frame < len(per_frame):
        groups.append(per_frame[frame])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        for item_elem in group:
            if item_elem.VR == "SQ" and len(item_elem.value):
                value = item_elem.value[0].get(keyword)
                if value is not None and not _empty(value):
                    return value
    return None


def _empty(value) -> bool:
    return value is None or (hasattr(value, "__len__") and not isinstance(value, (int, float)) and len(value) == 0)


def _numbers(ds, keyword: str, where: str, frame: int, count: int | None = None) -> tuple[float, ...] | None:
    try:
        value = find_tag(ds, keyword, frame)
    except Exception as exc:  # noqa: BLE001 - pydicom converts DS/IS text and FD bytes when read
        raise InputError(f"{keyword} must be numeric ({' '.join(str(exc).split())[:120]})", where) from None
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    out = []
    for item in items:
        try:
            number = float(str(item).strip()) if isinstance(item, (str, bytes)) else float(item)
        except (TypeError, ValueError):
            raise InputError(f"{keyword} must be numeric, got {item!r}", where) from None
        if not math.isfinite(number):
            raise InputError(f"{keyword} must be a finite number, got {item!r}", where)
        out.append(number)
    if count is not None and len(out) != count:
        raise InputError(f"{keyword} must hold {count} value(s), got {len(out)}", where)
    return tuple(out)


def _number(ds, keyword: str, where: str, frame: int, *, positive: bool = False) -> float | None:
    values = _numbers(ds, keyword, where, frame, 1)
    if values is None:
        return None
    if positive and not values[0] > 0:
        raise InputError(f"{keyword} must be > 0 mm, got {values[0]:g}", where)
    return values[0]


def _text(ds, keyword: str, frame: int = 0) -> str | None:
    try:
        value = find_tag(ds, keyword, frame)
    except Exception:  # noqa: BLE001 - an undecodable text element is as good as absent
        return None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _datetime(ds, where: str) -> datetime | None:
    from pydicom.valuerep import DA, DT, TM

    try:
        if ds.get("AcquisitionDateTime"):
            return DT(str(ds.AcquisitionDateTime))
        if ds.get("AcquisitionDate"):
            day = DA(str(ds.AcquisitionDate))
            time = TM(str(ds.AcquisitionTime)) if ds.get("AcquisitionTime") else None
            return datetime.combine(day, time) if time is not None else datetime(day.year, day.month, day.day)
    except (TypeError, ValueError) as exc:
        raise InputError(f"AcquisitionDateTime/AcquisitionDate/AcquisitionTime unreadable ({exc})", where) from None
    return None


def header_from_dataset(ds, source: str = "<dataset>", *, frame_index: int = 0,
                        frame_count: int = 1) -> DicomShotHeader:
    """Read a :class:`DicomShotHeader` from a pydicom Dataset.

    Parameters
    ----------
    ds : pydicom.Dataset
    source : str
        The file name for messages.
    frame_index, frame_count : int
        The frame the header describes (per-frame functional groups) and the object's count.

    Returns
    -------
    DicomShotHeader

    Raises
    ------
    InputError
        A geometry or exposure tag with a bad value (non-numeric, not finite, a distance or
        spacing <= 0, a source-patient distance not shorter than the source-detector one);
        the message names ``source`` and the tag.
    """
    f = frame_index
    sid = _number(ds, "DistanceSourceToDetector", source, f, positive=True)
    sod = _number(ds, "DistanceSourceToPatient", source, f, positive=True)
    if sid is not None and sod is not None and sod >= sid:
        raise InputError(f"DistanceSourceToPatient ({sod:g} mm) must be shorter than "
                         f"DistanceSourceToDetector ({sid:g} mm)", source)
    spacing = _numbers(ds, "ImagerPixelSpacing", source, f, 2)
    if spacing is not None:
        if not all(s > 0 for s in spacing):
            raise InputError(f"ImagerPixelSpacing must be > 0 mm, got {spacing[0]:g}\\{spacing[1]:g}", source)
        spacing = (spacing[1], spacing[0])  # the tag is row spacing \ column spacing
    table = [_number(ds, k, source, f) for k in
             ("TableTopLateralPosition", "TableTopLongitudinalPosition", "TableTopVerticalPosition")]
    height = _number(ds, "TableHeight", source, f)
    orientation = find_tag(ds, "PatientOrientation", f)
    orientation = tuple(str(o) for o in orientation) if orientation is not None and len(orientation) == 2 else None
    fov = _numbers(ds, "FieldOfViewDimensions", source, f)
    if fov is not None and not all(d > 0 for d in fov):
        raise InputError(f"FieldOfViewDimensions must be > 0 mm, got {fov}", source)
    mas = _number(ds, "ExposureInuAs", source, f)
    mas = mas / 1000.0 if mas is not None else _number(ds, "ExposureInmAs", source, f)
    if mas is None:
        mas = _number(ds, "Exposure", source, f)
    meta = getattr(ds, "file_meta", None)
    rows = _numbers(ds, "Rows", source, f, 1)
    cols = _numbers(ds, "Columns", source, f, 1)
    return DicomShotHeader(
        source=source,
        sop_instance_uid=_text(ds, "SOPInstanceUID") or (_text(meta, "MediaStorageSOPInstanceUID") if meta else None),
        sop_class_uid=_text(ds, "SOPClassUID") or (_text(meta, "MediaStorageSOPClassUID") if meta else None),
        modality=_text(ds, "Modality"),
        patient_id=_text(ds, "PatientID"),
        patient_name=_text(ds, "PatientName"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        acquisition_datetime=_datetime(ds, source),
        frame_count=int(frame_count), frame_index=int(frame_index),
        rows=None if rows is None else int(rows[0]), columns=None if cols is None else int(cols[0]),
        sid_mm=sid, source_to_patient_mm=sod, imager_pixel_spacing_mm=spacing,
        primary_angle_deg=_number(ds, "PositionerPrimaryAngle", source, f),
        secondary_angle_deg=_number(ds, "PositionerSecondaryAngle", source, f),
        table_height_mm=height if height is not None else table[2],
        table_position_mm=None if all(t is None for t in table) else tuple(t or 0.0 for t in table),
        patient_position=_text(ds, "PatientPosition", f),
        patient_orientation=orientation,
        view_position=_text(ds, "ViewPosition", f),
        field_of_view_shape=_text(ds, "FieldOfViewShape", f),
        field_of_view_dimensions_mm=fov,
        intensifier_size_mm=_number(ds, "IntensifierSize", source, f, positive=True),
        kvp=_number(ds, "KVP", source, f, positive=True),
        exposure_mas=mas,
        tube_current_ma=_number(ds, "XRayTubeCurrent", source, f),
        exposure_time_ms=_number(ds, "ExposureTime", source, f),
        **_shutters(ds, source, f),
        photometric=_text(ds, "PhotometricInterpretation", f),
        transfer_syntax_uid=_text(meta, "TransferSyntaxUID") if meta else None,
    )
