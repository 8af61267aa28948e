"""The result of one shot in the live pipeline: everything the display shows for it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from or_assist.core.pose import Pose
from or_assist.guidance.cues import Cue
from or_assist.guidance.deviation import ShotDeviation
from or_assist.guidance.pin import PinDetection
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

    @property
    def registered(self) -> bool:
        """True when the shot is registered with confidence (only then is a plan drawn)."""
        return self.registration is not None and bool(self.registration.success)

    @property
    def pose(self) -> Pose | None:
        """The registered pose, or None unless registered with confidence."""
        return self.registration.pose_for_overlay if self.registration is not None else None

    def deviations(self) -> dict:
        """``{"deviation_2d": {...} or None, "deviation_3d": None}`` as the case log stores them."""
        return {"deviation_2d": None if self.deviation is None else self.deviation.to_dict(), "deviation_3d": None}

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
        text = f"shot {self.number} [{self.implant_id} {self.view}]: {state}"
        if self.cue is not None:
            text += f"; [{self.cue.level}] " + "; ".join(self.cue.lines)
        elif self.message and self.registration is not None:
            text += f"; {self.message}"
        if self.hint:
            text += f"; C-arm: {self.hint}"
        return text
