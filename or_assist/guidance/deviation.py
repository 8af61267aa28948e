"""Deviation of the guide pin from the planned implant axis in one registered shot (2-D).

**One registered shot** (:func:`shot_deviation`): the angle between the detected pin and
the projected planned axis, the perpendicular offset of the pin's tip from that axis and
the remaining depth to the planned apex. Pixel distances become mm at the pin's depth:
the tip's ray is intersected (closest approach) with the planned 3-D axis, and that
point's depth is used (``CONVENTIONS.md``: ``mm = px * p * depth / sid``). The remaining
depth is the distance along the planned axis from that point to the apex; it is
``None`` when the tip itself was not seen
(:attr:`~or_assist.guidance.pin.PinDetection.tip_seen`: hidden or cut off, so its
position along the pin is unknown) or when the axis is seen nearly end-on (the tip's ray within
``MIN_RAY_AXIS_ANGLE_DEG`` of the axis).

Two shots give a 3-D pin: :mod:`or_assist.guidance.triangulate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from or_assist.core.geometry import CArmGeometry, backproject, project_with_depth
from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.guidance._pin_ends import END_ON_FORESHORTENING  # the one home (pin detection uses it too)
from or_assist.guidance.pin import PinDetection

__all__ = ["END_ON_FORESHORTENING", "MIN_RAY_AXIS_ANGLE_DEG", "ShotDeviation", "shot_deviation", "check_shot_inputs", "ray_line_closest"]

MIN_RAY_AXIS_ANGLE_DEG = 15.0   # below this, positions along the axis are not resolved in a view


@dataclass(frozen=True, eq=False)
class ShotDeviation:
    """Deviation of the pin from the plan in one shot.

    Attributes
    ----------
    angle_deg : float
        Angle between the pin and the projected planned axis (0-180).
    signed_angle_deg : float
        The same with a sign: positive when the pin is turned clockwise on screen from the
        planned axis (image v axis down).
    tip_offset_mm : float
        Perpendicular distance of the tip from the projected planned axis, mm at the depth.
    tip_offset_px : float
        The same in pixels, signed: positive towards the left normal of the axis
        (``(-dv, du)`` of the entry->apex direction).
    remaining_depth_mm : float or None
        Distance along the planned axis from the tip to the apex (negative = beyond the
        apex); None when the axis is seen nearly end-on or the tip was not seen.
    depth_mm : float
        Source distance at which pixels were converted to mm.
    offset_lps_mm : (3,) float64
        The tip's offset as a patient-frame vector (in the image plane, at the depth).
    pin_turn_lps : (3,) float64
        Unit patient-frame vector towards which the pin's tip is turned off the plan (in
        the image plane); zeros when the angle is 0.
    tip_px, foot_px : (2,) float64
        The tip and its foot on the projected planned axis (the correction arrow).
    entry_px, apex_px : (2,) float64
        Projected planned entry and apex.
    foreshortening : float
        Projected/side-on length of the planned axis (1 = side on).
    tip_reliable : bool
        The tip was seen (not hidden in dense material, not cut by the field border);
        when not, ``tip_px`` is where the pin was last seen and the tip offset refers to
        that point.
    tip_problem : str or None
        Why the tip was not seen (:attr:`~or_assist.guidance.pin.PinDetection.tip_problem`).
    """

    angle_deg: float
    signed_angle_deg: float
    tip_offset_mm: float
    tip_offset_px: float
    remaining_depth_mm: float | None
    depth_mm: float
    offset_lps_mm: np.ndarray
    pin_turn_lps: np.ndarray
    tip_px: np.ndarray
    foot_px: np.ndarray
    entry_px: np.ndarray
    apex_px: np.ndarray
    foreshortening: float
    tip_reliable: bool
    tip_problem: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"angle_deg": self.angle_deg, "signed_angle_deg": self.signed_angle_deg,
                "tip_offset_mm": self.tip_offset_mm, "tip_offset_px": self.tip_offset_px,
                "remaining_depth_mm": self.remaining_depth_mm, "depth_mm": self.depth_mm,
                "offset_lps_mm": self.offset_lps_mm.tolist(), "pin_turn_lps": self.pin_turn_lps.tolist(),
                "tip_px": self.tip_px.tolist(), "foot_px": self.foot_px.tolist(),
                "planned_entry_px": self.entry_px.tolist(), "planned_apex_px": self.apex_px.tolist(),
                "foreshortening": self.foreshortening, "tip_reliable": self.tip_reliable,
                "tip_problem": self.tip_problem}


# --------------------------------------------------------------------------- one shot


def check_shot_inputs(detection, pose, geometry) -> None:
    """Raise :class:`InputError` unless the arguments are a PinDetection, a Pose and a CArmGeometry."""
    if not isinstance(detection, PinDetection):
        raise InputError(f"expected a PinDetection, got {type(detection).__name__}", "detection")
    if not isinstance(pose, Pose):
        raise InputError(f"expected a Pose (T_source_from_patient), got {type(pose).__name__}", "pose")
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")


def ray_line_closest(origin, ray, point, axis):
    """Parameter ``s`` on ``point + s axis`` closest to the ray, and sin(angle ray-axis)."""
    w0 = point - origin
    b = float(ray @ axis)
    denom = 1.0 - b * b
    sin_angle = math.sqrt(max(denom, 0.0))
    if denom < 1e-12:
        return float(-(w0 @ axis)), 0.0
    d, e = float(ray @ w0), float(axis @ w0)
    s = (b * d - e) / denom
    return s, sin_angle


def _point_at_depth(uv, pose, geometry, depth_mm):
    origin, ray = backproject(np.asarray(uv, float), pose, geometry)
    return origin + ray * (depth_mm / float(ray @ pose.beam_direction_lps))


def shot_deviation(detection: PinDetection, implant, pose: Pose, geometry: CArmGeometry) -> ShotDeviation:
    """Deviation of a detected pin from ``implant``'s planned axis in one registered shot.

    Parameters
    ----------
    detection : PinDetection
        From :func:`or_assist.guidance.pin.detect_pin` on this shot.
    implant : Implant
        The active planned implant.
    pose : Pose
        ``T_source_from_patient`` of the shot (known or registered).
    geometry : CArmGeometry
        Of the shot's pixels.

    Returns
    -------
    ShotDeviation
    """
    check_shot_inputs(detection, pose, geometry)
    ends = np.stack([implant.entry_lps_mm, implant.apex_lps_mm])
    uv, depth = project_with_depth(ends, pose, geometry)
    e_px, a_px = uv
    axis2 = a_px - e_px
    n_axis = float(np.linalg.norm(axis2))
    u2 = axis2 / n_axis if n_axis > 1e-9 else np.array([1.0, 0.0])
    q2 = detection.direction_px
    signed = math.degrees(math.atan2(u2[0] * q2[1] - u2[1] * q2[0], float(u2 @ q2)))
    n2 = np.array([-u2[1], u2[0]])
    tip = detection.tip_px
    fs_len = implant.length_mm * geometry.sid_mm / (geometry.pixel_spacing_mm[0] * float(depth.mean()))
    fs = float(min(1.0, n_axis / fs_len))
    off_px = float((tip - e_px) @ n2)
    foot = tip - off_px * n2
    off_2d_px = abs(off_px)
    if fs < END_ON_FORESHORTENING:
        # the axis projects almost to a point: its normal means nothing, the tip's offset is
        # its distance from the projected axis segment
        t = float(np.clip((tip - e_px) @ u2 / max(n_axis, 1e-9), 0.0, 1.0)) if n_axis > 1e-9 else 0.0
        foot = e_px + t * axis2
        off_2d_px = float(np.linalg.norm(tip - foot))
    origin, ray = backproject(tip, pose, geometry)
    axis3 = implant.axis_unit
    s, sin_angle = ray_line_closest(origin, ray, implant.entry_lps_mm, axis3)
    remaining = None
    if sin_angle >= math.sin(math.radians(MIN_RAY_AXIS_ANGLE_DEG)):
        foot3 = implant.entry_lps_mm + s * axis3
        if detection.tip_seen:
            remaining = implant.length_mm - s
    else:
        foot3 = 0.5 * (implant.entry_lps_mm + implant.apex_lps_mm)
    d_mm = float(pose.apply(foot3)[2])
    off_mm = off_2d_px * geometry.pixel_spacing_mm[0] * d_mm / geometry.sid_mm
    p_tip, p_foot = _point_at_depth(tip, pose, geometry, d_mm), _point_at_depth(foot, pose, geometry, d_mm)
    n3 = _point_at_depth(foot + n2, pose, geometry, d_mm) - p_foot
    n3 /= max(np.linalg.norm(n3), 1e-12)
    side = float(q2 @ n2)
    turn = np.sign(side) * n3 if abs(signed) > 1e-9 else np.zeros(3)
    return ShotDeviation(
        angle_deg=abs(signed), signed_angle_deg=signed, tip_offset_mm=float(off_mm), tip_offset_px=off_px,
        remaining_depth_mm=None if remaining is None else float(remaining), depth_mm=d_mm,
        offset_lps_mm=p_tip - p_foot, pin_turn_lps=turn, tip_px=tip.copy(), foot_px=foot, entry_px=e_px,
        apex_px=a_px, foreshortening=fs,
        tip_reliable=detection.tip_seen, tip_problem=detection.tip_problem)


# --------------------------------------------------------------------------- two shots

