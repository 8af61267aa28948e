"""``or-assist report CASE_DIR`` and ``or-assist cases``: the CLI's session commands.

    or-assist report CASE_DIR [--out REPORT.html] [--pdf] [--no-mask] [--pseudonymise] [--postop EVAL.json]
    or-assist cases [--root CASES_DIR]
    or-assist export CASE_DIR OUT_DIR [--no-mask] [--pseudonymise]

The ``*_command`` functions return the text to print (the handlers print it); bad input
raises :class:`~or_assist.errors.InputError`.
"""

from __future__ import annotations

import time

from or_assist.cli._parser import emit
from or_assist.errors import InputError

__all__ = ["report_command", "cases_command", "export_command", "add_parsers", "cmd_cases", "cmd_report",
           "cmd_export"]


def report_command(case_dir, out=None, *, pdf: bool = False, mask_text: bool = True,
                   pseudonymise: bool = False, postop=None) -> str:
    """Write a case's HTML report (and PDF); returns what was written, one line each.

    Parameters
    ----------
    case_dir : path-like
        The case folder.
    out : path-like, optional
        The HTML file (default ``CASE_DIR/report.html``).
    pdf : bool
        Also print it to PDF beside the HTML (needs Chromium; without it the HTML is
        still written and a note says so).
    mask_text, pseudonymise : bool
        As :func:`or_assist.session.report.build_report`.
    postop : path-like, optional
        The case's post-op evaluation (``or-assist evaluate --out``), shown beside the
        two-view 3-D deviations that predicted it.
    """
    from or_assist.session.caselog import CaseLog
    from or_assist.session.report import build_report
    from or_assist.session.report_pdf import export_pdf

    html = build_report(case_dir, out, mask_text=mask_text, pseudonymise=pseudonymise, postop=postop)
    lines = [f"wrote {html}"]
    with CaseLog.open(case_dir, readonly=True) as log:
        problems = log.problems
        missing_images = len(log.check_files())
    if problems:
        lines.append(f"note: {len(problems)} problem(s) in the case are listed in the report"
                     + (f" ({missing_images} missing image file(s))" if missing_images else ""))
    if pdf:
        try:
            lines.append(f"wrote {export_pdf(html)}")
        except InputError as exc:
            lines.append(f"note: no PDF: {exc}")
    return "\n".join(lines)


def _when(t) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def cases_command(root=None) -> str:
    """A table of the recorded cases under ``root`` (default: the per-user cases folder)."""
    from or_assist.session.caselog import default_cases_root, list_cases

    where = default_cases_root() if root is None else root
    cases = list_cases(root)
    if not cases:
        return f"no cases in {where}"
    lines = [f"cases in {where}:",
             f"{'case':24s} {'started':16s} {'ended':16s} {'shots':>5s} {'capt':>5s}  status"]
    for c in cases:
        if "error" in c:
            lines.append(f"DAMAGED  {c['folder']}: {c['error']}")
            continue
        status = c["status"] + (f", {len(c['problems'])} problem(s)" if c["problems"] else "")
        lines.append(f"{c['case_id']:24s} {_when(c['started']):16s} {_when(c['ended']):16s} "
                     f"{c['n_shots']:5d} {c['n_captures']:5d}  {status}"
                     + (f"  [{c['patient_label']}]" if c.get("patient_label") else ""))
    return "\n".join(lines)


def export_command(case_dir, out_dir, *, mask_text: bool = True, pseudonymise: bool = False) -> str:
    """Export a case (:func:`or_assist.session.export.export_case`); returns what was written."""
    from or_assist.session.export import export_case

    path = export_case(case_dir, out_dir, mask_text=mask_text, pseudonymise=pseudonymise)
    return f"wrote {path} (images {'text-masked' if mask_text else 'NOT masked'}" + \
        (", pseudonymised)" if pseudonymise else ")")


def cmd_cases(args) -> int:
    """Print :func:`cases_command`."""
    emit(cases_command(args.root))
    return 0


def cmd_report(args) -> int:
    """Print :func:`report_command`."""
    emit(report_command(args.case_dir, args.out, pdf=args.pdf, mask_text=not args.no_mask,
                        pseudonymise=args.pseudonymise, postop=getattr(args, "postop", None)))
    return 0


def cmd_export(args) -> int:
    """Print :func:`export_command`."""
    emit(export_command(args.case_dir, args.out_dir, mask_text=not args.no_mask, pseudonymise=args.pseudonymise))
    return 0


def add_parsers(sub) -> None:
    """Add ``cases``, ``report`` and ``export``."""
    s = sub.add_parser("cases", help="list recorded cases")
    s.add_argument("--root", default=None, help="cases folder (default $OR_ASSIST_CASES or ~/.local/share/or_assist/cases)")
    s.set_defaults(func=cmd_cases)

    s = sub.add_parser("report", help="write a case's self-contained HTML report (and PDF)")
    s.add_argument("case_dir", help="a case folder")
    s.add_argument("--out", default=None, help="report path (default CASE_DIR/report.html)")
    s.add_argument("--pdf", action="store_true", help="also print it to PDF (needs Chromium)")
    s.add_argument("--no-mask", action="store_true", help="do not mask burnt-in text (may show the patient's name)")
    s.add_argument("--pseudonymise", action="store_true", help="strip names, ids and dates")
    s.add_argument("--postop", default=None, metavar="EVAL.json",
                   help="the case's post-op evaluation (or-assist evaluate --out): shown beside the 3-D deviations")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("export", help="copy a case for sharing (text masked; optionally pseudonymised)")
    s.add_argument("case_dir")
    s.add_argument("out_dir")
    s.add_argument("--no-mask", action="store_true")
    s.add_argument("--pseudonymise", action="store_true")
    s.set_defaults(func=cmd_export)
