"""The simulation commands: the built-in sample case and a simulated fluoroscopy shot.

    or-assist sample [--out DIR] [--force]
    or-assist simulate CT --pose POSE.json --geometry G.json --out SHOT.png
                       [--plan PLAN] [--pin-tip x,y,z --pin-back x,y,z] [--frame WxH] ...
"""

from __future__ import annotations

from pathlib import Path

from or_assist.cli._parser import emit, point_arg

__all__ = ["add_parsers", "cmd_sample", "cmd_simulate"]


def cmd_sample(args) -> int:
    """Generate (or find cached) the sample data and list its files."""
    from or_assist.sim.sample import build_sample_data

    paths = build_sample_data(args.out, force=args.force)
    for key, path in paths.items():
        emit(f"{key:10s} {path}")
    return 0


def _frame_size(text: str) -> tuple[int, int]:
    """``(width, height)`` px from ``"WIDTHxHEIGHT"`` (``--frame``)."""
    from or_assist.core.validate import check_range
    from or_assist.errors import InputError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"must be WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}", "--frame") from None
    for side in (w, h):
        check_range(side, 16, 8192, "--frame", "px per side", "a video frame WIDTHxHEIGHT", integer=True)
    return w, h


def cmd_simulate(args) -> int:
    """Simulate one shot and write it (and its video geometry)."""
    from or_assist.core.ct.load import load_ct
    from or_assist.core.geometry import load_geometry
    from or_assist.core.pose import load_pose
    from or_assist.core.instruments import GuidePin
    from or_assist.errors import InputError
    from or_assist.sim.shots.simulate import simulate_shot
    from or_assist.sim.shots.settings import ShotSettings

    ct = load_ct(args.ct)
    pose = load_pose(args.pose)
    geometry = load_geometry(args.geometry)
    pin = None
    if (args.pin_tip is None) != (args.pin_back is None):
        raise InputError("give both --pin-tip and --pin-back, or neither", "--pin-tip/--pin-back")
    if args.pin_tip is not None:
        pin = GuidePin(point_arg(args.pin_tip, "--pin-tip"), point_arg(args.pin_back, "--pin-back"))
    implants = ()
    if args.plan is not None:
        from or_assist.core.plan import load_plan

        implants = tuple(load_plan(args.plan).implants)
    frame = _frame_size(args.frame) if args.frame else None
    settings = ShotSettings(frame_size_px=frame, invert=args.invert, seed=args.seed,
                            i0_photons_per_px=args.dose)
    shot = simulate_shot(ct, pose, geometry, pin=pin, implants=implants, settings=settings)
    from or_assist.core.outputs import write_image

    out = write_image(args.out, shot.frame, what="the shot")
    if args.video_geometry:
        from or_assist.core.geometry import save_geometry

        save_geometry(shot.video_geometry, args.video_geometry)
    emit(f"wrote {out} ({shot.frame.shape[1]} x {shot.frame.shape[0]} px, seed {shot.seed})")
    return 0


def add_parsers(sub) -> None:
    """Add ``simulate`` and ``sample``."""
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
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("sample", help="generate the built-in sample pelvis CT and its plan")
    s.add_argument("--out", type=Path, default=None, help="folder (default: the repository's sample_data/)")
    s.add_argument("--force", action="store_true", help="regenerate even when cached")
    s.set_defaults(func=cmd_sample)
