"""The OR display commands: ``demo`` (the sample case with a simulated C-arm) and ``run``
(a real case).

    or-assist demo [--headless] [--overview [--out DIR]] [display options]
    or-assist run [--plan PLAN] [--geometry G.json] [--source SOURCE] [display options]
"""

from __future__ import annotations

from pathlib import Path

from or_assist.cli._parser import add_display_options, emit

__all__ = ["add_parsers", "cmd_demo", "cmd_run", "register_simulator_for"]


def register_simulator_for(spec) -> None:
    """Import the shot simulator when ``spec`` is a ``sim:`` source (or None: a saved source
    may be one), so that ``open_source`` knows the ``sim:`` kind it registers."""
    if spec is None or str(spec).strip().startswith("sim:"):
        import or_assist.sim.scenario.spec  # noqa: F401  (registers the sim: source kind)


def cmd_demo(args) -> int:
    """The OR display on the sample case, or (``--overview``) the demo images."""
    if args.overview:
        from or_assist.cli.demo import run_demo

        return run_demo(out_dir=args.out, log=emit)
    from or_assist.app.run import demo_app
    from or_assist.sim.scenario.demo_case import open_demo_case

    return demo_app(open_demo_case, headless=args.headless, screen=args.screen, full_screen=args.fullscreen,
                    duration_s=args.duration, max_shots=args.max_shots, cases_root=args.cases,
                    time_budget_s=args.time_budget_s)


def cmd_run(args) -> int:
    """The OR display for a real case (its exit status)."""
    from or_assist.app.run import run_app

    register_simulator_for(args.source)
    return run_app(args.plan, args.geometry, args.source, library=args.library, ct=args.ct,
                   headless=args.headless, screen=args.screen, full_screen=args.fullscreen,
                   duration_s=args.duration, max_shots=args.max_shots, cases_root=args.cases,
                   source_timeout_s=args.source_timeout, no_signal_report_s=args.no_signal_report,
                   dewarp=args.dewarp, time_budget_s=args.time_budget_s)


def add_parsers(sub) -> None:
    """Add ``demo`` and ``run``."""
    s = sub.add_parser("demo", help="the OR display on the built-in sample pelvis with a simulated C-arm")
    add_display_options(s)
    s.add_argument("--overview", action="store_true",
                   help="instead: write the plan checks, view library and simulated shots as images (no window)")
    s.add_argument("--out", type=Path, default=None, help="folder for --overview (default sample_data/demo)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("run", help="the OR display for a real case")
    s.add_argument("--plan", default=None, help="or_assist.plan/1 (default: last used)")
    s.add_argument("--geometry", default=None, help="or_assist.geometry/1 of the C-arm + grabber (default: last used)")
    s.add_argument("--source", default=None, help="capture device index/path, stream URL, video file, folder of stills (each image one "
                        "shot) or sim:... (default: last used)")
    s.add_argument("--dewarp", default=None,
                   help="or_assist.dewarp/1 of an image intensifier, calibrated with the geometry (calibrate "
                        "--dewarp); default: the last used with that geometry")
    s.add_argument("--library", default=None, help="the plan's view library (views.npz or its folder)")
    s.add_argument("--ct", default=None, help="the plan's CT (default: the plan's own path)")
    s.add_argument("--source-timeout", type=float, default=None, metavar="S",
                   help="give up on a video file or folder that does not open, and (headless) on a stream or "
                        "device that sends nothing, after S seconds (default: settings file, 30)")
    s.add_argument("--no-signal-report", type=float, default=None, metavar="S",
                   help="while the source sends nothing, say so every S seconds (default: settings file, 5)")
    add_display_options(s)
    s.set_defaults(func=cmd_run)
