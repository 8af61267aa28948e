"""``or-assist sources``: list capture devices (frame grabbers), or probe one source.

    or-assist sources [--probe SOURCE] [--seconds S] [--max-index N] [--backend NAME] ...
"""

from __future__ import annotations

from or_assist.cli._parser import emit

__all__ = ["add_parsers", "cmd_sources"]


def cmd_sources(args) -> int:
    """Print the device list or the probe report."""
    from or_assist.cli.live import register_simulator_for
    from or_assist.video.sources.devices import sources_command

    if args.probe is not None:
        register_simulator_for(args.probe)
    emit(sources_command(probe=args.probe, max_index=args.max_index, seconds=args.seconds,
                         backend=args.backend, width=args.width, height=args.height, fps=args.fps,
                         fourcc=args.fourcc))
    return 0


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
