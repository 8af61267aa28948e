"""Deviation of the guide pin from the planned implant axis: one shot (2-D) and two shots (3-D).

**One registered shot** (:func:`shot_deviation`): the angle between the detected pin and
the projected planned axis, the perpendicular offset of the pin's tip from that axis and
the remaining depth to the planned apex. Pixel distances become mm at the pin's depth:
the tip's ray is intersected (closest approach) with the planned 3-D axis, and that
point's depth is used (``CONVENTIONS.md``: ``mm = px * p * depth / sid``). The remaining
depth is the distance along the planned axis from that point to the apex; it is
``None`` when the axis is seen nearly end-on (the tip's ray within
``MIN_RAY_AXIS_ANGLE_DEG`` of the axis).

**Two registered shots** (:func:`triangulate_pin`, :func:`two_view_deviation`): each
shot's pin line and the source span a plane; the pin's axis is the planes'
intersection. The tip is the point on that axis closest to each shot's tip ray,
averaged with weights from how well each view resolves positions along the axis
(occluded or cut-off tips are left out). Results, as in the clinical literature: the
distance between the pin's tip (the future implant apex) and the planned apex, and the
angle between the axes. Their uncertainty (1 sigma) is propagated numerically from the
2-D localisation (line offset and angle, tip position along the line) and each pose's
uncertainty (zero for a known pose, from the registration otherwise). Views less than
``MIN_VIEW_ANGLE_DEG`` apart, or whose pin planes meet at less than
``MIN_PLANE_ANGLE_DEG``, are refused with the reason (:class:`TriangulationRefused`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from or_assist.core.geometry import CArmGeometry, backproject, project, project_with_depth
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.errors import InputError
from or_assist.guidance.pin import PinDetection

__all__ = ["MIN_VIEW_ANGLE_DEG", "MIN_PLANE_ANGLE_DEG", "MIN_RAY_AXIS_ANGLE_DEG", "ShotDeviation", "Pin3D",
           "Deviation3D", "TriangulationRefused", "ViewUncertainty", "shot_deviation", "triangulate_pin",
           "two_view_deviation"]

MIN_VIEW_ANGLE_DEG = 20.0       # issue: two shots at least 20 degrees apart
MIN_PLANE_ANGLE_DEG = 10.0      # the pin planes must cross at a workable angle
MIN_RAY_AXIS_ANGLE_DEG = 15.0   # below this, positions along the axis are not resolved in a view


class TriangulationRefused(InputError):
    """The two shots cannot give a reliable 3-D pin; the message says why."""


@dataclass(frozen=True)
class ViewUncertainty:
    """1-sigma uncertainties of one view for the 3-D propagation.

    Attributes
    ----------
    line_px : float
        Perpendicular position of the detected line, pixels (default 1).
    tip_px : float
        Tip position along the line, pixels (default 2).
    pose_mm : float
        Pose translation, mm in the source frame (0 for a known pose).
    pose_deg : float
        Pose rotation about the implant, degrees (0 for a known pose).
    """

    line_px: float = 1.0
    tip_px: float = 2.0
    pose_mm: float = 0.0
    pose_deg: float = 0.0


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
        apex); None when the axis is seen nearly end-on.
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
        The tip was seen (not occluded by an implant, not cut by the field border).
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

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"angle_deg": self.angle_deg, "signed_angle_deg": self.signed_angle_deg,
                "tip_offset_mm": self.tip_offset_mm, "tip_offset_px": self.tip_offset_px,
                "remaining_depth_mm": self.remaining_depth_mm, "depth_mm": self.depth_mm,
                "offset_lps_mm": self.offset_lps_mm.tolist(), "pin_turn_lps": self.pin_turn_lps.tolist(),
                "tip_px": self.tip_px.tolist(), "foot_px": self.foot_px.tolist(),
                "planned_entry_px": self.entry_px.tolist(), "planned_apex_px": self.apex_px.tolist(),
                "foreshortening": self.foreshortening, "tip_reliable": self.tip_reliable}


@dataclass(frozen=True, eq=False)
class Pin3D:
    """A triangulated pin: tip and unit direction (back -> tip) in LPS mm."""

    tip_lps_mm: np.ndarray
    direction_lps: np.ndarray
    views_angle_deg: float
    plane_angle_deg: float
    tip_views: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Deviation3D:
    """The pin against the planned implant in 3-D (module doc).

    Attributes
    ----------
    tip_lps_mm, direction_lps : (3,) float64
        Triangulated tip (LPS mm) and unit direction back -> tip.
    apex_deviation_mm : float
        Distance between the pin's tip and the planned apex.
    angle_deg : float
        Angle between the pin and the planned axis.
    tip_offset_mm : float
        Distance of the tip from the planned axis (perpendicular).
    offset_lps_mm : (3,) float64
        Tip minus its closest point on the planned axis line.
    remaining_depth_mm : float
        From the tip's foot on the planned axis to the apex (negative = beyond).
    predicted_apex_deviation_mm : float
        Distance from the planned apex to where the pin's line passes the apex's depth
        (the plane through the apex perpendicular to the planned axis): the apex
        deviation if the pin were advanced to the planned depth.
    uncertainty : dict
        1-sigma ``apex_deviation_mm``, ``angle_deg``, ``tip_mm``.
    views_angle_deg, plane_angle_deg : float
        Angle between the beams and between the pin planes.
    warnings : list of str
    """

    tip_lps_mm: np.ndarray
    direction_lps: np.ndarray
    apex_deviation_mm: float
    angle_deg: float
    tip_offset_mm: float
    offset_lps_mm: np.ndarray
    remaining_depth_mm: float
    predicted_apex_deviation_mm: float
    uncertainty: dict
    views_angle_deg: float
    plane_angle_deg: float
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"tip_lps_mm": self.tip_lps_mm.tolist(), "direction": self.direction_lps.tolist(),
                "apex_deviation_mm": self.apex_deviation_mm, "angle_deg": self.angle_deg,
                "tip_offset_mm": self.tip_offset_mm, "offset_lps_mm": self.offset_lps_mm.tolist(),
                "remaining_depth_mm": self.remaining_depth_mm,
                "predicted_apex_deviation_mm": self.predicted_apex_deviation_mm,
                "uncertainty": dict(self.uncertainty), "views_angle_deg": self.views_angle_deg,
                "plane_angle_deg": self.plane_angle_deg, "warnings": list(self.warnings)}


# --------------------------------------------------------------------------- one shot


def _check(detection, pose, geometry):
    if not isinstance(detection, PinDetection):
        raise InputError(f"expected a PinDetection, got {type(detection).__name__}", "detection")
    if not isinstance(pose, Pose):
        raise InputError(f"expected a Pose (T_source_from_patient), got {type(pose).__name__}", "pose")
    if not isinstance(geometry, CArmGeometry):
        raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")


def _ray_line_closest(origin, ray, point, axis):
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
    _check(detection, pose, geometry)
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
    off_px = float((tip - e_px) @ n2)
    foot = tip - off_px * n2
    origin, ray = backproject(tip, pose, geometry)
    axis3 = implant.axis_unit
    s, sin_angle = _ray_line_closest(origin, ray, implant.entry_lps_mm, axis3)
    remaining = None
    if sin_angle >= math.sin(math.radians(MIN_RAY_AXIS_ANGLE_DEG)):
        foot3 = implant.entry_lps_mm + s * axis3
        remaining = implant.length_mm - s
    else:
        foot3 = 0.5 * (implant.entry_lps_mm + implant.apex_lps_mm)
    d_mm = float(pose.apply(foot3)[2])
    off_mm = abs(off_px) * geometry.pixel_spacing_mm[0] * d_mm / geometry.sid_mm
    p_tip, p_foot = _point_at_depth(tip, pose, geometry, d_mm), _point_at_depth(foot, pose, geometry, d_mm)
    n3 = _point_at_depth(foot + n2, pose, geometry, d_mm) - p_foot
    n3 /= max(np.linalg.norm(n3), 1e-12)
    side = float(q2 @ n2)
    turn = np.sign(side) * n3 if abs(signed) > 1e-9 else np.zeros(3)
    fs_len = implant.length_mm * geometry.sid_mm / (geometry.pixel_spacing_mm[0] * float(depth.mean()))
    return ShotDeviation(
        angle_deg=abs(signed), signed_angle_deg=signed, tip_offset_mm=float(off_mm), tip_offset_px=off_px,
        remaining_depth_mm=None if remaining is None else float(remaining), depth_mm=d_mm,
        offset_lps_mm=p_tip - p_foot, pin_turn_lps=turn, tip_px=tip.copy(), foot_px=foot, entry_px=e_px,
        apex_px=a_px, foreshortening=float(min(1.0, n_axis / fs_len)),
        tip_reliable=not (detection.tip_occluded or detection.tip_at_border))


# --------------------------------------------------------------------------- two shots


def _plane(tip_px, dir_px, pose, geometry):
    origin, rays = backproject(np.stack([tip_px, tip_px - 50.0 * dir_px]), pose, geometry)
    n = np.cross(rays[0], rays[1])
    return origin, n / np.linalg.norm(n)


def _triangulate(views, ref_point):
    """views: list of (tip_px, dir_px, pose, geometry, tip_ok, tip_sigma_px)."""
    (s1, n1), (s2, n2) = (_plane(v[0], v[1], v[2], v[3]) for v in views[:2])
    d = np.cross(n1, n2)
    sin_planes = float(np.linalg.norm(d))
    d /= max(sin_planes, 1e-12)
    # point on both planes nearest ref_point: X = ref + a n1 + b n2
    g = np.array([[1.0, n1 @ n2], [n1 @ n2, 1.0]])
    rhs = np.array([n1 @ (s1 - ref_point), n2 @ (s2 - ref_point)])
    a, b = np.linalg.solve(g, rhs)
    x0 = ref_point + a * n1 + b * n2
    tip_px, dir_px, pose, geom = views[0][:4]
    p = project(np.stack([x0, x0 + 10.0 * d]), pose, geom)
    if (p[1] - p[0]) @ dir_px < 0:
        d = -d
    taus, wts, used = [], [], []
    for i, (tip_px, dir_px, pose, geom, tip_ok, sigma_px) in enumerate(views):
        if not tip_ok:
            continue
        origin, ray = backproject(tip_px, pose, geom)
        tau, sin_a = _ray_line_closest(origin, ray, x0, d)
        if sin_a < 1e-3:
            continue
        depth = float((x0 + tau * d - origin) @ pose.beam_direction_lps)
        sigma_mm = sigma_px * geom.pixel_spacing_mm[0] * depth / geom.sid_mm / sin_a
        taus.append(tau)
        wts.append(1.0 / sigma_mm ** 2)
        used.append(i)
    if not taus:
        return None, d, sin_planes, ()
    tau = float(np.average(taus, weights=wts))
    return x0 + tau * d, d, sin_planes, tuple(used)


def triangulate_pin(detections, poses, geometries, *, tip_sigma_px: float = 2.0, ref_point_lps_mm=None) -> Pin3D:
    """The pin's 3-D tip and direction from two registered shots.

    Parameters
    ----------
    detections : sequence of 2 PinDetection
    poses : sequence of 2 Pose
    geometries : sequence of 2 CArmGeometry
    tip_sigma_px : float
        Tip localisation uncertainty used to weight the views.
    ref_point_lps_mm : (3,) array_like, optional
        A point near the pin (e.g. the planned apex) to anchor the solution.

    Raises
    ------
    TriangulationRefused
        Fewer or more than two shots, views < ``MIN_VIEW_ANGLE_DEG`` apart, pin planes
        crossing at < ``MIN_PLANE_ANGLE_DEG``, or no visible tip.
    """
    if len(detections) != 2 or len(poses) != 2 or len(geometries) != 2:
        raise TriangulationRefused("needs exactly two shots (detections, poses, geometries)", "shots")
    for det, pose, geom in zip(detections, poses, geometries):
        _check(det, pose, geom)
    views_angle = math.degrees(math.acos(float(np.clip(abs(poses[0].beam_direction_lps @ poses[1].beam_direction_lps), 0, 1))))
    if views_angle < MIN_VIEW_ANGLE_DEG:
        raise TriangulationRefused(
            f"the two shots are only {views_angle:.1f} deg apart (at least {MIN_VIEW_ANGLE_DEG:g} deg needed, "
            "e.g. inlet + outlet or lateral + outlet): triangulation would be ill-conditioned", "shots")
    ref = np.zeros(3) if ref_point_lps_mm is None else np.asarray(ref_point_lps_mm, float)
    views = [(d.tip_px, d.direction_px, p, g, not (d.tip_occluded or d.tip_at_border), tip_sigma_px)
             for d, p, g in zip(detections, poses, geometries)]
    tip, d, sin_planes, used = _triangulate(views, ref)
    plane_angle = math.degrees(math.asin(min(1.0, sin_planes)))
    if plane_angle < MIN_PLANE_ANGLE_DEG:
        raise TriangulationRefused(
            f"the pin's planes in the two shots cross at only {plane_angle:.1f} deg (at least "
            f"{MIN_PLANE_ANGLE_DEG:g} deg needed): the pin lies almost in the plane of both sources; "
            "take a view from another direction", "shots")
    if tip is None:
        raise TriangulationRefused("the pin's tip is hidden (by an implant or the field border) in both shots",
                                   "shots")
    return Pin3D(tip, d, views_angle, plane_angle, used)


def _deviation_numbers(tip, d, implant):
    a = implant.axis_unit
    apex, entry = implant.apex_lps_mm, implant.entry_lps_mm
    ang = math.degrees(math.acos(float(np.clip(d @ a, -1.0, 1.0))))
    s = float((tip - entry) @ a)
    offset = tip - (entry + s * a)
    denom = float(d @ a)
    if abs(denom) > 1e-6:
        at_apex = tip + d * float((apex - tip) @ a) / denom
        predicted = float(np.linalg.norm(at_apex - apex))
    else:
        predicted = math.inf
    return float(np.linalg.norm(tip - apex)), ang, offset, implant.length_mm - s, predicted


def _perturbed_pose(pose: Pose, centre, rot_axis_src: int | None, angle_rad: float, shift_src) -> Pose:
    m = pose.matrix.copy()
    if rot_axis_src is not None:
        r_src = rotation_about_axis(np.eye(3)[rot_axis_src], angle_rad)
        c = pose.apply(centre)
        t = np.eye(4)
        t[:3, :3] = r_src
        t[:3, 3] = c - r_src @ c
        m = t @ m
    m[:3, 3] += np.asarray(shift_src, float)
    return Pose(m)


def two_view_deviation(implant, detections, poses, geometries, uncertainties=None,
                       tip_sigma_px: float = 2.0) -> Deviation3D:
    """Triangulate the pin from two shots and compare it with the planned implant.

    Parameters
    ----------
    implant : Implant
    detections, poses, geometries : sequences of two
        As :func:`triangulate_pin`.
    uncertainties : sequence of two ViewUncertainty, optional
        Default: ``ViewUncertainty()`` (known poses).

    Returns
    -------
    Deviation3D

    Raises
    ------
    TriangulationRefused
        See :func:`triangulate_pin`.
    """
    uncertainties = list(uncertainties) if uncertainties is not None else [ViewUncertainty(), ViewUncertainty()]
    if len(uncertainties) != 2 or not all(isinstance(u, ViewUncertainty) for u in uncertainties):
        raise InputError("must be two ViewUncertainty", "uncertainties")
    centre = 0.5 * (implant.entry_lps_mm + implant.apex_lps_mm)
    pin = triangulate_pin(detections, poses, geometries, tip_sigma_px=tip_sigma_px,
                          ref_point_lps_mm=implant.apex_lps_mm)
    apex_dev, ang, offset, remaining, predicted = _deviation_numbers(pin.tip_lps_mm, pin.direction_lps, implant)
    base = [(d.tip_px, d.direction_px, p, g, not (d.tip_occluded or d.tip_at_border), tip_sigma_px)
            for d, p, g in zip(detections, poses, geometries)]
    var_apex = var_ang = var_tip = 0.0
    for i, unc in enumerate(uncertainties):
        tip_px, dir_px, pose, geom, ok, sig = base[i]
        normal = np.array([-dir_px[1], dir_px[0]])
        length = max(detections[i].length_px, 10.0)
        perturb = [("line", unc.line_px), ("angle", 2.0 * unc.line_px / length), ("tip", unc.tip_px)]
        perturb += [(("rot", k), math.radians(unc.pose_deg)) for k in range(3)]
        perturb += [(("shift", k), unc.pose_mm * (2.0 if k == 2 else 1.0)) for k in range(3)]
        for kind, sigma in perturb:
            if sigma <= 0:
                continue
            t2, d2, p2 = tip_px.copy(), dir_px.copy(), pose
            if kind == "line":
                t2 = t2 + sigma * normal
            elif kind == "angle":
                c, s_ = math.cos(sigma), math.sin(sigma)
                d2 = np.array([c * d2[0] - s_ * d2[1], s_ * d2[0] + c * d2[1]])
            elif kind == "tip":
                t2 = t2 + sigma * dir_px
            elif kind[0] == "rot":
                p2 = _perturbed_pose(pose, centre, kind[1], sigma, np.zeros(3))
            else:
                p2 = _perturbed_pose(pose, centre, None, 0.0, np.eye(3)[kind[1]] * sigma)
            views = list(base)
            views[i] = (t2, d2, p2, geom, ok, sig)
            tip2, dd2, _, _ = _triangulate(views, implant.apex_lps_mm)
            if tip2 is None:
                continue
            a2, g2, _, _, _ = _deviation_numbers(tip2, dd2, implant)
            var_apex += (a2 - apex_dev) ** 2
            var_ang += (g2 - ang) ** 2
            var_tip += float(np.sum((tip2 - pin.tip_lps_mm) ** 2))
    warnings = []
    if len(pin.tip_views) < 2:
        warnings.append("the tip is seen in one shot only; its depth along the pin comes from that shot")
    return Deviation3D(
        tip_lps_mm=pin.tip_lps_mm, direction_lps=pin.direction_lps, apex_deviation_mm=apex_dev, angle_deg=ang,
        tip_offset_mm=float(np.linalg.norm(offset)), offset_lps_mm=offset, remaining_depth_mm=float(remaining),
        predicted_apex_deviation_mm=predicted,
        uncertainty={"apex_deviation_mm": math.sqrt(var_apex), "angle_deg": math.sqrt(var_ang),
                     "tip_mm": math.sqrt(var_tip)},
        views_angle_deg=pin.views_angle_deg, plane_angle_deg=pin.plane_angle_deg, warnings=warnings)
