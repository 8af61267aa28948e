"""Poses of a plan's named views (lateral, inlet, outlet, ap, axis) for a C-arm.

Joins the plan (implants, landmarks, view specs) to :mod:`or_assist.core.carm`. The
inlet and outlet tilts come, in this order, from: an explicit argument, the plan's view
spec, the plan's landmarks (:func:`~or_assist.core.carm.derive_view_tilts_deg`), or the
DOMAIN.md defaults (25 and 42 degrees).
"""

from __future__ import annotations

import os

from or_assist.core.carm import (DEFAULT_INLET_TILT_DEG, DEFAULT_OUTLET_TILT_DEG, CArmAngles,
                                 carm_angles_from_pose, derive_view_tilts_deg, patient_axes, sijf_view_pose)
from or_assist.core.geometry import CArmGeometry, load_geometry
from or_assist.core.pose import Pose

__all__ = ["DEFAULT_SOURCE_TO_ISOCENTER_MM", "view_tilt_deg", "plan_view_pose", "plan_view_poses", "plan_carm_angles"]

DEFAULT_SOURCE_TO_ISOCENTER_MM = 600.0  # DOMAIN.md: generic mobile C-arm


def view_tilt_deg(plan, implant_id: str | None, kind: str, tilt_deg: float | None = None) -> float | None:
    """The inlet/outlet tilt magnitude to use (None for other kinds); see the module doc."""
    if kind not in ("inlet", "outlet"):
        return None
    if tilt_deg is not None:
        return float(tilt_deg)
    for v in plan.views:
        if v.kind == kind and v.implant == implant_id and v.tilt_deg is not None:
            return float(v.tilt_deg)
    inlet, outlet = derive_view_tilts_deg(plan.landmarks)  # each None if not derivable
    derived = inlet if kind == "inlet" else outlet
    if derived is not None:
        return derived
    return DEFAULT_INLET_TILT_DEG if kind == "inlet" else DEFAULT_OUTLET_TILT_DEG


def plan_view_pose(plan, implant_id: str, kind: str, *, geometry: CArmGeometry | None = None,
                   geometry_path: str | os.PathLike | None = None,
                   source_to_isocenter_mm: float | None = None, tilt_deg: float | None = None,
                   patient_position: str = "prone") -> Pose:
    """Pose of the named view ``kind`` of one planned implant.

    Parameters
    ----------
    plan : Plan
    implant_id : str
    kind : {'lateral', 'inlet', 'outlet', 'ap', 'axis'}
    geometry, geometry_path : CArmGeometry or path, optional
        Where the source-to-isocentre distance comes from.
    source_to_isocenter_mm : float, optional
        Overrides the geometry; default 600 mm when no geometry is given.
    tilt_deg : float, optional
        Inlet/outlet tilt magnitude (see :func:`view_tilt_deg`).
    patient_position : {'prone', 'supine'}

    Returns
    -------
    Pose
        ``T_source_from_patient`` with the isocentre at the implant's midpoint.
    """
    implant = plan.implant(implant_id)
    if geometry is None and geometry_path is not None:
        geometry = load_geometry(geometry_path)
    s2i = source_to_isocenter_mm
    if s2i is None:
        s2i = geometry.source_to_isocenter_mm if geometry is not None else DEFAULT_SOURCE_TO_ISOCENTER_MM
    return sijf_view_pose(kind, implant.entry_lps_mm, implant.apex_lps_mm, implant.side, s2i,
                          tilt_deg=view_tilt_deg(plan, implant_id, kind, tilt_deg),
                          patient_position=patient_position, landmarks=plan.landmarks)


def plan_view_poses(plan, geometry: CArmGeometry, patient_position: str = "prone") -> list[tuple]:
    """``(ViewSpec, Pose)`` for every implant-centred view of the plan (or the defaults)."""
    from or_assist.core.plan import default_views

    specs = [v for v in (plan.views or default_views(plan)) if v.implant is not None]
    return [(v, plan_view_pose(plan, v.implant, v.kind, geometry=geometry, tilt_deg=v.tilt_deg,
                               patient_position=patient_position)) for v in specs]


def plan_carm_angles(plan, pose: Pose, patient_position: str = "prone") -> CArmAngles:
    """The clinical C-arm angles (orbital, tilt) of ``pose`` for this plan's patient.

    Measured about the patient's axes from the plan's landmarks
    (:func:`~or_assist.core.carm.patient_axes`), as the planned views are built and as
    the positioning hint (:mod:`or_assist.live.hint`) compares them, so a planned view's
    angles read back as the C-arm is to be set (e.g. a lateral as orbital 90 deg, tilt 0).

    Parameters
    ----------
    plan : Plan
    pose : Pose
        ``T_source_from_patient``, e.g. from :func:`plan_view_pose`.
    patient_position : {'prone', 'supine'}

    Returns
    -------
    CArmAngles
    """
    return carm_angles_from_pose(pose, patient_position, patient_axes(plan.landmarks))
