"""Listing capture devices and probing a source (``or-assist sources``)."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass

import cv2

from or_assist.errors import InputError
from or_assist.video.sources.base import SignalState, SourceInfo

__all__ = ["list_devices", "probe_source", "ProbeReport"]


@contextlib.contextmanager
def _quiet_opencv():
    """Silence OpenCV's own warnings while probing devices that may not exist."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _opencv_info(target, backend: str, description: str = "", modes: tuple = ()) -> SourceInfo | None:
    from or_assist.video.sources.opencv import DeviceSource

    source = DeviceSource(target, backend=backend)
    try:
        with _quiet_opencv():
            info = source.open()
    except InputError:
        return None
    finally:
        source.close()
    return SourceInfo(kind=info.kind, name=info.name, width=info.width, height=info.height, fps=info.fps,
                      fourcc=info.fourcc, backend=info.backend, requested={}, description=description,
                      modes=modes)


def list_devices(max_index: int = 10) -> list[SourceInfo]:
    """The capture devices of this machine, each with what it delivers when opened.

    Parameters
    ----------
    max_index : int
        Linux: at most this many ``/dev/video*`` nodes are examined. Elsewhere indices
        ``0 .. max_index - 1`` are tried with the platform's default backend, stopping
        after two that do not open in a row.

    Returns
    -------
    list of SourceInfo
        One per capture device (metadata nodes left out), ``[]`` on a machine without
        any. On Linux ``description`` is the card name and ``modes`` every pixel format,
        size and rate the driver offers; a device busy in another program is listed
        from the kernel's answers with ``backend`` ``"busy?"``.
    """
    from or_assist.video.sources.opencv import default_device_backend, device_paths

    if int(max_index) < 1:
        raise InputError(f"expected at least 1, got {max_index!r}", "max_index")
    found: list[SourceInfo] = []
    if sys.platform.startswith("linux"):
        from or_assist.video.sources.v4l2 import query_device

        for path in device_paths()[: int(max_index)]:
            dev = query_device(path)
            if dev is not None and not dev.captures:
                continue
            description = "" if dev is None else f"{dev.card} [{dev.driver}, {dev.bus_info}]"
            modes = () if dev is None else dev.modes
            info = _opencv_info(path, "v4l2", description, modes)
            if info is None and dev is not None:
                info = SourceInfo(kind="device", name=path, width=0, height=0, fps=None, fourcc="",
                                  backend="busy?", description=description, modes=modes)
            if info is not None:
                found.append(info)
        return found
    misses = 0
    for index in range(int(max_index)):
        info = _opencv_info(index, default_device_backend())
        if info is None:
            misses += 1
            if misses >= 2:
                break
            continue
        misses = 0
        found.append(info)
    return found


@dataclass(frozen=True)
class ProbeReport:
    """What a source delivered while it was probed (:func:`probe_source`).

    Attributes
    ----------
    info : SourceInfo
        What the source reported when opened (delivered against requested settings).
    seconds : float
        How long it was captured.
    stats : dict
        The capture thread's statistics at the end (``frames_captured``,
        ``fps_measured``, ``width``, ``height``, ``state``, ...).
    events : list of (SignalState, str)
        The signal states seen, in order, with their messages.
    """

    info: SourceInfo
    seconds: float
    stats: dict
    events: list

    @property
    def no_frames(self) -> bool:
        """No frame arrived and the signal never went live."""
        return self.stats["state"] is not SignalState.LIVE and self.stats["frames_captured"] == 0


def probe_source(spec, seconds: float = 2.0, **options) -> ProbeReport:
    """Open a source, capture for a while and report what it really delivers.

    Parameters
    ----------
    spec : str or int
        As for :func:`or_assist.video.sources.spec.open_source`.
    seconds : float
        How long to capture.
    **options
        Source options (``width``, ``height``, ``fps``, ``fourcc``, ``backend``, ...).

    Returns
    -------
    ProbeReport

    Raises
    ------
    InputError
        ``seconds`` not above 0, or a source that cannot be opened.
    """
    from or_assist.video.capture import CaptureThread
    from or_assist.video.sources.spec import open_source

    if not float(seconds) > 0:
        raise InputError(f"expected seconds > 0, got {seconds!r}", "seconds")
    source = open_source(spec, **options)
    info = source.open()  # raises a clear InputError when it cannot be opened
    events: list = []
    capture = CaptureThread(source, on_state=lambda state, msg: events.append((state, msg)),
                            no_signal_after_s=max(0.5, float(seconds) / 2), reconnect=False)
    with capture:
        time.sleep(float(seconds))
    return ProbeReport(info, float(seconds), dict(capture.stats), events)
