"""``or-assist sources``: list capture devices (frame grabbers), or probe one source.

    or-assist sources [--probe SOURCE] [--seconds S] [--max-index N] [--backend NAME] ...
"""

from __future__ import annotations

import sys

from or_assist.cli._parser import emit

__all__ = ["add_parsers", "cmd_sources", "format_devices", "format_probe"]


def cmd_sources(args) -> int:
    """Print the device list or the probe report."""
    from or_assist.cli.live import register_simulator_for
    from or_assist.video.sources.devices import list_devices, probe_source

    if args.probe is None:
        emit(format_devices(list_devices(args.max_index), args.max_index))
        return 0
    register_simulator_for(args.probe)
    emit(format_probe(probe_source(args.probe, seconds=args.seconds, backend=args.backend, width=args.width,
                                   height=args.height, fps=args.fps, fourcc=args.fourcc)))
    return 0


def format_devices(devices: list, max_index: int = 10) -> str:
    """The device list of ``or-assist sources``: each device with its modes, or what to do
    when there is none (``max_index``: how many device indices were looked at)."""
    if not devices:
        where = "/dev/video*" if sys.platform.startswith("linux") else f"device indices 0-{int(max_index) - 1}"
        return (f"no capture devices found (looked at {where}).\n"
                "Connect the frame grabber, or use a URL (rtsp://..., http://...), a video file, an image "
                "folder or sim:<scenario> as the source.")
    lines = []
    for info in devices:
        lines.append(info.summary())
        for mode in info.modes:
            lines.append(f"    {mode}")
    lines.append("Choose one with its index or path; request a mode with --width/--height/--fps/--fourcc.")
    return "\n".join(lines)


def format_probe(report) -> str:
    """The ``or-assist sources --probe`` report of a :class:`~or_assist.video.sources.devices.ProbeReport`:
    the delivered settings against the requested ones, the measured frame rate and frame size,
    the signal states seen, and what to check when no frame came."""
    stats = report.stats
    lines = [report.info.summary(), f"captured {stats['frames_captured']} frames in {report.seconds:g} s "
             f"({stats['fps_measured']:.1f} fps measured), frames {stats['width']}x{stats['height']}, "
             f"state {stats['state'].value}"]
    if report.events:
        lines.append("states seen:")
        lines.extend(f"  {state.value}: {msg}" for state, msg in report.events)
    if report.no_frames:
        lines.append("no frames: check the cable, the C-arm's video output and the grabber's input")
    return "\n".join(lines)


def add_parsers(sub) -> None:
    """Add ``sources``."""
    s = sub.add_parser("sources", help="list capture devices (frame grabbers), or probe one source")
    s.add_argument("--probe", default=None, help="open this source (device index/path, URL, file) and report what it delivers")
    s.add_argument("--seconds", type=float, default=2.0, help="how long to probe (default 2)")
    s.add_argument("--max-index", type=int, default=10, help="highest device index to look at (default 10)")
    s.add_argument("--backend", default=None, help="v4l2 | dshow | msmf | avfoundation | ffmpeg")
    s.add_argument("--width", type=int, default=None)
    s.add_argument("--height", type=int, default=None)
    s.add_argument("--fps", type=float, default=None)
    s.add_argument("--fourcc", default=None, help="e.g. MJPG or YUYV")
    s.set_defaults(func=cmd_sources)
