"""The live pipeline of the OR display, without Qt: shots -> preprocess -> register -> guidance -> case log.

:class:`LivePipeline` is what the OR display's workers run and what ``--headless`` runs
without a window, so both do exactly the same and tests can drive it without Qt:

1. :meth:`LivePipeline.feed` (every video frame, about 1 ms): the new-shot detector
   (:class:`~or_assist.video.shots.ShotDetector`); returns a
   :class:`~or_assist.video.shots.ShotEvent` once per new held image and keeps
   :attr:`LivePipeline.image_changing` (the video no longer shows the last shot: an
   overlay drawn for it must go).
2. :meth:`LivePipeline.process` (per shot, seconds): preprocessing
   (:func:`~or_assist.video.preprocess.shot.preprocess_shot`), 2-D/3-D registration
   (:class:`~or_assist.register.pipeline.Registrar`) from the active implant's planned
   views and the last registered pose (tracking), most similar to the shot first, until
   one is confident (:mod:`or_assist.live.starts`); guide-pin
   detection, deviation and cue (:mod:`or_assist.guidance`), the two-view 3-D deviation
   with an earlier shot of the implant (:mod:`or_assist.live.two_view`), the overlay exactly as the
   display shows it (:func:`~or_assist.guidance.overlay.draw_overlay`, which draws no
   plan on a shot that is not registered), the C-arm positioning hint, and the shot in
   the case log.
3. :meth:`LivePipeline.capture`: the overlay, deviations and cue of a shot into the case log.

Overlays are drawn in the delivered frame's pixels: the preprocessing keeps the whole
frame (``crop_to_field=False``) and its pixels therefore coincide with the frame's unless
flips or undistortion are configured, in which case the overlay is drawn on the
preprocessed (re-oriented) image instead.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Callable

import numpy as np

from or_assist.core.geometry import CArmGeometry
from or_assist.core.pose import Pose
from or_assist.core.outputs import write_error
from or_assist.core.plan import Plan
from or_assist.core.view_poses import plan_view_pose
from or_assist.errors import InputError
from or_assist.guidance.cues import CueThresholds
from or_assist.guidance.overlay import draw_overlay
from or_assist.guidance.shot_guidance import guide_shot
from or_assist.live.hint import approximate_positioning_hint, positioning_hint
from or_assist.live.result import ShotResult
from or_assist.live.starts import register_shot, shot_setup
from or_assist.live.time_budget import BudgetWatch
from or_assist.live.virtual_view import planned_view_image
from or_assist.live.two_view import PinView, TwoViewTracker, view_uncertainty
from or_assist.register.pipeline import Registrar
from or_assist.render.drr import AttenuationVolume, DRRRenderer
from or_assist.render.views.model import ViewLibrary
from or_assist.session.caselog import CaseLog
from or_assist.video.preprocess.shot import PreprocessedShot, PreprocessSettings, preprocess_shot
from or_assist.video.shots import ShotDetector, ShotEvent
from or_assist.video.sources.base import Frame

if TYPE_CHECKING:  # SimpleITK is not loaded for a type name
    from or_assist.core.ct.volume import CTVolume

__all__ = ["LivePipeline"]


class LivePipeline:
    """Shot detection, registration, guidance and case log for one case (module doc).

    Parameters
    ----------
    plan : Plan
    geometry : CArmGeometry
        Of the delivered video frame's pixels.
    ct : CTVolume, AttenuationVolume or DRRRenderer, optional
        The patient's CT (needed unless ``registrar`` is given).
    registrar : Registrar, optional
        Default: a :class:`~or_assist.register.pipeline.Registrar` on ``ct`` and ``geometry``.
        Anything with ``register(frame, init_pose, polarity=..., library=..., target_lps_mm=...)`` returning a
        :class:`~or_assist.register.pipeline.RegistrationResult` works.
    library : ViewLibrary, optional
        Virtual views (registration starts and the virtual view panel).
    case_log : CaseLog, optional
        Where shots and captures are recorded. A write fault stops the recording, not the
        guidance: :attr:`log_fault` then says why, and the case is marked interrupted.
    preprocess_settings : PreprocessSettings, optional
        Default: polarity detected, whole frame, no normalisation.
    thresholds : CueThresholds, optional
    try_other_views : bool
        When a shot cannot be registered from the active view, try the active implant's
        other views (the radiographer may have moved on before the view was selected).
    patient_position : {'prone', 'supine'}
    renderer : DRRRenderer, optional
        Renders the virtual views without a library (default: the registrar's).
    dewarp : Dewarp, optional
        An image intensifier's (:mod:`or_assist.calibration.dewarp`, calibrated with
        ``geometry``): every video shot is dewarped first and shown, registered and
        logged dewarped.
    """

    def __init__(self, plan: Plan, geometry: CArmGeometry, *, ct: CTVolume | AttenuationVolume | DRRRenderer | None = None,
                 registrar: Registrar | None = None,
                 library: ViewLibrary | None = None, case_log: CaseLog | None = None,
                 preprocess_settings: PreprocessSettings | None = None, thresholds: CueThresholds | None = None,
                 try_other_views: bool = True, patient_position: str = "prone", renderer: DRRRenderer | None = None,
                 dewarp=None):
        if not hasattr(plan, "implants") or not plan.implants:
            raise InputError("expected a Plan with at least one implant", "plan")
        if not isinstance(geometry, CArmGeometry):
            raise InputError(f"expected a CArmGeometry, got {type(geometry).__name__}", "geometry")
        if registrar is None:
            if ct is None:
                raise InputError("give the patient's CT (or a registrar)", "ct")
            registrar = Registrar(ct, geometry)
        if dewarp is not None and tuple(dewarp.image_size_px) != tuple(geometry.image_size_px):
            raise InputError(f"is for {dewarp.image_size_px[0]}x{dewarp.image_size_px[1]} px frames, the geometry "
                             f"for {geometry.width}x{geometry.height}: calibrate them together", "dewarp")
        self.dewarp = dewarp
        self.plan = plan
        self.geometry = geometry
        self.registrar = registrar
        self.renderer: DRRRenderer | None = renderer if renderer is not None else getattr(registrar, "renderer", None)
        self.library = library
        self.case_log = case_log
        self.log_fault: str | None = None   # why the case log stopped recording (the display says so)
        self.preprocess_settings = preprocess_settings or PreprocessSettings(
            polarity="auto", crop_to_field=False, undistort=False, mask_metal=False, mask_saturated=False, normalise=False)
        if self.preprocess_settings.crop_to_field:
            raise InputError("the live pipeline needs crop_to_field=False (overlays in frame pixels)",
                             "preprocess_settings")
        self.thresholds = thresholds or CueThresholds()
        self.try_other_views = bool(try_other_views)
        self.patient_position = patient_position
        self.detector = ShotDetector()
        self.fov_mask: np.ndarray | None = None
        self.ignore_mask: np.ndarray | None = None
        self.budget_watch = BudgetWatch()   # shots that ran out of the time budget (live.time_budget)
        self.image_changing = False
        self._shots = 0
        self._last: ShotResult | None = None
        self._planned: dict = {}
        self._virtual: dict = {}
        self._lock = threading.Lock()
        self._registrars: dict = {}   # per DICOM header geometry (live.starts)
        self._said: set = set()       # notices said once per case
        self.two_view = TwoViewTracker(plan, self.thresholds)  # per implant, shots with a pin (3-D deviation)

    # ------------------------------------------------------------------ selection helpers
    @property
    def implant_ids(self) -> list[str]:
        """The plan's implant ids in order."""
        return [i.id for i in self.plan.implants]

    def planned_pose(self, implant_id: str, view: str, geometry: CArmGeometry | None = None) -> Pose:
        """The planned view's pose (cached), at ``geometry``'s source-isocentre distance (default the pipeline's)."""
        geometry = self.geometry if geometry is None else geometry
        key = (implant_id, view, round(float(geometry.source_to_isocenter_mm), 6))
        with self._lock:
            pose = self._planned.get(key)
        if pose is None:
            pose = plan_view_pose(self.plan, implant_id, view, geometry=geometry,
                                  patient_position=self.patient_position)
            with self._lock:
                self._planned[key] = pose
        return pose

    def set_masks(self, fov_mask: np.ndarray | None = None, ignore_mask: np.ndarray | None = None) -> None:
        """Known field of view and regions to ignore (burnt-in text) for the shot detector."""
        self.fov_mask, self.ignore_mask = fov_mask, ignore_mask

    # ------------------------------------------------------------------ per frame
    def feed(self, frame: Frame) -> ShotEvent | None:
        """Feed one video frame (:class:`~or_assist.video.sources.base.Frame`).

        Returns
        -------
        ShotEvent or None
            An event once per new held image (its ``image`` is ``frame``'s). A DICOM shot's
            header and full-depth pixels (``frame.dicom``, ``frame.pixels``) are not kept
            here: whoever hands the event to :meth:`process` passes them with it.
        """
        event = self.detector.update(frame, self.fov_mask, self.ignore_mask)
        d = self.detector.last_difference_grey
        stable_limit = self.detector.settings.stable_factor * self.detector.noise_grey + 1e-3
        if event is not None:
            self.image_changing = False
        elif d is None or d > stable_limit:
            self.image_changing = True
        return event

    # ------------------------------------------------------------------ per shot
    def process(self, image: np.ndarray, implant_id: str, view: str, *, frame_index: int = -1,
                shown_since_s: float | None = None, timestamp: float | None = None,
                should_stop: Callable[[], bool] | None = None, dicom=None,
                pixels: np.ndarray | None = None) -> ShotResult:
        """Register and judge one held image (module doc, step 2).

        Parameters
        ----------
        image : (H, W) uint8 ndarray
            The held image (``ShotEvent.image``), of ``geometry``'s size.
        implant_id : str
            The active implant.
        view : str
            The selected view (:data:`SIJF_VIEWS`, 'ap', 'axis'); the result's is the one that registered.
        frame_index : int
            The video frame index (for the record).
        shown_since_s : float, optional
            ``time.monotonic()`` when the image first appeared (default now).
        timestamp : float, optional
            Wall-clock time for the case log (default now).
        should_stop : callable, optional
            Polled between registration attempts: when it returns True (a newer shot is
            waiting) no further views are tried.
        dicom : DicomShotHeader, optional
            The header of a shot received over DICOM: registered with its geometry, its
            positioner angles the first start (:mod:`or_assist.live.starts`): the
            ``dicom`` of the frame whose shot event gave ``image``. Default: none (a video shot).
        pixels : (H, W) uint16 ndarray, optional
            That shot's full-depth pixels (registered on instead of ``image``).

        Returns
        -------
        ShotResult
        """
        self.plan.implant(implant_id)  # InputError naming the ids
        started = time.perf_counter()
        shown = time.monotonic() if shown_since_s is None else float(shown_since_s)
        with self._lock:
            self._shots += 1
            number = self._shots
        secs: dict = {}
        frame = np.ascontiguousarray(image)
        if frame.dtype == np.uint16:   # full-depth pixels given as the image: the 8-bit copy is shown
            pixels, frame = frame, ((frame.astype(np.uint32) + 128) >> 8).clip(0, 255).astype(np.uint8)
        if self.dewarp is not None and dicom is None and frame.shape[:2] == self.dewarp.image_size_px[::-1]:
            frame = self.dewarp.apply(frame)   # a video shot of the intensifier: as the geometry was calibrated
        result = ShotResult(number, None, frame, int(frame_index), shown, implant_id, view, None, "bone-dark",
                            seconds=secs)
        setup = shot_setup(self, frame, dicom, pixels)
        result.geometry_source, result.notices = setup.geometry_source, list(setup.notices)
        for notice in setup.notices:
            self.log_event("dicom_geometry", {"warning": notice})
        pre: PreprocessedShot | None = None
        if setup.problem is not None:
            result.message = f"cannot use this image: {setup.problem}"
        else:
            try:
                pre = preprocess_shot(frame, setup.geometry, self.preprocess_settings)
            except InputError as exc:
                result.message = f"cannot use this image: {exc}"
        secs["preprocess"] = time.perf_counter() - started
        if pre is not None:
            result.polarity, t0 = pre.polarity, time.perf_counter()
            register_shot(self, result, setup, pre.polarity, should_stop)
            secs["register"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            self._guidance(result, pre)
            self._three_d(result, pre)
            secs["guidance"] = time.perf_counter() - t0
        shown_image = frame
        if pre is not None and not _draws_on_frame(pre):
            shown_image = np.clip(255.0 * (1.0 - pre.image), 0, 255).astype(np.uint8)
        geometry = pre.geometry if pre is not None else setup.geometry
        status = result.message if result.registration is not None and result.detection is None else None
        result.overlay_bgr = draw_overlay(shown_image, result.registered, pose=result.pose, geometry=geometry,
                                          implants=self.plan.implants, active_id=implant_id,
                                          detection=result.detection, deviation=result.deviation, cue=result.cue,
                                          status=status)
        if self._logging():
            t0 = time.perf_counter()
            reg = result.registration.to_dict() if result.registration is not None else None
            with self._log_faults():
                result.shot_id = self.case_log.log_shot(frame, timestamp=timestamp, registration=reg,
                                                        implant_id=implant_id, view=result.view,
                                                        text_mask=None if pre is None else pre.text_mask,
                                                        guidance=result.deviations())
                with self._lock:
                    self.two_view.set_shot_id(implant_id, result.number, result.shot_id)
            secs["log"] = time.perf_counter() - t0
        secs["total"] = time.perf_counter() - started
        result.finished_s = time.monotonic()
        with self._lock:
            self._last = result
        return result

    def _guidance(self, result: ShotResult, pre: PreprocessedShot) -> None:
        if not result.registered:  # a rough hint from the unconfirmed pose, marked "approx."
            result.hint = approximate_positioning_hint(
                result.registration, self.planned_pose(result.implant_id, result.view), self.plan.landmarks,
                patient_position=self.patient_position)
            return
        implant = self.plan.implant(result.implant_id)
        pose = result.pose
        result.hint = positioning_hint(pose, self.planned_pose(result.implant_id, result.view), self.plan.landmarks,
                                       patient_position=self.patient_position)
        try:
            g = guide_shot(pre, implant, pose, self.plan.landmarks, self.thresholds)
        except InputError as exc:
            result.message = str(exc)
            return
        result.detection, result.deviation, result.cue = g.detection, g.deviation, g.cue
        if g.problem is not None or g.tip_message is not None:
            result.message = g.problem or g.tip_message

    def _three_d(self, result: ShotResult, pre: PreprocessedShot) -> None:
        """The two-view 3-D deviation (:mod:`or_assist.live.two_view`): pair this shot with the
        most recent earlier shot of the implant >= 20 deg from it whose pin did not move since."""
        view, reason = None, None
        if not result.registered:
            reason = "this shot is not registered"
        elif result.detection is None:
            reason = "no pin detected in this shot"
        else:
            view = PinView(result.number, result.view, result.pose, pre.geometry, result.detection,
                           view_uncertainty(result.registration))
        with self._lock:  # shots of one case are processed one at a time; the lock keeps the history whole
            tv = self.two_view.update(result.implant_id, view, reason=reason)
        result.deviation_3d, result.deviation_3d_refused, result.cue_3d = tv.deviation, tv.refused, tv.cue
        if tv.deviation is not None:
            result.deviation_3d_with = tv.older.describe()

    # ------------------------------------------------------------------ captures and events
    def capture(self, result: ShotResult, overlay_bgr: np.ndarray | None = None) -> int | None:
        """Record a capture of ``result`` (the overlay as shown) in the case log.

        Returns
        -------
        int or None
            The capture id; None without a case log or when the shot was not logged.
        """
        if not self._logging() or result.shot_id is None:
            return None
        image = result.overlay_bgr if overlay_bgr is None else overlay_bgr
        cue = result.cue.to_dict() if result.cue is not None else {"level": "none",
                                                                   "lines": [result.message or "no cue"]}
        with self._log_faults():
            return self.case_log.log_capture(result.shot_id, image, result.deviations(), cue)
        return None

    def log_event(self, kind: str, detail=None) -> None:
        """A user or system event in the case log (nothing without one, or after a log fault)."""
        if self._logging():
            with self._log_faults():
                self.case_log.log_event(kind, detail)

    # ------------------------------------------------------------------ case-log faults
    def _logging(self) -> bool:
        return self.case_log is not None and self.log_fault is None

    @contextlib.contextmanager
    def _log_faults(self):
        """A write fault of the case log (read-only, disk full, folder gone, database error)
        stops the recording, not the guidance: :attr:`log_fault` says why, and the case is
        marked interrupted where the log can still take it."""
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            if isinstance(exc, OSError):
                fault = str(write_error(exc.filename or self.case_log.case_dir, exc, "the case log"))
            else:
                fault = f"{self.case_log.case_dir / 'case.sqlite'}: could not write the case log: {exc}"
            with self._lock:
                if self.log_fault is None:
                    self.log_fault = fault
            try:
                self.case_log.mark_interrupted(f"{fault}; nothing after this was recorded.")
            except (OSError, sqlite3.Error, InputError):
                pass

    # ------------------------------------------------------------------ virtual views
    def virtual_view(self, implant_id: str, view: str, size_px: int = 384) -> np.ndarray:
        """The planned view as a virtual fluoroscopy with the plan's outlines (cached).

        From the view library or the CT (:func:`~or_assist.live.virtual_view.planned_view_image`).

        Returns
        -------
        (N, N, 3) uint8 ndarray, BGR
        """
        key = (implant_id, view, int(size_px))
        with self._lock:
            hit = self._virtual.get(key)
        if hit is not None:
            return hit
        out = planned_view_image(self.plan, self.geometry, implant_id, view, self.planned_pose(implant_id, view),
                                 library=self.library, renderer=self.renderer, size_px=size_px)
        with self._lock:
            self._virtual[key] = out
        return out


def _draws_on_frame(pre: PreprocessedShot) -> bool:
    """True when the preprocessed pixels are the delivered frame's (no flip, crop or undistortion)."""
    o = pre.orientation
    same = np.allclose(o.matrix, np.eye(2)) and np.allclose(o.offset, 0.0)
    return bool(same and not pre.undistorted and tuple(pre.crop_px[:2]) == (0, 0)
                and pre.image.shape == (pre.input_geometry.height, pre.input_geometry.width))

