"""``or-assist info``: a CT's size, spacing, direction, HU range, series UID and memory.

    or-assist info CT
"""

from __future__ import annotations

from or_assist.cli._parser import emit

__all__ = ["add_parsers", "cmd_info"]


def cmd_info(args) -> int:
    """Print :func:`~or_assist.core.ct.load.format_ct_info` of the CT."""
    from or_assist.core.ct.load import format_ct_info, load_ct

    emit(format_ct_info(load_ct(args.ct)))
    return 0


def add_parsers(sub) -> None:
    """Add ``info``."""
    s = sub.add_parser("info", help="print a CT's size, spacing, direction, HU range, series UID, memory")
    s.add_argument("ct", help="DICOM folder or file, NIfTI, MHA/MHD or NRRD")
    s.set_defaults(func=cmd_info)
