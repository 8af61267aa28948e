"""The DICOM commands: ``receive`` (the C-arm's shots over DICOM) and ``archive`` (the case to PACS).

    or-assist receive --ae ORASSIST --port 11112 --allow-ae CARM1 [--allow-ae ...]
                      [--allow-address IP ...] [--host 127.0.0.1] --out DIR
                      (--plan PLAN [--override-patient] | --accept-any-patient) [--duration S]
    or-assist archive CASE_DIR --to AE@HOST:PORT [--calling-ae ORASSIST] [--ct CT]
                      [--deidentify [--pseudonym X]] [--retries N] [--timeout S] [--echo]

``receive`` runs the Storage SCP of :mod:`or_assist.dicom.receive` until ``--duration`` or
Ctrl+C, stores what arrives in ``--out`` and prints one line per object: the patient, the
modality, which geometry tags it carries and where it was stored; refusals (unknown AE
title, address not allowed, wrong patient, not a projection image) get a line each. During
a case, ``or-assist run --source dicom://AE@PORT?allow=CARM1`` receives into the case.

``archive`` prints one line per object and a summary. Exit status 0 when every object is
stored at the destination, 1 when some are pending (PACS down or refusing: run it again
later), 2 on bad input.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from or_assist.cli._parser import emit

__all__ = ["EXIT_PENDING", "add_parsers", "add_archive_parser", "add_receive_parser", "cmd_archive", "cmd_receive",
           "receive_command", "describe_received"]

EXIT_PENDING = 1


def _item_line(item) -> str:
    text = f"{item.status:15s} {item.object_key:24s} {item.sop_instance_uid}"
    if item.status_code is not None and item.status_code != 0:
        text += f" [0x{item.status_code:04X}]"
    return text + (f": {item.reason}" if item.reason else "")


def cmd_archive(args) -> int:
    """Archive a case (:func:`or_assist.session.archive.archive_case`); prints as each object is done."""
    from or_assist.dicom.send import echo, parse_destination
    from or_assist.errors import InputError
    from or_assist.session.archive import archive_case

    dest = parse_destination(args.to)
    if args.pseudonym is not None and not args.deidentify:
        raise InputError("is only used with --deidentify", "--pseudonym")
    if args.echo:
        ok, message = echo(dest.ae_title, dest.host, dest.port, args.calling_ae, timeout_s=args.timeout)
        emit(message)
        if not ok:
            emit(f"nothing sent: {dest} does not answer C-ECHO; every object stays pending")
            return EXIT_PENDING
    summary = archive_case(args.case_dir, dest, calling_ae=args.calling_ae, ct_path=args.ct,
                           deidentify=args.deidentify, pseudonym=args.pseudonym, retries=args.retries,
                           backoff_s=1.0, timeout_s=args.timeout, on_result=lambda item: emit(_item_line(item)))
    for note in summary.notes:
        emit(f"note: {note}")
    emit(summary.line())
    return 0 if summary.all_stored else EXIT_PENDING


_GEOMETRY_TAGS = (("sid_mm", "source-detector distance"), ("source_to_patient_mm", "source-patient distance"),
                  ("imager_pixel_spacing_mm", "imager pixel spacing"), ("primary_angle_deg", "positioner angles"),
                  ("table_position_mm", "table position"), ("patient_orientation", "patient orientation"))


def describe_received(item) -> str:
    """One line for a received object: number, patient, modality, size, geometry tags, sender, file."""
    h = item.shot.header
    tags = [name for attr, name in _GEOMETRY_TAGS if getattr(h, attr, None) is not None]
    rows, cols = item.shot.pixels.shape[:2]
    frames = f", frame {h.frame_index + 1} of {h.frame_count}" if h.frame_count > 1 else ""
    line = (f"{item.number}: patient {h.patient_id or '(no ID)'!s} ({h.patient_name or 'no name'}), "
            f"{h.modality or '?'} {cols}x{rows} {item.shot.bits_stored}-bit{frames}, "
            f"geometry tags: {', '.join(tags) if tags else 'none'}"
            f"{'' if h.has_geometry else ' (no geometry: the calibrated one is needed)'}; "
            f"from {item.calling_ae} at {item.address}; stored {item.path}")
    if item.warning:
        line += f"; WARNING: {item.warning}"
    return line


def receive_command(ae_title: str, port: int, allow_aes, out_dir, *, host: str = "127.0.0.1", allow_addresses=None,
                    plan_path=None, accept_any_patient: bool = False, override_patient: bool = False,
                    duration_s: float | None = None, log=emit, stop: threading.Event | None = None) -> dict:
    """Receive until ``duration_s`` (or ``stop`` is set, or Ctrl+C), printing a line per object.

    Parameters
    ----------
    ae_title, port, host : str, int, str
        This node (:class:`~or_assist.dicom.receive.StorageServer`).
    allow_aes : list of str
        The C-arm's calling AE titles (``["*"]``: any, explicitly).
    out_dir : path-like
        Where received objects are stored.
    allow_addresses : list of str, optional
    plan_path : path-like, optional
        The plan whose CT's patient the images must be of.
    accept_any_patient : bool
        No patient check (instead of ``plan_path``).
    override_patient : bool
        With ``plan_path``: accept another patient's images with a warning.
    duration_s : float, optional
        Stop after this long (None: until Ctrl+C or ``stop``).
    log : callable(str)
    stop : threading.Event, optional

    Returns
    -------
    dict
        ``received`` (lines), ``refused`` (lines), ``port``, ``store_dir``.

    Raises
    ------
    InputError
        Neither or both of ``plan_path`` and ``accept_any_patient``, a bad AE title, port or
        address, an output folder that cannot be written, a port that cannot be bound.
    """
    from or_assist.core.outputs import check_output_dir
    from or_assist.dicom.receive import ACCEPT_ANY, StorageServer, patient_check_for_ct
    from or_assist.errors import InputError

    if (plan_path is None) == (not accept_any_patient):
        raise InputError("give --plan PLAN (images are checked against its CT's patient) or --accept-any-patient, "
                         "not both", "--plan")
    if override_patient and plan_path is None:
        raise InputError("only applies with --plan", "--override-patient")
    check = ACCEPT_ANY
    if plan_path is not None:
        from or_assist.core.plan import load_plan

        plan = load_plan(plan_path)
        if plan.ct_path is None:
            raise InputError("field 'ct' is null: the plan names no CT whose patient could be checked", str(plan_path))
        check = patient_check_for_ct(plan.ct_path, override=override_patient)
        expected = check.expected
        log(f"patient check: {expected.describe() if expected is not None else 'the CT has no patient identity'}"
            + (" (overridden: other patients accepted with a warning)" if override_patient else ""))
    out = check_output_dir(out_dir, "--out", "the folder for received objects")
    allowed = ACCEPT_ANY if list(allow_aes or []) == ["*"] else list(allow_aes or [])
    lock = threading.Lock()
    received: list[str] = []

    def on_image(item) -> None:
        line = describe_received(item)
        with lock:
            received.append(line)
            log(line)

    def on_refusal(line: str) -> None:
        with lock:
            log(line)

    server = StorageServer(ae_title, int(port), host=host, allowed_calling_aes=allowed,
                           allowed_addresses=allow_addresses or None, store_dir=out, on_image=on_image,
                           patient_check=check, log=on_refusal)
    server.start()
    who = "any AE title" if allowed == ACCEPT_ANY else ", ".join(allowed)
    log(f"listening as {server.ae_title} on {server.host}:{server.port} for {who}"
        + (f" from {', '.join(allow_addresses)}" if allow_addresses else "") + f"; storing into {Path(out)}")
    stop = stop or threading.Event()
    started = time.monotonic()
    try:
        while not stop.is_set():
            left = None if duration_s is None else float(duration_s) - (time.monotonic() - started)
            if left is not None and left <= 0:
                break
            stop.wait(0.2 if left is None else min(0.2, left))
    except KeyboardInterrupt:
        log("stopped by Ctrl+C")
    finally:
        port_used = server.port
        server.stop()
    refused = list(server.refused)
    log(f"received {len(received)} object(s), refused {len(refused)}")
    return {"received": received, "refused": refused, "port": port_used, "store_dir": Path(out)}


def cmd_receive(args) -> int:
    """Run the receiver (exit status 0)."""
    receive_command(args.ae, args.port, args.allow_ae, args.out, host=args.host, allow_addresses=args.allow_address,
                    plan_path=args.plan, accept_any_patient=args.accept_any_patient,
                    override_patient=args.override_patient, duration_s=args.duration)
    return 0


def add_parsers(sub) -> None:
    """Add the DICOM commands (``receive``, ``archive``)."""
    add_receive_parser(sub)
    add_archive_parser(sub)


def add_receive_parser(sub) -> None:
    """Add ``receive``."""
    s = sub.add_parser("receive", help="receive shots from the C-arm over DICOM (Storage SCP), store and list them")
    s.add_argument("--ae", required=True, help="this node's AE title (what the C-arm sends to), e.g. ORASSIST")
    s.add_argument("--port", required=True, type=int, help="TCP port to listen on, e.g. 11112")
    s.add_argument("--allow-ae", action="append", required=True, metavar="AE",
                   help="a calling AE title to accept (the C-arm's); repeat for several; '*' accepts any")
    s.add_argument("--allow-address", action="append", default=None, metavar="IP",
                   help="accept associations only from this address (repeat for several)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; the C-arm's network interface in the OR)")
    s.add_argument("--out", required=True, type=Path, help="folder the received objects are stored in")
    who = s.add_mutually_exclusive_group()
    who.add_argument("--plan", default=None, help="or_assist.plan/1: refuse images of another patient than its CT's")
    who.add_argument("--accept-any-patient", action="store_true", help="no patient check (connection tests)")
    s.add_argument("--override-patient", action="store_true",
                   help="with --plan: accept another patient's images anyway, with a warning")
    s.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl+C)")
    s.set_defaults(func=cmd_receive)


def add_archive_parser(sub) -> None:
    """Add ``archive``."""
    s = sub.add_parser("archive", help="store a case's captures and report in PACS (DICOM C-STORE)",
                       description="Store the case's captures (with and without overlay) as secondary capture "
                                   "images and its report as encapsulated PDF in a new series of the patient's "
                                   "study; sends only what is not stored there yet. Exit 0: all stored; "
                                   "1: some pending (run again); 2: bad input.")
    s.add_argument("case_dir", help="a case folder")
    s.add_argument("--to", required=True, metavar="AE@HOST:PORT", help="the PACS, e.g. ORTHANC@pacs:4242")
    s.add_argument("--calling-ae", default="ORASSIST", help="our AE title as PACS knows it (default ORASSIST)")
    s.add_argument("--ct", default=None, help="the patient's DICOM CT (default: the plan's CT)")
    s.add_argument("--deidentify", action="store_true", help="pseudonym instead of the patient; no dates; text masked")
    s.add_argument("--pseudonym", default=None, help="the pseudonym (default one derived from the case id)")
    s.add_argument("--retries", type=int, default=2, help="further attempts per object (default 2)")
    s.add_argument("--timeout", type=float, default=30.0, metavar="S", help="network timeout in seconds (default 30)")
    s.add_argument("--echo", action="store_true", help="check the PACS with C-ECHO first")
    s.set_defaults(func=cmd_archive)
