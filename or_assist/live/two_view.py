"""Live two-view 3-D deviation: each new shot paired with an earlier one of the same implant.

The study's metric (the distance between the pin's tip and the planned apex, and the
angle between the pin and the planned axis, as the post-operative CT evaluation
:mod:`or_assist.postop.evaluate` measures them for the placed implant) needs the pin in
3-D, i.e. two registered shots from directions at least
:data:`~or_assist.guidance.triangulate.MIN_VIEW_ANGLE_DEG` apart (inlet + outlet, lateral
+ either). :class:`TwoViewTracker` keeps, per implant, the latest registered shots in
which the pin was detected; after a new shot's guidance it is paired with the most recent
earlier shot of the same implant taken from a direction far enough from it (an earlier
one still when that shot cannot check a move: tip unseen, pin end-on), and the pin is
triangulated with each view's uncertainty
(:func:`~or_assist.guidance.triangulate.two_view_deviation`).

Honesty rules:

* The pin must not have moved between the two shots. Two views always give *an* axis
  (two planes meet in a line), but a pin advanced between them puts the two tips at
  different places along it: when each shot's tip ray meets the triangulated axis more
  than :data:`MOVED_SIGMAS` times their combined uncertainty (at least
  :data:`MOVED_FLOOR_MM`) apart, the pair is refused ("pin moved since shot N"). A
  smaller disagreement is added, as half the gap, to the tip and apex uncertainty.
* Hence the apex comes only from pairs whose tip was seen in both shots (not hidden by an
  implant, not at the field's border), and whose check can see a move of
  :data:`MOVE_CHECK_MAX_MM`: a pin seen nearly end-on (as in a lateral, along the
  implant) puts its tip's depth nowhere in particular. Otherwise the pair is refused,
  and the reason names the shot ("its tip is not seen in shot N", "shot N sees the pin
  nearly end-on"): a pin advanced between a lateral and an inlet would otherwise give
  a confident 3-D apex that is wrong by the advance. A pin re-aimed between two shots
  about its tip cannot be told from two views alone.
* Each registered view's pose uncertainty (:class:`~or_assist.guidance.triangulate.ViewUncertainty`)
  comes from the registration's own error estimate (:func:`view_uncertainty`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from or_assist.core.geometry import CArmGeometry, backproject
from or_assist.core.pose import Pose
from or_assist.errors import InputError
from or_assist.guidance.cues import Cue, CueThresholds, cue_3d
from or_assist.guidance.deviation import ray_line_closest
from or_assist.guidance.pin import PinDetection
from or_assist.guidance.pin_files import REGISTERED_POSE_SIGMA
from or_assist.guidance.triangulate import (MIN_VIEW_ANGLE_DEG, Deviation3D, TriangulationRefused,
                                            ViewUncertainty, triangulate_pin, two_view_deviation)

__all__ = ["MOVED_SIGMAS", "MOVED_FLOOR_MM", "MOVE_CHECK_MAX_MM", "KEPT_SHOTS", "PinView", "TwoViewResult",
           "TwoViewTracker", "view_uncertainty", "views_angle_deg", "tip_seen", "pin_moved_mm"]

#: Two tips further apart along the pin than this many combined sigmas: the pin moved.
MOVED_SIGMAS = 3.0
#: ... and never less than this (mm): below it a move cannot be told from noise.
MOVED_FLOOR_MM = 2.0
#: A move check whose limit is above this (mm) cannot see a move that matters: the pair is refused.
MOVE_CHECK_MAX_MM = 8.0
#: Shots with a detected pin kept per implant.
KEPT_SHOTS = 8


def tip_seen(detection: PinDetection) -> bool:
    """True when the detected tip is the pin's real tip: not hidden, not at the field's border.

    A detection that says so itself (a ``tip_seen`` attribute) is taken at its word.
    """
    seen = getattr(detection, "tip_seen", None)
    if seen is not None:
        return bool(seen)
    return not (bool(detection.tip_occluded) or bool(detection.tip_at_border))


def view_uncertainty(registration) -> ViewUncertainty:
    """1-sigma uncertainty of a registered view for the triangulation.

    The registration's estimated error at the implant is a 95 % bound (about two sigma)
    dominated by the error along the beam; the triangulation's pose sigma is across the
    beam and doubled along it, so it is a quarter of the estimate (the along-beam sigma
    half of it), and never below the pin command's assumption
    :data:`~or_assist.guidance.pin_files.REGISTERED_POSE_SIGMA` (1 mm, 0.5 deg): the
    registration benchmark measured 0.06-0.08 mm rms across the beam and 0.6 mm along it.

    Parameters
    ----------
    registration : RegistrationResult
        A successful registration (``estimated_error_mm`` may be None).

    Returns
    -------
    ViewUncertainty
    """
    mm, deg = REGISTERED_POSE_SIGMA
    est = getattr(registration, "estimated_error_mm", None)
    if est is not None and math.isfinite(float(est)):
        mm = max(mm, float(est) / 4.0)
    return ViewUncertainty(pose_mm=float(mm), pose_deg=float(deg))


def views_angle_deg(pose_a: Pose, pose_b: Pose) -> float:
    """Angle between two shots' beams (0-90 deg; opposite beams count as parallel)."""
    c = abs(float(pose_a.beam_direction_lps @ pose_b.beam_direction_lps))
    return math.degrees(math.acos(min(1.0, c)))


@dataclass(eq=False)
class PinView:
    """One registered shot with a detected pin, as the tracker keeps it.

    Attributes
    ----------
    number : int
        The pipeline's shot number.
    view : str
    pose : Pose
    geometry : CArmGeometry
        Of the pixels the detection is in (the preprocessed image's).
    detection : PinDetection
    uncertainty : ViewUncertainty
    shot_id : int or None
        The case log's id of the shot, once logged (:meth:`TwoViewTracker.set_shot_id`).
    """

    number: int
    view: str
    pose: Pose
    geometry: CArmGeometry
    detection: PinDetection
    uncertainty: ViewUncertainty
    shot_id: int | None = None

    @property
    def tip_seen(self) -> bool:
        """The tip is seen in this shot (:func:`tip_seen`)."""
        return tip_seen(self.detection)

    def describe(self) -> dict:
        """``{"number", "shot_id", "view", "tip_seen"}``."""
        return {"number": int(self.number), "shot_id": self.shot_id, "view": self.view, "tip_seen": self.tip_seen}


@dataclass(frozen=True, eq=False)
class TwoViewResult:
    """What the tracker says for one shot.

    Attributes
    ----------
    deviation : Deviation3D or None
    refused : str or None
        Why there is no 3-D deviation for this shot (None when there is one).
    older, newer : PinView or None
        The two shots that gave it (``newer`` is the shot itself).
    cue : Cue or None
        :func:`~or_assist.guidance.cues.cue_3d` of ``deviation``.
    tips_gap_mm : float or None
        How far apart along the pin the two shots put the tip (both tips seen).
    """

    deviation: Deviation3D | None
    refused: str | None
    older: PinView | None = None
    newer: PinView | None = None
    cue: Cue | None = None
    tips_gap_mm: float | None = None


def _tip_along_axis(view: PinView, point, axis) -> tuple[float, float]:
    """Where ``view``'s tip ray meets the axis line (mm along ``axis`` from ``point``) and its 1-sigma."""
    origin, ray = backproject(view.detection.tip_px, view.pose, view.geometry)
    tau, sin_a = ray_line_closest(origin, ray, point, axis)
    depth = float((point + tau * axis - origin) @ view.pose.beam_direction_lps)
    g = view.geometry
    mm_per_px = float(np.mean(g.pixel_spacing_mm)) * depth / g.sid_mm
    across = math.hypot(view.uncertainty.tip_px * mm_per_px, view.uncertainty.pose_mm)
    return float(tau), across / max(sin_a, 0.05)


def _plain(exc: InputError) -> str:
    """The message without the ``source:`` prefix."""
    text = str(exc)
    prefix = f"{exc.source}: " if getattr(exc, "source", None) else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def pin_moved_mm(older: PinView, newer: PinView, ref_point_lps_mm) -> tuple[float, float, tuple] | None:
    """How far apart along the triangulated pin the two shots' tips lie, and the limit.

    Parameters
    ----------
    older, newer : PinView
        Both with the tip seen.
    ref_point_lps_mm : (3,) array_like
        A point near the pin (the planned apex).

    Returns
    -------
    (gap_mm, limit_mm, (sigma_older_mm, sigma_newer_mm)) or None
        The gap, the largest gap that is not a move (:data:`MOVED_SIGMAS` combined
        sigmas, at least :data:`MOVED_FLOOR_MM`) and each tip's 1-sigma along the pin;
        None when the two shots cannot be triangulated (the caller's
        :func:`~or_assist.guidance.triangulate.two_view_deviation` says why).
    """
    try:
        pin = triangulate_pin([older.detection, newer.detection], [older.pose, newer.pose],
                              [older.geometry, newer.geometry], ref_point_lps_mm=ref_point_lps_mm)
    except TriangulationRefused:
        return None
    (ta, sa), (tb, sb) = (_tip_along_axis(v, pin.tip_lps_mm, pin.direction_lps) for v in (older, newer))
    return abs(tb - ta), max(MOVED_SIGMAS * math.hypot(sa, sb), MOVED_FLOOR_MM), (sa, sb)


class TwoViewTracker:
    """Per implant, the latest shots with a detected pin, and the 3-D deviation of each new shot (module doc).

    Parameters
    ----------
    plan : Plan
    thresholds : CueThresholds, optional
    kept_shots : int
        Shots kept per implant.
    """

    def __init__(self, plan, thresholds: CueThresholds | None = None, kept_shots: int = KEPT_SHOTS):
        if not hasattr(plan, "implant"):
            raise InputError("expected a Plan", "plan")
        if isinstance(kept_shots, bool) or not isinstance(kept_shots, int) or kept_shots < 1:
            raise InputError(f"must be a whole number >= 1, got {kept_shots!r}", "kept_shots")
        self.plan = plan
        self.thresholds = thresholds or CueThresholds()
        self._kept = int(kept_shots)
        self._history: dict[str, deque] = {}

    def history(self, implant_id: str) -> list[PinView]:
        """The kept shots of ``implant_id``, oldest first."""
        return list(self._history.get(implant_id, ()))

    def set_shot_id(self, implant_id: str, number: int, shot_id: int | None) -> None:
        """Record the case log's id of the kept shot ``number`` (once it is logged)."""
        for v in self._history.get(implant_id, ()):
            if v.number == number:
                v.shot_id = shot_id

    def reset(self, implant_id: str | None = None) -> None:
        """Forget the kept shots (of one implant, or all): e.g. after the pin was exchanged."""
        if implant_id is None:
            self._history.clear()
        else:
            self._history.pop(implant_id, None)

    def update(self, implant_id: str, view: PinView | None, *, reason: str | None = None) -> TwoViewResult:
        """Pair a new shot with the most recent suitable earlier one and triangulate.

        Parameters
        ----------
        implant_id : str
        view : PinView or None
            The new shot; None when it has no registered pin (``reason`` says why).
        reason : str, optional
            Why ``view`` is None.

        Returns
        -------
        TwoViewResult
        """
        implant = self.plan.implant(implant_id)
        if view is None:
            return TwoViewResult(None, reason or "no registered pin in this shot")
        if not isinstance(view, PinView):
            raise InputError(f"expected a PinView, got {type(view).__name__}", "view")
        earlier = list(self._history.get(implant_id, ()))
        queue = self._history.setdefault(implant_id, deque(maxlen=self._kept))
        queue.append(view)
        if not earlier:
            return TwoViewResult(None, f"needs a second shot of {implant_id} with the pin, at least "
                                       f"{MIN_VIEW_ANGLE_DEG:g} deg from this one (e.g. inlet + outlet)", newer=view)
        far = [v for v in reversed(earlier) if views_angle_deg(v.pose, view.pose) >= MIN_VIEW_ANGLE_DEG]
        if not far:
            last = earlier[-1]
            return TwoViewResult(None, f"the earlier shots of {implant_id} are too close in direction (shot "
                                       f"{last.number} {last.view}: {views_angle_deg(last.pose, view.pose):.0f} deg; at "
                                       f"least {MIN_VIEW_ANGLE_DEG:g} deg needed, e.g. inlet + outlet)", newer=view)
        # The most recent partner first; one that cannot give the pin (its tip unseen, its pin
        # end-on, planes too flat) gives way to an earlier one, whose move check then covers
        # the shots between. A pin that moved since a shot moved since every earlier one too.
        # When none gives it, the most recent partner's reason is the one said.
        first = None
        for partner in far:
            result = self._pair(implant, partner, view)
            if result.deviation is not None or result.refused.startswith("pin moved"):
                return result
            first = first or result
        return first

    def _pair(self, implant, older: PinView, newer: PinView) -> TwoViewResult:
        unseen = [v for v in (older, newer) if not v.tip_seen]
        pair = f"shot {older.number} ({older.view}) and shot {newer.number} ({newer.view})"
        if unseen:
            which = " nor in ".join(f"shot {v.number} ({v.view})" for v in unseen)
            return TwoViewResult(None, f"no 3-D apex from {pair}: the pin's tip is not seen in {which}, so neither "
                                       "its depth nor whether the pin moved between the shots can be checked; "
                                       "take the view again with the tip in the field", older, newer)
        gap = None
        moved = pin_moved_mm(older, newer, implant.apex_lps_mm)
        if moved is not None:
            gap, limit, sigmas = moved
            if limit > MOVE_CHECK_MAX_MM:
                worse = (older, newer)[int(sigmas[1] > sigmas[0])]
                return TwoViewResult(None, f"no 3-D apex from {pair}: shot {worse.number} ({worse.view}) sees the pin "
                                           f"nearly end-on (its tip's depth is uncertain by {max(sigmas):.0f} mm), so "
                                           "a move of the pin between the shots cannot be checked; use inlet + outlet",
                                     older, newer, tips_gap_mm=gap)
            if gap > limit:
                return TwoViewResult(None, f"pin moved since shot {older.number} ({older.view}): the two tips are "
                                           f"{gap:.1f} mm apart along the pin (limit {limit:.1f} mm); take the "
                                           "other view again", older, newer, tips_gap_mm=gap)
        try:
            dev = two_view_deviation(implant, [older.detection, newer.detection], [older.pose, newer.pose],
                                     [older.geometry, newer.geometry], [older.uncertainty, newer.uncertainty])
        except TriangulationRefused as exc:
            return TwoViewResult(None, f"shots {older.number} ({older.view}) and {newer.number} ({newer.view}): "
                                       f"{_plain(exc)}", older, newer)
        warnings = list(dev.warnings)
        unc = dict(dev.uncertainty)
        if gap is not None and gap > 0:
            half = 0.5 * gap
            unc["tip_mm"] = math.hypot(unc["tip_mm"], half)
            unc["apex_deviation_mm"] = math.hypot(unc["apex_deviation_mm"], half)
        dev = replace(dev, uncertainty=unc, warnings=warnings)
        cue = cue_3d(dev, implant, self.plan.landmarks, self.thresholds)
        return TwoViewResult(dev, None, older, newer, cue, gap)
