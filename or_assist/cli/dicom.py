"""``or-assist archive``: the case to PACS over DICOM.

    or-assist archive CASE_DIR --to AE@HOST:PORT [--calling-ae ORASSIST] [--ct CT]
                      [--deidentify [--pseudonym X]] [--retries N] [--timeout S] [--echo]

Prints one line per object and a summary. Exit status 0 when every object is stored at the
destination, 1 when some are pending (PACS down or refusing: run it again later), 2 on bad
input.
"""

from __future__ import annotations

from or_assist.cli._parser import emit

__all__ = ["EXIT_PENDING", "add_parsers", "add_archive_parser", "cmd_archive"]

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
    if not 0 <= args.retries <= 20:
        raise InputError(f"expected 0 to 20, got {args.retries}", "--retries")
    if not args.timeout > 0:
        raise InputError(f"expected seconds > 0, got {args.timeout}", "--timeout")
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


def add_parsers(sub) -> None:
    """Add the DICOM commands (``archive``)."""
    add_archive_parser(sub)


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
