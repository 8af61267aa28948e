"""The frame-source interface: states, frames, source descriptions and the base class.

Every way the app can see the C-arm's video output (a capture device, an IP stream, a
recorded file, a folder of images, the shot simulator) is a :class:`FrameSource`:
``open()`` says what the source actually delivers (:class:`SourceInfo`), ``read()``
returns the next :class:`Frame` or ``None`` when none is available now, ``close()``
lets the device go. :class:`or_assist.video.capture.CaptureThread` runs a source in
the background, keeps only the newest frame and reports :class:`SignalState` changes.

Writing a new source
--------------------
Subclass :class:`FrameSource`, set ``kind`` and implement three hooks; the base class
does the rest (open/closed bookkeeping, the frame counter, grey conversion, the
context manager)::

    class MySource(FrameSource):
        kind = "sim"

        def _open(self) -> SourceInfo: ...      # raise InputError when it cannot open
        def _read(self):                         # -> (image, source_time_s, timestamp_s) or None
            ...
        def _close(self) -> None: ...

``_read`` returns the image as OpenCV delivers it (grey, BGR or BGRA; ``uint8`` or
``uint16``), the stream or file position in seconds (``None`` when unknown) and
``time.monotonic()`` taken when the frame was grabbed (``None``: the base class takes
it); a source that knows where one exposure ends and the next begins (a folder of
stills) may add a fourth item, the exposure's number (:attr:`Frame.exposure`), and a
source of DICOM shots a fifth, the shot's header (:attr:`Frame.dicom`). A
recording (file, folder) overrides :attr:`FrameSource.recorded`. A finite source sets ``self._ended = True`` before returning ``None`` at its end;
a source whose connection broke, so that only reopening can bring frames back, sets
``self._lost = True``.
"""

from __future__ import annotations

import abc
import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from or_assist.errors import InputError
from or_assist.video.credentials import mask_credentials

if TYPE_CHECKING:
    from or_assist.dicom.header import DicomShotHeader

__all__ = ["SignalState", "Frame", "SourceInfo", "DeviceMode", "FrameSource",
           "fourcc_to_str", "fourcc_code", "BACKENDS", "backend_id"]


class SignalState(enum.Enum):
    """What a capture thread currently sees from its source."""

    CONNECTING = "connecting"
    """Opening the source for the first time."""
    LIVE = "live"
    """Frames arrive and show an image."""
    NO_SIGNAL = "no signal"
    """No frame within the no-signal timeout, or the source could not be opened."""
    BLACK = "black"
    """Frames arrive but are black (grabber connected, no video on its input)."""
    FROZEN = "frozen"
    """Frames arrive but have been bit-identical (noise included) for longer than the
    frozen timeout. A last-image-hold output *can* be legitimately static (a digital
    output of a held image), so this is a report, not an error."""
    RECONNECTING = "reconnecting"
    """Reopening the source after it was lost (with back-off)."""
    ENDED = "ended"
    """A finite source (a file or image folder without looping) has been played."""
    ERROR = "error"
    """Reading raised an unexpected error; the thread reconnects."""

    @property
    def has_image(self) -> bool:
        """True when the newest frame shows a picture (LIVE or FROZEN)."""
        return self in (SignalState.LIVE, SignalState.FROZEN)


@dataclass(frozen=True)
class Frame:
    """One video frame.

    Attributes
    ----------
    image : (H, W) uint8 ndarray, or (H, W, 3) uint8 BGR when the source was opened
        with ``color=True``
        The picture, 0-255.
    index : int
        The source's frame counter: 0 for the first frame the source object delivered,
        counting on across loops and reconnections.
    timestamp_s : float
        ``time.monotonic()`` when the frame was grabbed, in seconds.
    source_time_s : float or None
        The frame's position in the file or stream in seconds, when the source knows it.
    exposure : int or None
        Set by a source that knows its exposures (a folder of stills: the file's
        position): frames with the same number show the same exposure, a new number is
        a new one, which the shot detector reports at once instead of waiting for the
        image to hold. None (every video source): unknown, the detector decides.
    dicom : DicomShotHeader or None
        Set when the frame is a DICOM shot (a ``.dcm`` file in a folder, an object received
        from the C-arm): its header, with the geometry and positioner angles
        (:mod:`or_assist.dicom.header`). None for video.
    """

    image: np.ndarray
    index: int
    timestamp_s: float
    source_time_s: float | None = None
    exposure: int | None = None
    dicom: "DicomShotHeader | None" = None

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.image.shape[0])


@dataclass(frozen=True)
class DeviceMode:
    """One capture mode a device offers: pixel format, size and frame rates."""

    fourcc: str
    width: int
    height: int
    fps: tuple[float, ...] = ()

    def __str__(self) -> str:
        rates = "/".join(f"{f:g}" for f in self.fps)
        return f"{self.fourcc} {self.width}x{self.height}" + (f" @ {rates} fps" if rates else "")


@dataclass(frozen=True)
class SourceInfo:
    """What a source actually delivers, next to what was asked of it.

    Attributes
    ----------
    kind : str
        ``"device"``, ``"url"``, ``"file"``, ``"folder"`` or ``"sim"``.
    name : str
        The device index or path, the URL (password masked), the file or folder.
    width, height : int
        Delivered frame size in pixels (0 when the backend does not say).
    fps : float or None
        Delivered (or nominal) frame rate; ``None`` when unknown.
    fourcc : str
        Delivered pixel format or codec as four characters ("" when unknown).
    backend : str
        The OpenCV backend (``"V4L2"``, ``"FFMPEG"``, ...) or reader used.
    requested : dict
        The settings that were asked for (``width``, ``height``, ``fps``, ``fourcc``,
        ``backend``), only those given.
    frame_count : int or None
        Frames in a file or folder; ``None`` for live sources.
    description : str
        Human-readable device name (e.g. the V4L2 card name), when known.
    modes : tuple of DeviceMode
        Capture modes the device offers (filled by ``list_devices`` on Linux).
    """

    kind: str
    name: str
    width: int
    height: int
    fps: float | None
    fourcc: str
    backend: str
    requested: dict = field(default_factory=dict)
    frame_count: int | None = None
    description: str = ""
    modes: tuple = ()

    def mismatches(self) -> list[str]:
        """Requested settings the source did not deliver, one line each."""
        out = []
        req = self.requested
        for key, got in (("width", self.width), ("height", self.height)):
            if req.get(key) is not None and int(req[key]) != got:
                out.append(f"{key}: requested {req[key]}, delivered {got}")
        if req.get("fps") is not None and (self.fps is None or abs(float(req["fps"]) - self.fps) > 0.5):
            out.append(f"fps: requested {req['fps']:g}, delivered {self.fps if self.fps is None else f'{self.fps:g}'}")
        if req.get("fourcc") and str(req["fourcc"]).upper() != self.fourcc.upper():
            out.append(f"fourcc: requested {req['fourcc']}, delivered {self.fourcc or 'unknown'}")
        return out

    def summary(self) -> str:
        """One line: kind, name, size, rate, format, backend and any mismatch."""
        fps = "? fps" if self.fps is None else f"{self.fps:g} fps"
        text = (f"{self.kind} {self.name}" + (f" ({self.description})" if self.description else "")
                + f": {self.width}x{self.height} @ {fps}, {self.fourcc or 'format ?'}, backend {self.backend}")
        if self.frame_count is not None:
            text += f", {self.frame_count} frames"
        miss = self.mismatches()
        if miss:
            text += "; NOT AS REQUESTED: " + "; ".join(miss)
        return text


def fourcc_to_str(code: float | int) -> str:
    """Four-character code from OpenCV's numeric ``CAP_PROP_FOURCC`` ("" when unset)."""
    try:
        value = int(code)
    except (TypeError, ValueError, OverflowError):
        return ""
    if value <= 0:
        return ""
    chars = [chr((value >> (8 * i)) & 0xFF) for i in range(4)]
    text = "".join(chars)
    return text if all(32 <= ord(c) < 127 for c in chars) else f"0x{value:08x}"


def fourcc_code(fourcc: str, argument: str = "fourcc") -> int:
    """OpenCV's numeric code of a four-character code such as ``"MJPG"`` or ``"YUYV"``."""
    if not isinstance(fourcc, str) or len(fourcc) != 4 or not fourcc.isascii():
        raise InputError(f"expected four ASCII characters such as 'MJPG' or 'YUYV', got {fourcc!r}", argument)
    return cv2.VideoWriter_fourcc(*fourcc)


BACKENDS = {
    "any": cv2.CAP_ANY,
    "v4l2": cv2.CAP_V4L2,
    "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF,
    "avfoundation": cv2.CAP_AVFOUNDATION,
    "ffmpeg": cv2.CAP_FFMPEG,
    "gstreamer": cv2.CAP_GSTREAMER,
}
"""Backend names accepted by the sources, mapped to OpenCV's ``CAP_*`` ids."""


def backend_id(name: str, argument: str = "backend") -> int:
    """OpenCV's ``CAP_*`` id of a backend name (see :data:`BACKENDS`)."""
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise InputError(f"unknown capture backend {name!r}; expected one of {', '.join(BACKENDS)}", argument)
    return BACKENDS[key]


def _convert(image: np.ndarray, color: bool) -> np.ndarray:
    """Grey ``uint8`` (or BGR ``uint8`` when ``color``) from a decoded frame."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"frames must be uint8 or uint16, got {img.dtype}", "frame")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if color else np.ascontiguousarray(img)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        if color:
            return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR) if img.shape[2] == 4 else np.ascontiguousarray(img)
        return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    raise InputError(f"frames must be (H, W), (H, W, 3) or (H, W, 4), got shape {img.shape}", "frame")


class FrameSource(abc.ABC):
    """A source of video frames (abstract). See the module docstring for subclassing.

    Parameters
    ----------
    name : str
        What the source is (device, URL, file, folder); used in messages, so a password
        in it is masked (:func:`~or_assist.video.credentials.mask_credentials`).
    color : bool
        Deliver (H, W, 3) BGR frames instead of grey (H, W). Off by default: the
        fluoroscopy pipeline works on grey images.
    """

    kind: str = "source"

    def __init__(self, name: str, *, color: bool = False):
        self._name = mask_credentials(str(name))
        self.color = bool(color)
        self._info: SourceInfo | None = None
        self._is_open = False
        self._next_index = 0
        self._ended = False
        self._lost = False

    # ---------------------------------------------------------------- public
    @property
    def name(self) -> str:
        """What the source is, as used in messages."""
        return self._name

    @property
    def info(self) -> SourceInfo | None:
        """What the source delivers (from the last ``open()``); ``None`` before."""
        return self._info

    @property
    def is_open(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self._is_open

    @property
    def ended(self) -> bool:
        """True when a finite source has delivered its last frame (no looping)."""
        return self._ended

    @property
    def lost(self) -> bool:
        """True when the stream broke and only closing and reopening can bring frames."""
        return self._lost

    @property
    def on_demand(self) -> bool:
        """True when :meth:`read` makes each next frame when asked, as fast as it can, and
        drops none (a simulator that is not real-time): a reader may then take frame by
        frame itself instead of running a capture thread. False for every device, stream
        and recording."""
        return False

    @property
    def recorded(self) -> bool:
        """True for a recording (a video file, an image folder): it waits for its reader,
        so a reader that takes frame by frame, however slowly, misses none of it (the
        real-time pacing then starts again after each pause). False for devices and
        streams, whose frames come whether anyone reads them or not."""
        return False

    def open(self) -> SourceInfo:
        """Open the source (no-op when open) and return what it delivers.

        Raises
        ------
        InputError
            When the source cannot be opened; the message names it.
        """
        if not self._is_open:
            self._ended = False
            self._lost = False
            self._info = self._open()
            self._is_open = True
        return self._info

    def read(self) -> Frame | None:
        """The next frame, or ``None`` when no frame is available now.

        ``None`` means: a timeout (live source), the end of a finite source (then
        :attr:`ended` is True) or a broken stream (then :attr:`lost` is True).
        """
        if not self._is_open:
            raise InputError("source is not open; call open() first", self._name)
        got = self._read()
        if got is None:
            return None
        image, source_time_s, timestamp_s = got[:3]
        exposure = got[3] if len(got) > 3 else None
        frame = Frame(image=_convert(image, self.color), index=self._next_index,
                      timestamp_s=time.monotonic() if timestamp_s is None else float(timestamp_s),
                      source_time_s=None if source_time_s is None else float(source_time_s),
                      exposure=None if exposure is None else int(exposure),
                      dicom=got[4] if len(got) > 4 else None)
        self._next_index += 1
        return frame

    def close(self) -> None:
        """Release the device, connection or file (no-op when closed)."""
        if self._is_open:
            self._is_open = False
            self._close()

    def __enter__(self) -> "FrameSource":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._is_open else "closed"
        return f"{type(self).__name__}({self._name!r}, {state})"

    # ---------------------------------------------------------------- hooks
    @abc.abstractmethod
    def _open(self) -> SourceInfo:
        """Open and describe the source; raise InputError naming it on failure."""

    @abc.abstractmethod
    def _read(self) -> tuple | None:
        """``(image, source_time_s, timestamp_s)`` of the next frame (optionally with the
        exposure number as a fourth item and a DICOM shot's header as a fifth), or None."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release what ``_open`` acquired."""

