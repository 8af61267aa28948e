"""``or-assist register``: register one shot (image file) to the CT and write the result.

    or-assist register --ct CT [--geometry G.json] --image SHOT.png|SHOT.dcm [--init POSE.json]
                       --out RESULT.json [--plan PLAN.json] [--library LIB]
                       [--polarity bone-dark|bone-bright|auto] [--time-budget-s S] [--dewarp D.json]
                       [--second-image SHOT2 [--second-init POSE2.json] --second-out RESULT2.json
                        [--second-geometry G2.json]]

A DICOM shot with geometry tags needs no ``--geometry`` (its header's is used; given both,
a disagreement is printed as a warning), and one with positioner angles no ``--init`` (the
header's beam through the plan's implants or the CT's centre).

With ``--second-image`` the two shots (different views of the patient, who has not moved
between them) are registered jointly (:mod:`or_assist.register.joint`,
:func:`or_assist.register.files.register_pair_files`): the relative C-arm motion comes
from the two starts (pose files or DICOM positioner angles), each shot's result goes to
its own ``or_assist.registration/1`` file (``--out``, ``--second-out``) with a ``"joint"``
object, and a pair that disagrees is "not registered" in both. A second shot needs its
start (``--second-init``) unless it is a DICOM shot with positioner angles.

The work is :func:`or_assist.register.files.register_files`. A shot that cannot be
registered confidently is a result with ``success: false`` and a ``reason`` (exit status
0); unreadable or malformed inputs raise :class:`~or_assist.errors.InputError` (the CLI's
exit status 2).
"""

from __future__ import annotations

import os
from pathlib import Path

from or_assist.core.vocabulary import POLARITY_SETTINGS
from or_assist.cli._parser import emit

__all__ = ["register_command", "register_pair_command", "add_parsers", "cmd_register"]


def register_command(ct_path: str | os.PathLike, geometry_path: str | os.PathLike | None,
                     image_path: str | os.PathLike, init_path: str | os.PathLike | None,
                     out_path: str | os.PathLike, *,
                     plan_path: str | os.PathLike | None = None, library_path: str | os.PathLike | None = None,
                     polarity: str = "bone-dark", time_budget_s: float | None = None,
                     dewarp_path: str | os.PathLike | None = None) -> dict:
    """Register one shot (:func:`~or_assist.register.files.register_files`, same parameters,
    but ``time_budget_s`` None means the default budget and 0 no limit, as on the command line).

    Returns
    -------
    dict
        The written document plus ``"summary"`` (one line, then one ``warning:`` line per
        disagreement of a DICOM header with the geometry file), ``"warnings"`` and ``"out"``.
    """
    from or_assist.register.files import register_files
    from or_assist.register.settings import DEFAULT_TIME_BUDGET_S

    if time_budget_s is None:
        time_budget_s = DEFAULT_TIME_BUDGET_S
    notes: list[str] = []
    result = register_files(ct_path, geometry_path, image_path, init_path, out_path, plan_path=plan_path,
                            library_path=library_path, polarity=polarity,
                            time_budget_s=time_budget_s or None, notes=notes, dewarp_path=dewarp_path)
    if result.success:
        est = "" if result.estimated_error_mm is None else f", estimated error {result.estimated_error_mm:.1f} mm"
        summary = (f"registered in {result.seconds:.2f} s ({result.metric} {result.similarity:.3f}{est}); "
                   f"wrote {out_path}")
    else:
        summary = f"registration failed: {result.reason}; wrote {out_path}"
    summary = "\n".join([summary, *(f"warning: {n}" for n in notes)])
    return {**result.to_dict(), "summary": summary, "warnings": notes, "out": Path(out_path)}


def register_pair_command(ct_path, image_paths, init_paths, out_paths, *, geometry_paths=(None, None),
                          plan_path=None, polarity: str = "bone-dark", time_budget_s: float | None = None,
                          dewarp_path=None) -> dict:
    """Register two shots jointly (:func:`~or_assist.register.files.register_pair_files`, same
    parameters; ``time_budget_s`` per shot, None the default and 0 no limit).

    Returns
    -------
    dict
        ``"results"`` (the two written documents), ``"summary"`` (one line per shot, then
        ``warning:`` lines), ``"warnings"`` and ``"out"`` (the two paths).
    """
    from or_assist.register.files import register_pair_files
    from or_assist.register.settings import DEFAULT_TIME_BUDGET_S

    if time_budget_s is None:
        time_budget_s = DEFAULT_TIME_BUDGET_S
    notes: list[str] = []
    joint = register_pair_files(ct_path, image_paths, init_paths, out_paths, geometry_paths=geometry_paths,
                                plan_path=plan_path, polarity=polarity, time_budget_s=time_budget_s or None,
                                notes=notes, dewarp_path=dewarp_path)
    lines = []
    for name, res, path in zip(("shot 1", "shot 2"), joint.results, out_paths):
        if res.success:
            lines.append(f"{name} registered jointly ({res.metric} {res.similarity:.3f}, estimated error "
                         f"{res.estimated_error_mm:.1f} mm); wrote {path}")
        else:
            lines.append(f"{name}: registration failed: {res.reason}; wrote {path}")
    lines.append(f"pair: {joint.seconds:.2f} s")
    lines += [f"warning: {n}" for n in notes]
    return {"results": joint.to_dicts(), "summary": "\n".join(lines), "warnings": notes,
            "out": tuple(Path(p) for p in out_paths)}


def cmd_register(args) -> int:
    """Register and print the summary; 0 also when the registration reports success=false
    (that is a result, not an error)."""
    from or_assist.errors import InputError

    pair = (args.second_init, args.second_out, args.second_geometry)
    if args.second_image is None:
        named = [n for n, v in zip(("--second-init", "--second-out", "--second-geometry"), pair) if v is not None]
        if named:
            raise InputError(f"{named[0]} is given without --second-image", "--second-image")
    else:
        if args.second_out is None:
            raise InputError("a second shot needs its own result file", "--second-out")
        if args.library is not None:
            raise InputError("a view library is not used for a pair of shots; leave it out", "--library")
        result = register_pair_command(args.ct, (args.image, args.second_image), (args.init, args.second_init),
                                       (args.out, args.second_out), geometry_paths=(args.geometry, args.second_geometry),
                                       plan_path=args.plan, polarity=args.polarity, time_budget_s=args.time_budget_s,
                                       dewarp_path=args.dewarp)
        emit(result["summary"])
        return 0
    result = register_command(args.ct, args.geometry, args.image, args.init, args.out, plan_path=args.plan,
                              library_path=args.library, polarity=args.polarity,
                              time_budget_s=args.time_budget_s, dewarp_path=args.dewarp)
    emit(result["summary"])
    return 0


def add_parsers(sub) -> None:
    """Add ``register``."""
    s = sub.add_parser("register", help="register a fluoroscopy shot to the CT (2D/3D); writes or_assist.registration/1")
    s.add_argument("--ct", required=True, help="the CT (DICOM folder or file, NIfTI, MHA, NRRD)")
    s.add_argument("--geometry", default=None,
                   help="or_assist.geometry/1 of the image's pixels (optional for a DICOM shot with geometry tags)")
    s.add_argument("--image", required=True, help="the shot: PNG/TIFF (a whole video frame is fine) or DICOM")
    s.add_argument("--init", default=None, help="starting pose (or_assist.pose/1), e.g. the planned view's "
                   "(optional for a DICOM shot with positioner angles)")
    s.add_argument("--out", required=True, type=Path, help="or_assist.registration/1 output")
    s.add_argument("--plan", default=None, help="the plan (limits the search to its region, checks the library)")
    s.add_argument("--library", default=None, help="the plan's view library (views.npz or its folder)")
    s.add_argument("--polarity", choices=POLARITY_SETTINGS, default="bone-dark")
    s.add_argument("--time-budget-s", type=float, default=None,
                   help="give up (a result saying why) after this many seconds (default 3; 0: no limit)")
    s.add_argument("--second-image", default=None,
                   help="a second shot of another view (the patient not moved): both are registered jointly")
    s.add_argument("--second-init", default=None,
                   help="the second shot's start (or_assist.pose/1; optional for a DICOM shot with positioner "
                        "angles); the relative C-arm motion is taken from the two starts")
    s.add_argument("--dewarp", default=None,
                   help="or_assist.dewarp/1 of an image intensifier (calibrate --dewarp): dewarp the video shot(s) first")
    s.add_argument("--second-geometry", default=None,
                   help="or_assist.geometry/1 of the second shot (default: its DICOM header, else --geometry)")
    s.add_argument("--second-out", default=None, type=Path, help="or_assist.registration/1 of the second shot")
    s.set_defaults(func=cmd_register)
