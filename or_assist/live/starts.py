"""Where the live pipeline starts a shot's registration, and the registration attempts.

For each shot :class:`~or_assist.live.pipeline.LivePipeline` tries registrations from a
few start poses until one is confident:

* :func:`shot_starts`: the last registered pose when it is near the selected view's plan
  (tracking), the selected view's planned pose, then the active implant's other planned
  views (when the pipeline tries other views);
* :func:`register_from`: one attempt, tracking (a short local search from the last
  registered pose, when the registrar can) or a full registration from the start;
* :func:`register_shot`: the starts ranked by how much the shot looks like each
  (:func:`~or_assist.live.views.rank_starts`), tried in turn, each attempt recorded in
  the shot's :class:`~or_assist.live.result.ShotResult`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from or_assist.core.pose import Pose
from or_assist.core.vocabulary import SIJF_VIEWS
from or_assist.live.result import ShotResult
from or_assist.live.views import rank_starts
from or_assist.register.pipeline import RegistrationResult
from or_assist.register.pose_params import isocenter_source_mm, pose_error

__all__ = ["TRACK_WITHIN_DEG", "shot_starts", "register_from", "register_shot"]

TRACK_WITHIN_DEG = 10.0
"""Start from the previous registered pose when it is this close (deg) to the selected view's plan."""


def shot_starts(pipe, implant_id: str, view: str) -> list[tuple[str, Pose, bool]]:
    """The registration starts of a shot, selected view first.

    Parameters
    ----------
    pipe : LivePipeline
        Its plan, geometry, last result and ``try_other_views``.
    implant_id : str
        The active implant.
    view : str
        The selected view.

    Returns
    -------
    list of (view, Pose, track)
        The last registered pose (``track`` True) when it is of this implant and within
        :data:`TRACK_WITHIN_DEG` of the view's plan, the planned view, the other planned views.
    """
    planned, last = pipe.planned_pose(implant_id, view), pipe._last
    near = last is not None and last.registered and last.implant_id == implant_id and \
        pose_error(last.pose, planned, isocenter_source_mm(pipe.geometry))[0] <= TRACK_WITHIN_DEG
    others = [(v, pipe.planned_pose(implant_id, v), False) for v in SIJF_VIEWS if v != view and pipe.try_other_views]
    return ([(view, last.pose, True)] if near else []) + [(view, planned, False)] + others


def register_from(registrar, plan, library, frame: np.ndarray, start: Pose, track: bool, polarity: str,
                  implant_id: str) -> RegistrationResult:
    """One registration attempt; the error is estimated at the implant's entry and apex.

    Parameters
    ----------
    registrar : Registrar
        Anything with ``register(frame, init_pose, polarity=..., library=..., target_lps_mm=...)``
        (and optionally ``track`` and ``last_result``).
    plan : Plan
    library : ViewLibrary or None
    frame : (H, W) ndarray
        The shot (uint8 or uint16).
    start : Pose
    track : bool
        Track from the last registered pose when the registrar can (a short local search,
        ``start`` its fall-back) instead of a full registration.
    polarity : {'bone-dark', 'bone-bright'}
    implant_id : str

    Returns
    -------
    RegistrationResult
    """
    implant = plan.implant(implant_id)
    targets = np.stack([implant.entry_lps_mm, implant.apex_lps_mm])
    prev = getattr(registrar, "last_result", None)
    if track and hasattr(registrar, "track") and prev is not None and prev.pose_for_overlay is not None:
        return registrar.track(frame, polarity=polarity, fallback_pose=start, target_lps_mm=targets)
    return registrar.register(frame, start, polarity=polarity, library=library, target_lps_mm=targets)


def register_shot(pipe, result: ShotResult, frame: np.ndarray, polarity: str,
                  should_stop: Callable[[], bool] | None = None) -> None:
    """Register a shot from its ranked starts until one attempt is confident.

    Parameters
    ----------
    pipe : LivePipeline
    result : ShotResult
        Gets ``registration`` (the confident attempt, else the first), ``view`` (the view
        it started from) and one ``attempts`` entry per attempt.
    frame : (H, W) ndarray
        The shot as delivered.
    polarity : {'bone-dark', 'bone-bright'}
        As the preprocessing found it.
    should_stop : callable, optional
        Polled before every attempt after the first: True stops the search.
    """
    implant_id, view = result.implant_id, result.view
    starts = rank_starts(pipe.renderer, pipe.geometry, frame, shot_starts(pipe, implant_id, view), view,
                         polarity=polarity)
    for k, (v, start, track, score) in enumerate(starts):
        if k and should_stop is not None and should_stop():
            break
        reg = register_from(pipe.registrar, pipe.plan, pipe.library, frame, start, track, polarity, implant_id)
        result.attempts.append({"view": v, "track": track, "success": reg.success, "seconds": reg.seconds,
                                "view_score": score})
        if result.registration is None or reg.success:
            result.registration, result.view = reg, v
        if reg.success:
            break
