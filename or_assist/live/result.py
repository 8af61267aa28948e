"""The result of one shot in the live pipeline: everything the display shows for it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from or_assist.core.pose import Pose
from or_assist.guidance.cues import Cue
from or_assist.guidance.deviation import ShotDeviation
from or_assist.guidance.pin import PinDetection
from or_assist.guidance.triangulate import Deviation3D
from or_assist.live.two_view import tip_seen as _tip_seen
from or_assist.register.pipeline import RegistrationResult

__all__ = ["ShotResult"]


@dataclass(eq=False)
class ShotResult:
    """Everything the display shows for one shot.

    Attributes
    ----------
    number : int
        1 for the pipeline's first shot, then 2, 3, ...
    shot_id : int or None
        The case log's id of the shot (None without a case log).
    frame : (H, W) uint8 ndarray
        The held image as grabbed.
    frame_index : int
        Its video frame index.
    shown_since_s : float
        ``time.monotonic()`` when the new image first appeared in the video.
    implant_id, view : str
        The implant and view the shot was registered and judged against.
    registration : RegistrationResult or None
        None when the frame could not even be preprocessed (``message`` says why).
    polarity : str
    detection, deviation, cue
        :class:`~or_assist.guidance.pin.PinDetection`,
        :class:`~or_assist.guidance.deviation.ShotDeviation`,
        :class:`~or_assist.guidance.cues.Cue`, or None.
    overlay_bgr : (H, W, 3) uint8 ndarray
        The shot with its overlay as the display shows it and a capture stores it.
    hint : str or None
        The C-arm positioning hint (:func:`~or_assist.live.hint.positioning_hint`; for a
        shot that did not register, :func:`~or_assist.live.hint.approximate_positioning_hint`,
        beginning "approx.").
    message : str or None
        A short status line (e.g. ``'no pin detected'``).
    seconds : dict
        Wall time per step (``preprocess``, ``register`` (the view comparison and every
        attempt), ``guidance``, ``log``, ``total``).
    finished_s : float
        ``time.monotonic()`` when processing ended.
    attempts : list of dict
        One per registration start tried, in order: ``view``, ``track`` (from the last
        registered pose), ``success``, ``seconds``, ``view_score`` (the quick similarity
        that ordered them; None when not scored).
    deviation_3d : Deviation3D or None
        The pin in 3-D against the plan, from this shot and an earlier one of the same
        implant at least 20 deg from it (:mod:`or_assist.live.two_view`): the study's
        apex deviation (mm) and angle (deg), with their 1-sigma uncertainty.
    deviation_3d_refused : str or None
        Why this shot has no 3-D deviation (no earlier shot far enough in direction, the
        pin moved since, the tip not seen in both shots, ...); None when it has one.
    deviation_3d_with : dict or None
        The earlier shot that gave it: ``number``, ``shot_id``, ``view``, ``tip_seen``.
    cue_3d : Cue or None
        The cue of ``deviation_3d`` (:func:`~or_assist.guidance.cues.cue_3d`).
    geometry_source : {'calibration', 'DICOM header'}
        Whose C-arm geometry the shot was registered with (a shot received over DICOM:
        its header's, :mod:`or_assist.live.starts`).
    notices : list of str
        Warnings that came with this shot (the DICOM header's geometry disagreeing with the
        calibrated one, ...), each said once per case.
    """

    number: int
    shot_id: int | None
    frame: np.ndarray
    frame_index: int
    shown_since_s: float
    implant_id: str
    view: str
    registration: RegistrationResult | None
    polarity: str
    detection: PinDetection | None = None
    deviation: ShotDeviation | None = None
    cue: Cue | None = None
    overlay_bgr: np.ndarray | None = None
    hint: str | None = None
    message: str | None = None
    seconds: dict = field(default_factory=dict)
    finished_s: float = 0.0
    attempts: list = field(default_factory=list)

    @property
    def register_seconds(self) -> float | None:
        """Wall time of the whole registration: the view comparison and every attempt,
        not only the last (None when the shot was not registered at all)."""
        if "register" in self.seconds:
            return float(self.seconds["register"])
        return None if self.registration is None else float(self.registration.seconds)

    def _timing(self) -> str:
        tries = len(self.attempts)
        return f"{self.register_seconds:.1f} s" + (f", {tries} attempts" if tries > 1 else "")
    deviation_3d: Deviation3D | None = None
    deviation_3d_refused: str | None = None
    deviation_3d_with: dict | None = None
    cue_3d: Cue | None = None
    geometry_source: str = "calibration"
    notices: list = field(default_factory=list)

    @property
    def registered(self) -> bool:
        """True when the shot is registered with confidence (only then is a plan drawn)."""
        return self.registration is not None and bool(self.registration.success)

    @property
    def pose(self) -> Pose | None:
        """The registered pose, or None unless registered with confidence."""
        return self.registration.pose_for_overlay if self.registration is not None else None

    def deviations(self) -> dict:
        """The shot's numbers as the case log stores them (per shot and per capture).

        Returns
        -------
        dict
            ``deviation_2d`` (:meth:`ShotDeviation.to_dict` or None), ``deviation_3d``
            (:meth:`Deviation3D.to_dict` plus ``shots``: the two shots that gave it, older
            first, each ``number``, ``shot_id``, ``view``, ``tip_seen``; and ``cue``) or
            None, and ``deviation_3d_refused`` (the reason, or None).
        """
        d3 = None
        if self.deviation_3d is not None:
            this = {"number": int(self.number), "shot_id": self.shot_id, "view": self.view,
                    "tip_seen": None if self.detection is None else _tip_seen(self.detection)}
            d3 = {**self.deviation_3d.to_dict(), "shots": [dict(self.deviation_3d_with or {}), this],
                  "cue": None if self.cue_3d is None else self.cue_3d.to_dict()}
        return {"deviation_2d": None if self.deviation is None else self.deviation.to_dict(), "deviation_3d": d3,
                "deviation_3d_refused": self.deviation_3d_refused}

    def deviation_3d_label(self) -> str | None:
        """Where the 3-D numbers come from, e.g. ``'3-D from shots 2 (inlet) + 3 (outlet)'``; None without them."""
        if self.deviation_3d is None:
            return None
        w = self.deviation_3d_with
        if not w:
            return "3-D from two views"
        return f"3-D from shots {w.get('number', '?')} ({w.get('view', '?')}) + {self.number} ({self.view})"

    def summary(self) -> str:
        """One line for logs and the headless run."""
        if self.registration is None:
            state = f"not registered ({self.message})"
        elif self.registered:
            est = self.registration.estimated_error_mm
            state = f"registered ({self.registration.metric} {self.registration.similarity:.2f}, " + \
                    (f"est. error {est:.1f} mm, " if est is not None else "") + f"{self._timing()})"
        else:
            state = f"NOT REGISTERED ({self.registration.reason}; {self._timing()})"
        dicom = ", DICOM geometry" if self.geometry_source == "DICOM header" else ""
        text = f"shot {self.number} [{self.implant_id} {self.view}{dicom}]: {state}"
        if self.cue is not None:
            text += f"; [{self.cue.level}] " + "; ".join(self.cue.lines)
        elif self.message and self.registration is not None:
            text += f"; {self.message}"
        d3 = self.deviation_3d
        if d3 is not None:
            u = d3.uncertainty
            text += (f"; {self.deviation_3d_label()}: apex {d3.apex_deviation_mm:.1f} +- {u['apex_deviation_mm']:.1f} mm, "
                     f"angle {d3.angle_deg:.1f} +- {u['angle_deg']:.1f} deg")
        if self.hint:
            text += f"; C-arm: {self.hint}"
        for notice in self.notices:
            text += f"; WARNING: {notice}"
        return text
