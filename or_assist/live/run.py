"""Setting up a real live case and running a live case without a window.

* :func:`open_real_case`: plan, CT (from the plan), view library, frame geometry and a
  video source for ``or-assist run``.
* :func:`run_headless`: the same :class:`~or_assist.live.pipeline.LivePipeline` as the
  OR display, frame by frame, writing the case log; what ``--headless`` runs.

A :class:`LiveCase` carries what both the display and the headless run need. The demo
case on the built-in sample pelvis is made by the simulator
(:func:`or_assist.sim.scenario.demo_case.open_demo_case`), which fills
:attr:`LiveCase.script`: for a frame, which implant and view the scripted radiographer
has just announced and whether the scripted surgeon captures the shot.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from or_assist.core.geometry import load_geometry
from or_assist.core.plan import load_plan, load_plan_ct
from or_assist.errors import InputError
from or_assist.live.pipeline import LivePipeline
from or_assist.live.run_control import NewestExposure, SignalStop
from or_assist.render.views.io import load_view_library
from or_assist.session.caselog import CaseLog
from or_assist.video.capture import CaptureThread
from or_assist.video.credentials import mask_credentials
from or_assist.video.sources.base import Frame, FrameSource, SignalState
from or_assist.video.sources.spec import check_recording_opens, open_source

__all__ = ["LiveCase", "open_real_case", "run_headless"]


@dataclass(eq=False)
class LiveCase:
    """What a live session needs.

    Attributes
    ----------
    source : FrameSource
        Not opened yet.
    pipeline : LivePipeline
    source_spec : str
        How the source was named, password masked (for the status bar and messages).
    script : callable(Frame) -> dict or None, optional
        Demo only: ``{"implant": id, "view": kind, "capture": bool, "label": str}`` for a frame.
    case_log : CaseLog or None
    """

    source: FrameSource
    pipeline: LivePipeline
    source_spec: str
    script: Callable[[Frame], dict | None] | None = None
    case_log: CaseLog | None = None

    def close(self) -> None:
        """Close the case log (the source is closed by whoever ran it).

        Raises
        ------
        InputError
            The end time could not be written (disk full, read-only, database gone):
            one line naming the case database.
        """
        if self.case_log is not None:
            try:
                self.case_log.close()
            except (OSError, sqlite3.Error) as exc:
                raise InputError(f"could not record the end of the case ({exc})",
                                 str(Path(self.case_log.case_dir) / "case.sqlite")) from None


def open_real_case(plan_path, geometry_path, source_spec, *, library_path=None, ct_path=None, cases_root=None,
                   allow_ct_mismatch: bool = False, source_options: dict | None = None,
                   source_timeout_s: float = 30.0, dewarp_path=None, registration_settings=None) -> LiveCase:
    """A real case for ``or-assist run``.

    Parameters
    ----------
    plan_path : path-like
        ``or_assist.plan/1``; its CT is loaded and checked against the plan's hash.
    geometry_path : path-like
        ``or_assist.geometry/1`` of the video frame's pixels.
    source_spec : str or int
        Device index or path, URL, video file, image folder or ``sim:...``
        (:func:`or_assist.video.sources.spec.open_source`).
    library_path : path-like, optional
        A view library (``or-assist views``) of this plan and C-arm.
    ct_path : path-like, optional
        Use this CT instead of the plan's path.
    cases_root : path-like, optional
    allow_ct_mismatch : bool
    source_options : dict, optional
        Passed to :func:`~or_assist.video.sources.spec.open_source`; for a ``dicom://``
        source (the C-arm's DICOM node) also ``accept_any_patient`` (default False: images
        are checked against the plan's CT's patient). Its received objects are stored in
        ``<case_dir>/received``.
    dewarp_path : path-like, optional
        ``or_assist.dewarp/1`` of an image intensifier, calibrated with the geometry
        (``or-assist calibrate --dewarp``): video shots are dewarped first (recorded in
        the case log as a ``dewarp`` event).
    source_timeout_s : float
        A video file or image folder is opened once before the case is created
        (:func:`~or_assist.video.sources.spec.check_recording_opens`): one that yields no
        frame fails at once, one that does not open within this many seconds then. No
        case folder is made for a recording that cannot be played, as for a missing plan.
    registration_settings : RegistrationSettings, optional
        Of the case's :class:`~or_assist.register.pipeline.Registrar` (e.g. its time budget).

    Returns
    -------
    LiveCase
    """
    plan = load_plan(plan_path)
    geometry = load_geometry(geometry_path)
    dewarp = None
    if dewarp_path is not None:
        from or_assist.calibration.dewarp import load_dewarp

        dewarp = load_dewarp(dewarp_path)
    library = None
    if library_path is not None:
        library = load_view_library(library_path, plan)
        lg = library.geometry
        if abs(lg.sid_mm - geometry.sid_mm) > 1e-6 or \
                abs(lg.source_to_isocenter_mm - geometry.source_to_isocenter_mm) > 1e-6:
            raise InputError(f"was built for another C-arm (SID {lg.sid_mm:g} mm, source-isocentre "
                             f"{lg.source_to_isocenter_mm:g} mm) than {geometry_path}", str(library_path))
    options = dict(source_options or {})
    accept_any_patient = bool(options.pop("accept_any_patient", False))
    source = open_source(source_spec, **options)
    check_recording_opens(source, source_timeout_s)
    ct, _warnings = load_plan_ct(plan, ct_path=ct_path, allow_ct_mismatch=allow_ct_mismatch)
    log = CaseLog.create(cases_root, plan=plan, plan_path=plan_path, geometry=geometry.to_dict())
    try:
        if getattr(source, "kind", "") == "dicom":   # the C-arm's DICOM node: files into the case, patient checked
            _set_up_dicom_source(source, log, ct_path if ct_path is not None else plan.ct_path, accept_any_patient)
        from or_assist.register.pipeline import Registrar

        pipeline = LivePipeline(plan, geometry, registrar=Registrar(ct, geometry, registration_settings),
                                library=library, case_log=log, dewarp=dewarp)
        if dewarp is not None:
            log.log_event("dewarp", {"file": str(dewarp_path), "summary": dewarp.describe()})
    except BaseException as exc:  # no case is left open by a start that failed
        try:
            log.mark_interrupted(f"the case could not be started ({type(exc).__name__}: {exc}).")
            log.close()
        except Exception:  # noqa: BLE001 - the start's own error is the one to report
            pass
        raise
    return LiveCase(source, pipeline, mask_credentials(str(source_spec)), None, log)


def _set_up_dicom_source(source, log: CaseLog, ct_path, accept_any_patient: bool) -> None:
    """A ``dicom://`` source stores into ``<case_dir>/received`` and checks the patient against the plan's CT
    (unless ``accept_any_patient``); both are said in the case log."""
    from or_assist.dicom.receive import patient_check_for_ct

    if source.store_dir is None:
        source.store_dir = Path(log.case_dir) / "received"
    if source.patient_check is None and not accept_any_patient:
        source.patient_check = patient_check_for_ct(ct_path)
    source.accept_any_patient = source.accept_any_patient or accept_any_patient
    expected = getattr(source.patient_check, "expected", None)
    log.log_event("dicom_receiver", {"ae_title": source.ae_title, "port": source.port, "host": source.host,
                                     "store_dir": str(source.store_dir),
                                     "patient": None if expected is None else expected.describe(),
                                     "accept_any_patient": source.accept_any_patient})


def _record_interrupted(case: LiveCase, reason: str) -> None:
    """The contract's ``interrupted`` event in the case log, when it can still be written."""
    if case.case_log is None:
        return
    try:
        case.case_log.mark_interrupted(reason)
    except Exception:  # a log that cannot be written any more must not hide the reason
        pass


def run_headless(case: LiveCase, *, max_shots: int | None = None, duration_s: float | None = None,
                 implant_id: str | None = None, view: str = "lateral", log=print,
                 source_timeout_s: float | None = None, no_signal_report_s: float | None = 5.0) -> dict:
    """Run a case without a window: frames -> shots -> registration -> guidance -> case log.

    Every frame goes through the shot detector. A source that makes frames on demand
    (:attr:`~or_assist.video.sources.base.FrameSource.on_demand`: a simulator that is not
    real-time) and a recording (:attr:`~or_assist.video.sources.base.FrameSource.recorded`:
    a video file, a folder of stills) are read frame by frame and every shot is processed
    before the next frame: a replay pauses while a shot registers, so it loses no shot.
    A DICOM node (:class:`~or_assist.video.sources.dicom.DicomSource`) is read the same way:
    each received image is processed before the next, and waiting for the C-arm is not the
    end. A live source (device, stream) runs in a :class:`~or_assist.video.capture.CaptureThread`
    and its shots are registered in a second thread, one at a time, as in the display:
    the detector goes on seeing every frame meanwhile, and the newest exposure waits
    (one that a newer exposure replaces before its turn is counted as superseded and
    said in the log). When the source ends or the run stops, the exposure under way and
    the one waiting are finished.

    Parameters
    ----------
    case : LiveCase
    max_shots : int, optional
        Stop after this many shots.
    duration_s : float, optional
        Stop reading frames after this much wall time.
    implant_id, view : str
        Active implant (default the plan's first) and view, unless the demo script sets
        them; after each registered shot, the implant and view it registered at. The
        pipeline recognises the view of a shot itself (it tries the most similar
        planned view first), so a view that changed without being selected costs little.
    log : callable(str)
        Receives one line per shot, the capture's no-signal reports (the first failure,
        then "no signal from ... for N s, retrying" every ``no_signal_report_s``), a
        line per superseded exposure, and a warning when frames came but the shot
        detector found no shot in them.
    source_timeout_s : float, optional
        Give up when no frame has come for this long (from the start, or since the last
        frame): the case log gets an ``interrupted`` event with the reason and an
        :class:`InputError` naming the source is raised. None: wait for ever.
    no_signal_report_s : float or None
        Interval of the no-signal reports (None: none).

    Returns
    -------
    dict
        ``case_dir`` (Path or None), ``shots`` (list of :class:`ShotResult` summaries),
        ``registered`` and ``captures`` (counts), ``frames`` (frames read),
        ``exposures`` (shots the detector found), ``superseded`` (exposures replaced
        by a newer one before they were registered: only with a live source),
        ``seconds``, and ``stopped_by`` (None, or the signal that stopped the run).

    Raises
    ------
    InputError
        Bad arguments, or the source sent no frame for ``source_timeout_s``.
    KeyboardInterrupt
        A second Ctrl+C (the case is marked interrupted first).

    Notes
    -----
    Run from the main thread, Ctrl+C (SIGINT) and SIGTERM stop the run after the shot in
    hand: the case log gets an ``interrupted`` event naming the signal and the summary is
    returned (the caller closes the case, as after any run). A second Ctrl+C stops at once.
    """
    if max_shots is not None and (isinstance(max_shots, bool) or not isinstance(max_shots, int) or max_shots < 1):
        raise InputError(f"must be a whole number >= 1, got {max_shots!r}", "max_shots")
    if duration_s is not None and not duration_s > 0:
        raise InputError(f"must be seconds > 0, got {duration_s!r}", "duration_s")
    for value, name in ((source_timeout_s, "source_timeout_s"), (no_signal_report_s, "no_signal_report_s")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
                                  or value == float("inf")):
            raise InputError(f"must be seconds > 0, got {value!r}", name)
    pipe = case.pipeline
    implant_id = implant_id or pipe.implant_ids[0]
    pipe.plan.implant(implant_id)
    source = case.source
    synchronous = source.on_demand or source.recorded
    started = time.monotonic()
    summary = {"case_dir": None if case.case_log is None else Path(case.case_log.case_dir), "shots": [],
               "registered": 0, "captures": 0, "frames": 0, "exposures": 0, "superseded": 0, "seconds": 0.0}
    active = {"implant": implant_id, "view": view}
    lock = threading.Lock()
    capture = None
    queue = None
    gave_up = None

    def on_state(state: SignalState, message: str) -> None:
        if state is SignalState.NO_SIGNAL:
            log(message)

    def handle(job: dict) -> bool:
        """Process one exposure; True when ``max_shots`` is reached."""
        event, step = job["event"], job["step"]
        result = pipe.process(event.image, job["implant"], job["view"], frame_index=event.index,
                              shown_since_s=event.timestamp_s,
                              should_stop=None if queue is None else queue.waiting,
                              dicom=job.get("dicom"), pixels=job.get("pixels"))
        if job.get("file") is not None and result.shot_id is not None:   # a DICOM shot: where its object is
            pipe.log_event("dicom_shot", {"shot_id": result.shot_id, "file": str(job["file"])})
        if step is not None and step["capture"] and result.registered and result.cue is not None:
            if pipe.capture(result) is not None:
                pipe.log_event("capture", {"shot_id": result.shot_id, "by": "demo script"})
                summary["captures"] += 1
        if pipe.log_fault is not None:
            # Headless, the case log is the whole point: a run that cannot record ends
            # (the pipeline has marked the case interrupted).
            raise InputError(pipe.log_fault)
        with lock:
            if result.registered:
                summary["registered"] += 1
                active["implant"], active["view"] = result.implant_id, result.view
            line = result.summary()
            summary["shots"].append(line)
        log(line)
        return max_shots is not None and len(summary["shots"]) >= max_shots

    if getattr(source, "kind", "") == "dicom" and getattr(source, "log", None) is None:
        source.log = log   # the DICOM node's refusals (wrong patient, unknown AE title) among the shot lines
    if synchronous:
        source.open()
    else:
        capture = CaptureThread(source, on_state=on_state, no_signal_report_s=no_signal_report_s).start()
        queue = NewestExposure(handle)
    clean = False
    signals = SignalStop(log)
    try:
        while signals.stopped_by is None:
            if duration_s is not None and time.monotonic() - started > duration_s:
                break
            if queue is not None and queue.stopped:
                break
            if synchronous:
                frame = source.read()
                if frame is None:
                    if getattr(source, "pushed", False) and not (source.ended or source.lost):
                        continue   # a DICOM node: nothing sent yet
                    break
            else:
                frame = capture.latest(timeout_s=0.5)
                if frame is None:
                    if not capture.running:
                        break
                    stats = capture.stats
                    age_s = stats["last_frame_age_s"]
                    silent_s = time.monotonic() - started if age_s is None else age_s
                    if source_timeout_s is not None and silent_s > source_timeout_s:
                        gave_up = (stats, silent_s)
                        break
                    continue
            summary["frames"] += 1
            event = pipe.feed(frame)
            if event is None:
                continue
            summary["exposures"] += 1
            step = case.script(frame) if case.script is not None else None
            with lock:
                if step is not None:
                    active["implant"], active["view"] = step["implant"], step["view"]
                job = {"event": event, "step": step, "implant": active["implant"], "view": active["view"],
                       "file": getattr(frame, "path", None),   # a DICOM shot: its object, header and pixels
                       "dicom": getattr(frame, "dicom", None), "pixels": getattr(frame, "pixels", None)}
            if queue is None:
                if handle(job):
                    break
                continue
            old = queue.submit(job)
            if old is not None:
                summary["superseded"] += 1
                log(f"exposure at frame {old['event'].index} superseded by a newer one (frame {event.index}) "
                    f"before it was registered: not registered, not logged")
        clean = True
    except KeyboardInterrupt:
        _record_interrupted(case, "the headless run was stopped at once by Ctrl+C (SIGINT).")
        raise
    finally:
        signals.restore()
        if synchronous:
            source.close()
        else:
            capture.stop()
            if queue is not None:
                queue.close(drain=clean and signals.stopped_by is None)  # a signal: only the shot in hand
    if queue is not None and queue.error is not None:
        raise queue.error
    summary["seconds"] = time.monotonic() - started
    if summary["frames"] and not summary["exposures"]:
        log(f"warning: the shot detector found no shot in {summary['frames']} frames of {source.name} "
            f"(no image that held, or every frame the same image)")
    summary["stopped_by"] = signals.stopped_by
    if signals.stopped_by is not None:
        _record_interrupted(case, f"the headless run was stopped by {signals.stopped_by}.")
        log(f"stopped by {signals.stopped_by}")
    if gave_up is not None:
        stats, silent_s = gave_up
        name = source.name
        what = "no frame" if stats["frames_captured"] == 0 else "no further frame"
        why = f"; last problem: {stats['problem']}" if stats["problem"] else ""
        _record_interrupted(case, f"the video source {name} sent {what} for {silent_s:.0f} s "
                                  f"(limit {source_timeout_s:g} s){why}.")
        why = f" (last problem: {stats['problem']})" if stats["problem"] else ""
        raise InputError(f"{what} for {silent_s:.0f} s (limit {source_timeout_s:g} s, --source-timeout); "
                         f"gave up{why}", name)
    return summary
