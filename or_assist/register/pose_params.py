"""The 6-parameter pose update registration searches over, and pose error measures.

A parameter vector ``p = (rx, ry, rz, tx, ty, tz)`` (degrees, degrees, degrees, mm, mm,
mm) updates a start pose ``T0`` (``T_source_from_patient``) in the *source frame*: a
rotation by the rotation vector ``(rx, ry, rz)`` about a centre ``c`` (the isocentre
``(0, 0, source_to_isocenter_mm)``, or the region of interest), then a translation ``t``:

    x' = R(r) (x - c) + c + t,      T(p) = D(p) @ T0.

Rotations about a point in the anatomy and translations move the image by comparable
amounts per degree and per mm (about 1 mm at the isocentre per degree for a point 57 mm
away), so the optimisers can use one scale. ``tx, ty`` shift the image; ``tz`` (depth)
only changes the magnification and is the weakly observable direction of a single view.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose, rotation_about_axis, rotation_angle_deg
from or_assist.core.validate import check_vector

__all__ = ["PARAMETER_NAMES", "update_matrix", "apply_update", "isocenter_source_mm", "pose_error",
           "target_error_mm", "projection_distance_at_isocenter_mm"]

PARAMETER_NAMES = ("rx_deg", "ry_deg", "rz_deg", "tx_mm", "ty_mm", "tz_mm")


def isocenter_source_mm(geometry: CArmGeometry) -> np.ndarray:
    """(3,) the isocentre in source coordinates, mm: ``(0, 0, source_to_isocenter_mm)``."""
    return np.array([0.0, 0.0, geometry.source_to_isocenter_mm])


def update_matrix(params: Sequence[float], center_source_mm: Sequence[float]) -> np.ndarray:
    """(4, 4) float64 source-frame update ``D(p)`` of the module doc."""
    p = check_vector(params, 6, "params", unit="rx, ry, rz deg, tx, ty, tz mm")
    c = np.asarray(center_source_mm, dtype=np.float64).reshape(3)
    rv = np.radians(p[:3])
    angle = float(np.linalg.norm(rv))
    r = rotation_about_axis(rv, angle) if angle > 0 else np.eye(3)
    d = np.eye(4)
    d[:3, :3] = r
    d[:3, 3] = c - r @ c + p[3:]
    return d


def apply_update(pose: Pose, params: Sequence[float], center_source_mm: Sequence[float]) -> Pose:
    """``D(p) @ pose`` (module doc)."""
    return Pose(update_matrix(params, center_source_mm) @ pose.matrix)


def pose_error(estimate: Pose, truth: Pose, center_source_mm: Sequence[float]) -> tuple[float, np.ndarray]:
    """Rotation angle (degrees) and the source-frame displacement (mm) of ``center``.

    Parameters
    ----------
    estimate, truth : Pose
    center_source_mm : (3,) array_like
        A point in the true source frame (e.g. the isocentre).

    Returns
    -------
    angle_deg : float
    displacement_mm : (3,) float64 ndarray
        Where ``estimate`` puts the patient point that ``truth`` maps to ``center``,
        minus ``center`` (x, y in the image plane, z depth).
    """
    c = np.asarray(center_source_mm, dtype=np.float64)
    x = truth.inverse().apply(c)
    return rotation_angle_deg(estimate.rotation, truth.rotation), estimate.apply(x) - c


def target_error_mm(estimate: Pose, truth: Pose, points_lps_mm: np.ndarray) -> float:
    """Mean 3-D target registration error (mTRE) over patient points, mm.

    The error of a point is the distance between where the two poses put it in the
    source frame (equivalently, in the patient frame).
    """
    p = np.asarray(points_lps_mm, dtype=np.float64).reshape(-1, 3)
    return float(np.mean(np.linalg.norm(estimate.apply(p) - truth.apply(p), axis=1)))


def projection_distance_at_isocenter_mm(estimate: Pose, truth: Pose, points_lps_mm: np.ndarray,
                                        geometry: CArmGeometry) -> float:
    """Mean 2-D distance between the points' projections, in mm at the isocentre."""
    from or_assist.core.geometry import project

    p = np.asarray(points_lps_mm, dtype=np.float64).reshape(-1, 3)
    d_px = np.linalg.norm(project(p, estimate, geometry) - project(p, truth, geometry), axis=1)
    mm_per_px = geometry.pixel_spacing_mm[0] * geometry.source_to_isocenter_mm / geometry.sid_mm
    return float(np.mean(d_px) * mm_per_px)
