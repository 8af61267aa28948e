"""Listing capture devices and probing a source: the text behind ``or-assist sources``."""

from __future__ import annotations

import contextlib
import sys
import time

import cv2

from or_assist.errors import InputError
from or_assist.video.sources.base import SignalState, SourceInfo

__all__ = ["list_devices", "probe_source", "sources_command"]


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


def probe_source(spec, seconds: float = 2.0, **options) -> str:
    """Open a source, capture for a while and describe what it really delivers.

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
    str
        Lines: the delivered settings against the requested ones, the signal states seen,
        the measured frame rate and the frame size.
    """
    from or_assist.video.capture import CaptureThread
    from or_assist.video.sources.spec import open_source

    if not float(seconds) > 0:
        raise InputError(f"expected seconds > 0, got {seconds!r}", "seconds")
    source = open_source(spec, **options)
    info = source.open()  # raises a clear InputError when it cannot be opened
    events: list[str] = []
    capture = CaptureThread(source, on_state=lambda state, msg: events.append(f"  {state.value}: {msg}"),
                            no_signal_after_s=max(0.5, float(seconds) / 2), reconnect=False)
    with capture:
        time.sleep(float(seconds))
    stats = capture.stats
    lines = [info.summary(), f"captured {stats['frames_captured']} frames in {seconds:g} s "
             f"({stats['fps_measured']:.1f} fps measured), frames {stats['width']}x{stats['height']}, "
             f"state {stats['state'].value}"]
    if events:
        lines.append("states seen:")
        lines.extend(events)
    if stats["state"] is not SignalState.LIVE and stats["frames_captured"] == 0:
        lines.append("no frames: check the cable, the C-arm's video output and the grabber's input")
    return "\n".join(lines)


def sources_command(probe=None, max_index: int = 10, seconds: float = 2.0, **options) -> str:
    """Text for ``or-assist sources``: the capture devices with their modes, or a probe.

    Parameters
    ----------
    probe : str, optional
        A source spec to open and measure (see :func:`probe_source`) instead of listing.
    max_index : int
        Passed to :func:`list_devices`.
    seconds : float
        Capture time of a probe.
    **options
        Source options for the probe (``width``, ``height``, ``fps``, ``fourcc``,
        ``backend``, ...).
    """
    if probe is not None:
        return probe_source(probe, seconds=seconds, **options)
    devices = list_devices(max_index)
    if not devices:
        where = "/dev/video*" if sys.platform.startswith("linux") else f"device indices 0-{int(max_index) - 1}"
        return (f"no capture devices found (looked at {where}).\n"
                "Connect the frame grabber, or use a URL (rtsp://..., http://...), a video file, an image "
                "folder or sim:<scenario> as the source.")
    lines = []
    for info in devices:
        lines.append(info.summary())
        for mode in info.modes:
            lines.append(f"    {mode}")
    lines.append("Choose one with its index or path; request a mode with --width/--height/--fps/--fourcc.")
    return "\n".join(lines)
