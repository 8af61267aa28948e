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

A shot received over DICOM (:mod:`or_assist.video.sources.dicom`) brings its header:
:func:`shot_setup` registers it with the header's geometry
(:func:`~or_assist.dicom.header_geometry.geometry_from_header`; one
:class:`~or_assist.register.pipeline.Registrar` per geometry, cached, sharing the DRR
renderer) on its full-depth pixels, warns once per disagreement with the calibrated
geometry (:func:`~or_assist.dicom.header_geometry.compare_geometry`), and
:func:`header_start` makes the pose of the header's positioner angles about the planned
view's isocentre the first start. A header without geometry tags falls back to the
calibrated geometry when the image has its size, and is not registered otherwise (said).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.vocabulary import SIJF_VIEWS
from or_assist.live.result import ShotResult
from or_assist.live.views import rank_starts
from or_assist.register.pipeline import Registrar, RegistrationResult
from or_assist.register.pose_params import isocenter_source_mm, pose_error

__all__ = ["TRACK_WITHIN_DEG", "HEADER_START", "ShotSetup", "shot_setup", "header_start", "shot_starts",
           "register_from", "register_shot"]

TRACK_WITHIN_DEG = 10.0
"""Start from the previous registered pose when it is this close (deg) to the selected view's plan."""


HEADER_START = "DICOM angles"
"""``attempts[i]["start"]`` of the attempt from the header's positioner angles."""


@dataclass(eq=False)
class ShotSetup:
    """How one shot is registered.

    Attributes
    ----------
    frame : (H, W) ndarray
        What the registration sees: the full-depth pixels of a DICOM shot (uint16), else
        the delivered image.
    geometry : CArmGeometry
        Of the shot's pixels: the DICOM header's, or the calibrated one.
    registrar : Registrar
        For ``geometry``.
    header : DicomShotHeader or None
    geometry_source : {'calibration', 'DICOM header'}
    notices : list of str
        Warnings to show with this shot (each said once per case).
    problem : str or None
        Why the shot cannot be registered at all (None: it can).
    """

    frame: np.ndarray
    geometry: CArmGeometry
    registrar: object
    header: object = None
    geometry_source: str = "calibration"
    notices: list = field(default_factory=list)
    problem: str | None = None


def _once(pipe, text: str) -> list[str]:
    """``[text]`` the first time the pipeline says it, else ``[]``."""
    with pipe._lock:
        if text in pipe._said:
            return []
        pipe._said.add(text)
    return [text]


def _registrar_for(pipe, geometry: CArmGeometry):
    """The registrar of ``geometry`` (cached per geometry; None when the pipeline's registrar cannot be copied)."""
    if geometry == pipe.geometry:
        return pipe.registrar
    key = tuple(sorted((k, str(v)) for k, v in geometry.to_dict().items()))
    with pipe._lock:
        hit = pipe._registrars.get(key)
    if hit is not None:
        return hit
    base = pipe.registrar
    if not isinstance(base, Registrar):
        return None
    made = Registrar(base.renderer, geometry, base.settings)
    with pipe._lock:
        return pipe._registrars.setdefault(key, made)


def shot_setup(pipe, image: np.ndarray, header=None, pixels: np.ndarray | None = None) -> ShotSetup:
    """The frame, geometry and registrar of one shot (module doc).

    Parameters
    ----------
    pipe : LivePipeline
    image : (H, W) uint8 ndarray
        The shot as delivered.
    header : DicomShotHeader, optional
        The DICOM header of a shot received over DICOM (None: a video shot).
    pixels : (H, W) uint16 ndarray, optional
        The full-depth pixels of that shot (``image``'s size).

    Returns
    -------
    ShotSetup
    """
    if header is None:
        return ShotSetup(image, pipe.geometry, pipe.registrar)
    from or_assist.dicom.header_geometry import compare_geometry, geometry_from_header, missing_geometry_reason

    h, w = image.shape[:2]
    frame = pixels if pixels is not None and pixels.shape[:2] == (h, w) else image
    calibrated = pipe.geometry
    geometry = geometry_from_header(header, (h, w))
    if geometry is None:
        why = missing_geometry_reason(header)
        if (w, h) == tuple(calibrated.image_size_px):
            return ShotSetup(frame, calibrated, pipe.registrar, header,
                             notices=_once(pipe, f"{why}: registered with the calibrated geometry"))
        return ShotSetup(frame, calibrated, pipe.registrar, header, problem=(
            f"{why}, and the image ({w}x{h}) is not the calibrated size "
            f"({calibrated.width}x{calibrated.height}): cannot be registered"))
    notices = [n for text in compare_geometry(geometry, calibrated) for n in _once(pipe, text)]
    registrar = _registrar_for(pipe, geometry)
    if registrar is None:
        if (w, h) != tuple(calibrated.image_size_px):
            return ShotSetup(frame, geometry, pipe.registrar, header, "DICOM header", notices,
                             problem="this registrar works only with the calibrated geometry")
        return ShotSetup(frame, calibrated, pipe.registrar, header, "calibration", notices)
    return ShotSetup(frame, geometry, registrar, header, "DICOM header", notices)


def header_start(pipe, setup: ShotSetup, implant_id: str, view: str) -> tuple[str, Pose] | None:
    """``(view, pose)``: the pose of the header's positioner angles about the selected view's planned
    isocentre, labelled with the planned view nearest to it; None without angles (or header).

    Parameters
    ----------
    pipe : LivePipeline
    setup : ShotSetup
    implant_id, view : str
        The active implant and the selected view.
    """
    header = setup.header
    if header is None or getattr(header, "primary_angle_deg", None) is None:
        return None
    from or_assist.dicom.header_geometry import start_pose_from_header

    geometry = setup.geometry
    planned = pipe.planned_pose(implant_id, view, geometry)
    iso = planned.source_position_lps_mm + geometry.source_to_isocenter_mm * planned.beam_direction_lps
    pose = start_pose_from_header(header, iso, geometry)
    if pose is None:
        return None
    views = [view] + [v for v in SIJF_VIEWS if v != view]
    centre = isocenter_source_mm(geometry)
    nearest = min(views, key=lambda v: pose_error(pose, pipe.planned_pose(implant_id, v, geometry), centre)[0])
    return nearest, pose


def shot_starts(pipe, implant_id: str, view: str, geometry: CArmGeometry | None = None) -> list[tuple[str, Pose, bool]]:
    """The registration starts of a shot, selected view first.

    Parameters
    ----------
    pipe : LivePipeline
        Its plan, geometry, last result and ``try_other_views``.
    implant_id : str
        The active implant.
    view : str
        The selected view.
    geometry : CArmGeometry, optional
        Of the shot (its source-isocentre distance places the planned views); default the pipeline's.

    Returns
    -------
    list of (view, Pose, track)
        The last registered pose (``track`` True) when it is of this implant and within
        :data:`TRACK_WITHIN_DEG` of the view's plan, the planned view, the other planned views.
    """
    geometry = pipe.geometry if geometry is None else geometry
    planned, last = pipe.planned_pose(implant_id, view, geometry), pipe._last
    near = last is not None and last.registered and last.implant_id == implant_id and \
        pose_error(last.pose, planned, isocenter_source_mm(geometry))[0] <= TRACK_WITHIN_DEG
    others = [(v, pipe.planned_pose(implant_id, v, geometry), False) for v in SIJF_VIEWS
              if v != view and pipe.try_other_views]
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


def register_shot(pipe, result: ShotResult, setup: ShotSetup, polarity: str,
                  should_stop: Callable[[], bool] | None = None) -> None:
    """Register a shot from its starts until one attempt is confident: tracking from the last
    registered pose when there is one, then the header's angles (:func:`header_start`), then
    the planned views ranked by similarity.

    Parameters
    ----------
    pipe : LivePipeline
    result : ShotResult
        Gets ``registration`` (the confident attempt, else the first), ``view`` (the view
        it started from) and one ``attempts`` entry per attempt (``start``: ``'tracked'``,
        ``'planned'`` or :data:`HEADER_START`).
    setup : ShotSetup
        The shot's frame, geometry and registrar (:func:`shot_setup`).
    polarity : {'bone-dark', 'bone-bright'}
        As the preprocessing found it.
    should_stop : callable, optional
        Polled before every attempt after the first: True stops the search.
    """
    implant_id, view = result.implant_id, result.view
    frame, geometry = setup.frame, setup.geometry
    starts = [(*s, "tracked" if s[2] else "planned")
              for s in rank_starts(pipe.renderer, geometry, frame, shot_starts(pipe, implant_id, view, geometry),
                                   view, polarity=polarity)]
    first = header_start(pipe, setup, implant_id, view)
    if first is not None:
        # Tracking (a short local search from the last registered pose) stays first: a repeated
        # shot of the same view is then found in a few hundred evaluations; the header's angles
        # come next, before the planned views.
        tracked = [s for s in starts if s[2]][:1]
        starts = tracked + [(first[0], first[1], False, None, HEADER_START)] + [s for s in starts if s not in tracked]
    for k, (v, start, track, score, kind) in enumerate(starts):
        if k and should_stop is not None and should_stop():
            break
        reg = register_from(setup.registrar, pipe.plan, pipe.library, frame, start, track, polarity, implant_id)
        result.attempts.append({"view": v, "track": track, "success": reg.success, "seconds": reg.seconds,
                                "view_score": score, "start": kind, "stopped_in": reg.stopped_in})
        if result.registration is None or reg.success:
            result.registration, result.view = reg, v
        if reg.success:
            break
    notice = pipe.budget_watch.update(result, getattr(getattr(setup.registrar, "settings", None), "time_budget_s", None))
    if notice is not None:   # the computer, not the shot (or_assist.live.time_budget)
        result.notices.append(notice)
        pipe.log_event("time_budget", {"notice": notice, "shot": result.number})
