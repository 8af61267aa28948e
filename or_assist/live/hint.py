"""The C-arm positioning hint: how to move from the registered view to the planned one.

Said in the radiographer's words (rotate towards LAO/RAO, tilt more cranial/caudal,
:mod:`or_assist.core.carm` signs, detector side), and only when a difference reaches
:data:`HINT_MIN_DEG`.
"""

from __future__ import annotations

from or_assist.core.carm import carm_angles_from_pose, patient_axes
from or_assist.core.pose import Pose
from or_assist.errors import InputError

__all__ = ["HINT_MIN_DEG", "positioning_hint"]

HINT_MIN_DEG = 3.0
"""A C-arm angle this far (or farther) from the planned view's gives a positioning hint."""


def _wrap_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def positioning_hint(pose: Pose, planned_pose: Pose, landmarks=None, *, patient_position: str = "prone",
                     min_deg: float = HINT_MIN_DEG) -> str | None:
    """How to move the C-arm from ``pose`` to ``planned_pose``, in the radiographer's words.

    Parameters
    ----------
    pose : Pose
        The registered pose of the current shot (``T_source_from_patient``).
    planned_pose : Pose
        The planned view's pose.
    landmarks : sequence, optional
        Plan landmarks (they define the patient's axes, as for the planned views).
    patient_position : {'prone', 'supine'}
    min_deg : float
        Differences below this are not mentioned.

    Returns
    -------
    str or None
        E.g. ``'tilt 6 deg more caudal'`` or ``'rotate 5 deg towards LAO, tilt 4 deg more
        cranial'`` (detector side, :mod:`or_assist.core.carm` signs); None when the view
        is within ``min_deg`` of the plan in both angles.
    """
    if not isinstance(pose, Pose) or not isinstance(planned_pose, Pose):
        raise InputError("expected two Pose objects (T_source_from_patient)", "pose/planned_pose")
    axes = patient_axes(landmarks)
    now = carm_angles_from_pose(pose, patient_position, axes=axes)
    plan = carm_angles_from_pose(planned_pose, patient_position, axes=axes)
    d_orbital = _wrap_deg(plan.orbital_deg - now.orbital_deg)
    d_tilt = plan.tilt_deg - now.tilt_deg
    parts = []
    if abs(d_orbital) >= min_deg:
        parts.append(f"rotate {abs(d_orbital):.0f} deg towards {'LAO' if d_orbital > 0 else 'RAO'}")
    if abs(d_tilt) >= min_deg:
        parts.append(f"tilt {abs(d_tilt):.0f} deg more {'cranial' if d_tilt > 0 else 'caudal'}")
    return ", ".join(parts) or None
