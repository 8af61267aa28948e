"""Linux V4L2 device queries through ``ioctl`` (no extra dependency).

OpenCV opens a device in one mode at a time and cannot list the modes a frame grabber
offers. The kernel can: ``VIDIOC_QUERYCAP`` names the card and says whether the node
captures video (modern drivers add metadata nodes that do not), and
``VIDIOC_ENUM_FMT`` / ``VIDIOC_ENUM_FRAMESIZES`` / ``VIDIOC_ENUM_FRAMEINTERVALS`` list
pixel formats, sizes and frame rates. Struct layouts follow ``linux/videodev2.h``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from or_assist.video.sources.base import DeviceMode

__all__ = ["V4l2Device", "query_device", "ioc", "VIDIOC_QUERYCAP", "VIDIOC_ENUM_FMT",
           "VIDIOC_ENUM_FRAMESIZES", "VIDIOC_ENUM_FRAMEINTERVALS"]

_CAPABILITY = struct.Struct("=16s32s32sIII3I")          # struct v4l2_capability, 104 bytes
_FMTDESC = struct.Struct("=III32sII3I")                  # struct v4l2_fmtdesc, 64 bytes
_FRMSIZE = struct.Struct("=III6I2I")                     # struct v4l2_frmsizeenum, 44 bytes
_FRMIVAL = struct.Struct("=IIIII6I2I")                   # struct v4l2_frmivalenum, 52 bytes


def ioc(direction: int, kind: str, number: int, size: int) -> int:
    """Linux ``_IOC``: an ioctl request number (direction 2 = read, 3 = read/write)."""
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | number


VIDIOC_QUERYCAP = ioc(2, "V", 0, _CAPABILITY.size)
VIDIOC_ENUM_FMT = ioc(3, "V", 2, _FMTDESC.size)
VIDIOC_ENUM_FRAMESIZES = ioc(3, "V", 74, _FRMSIZE.size)
VIDIOC_ENUM_FRAMEINTERVALS = ioc(3, "V", 75, _FRMIVAL.size)

_BUF_TYPE_VIDEO_CAPTURE = 1
_CAP_VIDEO_CAPTURE = 0x00000001
_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
_CAP_DEVICE_CAPS = 0x80000000
_TYPE_DISCRETE = 1
_MAX_ENTRIES = 64          # guards against drivers that never end an enumeration


@dataclass(frozen=True)
class V4l2Device:
    """What the kernel says about one ``/dev/video*`` node."""

    path: str
    card: str
    driver: str
    bus_info: str
    captures: bool
    modes: tuple[DeviceMode, ...]


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _fourcc(code: int) -> str:
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip()


def _ioctl(fd: int, request: int, packer: struct.Struct, values: tuple):
    import fcntl

    buf = bytearray(packer.pack(*values))
    fcntl.ioctl(fd, request, buf, True)
    return packer.unpack(bytes(buf))


def _rates(fd: int, pixfmt: int, width: int, height: int) -> tuple[float, ...]:
    rates = []
    for index in range(_MAX_ENTRIES):
        try:
            got = _ioctl(fd, VIDIOC_ENUM_FRAMEINTERVALS, _FRMIVAL,
                         (index, pixfmt, width, height, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        except OSError:
            break
        kind, num, den = got[4], got[5], got[6]
        if num > 0:
            rates.append(round(den / num, 2))
        if kind != _TYPE_DISCRETE:
            break  # stepwise/continuous: the minimum interval (= maximum rate) is enough
    return tuple(sorted(set(rates), reverse=True))


def _modes(fd: int) -> tuple[DeviceMode, ...]:
    modes = []
    for fmt_index in range(_MAX_ENTRIES):
        try:
            got = _ioctl(fd, VIDIOC_ENUM_FMT, _FMTDESC, (fmt_index, _BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0, 0, 0, 0))
        except OSError:
            break
        pixfmt = got[4]
        for size_index in range(_MAX_ENTRIES):
            try:
                s = _ioctl(fd, VIDIOC_ENUM_FRAMESIZES, _FRMSIZE, (size_index, pixfmt) + (0,) * 9)
            except OSError:
                break
            kind = s[2]
            if kind == _TYPE_DISCRETE:
                width, height = s[3], s[4]
            else:  # stepwise or continuous: report the largest size
                width, height = s[4], s[7]
            modes.append(DeviceMode(_fourcc(pixfmt), int(width), int(height), _rates(fd, pixfmt, width, height)))
            if kind != _TYPE_DISCRETE:
                break
    return tuple(modes)


def query_device(path: str) -> V4l2Device | None:
    """Ask the kernel about a V4L2 node; None when it cannot be opened or queried.

    Parameters
    ----------
    path : str
        ``/dev/videoN`` (or a link to one).

    Returns
    -------
    V4l2Device or None
        ``captures`` is False for metadata / output nodes; ``modes`` lists every
        pixel format x size with its frame rates (largest size only for stepwise sizes).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        cap = _ioctl(fd, VIDIOC_QUERYCAP, _CAPABILITY, (b"", b"", b"", 0, 0, 0, 0, 0, 0))
        driver, card, bus = _text(cap[0]), _text(cap[1]), _text(cap[2])
        caps = cap[5] if cap[4] & _CAP_DEVICE_CAPS else cap[4]
        captures = bool(caps & (_CAP_VIDEO_CAPTURE | _CAP_VIDEO_CAPTURE_MPLANE))
        return V4l2Device(path=path, card=card, driver=driver, bus_info=bus, captures=captures,
                          modes=_modes(fd) if captures else ())
    except OSError:
        return None
    finally:
        os.close(fd)
