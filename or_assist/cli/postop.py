"""``or-assist evaluate``: deviation of placed from planned implants on a post-operative CT.

    or-assist evaluate --plan PLAN --postop CT [--preop CT] [--out RESULT.json]
    or-assist evaluate --cohort PLAN:POSTOP[:PREOP] ... | --cohort-file CSV  --out DIR
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean

from or_assist.cli._parser import emit

__all__ = ["add_parsers", "cmd_evaluate", "format_case_table", "format_evaluation", "format_cohort_table"]


def cmd_evaluate(args) -> int:
    """Evaluate one case or a cohort and print the table."""
    from or_assist.errors import InputError

    if args.cohort or args.cohort_file:
        from or_assist.postop.cohort import evaluate_cohort

        if args.out is None:
            raise InputError("a cohort needs an output folder", "--out")
        cohort = evaluate_cohort(args.out, pairs=tuple(args.cohort or ()), cohort_file=args.cohort_file,
                                 ignore_hash=args.ignore_hash)
        emit(format_cohort_table(cohort.summary) + "\nwrote " + ", ".join(str(p) for p in cohort.written))
        return 0
    if not args.plan or not args.postop:
        raise InputError("give --plan and --postop (or --cohort / --cohort-file)", "evaluate")
    from or_assist.postop.evaluate import evaluate_files

    result = evaluate_files(args.plan, args.postop, args.preop, args.out, ignore_hash=args.ignore_hash)
    emit(format_evaluation(result))
    return 0


def add_parsers(sub) -> None:
    """Add ``evaluate``."""
    s = sub.add_parser("evaluate", help="post-operative CT: deviation of placed from planned implants")
    s.add_argument("--plan", default=None, help="or_assist.plan/1 JSON file")
    s.add_argument("--postop", default=None, help="post-operative CT")
    s.add_argument("--preop", default=None, help="pre-operative CT (default: the plan's CT)")
    s.add_argument("--cohort", nargs="+", default=None, metavar="PLAN:POSTOP[:PREOP]",
                   help="evaluate many cases (in case order) into a table and learning-curve plot")
    s.add_argument("--cohort-file", default=None, help="CSV with plan, postop[, preop] per line")
    s.add_argument("--ignore-hash", action="store_true", help="evaluate even if the pre-op CT's hash differs from the plan's")
    s.add_argument("--out", default=None, type=Path, help="JSON result (one case) or output folder (cohort)")
    s.set_defaults(func=cmd_evaluate)


def _f(value, fmt="{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def format_case_table(case) -> str:
    """A fixed-width table of the case (what ``or-assist evaluate`` prints)."""
    reg = case.registration
    lines = [f"plan {case.plan_source}; post-op CT {case.postop_source}",
             f"registration to the pre-op CT: bone Dice {reg.bone_dice:.2f}, start {reg.start}, {reg.seconds:.1f} s"]
    header = ("implant", "found", "item", "apex dev mm", "angle deg", "entry dev mm", "clearance mm", "breach", "note")
    rows = []
    for i in case.implants:
        breach = "-" if i.breach is None else ("BREACH " + (i.nearest_landmark or "") if i.breach else "no")
        rows.append((i.id, "yes" if i.found else "NO", i.fitted_item or i.planned_item, _f(i.apex_deviation_mm),
                     _f(i.angle_deg), _f(i.entry_deviation_mm), _f(i.clearance_mm), breach, i.note))
    widths = [max(len(str(r[c])) for r in [header] + rows) for c in range(8)]
    for r in [header] + rows:
        lines.append("  ".join(str(r[c]).ljust(widths[c]) for c in range(8)) + ("  " + r[8] if r[8] else ""))
    found = case.found()
    if found:
        apex = [i.apex_deviation_mm for i in found]
        ang = [i.angle_deg for i in found]
        lines.append(f"mean apex deviation {fmean(apex):.1f} mm (max {max(apex):.1f}), mean angle "
                     f"{fmean(ang):.1f} deg (max {max(ang):.1f}); {len(found)} of {len(case.implants)} found")
    for e in case.extra:
        lines.append(f"EXTRA implant (not in the plan): apex {e['apex_lps_mm']} mm, {e['extent_mm']} mm long, "
                     f"{e['distance_mm']} mm from {e['nearest_planned']}")
    if case.ignored_metal:
        lines.append(f"ignored {len(case.ignored_metal)} metal object(s) far from the plan (e.g. a prosthesis): "
                     + "; ".join(f"{m['volume_mm3'] / 1000:.1f} cm3 at {m['distance_mm']} mm" for m in case.ignored_metal))
    lines += [f"WARNING: {w}" for w in case.warnings]
    return "\n".join(lines)


def _ms(stat: dict | None, unit: str) -> str:
    return "-" if stat is None else f"{stat['mean']:.1f} +- {stat['sd']:.2f} {unit} (max {stat['max']:.1f}, n={stat['n']})"


def format_cohort_table(summary: dict) -> str:
    """Per-case rows in case order, then mean +- SD over implants and the learning curve."""
    header = ("#", "case", "found", "extra", "breaches", "apex dev mm", "angle deg")
    rows = []
    for c in summary["cases"]:
        if "error" in c:
            rows.append((str(c["order"]), c["case"], "ERROR", "", "", "", c["error"]))
        else:
            rows.append((str(c["order"]), c["case"], f"{c['found']}/{c['planned']}", str(c["extra"]),
                         str(c["breaches"]), "-" if c["apex_deviation_mm"] is None else f"{c['apex_deviation_mm']:.1f}",
                         "-" if c["angle_deg"] is None else f"{c['angle_deg']:.1f}"))
    widths = [max(len(r[k]) for r in [header] + rows) for k in range(6)]
    lines = ["  ".join(r[k].ljust(widths[k]) for k in range(6)) + "  " + r[6] for r in [header] + rows]
    lines.insert(1, "-" * len(lines[0]))
    lines += [f"apex deviation:  {_ms(summary['apex_deviation_mm'], 'mm')}",
              f"angle:           {_ms(summary['angle_deg'], 'deg')}",
              f"entry deviation: {_ms(summary['entry_deviation_mm'], 'mm')}",
              f"breaches: {summary['breaches']}"]
    lc = summary["learning_curve"]
    lines.append("learning curve: fewer than 3 cases" if lc is None else
                 f"learning curve: {lc['slope_mm_per_case']:+.2f} mm per case (Pearson r {lc['pearson_r']:+.2f}, "
                 f"{lc['cases']} cases)")
    return "\n".join(lines)


def format_evaluation(result) -> str:
    """What ``or-assist evaluate`` prints for an :class:`~or_assist.postop.evaluate.EvaluationFiles`:
    the warnings, :func:`format_case_table`, and the file written."""
    text = "\n".join(list(result.warnings) + [format_case_table(result.case)])
    return text + (f"\nwrote {result.written}" if result.written is not None else "")
