"""Cues for the surgeon: a colour and short text lines from a deviation, in anatomical terms.

The level is green when both the tip offset and the angle are within
:attr:`CueThresholds.green_mm` / ``green_deg`` (default 2 mm, 2 deg), amber within
``amber_mm`` / ``amber_deg`` (default 4 mm, 4 deg), red beyond. The millimetres are the
tip's perpendicular offset in one shot; from two shots, the apex deviation the pin would
have if advanced to the planned depth (:attr:`Deviation3D.predicted_apex_deviation_mm`).
These thresholds are starting values (the seed study's mean deviations were 5.0 mm and
4.4 deg), not validated limits: keep them configurable.

Directions are the patient's anatomical axes (:func:`or_assist.core.carm.patient_axes`,
from the plan's landmarks) made perpendicular to the planned axis: for a lateral implant
these are cranial/caudal and anterior/posterior. Offsets say where the tip *is*
("tip 3.0 mm cranial, 2.0 mm anterior of plan"); angles say where to *aim*
("aim 4 deg caudal"). A single shot knows only the component in its image plane, so
its text names the dominant direction and says "(this view)".

In a view that sees the planned axis nearly end on
(:data:`~or_assist.guidance.deviation.END_ON_FORESHORTENING`) the angle in the image is no
aim: the cue gives the tip's offset only and says so.

A tip that was not seen (hidden in dense material, cut off by the field's border:
:attr:`~or_assist.guidance.deviation.ShotDeviation.tip_reliable` false) gives no tip
offset and no depth: the cue says "tip not seen" and why, keeps the aim from the part
of the pin that was seen, and is never green (at best amber: the tip cannot be judged).

Safety: a warning when the pin's path, extended to the planned depth plus
``safety_extension_mm``, passes within ``safety_margin_mm`` of a foramen or the spinal
canal landmark (sphere of the landmark's radius): in 3-D from two shots, in the image
(projected) from one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from or_assist.core.carm import patient_axes
from or_assist.core.geometry import project_with_depth
from or_assist.core.validate import check_positive
from or_assist.guidance.deviation import END_ON_FORESHORTENING
from or_assist.errors import InputError

__all__ = ["TIP_NOT_SEEN_TEXT", "CUE_LEVELS", "CUE_COLOURS_BGR", "SAFETY_LANDMARK_KINDS", "CueThresholds", "Cue", "anatomical_frame",
           "shot_cue", "judged_apex_mm", "cue_3d", "safety_warnings_3d", "safety_warnings_shot"]

CUE_LEVELS = ("green", "amber", "red")
#: BGR colours of the levels (OpenCV order).
CUE_COLOURS_BGR = {"green": (80, 210, 80), "amber": (0, 180, 255), "red": (60, 60, 240)}
SAFETY_LANDMARK_KINDS = ("s1_foramen", "s2_foramen", "spinal_canal")
#: The first line of a one-shot cue whose pin tip was not seen (no offset, no depth).
TIP_NOT_SEEN_TEXT = "tip not seen"
_NAMES = {0: ("left", "right"), 1: ("posterior", "anterior"), 2: ("cranial", "caudal")}


@dataclass(frozen=True)
class CueThresholds:
    """Limits of the cue levels and the safety check (module doc)."""

    green_mm: float = 2.0
    green_deg: float = 2.0
    amber_mm: float = 4.0
    amber_deg: float = 4.0
    safety_margin_mm: float = 3.0
    safety_extension_mm: float = 10.0

    def __post_init__(self):
        for name in ("green_mm", "green_deg", "amber_mm", "amber_deg", "safety_margin_mm", "safety_extension_mm"):
            check_positive(getattr(self, name), name, allow_zero=True)
        if self.amber_mm < self.green_mm or self.amber_deg < self.green_deg:
            raise InputError(f"amber limits ({self.amber_mm} mm, {self.amber_deg} deg) must not be below the green "
                             f"ones ({self.green_mm} mm, {self.green_deg} deg)", "amber_mm/amber_deg")

    def level(self, mm: float, deg: float) -> str:
        """'green', 'amber' or 'red' for an offset (mm) and an angle (deg)."""
        if mm <= self.green_mm and deg <= self.green_deg:
            return "green"
        if mm <= self.amber_mm and deg <= self.amber_deg:
            return "amber"
        return "red"


@dataclass(frozen=True)
class Cue:
    """What the display says: level, its colour, text lines and safety warnings."""

    level: str
    lines: tuple[str, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def colour_bgr(self) -> tuple[int, int, int]:
        """The level's colour (BGR); red when there is a safety warning."""
        return CUE_COLOURS_BGR["red" if self.warnings else self.level]

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"level": self.level, "lines": list(self.lines), "warnings": list(self.warnings)}


def anatomical_frame(implant, landmarks=None) -> list[tuple[np.ndarray, int]]:
    """Two unit vectors perpendicular to the planned axis, each with its anatomical index.

    The two of (left, posterior, superior) least aligned with the axis, made orthogonal to
    it (and to each other). Index 0 = left, 1 = posterior, 2 = superior (cranial).
    """
    axes = patient_axes(landmarks)
    a = implant.axis_unit
    order = sorted(range(3), key=lambda k: abs(float(axes[k] @ a)))[:2]
    order.sort(key=lambda k: -k)  # cranial first, then posterior, then left
    out = []
    for k in order:
        v = axes[k] - (axes[k] @ a) * a
        for u, _ in out:
            v = v - (v @ u) * u
        out.append((v / np.linalg.norm(v), k))
    return out


def _word(index: int, value: float) -> str:
    return _NAMES[index][0 if value >= 0 else 1]


def _offset_text(vec, frame, min_mm=0.5) -> str:
    parts = [f"{abs(float(vec @ u)):.1f} mm {_word(k, float(vec @ u))}" for u, k in frame
             if abs(float(vec @ u)) >= min_mm]
    return ", ".join(parts)


def _aim_text(direction, axis, frame, min_deg=0.5) -> str:
    parts = []
    for u, k in frame:
        ang = math.degrees(math.atan2(float(direction @ u), float(direction @ axis)))
        if abs(ang) >= min_deg:
            parts.append(f"{abs(ang):.1f} deg {_word(k, -ang)}")
    return " and ".join(parts)


def _depth_text(remaining_mm: float | None) -> str | None:
    if remaining_mm is None:
        return None
    if remaining_mm >= 0.5:
        return f"advance {remaining_mm:.0f} mm to the planned apex"
    if remaining_mm <= -0.5:
        return f"tip {-remaining_mm:.0f} mm beyond the planned apex"
    return "tip at the planned depth"


def _safety_landmarks(landmarks, side: str | None = None):
    """Foramina and canal landmarks; with ``side``, only that side's and the midline ones.

    A pin on one side cannot reach the other side's foramina before crossing the canal
    (which stays in the list), and in a lateral view the two sides superimpose, so
    contralateral landmarks would only raise false alarms.
    """
    return [lm for lm in (landmarks or ()) if getattr(lm, "kind", None) in SAFETY_LANDMARK_KINDS
            and (side is None or getattr(lm, "side", "midline") in (side, "midline"))]


def _segment_distance(p, a, b) -> float:
    ab = b - a
    t = float(np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def safety_warnings_3d(tip_lps_mm, direction_lps, remaining_mm: float, landmarks,
                       thresholds: CueThresholds | None = None, side: str | None = None) -> list[str]:
    """Warnings for foramina and canal near the pin's 3-D path (tip to planned depth + extension)."""
    th = thresholds or CueThresholds()
    tip = np.asarray(tip_lps_mm, float)
    end = tip + np.asarray(direction_lps, float) * (max(remaining_mm, 0.0) + th.safety_extension_mm)
    out = []
    for lm in _safety_landmarks(landmarks, side):
        gap = _segment_distance(lm.position_lps_mm, tip, end) - lm.radius_mm
        if gap < th.safety_margin_mm:
            out.append(f"WARNING: pin path {'enters' if gap < 0 else f'within {gap:.1f} mm of'} {lm.name}")
    return out


def safety_warnings_shot(deviation, pose, geometry, landmarks, thresholds: CueThresholds | None = None,
                         side: str | None = None) -> list[str]:
    """Warnings for foramina and canal near the pin's projected path in one shot
    (``side``: the implant's side; see :func:`_safety_landmarks`)."""
    th = thresholds or CueThresholds()
    lms = _safety_landmarks(landmarks, side)
    if not lms:
        return []
    mm_per_px = geometry.pixel_spacing_mm[0] * deviation.depth_mm / geometry.sid_mm
    remaining = deviation.remaining_depth_mm
    reach_px = (max(remaining if remaining is not None else 0.0, 0.0) + th.safety_extension_mm) / mm_per_px
    tip = deviation.tip_px
    # the pin's image direction: the planned axis turned by the signed angle
    axis2 = deviation.apex_px - deviation.entry_px
    turn = math.radians(deviation.signed_angle_deg)
    u = axis2 / max(np.linalg.norm(axis2), 1e-9)
    direction = np.array([math.cos(turn) * u[0] - math.sin(turn) * u[1], math.sin(turn) * u[0] + math.cos(turn) * u[1]])
    end = tip + direction * reach_px
    out = []
    for lm in lms:
        c, depth = project_with_depth(lm.position_lps_mm, pose, geometry)
        lm_mm_per_px = geometry.pixel_spacing_mm[0] * float(depth) / geometry.sid_mm
        gap = _segment_distance(c, tip, end) * lm_mm_per_px - lm.radius_mm
        if gap < th.safety_margin_mm:
            out.append(f"WARNING: projected pin path {'crosses' if gap < 0 else f'within {gap:.1f} mm of'} {lm.name} "
                       "(this view)")
    return out


def shot_cue(deviation, implant, *, pose=None, geometry=None, landmarks=None,
             thresholds: CueThresholds | None = None, view_name: str = "this view") -> Cue:
    """Cue from one shot's :class:`~or_assist.guidance.deviation.ShotDeviation`."""
    th = thresholds or CueThresholds()
    frame = anatomical_frame(implant, landmarks)
    seen = bool(deviation.tip_reliable)
    end_on = deviation.foreshortening < END_ON_FORESHORTENING
    angle = 0.0 if end_on else deviation.angle_deg
    if seen:
        level = th.level(deviation.tip_offset_mm, angle)
    else:
        level = th.level(0.0, angle)
        level = "amber" if level == "green" else level
    lines = []
    vec = deviation.offset_lps_mm
    if not seen:
        why = getattr(deviation, "tip_problem", None)
        lines.append(TIP_NOT_SEEN_TEXT + (f" ({why})" if why else ""))
    elif deviation.tip_offset_mm >= 0.5:
        k = max(frame, key=lambda f: abs(float(vec @ f[0])))
        lines.append(f"tip {deviation.tip_offset_mm:.1f} mm {_word(k[1], float(vec @ k[0]))} of plan ({view_name})")
    else:
        lines.append(f"tip on the planned axis ({view_name})")
    if end_on:
        lines.append(f"axis seen end on: aim not judged ({view_name})")
    elif deviation.angle_deg >= 0.5:
        t = deviation.pin_turn_lps
        k = max(frame, key=lambda f: abs(float(t @ f[0])))
        lines.append(f"aim {deviation.angle_deg:.1f} deg {_word(k[1], -float(t @ k[0]))} ({view_name})")
    depth = _depth_text(deviation.remaining_depth_mm) if seen else None
    if depth:
        lines.append(depth)
    warnings = safety_warnings_shot(deviation, pose, geometry, landmarks, th, implant.side) \
        if pose is not None and geometry is not None else []
    return Cue(level, tuple(lines), tuple(warnings))


def judged_apex_mm(deviation3d, thresholds: CueThresholds | None = None) -> float:
    """The apex deviation (mm) a two-shot cue judges: where the pin's tip would end at the
    planned depth (:attr:`~or_assist.guidance.triangulate.Deviation3D.predicted_apex_deviation_mm`:
    while the pin is short of the apex its tip-to-apex distance is mostly the depth still to
    go), or the tip's own apex deviation once it is past the planned apex by more than
    ``green_mm``."""
    th = thresholds or CueThresholds()
    mm = float(deviation3d.predicted_apex_deviation_mm)
    if deviation3d.remaining_depth_mm < -th.green_mm:
        mm = max(mm, float(deviation3d.apex_deviation_mm))
    return mm


def cue_3d(deviation3d, implant, landmarks=None, thresholds: CueThresholds | None = None) -> Cue:
    """Cue from a two-shot :class:`~or_assist.guidance.triangulate.Deviation3D`."""
    th = thresholds or CueThresholds()
    frame = anatomical_frame(implant, landmarks)
    level = th.level(judged_apex_mm(deviation3d, th), deviation3d.angle_deg)
    lines = []
    off = _offset_text(deviation3d.offset_lps_mm, frame)
    lines.append(f"tip {off} of plan" if off else "tip on the planned axis")
    aim = _aim_text(deviation3d.direction_lps, implant.axis_unit, frame)
    lines.append(f"aim {aim}" if aim else "direction on plan")
    depth = _depth_text(deviation3d.remaining_depth_mm)
    if depth:
        lines.append(depth)
    u = deviation3d.uncertainty
    lines.append(f"apex {deviation3d.apex_deviation_mm:.1f} +- {u['apex_deviation_mm']:.1f} mm, "
                 f"angle {deviation3d.angle_deg:.1f} +- {u['angle_deg']:.1f} deg")
    warnings = safety_warnings_3d(deviation3d.tip_lps_mm, deviation3d.direction_lps,
                                  deviation3d.remaining_depth_mm, landmarks, th, implant.side)
    return Cue(level, tuple(lines), tuple(warnings))
