"""The C-arm's DICOM node as a frame source: ``dicom://AE@PORT``.

:class:`DicomSource` runs a Storage SCP (:class:`~or_assist.dicom.receive.StorageServer`)
while it is open and delivers every image the C-arm sends as one exposure, like a folder
of stills: a :class:`DicomFrame` with :attr:`~or_assist.video.sources.base.Frame.exposure`
set (the shot detector reports it at once) and :attr:`~or_assist.video.sources.base.Frame.dicom`
the object's header (geometry, positioner angles, patient). Its ``image`` is 8-bit, as
every frame's (the shot detector, the overlay and the pin detection work on 8 bits);
:attr:`DicomFrame.pixels` keeps the full bit depth (scaled to the 16-bit range) and the
live pipeline registers on it.

Spec: ``dicom://AE@PORT`` or ``dicom://AE@HOST:PORT``, options in the query or as keyword
arguments: ``allow=CARM1,CARM2`` (the C-arm's calling AE titles: required; ``allow=*``
accepts any, explicitly), ``address=IP1,IP2`` (accept only these senders), ``frames=all``
(every frame of a multi-frame object, in order; default its last). Received files
go to ``store_dir`` (the live case sets ``<case_dir>/received``); the patient check is
``patient_check`` (the live case sets the plan's CT; without one, ``accept_any_patient=True``
must be given).

Images that arrive while one is being registered wait their turn (none is dropped);
:meth:`read` returns None while none waits (the source has not ended: a sender pushes).
"""

from __future__ import annotations

import queue
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from or_assist.dicom.receive import ACCEPT_ANY, ReceivedImage, StorageServer, check_ae_title
from or_assist.errors import InputError
from or_assist.video.sources.base import Frame, FrameSource, SourceInfo

__all__ = ["DICOM_PREFIX", "DicomFrame", "DicomSource", "parse_dicom_spec", "display_u8", "full_range_u16",
           "open_dicom_source"]

DICOM_PREFIX = "dicom://"
"""Specs starting with this open a :class:`DicomSource`."""

_SPEC_HELP = "expected dicom://AE@PORT or dicom://AE@HOST:PORT?allow=CARM1 (e.g. dicom://ORASSIST@11112?allow=CARM1)"


@dataclass(frozen=True)
class DicomFrame(Frame):
    """A frame received over DICOM: :class:`~or_assist.video.sources.base.Frame` plus the
    full-depth pixels.

    Attributes
    ----------
    pixels : (H, W) uint16 ndarray or None
        The image at the full bit depth, scaled to 0-65535 (``image`` is its 8-bit copy).
    path : Path or None
        Where the object was stored.
    """

    pixels: np.ndarray | None = None
    path: Path | None = None


def parse_dicom_spec(spec: str) -> dict:
    """``{"ae_title", "host", "port", "allow", "address", "frames"}`` of a ``dicom://`` spec.

    Raises
    ------
    InputError
        Naming the spec: no AE title, no port, a bad AE title or port, an unknown query option.
    """
    text = str(spec).strip()
    if not text.startswith(DICOM_PREFIX):
        raise InputError(_SPEC_HELP, text)
    parts = urlsplit(text)
    ae, _, hostport = parts.netloc.rpartition("@")
    if not ae or not hostport or parts.path not in ("", "/"):
        raise InputError(_SPEC_HELP, text)
    host, port = "127.0.0.1", hostport
    if ":" in hostport:
        host, _, port = hostport.rpartition(":")
    if not re.fullmatch(r"\d{1,5}", port) or not 0 < int(port) <= 65535:
        raise InputError(f"bad port {port!r}; {_SPEC_HELP}", text)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"allow", "address", "frames"})
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(unknown)}; it takes allow=, address= and frames=", text)

    def values(key):
        got = [v.strip() for item in query.get(key, []) for v in item.split(",") if v.strip()]
        return got or None

    frames = (values("frames") or [None])[-1]
    return {"ae_title": check_ae_title(ae, text), "host": host.strip("[]"), "port": int(port),
            "allow": values("allow"), "address": values("address"), "frames": frames}


def full_range_u16(pixels: np.ndarray, bits_stored: int | None = None) -> np.ndarray:
    """The pixels scaled to 0-65535 (``bits_stored`` bits, default: the smallest that holds the maximum)."""
    p = np.asarray(pixels)
    if p.dtype.kind == "f":
        return np.clip(p * 65535.0 / max(float(p.max(initial=0.0)), 1e-12), 0, 65535).astype(np.uint16)
    p = np.clip(p.astype(np.int64), 0, None)
    bits = int(bits_stored) if bits_stored else max(8, int(p.max(initial=0)).bit_length())
    bits = min(max(bits, 1), 16)
    return np.ascontiguousarray((p << (16 - bits)).clip(0, 65535).astype(np.uint16))


def display_u8(pixels_u16: np.ndarray) -> np.ndarray:
    """8-bit copy of a full-range 16-bit image (the top 8 bits, rounded)."""
    return ((pixels_u16.astype(np.uint32) + 128) >> 8).clip(0, 255).astype(np.uint8)


class DicomSource(FrameSource):
    """Images the C-arm sends over DICOM, as frames (module doc).

    Parameters
    ----------
    spec : str
        ``dicom://AE@PORT`` or ``dicom://AE@HOST:PORT?allow=...&address=...``.
    allow : list of str or str, optional
        The C-arm's calling AE titles (comma-separated, ``*``: any); adds to the spec's.
    address : list of str or str, optional
        Accept only these sender addresses; adds to the spec's.
    store_dir : path-like, optional
        Where received objects are written; required before :meth:`open` (the live case
        sets ``<case_dir>/received``).
    patient_check : callable, optional
        :func:`~or_assist.dicom.receive.patient_check_for_ct`; required before :meth:`open`
        unless ``accept_any_patient``.
    accept_any_patient : bool
        Hand on every patient's images, explicitly (no plan to check against).
    frames : {'last', 'all'}
        Of a multi-frame object (a fluoroscopy run): its last frame (default), or every
        frame in order, each its own exposure (``frames=all`` in the spec too).
    log : callable(str), optional
        Lines for refusals and warnings (default: the receiver's logger).
    color : bool
    """

    kind = "dicom"

    def __init__(self, spec: str, allow=None, address=None, store_dir=None, patient_check=None,
                 accept_any_patient: bool = False, log=None, frames: str | None = None, *, color: bool = False):
        parsed = parse_dicom_spec(spec)
        super().__init__(str(spec).strip(), color=color)
        self.frames = frames or parsed["frames"] or "last"
        if self.frames not in ("last", "all"):
            raise InputError(f"expected 'last' or 'all', got {self.frames!r}", "frames")
        split = (lambda v: None if v is None else ([s.strip() for s in v.split(",") if s.strip()]
                                                   if isinstance(v, str) else [str(s).strip() for s in v]))
        allow_all = (parsed["allow"] or []) + (split(allow) or [])
        if not allow_all:
            raise InputError("no calling AE title allowed: add the C-arm's, e.g. ?allow=CARM1 "
                             "(?allow=* accepts any AE title)", self.name)
        self.allow = ACCEPT_ANY if "*" in allow_all else [check_ae_title(a, "allow") for a in allow_all]
        addresses = (parsed["address"] or []) + (split(address) or [])
        self.addresses = addresses or None
        self.ae_title, self.host, self.port = parsed["ae_title"], parsed["host"], parsed["port"]
        self.store_dir = None if store_dir is None else Path(store_dir)
        self.patient_check = patient_check
        self.accept_any_patient = bool(accept_any_patient)
        self.log = log
        self.server: StorageServer | None = None
        self._queue: queue.Queue = queue.Queue()   # (ReceivedImage, DicomShot)
        self._exposures = 0
        self.wait_s = 0.2

    @property
    def recorded(self) -> bool:
        """True: received images wait for their reader (none is dropped)."""
        return True

    @property
    def pushed(self) -> bool:
        """True: a sender pushes images; :meth:`read` returns None while none waits, without ending."""
        return True

    def _received(self, item: ReceivedImage) -> None:
        shots = [item.shot]
        if self.frames == "all" and item.shot.header.frame_count > 1:
            from or_assist.dicom.shot import read_dicom_shots

            shots = read_dicom_shots(item.path)
        for shot in shots:
            self._queue.put((item, shot))

    def _open(self) -> SourceInfo:
        if self.store_dir is None:
            raise InputError("no folder for received images: give store_dir (a case sets <case_dir>/received)",
                             self.name)
        check = self.patient_check
        if check is None:
            if not self.accept_any_patient:
                raise InputError("no patient check: give the plan (its CT's patient) or accept_any_patient=True",
                                 self.name)
            check = ACCEPT_ANY
        self.server = StorageServer(self.ae_title, self.port, host=self.host, allowed_calling_aes=self.allow,
                                    allowed_addresses=self.addresses, store_dir=self.store_dir,
                                    on_image=self._received, patient_check=check, log=self.log).start()
        return SourceInfo(kind="dicom", name=self.name, width=0, height=0, fps=None, fourcc="", backend="pynetdicom",
                          description=f"DICOM Storage SCP {self.ae_title}@{self.host}:{self.server.port}")

    def read(self) -> Frame | None:
        """The next received image as a :class:`DicomFrame`, or None when none waits (after ``wait_s``)."""
        if not self._is_open:
            raise InputError("source is not open; call open() first", self._name)
        try:
            item, shot = self._queue.get(timeout=self.wait_s)
        except queue.Empty:
            return None
        header = shot.header
        self._exposures += 1
        pixels = full_range_u16(shot.pixels, shot.bits_stored)
        image = display_u8(pixels)
        if self.color:
            image = np.repeat(image[:, :, None], 3, axis=2)
        frame = DicomFrame(image=image, index=self._next_index, timestamp_s=item.received_s, source_time_s=None,
                           exposure=self._exposures, dicom=header, pixels=pixels, path=item.path)
        self._next_index += 1
        return frame

    def _read(self):  # read() is overridden; kept for the interface
        return None

    def _close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def waiting(self) -> int:
        """Images received and not read yet."""
        return self._queue.qsize()


def open_dicom_source(spec: str, **options) -> DicomSource:
    """The ``dicom://`` source kind for :func:`~or_assist.video.sources.spec.open_source`."""
    return DicomSource(spec, **options)

