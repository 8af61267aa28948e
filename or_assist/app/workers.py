"""Background work of the OR display: the GUI thread only draws.

* The video source runs in a :class:`~or_assist.video.capture.CaptureThread` (one-slot
  buffer: only the newest frame is kept); the display timer ``peek()``\\ s it.
* :class:`VideoWorker` takes every new frame, feeds the shot detector
  (:meth:`LivePipeline.feed`) and hands each new shot to the registration worker
  directly (not via the GUI thread), with the implant and view selected at that moment
  and, for a shot received over DICOM, the frame's header and full-depth pixels (the
  job's ``dicom`` and ``pixels``, for :meth:`LivePipeline.process`).
* :class:`LatestJobWorker` runs one job at a time; a new request replaces one that is
  still waiting (newest wins), so a slow registration never builds a backlog. Results
  reach the GUI through queued signals. While a shot registers, the video worker goes
  on feeding every frame to the detector, so no exposure goes unseen: the newest waits,
  and one replaced before its turn is counted and signalled (``superseded``).
* :class:`JobQueueWorker` runs jobs in order (captures: none may be lost).
"""

from __future__ import annotations

import collections
import threading
import time
import traceback

from PyQt5 import QtCore

__all__ = ["Selection", "LatestJobWorker", "JobQueueWorker", "VideoWorker"]


class Selection:
    """The active implant and view, shared between the GUI and the workers (thread-safe)."""

    def __init__(self, implant_id: str, view: str):
        self._lock = threading.Lock()
        self._implant, self._view = implant_id, view

    def get(self) -> tuple[str, str]:
        """``(implant_id, view)``."""
        with self._lock:
            return self._implant, self._view

    def set(self, implant_id: str | None = None, view: str | None = None) -> tuple[str, str]:
        """Change either or both; returns the new pair."""
        with self._lock:
            if implant_id is not None:
                self._implant = implant_id
            if view is not None:
                self._view = view
            return self._implant, self._view


class _Worker(QtCore.QThread):
    """A thread that runs ``fn(*args)`` for submitted requests and emits the results."""

    done = QtCore.pyqtSignal(object, object)      # (tag, result)
    failed = QtCore.pyqtSignal(object, str)       # (tag, message)
    started_job = QtCore.pyqtSignal(object)       # tag

    def __init__(self, fn, name: str, parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        self._fn = fn
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self.jobs_done = 0
        self.jobs_dropped = 0

    def _take(self):
        raise NotImplementedError

    def _has_work(self) -> bool:
        raise NotImplementedError

    def submit(self, tag, *args, **kwargs) -> None:
        """Queue ``fn(*args, **kwargs)``; ``tag`` comes back with the result."""
        raise NotImplementedError

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self._busy

    def pending(self) -> bool:
        """True when a request is waiting."""
        with self._cond:
            return self._has_work()

    def stop(self, timeout_ms: int = 10000) -> bool:
        """Finish the running job, drop (``drop_on_stop``) or finish waiting ones, end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        return self.wait(timeout_ms)

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._has_work():
                    self._cond.wait(0.2)
                if self._stopping and (self.drop_on_stop or not self._has_work()):
                    return
                tag, args, kwargs = self._take()
                self._busy = True
            self.started_job.emit(tag)
            try:
                result = self._fn(*args, **kwargs)
            except Exception as exc:  # reported to the GUI, the worker goes on
                self.failed.emit(tag, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
            else:
                self.jobs_done += 1
                self.done.emit(tag, result)
            finally:
                self._busy = False


class LatestJobWorker(_Worker):
    """One job at a time; a request that is still waiting is replaced by a newer one.

    Signals
    -------
    superseded(object)
        The tag of a waiting request that a newer one replaced (it never runs);
        ``jobs_dropped`` counts them.
    """

    drop_on_stop = True
    superseded = QtCore.pyqtSignal(object)

    def __init__(self, fn, name: str = "latest job", parent=None):
        super().__init__(fn, name, parent)
        self._slot = None

    def _has_work(self) -> bool:
        return self._slot is not None

    def _take(self):
        job, self._slot = self._slot, None
        return job

    def submit(self, tag, *args, **kwargs) -> None:
        with self._cond:
            old = self._slot
            if old is not None:
                self.jobs_dropped += 1
            self._slot = (tag, args, kwargs)
            self._cond.notify_all()
        if old is not None:
            self.superseded.emit(old[0])


class JobQueueWorker(_Worker):
    """Jobs in submission order; none is dropped (waiting jobs are finished on stop)."""

    drop_on_stop = False

    def __init__(self, fn, name: str = "job queue", parent=None):
        super().__init__(fn, name, parent)
        self._queue = collections.deque()

    def _has_work(self) -> bool:
        return bool(self._queue)

    def _take(self):
        return self._queue.popleft()

    def submit(self, tag, *args, **kwargs) -> None:
        with self._cond:
            self._queue.append((tag, args, kwargs))
            self._cond.notify_all()


class VideoWorker(QtCore.QThread):
    """Frames from the capture thread -> shot detector -> registration requests.

    Parameters
    ----------
    capture : CaptureThread
        Started by the caller; this worker is its only ``latest()`` consumer.
    pipeline : LivePipeline
    selection : Selection
    registration : LatestJobWorker
        Receives ``(event, implant_id, view)`` per new shot (the job function decides).
    script : callable(Frame) -> dict or None, optional
        The demo's scripted selection (:class:`~or_assist.live.run.LiveCase`).

    Signals
    -------
    shot_detected(object)
        ``{"event": ShotEvent, "implant": id, "view": kind, "capture": bool, "shown_since_s": float,
        "dicom": DicomShotHeader or None, "pixels": uint16 ndarray or None}``: the last two are
        the shot's frame's (:attr:`~or_assist.video.sources.base.Frame.dicom`,
        :attr:`~or_assist.video.sources.dicom.DicomFrame.pixels`), None for video.
    image_changing(bool)
        The video started (True) or stopped (False) changing from the last held image;
        when it stops because a new shot is held, after that shot's ``shot_detected``.
    selection_changed(str, str)
        The demo script selected another implant or view.
    """

    shot_detected = QtCore.pyqtSignal(object)
    image_changing = QtCore.pyqtSignal(bool)
    selection_changed = QtCore.pyqtSignal(str, str)

    def __init__(self, capture, pipeline, selection: Selection, registration: LatestJobWorker, script=None,
                 parent=None):
        super().__init__(parent)
        self.setObjectName("video")
        self.capture = capture
        self.pipeline = pipeline
        self.selection = selection
        self.registration = registration
        self.script = script
        self._stopping = threading.Event()
        self._times = collections.OrderedDict()   # frame index -> timestamp_s (recent frames)
        self.frames = 0
        self.exposures = 0          # shots the detector found (each handed to the registration worker)
        self.detect_seconds = 0.0

    def stop(self, timeout_ms: int = 3000) -> bool:
        """End the loop (the capture thread is stopped by its owner)."""
        self._stopping.set()
        return self.wait(timeout_ms)

    def run(self) -> None:
        changing = False
        while not self._stopping.is_set():
            frame = self.capture.latest(timeout_s=0.1)
            if frame is None:
                continue
            self.frames += 1
            self._times[frame.index] = frame.timestamp_s
            while len(self._times) > 64:
                self._times.popitem(last=False)
            t0 = time.perf_counter()
            event = self.pipeline.feed(frame)
            self.detect_seconds += time.perf_counter() - t0
            if self.pipeline.image_changing != changing and event is None:
                changing = self.pipeline.image_changing
                self.image_changing.emit(changing)
            if event is None:
                continue
            self.exposures += 1
            step = self.script(frame) if self.script is not None else None
            if step is not None:
                before = self.selection.get()
                after = self.selection.set(step["implant"], step["view"])
                if after != before:
                    self.selection_changed.emit(*after)
            implant_id, view = self.selection.get()
            shown = self._times.get(event.stable_since_index, event.timestamp_s)
            job = {"event": event, "implant": implant_id, "view": view, "shown_since_s": shown,
                   "capture": bool(step and step["capture"]),
                   "dicom": getattr(frame, "dicom", None), "pixels": getattr(frame, "pixels", None)}
            self.shot_detected.emit(job)
            if changing:  # after the shot: the display never takes the previous shot as current again
                changing = False
                self.image_changing.emit(False)
            self.registration.submit(job, job)
