"""``or-assist pin``: the guide pin against the plan in one or two registered shots.

    or-assist pin --ct CT --geometry G.json --plan PLAN --implant ID
                  --shot SHOT.png POSE.json [--shot SHOT2.png POSE2.json]
                  --out DEV.json [--overlay OUT.png] [--polarity auto|bone-dark|bone-bright]

The work is :func:`or_assist.guidance.pin_files.pin_deviation_files` (its module doc
describes ``or_assist.pin_deviation/1``); this module prints one line per shot and one
for the 3-D deviation.
"""

from __future__ import annotations

import os
from pathlib import Path

from or_assist.core.vocabulary import POLARITIES
from or_assist.cli._parser import emit

__all__ = ["pin_command", "summary_lines", "add_parsers", "cmd_pin"]


def pin_command(ct_path: str | os.PathLike, geometry_path: str | os.PathLike, plan_path: str | os.PathLike,
                implant_id: str, shots, out_path: str | os.PathLike, *,
                overlay_path: str | os.PathLike | None = None, polarity: str = "auto",
                thresholds=None, allow_ct_mismatch: bool = False) -> dict:
    """Run :func:`~or_assist.guidance.pin_files.pin_deviation_files` (same parameters).

    Returns
    -------
    dict
        ``doc`` (what was written), ``out`` and ``overlay`` paths, ``summary`` (text lines).
    """
    from or_assist.guidance.pin_files import pin_deviation_files

    res = pin_deviation_files(ct_path, geometry_path, plan_path, implant_id, shots, out_path,
                              overlay_path=overlay_path, polarity=polarity, thresholds=thresholds,
                              allow_ct_mismatch=allow_ct_mismatch)
    return {"doc": res.doc, "out": res.out, "overlay": res.overlay, "summary": summary_lines(res.doc)}


def summary_lines(doc: dict) -> list[str]:
    """The cue of each shot, its error, and the 3-D cue (or why it was refused), one line each."""
    lines = []
    for i, s in enumerate(doc["shots"], 1):
        if s["cue"] is not None:
            lines.append(f"shot {i}: [{s['cue']['level']}] " + "; ".join(s["cue"]["lines"] + s["cue"]["warnings"]))
        if s["error"]:
            lines.append(f"shot {i}: {s['error']}")
    d3 = doc["deviation_3d"]
    if d3 is not None:
        lines.append(f"3-D: [{d3['cue']['level']}] " + "; ".join(d3["cue"]["lines"] + d3["cue"]["warnings"]))
    elif doc["deviation_3d_refused"]:
        lines.append(f"3-D refused: {doc['deviation_3d_refused']}")
    return lines


def cmd_pin(args) -> int:
    """Print the summary and the path written."""
    res = pin_command(args.ct, args.geometry, args.plan, args.implant, [tuple(s) for s in args.shot], args.out,
                      overlay_path=args.overlay, polarity=args.polarity)
    emit(res["summary"])
    emit(f"wrote {res['out']}")
    return 0


def add_parsers(sub) -> None:
    """Add ``pin``."""
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
    s.set_defaults(func=cmd_pin)
