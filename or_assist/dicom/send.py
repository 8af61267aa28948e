"""Sending DICOM objects to PACS: C-STORE (Storage SCU) and C-ECHO, with pynetdicom.

:func:`store_objects` sends a batch over one association and gives a status per object;
when the association is lost (PACS stopped, network cut, abort) it reconnects and goes on
with the objects not yet stored, up to ``retries`` further attempts per object, waiting
``backoff_s`` (doubled each time) between attempts. A network fault never raises: the
object's status says what happened. A PACS that refuses the association (unknown called
or calling AE title) fails every object with the refusal's reason, without retrying.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import pydicom

from or_assist.errors import InputError

__all__ = ["StoreResult", "Destination", "parse_destination", "store_objects", "echo", "STORED", "FAILED"]

STORED = "stored"
FAILED = "failed"
_WARNING_CODES = {0xB000, 0xB006, 0xB007}  # stored with a warning (coercion, elements discarded)
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # 16 printable characters, no backslash


@dataclass(frozen=True)
class Destination:
    """A DICOM node: its AE title, host and port."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass
class StoreResult:
    """What became of one object.

    Attributes
    ----------
    sop_instance_uid : str
    status : str
        ``"stored"`` (PACS confirmed it, possibly with a warning) or ``"failed"``.
    status_code : int or None
        The DICOM status of the C-STORE response (None when there was none).
    reason : str or None
        Why it failed, or the warning it was stored with.
    attempts : int
        C-STORE requests made for it (0 when no association could be made).
    """

    sop_instance_uid: str
    status: str
    status_code: int | None = None
    reason: str | None = None
    attempts: int = 0


def _check_ae(title, name: str) -> str:
    if not isinstance(title, str) or not _AE_RE.match(title.strip() or "\\"):
        raise InputError(f"expected an AE title of 1 to 16 printable characters (no backslash), got {title!r}", name)
    return title.strip()


def parse_destination(text: str, name: str = "--to") -> Destination:
    """``AE@HOST:PORT`` as a :class:`Destination`.

    Raises
    ------
    InputError
        Not of that form, an invalid AE title, or a port outside 1..65535 (names ``name``).
    """
    m = re.match(r"^([^@]+)@(.+):(\d+)$", text or "") if isinstance(text, str) else None
    if m is None:
        raise InputError(f"expected AE@HOST:PORT (e.g. ORTHANC@pacs.example.org:4242), got {text!r}", name)
    port = int(m.group(3))
    if not 1 <= port <= 65535:
        raise InputError(f"port must be 1 to 65535, got {port}", name)
    host = m.group(2).strip("[]")
    return Destination(_check_ae(m.group(1), name), host, port)


def _make_ae(calling_ae: str, contexts: Sequence[str], timeout_s: float):
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    for uid in contexts:
        ae.add_requested_context(uid, [pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian])
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    return ae


def _associate(ae, dest: Destination) -> tuple[object | None, str | None, bool]:
    """``(association or None, reason, refused)``; ``refused`` for a rejection (no point retrying)."""
    from pynetdicom import evt

    seen = {}

    def on_recv(event):
        primitive = getattr(event, "primitive", None)
        if getattr(primitive, "result", None) in (0x01, 0x02):
            seen["reject"] = primitive

    def on_open(event):
        seen["connected"] = True

    # A plain TCP check first: it names the fault (refused, unreachable, timed out), and pynetdicom
    # leaks its socket when the connection is refused.
    try:
        with socket.create_connection((dest.host, dest.port), timeout=ae.connection_timeout):
            pass
    except OSError as exc:
        return None, (f"cannot connect to {dest} ({exc.strerror or exc}): is PACS running and listening "
                      "there?"), False
    try:
        assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title,
                             evt_handlers=[(evt.EVT_ACSE_RECV, on_recv), (evt.EVT_CONN_OPEN, on_open)])
    except (OSError, RuntimeError, ValueError) as exc:
        return None, f"cannot connect to {dest}: {exc}", False
    if assoc.is_established:
        return assoc, None, False
    if assoc.is_rejected:
        rj = seen.get("reject")
        why = f": {rj.reason_str} ({rj.source_str})" if rj is not None else ""
        return None, (f"{dest} refused the association{why}; check the called AE title {dest.ae_title!r} and that "
                      f"PACS accepts the calling AE title {ae.ae_title!r}"), True
    if not seen.get("connected"):
        return None, f"cannot connect to {dest} (refused or timed out): is PACS running and listening there?", False
    return None, (f"{dest} aborted the association (it accepts none of the object types sent, "
                  "or is not a DICOM node)"), False


def _status_text(code: int) -> str:
    from pynetdicom.status import code_to_category

    return f"0x{code:04X} ({code_to_category(code).lower()})"


def store_objects(datasets: Sequence[pydicom.Dataset], ae_title: str, host: str, port: int,
                  calling_ae: str = "ORASSIST", *, retries: int = 2, backoff_s: float = 1.0,
                  timeout_s: float = 30.0,
                  on_result: Callable[[int, StoreResult], None] | None = None) -> list[StoreResult]:
    """Send objects with C-STORE over one association (module doc for faults and retries).

    Parameters
    ----------
    datasets : sequence of pydicom.Dataset
        Each with ``SOPClassUID``, ``SOPInstanceUID`` and a file meta transfer syntax
        (Explicit or Implicit VR Little Endian).
    ae_title, host, port
        The PACS (called AE title).
    calling_ae : str
        Our AE title, as PACS knows it.
    retries : int
        Further attempts per object after a failed one (network faults, failure statuses).
    backoff_s : float
        Wait before the first retry; doubled for each further one.
    timeout_s : float
        Connection, association and response timeout.
    on_result : callable, optional
        ``on_result(index, result)`` as soon as each object's final status is known.

    Returns
    -------
    list of StoreResult
        One per dataset, in order.

    Raises
    ------
    InputError
        Bad arguments only (AE titles, port, counts, a dataset without SOP UIDs).
    """
    dest = Destination(_check_ae(ae_title, "ae_title"), str(host), int(port))
    calling_ae = _check_ae(calling_ae, "calling_ae")
    if not (isinstance(retries, int) and 0 <= retries <= 20):
        raise InputError(f"expected 0 to 20 retries, got {retries!r}", "retries")
    if not (backoff_s >= 0 and timeout_s > 0):
        raise InputError(f"backoff_s must be >= 0 and timeout_s > 0, got {backoff_s!r}, {timeout_s!r}", "backoff_s")
    for i, ds in enumerate(datasets):
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            raise InputError("has no SOPClassUID/SOPInstanceUID", f"datasets[{i}]")
    results = [StoreResult(str(ds.SOPInstanceUID), FAILED, reason="not sent") for ds in datasets]
    if not datasets:
        return results
    ae = _make_ae(calling_ae, sorted({str(ds.SOPClassUID) for ds in datasets}), timeout_s)
    todo = list(range(len(datasets)))
    tries = {i: 0 for i in todo}  # failed tries per object

    def finish(i: int) -> None:
        todo.remove(i)
        if on_result is not None:
            on_result(i, results[i])

    assoc, wait_s = None, float(backoff_s)
    try:
        while todo:
            if assoc is None or not assoc.is_established:
                assoc, reason, refused = _associate(ae, dest)
                if assoc is None:
                    for i in list(todo):
                        results[i].reason = reason
                        tries[i] += 1
                        if refused or tries[i] > retries:
                            finish(i)
                    if todo:
                        time.sleep(wait_s)
                        wait_s *= 2
                    continue
                wait_s = float(backoff_s)  # connected again: the next fault waits from the start
            i = todo[0]
            results[i].attempts += 1
            try:
                rsp = assoc.send_c_store(datasets[i])
            except (OSError, RuntimeError, ValueError, AttributeError) as exc:
                rsp, err = None, f"sending failed: {exc}"
            else:
                err = None
            code = int(rsp.Status) if rsp is not None and "Status" in rsp else None
            if code is not None and (code == 0x0000 or code in _WARNING_CODES):
                results[i].status, results[i].status_code = STORED, code
                results[i].reason = None if code == 0 else f"stored with warning {_status_text(code)}"
                finish(i)
                continue
            results[i].status_code = code
            if err is None:
                err = (f"PACS answered {_status_text(code)}" if code is not None
                       else f"no answer from {dest} (association lost or timed out)")
            results[i].reason = err
            tries[i] += 1
            if tries[i] > retries:
                finish(i)
            if not assoc.is_established:  # lost: reconnect after a pause
                assoc = None
                if todo:
                    time.sleep(wait_s)
                    wait_s *= 2
    finally:
        if assoc is not None and assoc.is_established:
            assoc.release()
    return results


def echo(ae_title: str, host: str, port: int, calling_ae: str = "ORASSIST", *,
         timeout_s: float = 10.0) -> tuple[bool, str]:
    """C-ECHO: is the node there and does it accept us?

    Returns
    -------
    ok : bool
    message : str
        ``"C-ECHO to AE@HOST:PORT: success"`` or why it failed.
    """
    from pynetdicom.sop_class import Verification

    dest = Destination(_check_ae(ae_title, "ae_title"), str(host), int(port))
    ae = _make_ae(_check_ae(calling_ae, "calling_ae"), [Verification], timeout_s)
    assoc, reason, _ = _associate(ae, dest)
    if assoc is None:
        return False, f"C-ECHO to {dest}: {reason}"
    try:
        rsp = assoc.send_c_echo()
    finally:
        if assoc.is_established:
            assoc.release()
    code = int(rsp.Status) if rsp is not None and "Status" in rsp else None
    if code == 0:
        return True, f"C-ECHO to {dest}: success"
    return False, f"C-ECHO to {dest}: " + ("no answer" if code is None else f"status {_status_text(code)}")
