"""The ``or-assist`` command.

Each subcommand is a thin wrapper around one core function; heavy modules are imported
inside the subcommand so that ``or-assist --help`` answers at once. Bad input is printed
as one clear line (``or-assist: error: ...``) with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from or_assist.core.vocabulary import DISTORTION_MODELS, PATIENT_POSITIONS, POLARITIES, POLARITY_SETTINGS, VIEW_KINDS

__all__ = ["main", "build_parser"]

EXIT_BAD_INPUT = 2


# --------------------------------------------------------------------------- commands


def _cmd_info(args) -> int:
    from or_assist.core.ct.load import format_ct_info, load_ct

    print(format_ct_info(load_ct(args.ct)))
    return 0


def _cmd_plan_check(args) -> int:
    from or_assist.planning.checks import check_plan_file

    text, code = check_plan_file(args.plan, ct_path=args.ct, ignore_hash=args.ignore_hash,
                                 min_clearance_mm=args.min_clearance_mm)
    print(text)
    return code


def _cmd_geometry(args) -> int:
    from or_assist.core.carm_profiles import list_profiles, load_profile
    from or_assist.core.geometry import save_geometry

    if args.profile is None:
        for name in list_profiles():
            p = load_profile(name)
            g = p.geometry
            print(f"{name:28s} {p.display_name}  (SID {g.sid_mm:g} mm, source-isocentre "
                  f"{g.source_to_isocenter_mm:g} mm, field {p.field_size_mm:g} mm)")
        return 0
    profile = load_profile(args.profile)
    geom = profile.geometry_at(args.size) if args.size is not None else profile.geometry
    if args.out:
        save_geometry(geom, args.out)
        print(f"wrote {args.out}")
    else:
        import json

        print(json.dumps(geom.to_dict(), indent=2))
    if profile.unverified:
        print("note: unverified values in this profile: " + "; ".join(profile.unverified), file=sys.stderr)
    return 0


def _cmd_view_pose(args) -> int:
    from or_assist.core.geometry import save_pose
    from or_assist.core.plan import load_plan
    from or_assist.core.view_poses import plan_view_pose

    plan = load_plan(args.plan)
    pose = plan_view_pose(plan, args.implant, args.view, source_to_isocenter_mm=args.source_to_isocenter_mm,
                          geometry_path=args.geometry, tilt_deg=args.tilt_deg,
                          patient_position=args.patient_position)
    if args.out:
        save_pose(pose, args.out)
        print(f"wrote {args.out}")
    else:
        import json

        print(json.dumps(pose.to_dict(), indent=2))
    return 0


def _cmd_sample(args) -> int:
    from or_assist.sim.sample import build_sample_data

    paths = build_sample_data(args.out, force=args.force)
    for key, path in paths.items():
        print(f"{key:10s} {path}")
    return 0


def _cmd_views(args) -> int:
    from or_assist.render.views.io import views_command

    offsets = () if args.no_neighbourhood else tuple(args.neighbourhood_deg)
    result = views_command(args.plan, args.geometry, args.out, size_px=args.size_px,
                           neighbourhood_deg=offsets, patient_position=args.patient_position,
                           png=not args.no_png, progress=True)
    print(result["summary"])
    return 0


def _point_arg(text: str, name: str):
    from or_assist.errors import InputError

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise InputError(f"must be three comma-separated numbers x,y,z (LPS mm), got {text!r}", name)
    return values


def _cmd_simulate(args) -> int:

    from or_assist.core.ct.load import load_ct
    from or_assist.core.geometry import load_geometry, load_pose
    from or_assist.core.instruments import GuidePin
    from or_assist.errors import InputError
    from or_assist.sim.shots.simulate import ShotSettings, simulate_shot

    ct = load_ct(args.ct)
    pose = load_pose(args.pose)
    geometry = load_geometry(args.geometry)
    pin = None
    if (args.pin_tip is None) != (args.pin_back is None):
        raise InputError("give both --pin-tip and --pin-back, or neither", "--pin-tip/--pin-back")
    if args.pin_tip is not None:
        pin = GuidePin(_point_arg(args.pin_tip, "--pin-tip"), _point_arg(args.pin_back, "--pin-back"))
    implants = ()
    if args.plan is not None:
        from or_assist.core.plan import load_plan

        implants = tuple(load_plan(args.plan).implants)
    frame = None
    if args.frame:
        try:
            w, h = (int(v) for v in args.frame.lower().split("x"))
        except ValueError:
            raise InputError(f"must be WIDTHxHEIGHT, e.g. 1920x1080, got {args.frame!r}", "--frame") from None
        from or_assist.core.validate import check_range

        for side in (w, h):
            check_range(side, 16, 8192, "--frame", "px per side", "a video frame WIDTHxHEIGHT", integer=True)
        frame = (w, h)
    settings = ShotSettings(frame_size_px=frame, invert=args.invert, seed=args.seed,
                            i0_photons_per_px=args.dose)
    shot = simulate_shot(ct, pose, geometry, pin=pin, implants=implants, settings=settings)
    from or_assist.core.outputs import write_image

    out = write_image(args.out, shot.frame, what="the shot")
    if args.video_geometry:
        from or_assist.core.geometry import save_geometry

        save_geometry(shot.video_geometry, args.video_geometry)
    print(f"wrote {out} ({shot.frame.shape[1]} x {shot.frame.shape[0]} px, seed {shot.seed})")
    return 0


def _register_simulator_for(spec) -> None:
    """Import the shot simulator when ``spec`` is a ``sim:`` source (or None: a saved source
    may be one), so that ``open_source`` knows the ``sim:`` kind it registers."""
    if spec is None or str(spec).strip().startswith("sim:"):
        import or_assist.sim.scenario.player  # noqa: F401  (registers the sim: source kind)


def _cmd_sources(args) -> int:
    from or_assist.video.sources.devices import sources_command

    if args.probe is not None:
        _register_simulator_for(args.probe)
    print(sources_command(probe=args.probe, max_index=args.max_index, seconds=args.seconds,
                          backend=args.backend, width=args.width, height=args.height, fps=args.fps,
                          fourcc=args.fourcc))
    return 0


def _cmd_evaluate(args) -> int:
    from or_assist.errors import InputError

    if args.cohort or args.cohort_file:
        from or_assist.postop.cohort import cohort_command

        if args.out is None:
            raise InputError("a cohort needs an output folder", "--out")
        print(cohort_command(args.out, pairs=tuple(args.cohort or ()), cohort_file=args.cohort_file,
                             ignore_hash=args.ignore_hash))
        return 0
    if not args.plan or not args.postop:
        raise InputError("give --plan and --postop (or --cohort / --cohort-file)", "evaluate")
    from or_assist.postop.evaluate import evaluate_command

    print(evaluate_command(args.plan, args.postop, args.preop, args.out, ignore_hash=args.ignore_hash))
    return 0


def _cmd_calibrate(args) -> int:
    from or_assist.calibration.io import calibrate_command
    from or_assist.video.preprocess.fov import detect_field_of_view

    print(calibrate_command(args.images, args.phantom, args.out, profile=args.profile, roi=args.roi,
                            source_to_isocenter_mm=args.source_to_isocenter_mm, distortion=args.distortion,
                            detect_fov=detect_field_of_view))
    return 0


def _cmd_report(args) -> int:
    from or_assist.cli.cases import report_command

    print(report_command(args.case_dir, args.out, pdf=args.pdf, mask_text=not args.no_mask,
                         pseudonymise=args.pseudonymise))
    return 0


def _cmd_cases(args) -> int:
    from or_assist.cli.cases import cases_command

    print(cases_command(args.root))
    return 0


def _cmd_export(args) -> int:
    from or_assist.cli.cases import export_command

    print(export_command(args.case_dir, args.out_dir, mask_text=not args.no_mask, pseudonymise=args.pseudonymise))
    return 0


def _cmd_register(args) -> int:
    from or_assist.cli.register import register_command

    result = register_command(args.ct, args.geometry, args.image, args.init, args.out, plan_path=args.plan,
                              library_path=args.library, polarity=args.polarity)
    print(result["summary"] if isinstance(result["summary"], str) else "\n".join(result["summary"]))
    return 0  # also when the registration reports success=false: that is a result, not an error


def _cmd_plan(args) -> int:
    from or_assist.app.planner.window import plan_app

    return plan_app(args.ct, args.plan)


def _cmd_pin(args) -> int:
    from or_assist.cli.pin import pin_command

    res = pin_command(args.ct, args.geometry, args.plan, args.implant, [tuple(s) for s in args.shot], args.out,
                      overlay_path=args.overlay, polarity=args.polarity)
    print("\n".join(res["summary"]))
    print(f"wrote {res['out']}")
    return 0


def _cmd_demo(args) -> int:
    if args.overview:
        from or_assist.cli.demo import run_demo

        return run_demo(out_dir=args.out)
    from or_assist.app.run import demo_app
    from or_assist.sim.scenario.demo_case import open_demo_case

    return demo_app(open_demo_case, headless=args.headless, screen=args.screen, full_screen=args.fullscreen,
                    duration_s=args.duration, max_shots=args.max_shots, cases_root=args.cases)


def _cmd_run(args) -> int:
    from or_assist.app.run import run_app

    _register_simulator_for(args.source)
    return run_app(args.plan, args.geometry, args.source, library=args.library, ct=args.ct,
                   headless=args.headless, screen=args.screen, full_screen=args.fullscreen,
                   duration_s=args.duration, max_shots=args.max_shots, cases_root=args.cases,
                   source_timeout_s=args.source_timeout, no_signal_report_s=args.no_signal_report)


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


def _check_outputs(args) -> None:
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


def _add_display_options(s) -> None:
    s.add_argument("--headless", action="store_true", help="no window: run the same pipeline and write the case log")
    s.add_argument("--screen", type=int, default=None, help="monitor index for the window (default: last used)")
    s.add_argument("--fullscreen", action="store_true", help="start full screen (F11 toggles)")
    s.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    s.add_argument("--max-shots", type=int, default=None, help="stop after this many shots")
    s.add_argument("--cases", type=Path, default=None, help="cases folder (default $OR_ASSIST_CASES or ~/.local/share/or_assist/cases)")


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
}


def _check_limits(args) -> None:
    from or_assist.core.validate import check_range

    for dest, (option, lo, hi, unit, why, integer) in _ARG_LIMITS.items():
        value = getattr(args, dest, None)
        for v in (value if isinstance(value, list) else [value]):
            if v is not None:
                check_range(v, lo, hi, option, unit, why, integer=integer)


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error of the CLI."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"or-assist: error: {self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no heavy imports)."""
    p = _Parser(
        prog="or-assist",
        description="Intraoperative comparison assistant for sacroiliac joint fusion: "
                    "CT, plan, C-arm geometry and virtual fluoroscopy.")
    from or_assist import __version__

    p.add_argument("--version", action="version", version=f"or-assist {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("demo", help="the OR display on the built-in sample pelvis with a simulated C-arm")
    _add_display_options(s)
    s.add_argument("--overview", action="store_true",
                   help="instead: write the plan checks, view library and simulated shots as images (no window)")
    s.add_argument("--out", type=Path, default=None, help="folder for --overview (default sample_data/demo)")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("run", help="the OR display for a real case")
    s.add_argument("--plan", default=None, help="or_assist.plan/1 (default: last used)")
    s.add_argument("--geometry", default=None, help="or_assist.geometry/1 of the C-arm + grabber (default: last used)")
    s.add_argument("--source", default=None, help="capture device index/path, stream URL, video file or sim:... (default: last used)")
    s.add_argument("--library", default=None, help="the plan's view library (views.npz or its folder)")
    s.add_argument("--ct", default=None, help="the plan's CT (default: the plan's own path)")
    s.add_argument("--source-timeout", type=float, default=None, metavar="S",
                   help="give up on a video file or folder that does not open, and (headless) on a stream or "
                        "device that sends nothing, after S seconds (default: settings file, 30)")
    s.add_argument("--no-signal-report", type=float, default=None, metavar="S",
                   help="while the source sends nothing, say so every S seconds (default: settings file, 5)")
    _add_display_options(s)
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser("info", help="print a CT's size, spacing, direction, HU range, series UID, memory")
    s.add_argument("ct", help="DICOM folder or file, NIfTI, MHA/MHD or NRRD")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("plan-check", help="check a plan against its CT; exit 1 when a check fails")
    s.add_argument("plan", help="or_assist.plan/1 JSON file")
    s.add_argument("--ct", default=None, help="CT to check against (default: the plan's own CT path)")
    s.add_argument("--ignore-hash", action="store_true",
                   help="check even when the CT's voxel SHA-256 differs from the plan's")
    s.add_argument("--min-clearance-mm", type=float, default=2.0,
                   help="required surface clearance from foramina and canal (default 2.0)")
    s.set_defaults(func=_cmd_plan_check)

    s = sub.add_parser("geometry", help="list C-arm profiles, or write one's geometry JSON")
    s.add_argument("profile", nargs="?", help="profile name (see the list) or a profile JSON path")
    s.add_argument("--size", type=int, default=None, help="resample to a SIZE x SIZE image of the whole field")
    s.add_argument("--out", type=Path, default=None, help="write or_assist.geometry/1 here (default: print)")
    s.set_defaults(func=_cmd_geometry)

    s = sub.add_parser("view-pose", help="the C-arm pose of a named view of one planned implant")
    s.add_argument("plan", help="or_assist.plan/1 JSON file")
    s.add_argument("--implant", required=True, help="implant id in the plan")
    s.add_argument("--view", required=True, choices=VIEW_KINDS)
    s.add_argument("--geometry", default=None, help="or_assist.geometry/1 (for its source-isocentre distance)")
    s.add_argument("--source-to-isocenter-mm", type=float, default=None,
                   help="override (default from --geometry, else 600)")
    s.add_argument("--tilt-deg", type=float, default=None, help="inlet/outlet tilt (default: plan, landmarks or 25/42)")
    s.add_argument("--patient-position", choices=PATIENT_POSITIONS, default="prone")
    s.add_argument("--out", type=Path, default=None, help="write or_assist.pose/1 here (default: print)")
    s.set_defaults(func=_cmd_view_pose)

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
    s.set_defaults(func=_cmd_views)

    s = sub.add_parser("simulate", help="simulate a fluoroscopy shot (video frame PNG) from a CT")
    s.add_argument("ct", help="CT file or DICOM folder")
    s.add_argument("--pose", required=True, help="or_assist.pose/1 of the C-arm")
    s.add_argument("--geometry", required=True, help="or_assist.geometry/1 of the detector")
    s.add_argument("--plan", default=None, help="show this plan's implants as already placed")
    s.add_argument("--pin-tip", default=None, help="guide pin tip x,y,z (LPS mm); write --pin-tip=-52,-104,229 when x is negative")
    s.add_argument("--pin-back", default=None, help="guide pin back end x,y,z (LPS mm), e.g. --pin-back=60,-100,240")
    s.add_argument("--frame", default=None, help="place into a video frame WIDTHxHEIGHT, e.g. 1920x1080")
    s.add_argument("--dose", type=float, default=1e5, help="photons per detector pixel (default 1e5)")
    s.add_argument("--invert", action="store_true", help="bone bright instead of dark")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--video-geometry", type=Path, default=None,
                   help="also write the geometry of the frame's pixels (or_assist.geometry/1)")
    s.add_argument("--out", required=True, type=Path, help="output PNG")
    s.set_defaults(func=_cmd_simulate)

    s = sub.add_parser("sources", help="list capture devices (frame grabbers), or probe one source")
    s.add_argument("--probe", default=None, help="open this source (device index/path, URL, file) and report what it delivers")
    s.add_argument("--seconds", type=float, default=2.0, help="how long to probe (default 2)")
    s.add_argument("--max-index", type=int, default=10, help="highest device index to look at (default 10)")
    s.add_argument("--backend", default=None, help="v4l2 | dshow | msmf | avfoundation | ffmpeg")
    s.add_argument("--width", type=int, default=None)
    s.add_argument("--height", type=int, default=None)
    s.add_argument("--fps", type=float, default=None)
    s.add_argument("--fourcc", default=None, help="e.g. MJPG or YUYV")
    s.set_defaults(func=_cmd_sources)

    s = sub.add_parser("evaluate", help="post-operative CT: deviation of placed from planned implants")
    s.add_argument("--plan", default=None, help="or_assist.plan/1 JSON file")
    s.add_argument("--postop", default=None, help="post-operative CT")
    s.add_argument("--preop", default=None, help="pre-operative CT (default: the plan's CT)")
    s.add_argument("--cohort", nargs="+", default=None, metavar="PLAN:POSTOP[:PREOP]",
                   help="evaluate many cases (in case order) into a table and learning-curve plot")
    s.add_argument("--cohort-file", default=None, help="CSV with plan, postop[, preop] per line")
    s.add_argument("--ignore-hash", action="store_true", help="evaluate even if the pre-op CT's hash differs from the plan's")
    s.add_argument("--out", default=None, type=Path, help="JSON result (one case) or output folder (cohort)")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("calibrate", help="calibrate a C-arm + grabber from bead-phantom images; writes or_assist.geometry/1")
    s.add_argument("images", nargs="+", help="bead phantom images (PNG/TIFF/DICOM frames as grabbed)")
    s.add_argument("--phantom", required=True, help="bead phantom name (calibration/phantoms) or JSON path")
    s.add_argument("--profile", default=None, help="C-arm profile for the source-isocentre distance and a report")
    s.add_argument("--roi", default=None, help="crop every frame first: x,y,w,h in video pixels")
    s.add_argument("--source-to-isocenter-mm", type=float, default=None, help="override (not observable from the phantom)")
    s.add_argument("--distortion", choices=DISTORTION_MODELS, default="auto")
    s.add_argument("--out", required=True, type=Path, help="or_assist.geometry/1 output")
    s.set_defaults(func=_cmd_calibrate)

    s = sub.add_parser("cases", help="list recorded cases")
    s.add_argument("--root", default=None, help="cases folder (default $OR_ASSIST_CASES or ~/.local/share/or_assist/cases)")
    s.set_defaults(func=_cmd_cases)

    s = sub.add_parser("report", help="write a case's self-contained HTML report (and PDF)")
    s.add_argument("case_dir", help="a case folder")
    s.add_argument("--out", default=None, help="report path (default CASE_DIR/report.html)")
    s.add_argument("--pdf", action="store_true", help="also print it to PDF (needs Chromium)")
    s.add_argument("--no-mask", action="store_true", help="do not mask burnt-in text (may show the patient's name)")
    s.add_argument("--pseudonymise", action="store_true", help="strip names, ids and dates")
    s.set_defaults(func=_cmd_report)

    s = sub.add_parser("export", help="copy a case for sharing (text masked; optionally pseudonymised)")
    s.add_argument("case_dir")
    s.add_argument("out_dir")
    s.add_argument("--no-mask", action="store_true")
    s.add_argument("--pseudonymise", action="store_true")
    s.set_defaults(func=_cmd_export)

    s = sub.add_parser("register", help="register a fluoroscopy shot to the CT (2D/3D); writes or_assist.registration/1")
    s.add_argument("--ct", required=True, help="the CT (DICOM folder or file, NIfTI, MHA, NRRD)")
    s.add_argument("--geometry", required=True, help="or_assist.geometry/1 of the image's pixels")
    s.add_argument("--image", required=True, help="the shot: PNG/TIFF, a whole video frame is fine")
    s.add_argument("--init", required=True, help="starting pose (or_assist.pose/1), e.g. the planned view's")
    s.add_argument("--out", required=True, type=Path, help="or_assist.registration/1 output")
    s.add_argument("--plan", default=None, help="the plan (limits the search to its region, checks the library)")
    s.add_argument("--library", default=None, help="the plan's view library (views.npz or its folder)")
    s.add_argument("--polarity", choices=POLARITY_SETTINGS, default="bone-dark")
    s.set_defaults(func=_cmd_register)

    s = sub.add_parser("plan", help="open the planning workstation on a CT (and a plan)")
    s.add_argument("ct", help="the CT to plan on")
    s.add_argument("plan", nargs="?", default=None, help="a plan to open, or the file to save a new one to")
    s.set_defaults(func=_cmd_plan)

    s = sub.add_parser("pin", help="find the guide pin in registered shots; 2D deviation per shot, 3D from two")
    s.add_argument("--ct", required=True, help="the plan's CT")
    s.add_argument("--geometry", required=True, help="or_assist.geometry/1 of the shots' pixels")
    s.add_argument("--plan", required=True, help="or_assist.plan/1 JSON file")
    s.add_argument("--implant", required=True, help="the active implant id")
    s.add_argument("--shot", nargs=2, action="append", required=True, metavar=("SHOT.png", "POSE.json"),
                   help="a shot and its pose (or_assist.pose/1 or a registration result); give two for 3D")
    s.add_argument("--out", required=True, type=Path, help="or_assist.pin_deviation/1 JSON output")
    s.add_argument("--overlay", default=None, type=Path, help="also draw the overlay of the first shot here")
    s.add_argument("--polarity", choices=("auto", *POLARITIES), default="auto")
    s.set_defaults(func=_cmd_pin)

    s = sub.add_parser("sample", help="generate the built-in sample pelvis CT and its plan")
    s.add_argument("--out", type=Path, default=None, help="folder (default: the repository's sample_data/)")
    s.add_argument("--force", action="store_true", help="regenerate even when cached")
    s.set_defaults(func=_cmd_sample)
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
        _check_limits(args)
        _check_outputs(args)
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

