"""The ``or-assist`` command.

One module per command group, each with its parsers (``add_parsers(sub)``) beside its
handlers::

    live       demo, run              the OR display
    ct         info                   a CT's header
    plan       plan-check, geometry, view-pose, views, plan
    sim        simulate, sample       simulated shots and the sample case
    video      sources                capture devices
    postop     evaluate               post-operative CT
    calibrate  calibrate              C-arm + grabber from bead-phantom images
    cases      cases, report, export  the case log
    register   register               2-D/3-D registration of a shot file
    pin        pin                    the guide pin in registered shot files
    dicom      receive, archive       DICOM: shots from the C-arm (Storage SCP); the case to PACS
    demo       (demo --overview)      the demo's overview images

A handler prints through :func:`or_assist.cli._parser.emit` and returns the exit status;
heavy modules are imported inside it so that ``or-assist --help`` answers at once. Bad
input is printed as one clear line (``or-assist: error: ...``) with exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys

from or_assist.cli import calibrate, cases, ct, dicom, live, pin, plan, postop, register, sim, video
from or_assist.cli._parser import EXIT_BAD_INPUT, Parser, check_limits, check_outputs

__all__ = ["main", "build_parser"]

_GROUPS = (live, ct, plan, sim, video, postop, calibrate, cases, register, pin, dicom)

#: The order ``or-assist --help`` lists the commands in (roughly the order of a case).
COMMANDS = ("demo", "run", "info", "plan-check", "geometry", "view-pose", "views", "simulate", "sources",
            "evaluate", "calibrate", "cases", "report", "export", "register", "plan", "pin", "sample",
            "receive", "archive")


def _list_in_order(sub) -> None:
    """List the subcommands (help and the 'choose from' of an unknown one) in :data:`COMMANDS` order."""
    parsers = dict(sub.choices)
    sub.choices.clear()
    sub.choices.update((name, parsers[name]) for name in COMMANDS)
    sub._choices_actions.sort(key=lambda action: COMMANDS.index(action.dest))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no heavy imports)."""
    p = Parser(
        prog="or-assist",
        description="Intraoperative comparison assistant for sacroiliac joint fusion: "
                    "CT, plan, C-arm geometry and virtual fluoroscopy.")
    from or_assist import __version__

    p.add_argument("--version", action="version", version=f"or-assist {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in _GROUPS:
        group.add_parsers(sub)
    _list_in_order(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``or-assist`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from or_assist.errors import OrAssistError

    import sqlite3

    try:
        check_limits(args)
        check_outputs(args)
        return int(args.func(args) or 0)
    except OrAssistError as exc:
        from or_assist.video.credentials import mask_credentials

        print(f"or-assist: error: {mask_credentials(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        # Last resort: a write or read failure the command did not name itself.
        from or_assist.core.outputs import write_error

        where = exc.filename if exc.filename is not None else "file system"
        print(f"or-assist: error: {write_error(where, exc, 'or read a file')}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except sqlite3.Error as exc:
        print(f"or-assist: error: case database: {exc} (disk full, read-only or damaged?)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
