"""The C-arm positioning hint: how to move from the current view to the planned one.

Said in the radiographer's words (rotate towards LAO/RAO, tilt more cranial/caudal,
:mod:`or_assist.core.carm` signs, detector side), and only when a difference reaches
:data:`HINT_MIN_DEG`:

* :func:`positioning_hint`: from a registered shot's pose (confident);
* :func:`approximate_positioning_hint`: for a shot that did **not** register, from the
  registration's best unconfirmed pose, else the start of its search (the library's
  nearest view or the 2-D initialisation); rounded to :data:`APPROX_STEP_DEG` and
  marked ``approx.``, so it never reads as a confident instruction, and not given for
  a guess beyond :data:`APPROX_MAX_DEG` (no guide at all);
* :func:`planned_angles_text`: the planned view's C-arm angles (orbital, tilt), as the
  radiographer sets them.
"""

from __future__ import annotations

from or_assist.core.carm import carm_angles_from_pose, patient_axes
from or_assist.core.pose import Pose
from or_assist.errors import InputError

__all__ = ["HINT_MIN_DEG", "APPROX_STEP_DEG", "APPROX_PREFIX", "APPROX_MAX_DEG", "positioning_hint",
           "approximate_positioning_hint", "planned_angles_text"]

HINT_MIN_DEG = 3.0
"""A C-arm angle this far (or farther) from the planned view's gives a positioning hint."""

APPROX_STEP_DEG = 5.0
"""An approximate hint's angles are rounded to this step (and at least one step)."""

APPROX_PREFIX = "approx. (not registered): "
"""How an approximate hint begins."""

APPROX_MAX_DEG = 30.0
"""An unconfirmed pose farther than this from the planned view in either angle gives no
approximate hint: beyond the registration's capture range it is no guide at all."""


def _wrap_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def _differences_deg(pose: Pose, planned_pose: Pose, landmarks, patient_position: str) -> tuple[float, float]:
    """(orbital, tilt) of the planned view minus those of ``pose``, degrees."""
    if not isinstance(pose, Pose) or not isinstance(planned_pose, Pose):
        raise InputError("expected two Pose objects (T_source_from_patient)", "pose/planned_pose")
    axes = patient_axes(landmarks)
    now = carm_angles_from_pose(pose, patient_position, axes=axes)
    plan = carm_angles_from_pose(planned_pose, patient_position, axes=axes)
    return _wrap_deg(plan.orbital_deg - now.orbital_deg), plan.tilt_deg - now.tilt_deg


def _words(d_orbital: float, d_tilt: float, min_deg: float, amount) -> str | None:
    parts = []
    if abs(d_orbital) >= min_deg:
        parts.append(f"rotate {amount(d_orbital)} deg towards {'LAO' if d_orbital > 0 else 'RAO'}")
    if abs(d_tilt) >= min_deg:
        parts.append(f"tilt {amount(d_tilt)} deg more {'cranial' if d_tilt > 0 else 'caudal'}")
    return ", ".join(parts) or None


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
    d_orbital, d_tilt = _differences_deg(pose, planned_pose, landmarks, patient_position)
    return _words(d_orbital, d_tilt, min_deg, lambda d: f"{abs(d):.0f}")


def approximate_positioning_hint(registration, planned_pose: Pose, landmarks=None, *,
                                 patient_position: str = "prone", min_deg: float = HINT_MIN_DEG,
                                 step_deg: float = APPROX_STEP_DEG,
                                 max_deg: float = APPROX_MAX_DEG) -> str | None:
    """A rough positioning hint for a shot that did not register, clearly marked approximate.

    The registration's final pose is unconfirmed (the method was not confident), so its
    angles are only a guess: the differences are rounded to ``step_deg`` (at least one
    step), written with ``~`` and the hint starts with :data:`APPROX_PREFIX`.

    Parameters
    ----------
    registration : RegistrationResult or None
        The failed registration (:class:`~or_assist.register.pipeline.RegistrationResult`):
        its ``pose`` (the best pose it reached), else its ``start_pose`` (where its search
        started: the nearest library view or the 2-D initialisation).
    planned_pose : Pose
    landmarks : sequence, optional
        Plan landmarks (the patient's axes).
    patient_position : {'prone', 'supine'}
    min_deg : float
        Differences below this are not mentioned.
    step_deg : float
        Rounding of the angles (> 0).
    max_deg : float
        A guess farther than this from the plan in either angle is no guide: no hint.

    Returns
    -------
    str or None
        E.g. ``'approx. (not registered): tilt ~10 deg more caudal'``; None when the
        registration succeeded (use :func:`positioning_hint`), has no pose at all, or
        the guess is within ``min_deg`` of the plan or beyond ``max_deg``.
    """
    if registration is None or getattr(registration, "success", False):
        return None
    if step_deg <= 0:
        raise InputError(f"must be > 0, got {step_deg!r}", "step_deg")
    pose = getattr(registration, "pose", None)
    if pose is None:
        pose = getattr(registration, "start_pose", None)
    if pose is None:
        return None
    d_orbital, d_tilt = _differences_deg(pose, planned_pose, landmarks, patient_position)
    if max(abs(d_orbital), abs(d_tilt)) > max_deg:
        return None

    def amount(d: float) -> str:
        return f"~{max(step_deg, step_deg * round(abs(d) / step_deg)):.0f}"

    words = _words(d_orbital, d_tilt, min_deg, amount)
    return None if words is None else APPROX_PREFIX + words


def planned_angles_text(planned_pose: Pose, landmarks=None, *, patient_position: str = "prone",
                        view: str | None = None) -> str:
    """The planned view's C-arm angles as the radiographer sets them.

    Parameters
    ----------
    planned_pose : Pose
    landmarks : sequence, optional
        Plan landmarks (the patient's axes, as for the planned views).
    patient_position : {'prone', 'supine'}
    view : str, optional
        Named in front (e.g. ``'R1 inlet'``).

    Returns
    -------
    str
        E.g. ``'R1 inlet: orbital 0 deg, tilt CAUD 25 deg'`` (:meth:`CArmAngles.radiographer_text`).
    """
    if not isinstance(planned_pose, Pose):
        raise InputError("expected a Pose (T_source_from_patient)", "planned_pose")
    angles = carm_angles_from_pose(planned_pose, patient_position, axes=patient_axes(landmarks))
    text = angles.radiographer_text()
    return f"{view}: {text}" if view else text
