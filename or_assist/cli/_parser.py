"""What every command group of the CLI shares: the one-line parser, printing, option
limits, shared options and the check of every output before the work.

The convention of the groups: a handler takes the parsed arguments, prints what it has
to say through :func:`emit` and returns the exit status (0, or 1 for a failed check).
Bad input raises :class:`~or_assist.errors.InputError`, which :func:`or_assist.cli.main`
prints as one ``or-assist: error:`` line with exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["EXIT_BAD_INPUT", "Parser", "emit", "TextProgress", "point_arg", "add_display_options", "check_limits",
           "check_outputs"]

EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the CLI."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"or-assist: error: {self.prog}: {message} (see '{self.prog} --help')\n")


def emit(text: str | Sequence[str], *, err: bool = False) -> None:
    """Print a command's text (a string, or lines joined by newlines) to stdout, or stderr."""
    print(text if isinstance(text, str) else "\n".join(text), file=sys.stderr if err else None)


def point_arg(text: str, name: str) -> list[float]:
    """Three finite numbers from ``"x,y,z"`` (LPS mm); InputError naming option ``name``."""
    from or_assist.errors import InputError

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise InputError(f"must be three comma-separated numbers x,y,z (LPS mm), got {text!r}", name)
    return values


def add_display_options(s) -> None:
    """The options of the OR display commands (``demo``, ``run``)."""
    s.add_argument("--headless", action="store_true", help="no window: run the same pipeline and write the case log")
    s.add_argument("--screen", type=int, default=None, help="monitor index for the window (default: last used)")
    s.add_argument("--fullscreen", action="store_true", help="start full screen (F11 toggles)")
    s.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    s.add_argument("--max-shots", type=int, default=None, help="stop after this many shots")
    s.add_argument("--cases", type=Path, default=None, help="cases folder (default $OR_ASSIST_CASES or ~/.local/share/or_assist/cases)")
    s.add_argument("--time-budget-s", type=float, default=None, metavar="S",
                   help="the registration's time budget per shot, 0: no limit (default 3; run: the last used); "
                        "raise it on a computer where many shots end NOT REGISTERED for time")


# --------------------------------------------------------------------------- limits

#: Accepted range of every numeric option, by argparse ``dest``:
#: (option, lo, hi, unit, what it is, whole number). Checked in :func:`main` so a value out
#: of range is one ``or-assist: error:`` line (exit 2) instead of a silent wrong answer.
_ARG_LIMITS = {
    "screen": ("--screen", 0, 15, "", "a monitor index", True),
    "duration": ("--duration", 0.1, 7 * 86400, "s", "how long to run, at most a week", False),
    "max_shots": ("--max-shots", 1, 100_000, "", "shots before stopping", True),
    "source_timeout": ("--source-timeout", 0.1, 3600, "s", "how long to wait for a silent source", False),
    "no_signal_report": ("--no-signal-report", 0.1, 3600, "s", "the interval of the no-signal reports", False),
    "min_clearance_mm": ("--min-clearance-mm", 0, 20, "mm",
                         "required surface clearance; a negative one would pass every check", False),
    "size": ("--size", 16, 4096, "px", "the detector grid side", True),
    "size_px": ("--size-px", 16, 4096, "px", "the render size of the named views", True),
    "source_to_isocenter_mm": ("--source-to-isocenter-mm", 100, 2000, "mm",
                               "the focal spot to isocentre distance of a C-arm", False),
    "tilt_deg": ("--tilt-deg", 0, 89, "deg", "the inlet/outlet tilt magnitude", False),
    "neighbourhood_deg": ("--neighbourhood-deg", -45, 45, "deg", "orbital/tilt offsets around a named view",
                          False),
    "dose": ("--dose", 1, 1e9, "photons per pixel", "the simulated detector dose", False),
    "seed": ("--seed", 0, 2**32 - 1, "", "a random seed", True),
    "seconds": ("--seconds", 0.1, 600, "s", "how long to probe", False),
    "max_index": ("--max-index", 0, 63, "", "the highest capture device index", True),
    "width": ("--width", 16, 8192, "px", "the requested frame width", True),
    "height": ("--height", 16, 8192, "px", "the requested frame height", True),
    "fps": ("--fps", 0.1, 1000, "frames/s", "the requested frame rate", False),
    # 3600: register.settings.MAX_TIME_BUDGET_S (not imported: the parser loads fast; a test checks)
    "time_budget_s": ("--time-budget-s", 0, 3600, "s", "the registration's time budget (0: no limit)", False),
    "port": ("--port", 0, 65535, "", "a TCP port (0: any free one)", True),
    "retries": ("--retries", 0, 20, "", "further attempts per object", True),
    "timeout": ("--timeout", 0.1, 3600, "s", "the network timeout", False),
}


def check_limits(args) -> None:
    """Every numeric option within :data:`_ARG_LIMITS`, else InputError naming it."""
    from or_assist.core.validate import check_range

    for dest, (option, lo, hi, unit, why, integer) in _ARG_LIMITS.items():
        value = getattr(args, dest, None)
        for v in (value if isinstance(value, list) else [value]):
            if v is not None:
                check_range(v, lo, hi, option, unit, why, integer=integer)


# --------------------------------------------------------------------------- outputs

# What each command writes: (argument, "file" or "dir", what), checked before any work.
_OUTPUTS = {
    "simulate": (("out", "file", "the shot PNG"), ("video_geometry", "file", "the video geometry")),
    "register": (("out", "file", "the registration result"),),
    "pin": (("out", "file", "the deviation result"), ("overlay", "file", "the overlay PNG")),
    "views": (("out", "dir", "the view library folder"),),
    "report": (("out", "file", "the report"),),
    "export": (("out_dir", "dir", "the export folder"),),
    "sample": (("out", "dir", "the sample data folder"),),
    "calibrate": (("out", "file", "the calibrated geometry"),),
    "geometry": (("out", "file", "the geometry"),),
    "view-pose": (("out", "file", "the pose"),),
    "run": (("cases", "dir", "the cases folder"),),
    "demo": (("cases", "dir", "the cases folder"),),
}


def _check_default_outputs(args, check_output_dir, check_output_file) -> None:
    """The outputs a command writes when no output option is given (report beside the case, sample data)."""
    if args.command == "report" and args.out is None and Path(args.case_dir).is_dir():
        check_output_file(Path(args.case_dir) / "report.html", "CASE_DIR", "the report (default CASE_DIR/report.html)")
    if args.command == "sample" and args.out is None:
        from or_assist.sim.sample import SAMPLE_DIR

        check_output_dir(SAMPLE_DIR, "--out", "the sample data folder (default)")
    if args.command == "demo" and args.overview and args.out is None:
        from or_assist.sim.sample import SAMPLE_DIR

        check_output_dir(SAMPLE_DIR / "demo", "--out", "the overview folder (default)")


def check_outputs(args) -> None:
    """Check every output of the command before it starts (read-only, under a file, onto a folder)."""
    from or_assist.core.outputs import check_output_dir, check_output_file

    outputs = list(_OUTPUTS.get(args.command, ()))
    if args.command == "evaluate" and args.out is not None:
        cohort = bool(args.cohort or args.cohort_file)
        outputs.append(("out", "dir" if cohort else "file", "the cohort folder" if cohort else "the result"))
    if args.command == "demo" and args.overview:
        outputs = [("out", "dir", "the overview folder")]
    _check_default_outputs(args, check_output_dir, check_output_file)
    if args.command in ("run", "demo") and not getattr(args, "overview", False) and args.cases is None:
        from or_assist.session.caselog import default_cases_root

        check_output_dir(default_cases_root(), "cases folder ($OR_ASSIST_CASES)", "the cases folder")
    for attr, kind, what in outputs:
        value = getattr(args, attr, None)
        if value is None:
            continue
        flag = "--" + attr.replace("_", "-") if attr != "out_dir" else "OUT_DIR"
        (check_output_dir if kind == "dir" else check_output_file)(value, flag, what)


class TextProgress:
    """A plain text progress bar on stderr: redrawn in place on a terminal, else one
    line per tenth of the work. Call as ``progress(done, total, name)``."""

    def __init__(self, label: str = "views", width: int = 30, stream=None):
        self.label, self.width, self.stream = label, width, stream
        self._last_tenth = -1

    def __call__(self, done: int, total: int, name: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        frac = done / total if total else 1.0
        filled = int(round(self.width * frac))
        line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {name}"
        if getattr(stream, "isatty", lambda: False)():
            stream.write("\r" + line[:100].ljust(100) + ("\n" if done >= total else ""))
        elif int(frac * 10) > self._last_tenth or done >= total:
            self._last_tenth = int(frac * 10)
            stream.write(line + "\n")
        stream.flush()
