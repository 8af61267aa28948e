"""Receiving shots from the C-arm over DICOM: a Storage SCP (pynetdicom).

:class:`StorageServer` listens (on 127.0.0.1 unless told otherwise) for the C-arm's
C-STORE requests of projection images: X-ray angiography (XA, Enhanced XA),
radiofluoroscopy (RF, Enhanced XRF), digital X-ray (DX, for presentation and for
processing), computed radiography (CR) and secondary capture (single frame, multi-frame
grey byte and word), uncompressed or in the compressed transfer syntaxes or_assist can
decode here (:func:`accepted_transfer_syntaxes`: the C-arm falls back to an uncompressed one
otherwise). It answers C-ECHO (Verification) for connection tests.

Access: only the configured calling AE titles are accepted (an association from any other
is rejected, "calling AE title not recognised"), optionally only from given addresses
(others rejected, no reason given); :data:`ACCEPT_ANY` must be given explicitly to accept
every AE title.

Each object received is, in this order:

1. checked against the patient (``patient_check``): a wrong patient is answered with a
   failure status (:data:`STATUS_WRONG_PATIENT`) naming both patient IDs, said in the log,
   and neither stored nor handed on (unless the check was overridden: then it passes with
   a warning);
2. read as a shot (:func:`or_assist.dicom.shot.read_dicom_shot`): an object that is not a
   usable projection image is answered with :data:`STATUS_NOT_A_SHOT` and the reason;
3. written inside ``store_dir`` only, under a name made here (a number and the SOP
   Instance UID's digits and dots: never a path taken from the dataset), as received;
4. handed to ``on_image`` as a :class:`ReceivedImage`.

A SOP Instance received again (the C-arm resending after a lost answer) is answered with
success and not handed on twice. Associations run in pynetdicom's threads; the server's
bookkeeping is locked, ``on_image`` is called from those threads.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydicom.dataset import Dataset

from or_assist.dicom.identity import PatientIdentity, WrongPatientError, check_patient, ct_identity
from or_assist.dicom.shot import PROJECTION_SOP_CLASSES, read_dicom_shot
from or_assist.errors import InputError

__all__ = ["ACCEPT_ANY", "STORAGE_SOP_CLASSES", "STATUS_WRONG_PATIENT", "STATUS_NOT_A_SHOT", "STATUS_NOT_STORED",
           "ReceivedImage", "StorageServer", "accepted_transfer_syntaxes", "patient_check_for_ct",
           "check_ae_title", "safe_file_name"]

_log = logging.getLogger(__name__)

ACCEPT_ANY = "accept any"
"""Give this instead of a list (AE titles) or a check (patient) to accept every one, explicitly."""

STORAGE_SOP_CLASSES = PROJECTION_SOP_CLASSES
"""The storage SOP classes accepted: UID -> name (those :func:`~or_assist.dicom.shot.read_dicom_shot` reads)."""

STATUS_WRONG_PATIENT = 0xC001
"""C-STORE failure ("cannot understand" range): the image is of another patient than the plan's CT."""
STATUS_NOT_A_SHOT = 0xC002
"""C-STORE failure: the object is not a projection image or_assist can use (the comment says why)."""
STATUS_NOT_STORED = 0xA700
"""C-STORE failure ("out of resources"): the object could not be written to the store folder."""

_UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99")
# RLE; JPEG lossless SV1, JPEG lossless; JPEG-LS lossless; JPEG 2000 lossless; then the lossy ones:
# JPEG baseline, JPEG extended (12 bit), JPEG-LS near-lossless, JPEG 2000
_COMPRESSED = ("1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.80",
               "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
               "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91")
_GDCM_DECODES = _COMPRESSED[1:5] + _COMPRESSED[7:]   # what SimpleITK's GDCM decodes when pydicom cannot
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")   # printable ASCII without backslash, 1-16


def accepted_transfer_syntaxes() -> list[str]:
    """The transfer syntaxes offered for every storage SOP class: uncompressed ones, then the
    compressed ones :func:`~or_assist.dicom.shot.read_dicom_shot` can decode here (pydicom's
    plugins, else SimpleITK's GDCM), lossless first."""
    import importlib.util

    from pydicom.pixels import get_decoder

    gdcm = importlib.util.find_spec("SimpleITK") is not None
    out = list(_UNCOMPRESSED)
    for uid in _COMPRESSED:
        try:
            available = get_decoder(uid).is_available
        except (NotImplementedError, ValueError):
            available = False
        if available or (gdcm and uid in _GDCM_DECODES):
            out.append(uid)
    return out


def check_ae_title(title, argument: str = "ae_title") -> str:
    """An AE title, stripped; InputError naming ``argument`` unless it is 1-16 printable ASCII characters
    without a backslash."""
    text = title.strip() if isinstance(title, str) else None
    if not text or not _AE_TITLE.match(text):
        raise InputError(f"expected an AE title of 1-16 printable ASCII characters without '\\', got {title!r}",
                         argument)
    return text


def safe_file_name(number: int, sop_instance_uid) -> str:
    """``00001_<uid>.dcm``: the number and only the digits and dots of the UID (at most 64), never a path."""
    uid = re.sub(r"[^0-9.]", "", str(sop_instance_uid or ""))[:64].strip(".") or "no-uid"
    return f"{int(number):05d}_{uid}.dcm"


def patient_check_for_ct(ct_path, *, override: bool = False) -> Callable[[PatientIdentity], str | None]:
    """The patient check of a plan's CT, for :class:`StorageServer`.

    Parameters
    ----------
    ct_path : path-like
        The CT as the plan gives it (:func:`~or_assist.dicom.identity.ct_identity`).
    override : bool
        Accept another patient's image, with a warning.

    Returns
    -------
    callable(PatientIdentity) -> str or None
        Raises :class:`~or_assist.dicom.identity.WrongPatientError` for another patient;
        returns a warning (another study; a CT without identity, so nothing could be
        checked; an overridden mismatch) or None.
    """
    expected, _reason = ct_identity(ct_path)

    def check(incoming: PatientIdentity) -> str | None:
        return check_patient(incoming, expected, override=override)

    check.expected = expected  # type: ignore[attr-defined]  # for messages
    return check


@dataclass(frozen=True, eq=False)
class ReceivedImage:
    """One object received, stored and read.

    Attributes
    ----------
    number : int
        1 for the first object this server stored, then 2, 3, ...
    path : Path
        The stored file (inside the store folder).
    shot : DicomShot
        The object read as a shot (:func:`~or_assist.dicom.shot.read_dicom_shot`).
    identity : PatientIdentity
    calling_ae : str
    address : str
        The sender's IP address.
    received_s : float
        ``time.monotonic()`` when the C-STORE request arrived.
    warning : str or None
        The patient check's warning (another study, an overridden mismatch, nothing to check against).
    """

    number: int
    path: Path
    shot: object
    identity: PatientIdentity
    calling_ae: str
    address: str
    received_s: float
    warning: str | None


def _status(code: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]  # LO: 64 characters
    return ds


class StorageServer:
    """A DICOM Storage SCP for the C-arm's shots (module doc).

    Parameters
    ----------
    ae_title : str
        This node's AE title (what the C-arm is configured to send to).
    port : int
        TCP port (0: any free port; :attr:`port` says which after :meth:`start`).
    host : str
        The address to listen on; 127.0.0.1 unless the C-arm is on another machine.
    allowed_calling_aes : list of str or ACCEPT_ANY
        The C-arm's AE titles; required and non-empty, or :data:`ACCEPT_ANY` explicitly.
    allowed_addresses : list of str, optional
        Accept associations only from these IP addresses (None: from any address).
    store_dir : path-like
        Where received objects are written (created when missing); nothing is written elsewhere.
    on_image : callable(ReceivedImage), optional
        Called for each object stored (from the association's thread).
    patient_check : callable(PatientIdentity) -> str or None, or ACCEPT_ANY
        Raises :class:`~or_assist.dicom.identity.WrongPatientError` to refuse an object
        (:func:`patient_check_for_ct`); :data:`ACCEPT_ANY` accepts every patient, explicitly.
    log : callable(str), optional
        Receives one line per refusal, failure and warning (default: the module logger).
    """

    def __init__(self, ae_title: str, port: int, *, host: str = "127.0.0.1", allowed_calling_aes=None,
                 allowed_addresses=None, store_dir=None, on_image: Callable[[ReceivedImage], None] | None = None,
                 patient_check=None, log: Callable[[str], None] | None = None):
        self.ae_title = check_ae_title(ae_title)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InputError(f"expected a TCP port 0-65535, got {port!r}", "port")
        self._port = port
        try:
            self.host = str(ipaddress.ip_address(str(host).strip()))
        except ValueError:
            raise InputError(f"expected an IP address to listen on (e.g. 127.0.0.1), got {host!r}", "host") from None
        if allowed_calling_aes == ACCEPT_ANY:
            self.allowed_calling_aes: tuple[str, ...] | None = None
        else:
            if isinstance(allowed_calling_aes, str) or not allowed_calling_aes:
                raise InputError(f"give the C-arm's AE titles as a non-empty list (or {ACCEPT_ANY!r} explicitly), "
                                 f"got {allowed_calling_aes!r}", "allowed_calling_aes")
            self.allowed_calling_aes = tuple(check_ae_title(t, "allowed_calling_aes") for t in allowed_calling_aes)
        self.allowed_addresses: tuple[str, ...] | None = None
        if allowed_addresses is not None:
            if isinstance(allowed_addresses, str) or not allowed_addresses:
                raise InputError(f"expected a non-empty list of IP addresses, got {allowed_addresses!r}",
                                 "allowed_addresses")
            try:
                self.allowed_addresses = tuple(str(ipaddress.ip_address(str(a).strip())) for a in allowed_addresses)
            except ValueError as exc:
                raise InputError(str(exc), "allowed_addresses") from None
        if store_dir is None:
            raise InputError("give the folder received objects are written to", "store_dir")
        self.store_dir = Path(store_dir).expanduser().resolve()
        if self.store_dir.exists() and not self.store_dir.is_dir():
            raise InputError("is a file, not a folder", str(self.store_dir))
        if patient_check is None:
            raise InputError(f"give the patient check (patient_check_for_ct) or {ACCEPT_ANY!r} explicitly",
                             "patient_check")
        if patient_check != ACCEPT_ANY and not callable(patient_check):
            raise InputError(f"expected a callable or {ACCEPT_ANY!r}, got {type(patient_check).__name__}",
                             "patient_check")
        self.patient_check = None if patient_check == ACCEPT_ANY else patient_check
        if on_image is not None and not callable(on_image):
            raise InputError(f"expected a callable, got {type(on_image).__name__}", "on_image")
        self.on_image = on_image
        self._say = log if log is not None else _log.warning
        self._lock = threading.Lock()
        self._server = None
        self._stored = 0
        self._seen: set[str] = set()
        self.refused: list[str] = []   # one line per object or association refused

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The port listened on (the one bound, once started with port 0)."""
        server = self._server
        return int(server.server_address[1]) if server is not None else self._port

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    def start(self) -> "StorageServer":
        """Create the store folder and start listening (in the background; no-op when running).

        Raises
        ------
        InputError
            The store folder cannot be made, or the port cannot be bound (in use, not permitted).
        """
        from pynetdicom import AE, evt

        with self._lock:
            if self._server is not None:
                return self
            try:
                self.store_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"could not create the folder ({exc.strerror or exc})", str(self.store_dir)) from None
            ae = AE(ae_title=self.ae_title)
            ae.require_calling_aet = list(self.allowed_calling_aes or [])
            ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
            syntaxes = accepted_transfer_syntaxes()
            for uid in STORAGE_SOP_CLASSES:
                ae.add_supported_context(uid, syntaxes)
            ae.add_supported_context("1.2.840.10008.1.1",   # Verification (C-ECHO)
                                    list(_UNCOMPRESSED[:2]))
            handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda event: 0x0000),
                        (evt.EVT_REQUESTED, self._on_requested), (evt.EVT_REJECTED, self._on_rejected)]
            try:
                self._server = ae.start_server((self.host, self._port), block=False, evt_handlers=handlers)
            except OSError as exc:
                raise InputError(f"could not listen on {self.host}:{self._port} ({exc.strerror or exc})",
                                 "port") from None
            self._ae = ae
        return self

    def stop(self) -> None:
        """Stop listening, end open associations and release the port (no-op when stopped)."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            for assoc in list(server.active_associations):
                assoc.abort()
            server.shutdown()

    def __enter__(self) -> "StorageServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ events
    def _refuse(self, line: str) -> None:
        with self._lock:
            self.refused.append(line)
        self._say(line)

    def _on_requested(self, event) -> None:
        """An association request: refuse an address not allowed (the AE title is checked by pynetdicom)."""
        address = str(event.assoc.requestor.address)
        if self.allowed_addresses is not None and address not in self.allowed_addresses:
            self._refuse(f"DICOM association from {address} refused: address not allowed "
                         f"(allowed: {', '.join(self.allowed_addresses)})")
            event.assoc.acse.send_reject(0x01, 0x01, 0x01)   # permanent, service user, no reason given
            event.assoc.kill()   # as pynetdicom does after its own rejections: the answer goes out first

    def _on_rejected(self, event) -> None:
        ae, address = event.assoc.requestor.ae_title, event.assoc.requestor.address
        if self.allowed_calling_aes is not None and str(ae).strip() not in self.allowed_calling_aes:
            self._refuse(f"DICOM association from AE title {str(ae).strip()!r} at {address} refused: "
                         f"calling AE title not allowed (allowed: {', '.join(self.allowed_calling_aes)})")

    def _on_store(self, event):
        """A C-STORE request: check, read, store and hand on one object (module doc)."""
        with warnings.catch_warnings():   # pydicom's warnings on odd values: the checks below say what matters
            warnings.simplefilter("ignore")
            return self._store(event)

    def _store(self, event):
        arrived = time.monotonic()
        ae = str(event.assoc.requestor.ae_title).strip()
        address = str(event.assoc.requestor.address)
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            sop_uid = str(ds.get("SOPInstanceUID", "") or "")
        except Exception as exc:  # noqa: BLE001 - a dataset pydicom cannot decode: answer, do not crash
            self._refuse(f"DICOM object from {ae} refused: cannot be decoded ({type(exc).__name__}: {exc})")
            return _status(STATUS_NOT_A_SHOT, "cannot be decoded")
        what = f"DICOM object {sop_uid or '(no SOP Instance UID)'} from {ae}"
        identity = PatientIdentity.from_dataset(ds, source=what)
        warning = None
        if self.patient_check is not None:
            try:
                warning = self.patient_check(identity)
            except WrongPatientError as exc:
                self._refuse(f"{exc}; not stored, not used")
                return _status(STATUS_WRONG_PATIENT, "wrong patient: not the plan's patient")
        try:
            shot = read_dicom_shot(ds)
        except InputError as exc:
            self._refuse(f"{what} refused: not a usable shot ({exc})")
            return _status(STATUS_NOT_A_SHOT, f"not a usable projection image: {exc}")
        with self._lock:
            if sop_uid and sop_uid in self._seen:
                self._say(f"{what} received again: already stored, not used twice")
                return 0x0000
            self._stored += 1
            number = self._stored
            if sop_uid:
                self._seen.add(sop_uid)
        path = self.store_dir / safe_file_name(number, sop_uid)
        if path.resolve().parent != self.store_dir:   # cannot happen with safe_file_name; never write elsewhere
            raise RuntimeError(f"refusing to write outside {self.store_dir}: {path}")
        try:
            tmp = path.with_suffix(".part")
            with open(tmp, "wb") as f:
                f.write(event.encoded_dataset())
            os.replace(tmp, path)
        except OSError as exc:
            with self._lock:
                self._seen.discard(sop_uid)
            self._refuse(f"{what} could not be stored in {self.store_dir} ({exc.strerror or exc})")
            return _status(STATUS_NOT_STORED, "could not be stored")
        if warning:
            self._say(f"{what}: {warning}")
        received = ReceivedImage(number, path, shot, identity, ae, address, arrived, warning)
        if self.on_image is not None:
            try:
                self.on_image(received)
            except Exception as exc:  # noqa: BLE001 - the object is stored; the C-arm must still hear success
                self._say(f"{what}: stored as {path.name}, but handing it on failed ({type(exc).__name__}: {exc})")
        return 0x0000
