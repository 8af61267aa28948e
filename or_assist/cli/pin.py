"""``or-assist pin``: the guide pin against the plan in one or two registered shots.

    or-assist pin --ct CT [--geometry G.json] --plan PLAN --implant ID
                  --shot SHOT.png|SHOT.dcm POSE.json [--shot SHOT2 POSE2.json]
                  --out DEV.json [--overlay OUT.png] [--polarity auto|bone-dark|bone-bright] [--dewarp D.json]

The work is :func:`or_assist.guidance.pin_files.pin_deviation_files` (its module doc
describes ``or_assist.pin_deviation/1``); this module prints one line per shot and one
for the 3-D deviation. DICOM shots with geometry tags need no ``--geometry``: the first
shot's header gives it (:func:`shots_geometry`), and a header that disagrees with the
geometry file or with the first shot's is printed as a warning.
"""

from __future__ import annotations

import os
from pathlib import Path

from or_assist.core.vocabulary import POLARITIES
from or_assist.cli._parser import emit

__all__ = ["pin_command", "shots_geometry", "summary_lines", "add_parsers", "cmd_pin"]


def shots_geometry(geometry_path: str | os.PathLike | None, image_paths) -> tuple:
    """The geometry for ``pin``'s shots: the geometry file's, else the first DICOM shot's header's.

    Parameters
    ----------
    geometry_path : path-like or None
        ``or_assist.geometry/1``, or None for DICOM shots with geometry tags.
    image_paths : sequence of path-like
        The shots.

    Returns
    -------
    (path-like or CArmGeometry, list of str)
        What to give :func:`~or_assist.guidance.pin_files.pin_deviation_files` and warnings
        (:func:`~or_assist.dicom.header_geometry.resolve_geometry`, and shots whose header
        geometry differs from the first's).

    Raises
    ------
    InputError
        No geometry file and a shot that is not DICOM or has no geometry tags.
    """
    from or_assist.core.geometry import load_geometry
    from or_assist.dicom.header_geometry import compare_geometry, resolve_geometry
    from or_assist.video.shot_files import read_shot_header

    calibrated = load_geometry(geometry_path) if geometry_path is not None else None
    chosen, notes = None, []
    for path in image_paths:
        header = read_shot_header(path)
        if header is None and calibrated is not None:
            continue
        shape = (header.rows or 0, header.columns or 0) if header is not None else (1, 1)
        geometry, warnings = resolve_geometry(header, shape, calibrated)
        notes.extend(f"{path}: {w}" for w in warnings)
        if chosen is None:
            chosen = geometry
        elif geometry is not chosen and geometry is not calibrated:
            notes.extend(f"{path}: {w} (against the first shot's header)" for w in compare_geometry(geometry, chosen))
    if calibrated is not None and (chosen is None or chosen is calibrated):
        return geometry_path, notes
    return chosen, notes


def pin_command(ct_path: str | os.PathLike, geometry_path: str | os.PathLike | None, plan_path: str | os.PathLike,
                implant_id: str, shots, out_path: str | os.PathLike, *,
                overlay_path: str | os.PathLike | None = None, polarity: str = "auto",
                thresholds=None, allow_ct_mismatch: bool = False, dewarp_path=None) -> dict:
    """Run :func:`~or_assist.guidance.pin_files.pin_deviation_files` (same parameters; ``dewarp_path``
    an ``or_assist.dewarp/1`` file).

    Returns
    -------
    dict
        ``doc`` (what was written), ``out`` and ``overlay`` paths, ``summary`` (text lines,
        then one ``warning:`` line per geometry disagreement of a DICOM shot).
    """
    from or_assist.guidance.pin_files import pin_deviation_files

    shots = list(shots)
    geometry, notes = shots_geometry(geometry_path, [s[0] for s in shots if isinstance(s, (tuple, list)) and s])
    dewarp = None
    if dewarp_path is not None:
        from or_assist.calibration.dewarp import load_dewarp

        dewarp = load_dewarp(dewarp_path)
    res = pin_deviation_files(ct_path, geometry, plan_path, implant_id, shots, out_path,
                              overlay_path=overlay_path, polarity=polarity, thresholds=thresholds,
                              allow_ct_mismatch=allow_ct_mismatch, dewarp=dewarp)
    return {"doc": res.doc, "out": res.out, "overlay": res.overlay,
            "summary": summary_lines(res.doc) + [f"warning: {n}" for n in notes]}


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
                      overlay_path=args.overlay, polarity=args.polarity, dewarp_path=args.dewarp)
    emit(res["summary"])
    emit(f"wrote {res['out']}")
    return 0


def add_parsers(sub) -> None:
    """Add ``pin``."""
    s = sub.add_parser("pin", help="find the guide pin in registered shots; 2D deviation per shot, 3D from two")
    s.add_argument("--ct", required=True, help="the plan's CT")
    s.add_argument("--geometry", default=None,
                   help="or_assist.geometry/1 of the shots' pixels (optional for DICOM shots with geometry tags)")
    s.add_argument("--plan", required=True, help="or_assist.plan/1 JSON file")
    s.add_argument("--implant", required=True, help="the active implant id")
    s.add_argument("--shot", nargs=2, action="append", required=True, metavar=("SHOT", "POSE.json"),
                   help="a shot and its pose (or_assist.pose/1 or a registration result); give two for 3D")
    s.add_argument("--out", required=True, type=Path, help="or_assist.pin_deviation/1 JSON output")
    s.add_argument("--overlay", default=None, type=Path, help="also draw the overlay of the first shot here")
    s.add_argument("--polarity", choices=("auto", *POLARITIES), default="auto")
    s.add_argument("--dewarp", default=None,
                   help="or_assist.dewarp/1 of an image intensifier (as given to register): dewarp video shots first")
    s.set_defaults(func=cmd_pin)
