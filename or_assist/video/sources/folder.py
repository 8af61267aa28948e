"""Replay of a folder of still images (exported fluoroscopy shots) as a video source.

A folder of stills is a sequence of shots: each file is one exposure, delivered as one
frame that carries its exposure number (:attr:`~or_assist.video.sources.base.Frame.exposure`),
so the shot detector reports every still at once (a still is never "held" for a second
frame, so a detector that waits for a held image would find none). A folder of exported
*video* frames (each held shot repeated over many files, live fluoroscopy frame by frame)
is replayed with ``stills=False``: the detector then decides, as for a video.

DICOM files (``.dcm``, ``.dicom``, ``.ima``, or no extension with the ``DICM`` marker) are
shots too: the last frame of each projection image
(:func:`or_assist.dicom.shot.read_dicom_shot`, scaled to 8 bits like any 16-bit image), and
the frame carries the file's header (:attr:`~or_assist.video.sources.base.Frame.dicom`:
geometry, positioner angles, patient). A DICOM file that is not a projection image is
skipped with a warning that says why.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import cv2
import numpy as np

from or_assist.errors import InputError
from or_assist.video.shot_files import DICOM_SUFFIXES, dicom_to_image, is_dicom_shot_file
from or_assist.video.sources.base import FrameSource, SourceInfo
from or_assist.video.sources.pacer import Pacer

__all__ = ["ImageFolderSource", "IMAGE_SUFFIXES", "natural_key"]

_log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")
"""File name endings taken as images when no pattern is given (case-insensitive)."""


def natural_key(path: Path) -> list:
    """Sort key that orders ``frame2.png`` before ``frame10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _read_dicom(path: Path):
    """``(image, header)`` of a DICOM shot's last frame, or ``(None, reason)``."""
    from or_assist.dicom.shot import read_dicom_shot

    try:
        shot = read_dicom_shot(path)
    except InputError as exc:
        return None, str(exc)
    return dicom_to_image(shot.pixels, shot.bits_stored), shot.header


def _is_shot_file(path: Path) -> bool:
    """An image by its extension, a DICOM file by its extension or (none) its marker."""
    suffix = path.suffix.lower()
    return suffix in IMAGE_SUFFIXES or suffix in DICOM_SUFFIXES[1:] or (suffix == "" and is_dicom_shot_file(path))


def _imread(path: Path, color: bool) -> np.ndarray | None:
    """Decode an image (any path, non-ASCII included); None when it is not one."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)


class ImageFolderSource(FrameSource):
    """The images of a folder, in natural name order, replayed as frames.

    Parameters
    ----------
    folder : str or Path
        The folder.
    fps : float
        Replay rate in frames per second (pacing and ``source_time_s = k / fps``).
    realtime : bool
        Deliver at ``fps`` (default) or as fast as possible.
    loop : bool
        Start again after the last image instead of ending.
    pattern : str, optional
        A glob such as ``"shot_*.png"``; default: every file ending in one of
        :data:`IMAGE_SUFFIXES` and every DICOM file (module docstring).
    color : bool
        Deliver BGR frames instead of grey.
    stills : bool
        Each file is its own exposure (default): frames carry the file's position as
        :attr:`~or_assist.video.sources.base.Frame.exposure`. False: the files are
        consecutive video frames.

    Notes
    -----
    16-bit images are reduced to 8 bits. A file that does not decode is skipped (and
    listed in :attr:`skipped_files`); the folder must hold at least one image.
    """

    kind = "folder"

    def __init__(self, folder, fps: float = 10.0, realtime: bool = True, loop: bool = False,
                 pattern: str | None = None, *, color: bool = False, stills: bool = True):
        super().__init__(str(folder), color=color)
        if not isinstance(stills, (bool, np.bool_)):
            raise InputError(f"expected True or False, got {stills!r}", "stills")
        self.stills = bool(stills)
        self.folder = Path(folder)
        try:
            self.fps = float(fps)
        except (TypeError, ValueError):
            raise InputError(f"expected a positive frame rate, got {fps!r}", "fps") from None
        if not self.fps > 0:
            raise InputError(f"expected a positive frame rate, got {fps!r}", "fps")
        self.realtime = bool(realtime)
        self.loop = bool(loop)
        self.pattern = pattern
        self.files: list[Path] = []
        self.skipped_files: list[Path] = []
        self._pos = 0
        self._pending: np.ndarray | None = None
        self._pacer: Pacer | None = None
        self._file = -1   # position in files of the image delivered last
        self._header = None  # the DICOM header of the image delivered last (None: not DICOM)
        self._pending_header = None
        self._why: dict[Path, str] = {}  # why a DICOM file was skipped

    @property
    def recorded(self) -> bool:
        """True: a folder waits for its reader."""
        return True

    def _list(self) -> list[Path]:
        if not self.folder.is_dir():
            why = "is a file, not a folder" if self.folder.exists() else "no such folder"
            raise InputError(why, self.name)
        if self.pattern:
            files = [p for p in self.folder.glob(self.pattern) if p.is_file()]
            what = f"no files matching {self.pattern!r}"
        else:
            files = [p for p in self.folder.iterdir() if p.is_file() and _is_shot_file(p)]
            what = f"no images ({', '.join(IMAGE_SUFFIXES)}) or DICOM files"
        if not files:
            raise InputError(f"{what} in this folder", self.name)
        return sorted(files, key=natural_key)

    def _next_image(self, warn: bool = True) -> np.ndarray | None:
        """Decode the image at the current position, skipping unreadable files (logged
        once each when ``warn``)."""
        tried = 0
        while tried < len(self.files):
            if self._pos >= len(self.files):
                if not self.loop:
                    return None
                self._pos = 0
            path = self.files[self._pos]
            self._pos += 1
            tried += 1
            header = None
            if is_dicom_shot_file(path):
                image, header = _read_dicom(path)
                if image is None:
                    self._why[path], header = header, None
            else:
                image = _imread(path, self.color)
            if image is not None:
                self._file = self._pos - 1
                self._header = header
                return image
            if path not in self.skipped_files:
                self.skipped_files.append(path)
                if warn:
                    _log.warning("%s; skipped", self._skip_reason(path))
        return None

    def _open(self) -> SourceInfo:
        self.files = self._list()
        self._pos = 0
        self.skipped_files = []
        first = self._next_image(warn=False)
        if first is None:
            names = ", ".join(p.name for p in self.skipped_files[:3]) + (", ..." if len(self.skipped_files) > 3 else "")
            why = f"; {next(iter(self._why.values()))}" if self._why else ""
            raise InputError(f"none of the {len(self.files)} files decodes as an image ({names}){why}", self.name)
        for path in self.skipped_files:  # some did not decode, but the source is usable
            _log.warning("%s; skipped", self._skip_reason(path))
        self._pending, self._pending_header = first, self._header
        self._pacer = Pacer(self.fps) if self.realtime else None
        return SourceInfo(kind="folder", name=self.name, width=int(first.shape[1]), height=int(first.shape[0]),
                          fps=self.fps, fourcc="", backend="imdecode",
                          requested={"fps": self.fps}, frame_count=len(self.files))

    def _read(self):
        if self._pending is not None:
            image, self._pending = self._pending, None
            self._header = self._pending_header
        else:
            image = self._next_image()
        if image is None:
            self._ended = True
            return None
        if self._pacer is not None:
            self._pacer.wait()
        return image, self._file / self.fps, time.monotonic(), (self._file if self.stills else None), self._header

    def _skip_reason(self, path: Path) -> str:
        return self._why.get(path) or f"{path}: not an image OpenCV can decode"

    def _close(self) -> None:
        self._pending = None
