"""Frame sources read through ``cv2.VideoCapture``: capture devices, IP streams, video files.

* :class:`DeviceSource`: a frame grabber or camera by index (``0``) or path
  (``/dev/video0``, ``/dev/v4l/by-id/...``), with a backend choice and requested size,
  rate and pixel format; :class:`SourceInfo` reports what the device really delivers.
* :class:`UrlSource`: RTSP, HTTP(S) MJPEG, UDP, ... through OpenCV's FFmpeg backend
  with open and read timeouts. An MJPEG stream is read as raw JPEG packets and
  decoded here, so a resolution change mid-stream reaches the caller (OpenCV would
  rescale every later frame to the first frame's size).
* :class:`FileSource`: a recorded video file, at real-time pace or as fast as
  possible, optionally looping.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from or_assist.errors import InputError
from or_assist.video.credentials import mask_credentials
from or_assist.video.sources.base import (
    FrameSource,
    SourceInfo,
    backend_id,
    fourcc_code,
    fourcc_to_str,
)
from or_assist.video.sources.pacer import Pacer

__all__ = ["DeviceSource", "UrlSource", "FileSource", "default_device_backend",
           "device_paths", "mask_url", "quiet_backend_logs"]


def default_device_backend() -> str:
    """The capture backend used for devices when none is named, per platform.

    Linux: ``v4l2``; Windows: ``dshow`` (DirectShow opens grabbers faster and honours
    requested modes more reliably than Media Foundation); macOS: ``avfoundation``.
    """
    if sys.platform.startswith("linux"):
        return "v4l2"
    if sys.platform.startswith("win"):
        return "dshow"
    if sys.platform == "darwin":
        return "avfoundation"
    return "any"


def device_paths() -> list[str]:
    """``/dev/video*`` nodes in numeric order (Linux; empty elsewhere)."""
    if not sys.platform.startswith("linux"):
        return []
    paths = glob.glob("/dev/video*")
    return sorted(paths, key=lambda p: (len(p), p))


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and messages); also
    for a spec without a scheme (``user:pass@host/stream``). See
    :func:`or_assist.video.credentials.mask_credentials`."""
    return mask_credentials(url)


def quiet_backend_logs() -> None:
    """Keep FFmpeg's and OpenCV's own console lines ("moov atom not found", "[ WARN:0]
    ... can't be used to capture by name") off stderr for the rest of the process.

    For the OR display and ``or-assist run``, which report a source's problems
    themselves in one line with the password masked. ``OPENCV_FFMPEG_LOGLEVEL``,
    ``OPENCV_FFMPEG_DEBUG`` or ``OPENCV_LOG_LEVEL`` set by the user are left as they are.
    Takes effect for FFmpeg only when called before OpenCV first opens a video in the
    process.
    """
    if "OPENCV_FFMPEG_LOGLEVEL" not in os.environ and "OPENCV_FFMPEG_DEBUG" not in os.environ:
        os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _positive(value, argument: str, kind=float):
    if value is None:
        return None
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise InputError(f"expected a positive number, got {value!r}", argument) from None
    if not v > 0:
        raise InputError(f"expected a positive number, got {value!r}", argument)
    return v


def _seconds_ms(value_s: float, argument: str) -> int:
    return int(round(_positive(value_s, argument) * 1000))


class _CvSource(FrameSource):
    """Shared parts of the ``cv2.VideoCapture`` sources."""

    def __init__(self, name: str, *, color: bool = False):
        super().__init__(name, color=color)
        self._cap: cv2.VideoCapture | None = None

    def _describe(self, kind: str, requested: dict, frame_count: int | None = None) -> SourceInfo:
        cap = self._cap
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        try:
            backend = cap.getBackendName()
        except cv2.error:
            backend = "?"
        return SourceInfo(kind=kind, name=self.name, width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                          height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                          fps=fps if np.isfinite(fps) and 0 < fps < 10000 else None,
                          fourcc=fourcc_to_str(cap.get(cv2.CAP_PROP_FOURCC)), backend=backend,
                          requested=requested, frame_count=frame_count)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class DeviceSource(_CvSource):
    """A capture device (frame grabber, camera) opened through ``cv2.VideoCapture``.

    Parameters
    ----------
    index_or_path : int or str
        Device index (``0``, ``"0"``) or path (``"/dev/video0"``, or a stable
        ``/dev/v4l/by-id/...`` link on Linux).
    backend : str, optional
        ``"v4l2"``, ``"dshow"``, ``"msmf"``, ``"avfoundation"``, ``"gstreamer"`` or
        ``"any"``; default: :func:`default_device_backend`.
    width, height : int, optional
        Requested frame size in pixels.
    fps : float, optional
        Requested frame rate.
    fourcc : str, optional
        Requested pixel format, e.g. ``"MJPG"`` (compressed: high resolutions at full
        rate over USB 2) or ``"YUYV"`` (uncompressed).
    read_timeout_s : float
        Asked of backends that honour ``CAP_PROP_READ_TIMEOUT_MSEC``.
    color : bool
        Deliver BGR frames instead of grey.

    Notes
    -----
    The device may deliver something else than requested; :meth:`open` returns the
    delivered settings and :meth:`SourceInfo.mismatches` lists the differences.
    """

    kind = "device"

    def __init__(self, index_or_path, backend: str | None = None, width: int | None = None,
                 height: int | None = None, fps: float | None = None, fourcc: str | None = None,
                 read_timeout_s: float = 2.0, *, color: bool = False):
        if isinstance(index_or_path, (int, np.integer)) or (isinstance(index_or_path, str)
                                                            and index_or_path.strip().isdigit()):
            target = int(index_or_path)
            if target < 0:
                raise InputError(f"expected a device index >= 0 or a device path, got {index_or_path!r}", "device")
        elif isinstance(index_or_path, (str, os.PathLike)) and str(index_or_path).strip():
            target = str(index_or_path)
        else:
            raise InputError(f"expected a device index >= 0 or a device path, got {index_or_path!r}", "device")
        super().__init__(str(target), color=color)
        self.target = target
        self.backend = (backend or default_device_backend()).lower()
        self._api = backend_id(self.backend)
        self.width = _positive(width, "width", int)
        self.height = _positive(height, "height", int)
        self.fps = _positive(fps, "fps")
        self.fourcc = fourcc.upper() if fourcc else None
        self._fourcc_code = fourcc_code(self.fourcc) if self.fourcc else None
        self._read_timeout_ms = _seconds_ms(read_timeout_s, "read_timeout_s")

    def _not_found(self, why: str) -> InputError:
        found = device_paths()
        if sys.platform.startswith("linux"):
            listing = ", ".join(found) if found else "none"
        else:
            listing = "run `or-assist sources` to list them"
        return InputError(f"{why}; found devices: {listing}", f"no capture device {self.name}")

    def _open(self) -> SourceInfo:
        if isinstance(self.target, str) and self.target.startswith("/dev/") and not os.path.exists(self.target):
            raise self._not_found("no such device node")
        cap = cv2.VideoCapture(self.target, self._api)
        if not cap.isOpened():
            cap.release()
            raise self._not_found(f"could not open it with backend {self.backend}")
        self._cap = cap
        requested = {"backend": self.backend}
        # Order matters for V4L2: the pixel format first, then the size, then the rate.
        if self._fourcc_code is not None:
            cap.set(cv2.CAP_PROP_FOURCC, self._fourcc_code)
            requested["fourcc"] = self.fourcc
        if self.width is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            requested["width"] = self.width
        if self.height is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            requested["height"] = self.height
        if self.fps is not None:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            requested["fps"] = self.fps
        cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, self._read_timeout_ms)
        return self._describe("device", requested)

    def _read(self):
        ok, image = self._cap.read()
        t = time.monotonic()
        if not ok or image is None:
            return None
        pos_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        return image, (pos_ms / 1000.0 if pos_ms > 0 else None), t


class UrlSource(_CvSource):
    """A network stream (RTSP, HTTP MJPEG, UDP, ...) read through OpenCV's FFmpeg backend.

    Parameters
    ----------
    url : str
        The stream address; a password in it is masked in every message.
    backend : str
        ``"ffmpeg"`` (default) or ``"gstreamer"`` where OpenCV was built with it.
    open_timeout_s, read_timeout_s : float
        How long opening and each read may take before giving up.
    raw_mjpeg : bool
        Decode an MJPEG stream's JPEG packets here (default), so each frame keeps its own
        size.
    color : bool
        Deliver BGR frames instead of grey.

    Notes
    -----
    After a read timeout or a closed connection OpenCV's FFmpeg capture stays broken;
    :attr:`lost` then becomes True and only ``close()`` + ``open()`` recover (the
    capture thread does that with back-off). Streams other than MJPEG are rescaled by
    OpenCV to the size they had when opened; a resolution change shows at the next
    reconnection.
    """

    kind = "url"

    def __init__(self, url: str, backend: str = "ffmpeg", open_timeout_s: float = 5.0,
                 read_timeout_s: float = 2.0, *, raw_mjpeg: bool = True, color: bool = False):
        if not isinstance(url, str) or not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
            raise InputError(f"expected a stream URL such as rtsp://host/path or http://host:port/stream, "
                             f"got {url!r}", "url")
        super().__init__(mask_url(url), color=color)
        self.url = url
        self.backend = backend.lower()
        self._api = backend_id(self.backend)
        self.open_timeout_s = _positive(open_timeout_s, "open_timeout_s")
        self.read_timeout_s = _positive(read_timeout_s, "read_timeout_s")
        self.raw_mjpeg = bool(raw_mjpeg)
        self._raw = False
        self._http = url.lower().startswith(("http://", "https://"))
        self.corrupt_frames = 0

    def _open(self) -> SourceInfo:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _seconds_ms(self.open_timeout_s, "open_timeout_s"),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, _seconds_ms(self.read_timeout_s, "read_timeout_s")]
        t0 = time.monotonic()
        cap = cv2.VideoCapture(self.url, self._api, params)
        if not cap.isOpened():
            cap.release()
            raise InputError(f"could not open the stream with backend {self.backend} (no answer within "
                             f"{self.open_timeout_s:g} s, connection refused, or not a video stream; "
                             f"gave up after {time.monotonic() - t0:.1f} s)", self.name)
        self._cap = cap
        info = self._describe("url", {"backend": self.backend})
        self._raw = False
        if self.raw_mjpeg and info.fourcc == "MJPG" and self.backend == "ffmpeg":
            self._raw = bool(cap.set(cv2.CAP_PROP_FORMAT, -1))
        return info

    def _read(self):
        while True:
            ok, data = self._cap.read()
            t = time.monotonic()
            if not ok or data is None:
                self._lost = True
                return None
            if not self._raw:
                pos_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
                return data, pos_ms / 1000.0, t
            flag = cv2.IMREAD_COLOR if self.color else cv2.IMREAD_GRAYSCALE
            image = cv2.imdecode(np.asarray(data).reshape(-1), flag)
            if image is not None:
                # HTTP MJPEG carries no time stamps (OpenCV's position would be made up
                # from a nominal rate); RTP (RTSP) does.
                pos_s = None if self._http else float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                return image, pos_s, t
            self.corrupt_frames += 1


class FileSource(_CvSource):
    """A recorded video file (MP4, AVI, MKV, ...) replayed through OpenCV's FFmpeg backend.

    Parameters
    ----------
    path : str or Path
        The video file.
    realtime : bool
        Deliver frames at the file's frame rate (default) or as fast as possible.
    loop : bool
        Start again at the end instead of ending.
    fps : float, optional
        Replay rate overriding the file's own (used for pacing and reported).
    color : bool
        Deliver BGR frames instead of grey.
    """

    kind = "file"

    def __init__(self, path, realtime: bool = True, loop: bool = False, fps: float | None = None,
                 *, color: bool = False):
        super().__init__(str(path), color=color)
        self.path = Path(path)
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self.fps = _positive(fps, "fps")
        self._pending = None
        self._pacer: Pacer | None = None
        self._frames_this_pass = 0

    @property
    def recorded(self) -> bool:
        """True: a video file waits for its reader."""
        return True

    def _open(self) -> SourceInfo:
        if not self.path.is_file():
            raise InputError("no such video file" + (" (it is a folder)" if self.path.is_dir() else ""), self.name)
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise InputError("not a video file that OpenCV's FFmpeg backend can read", self.name)
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise InputError("the file opened as video but holds no readable frame", self.name)
        self._cap = cap
        self._pending = (image, float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        info = self._describe("file", {"fps": self.fps} if self.fps else {}, frame_count=count if count > 0 else None)
        if info.width <= 0 or info.height <= 0:
            info = dataclasses.replace(info, width=image.shape[1], height=image.shape[0])
        if self.fps is not None:
            info = dataclasses.replace(info, fps=self.fps)
        elif info.fps is None:
            info = dataclasses.replace(info, fps=25.0)  # a file without a usable rate: replay at 25 fps
        self._pacer = Pacer(info.fps) if self.realtime else None
        self._frames_this_pass = 0
        return info

    def _rewind(self) -> bool:
        if self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            ok, image = self._cap.read()
            if ok and image is not None:
                self._pending = (image, float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0)
                return True
        self._cap.release()
        self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        ok, image = self._cap.read() if self._cap.isOpened() else (False, None)
        if ok and image is not None:
            self._pending = (image, float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0)
            return True
        return False

    def _read(self):
        if self._pending is None:
            ok, image = self._cap.read()
            if ok and image is not None:
                self._pending = (image, float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0)
            elif not (self.loop and self._frames_this_pass > 0 and self._rewind()):
                self._ended = True
                return None
            else:
                self._frames_this_pass = 0
        image, pos_s = self._pending
        self._pending = None
        if self._pacer is not None:
            self._pacer.wait()
        self._frames_this_pass += 1
        return image, pos_s, time.monotonic()

