"""``or-assist evaluate``: deviation of placed from planned implants on a post-operative CT.

    or-assist evaluate --plan PLAN --postop CT [--preop CT] [--out RESULT.json]
    or-assist evaluate --cohort PLAN:POSTOP[:PREOP] ... | --cohort-file CSV  --out DIR
"""

from __future__ import annotations

from pathlib import Path

from or_assist.cli._parser import emit

__all__ = ["add_parsers", "cmd_evaluate"]


def cmd_evaluate(args) -> int:
    """Evaluate one case or a cohort and print the table."""
    from or_assist.errors import InputError

    if args.cohort or args.cohort_file:
        from or_assist.postop.cohort import cohort_command

        if args.out is None:
            raise InputError("a cohort needs an output folder", "--out")
        emit(cohort_command(args.out, pairs=tuple(args.cohort or ()), cohort_file=args.cohort_file,
                            ignore_hash=args.ignore_hash))
        return 0
    if not args.plan or not args.postop:
        raise InputError("give --plan and --postop (or --cohort / --cohort-file)", "evaluate")
    from or_assist.postop.evaluate import evaluate_command

    emit(evaluate_command(args.plan, args.postop, args.preop, args.out, ignore_hash=args.ignore_hash))
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
