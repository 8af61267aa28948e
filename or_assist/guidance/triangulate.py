"""Two registered shots give the guide pin in 3-D, and its deviation from the planned implant.

Each shot's pin line and the source span a plane; the pin's axis is the planes'
intersection. The tip is the point on that axis closest to each shot's tip ray,
averaged with weights from how well each view resolves positions along the axis
(occluded or cut-off tips are left out). Results, as in the clinical literature: the
distance between the pin's tip (the future implant apex) and the planned apex, and the
angle between the axes. Their uncertainty (1 sigma) is propagated numerically from the
2-D localisation (line offset and angle, tip position along the line) and each pose's
uncertainty (zero for a known pose, from the registration otherwise). Views less than
``MIN_VIEW_ANGLE_DEG`` apart, or whose pin planes meet at less than
``MIN_PLANE_ANGLE_DEG``, are refused with the reason (:class:`TriangulationRefused`).
One shot's 2-D deviation is :mod:`or_assist.guidance.deviation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from or_assist.core.geometry import backproject, project
from or_assist.core.pose import Pose, rotation_about_axis
from or_assist.errors import InputError
from or_assist.guidance.deviation import check_shot_inputs, ray_line_closest

__all__ = ["MIN_VIEW_ANGLE_DEG", "MIN_PLANE_ANGLE_DEG", "TriangulationRefused", "ViewUncertainty", "Pin3D",
           "Deviation3D", "triangulate_pin", "two_view_deviation"]

MIN_VIEW_ANGLE_DEG = 20.0       # issue: two shots at least 20 degrees apart
MIN_PLANE_ANGLE_DEG = 10.0      # the pin planes must cross at a workable angle


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
        tau, sin_a = ray_line_closest(origin, ray, x0, d)
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
        check_shot_inputs(det, pose, geom)
    views_angle = math.degrees(math.acos(float(np.clip(abs(poses[0].beam_direction_lps @ poses[1].beam_direction_lps), 0, 1))))
    if views_angle < MIN_VIEW_ANGLE_DEG:
        raise TriangulationRefused(
            f"the two shots are only {views_angle:.1f} deg apart (at least {MIN_VIEW_ANGLE_DEG:g} deg needed, "
            "e.g. inlet + outlet or lateral + outlet): triangulation would be ill-conditioned", "shots")
    ref = np.zeros(3) if ref_point_lps_mm is None else np.asarray(ref_point_lps_mm, float)
    views = [(d.tip_px, d.direction_px, p, g, d.tip_seen, tip_sigma_px)
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
    base = [(d.tip_px, d.direction_px, p, g, d.tip_seen, tip_sigma_px)
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
