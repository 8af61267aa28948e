"""The planning commands: check a plan, open the planner, C-arm geometry, view poses and
the virtual view library.

    or-assist plan-check PLAN [--ct CT] [--ignore-hash] [--min-clearance-mm MM]
    or-assist plan CT [PLAN]
    or-assist geometry [PROFILE] [--size PX] [--out G.json]
    or-assist view-pose PLAN --implant ID --view KIND [--geometry G.json] [--out POSE.json]
    or-assist views PLAN --geometry G.json --out DIR
"""

from __future__ import annotations

import json
from pathlib import Path

from or_assist.core.vocabulary import PATIENT_POSITIONS, VIEW_KINDS
from or_assist.cli._parser import TextProgress, emit

__all__ = ["add_parsers", "format_check_table", "format_plan_check", "format_view_files", "format_view_angles",
           "cmd_plan_check", "cmd_plan", "cmd_geometry", "cmd_view_pose", "cmd_views"]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_check_table(results: list) -> str:
    """A fixed-width table: implant, check, PASS/FAIL/SKIP, value, limit, unit, message.

    The last line says how many checks failed.
    """
    header = ("implant", "check", "result", "value", "limit", "unit", "message")
    rows = [(r.implant or "-", r.check, "SKIP" if r.skipped else ("PASS" if r.passed else "FAIL"),
             _fmt(r.value), _fmt(r.limit), r.unit, r.message) for r in results]
    widths = [max(len(str(x[c])) for x in [header] + rows) for c in range(6)]
    lines = []
    for row in [header] + rows:
        cells = [str(row[c]).ljust(widths[c]) if c in (0, 1, 2, 5) else str(row[c]).rjust(widths[c])
                 for c in range(6)]
        lines.append("  ".join(cells + [row[6]]).rstrip())
    lines.insert(1, "-" * min(100, max(len(line) for line in lines)))
    failed = sum(1 for r in results if not r.passed)
    skipped = sum(1 for r in results if r.skipped)
    lines.append(f"{failed} of {len(results)} checks failed" + (f" ({skipped} skipped)" if skipped else ""))
    return "\n".join(lines)


def format_plan_check(report) -> str:
    """The ``plan-check`` output of a :class:`~or_assist.planning.checks.PlanCheckReport`:
    what was checked on which CT, the warnings, then :func:`format_check_table`."""
    header = [f"plan {report.plan_path} on CT {report.ct_source}"]
    return "\n".join(header + list(report.warnings) + [format_check_table(report.results)])


def cmd_plan_check(args) -> int:
    """Print the plan's check table; exit status 1 when a check fails."""
    from or_assist.planning.checks import check_plan_file

    report = check_plan_file(args.plan, ct_path=args.ct, ignore_hash=args.ignore_hash,
                             min_clearance_mm=args.min_clearance_mm)
    emit(format_plan_check(report))
    return report.exit_code


def cmd_plan(args) -> int:
    """Open the planning workstation (its exit status)."""
    from or_assist.app.planner.window import plan_app

    return plan_app(args.ct, args.plan)


def cmd_geometry(args) -> int:
    """List the C-arm profiles, or print or write one's geometry."""
    from or_assist.core.carm_profiles import list_profiles, load_profile
    from or_assist.core.geometry import save_geometry

    if args.profile is None:
        for name in list_profiles():
            p = load_profile(name)
            g = p.geometry
            emit(f"{name:28s} {p.display_name}  (SID {g.sid_mm:g} mm, source-isocentre "
                 f"{g.source_to_isocenter_mm:g} mm, field {p.field_size_mm:g} mm)")
        return 0
    profile = load_profile(args.profile)
    geom = profile.geometry_at(args.size) if args.size is not None else profile.geometry
    if args.out:
        save_geometry(geom, args.out)
        emit(f"wrote {args.out}")
    else:
        emit(json.dumps(geom.to_dict(), indent=2))
    if profile.unverified:
        emit("note: unverified values in this profile: " + "; ".join(profile.unverified), err=True)
    return 0


def format_view_angles(implant_id: str, view: str, angles, patient_position: str) -> str:
    """The ``view-pose`` line for the radiographer: the view's C-arm angles in words and signs.

    E.g. ``'R1 inlet: C-arm orbital 0 deg, tilt CAUD 25 deg (patient prone; orbital_deg +0.0,
    tilt_deg -25.0: LAO / CRAN positive, the detector's side)'``.
    """
    return (f"{implant_id} {view}: C-arm {angles.radiographer_text()} (patient {patient_position}; "
            f"orbital_deg {angles.orbital_deg:+.1f}, tilt_deg {angles.tilt_deg:+.1f}: LAO / CRAN positive, "
            "the detector's side)")


def cmd_view_pose(args) -> int:
    """Print or write the pose of a named view of one planned implant, and say its C-arm angles.

    The angles go to standard output with ``--out``, else to standard error after the
    pose JSON (so the JSON can still be piped).
    """
    from or_assist.core.pose import save_pose
    from or_assist.core.plan import load_plan
    from or_assist.core.view_poses import plan_carm_angles, plan_view_pose

    plan = load_plan(args.plan)
    pose = plan_view_pose(plan, args.implant, args.view, source_to_isocenter_mm=args.source_to_isocenter_mm,
                          geometry_path=args.geometry, tilt_deg=args.tilt_deg,
                          patient_position=args.patient_position)
    angles = format_view_angles(args.implant, args.view, plan_carm_angles(plan, pose, args.patient_position),
                                args.patient_position)
    if args.out:
        save_pose(pose, args.out)
        emit(f"wrote {args.out}")
        emit(angles)
    else:
        emit(json.dumps(pose.to_dict(), indent=2))
        emit(angles, err=True)
    return 0


def cmd_views(args) -> int:
    """Build the plan's view library (progress on the terminal) and print its summary."""
    from or_assist.render.views.io import build_view_files

    offsets = () if args.no_neighbourhood else tuple(args.neighbourhood_deg)
    result = build_view_files(args.plan, args.geometry, args.out, size_px=args.size_px,
                              neighbourhood_deg=offsets, patient_position=args.patient_position,
                              png=not args.no_png, progress=TextProgress())
    emit(format_view_files(result))
    return 0


def format_view_files(result) -> str:
    """The one-line summary of a :class:`~or_assist.render.views.io.ViewFiles`."""
    return (f"wrote {result.library} ({result.views} views: {result.named_views} named + "
            f"{result.views - result.named_views} neighbourhood, {result.size_mb:.1f} MB) and "
            f"{len(result.png)} PNGs in {result.seconds:.1f} s")


def add_parsers(sub) -> None:
    """Add ``plan-check``, ``geometry``, ``view-pose``, ``views`` and ``plan``."""
    s = sub.add_parser("plan-check", help="check a plan against its CT; exit 1 when a check fails")
    s.add_argument("plan", help="or_assist.plan/1 JSON file")
    s.add_argument("--ct", default=None, help="CT to check against (default: the plan's own CT path)")
    s.add_argument("--ignore-hash", action="store_true",
                   help="check even when the CT's voxel SHA-256 differs from the plan's")
    s.add_argument("--min-clearance-mm", type=float, default=2.0,
                   help="required surface clearance from foramina and canal (default 2.0)")
    s.set_defaults(func=cmd_plan_check)

    s = sub.add_parser("geometry", help="list C-arm profiles, or write one's geometry JSON")
    s.add_argument("profile", nargs="?", help="profile name (see the list) or a profile JSON path")
    s.add_argument("--size", type=int, default=None, help="resample to a SIZE x SIZE image of the whole field")
    s.add_argument("--out", type=Path, default=None, help="write or_assist.geometry/1 here (default: print)")
    s.set_defaults(func=cmd_geometry)

    s = sub.add_parser("view-pose", help="the C-arm pose and angles (orbital, tilt) of a named view of one "
                                         "planned implant")
    s.add_argument("plan", help="or_assist.plan/1 JSON file")
    s.add_argument("--implant", required=True, help="implant id in the plan")
    s.add_argument("--view", required=True, choices=VIEW_KINDS)
    s.add_argument("--geometry", default=None, help="or_assist.geometry/1 (for its source-isocentre distance)")
    s.add_argument("--source-to-isocenter-mm", type=float, default=None,
                   help="override (default from --geometry, else 600)")
    s.add_argument("--tilt-deg", type=float, default=None, help="inlet/outlet tilt (default: plan, landmarks or 25/42)")
    s.add_argument("--patient-position", choices=PATIENT_POSITIONS, default="prone")
    s.add_argument("--out", type=Path, default=None, help="write or_assist.pose/1 here (default: print)")
    s.set_defaults(func=cmd_view_pose)

    s = sub.add_parser("views", help="build a plan's virtual view library (npz + printable PNGs)")
    s.add_argument("plan", help="or_assist.plan/1 JSON file")
    s.add_argument("--geometry", required=True, help="or_assist.geometry/1 of the C-arm")
    s.add_argument("--out", required=True, type=Path, help="output folder (views.npz, png/)")
    s.add_argument("--size-px", type=int, default=None, help="render size of the named views (default: geometry, max 512)")
    s.add_argument("--neighbourhood-deg", type=float, nargs="+", default=[-10, -5, 0, 5, 10],
                   help="orbital/tilt offsets of the neighbourhood grid (default -10 -5 0 5 10)")
    s.add_argument("--no-neighbourhood", action="store_true", help="render the named views only")
    s.add_argument("--patient-position", choices=PATIENT_POSITIONS, default="prone")
    s.add_argument("--no-png", action="store_true", help="skip the printable PNGs")
    s.set_defaults(func=cmd_views)

    s = sub.add_parser("plan", help="open the planning workstation on a CT (and a plan)")
    s.add_argument("ct", help="the CT to plan on")
    s.add_argument("plan", nargs="?", default=None, help="a plan to open, or the file to save a new one to")
    s.set_defaults(func=cmd_plan)
